package dpopinterop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	jwtmiddleware "github.com/auth0/go-jwt-middleware/v3"
	"github.com/auth0/go-jwt-middleware/v3/jwks"
	"github.com/auth0/go-jwt-middleware/v3/validator"
	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// algs are the proof algorithms all three implementations support.
var algs = []string{"ES256", "EdDSA", "RS256", "PS256"}

// newSigner makes a fresh private key for alg with the standard library.
func newSigner(tb testing.TB, alg string) crypto.Signer {
	tb.Helper()
	var s crypto.Signer
	var err error
	switch alg {
	case "ES256":
		s, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, s, err = ed25519.GenerateKey(rand.Reader)
	case "RS256", "PS256":
		s, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		tb.Fatalf("no key type for %s", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// jwxKey is a DPoP key held by jwx: jwx imports it, signs the proofs and
// computes the thumbprint, so that none of Tollgate's code makes them.
type jwxKey struct {
	alg  jwa.SignatureAlgorithm
	priv jwk.Key
	pub  jwk.Key
}

func newJWXKey(tb testing.TB, alg string) *jwxKey {
	tb.Helper()
	return jwxKeyOf(tb, alg, newSigner(tb, alg))
}

// jwxKeyOf is signer, imported into jwx, to sign with alg.
func jwxKeyOf(tb testing.TB, alg string, signer crypto.Signer) *jwxKey {
	tb.Helper()
	a, ok := jwa.LookupSignatureAlgorithm(alg)
	if !ok {
		tb.Fatalf("jwx knows no %s", alg)
	}
	priv, err := jwk.Import(signer)
	if err != nil {
		tb.Fatal(err)
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return &jwxKey{alg: a, priv: priv, pub: pub}
}

// thumbprint is jwx's RFC 7638 SHA-256 thumbprint of k, base64url.
func (k *jwxKey) thumbprint(tb testing.TB) string {
	tb.Helper()
	return jwxThumbprint(tb, k.pub)
}

func jwxThumbprint(tb testing.TB, key jwk.Key) string {
	tb.Helper()
	sum, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(sum)
}

// proof is a DPoP proof signed by jwx: protected header typ dpop+jwt, alg
// and k's public jwk; claims jti, htm, htu, iat and ath (none when token
// is ""), then edit's changes. headerKey replaces the jwk when not nil;
// hdr may change the protected header last.
func (k *jwxKey) proof(tb testing.TB, method, htu, token string, edit func(claims map[string]any), headerKey jwk.Key, hdr ...func(jws.Headers) error) string {
	tb.Helper()
	claims := map[string]any{"jti": rand.Text(), "htm": method, "htu": htu, "iat": time.Now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if edit != nil {
		edit(claims)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	if headerKey == nil {
		headerKey = k.pub
	}
	h := jws.NewHeaders()
	if err := h.Set(jws.TypeKey, "dpop+jwt"); err != nil {
		tb.Fatal(err)
	}
	if err := h.Set(jws.JWKKey, headerKey); err != nil {
		tb.Fatal(err)
	}
	for _, f := range hdr {
		if err := f(h); err != nil {
			tb.Fatal(err)
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(k.alg, k.priv, jws.WithProtectedHeaders(h)))
	if err != nil {
		tb.Fatal(err)
	}
	return string(signed)
}

// mintBound is an access token from is for alice bound to thumbprint jkt.
func mintBound(tb testing.TB, is *authtest.Issuer, jkt string) string {
	tb.Helper()
	return is.Mint(tb, "alice", authtest.WithClaims(func(c map[string]any) {
		c["cnf"] = map[string]any{"jkt": jkt}
	}))
}

// server is one implementation behind a real HTTP server at url+"/todos";
// the handler answers 200 with the thumbprint the implementation bound
// the request to.
type server struct {
	name string
	url  string // the proofs' htu for GET /todos
}

// tollgateServer serves GET /todos behind a real Tollgate Authenticator
// that requires DPoP, keys from is's JWKS over HTTP; edit, when not nil,
// changes the configuration.
func tollgateServer(tb testing.TB, is *authtest.Issuer, edit func(*middleware.Config)) server {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	cfg := middleware.Config{
		Issuer:    is.URL,
		Audiences: []string{authtest.Audience},
		DPoP:      middleware.DPoPRequired,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if edit != nil {
		edit(&cfg)
	}
	a, err := middleware.New(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for a.Ready(ctx) != nil {
		if time.Now().After(deadline) {
			tb.Fatal("Tollgate never loaded the keys")
		}
		time.Sleep(5 * time.Millisecond)
	}
	h := a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principal.From(r.Context())
		if p.Binding != principal.BindingDPoP {
			http.Error(w, "not DPoP-bound", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, p.JKT)
	}))
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return server{name: "tollgate", url: srv.URL + "/todos"}
}

// auth0Server serves GET /todos behind auth0/go-jwt-middleware v3 with
// its caching JWKS provider on is's JWKS, the same issuer and audience,
// and DPoP required.
func auth0Server(tb testing.TB, is *authtest.Issuer) server {
	tb.Helper()
	iu, err := url.Parse(is.URL)
	if err != nil {
		tb.Fatal(err)
	}
	ju, err := url.Parse(is.URL + "/jwks")
	if err != nil {
		tb.Fatal(err)
	}
	provider, err := jwks.NewCachingProvider(jwks.WithIssuerURL(iu), jwks.WithCustomJWKSURI(ju))
	if err != nil {
		tb.Fatal(err)
	}
	v, err := validator.New(
		validator.WithKeyFunc(provider.KeyFunc),
		validator.WithAlgorithm(validator.RS256), // authtest's Mint signs with RS256
		validator.WithIssuer(is.URL),
		validator.WithAudience(authtest.Audience),
	)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := jwtmiddleware.New(
		jwtmiddleware.WithValidator(v),
		jwtmiddleware.WithDPoPMode(jwtmiddleware.DPoPRequired),
	)
	if err != nil {
		tb.Fatal(err)
	}
	h := m.CheckJWT(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := jwtmiddleware.GetDPoPContext(r.Context())
		if d == nil {
			http.Error(w, "not DPoP-bound", http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, d.PublicKeyThumbprint)
	}))
	srv := httptest.NewServer(h)
	tb.Cleanup(srv.Close)
	return server{name: "go-jwt-middleware", url: srv.URL + "/todos"}
}

// answer is what a server said to one request.
type answer struct {
	status    int
	body      string
	challenge string
}

// send makes a real request of method to u with "Authorization: DPoP
// token" and one DPoP header per proof.
func send(tb testing.TB, method, u, token string, proofs ...string) answer {
	tb.Helper()
	return sendScheme(tb, "DPoP", method, u, token, proofs...)
}

// sendScheme is send with another authorization scheme.
func sendScheme(tb testing.TB, scheme, method, u, token string, proofs ...string) answer {
	tb.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", scheme+" "+token)
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		tb.Fatal(err)
	}
	return answer{status: resp.StatusCode, body: string(b), challenge: resp.Header.Get("WWW-Authenticate")}
}

// Package authtest is a test authorization server: it makes real keys
// (RSA, RSA-PSS, ECDSA P-256, Ed25519), serves them as a JWKS and OpenID
// discovery document on an httptest server, and signs real tokens with them.
// Tests of code that verifies tokens use it instead of mocking the
// verifier. It depends on golang-jwt only.
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TB is the part of testing.TB that authtest uses, so that examples and
// programs can drive an Issuer too.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Audience is the aud of the tokens an Issuer signs unless WithAudience
// says otherwise.
const Audience = "test-api"

// DefaultScopes are the scopes of the tokens an Issuer signs unless
// WithScopes says otherwise, as the space-delimited scope claim.
const DefaultScopes = "read write"

// Option changes the claims of the tokens an Issuer signs: given to
// NewIssuer, for all of them; given to Mint, for one (after the issuer's).
type Option func(*settings)

type settings struct {
	aud       []string
	scopes    *[]string
	edits     []func(map[string]any)
	hs256     bool
	secret    []byte
	perIssuer bool
}

// WithAudience sets the aud claim: a string for one audience, an array
// for several.
func WithAudience(aud ...string) Option {
	return func(s *settings) { s.aud = aud }
}

// WithScopes sets the scope claim (space-delimited); with no scopes the
// token has none.
func WithScopes(scopes ...string) Option {
	return func(s *settings) { s.scopes = &scopes }
}

// WithClaims lets edit change the claims last, after the other options:
// add a claim, delete one, or give one a wrong type. Plain maps, so tests
// need no JWT library. Numbers are encoded as given (an int64 exactly).
func WithClaims(edit func(claims map[string]any)) Option {
	return func(s *settings) { s.edits = append(s.edits, edit) }
}

// WithHS256 makes the Issuer sign its tokens with HS256 and secret, for an
// Authenticator configured with Config.HMACSecret; a nil secret means a new
// random one of 32 bytes (see HMACSecret). The keys are still published,
// and Sign still signs with them. Only NewIssuer takes it.
func WithHS256(secret []byte) Option {
	return func(s *settings) {
		if !s.perIssuer {
			s.hs256 = true // reported by Mint
			return
		}
		s.hs256 = true
		s.secret = secret
		if s.secret == nil {
			s.secret = []byte(rand.Text() + rand.Text())[:32]
		}
	}
}

// apply sets the options' claims on c.
func (s *settings) apply(c map[string]any) {
	switch len(s.aud) {
	case 0:
	case 1:
		c["aud"] = s.aud[0]
	default:
		c["aud"] = s.aud
	}
	if s.scopes != nil {
		if len(*s.scopes) == 0 {
			delete(c, "scope")
		} else {
			c["scope"] = strings.Join(*s.scopes, " ")
		}
	}
	for _, edit := range s.edits {
		edit(c)
	}
}

// Key is one signing key of the issuer.
type Key struct {
	KID     string
	Alg     string
	Private crypto.Signer
}

// Issuer is a running test authorization server.
type Issuer struct {
	// URL is the issuer identifier and the server's base URL.
	URL string
	// Server is the underlying httptest server.
	Server *httptest.Server

	mu      sync.Mutex
	keys    []*Key            // published in the JWKS, in order
	extra   []json.RawMessage // extra raw JWKs appended to the set
	byAlg   map[string]*Key   // default key per algorithm
	down    atomic.Bool       // JWKS answers 503
	fetches atomic.Int64      // JWKS requests served
	mux     *http.ServeMux

	introState introspectState
	defaults   settings
}

// NewIssuer starts an issuer with one key per algorithm RS256, PS256,
// ES256 and EdDSA; the server stops when the test ends. The options set
// the claims of every token it signs (see Claims).
func NewIssuer(tb TB, opts ...Option) *Issuer {
	tb.Helper()
	is := &Issuer{byAlg: map[string]*Key{}, mux: http.NewServeMux()}
	is.defaults.perIssuer = true
	for _, o := range opts {
		o(&is.defaults)
	}
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		is.AddKey(tb, alg)
	}
	is.mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                 is.URL,
			"jwks_uri":               is.URL + "/jwks",
			"introspection_endpoint": is.URL + "/introspect",
		})
	})
	is.mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		is.fetches.Add(1)
		if is.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(is.JWKS())
	})
	// The URL is known before the server answers anything, so handlers
	// that read it never race with this assignment.
	is.Server = httptest.NewUnstartedServer(is.mux)
	is.URL = "http://" + is.Server.Listener.Addr().String()
	is.Server.Start()
	tb.Cleanup(is.Server.Close)
	return is
}

// Handle adds a handler to the issuer's server, e.g. an introspection
// endpoint.
func (is *Issuer) Handle(pattern string, h http.Handler) { is.mux.Handle(pattern, h) }

// AddKey makes a new key for alg, publishes it, makes it the default for
// alg and returns it.
func (is *Issuer) AddKey(tb TB, alg string) *Key {
	tb.Helper()
	var signer crypto.Signer
	var err error
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	case "ES256":
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		signer, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "EdDSA":
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	default:
		tb.Fatalf("authtest: no key type for %s", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	is.mu.Lock()
	defer is.mu.Unlock()
	k := &Key{KID: fmt.Sprintf("%s-%d", alg, len(is.keys)+1), Alg: alg, Private: signer}
	is.keys = append(is.keys, k)
	is.byAlg[alg] = k
	return k
}

// RemoveKey stops publishing the key with kid.
func (is *Issuer) RemoveKey(kid string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	for i, k := range is.keys {
		if k.KID == kid {
			is.keys = append(is.keys[:i], is.keys[i+1:]...)
			return
		}
	}
}

// AddRawJWK appends a JWK verbatim to the published set, e.g. a broken one.
func (is *Issuer) AddRawJWK(raw string) {
	is.mu.Lock()
	defer is.mu.Unlock()
	is.extra = append(is.extra, json.RawMessage(raw))
}

// KeyFor returns the default key for alg.
func (is *Issuer) KeyFor(alg string) *Key {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.byAlg[alg]
}

// SetDown makes the JWKS endpoint answer 503 (true) or work again (false).
func (is *Issuer) SetDown(down bool) { is.down.Store(down) }

// JWKSFetches counts the JWKS requests the server has answered.
func (is *Issuer) JWKSFetches() int64 { return is.fetches.Load() }

// JWKS returns the published key set.
func (is *Issuer) JWKS() []byte {
	is.mu.Lock()
	defer is.mu.Unlock()
	set := struct {
		Keys []any `json:"keys"`
	}{Keys: []any{}}
	for _, k := range is.keys {
		set.Keys = append(set.Keys, PublicJWK(k))
	}
	for _, raw := range is.extra {
		set.Keys = append(set.Keys, raw)
	}
	b, _ := json.Marshal(set)
	return b
}

// PublicJWK is the public JWK of k, with kid, alg and use.
func PublicJWK(k *Key) map[string]any {
	m := map[string]any{"kid": k.KID, "alg": k.Alg, "use": "sig"}
	b64 := base64.RawURLEncoding.EncodeToString
	switch pub := k.Private.Public().(type) {
	case *rsa.PublicKey:
		m["kty"] = "RSA"
		m["n"] = b64(pub.N.Bytes())
		m["e"] = b64(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		m["kty"] = "EC"
		size := (pub.Curve.Params().BitSize + 7) / 8
		m["crv"] = pub.Curve.Params().Name
		ecdh, _ := pub.ECDH()
		raw := ecdh.Bytes() // 0x04 || X || Y
		m["x"] = b64(raw[1 : 1+size])
		m["y"] = b64(raw[1+size:])
	case ed25519.PublicKey:
		m["kty"] = "OKP"
		m["crv"] = "Ed25519"
		m["x"] = b64(pub)
	}
	return m
}

// Claims returns valid access-token claims for sub: this issuer, the
// Audience, issued now, expiring in five minutes, the DefaultScopes,
// client_id "test-client", after the options given to NewIssuer.
func (is *Issuer) Claims(sub string) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss":       is.URL,
		"aud":       Audience,
		"sub":       sub,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(5 * time.Minute).Unix(),
		"scope":     DefaultScopes,
		"client_id": "test-client",
		"jti":       rand.Text(),
	}
	is.defaults.apply(c)
	return c
}

// Mint signs a valid access token for sub: Claims, changed by opts. It
// signs with RS256, or HS256 for an issuer made WithHS256.
func (is *Issuer) Mint(tb TB, sub string, opts ...Option) string {
	tb.Helper()
	var s settings
	for _, o := range opts {
		o(&s)
	}
	if s.hs256 {
		tb.Fatal("authtest: WithHS256 is an option of NewIssuer, not of Mint")
	}
	c := is.Claims(sub)
	s.apply(c)
	return is.Sign(tb, is.defaultAlg(), c, nil)
}

// Token signs valid claims for sub, as Mint does, after edit (which may
// be nil) has changed them.
func (is *Issuer) Token(tb TB, sub string, edit func(jwt.MapClaims)) string {
	tb.Helper()
	c := is.Claims(sub)
	if edit != nil {
		edit(c)
	}
	return is.Sign(tb, is.defaultAlg(), c, nil)
}

// HMACSecret is the secret of an issuer made WithHS256, nil otherwise.
func (is *Issuer) HMACSecret() []byte { return is.defaults.secret }

func (is *Issuer) defaultAlg() string {
	if is.defaults.hs256 {
		return "HS256"
	}
	return "RS256"
}

// Sign signs claims with the default key for alg (HS256: the secret of an
// issuer made WithHS256), setting kid and typ "at+jwt" and then the header
// entries in header (a nil value deletes).
func (is *Issuer) Sign(tb TB, alg string, claims jwt.Claims, header map[string]any) string {
	tb.Helper()
	if alg == "HS256" && is.defaults.secret != nil {
		return signHMAC(tb, is.defaults.secret, claims, header)
	}
	k := is.KeyFor(alg)
	if k == nil {
		tb.Fatalf("authtest: no key for %s", alg)
	}
	return SignWith(tb, k, claims, header)
}

func signHMAC(tb TB, secret []byte, claims jwt.Claims, header map[string]any) string {
	tb.Helper()
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	t.Header["typ"] = "at+jwt"
	for name, v := range header {
		if v == nil {
			delete(t.Header, name)
		} else {
			t.Header[name] = v
		}
	}
	s, err := t.SignedString(secret)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// SignWith signs claims with k.
func SignWith(tb TB, k *Key, claims jwt.Claims, header map[string]any) string {
	tb.Helper()
	t := jwt.NewWithClaims(jwt.GetSigningMethod(k.Alg), claims)
	t.Header["kid"] = k.KID
	t.Header["typ"] = "at+jwt"
	for name, v := range header {
		if v == nil {
			delete(t.Header, name)
		} else {
			t.Header[name] = v
		}
	}
	s, err := t.SignedString(k.Private)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

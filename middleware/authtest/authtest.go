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

// Audience is the aud of the tokens Token signs unless told otherwise.
const Audience = "todo-api"

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
}

// NewIssuer starts an issuer with one key per algorithm RS256, PS256,
// ES256 and EdDSA; the server stops when the test ends.
func NewIssuer(tb TB) *Issuer {
	tb.Helper()
	is := &Issuer{byAlg: map[string]*Key{}, mux: http.NewServeMux()}
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
// Audience, issued now, expiring in five minutes, scopes todos:read and
// todos:write.
func (is *Issuer) Claims(sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss":       is.URL,
		"aud":       Audience,
		"sub":       sub,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(5 * time.Minute).Unix(),
		"scope":     "todos:read todos:write",
		"client_id": "test-client",
		"jti":       rand.Text(),
	}
}

// Token signs valid claims for sub with the RS256 key, after edit (which
// may be nil) has changed them.
func (is *Issuer) Token(tb TB, sub string, edit func(jwt.MapClaims)) string {
	tb.Helper()
	c := is.Claims(sub)
	if edit != nil {
		edit(c)
	}
	return is.Sign(tb, "RS256", c, nil)
}

// Sign signs claims with the default key for alg, setting kid and typ
// "at+jwt" and then the header entries in header (a nil value deletes).
func (is *Issuer) Sign(tb TB, alg string, claims jwt.Claims, header map[string]any) string {
	tb.Helper()
	k := is.KeyFor(alg)
	if k == nil {
		tb.Fatalf("authtest: no key for %s", alg)
	}
	return SignWith(tb, k, claims, header)
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

package middleware_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestMetadataEndpointTransport: an endpoint taken from an issuer's
// metadata (jwks_uri, introspection_endpoint) must be https when the
// issuer is https; plain http only when the issuer is itself http.
func TestMetadataEndpointTransport(t *testing.T) {
	const (
		httpsIssuer = "https://idp.example"
		httpIssuer  = "http://127.0.0.1:1"
	)
	tests := []struct {
		name, issuer, endpoint string
		wantErr                string // empty: accepted
	}{
		{"https issuer, http endpoint", httpsIssuer, "http://127.0.0.1:1/ep", "plain http from an https issuer's metadata"},
		{"https issuer, http endpoint (upper-case scheme)", httpsIssuer, "HTTP://127.0.0.1:1/ep", "plain http from an https issuer's metadata"},
		{"http issuer, http endpoint", httpIssuer, "http://127.0.0.1:1/ep", ""},
		{"http issuer, https endpoint", httpIssuer, "https://127.0.0.1:1/ep", ""},
		{"https issuer, https endpoint", httpsIssuer, "https://127.0.0.1:1/ep", ""},
		{"https issuer, relative endpoint", httpsIssuer, "/ep", "not an http(s) URL"},
		{"http issuer, relative endpoint", httpIssuer, "/ep", "not an http(s) URL"},
		{"http issuer, ftp endpoint", httpIssuer, "ftp://127.0.0.1/ep", "not an http(s) URL"},
	}
	for _, tt := range tests {
		t.Run("introspection_endpoint/"+tt.name, func(t *testing.T) {
			md := middleware.Metadata{Issuer: tt.issuer, IntrospectionEndpoint: tt.endpoint}
			got, err := md.IntrospectionURL()
			checkEndpointErr(t, "introspection_endpoint", tt.wantErr, err)
			if err == nil && got != tt.endpoint {
				t.Errorf("IntrospectionURL = %q, want %q", got, tt.endpoint)
			}
		})
		t.Run("jwks_uri/"+tt.name, func(t *testing.T) {
			md := &middleware.Metadata{Issuer: tt.issuer, JWKSURI: tt.endpoint}
			// LazyKeys: New checks the URL without fetching from it.
			_, err := middleware.New(t.Context(), middleware.Config{
				Issuer: tt.issuer, Audiences: []string{"api"}, Metadata: md, LazyKeys: true, Logger: quiet(),
			})
			checkEndpointErr(t, "jwks_uri", tt.wantErr, err)
		})
		t.Run("jwks_uri of a resolver's answer/"+tt.name, func(t *testing.T) {
			// The resolver's answer is checked at the first token of its
			// issuer; a refused one is a 503 whose cause is logged.
			var logs syncBuffer
			auth, err := middleware.New(t.Context(), middleware.Config{
				Issuers:   []middleware.IssuerConfig{{Issuer: "https://configured.example", JWKSURL: "https://127.0.0.1:1/jwks"}},
				Audiences: []string{"api"}, LazyKeys: true,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
				IssuerResolver: func(_ context.Context, iss string) (middleware.IssuerConfig, error) {
					return middleware.IssuerConfig{Issuer: iss, Metadata: &middleware.Metadata{Issuer: iss, JWKSURI: tt.endpoint}}, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			k := newECKey(t, "resolved")
			w := do(auth, bearerRequest(signFor(t, k, tt.issuer)))
			if tt.wantErr != "" {
				if w.Code != http.StatusServiceUnavailable || !strings.Contains(logs.String(), tt.wantErr) || !strings.Contains(logs.String(), "jwks_uri") {
					t.Errorf("status %d, log %s; want 503 and a log naming jwks_uri and %q", w.Code, logs.String(), tt.wantErr)
				}
			} else if strings.Contains(logs.String(), "jwks_uri") {
				t.Errorf("answer refused: %s", logs.String())
			}
		})
	}
}

func checkEndpointErr(t *testing.T, field, wantErr string, err error) {
	t.Helper()
	switch {
	case wantErr == "" && err != nil:
		t.Errorf("refused: %v", err)
	case wantErr != "" && err == nil:
		t.Errorf("accepted, want an error naming %s: %s", field, wantErr)
	case wantErr != "" && (!strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), wantErr)):
		t.Errorf("error %q, want it to name %s and say %q", err, field, wantErr)
	}
}

// newECKey makes an ES256 signing key named kid.
func newECKey(t *testing.T, kid string) *authtest.Key {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &authtest.Key{KID: kid, Alg: "ES256", Private: priv}
}

// signFor signs a valid access token of issuer for audience api with k.
func signFor(t *testing.T, k *authtest.Key, issuer string) string {
	t.Helper()
	now := time.Now()
	return authtest.SignWith(t, k, jwt.MapClaims{
		"iss": issuer, "aud": "api", "sub": "alice",
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}, nil)
}

// rotatingIdP is an https authorization server whose metadata document the
// test changes, with two key sets: /jwks-v1 (key A) and /jwks-v2 (key B).
// It counts the requests of each path.
type rotatingIdP struct {
	srv    *httptest.Server
	issuer string
	a, b   *authtest.Key
	doc    atomic.Pointer[string] // nil: the metadata answers 500
	// rfc8414 serves the metadata at the RFC 8414 location only (the
	// OpenID Connect one answers 404).
	rfc8414 atomic.Bool

	mu       sync.Mutex
	requests map[string]int
}

func newRotatingIdP(t *testing.T) *rotatingIdP {
	t.Helper()
	p := &rotatingIdP{a: newECKey(t, "key-a"), b: newECKey(t, "key-b"), requests: map[string]int{}}
	jwks := func(k *authtest.Key) []byte {
		b, _ := json.Marshal(map[string]any{"keys": []any{authtest.PublicJWK(k)}})
		return b
	}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests[r.URL.Path]++
		p.mu.Unlock()
		switch r.URL.Path {
		case metadataPath, rfc8414Path:
			if (r.URL.Path == rfc8414Path) != p.rfc8414.Load() {
				http.NotFound(w, r)
				return
			}
			doc := p.doc.Load()
			if doc == nil {
				http.Error(w, "broken", http.StatusInternalServerError)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, *doc)
		case "/jwks-v1":
			_, _ = w.Write(jwks(p.a))
		case "/jwks-v2":
			_, _ = w.Write(jwks(p.b))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.srv.Close)
	p.issuer = p.srv.URL
	p.setMetadata(map[string]any{"issuer": p.issuer, "jwks_uri": p.issuer + "/jwks-v1"})
	return p
}

func (p *rotatingIdP) setMetadata(doc map[string]any) {
	if doc == nil {
		p.doc.Store(nil)
		return
	}
	b, _ := json.Marshal(doc)
	s := string(b)
	p.doc.Store(&s)
}

func (p *rotatingIdP) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests[path]
}

const (
	metadataPath = "/.well-known/openid-configuration"
	rfc8414Path  = "/.well-known/oauth-authorization-server"
)

// metadataRequests counts the requests at both metadata locations.
func (p *rotatingIdP) metadataRequests() int { return p.count(metadataPath) + p.count(rfc8414Path) }

func (p *rotatingIdP) authenticator(t *testing.T, logs io.Writer, edit func(*middleware.Config)) *middleware.Authenticator {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	cfg := middleware.Config{
		Issuer: p.issuer, Audiences: []string{"api"}, HTTPClient: p.srv.Client(),
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}
	if edit != nil {
		edit(&cfg)
	}
	auth, err := middleware.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return auth
}

// TestJWKSURIRotation: when the issuer's metadata names a new jwks_uri,
// the Authenticator fetches its keys from there at its next refresh (here
// the one a token with an unknown kid causes), without being recreated.
func TestJWKSURIRotation(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*testing.T, *rotatingIdP, *middleware.Config)
	}{
		{"discovered by New", nil},
		{"Config.Metadata", func(t *testing.T, p *rotatingIdP, cfg *middleware.Config) {
			md, err := middleware.Discover(t.Context(), p.srv.Client(), p.issuer)
			if err != nil {
				t.Fatal(err)
			}
			cfg.Metadata = md
		}},
		{"Issuers entry", func(t *testing.T, p *rotatingIdP, cfg *middleware.Config) {
			cfg.Issuer = ""
			cfg.Issuers = []middleware.IssuerConfig{{Issuer: p.issuer}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRotatingIdP(t)
			auth := p.authenticator(t, nil, func(cfg *middleware.Config) {
				if tc.edit != nil {
					tc.edit(t, p, cfg)
				}
			})
			if w := do(auth, bearerRequest(signFor(t, p.a, p.issuer))); w.Code != http.StatusOK {
				t.Fatalf("key A before the rotation: %d %s", w.Code, w.Body)
			}
			p.setMetadata(map[string]any{"issuer": p.issuer, "jwks_uri": p.issuer + "/jwks-v2"})
			if w := do(auth, bearerRequest(signFor(t, p.b, p.issuer))); w.Code != http.StatusOK {
				t.Fatalf("key B after the rotation: %d %s", w.Code, w.Body)
			}
			if got := auth.JWKSURL(); got != p.issuer+"/jwks-v2" {
				t.Errorf("JWKSURL() = %q, want the new jwks_uri", got)
			}
			if n := p.count("/jwks-v2"); n != 1 {
				t.Errorf("/jwks-v2 fetched %d times, want 1", n)
			}
		})
	}
}

// TestJWKSURIRotationExplicitJWKSURL: a configured JWKSURL is the
// operator's choice: no metadata is ever read, at start or at a refresh.
func TestJWKSURIRotationExplicitJWKSURL(t *testing.T) {
	p := newRotatingIdP(t)
	auth := p.authenticator(t, nil, func(cfg *middleware.Config) { cfg.JWKSURL = p.issuer + "/jwks-v1" })
	p.setMetadata(map[string]any{"issuer": p.issuer, "jwks_uri": p.issuer + "/jwks-v2"})
	if w := do(auth, bearerRequest(signFor(t, p.b, p.issuer))); w.Code != http.StatusUnauthorized {
		t.Errorf("key B: %d, want 401", w.Code)
	}
	if w := do(auth, bearerRequest(signFor(t, p.a, p.issuer))); w.Code != http.StatusOK {
		t.Errorf("key A: %d %s", w.Code, w.Body)
	}
	if n := p.count(metadataPath); n != 0 {
		t.Errorf("metadata fetched %d times, want never", n)
	}
	if n := p.count("/jwks-v1"); n != 2 {
		t.Errorf("/jwks-v1 fetched %d times, want 2 (New, the unknown kid)", n)
	}
}

// TestJWKSURIRotationBadMetadata: new metadata that fails Discover's rules,
// or cannot be read, changes nothing: the old jwks_uri is fetched again,
// its keys keep working, the unknown kid is still refused, and the warning
// holds no token.
func TestJWKSURIRotationBadMetadata(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  func(issuer string) map[string]any // nil document: status 500
		want string                             // in the warning
	}{
		{"another issuer", func(iss string) map[string]any {
			return map[string]any{"issuer": "https://evil.example", "jwks_uri": iss + "/jwks-v2"}
		}, "names issuer"},
		{"http jwks_uri from an https issuer", func(iss string) map[string]any {
			return map[string]any{"issuer": iss, "jwks_uri": "http" + strings.TrimPrefix(iss, "https") + "/jwks-v2"}
		}, "plain http from an https issuer's metadata"},
		{"relative jwks_uri", func(iss string) map[string]any {
			return map[string]any{"issuer": iss, "jwks_uri": "/jwks-v2"}
		}, "not an http(s) URL"},
		{"no jwks_uri", func(iss string) map[string]any {
			return map[string]any{"issuer": iss}
		}, "publishes no jwks_uri"},
		{"metadata unavailable", nil, "status 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRotatingIdP(t)
			var logs syncBuffer
			auth := p.authenticator(t, &logs, nil)
			if tc.doc == nil {
				p.setMetadata(nil)
			} else {
				p.setMetadata(tc.doc(p.issuer))
			}
			tokB := signFor(t, p.b, p.issuer)
			if w := do(auth, bearerRequest(tokB)); w.Code != http.StatusUnauthorized {
				t.Errorf("key B: %d, want 401", w.Code)
			}
			if w := do(auth, bearerRequest(signFor(t, p.a, p.issuer))); w.Code != http.StatusOK {
				t.Errorf("key A after bad metadata: %d %s", w.Code, w.Body)
			}
			if got := auth.JWKSURL(); got != p.issuer+"/jwks-v1" {
				t.Errorf("JWKSURL() = %q, want the old jwks_uri", got)
			}
			if n, m := p.count("/jwks-v1"), p.count("/jwks-v2"); n != 2 || m != 0 {
				t.Errorf("/jwks-v1 fetched %d times (want 2), /jwks-v2 %d (want 0)", n, m)
			}
			out := logs.String()
			if !strings.Contains(out, "level=WARN") || !strings.Contains(out, tc.want) || !strings.Contains(out, p.issuer+"/jwks-v1") {
				t.Errorf("log %s; want a warning saying %q and naming the jwks_uri kept", out, tc.want)
			}
			if strings.Contains(out, tokB) || strings.Contains(out, strings.Split(tokB, ".")[2]) {
				t.Error("the log holds the token")
			}
		})
	}
}

// TestJWKSURIRotationBounded: the metadata is re-read only inside a key
// refresh, so tokens with invented kids cause no more metadata requests
// than JWKS requests: one of each per JWKSMinRefreshInterval, and one of
// each per merged refresh when the interval allows every one. A server
// that serves its metadata at the RFC 8414 location only costs no second
// request: the location found is the one read again.
func TestJWKSURIRotationBounded(t *testing.T) {
	for _, rfc8414 := range []bool{false, true} {
		t.Run(fmt.Sprintf("default interval, RFC 8414 location only %v", rfc8414), func(t *testing.T) {
			p := newRotatingIdP(t)
			p.rfc8414.Store(rfc8414)
			auth := p.authenticator(t, nil, nil)
			meta, keys := p.metadataRequests(), p.count("/jwks-v1")
			for i := range 30 {
				k := newECKey(t, fmt.Sprintf("random-%d", i))
				if w := do(auth, bearerRequest(signFor(t, k, p.issuer))); w.Code != http.StatusUnauthorized {
					t.Fatalf("random kid: %d", w.Code)
				}
			}
			if dm, dk := p.metadataRequests()-meta, p.count("/jwks-v1")-keys; dm != 1 || dk != 1 {
				t.Errorf("%d metadata and %d JWKS requests for 30 random kids, want 1 and 1", dm, dk)
			}
		})
		t.Run(fmt.Sprintf("every refresh allowed, RFC 8414 location only %v", rfc8414), func(t *testing.T) {
			p := newRotatingIdP(t)
			p.rfc8414.Store(rfc8414)
			auth := p.authenticator(t, nil, func(cfg *middleware.Config) { cfg.JWKSMinRefreshInterval = time.Nanosecond })
			meta, keys := p.metadataRequests(), p.count("/jwks-v1")
			k := newECKey(t, "random")
			var wg sync.WaitGroup
			for i := range 40 {
				tok := authtest.SignWith(t, k, jwt.MapClaims{"iss": p.issuer, "aud": "api", "sub": "alice", "exp": time.Now().Add(time.Minute).Unix()}, map[string]any{"kid": fmt.Sprintf("random-%d", i)})
				wg.Go(func() { do(auth, bearerRequest(tok)) })
			}
			wg.Wait()
			dm, dk := p.metadataRequests()-meta, p.count("/jwks-v1")-keys
			if dk < 1 || dm != dk {
				t.Errorf("%d metadata and %d JWKS requests, want as many metadata requests as JWKS ones (at least 1)", dm, dk)
			}
		})
	}
}

package middleware_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
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

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

func TestRequestShapes(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, nil)
	tok := is.Token(t, "alice", nil)
	const origin = "https://app.example.com"
	tests := []struct {
		name      string
		method    string
		target    string
		headers   map[string][]string
		cookies   []string // raw Cookie header values
		status    int
		challenge string // exact WWW-Authenticate, or error code with "error="
		source    principal.Source
	}{
		{name: "no token", status: 401, challenge: `Bearer realm="todo-api"`},
		{name: "bearer header", headers: h("Authorization", "Bearer "+tok), status: 200, source: principal.SourceHeader},
		{name: "scheme lower case", headers: h("Authorization", "bearer "+tok), status: 200, source: principal.SourceHeader},
		{name: "scheme upper case", headers: h("Authorization", "BEARER "+tok), status: 200, source: principal.SourceHeader},
		{name: "several spaces", headers: h("Authorization", "Bearer   "+tok), status: 200, source: principal.SourceHeader},
		{name: "two Authorization headers", headers: map[string][]string{"Authorization": {"Bearer " + tok, "Bearer " + tok}}, status: 400, challenge: "error=invalid_request"},
		{name: "Basic scheme", headers: h("Authorization", "Basic YWxpY2U6YWxpY2U="), status: 400, challenge: "error=invalid_request"},
		{name: "Bearer without token", headers: h("Authorization", "Bearer"), status: 400, challenge: "error=invalid_request"},
		{name: "Bearer with only spaces", headers: h("Authorization", "Bearer    "), status: 400, challenge: "error=invalid_request"},
		{name: "empty header", headers: h("Authorization", ""), status: 400, challenge: "error=invalid_request"},
		{name: "tab separator", headers: h("Authorization", "Bearer\t"+tok), status: 400, challenge: "error=invalid_request"},
		{name: "token with comma", headers: h("Authorization", "Bearer a,b"), status: 400, challenge: "error=invalid_request"},
		{name: "token in query", target: "/todos?access_token=" + tok, status: 400, challenge: "error=invalid_request"},
		{name: "cookie with X-CSRF", headers: h("X-Csrf", "1"), cookies: []string{"__Host-access_token=" + tok}, status: 200, source: principal.SourceCookie},
		{name: "second cookie name", headers: h("X-Csrf", "1"), cookies: []string{"__Secure-access_token=" + tok}, status: 200, source: principal.SourceCookie},
		{name: "cookie without X-CSRF", cookies: []string{"__Host-access_token=" + tok}, status: 400, challenge: "error=invalid_request"},
		{name: "cookie with X-CSRF 0", headers: h("X-Csrf", "0"), cookies: []string{"__Host-access_token=" + tok}, status: 400, challenge: "error=invalid_request"},
		{name: "cookie POST from allowed origin", method: "POST", headers: map[string][]string{"X-Csrf": {"1"}, "Origin": {origin}}, cookies: []string{"__Host-access_token=" + tok}, status: 200, source: principal.SourceCookie},
		{name: "cookie POST without Origin", method: "POST", headers: h("X-Csrf", "1"), cookies: []string{"__Host-access_token=" + tok}, status: 400, challenge: "error=invalid_request"},
		{name: "cookie DELETE from other origin", method: "DELETE", headers: map[string][]string{"X-Csrf": {"1"}, "Origin": {"https://evil.example"}}, cookies: []string{"__Host-access_token=" + tok}, status: 400, challenge: "error=invalid_request"},
		{name: "cookie PATCH from null origin", method: "PATCH", headers: map[string][]string{"X-Csrf": {"1"}, "Origin": {"null"}}, cookies: []string{"__Host-access_token=" + tok}, status: 400, challenge: "error=invalid_request"},
		{name: "header wins over cookie", headers: h("Authorization", "Bearer "+tok), cookies: []string{"__Host-access_token=garbage"}, status: 200, source: principal.SourceHeader},
		{name: "two different cookies of one name", headers: h("X-Csrf", "1"), cookies: []string{"__Host-access_token=" + tok + "; __Host-access_token=other"}, status: 400, challenge: "error=invalid_request"},
		{name: "unconfigured cookie name", headers: h("X-Csrf", "1"), cookies: []string{"access_token=" + tok}, status: 401, challenge: `Bearer realm="todo-api"`},
		{name: "empty cookie", headers: h("X-Csrf", "1"), cookies: []string{"__Host-access_token="}, status: 401, challenge: `Bearer realm="todo-api"`},
		{name: "bad cookie token", headers: h("X-Csrf", "1"), cookies: []string{"__Host-access_token=not-a-jwt"}, status: 401, challenge: "error=invalid_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			target := tt.target
			if target == "" {
				target = "/todos"
			}
			r := httptest.NewRequest(method, target, nil)
			for k, vs := range tt.headers {
				for _, v := range vs {
					r.Header.Add(k, v)
				}
			}
			for _, c := range tt.cookies {
				r.Header.Add("Cookie", c)
			}
			var got principal.Principal
			w := httptest.NewRecorder()
			a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ = principal.From(r.Context())
			})).ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status = %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.status == 200 {
				if got.Subject != "alice" || got.Source != tt.source || !got.HasScope("read") || got.TokenHash() != introspection.HashToken(got.RawToken()).Short() || got.RawToken() == "" {
					t.Fatalf("principal = %+v", got)
				}
				return
			}
			ch := w.Header().Get("WWW-Authenticate")
			if code, ok := strings.CutPrefix(tt.challenge, "error="); ok {
				if errorCode(ch) != code {
					t.Fatalf("challenge %q, want error %q", ch, code)
				}
			} else if ch != tt.challenge {
				t.Fatalf("challenge %q, want %q", ch, tt.challenge)
			}
			problem(t, w)
			if strings.Contains(w.Body.String(), tok[:30]) {
				t.Fatal("answer echoes the token")
			}
		})
	}
}

func h(k, v string) map[string][]string { return map[string][]string{k: {v}} }

func TestErrorsIs(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, nil)
	expired := is.Token(t, "alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })
	for _, tc := range []struct {
		r    *http.Request
		want error
	}{
		{httptest.NewRequest("GET", "/", nil), middleware.ErrNoToken},
		{bearerRequest("a b"), middleware.ErrMalformed},
		{bearerRequest(expired), middleware.ErrInvalidToken},
	} {
		_, err := a.Authenticate(tc.r)
		if !errors.Is(err, tc.want) {
			t.Errorf("err = %v, want %v", err, tc.want)
		}
		for _, other := range []error{middleware.ErrNoToken, middleware.ErrMalformed, middleware.ErrInvalidToken, middleware.ErrScope, middleware.ErrUnavailable} {
			if other != tc.want && errors.Is(err, other) {
				t.Errorf("err %v also matches %v", err, other)
			}
		}
	}
}

func TestRequireScopes(t *testing.T) {
	is := authtest.NewIssuer(t, authtest.WithScopes("todos:read", "todos:write"))
	a := mustAuthenticator(t, is, nil)
	h := a.Require(a.RequireScopes("todos:write")(echoSubject))
	readOnly := is.Token(t, "alice", func(c jwt.MapClaims) { c["scope"] = "todos:read" })
	scp := is.Token(t, "alice", func(c jwt.MapClaims) { delete(c, "scope"); c["scp"] = []string{"todos:write"} })
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"scope string has it", is.Token(t, "alice", nil), 200},
		{"scp array has it", scp, 200},
		{"read only", readOnly, 403},
		{"no scope at all", is.Token(t, "alice", func(c jwt.MapClaims) { delete(c, "scope") }), 403},
		{"prefix is not the scope", is.Token(t, "alice", func(c jwt.MapClaims) { c["scope"] = "todos:writer todos" }), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, bearerRequest(tc.token))
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if tc.status == 403 {
				ch := w.Header().Get("WWW-Authenticate")
				if errorCode(ch) != "insufficient_scope" || !strings.Contains(ch, `scope="todos:write"`) {
					t.Fatalf("challenge %q", ch)
				}
				problem(t, w)
			}
		})
	}
}

// TestKeyRotation: a new kid is accepted after an on-demand refresh, and a
// removed key is refused after the next refresh.
func TestKeyRotation(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.JWKSMinRefreshInterval = 50 * time.Millisecond
		c.CacheSize = -1
	})
	old := is.KeyFor("RS256")
	oldTok := is.Token(t, "alice", nil)
	if w := do(a, bearerRequest(oldTok)); w.Code != 200 {
		t.Fatalf("before rotation: %d", w.Code)
	}
	is.AddKey(t, "RS256")
	before := is.JWKSFetches()
	newTok := is.Token(t, "alice", nil)
	if w := do(a, bearerRequest(newTok)); w.Code != 200 {
		t.Fatalf("new kid after rotation: %d %s", w.Code, w.Body)
	}
	if got := is.JWKSFetches() - before; got != 1 {
		t.Fatalf("new kid caused %d fetches, want 1", got)
	}
	is.RemoveKey(old.KID)
	time.Sleep(60 * time.Millisecond)
	// An unknown kid triggers the refresh that drops the old key.
	do(a, bearerRequest(is.Sign(t, "RS256", is.Claims("alice"), map[string]any{"kid": "unknown"})))
	if w := do(a, bearerRequest(oldTok)); w.Code != 401 {
		t.Fatalf("removed key still accepted: %d", w.Code)
	}
}

// TestUnknownKIDFlood: a flood of random kids costs at most a couple of
// JWKS fetches, and no request waits for the limiter.
func TestUnknownKIDFlood(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, nil)
	before := is.JWKSFetches()
	var wg sync.WaitGroup
	var refused atomic.Int64
	start := time.Now()
	for range 500 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := is.Sign(t, "ES256", is.Claims("mallory"), map[string]any{"kid": rand.Text()})
			if w := do(a, bearerRequest(tok)); w.Code == 401 {
				refused.Add(1)
			}
		}()
	}
	wg.Wait()
	if refused.Load() != 500 {
		t.Fatalf("%d of 500 refused", refused.Load())
	}
	if got := is.JWKSFetches() - before; got > 2 {
		t.Fatalf("flood caused %d JWKS fetches, want at most 2", got)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("flood took %v: requests waited on the limiter", d)
	}
	// Genuine tokens still pass during the flood.
	if w := do(a, bearerRequest(is.Token(t, "alice", nil))); w.Code != 200 {
		t.Fatalf("valid token after flood: %d", w.Code)
	}
}

// TestJWKSDown: keys loaded before the key server went down keep working;
// an Authenticator with LazyKeys that never loaded keys answers 503 with
// Retry-After.
func TestJWKSDown(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, func(c *middleware.Config) { c.CacheSize = -1; c.JWKSRefreshInterval = 20 * time.Millisecond })
	is.SetDown(true)
	time.Sleep(100 * time.Millisecond) // several failed periodic refreshes
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		if w := do(a, bearerRequest(is.Sign(t, alg, is.Claims("alice"), nil))); w.Code != 200 {
			t.Fatalf("%s while JWKS down: %d", alg, w.Code)
		}
	}
	// An unknown kid cannot be looked up now: 503, not 401.
	w := do(a, bearerRequest(is.Sign(t, "RS256", is.Claims("alice"), map[string]any{"kid": "new"})))
	if w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Fatalf("unknown kid while JWKS down: %d", w.Code)
	}

	down := authtest.NewIssuer(t)
	down.SetDown(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// LazyKeys: New returns without keys instead of failing.
	b, err := middleware.New(ctx, middleware.Config{Issuer: down.URL, Audiences: []string{authtest.Audience}, LazyKeys: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	if b.Ready(ctx) == nil {
		t.Fatal("ready without keys")
	}
	for range 3 {
		w := do(b, bearerRequest(down.Token(t, "alice", nil)))
		if w.Code != 503 || w.Header().Get("Retry-After") != "5" || w.Header().Get("WWW-Authenticate") != "" {
			t.Fatalf("no keys: %d %v", w.Code, w.Header())
		}
		problem(t, w)
	}
	down.SetDown(false)
	waitReady(t, b)
	if w := do(b, bearerRequest(down.Token(t, "alice", nil))); w.Code != 200 {
		t.Fatalf("after recovery: %d", w.Code)
	}
}

// TestJWKSOneBadKey: unusable keys in the set are skipped, not fatal.
func TestJWKSOneBadKey(t *testing.T) {
	is := authtest.NewIssuer(t)
	is.AddRawJWK(`{"kty":"RSA","kid":"broken","n":"!!!","e":"AQAB"}`)
	is.AddRawJWK(`{"kty":"EC","kid":"odd-curve","crv":"P-192","x":"AA","y":"AA"}`)
	is.AddRawJWK(`{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}`)
	is.AddRawJWK(`{"kty":"RSA","kid":"typed","n":5}`)
	is.AddRawJWK(`"not an object"`)
	a := mustAuthenticator(t, is, nil)
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		if w := do(a, bearerRequest(is.Sign(t, alg, is.Claims("alice"), nil))); w.Code != 200 {
			t.Fatalf("%s next to broken keys: %d %s", alg, w.Code, w.Body)
		}
	}
}

// TestJWKSKeyOps: a key whose key_ops (RFC 7517 §4.3) leaves out
// "verify" was published for another operation and verifies nothing; one
// that lists "verify", or has no key_ops, does (RFC 8725 §3.1 asks for keys
// to be used only as their parameters allow).
func TestJWKSKeyOps(t *testing.T) {
	tests := []struct {
		name string
		ops  any // nil: no key_ops member
		ok   bool
	}{
		{"no key_ops", nil, true},
		{"verify", []string{"verify"}, true},
		{"sign and verify", []string{"sign", "verify"}, true},
		{"sign only", []string{"sign"}, false},
		{"encrypt", []string{"encrypt"}, false},
		{"empty", []string{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := authtest.NewIssuer(t)
			priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			k := &authtest.Key{KID: "ops", Alg: "ES256", Private: priv}
			jwk := authtest.PublicJWK(k)
			if tt.ops != nil {
				jwk["key_ops"] = tt.ops
			}
			raw, err := json.Marshal(jwk)
			if err != nil {
				t.Fatal(err)
			}
			is.AddRawJWK(string(raw))
			a := mustAuthenticator(t, is, nil)
			w := do(a, bearerRequest(authtest.SignWith(t, k, is.Claims("alice"), nil)))
			if (w.Code == 200) != tt.ok {
				t.Fatalf("key_ops %v: %d %s", tt.ops, w.Code, w.Body)
			}
		})
	}
}

func TestNoKID(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, func(c *middleware.Config) { c.JWKSMinRefreshInterval = time.Millisecond })
	tok := is.Sign(t, "ES256", is.Claims("alice"), map[string]any{"kid": nil})
	if w := do(a, bearerRequest(tok)); w.Code != 200 {
		t.Fatalf("no kid, one ES256 key: %d", w.Code)
	}
	is.AddKey(t, "ES256")
	// Force a refresh so the second ES256 key is known.
	do(a, bearerRequest(is.Sign(t, "ES256", is.Claims("alice"), map[string]any{"kid": "refresh-me"})))
	tok2 := is.Sign(t, "ES256", is.Claims("alice"), map[string]any{"kid": nil})
	if w := do(a, bearerRequest(tok2)); w.Code != 401 {
		t.Fatalf("no kid, two ES256 keys: %d", w.Code)
	}
}

func TestHMAC(t *testing.T) {
	is := authtest.NewIssuer(t)
	secret := []byte("a-shared-secret-of-at-least-32-bytes!")
	a := mustAuthenticator(t, is, func(c *middleware.Config) { c.HMACSecret = secret })
	hs := func(key []byte, alg *jwt.SigningMethodHMAC) string {
		s, err := jwt.NewWithClaims(alg, is.Claims("alice")).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"HS256 with the secret", hs(secret, jwt.SigningMethodHS256), 200},
		{"HS256 with another secret", hs([]byte("another-secret-another-secret-another"), jwt.SigningMethodHS256), 401},
		{"HS512 with the secret", hs(secret, jwt.SigningMethodHS512), 401},
		{"RS256 from the JWKS", is.Token(t, "alice", nil), 401},
	} {
		if w := do(a, bearerRequest(tc.token)); w.Code != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.status)
		}
	}
	if is.JWKSFetches() != 0 {
		t.Errorf("HMAC mode fetched the JWKS %d times", is.JWKSFetches())
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  middleware.Config
		want []string
	}{
		{"empty", middleware.Config{}, []string{"Issuer is required", "Audiences is required"}},
		{"none", middleware.Config{Issuer: "https://i", Audiences: []string{"a"}, JWKSURL: "https://i/jwks", Algorithms: []string{"none"}}, []string{`"none" is never accepted`}},
		{"HS without secret", middleware.Config{Issuer: "https://i", Audiences: []string{"a"}, JWKSURL: "https://i/jwks", Algorithms: []string{"HS256"}}, []string{"needs HMACSecret"}},
		{"short secret", middleware.Config{Issuer: "https://i", Audiences: []string{"a"}, HMACSecret: []byte("short")}, []string{"at least 32 bytes"}},
		{"bad origin", middleware.Config{Issuer: "https://i", Audiences: []string{"a"}, JWKSURL: "https://i/jwks", AllowedOrigins: []string{"app.example.com"}}, []string{"not an origin"}},
		{"bad jwks url", middleware.Config{Issuer: "https://i", Audiences: []string{"a"}, JWKSURL: "ftp://x"}, []string{"JWKSURL"}},
		{"unknown alg", middleware.Config{Issuer: "https://i", Audiences: []string{"a"}, JWKSURL: "https://i/jwks", Algorithms: []string{"RS1"}}, []string{"unknown algorithm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := middleware.New(context.Background(), tc.cfg)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestDiscovery(t *testing.T) {
	is := authtest.NewIssuer(t)
	md, err := middleware.Discover(context.Background(), nil, is.URL)
	if err != nil || md.JWKSURI != is.URL+"/jwks" {
		t.Fatalf("Discover = %+v, %v", md, err)
	}
	// RFC 8414 only, issuer with a path.
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/oauth-authorization-server/tenant" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, `{"issuer":"`+srv.URL+`/tenant","jwks_uri":"`+srv.URL+`/keys"}`)
	}))
	defer srv.Close()
	md, err = middleware.Discover(context.Background(), nil, srv.URL+"/tenant")
	if err != nil || md.JWKSURI != srv.URL+"/keys" {
		t.Fatalf("RFC 8414 Discover = %+v, %v", md, err)
	}
	// A document naming another issuer is refused.
	if _, err := middleware.Discover(context.Background(), nil, is.URL+"/"); err == nil || !strings.Contains(err.Error(), "want exactly") {
		t.Fatalf("issuer mismatch: %v", err)
	}
	if _, err := middleware.Discover(context.Background(), nil, "not a url"); err == nil {
		t.Fatal("bad issuer accepted")
	}
	// New uses discovery when JWKSURL is empty.
	a := mustAuthenticator(t, is, nil)
	if a.JWKSURL() != is.URL+"/jwks" {
		t.Fatalf("JWKSURL = %q", a.JWKSURL())
	}
}

func TestCache(t *testing.T) {
	is := authtest.NewIssuer(t)
	now := time.Now()
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	var outcomes []middleware.Outcome
	var mu sync.Mutex
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Now = func() time.Time { return time.Unix(0, clock.Load()) }
		c.OnOutcome = func(o middleware.Outcome) { mu.Lock(); outcomes = append(outcomes, o); mu.Unlock() }
		c.CacheMaxAge = time.Hour
	})
	tok := is.Token(t, "alice", func(c jwt.MapClaims) { c["exp"] = now.Add(2 * time.Minute).Unix() })
	for range 3 {
		if w := do(a, bearerRequest(tok)); w.Code != 200 {
			t.Fatalf("status %d", w.Code)
		}
	}
	mu.Lock()
	if len(outcomes) != 3 || outcomes[0].Cached || !outcomes[1].Cached || !outcomes[2].Cached {
		t.Fatalf("outcomes %+v", outcomes)
	}
	mu.Unlock()
	// Past exp (and the skew) the cache no longer answers, and the token is refused.
	clock.Store(now.Add(4 * time.Minute).UnixNano())
	if w := do(a, bearerRequest(tok)); w.Code != 401 {
		t.Fatalf("expired cached token: %d", w.Code)
	}
	mu.Lock()
	last := outcomes[len(outcomes)-1]
	mu.Unlock()
	if last.Cached || last.Reason != middleware.ReasonExpired {
		t.Fatalf("last outcome %+v", last)
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestLogsNoToken: refusals are logged with a reason and a short hash,
// never the token.
func TestLogsNoToken(t *testing.T) {
	is := authtest.NewIssuer(t)
	var buf strings.Builder
	var mu sync.Mutex
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))
	})
	expired := is.Token(t, "alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })
	do(a, bearerRequest(expired))
	mu.Lock()
	defer mu.Unlock()
	out := buf.String()
	if !strings.Contains(out, `"reason":"expired"`) || !strings.Contains(out, "token_sha256") {
		t.Fatalf("log lacks reason or hash: %s", out)
	}
	for _, part := range strings.Split(expired, ".") {
		if strings.Contains(out, part) {
			t.Fatalf("log contains part of the token: %s", out)
		}
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

package middleware_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// introspectingAuthenticator uses is's /introspect, found by discovery,
// and passes the discovered metadata on to New.
func introspectingAuthenticator(tb testing.TB, is *authtest.Issuer, mode middleware.Mode, edit func(*introspection.Client)) *middleware.Authenticator {
	tb.Helper()
	is.EnableIntrospection()
	md, endpoint := discoverIntrospection(tb, is)
	ic := &introspection.Client{
		Endpoint:     endpoint,
		ClientID:     authtest.IntrospectionClientID,
		ClientSecret: authtest.IntrospectionClientSecret,
		Timeout:      300 * time.Millisecond,
		Logger:       quiet(),
	}
	if edit != nil {
		edit(ic)
	}
	return mustAuthenticator(tb, is, func(c *middleware.Config) {
		c.Mode = mode
		c.Introspector = ic
		c.Metadata = md
	})
}

// discoverIntrospection discovers is's metadata the way a program does
// before building its introspection client.
func discoverIntrospection(tb testing.TB, is *authtest.Issuer) (*middleware.Metadata, string) {
	tb.Helper()
	md, err := middleware.Discover(context.Background(), nil, is.URL)
	if err != nil {
		tb.Fatal(err)
	}
	endpoint, err := md.IntrospectionURL()
	if err != nil {
		tb.Fatal(err)
	}
	return md, endpoint
}

func TestIntrospectionMode(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := introspectingAuthenticator(t, is, middleware.ModeIntrospection, func(c *introspection.Client) { c.CacheTTL = -1; c.InactiveCacheTTL = -1 })
	revoked := is.OpaqueToken("alice", nil)
	is.Revoke(revoked)
	tests := []struct {
		name      string
		token     string
		behaviour authtest.Behaviour
		status    int
		code      string
	}{
		{name: "active opaque", token: is.OpaqueToken("alice", nil), status: 200},
		{name: "active JWT", token: is.Token(t, "alice", nil), status: 200},
		{name: "unknown", token: "unknown-token", status: 401, code: "invalid_token"},
		{name: "revoked", token: revoked, status: 401, code: "invalid_token"},
		{name: "expired", token: is.OpaqueToken("alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), status: 401, code: "invalid_token"},
		{name: "nbf ahead", token: is.OpaqueToken("alice", func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), status: 401, code: "invalid_token"},
		{name: "other issuer", token: is.OpaqueToken("alice", func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), status: 401, code: "invalid_token"},
		{name: "other audience", token: is.OpaqueToken("alice", func(c jwt.MapClaims) { c["aud"] = []string{"billing"} }), status: 401, code: "invalid_token"},
		{name: "no audience is fine", token: is.OpaqueToken("alice", func(c jwt.MapClaims) { delete(c, "aud") }), status: 200},
		{name: "no subject", token: is.OpaqueToken("alice", func(c jwt.MapClaims) { delete(c, "sub") }), status: 401, code: "invalid_token"},
		{name: "server failing", token: is.OpaqueToken("alice", nil), behaviour: authtest.Fail, status: 503},
		{name: "server slow", token: is.OpaqueToken("alice", nil), behaviour: authtest.Slow, status: 503},
		{name: "garbage answer", token: is.OpaqueToken("alice", nil), behaviour: authtest.Garbage, status: 503},
		{name: "huge answer", token: is.OpaqueToken("alice", nil), behaviour: authtest.Huge, status: 503},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is.SetIntrospection(tt.behaviour)
			defer is.SetIntrospection(authtest.Normal)
			w := do(a, bearerRequest(tt.token))
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			switch tt.status {
			case 200:
				if w.Body.String() != "alice" {
					t.Fatalf("subject %q", w.Body)
				}
			case 503:
				if w.Header().Get("Retry-After") == "" || w.Header().Get("WWW-Authenticate") != "" {
					t.Fatalf("503 headers %v", w.Header())
				}
				problem(t, w)
			default:
				if c := errorCode(w.Header().Get("WWW-Authenticate")); c != tt.code {
					t.Fatalf("error %q, want %q", c, tt.code)
				}
				problem(t, w)
			}
		})
	}
}

func TestIntrospectionBadClientCredentials(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := introspectingAuthenticator(t, is, middleware.ModeIntrospection, func(c *introspection.Client) { c.ClientSecret = "wrong" })
	if w := do(a, bearerRequest(is.OpaqueToken("alice", nil))); w.Code != http.StatusServiceUnavailable {
		t.Fatalf("refused client credentials gave %d, want 503", w.Code)
	}
}

func TestHybridMode(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := introspectingAuthenticator(t, is, middleware.ModeHybrid, nil)
	calls := is.IntrospectionCalls()
	// A JWT is verified locally and never sent to the server.
	if w := do(a, bearerRequest(is.Token(t, "alice", nil))); w.Code != 200 {
		t.Fatalf("JWT: %d", w.Code)
	}
	if w := do(a, bearerRequest(is.Token(t, "alice", func(c jwt.MapClaims) { c["aud"] = "other" }))); w.Code != 401 {
		t.Fatalf("JWT with wrong aud: %d", w.Code)
	}
	if got := is.IntrospectionCalls() - calls; got != 0 {
		t.Fatalf("JWTs caused %d introspection calls", got)
	}
	// Opaque tokens and JWE-shaped tokens are introspected.
	if w := do(a, bearerRequest(is.OpaqueToken("bob", nil))); w.Code != 200 || w.Body.String() != "bob" {
		t.Fatalf("opaque: %d %s", w.Code, w.Body)
	}
	jwe := "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d"
	if w := do(a, bearerRequest(jwe)); w.Code != 401 {
		t.Fatalf("JWE: %d", w.Code)
	}
	if got := is.IntrospectionCalls() - calls; got != 2 {
		t.Fatalf("opaque and JWE caused %d introspection calls, want 2", got)
	}
	// Three segments whose header is not JSON: not a JWS, so introspected.
	if w := do(a, bearerRequest("abc.def.ghi")); w.Code != 401 {
		t.Fatalf("fake JWS: %d", w.Code)
	}
	if got := is.IntrospectionCalls() - calls; got != 3 {
		t.Fatalf("fake JWS not introspected: %d calls", got)
	}
}

// TestIntrospectionCoalescing: 1,000 concurrent requests with one uncached
// token cause exactly one introspection call.
func TestIntrospectionCoalescing(t *testing.T) {
	is := authtest.NewIssuer(t)
	is.SetSlowDelay(200 * time.Millisecond)
	a := introspectingAuthenticator(t, is, middleware.ModeIntrospection, func(c *introspection.Client) { c.Timeout = 10 * time.Second })
	tok := is.OpaqueToken("alice", nil)
	is.SetIntrospection(authtest.Slow) // hold the first call open while the others arrive
	before := is.IntrospectionCalls()
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if do(a, bearerRequest(tok)).Code == 200 {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1000 {
		t.Fatalf("%d of 1000 succeeded", ok.Load())
	}
	if got := is.IntrospectionCalls() - before; got != 1 {
		t.Fatalf("%d introspection calls, want 1", got)
	}
}

func TestIntrospectionConfig(t *testing.T) {
	is := authtest.NewIssuer(t)
	_, err := middleware.New(t.Context(), middleware.Config{Issuer: is.URL, Mode: middleware.ModeIntrospection})
	if err == nil || !strings.Contains(err.Error(), "needs an Introspector") {
		t.Fatalf("err = %v", err)
	}
	if _, err := middleware.ParseMode("opaque"); err == nil {
		t.Fatal("unknown mode accepted")
	}
}

// TestIntrospectionAnswerReuse checks that the middleware's own cache keeps
// an introspected answer no longer than the introspection client does: a
// revoked token works until the client's CacheTTL has passed since the
// server's answer, and not a moment after; with the client's cache off,
// revocation takes effect at the next request.
func TestIntrospectionAnswerReuse(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

	tests := []struct {
		name     string
		cacheTTL time.Duration
		// after revocation, how long the token still works
		stillWorks time.Duration
	}{
		{name: "client caches 60s", cacheTTL: 60 * time.Second, stillWorks: 59 * time.Second},
		{name: "client cache off", cacheTTL: -1, stillWorks: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := authtest.NewIssuer(t)
			is.EnableIntrospection()
			_, endpoint := discoverIntrospection(t, is)
			ic := &introspection.Client{
				Endpoint: endpoint,
				ClientID: authtest.IntrospectionClientID, ClientSecret: authtest.IntrospectionClientSecret,
				CacheTTL: tt.cacheTTL, InactiveCacheTTL: -1, Now: clock, Logger: quiet(),
			}
			a := mustAuthenticator(t, is, func(c *middleware.Config) {
				c.Mode = middleware.ModeIntrospection
				c.Introspector = ic
				c.Now = clock
			})
			tok := is.OpaqueToken("alice", nil)
			if code := do(a, bearerRequest(tok)).Code; code != 200 {
				t.Fatalf("first request: %d", code)
			}
			requests := ic.Stats().Requests
			if code := do(a, bearerRequest(tok)).Code; code != 200 {
				t.Fatalf("second request: %d", code)
			}
			if tt.cacheTTL > 0 && ic.Stats().Requests != requests {
				t.Errorf("a token seen again reached the introspection client; want an answer from the middleware's cache")
			}
			is.Revoke(tok)
			if tt.stillWorks > 0 {
				advance(tt.stillWorks)
				if code := do(a, bearerRequest(tok)).Code; code != 200 {
					t.Fatalf("within the client's CacheTTL: %d, want 200 (cached as configured)", code)
				}
			}
			advance(2 * time.Second)
			if code := do(a, bearerRequest(tok)).Code; code != 401 {
				t.Fatalf("after the client's CacheTTL: %d, want 401", code)
			}
		})
	}
}

// TestNewTakesIntrospectorAsGiven: New neither fills in nor validates an
// introspection client; discovery is the caller's, and a Metadata passed in
// is used instead of discovering again.
func TestNewTakesIntrospectorAsGiven(t *testing.T) {
	is := authtest.NewIssuer(t)
	is.EnableIntrospection()
	md, _ := discoverIntrospection(t, is)
	other := *md
	other.JWKSURI = is.URL + "/jwks?from=metadata" // served too, but not what discovery says

	tests := []struct {
		name     string
		mode     middleware.Mode
		metadata *middleware.Metadata
		wantErr  string
		wantJWKS string
	}{
		{name: "introspection, no metadata", mode: middleware.ModeIntrospection},
		{name: "hybrid discovers jwks_uri", mode: middleware.ModeHybrid, wantJWKS: is.URL + "/jwks"},
		{name: "hybrid uses the metadata given", mode: middleware.ModeHybrid, metadata: &other, wantJWKS: other.JWKSURI},
		{name: "metadata of another issuer", mode: middleware.ModeHybrid, metadata: &middleware.Metadata{Issuer: "https://evil.example", JWKSURI: is.URL + "/jwks"}, wantErr: "Metadata names issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ic := &introspection.Client{ClientID: authtest.IntrospectionClientID, Logger: quiet()}
			a, err := middleware.New(t.Context(), middleware.Config{
				Issuer: is.URL, Audiences: []string{authtest.Audience}, Mode: tt.mode,
				Introspector: ic, Metadata: tt.metadata, Logger: quiet(),
			})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ic.Endpoint != "" {
				t.Fatalf("New set the client's Endpoint to %q", ic.Endpoint)
			}
			if a.JWKSURL() != tt.wantJWKS {
				t.Fatalf("JWKSURL = %q, want %q", a.JWKSURL(), tt.wantJWKS)
			}
		})
	}
}

func TestMetadataIntrospectionURL(t *testing.T) {
	tests := []struct {
		md      middleware.Metadata
		want    string
		wantErr string
	}{
		{md: middleware.Metadata{Issuer: "https://idp.example", IntrospectionEndpoint: "https://idp.example/introspect"}, want: "https://idp.example/introspect"},
		{md: middleware.Metadata{Issuer: "https://idp.example"}, wantErr: `issuer "https://idp.example" publishes no introspection_endpoint`},
		{md: middleware.Metadata{Issuer: "https://idp.example", IntrospectionEndpoint: "ftp://idp.example/i"}, wantErr: "introspection_endpoint"},
	}
	for _, tt := range tests {
		got, err := tt.md.IntrospectionURL()
		if got != tt.want || (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%+v: got %q, %v; want %q, %q", tt.md, got, err, tt.want, tt.wantErr)
		}
	}
}

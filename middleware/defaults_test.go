package middleware_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// hangingServer answers no request: each waits until the test ends. It
// stands for a host that accepts connections and then says nothing.
func hangingServer(t *testing.T) *httptest.Server {
	t.Helper()
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(done); srv.Close() })
	return srv
}

// newWithin runs New and fails the test if it has not returned after a
// generous bound: New must never hang on a silent server.
func newWithin(t *testing.T, cfg middleware.Config) (*middleware.Authenticator, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	type result struct {
		a   *middleware.Authenticator
		err error
	}
	ch := make(chan result, 1)
	go func() {
		a, err := middleware.New(ctx, cfg)
		ch <- result{a, err}
	}()
	select {
	case r := <-ch:
		return r.a, r.err
	case <-time.After(20 * time.Second):
		t.Fatal("New still running after 20s: HTTPTimeout does not bound it")
		return nil, nil
	}
}

// TestCookiesOptIn: without CookieNames only the Authorization header is
// read; a cookie is a token source only when named.
func TestCookiesOptIn(t *testing.T) {
	is := authtest.NewIssuer(t)
	tok := is.Token(t, "alice", nil)
	tests := []struct {
		name    string
		cookies []string
		status  int
	}{
		{"default: header only", nil, 401},
		{"named cookie", []string{"__Host-access_token"}, 200},
		{"other name", []string{"session_token"}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustAuthenticator(t, is, func(c *middleware.Config) { c.CookieNames = tt.cookies }) // replaces the helper's names
			r := httptest.NewRequest(http.MethodGet, "/todos", nil)
			r.Header.Set("X-Csrf", "1")
			r.AddCookie(&http.Cookie{Name: "__Host-access_token", Value: tok})
			if w := do(a, r); w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
		})
	}
}

// TestNewFetchesKeys: New loads the signing keys before it returns, so a
// wrong or dead JWKS URL stops the program at start with one line, bounded
// by HTTPTimeout even with a caller's client that has no timeout.
func TestNewFetchesKeys(t *testing.T) {
	is := authtest.NewIssuer(t)
	down := authtest.NewIssuer(t)
	down.SetDown(true)
	hang := hangingServer(t)
	tests := []struct {
		name    string
		jwksURL string
		issuer  string
		want    string // in the error; empty: no error
	}{
		{"good", is.URL + "/jwks", is.URL, ""},
		{"wrong path", is.URL + "/no-such-jwks", is.URL, "status 404"},
		{"server down", down.URL + "/jwks", down.URL, "status 503"},
		{"silent server", hang.URL + "/jwks", is.URL, "deadline exceeded"},
		{"discovered, keys down", "", down.URL, "status 503"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := newWithin(t, middleware.Config{
				Issuer: tt.issuer, Audiences: []string{authtest.Audience}, JWKSURL: tt.jwksURL,
				HTTPClient: &http.Client{}, HTTPTimeout: 200 * time.Millisecond, Logger: quiet(),
			})
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := a.Ready(context.Background()); err != nil {
					t.Fatalf("New returned before the keys were loaded: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New succeeded without signing keys")
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.want) || !strings.Contains(msg, "signing keys") || strings.Contains(msg, "\n") {
				t.Fatalf("error %q: want one line about the signing keys containing %q", msg, tt.want)
			}
		})
	}
}

// TestDiscoveryBoundedByHTTPTimeout: discovery against a server that
// never answers ends after HTTPTimeout per request, even with a caller's
// client that has no timeout of its own.
func TestDiscoveryBoundedByHTTPTimeout(t *testing.T) {
	hang := hangingServer(t)
	_, err := newWithin(t, middleware.Config{
		Issuer: hang.URL, Audiences: []string{"api"},
		HTTPClient: &http.Client{}, HTTPTimeout: 100 * time.Millisecond, Logger: quiet(),
	})
	if err == nil || !strings.Contains(err.Error(), "deadline exceeded") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v, want one line naming the timeout", err)
	}
}

// TestCacheMaxAgeOff: a negative CacheMaxAge turns the verified-token
// cache off, like a negative CacheSize, instead of meaning the default.
func TestCacheMaxAgeOff(t *testing.T) {
	is := authtest.NewIssuer(t)
	tests := []struct {
		name       string
		edit       func(*middleware.Config)
		wantCached bool
	}{
		{"default", nil, true},
		{"CacheMaxAge -1", func(c *middleware.Config) { c.CacheMaxAge = -1 }, false},
		{"CacheSize -1", func(c *middleware.Config) { c.CacheSize = -1 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec outcomeRecorder
			a := mustAuthenticator(t, is, func(c *middleware.Config) {
				c.OnOutcome = rec.add
				if tt.edit != nil {
					tt.edit(c)
				}
			})
			tok := is.Token(t, "alice", nil)
			for range 2 {
				if w := do(a, bearerRequest(tok)); w.Code != 200 {
					t.Fatalf("status %d", w.Code)
				}
			}
			got := rec.all()
			if len(got) != 2 || got[1].Cached != tt.wantCached {
				t.Fatalf("outcomes %+v, want the second cached=%v", got, tt.wantCached)
			}
		})
	}
}

// TestClockSkewValues: 0 is the documented default (60s), a negative
// value none.
func TestClockSkewValues(t *testing.T) {
	is := authtest.NewIssuer(t)
	expired30s := is.Token(t, "alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-30 * time.Second).Unix() })
	tests := []struct {
		name   string
		skew   time.Duration
		status int
	}{
		{"zero is the default 60s", 0, 200},
		{"-1 is none", -1, 401},
		{"explicit 10s", 10 * time.Second, 401},
		{"explicit 2m", 2 * time.Minute, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := mustAuthenticator(t, is, func(c *middleware.Config) { c.ClockSkew = tt.skew })
			if w := do(a, bearerRequest(expired30s)); w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
		})
	}
}

// TestNegativeSettingsRefused: settings with no "off" meaning refuse a
// negative value rather than quietly taking the default.
func TestNegativeSettingsRefused(t *testing.T) {
	is := authtest.NewIssuer(t)
	tests := []struct {
		name string
		edit func(*middleware.Config)
		want string
	}{
		{"HTTPTimeout", func(c *middleware.Config) { c.HTTPTimeout = -time.Second }, "HTTPTimeout"},
		{"MaxTokenBytes", func(c *middleware.Config) { c.MaxTokenBytes = -1 }, "MaxTokenBytes"},
		{"JWKSRefreshInterval", func(c *middleware.Config) { c.JWKSRefreshInterval = -time.Minute }, "JWKSRefreshInterval"},
		{"JWKSMinRefreshInterval", func(c *middleware.Config) { c.JWKSMinRefreshInterval = -time.Second }, "JWKSMinRefreshInterval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := middleware.Config{Issuer: is.URL, Audiences: []string{authtest.Audience}, Logger: quiet()}
			tt.edit(&cfg)
			_, err := middleware.New(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %s", err, tt.want)
			}
		})
	}
}

type outcomeRecorder struct {
	mu  sync.Mutex
	got []middleware.Outcome
}

func (r *outcomeRecorder) add(o middleware.Outcome) {
	r.mu.Lock()
	r.got = append(r.got, o)
	r.mu.Unlock()
}
func (r *outcomeRecorder) all() []middleware.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]middleware.Outcome(nil), r.got...)
}

// TestOnOutcomeOncePerRequest: every request through Require and
// RequireScopes is reported exactly once, a 403 included.
func TestOnOutcomeOncePerRequest(t *testing.T) {
	is := authtest.NewIssuer(t)
	tests := []struct {
		name   string
		scope  string
		status int
		reason string
	}{
		{"allowed", "todos:write", 200, middleware.ReasonOK},
		{"missing scope", "todos:read", 403, middleware.ReasonOK},
		{"no token", "", 401, middleware.ReasonNoToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec outcomeRecorder
			a := mustAuthenticator(t, is, func(c *middleware.Config) { c.OnOutcome = rec.add })
			h := a.Require(a.RequireScopes("todos:write")(echoSubject))
			r := httptest.NewRequest(http.MethodGet, "/todos", nil)
			if tt.scope != "" {
				r.Header.Set("Authorization", "Bearer "+is.Token(t, "alice", func(c jwt.MapClaims) { c["scope"] = tt.scope }))
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			got := rec.all()
			if len(got) != 1 || got[0].Reason != tt.reason {
				t.Fatalf("outcomes %+v, want one with reason %q", got, tt.reason)
			}
		})
	}
}

// TestIssAudLogged: a refusal for iss or aud logs what was expected and
// what the token said, so a misconfiguration is fixed from one log line.
func TestIssAudLogged(t *testing.T) {
	is := authtest.NewIssuer(t)
	tests := []struct {
		name   string
		edit   func(jwt.MapClaims)
		reason string
		want   []string
	}{
		{"issuer", func(c jwt.MapClaims) { c["iss"] = "https://other.example/" }, "bad_issuer", []string{`https://other.example/`, is.URL}},
		{"audience", func(c jwt.MapClaims) { c["aud"] = []string{"billing", "reports"} }, "bad_audience", []string{"billing", "reports", authtest.Audience}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf strings.Builder
			var mu sync.Mutex
			a := mustAuthenticator(t, is, func(c *middleware.Config) {
				c.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))
			})
			tok := is.Token(t, "alice", tt.edit)
			if w := do(a, bearerRequest(tok)); w.Code != 401 {
				t.Fatalf("status %d", w.Code)
			}
			mu.Lock()
			out := buf.String()
			mu.Unlock()
			if !strings.Contains(out, `"reason":"`+tt.reason+`"`) {
				t.Fatalf("log lacks the reason: %s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Fatalf("log lacks %q: %s", w, out)
				}
			}
		})
	}
}

// TestWriteErrorAlwaysReason: the problem body carries a reason even for
// an error that did not come from Authenticate.
func TestWriteErrorAlwaysReason(t *testing.T) {
	tests := []struct {
		err    error
		status int
		reason string
	}{
		{errors.New("custom"), 401, middleware.ReasonBadToken},
		{middleware.ErrNoToken, 401, middleware.ReasonNoToken},
		{middleware.ErrScope, 403, middleware.ReasonScope},
		{middleware.ErrStepUp, 401, middleware.ReasonStepUp},
		{middleware.ErrUnavailable, 503, middleware.ReasonUnavailable},
	}
	for _, tt := range tests {
		w := httptest.NewRecorder()
		middleware.WriteError(w, httptest.NewRequest(http.MethodGet, "/", nil), tt.err)
		if w.Code != tt.status || problem(t, w)["reason"] != tt.reason {
			t.Errorf("%v: %d %s, want %d with reason %q", tt.err, w.Code, w.Body, tt.status, tt.reason)
		}
	}
}

// TestDefaultAlgorithmsIsACopy: what DefaultAlgorithms returns is the
// caller's; changing it changes nothing for anyone else.
func TestDefaultAlgorithmsIsACopy(t *testing.T) {
	a := middleware.DefaultAlgorithms()
	a[0] = "none"
	if b := middleware.DefaultAlgorithms(); b[0] != "RS256" {
		t.Fatalf("DefaultAlgorithms() = %v after a caller changed its copy", b)
	}
}

// TestIntrospectedIssAudLogged: the same for an introspection answer.
func TestIntrospectedIssAudLogged(t *testing.T) {
	is := authtest.NewIssuer(t)
	tests := []struct {
		name   string
		edit   func(jwt.MapClaims)
		reason string
		want   []string
	}{
		{"issuer", func(c jwt.MapClaims) { c["iss"] = "https://other.example/" }, "bad_issuer", []string{`https://other.example/`, is.URL}},
		{"audience", func(c jwt.MapClaims) { c["aud"] = "billing" }, "bad_audience", []string{"billing", authtest.Audience}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf strings.Builder
			var mu sync.Mutex
			is.EnableIntrospection()
			md, endpoint := discoverIntrospection(t, is)
			a := mustAuthenticator(t, is, func(c *middleware.Config) {
				c.Mode = middleware.ModeIntrospection
				c.Introspector = &introspection.Client{Endpoint: endpoint, ClientID: authtest.IntrospectionClientID, ClientSecret: authtest.IntrospectionClientSecret, Logger: quiet()}
				c.Metadata = md
				c.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))
			})
			if w := do(a, bearerRequest(is.OpaqueToken("alice", tt.edit))); w.Code != 401 {
				t.Fatalf("status %d", w.Code)
			}
			mu.Lock()
			out := buf.String()
			mu.Unlock()
			if !strings.Contains(out, `"reason":"`+tt.reason+`"`) {
				t.Fatalf("log lacks the reason: %s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Fatalf("log lacks %q: %s", w, out)
				}
			}
		})
	}
}

// TestParseNames: the settings' names parse in any case and with space
// around them, "" is the default, and anything else is an error naming
// the setting and every value it takes.
func TestParseNames(t *testing.T) {
	for _, tc := range []struct {
		parse   func(string) (string, error)
		in, out string
		err     string
	}{
		{func(s string) (string, error) { m, err := middleware.ParseMode(s); return string(m), err }, " Hybrid ", "hybrid", ""},
		{func(s string) (string, error) { m, err := middleware.ParseMode(s); return string(m), err }, "", "jwt", ""},
		{func(s string) (string, error) { m, err := middleware.ParseMode(s); return string(m), err }, "jwks", "", `unknown mode "jwks" (want jwt, introspection or hybrid)`},
		{func(s string) (string, error) { m, err := middleware.ParseDPoPMode(s); return string(m), err }, "REQUIRED", "required", ""},
		{func(s string) (string, error) { m, err := middleware.ParseDPoPMode(s); return string(m), err }, "on", "", `unknown DPoP mode "on" (want disabled, allowed or required)`},
		{func(s string) (string, error) { p, err := middleware.ParseProfile(s); return string(p), err }, "", "interoperable", ""},
		{func(s string) (string, error) { p, err := middleware.ParseProfile(s); return string(p), err }, "RFC9068", "rfc9068", ""},
		{func(s string) (string, error) { p, err := middleware.ParseProfile(s); return string(p), err }, "strict", "", `unknown profile "strict" (want interoperable or rfc9068)`},
	} {
		out, err := tc.parse(tc.in)
		if out != tc.out || (err == nil) != (tc.err == "") || (err != nil && !strings.HasSuffix(err.Error(), tc.err)) {
			t.Errorf("%q: %q %v, want %q %s", tc.in, out, err, tc.out, tc.err)
		}
	}
}

package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
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

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// tenantKey carries the tenant a request is for, as an outer middleware
// of the application would set it (from the host name, say).
type tenantKey struct{}

func withTenant(tenant string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tenantKey{}, tenant)))
	})
}

// checkTenant is a ValidateClaims function: the token's tenant claim must
// be the request's tenant; an "admin" route needs the admin role (403);
// tenant "down" stands for a tenant registry that cannot be reached (503).
func checkTenant(ctx context.Context, p principal.Principal) error {
	var c struct {
		Tenant string   `json:"tenant"`
		Roles  []string `json:"roles"`
	}
	if err := principal.DecodeClaims(p, &c); err != nil {
		return err
	}
	want, _ := ctx.Value(tenantKey{}).(string)
	switch {
	case want == "down":
		return fmt.Errorf("tenant registry: %w", middleware.ErrUnavailable)
	case c.Tenant != want:
		return fmt.Errorf("SECRET-DETAIL tenant %q is not %q", c.Tenant, want)
	case want == "admin-only" && !strings.Contains(strings.Join(c.Roles, " "), "admin"):
		return fmt.Errorf("SECRET-DETAIL no admin role: %w", middleware.ErrScope)
	}
	return nil
}

func TestValidateClaims(t *testing.T) {
	is := authtest.NewIssuer(t)
	var calls atomic.Int64
	var outcomes []middleware.Outcome
	var mu sync.Mutex
	var logs strings.Builder
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, nil))
		c.OnOutcome = func(o middleware.Outcome) { mu.Lock(); outcomes = append(outcomes, o); mu.Unlock() }
		c.ValidateClaims = func(ctx context.Context, p principal.Principal) error {
			calls.Add(1)
			return checkTenant(ctx, p)
		}
	})
	acme := is.Mint(t, "alice", authtest.WithClaims(func(c map[string]any) { c["tenant"] = "admin-only" }))
	plain := is.Mint(t, "bob", authtest.WithClaims(func(c map[string]any) { c["tenant"] = "acme" }))
	admin := is.Mint(t, "carol", authtest.WithClaims(func(c map[string]any) { c["tenant"] = "admin-only"; c["roles"] = []string{"admin"} }))
	tests := []struct {
		name, tenant, token string
		status              int
		code, reason        string
		cached              bool
	}{
		{name: "tenant matches", tenant: "acme", token: plain, status: 200, reason: middleware.ReasonOK},
		// The same token again: a cache hit, validated again for this
		// request's tenant.
		{name: "cached token, other tenant", tenant: "globex", token: plain, status: 401, code: "invalid_token", reason: middleware.ReasonClaims, cached: true},
		{name: "cached token, its tenant again", tenant: "acme", token: plain, status: 200, reason: middleware.ReasonOK, cached: true},
		{name: "validator answers 403 through ErrScope", tenant: "admin-only", token: acme, status: 403, code: "insufficient_scope", reason: middleware.ReasonClaims},
		{name: "403 from a cache hit", tenant: "admin-only", token: acme, status: 403, code: "insufficient_scope", reason: middleware.ReasonClaims, cached: true},
		{name: "admin passes", tenant: "admin-only", token: admin, status: 200, reason: middleware.ReasonOK},
		{name: "validator answers 503 through ErrUnavailable", tenant: "down", token: admin, status: 503, reason: middleware.ReasonUnavailable, cached: true},
		{name: "built-in checks come first", tenant: "acme", token: is.Token(t, "bob", func(c jwt.MapClaims) { c["tenant"] = "acme"; c["aud"] = "other" }), status: 401, code: "invalid_token", reason: middleware.ReasonAudience},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			outcomes = nil
			mu.Unlock()
			before := calls.Load()
			w := httptest.NewRecorder()
			withTenant(tt.tenant, a.Require(echoSubject)).ServeHTTP(w, bearerRequest(tt.token))
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if tt.reason != middleware.ReasonAudience && calls.Load() != before+1 {
				t.Errorf("validator ran %d times, want once", calls.Load()-before)
			}
			mu.Lock()
			if len(outcomes) != 1 || outcomes[0].Reason != tt.reason || outcomes[0].Cached != tt.cached {
				t.Errorf("outcomes %+v, want one with reason %s, cached %v", outcomes, tt.reason, tt.cached)
			}
			mu.Unlock()
			if tt.status == 200 {
				return
			}
			ch := w.Header().Get("WWW-Authenticate")
			if tt.status != 503 && (!strings.HasPrefix(ch, `Bearer realm="todo-api"`) || errorCode(ch) != tt.code) {
				t.Errorf("challenge %q, want realm todo-api and error %s", ch, tt.code)
			}
			if strings.Contains(ch, `scope=`) {
				t.Errorf("challenge %q names scopes the route did not ask for", ch)
			}
			if got := problem(t, w)["reason"]; got != tt.reason {
				t.Errorf("reason %v, want %s", got, tt.reason)
			}
			if strings.Contains(w.Body.String()+ch, "SECRET-DETAIL") || strings.Contains(w.Body.String(), "registry") {
				t.Errorf("the validator's error reached the client: %s %s", ch, w.Body)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "SECRET-DETAIL tenant") || !strings.Contains(logs.String(), `"reason":"claims_rejected"`) {
		t.Errorf("the validator's error is not logged: %s", logs.String())
	}
	for _, tok := range []string{plain, acme, admin} {
		for _, part := range strings.Split(tok, ".") {
			if strings.Contains(logs.String(), part) {
				t.Fatalf("log contains part of a token: %s", logs.String())
			}
		}
	}
}

// TestValidateClaimsIntrospection: the validator also judges introspected
// answers, and reads their exact numbers.
func TestValidateClaimsIntrospection(t *testing.T) {
	is := authtest.NewIssuer(t)
	is.EnableIntrospection()
	md, endpoint := discoverIntrospection(t, is)
	var got int64
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Mode = middleware.ModeIntrospection
		c.Metadata = md
		c.Introspector = &introspection.Client{Endpoint: endpoint, ClientID: authtest.IntrospectionClientID, ClientSecret: authtest.IntrospectionClientSecret, Logger: quiet()}
		c.ValidateClaims = func(_ context.Context, p principal.Principal) error {
			var c struct {
				Org int64 `json:"org"`
			}
			if err := principal.DecodeClaims(p, &c); err != nil {
				return err
			}
			if got = c.Org; c.Org != 9007199254740993 {
				return errors.New("wrong org")
			}
			return nil
		}
	})
	for _, tc := range []struct {
		org    any
		status int
	}{
		{json.Number("9007199254740993"), 200},
		{json.Number("9007199254740992"), 401}, // the same float64 as the one above
	} {
		tok := is.OpaqueToken("alice", func(c jwt.MapClaims) { c["org"] = tc.org })
		if w := do(a, bearerRequest(tok)); w.Code != tc.status {
			t.Errorf("org %v: status %d, want %d (validator saw %d)", tc.org, w.Code, tc.status, got)
		}
	}
}

func TestDecodeClaimsFromJWT(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, nil)
	tok := is.Mint(t, "alice", authtest.WithClaims(func(c map[string]any) {
		c["account"] = int64(9007199254740993)
		c["org"] = map[string]any{"id": json.Number("12345678901234567890")}
	}))
	var got struct {
		Account int64  `json:"account"`
		Org     any    `json:"org"`
		Sub     string `json:"sub"`
	}
	var rawToken string
	h := a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principal.From(r.Context())
		rawToken = p.RawToken()
		if err := principal.DecodeClaims(p, &got); err != nil {
			http.Error(w, err.Error(), 500)
		}
	}))
	for range 2 { // a fresh verification, then a cache hit
		w := httptest.NewRecorder()
		h.ServeHTTP(w, bearerRequest(tok))
		if w.Code != 200 {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if got.Account != 9007199254740993 || got.Sub != "alice" || fmt.Sprint(got.Org) != "map[id:12345678901234567890]" {
			t.Fatalf("decoded %+v", got)
		}
		if rawToken != tok {
			t.Fatalf("RawToken = %q, want the request's token", rawToken)
		}
	}
}

// customProblem is an ErrorHandler that writes its own body but keeps the
// status, challenge and reason of the default answer.
func customProblem(w http.ResponseWriter, r *http.Request, err error) {
	status, challenge := middleware.Challenge(err)
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"custom": middleware.Reason(err)})
}

func TestErrorHandler(t *testing.T) {
	is := authtest.NewIssuer(t)
	var seen []error
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			seen = append(seen, err)
			if errors.Is(err, middleware.ErrNoToken) {
				// The default answer, for the errors it does not customise.
				middleware.WriteError(w, r, err)
				return
			}
			customProblem(w, r, err)
		}
	})
	readOnly := is.Mint(t, "alice", authtest.WithScopes("read"))
	expired := is.Token(t, "alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })
	tests := []struct {
		name      string
		h         http.Handler
		token     string
		status    int
		challenge string
		body      string
	}{
		{"no token, default answer", a.Require(echoSubject), "", 401, `Bearer realm="todo-api"`, `"reason":"no_token"`},
		{"expired", a.Require(echoSubject), expired, 401, `Bearer realm="todo-api", error="invalid_token", error_description="token expired"`, `{"custom":"expired"}`},
		{"all-of scopes", a.Require(a.RequireScopes("write")(echoSubject)), readOnly, 403, `Bearer realm="todo-api", error="insufficient_scope", error_description="token lacks a required scope", scope="write"`, `{"custom":"insufficient_scope"}`},
		{"any-of scopes", a.Require(a.RequireAnyScope("write", "admin")(echoSubject)), readOnly, 403, `Bearer realm="todo-api", error="insufficient_scope", error_description="token lacks every accepted scope", scope="write admin"`, `{"custom":"insufficient_scope"}`},
		{"optional, bad token", a.Optional(echoSubject), expired, 401, `Bearer realm="todo-api", error="invalid_token", error_description="token expired"`, `{"custom":"expired"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			r := httptest.NewRequest("GET", "/", nil)
			if tt.token != "" {
				r = bearerRequest(tt.token)
			}
			w := httptest.NewRecorder()
			tt.h.ServeHTTP(w, r)
			if w.Code != tt.status || w.Header().Get("WWW-Authenticate") != tt.challenge || !strings.Contains(w.Body.String(), tt.body) {
				t.Fatalf("got %d %q %s\nwant %d %q %s", w.Code, w.Header().Get("WWW-Authenticate"), w.Body, tt.status, tt.challenge, tt.body)
			}
			if len(seen) != 1 {
				t.Fatalf("ErrorHandler ran %d times, want once", len(seen))
			}
		})
	}
}

// TestAuthenticatorWriteError: errors a caller builds itself, from the
// sentinels or the package-level checks, are answered with the realm.
func TestAuthenticatorWriteError(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, nil)
	p := principal.Principal{Subject: "alice", Scopes: []string{"read"}}
	tests := []struct {
		name      string
		err       error
		status    int
		challenge string
		reason    string
	}{
		{"sentinel ErrScope", middleware.ErrScope, 403, `Bearer realm="todo-api", error="insufficient_scope", error_description="insufficient scope"`, "insufficient_scope"},
		{"wrapped ErrInvalidToken", fmt.Errorf("mine: %w", middleware.ErrInvalidToken), 401, `Bearer realm="todo-api", error="invalid_token", error_description="invalid token"`, "malformed_token"},
		{"CheckScopes", middleware.CheckScopes(p, "read", "write"), 403, `Bearer realm="todo-api", error="insufficient_scope", error_description="token lacks a required scope", scope="read write"`, "insufficient_scope"},
		{"CheckAnyScope", middleware.CheckAnyScope(p, "write", "admin"), 403, `Bearer realm="todo-api", error="insufficient_scope", error_description="token lacks every accepted scope", scope="write admin"`, "insufficient_scope"},
		{"CheckScopes without a principal", middleware.CheckScopes(principal.Principal{}, "read"), 401, `Bearer realm="todo-api"`, "no_token"},
		{"unknown error", errors.New("SECRET-DETAIL"), 401, `Bearer realm="todo-api", error="invalid_token", error_description="invalid token"`, "malformed_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			a.WriteError(w, httptest.NewRequest("GET", "/", nil), tt.err)
			if w.Code != tt.status || w.Header().Get("WWW-Authenticate") != tt.challenge {
				t.Fatalf("got %d %q, want %d %q", w.Code, w.Header().Get("WWW-Authenticate"), tt.status, tt.challenge)
			}
			if got, _ := problem(t, w)["reason"].(string); got != tt.reason {
				t.Errorf("reason %q, want %q", got, tt.reason)
			}
			if strings.Contains(w.Body.String(), "SECRET") {
				t.Errorf("error text echoed: %s", w.Body)
			}
		})
	}
}

func TestPackageScopeChecks(t *testing.T) {
	p := principal.Principal{Subject: "alice", Scopes: []string{"read", "openid"}}
	tests := []struct {
		name    string
		err     error
		wantErr error
	}{
		{"all held", middleware.CheckScopes(p, "read", "openid"), nil},
		{"none asked", middleware.CheckScopes(p), nil},
		{"one missing", middleware.CheckScopes(p, "read", "write"), middleware.ErrScope},
		{"any: one held", middleware.CheckAnyScope(p, "write", "read"), nil},
		{"any: none held", middleware.CheckAnyScope(p, "write", "admin"), middleware.ErrScope},
		{"any: none asked", middleware.CheckAnyScope(p), middleware.ErrScope},
		{"no caller", middleware.CheckScopes(principal.Principal{}), middleware.ErrNoToken},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.wantErr) || (tt.wantErr == nil) != (tt.err == nil) {
			t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.wantErr)
		}
	}
}

func TestRequireAnyScope(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, nil)
	h := a.Require(a.RequireAnyScope("admin", "write")(echoSubject))
	tests := []struct {
		name   string
		scopes []string
		status int
	}{
		{"both", []string{"admin", "write"}, 200},
		{"first", []string{"admin"}, 200},
		{"second", []string{"read", "write"}, 200},
		{"neither", []string{"read"}, 403},
		{"none", nil, 403},
		{"prefix is not the scope", []string{"writer", "admi"}, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, bearerRequest(is.Mint(t, "alice", authtest.WithScopes(tt.scopes...))))
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d", w.Code, tt.status)
			}
			if tt.status == 403 && w.Header().Get("WWW-Authenticate") != `Bearer realm="todo-api", error="insufficient_scope", error_description="token lacks every accepted scope", scope="admin write"` {
				t.Fatalf("challenge %q", w.Header().Get("WWW-Authenticate"))
			}
		})
	}
	defer func() {
		if recover() == nil {
			t.Error("RequireAnyScope() with no scope would refuse everyone, and should panic at setup")
		}
	}()
	a.RequireAnyScope()
}

func TestOptional(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, nil)
	h := a.Optional(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := principal.From(r.Context()); ok {
			_, _ = io.WriteString(w, "hello "+p.Subject)
			return
		}
		_, _ = io.WriteString(w, "hello stranger")
	}))
	expired := is.Token(t, "alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })
	tests := []struct {
		name      string
		header    string
		status    int
		body      string
		challenge string
	}{
		{"no token", "", 200, "hello stranger", ""},
		{"valid token", "Bearer " + is.Token(t, "alice", nil), 200, "hello alice", ""},
		{"expired token", "Bearer " + expired, 401, "", `Bearer realm="todo-api", error="invalid_token", error_description="token expired"`},
		{"garbage token", "Bearer not-a-jwt", 401, "", `Bearer realm="todo-api", error="invalid_token", error_description="token is not a signed JWT"`},
		{"other scheme", "Basic YTpi", 400, "", `Bearer realm="todo-api", error="invalid_request", error_description="authorization scheme must be Bearer"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status || w.Header().Get("WWW-Authenticate") != tt.challenge {
				t.Fatalf("got %d %q, want %d %q", w.Code, w.Header().Get("WWW-Authenticate"), tt.status, tt.challenge)
			}
			if tt.status == 200 && w.Body.String() != tt.body {
				t.Fatalf("body %q, want %q", w.Body, tt.body)
			}
		})
	}
}

// TestOptionalValidatorWrappingErrNoToken: a token that ValidateClaims
// refused is a refused token, even when the validator's error wraps
// ErrNoToken: Optional answers 401 instead of serving the caller as
// anonymous.
func TestOptionalValidatorWrappingErrNoToken(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.ValidateClaims = func(context.Context, principal.Principal) error {
			return fmt.Errorf("banned: %w", middleware.ErrNoToken)
		}
	})
	served := false
	h := a.Optional(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served = true }))
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+is.Token(t, "alice", nil))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if served || w.Code != http.StatusUnauthorized {
		t.Fatalf("served=%v status %d, want a 401 without the handler", served, w.Code)
	}
	if got, _ := problem(t, w)["reason"].(string); got != middleware.ReasonClaims {
		t.Errorf("reason %q, want %q", got, middleware.ReasonClaims)
	}
}

// TestWriteErrorNil: WriteError without an error still refuses, with a
// reason other than "ok".
func TestWriteErrorNil(t *testing.T) {
	w := httptest.NewRecorder()
	middleware.WriteError(w, httptest.NewRequest("GET", "/", nil), nil)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", w.Code)
	}
	if got, _ := problem(t, w)["reason"].(string); got == "ok" || got == "" {
		t.Errorf("reason %q", got)
	}
}

// TestRawTokenNotLogged: the token reaches the handler through RawToken,
// and neither the middleware's logs nor a handler's slog line with the
// principal show it.
func TestRawTokenNotLogged(t *testing.T) {
	is := authtest.NewIssuer(t)
	var mu sync.Mutex
	var logs strings.Builder
	logger := slog.New(slog.NewJSONHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Logger = logger
		c.ValidateClaims = func(ctx context.Context, p principal.Principal) error {
			logger.InfoContext(ctx, "validating", "principal", p)
			return errors.New("refused")
		}
	})
	tok := is.Token(t, "alice", nil)
	w := do(a, bearerRequest(tok))
	if w.Code != 401 {
		t.Fatalf("status %d", w.Code)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), `"sub":"alice"`) {
		t.Fatalf("log lacks the principal: %s", logs.String())
	}
	for _, part := range strings.Split(tok, ".") {
		if strings.Contains(logs.String(), part) {
			t.Fatalf("log contains part of the token: %s", logs.String())
		}
	}
}

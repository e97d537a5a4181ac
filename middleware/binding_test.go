package middleware_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// outcomes records what OnOutcome reports.
type outcomes struct {
	mu  sync.Mutex
	all []middleware.Outcome
}

func (o *outcomes) add(x middleware.Outcome) { o.mu.Lock(); o.all = append(o.all, x); o.mu.Unlock() }

func (o *outcomes) last() middleware.Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.all[len(o.all)-1]
}

// TestIntrospectedKindsAndBindings sends tokens whose introspection answer
// says they are refresh tokens, ID tokens or bound to a key, each twice: the
// second request meets the introspection client's cache, and must be refused
// for the same reason.
func TestIntrospectedKindsAndBindings(t *testing.T) {
	is := authtest.NewIssuer(t)
	var seen outcomes
	is.EnableIntrospection()
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Mode = middleware.ModeIntrospection
		_, endpoint := discoverIntrospection(t, is)
		c.Introspector = &introspection.Client{
			Endpoint: endpoint,
			ClientID: authtest.IntrospectionClientID, ClientSecret: authtest.IntrospectionClientSecret,
			Logger: quiet(), // default caches: 60s active, 5s inactive
		}
		c.OnOutcome = seen.add
	})
	set := func(kv ...any) func(jwt.MapClaims) {
		return func(c jwt.MapClaims) {
			for i := 0; i+1 < len(kv); i += 2 {
				c[kv[i].(string)] = kv[i+1]
			}
		}
	}
	tests := []struct {
		name   string
		edit   func(jwt.MapClaims)
		status int
		reason string
	}{
		{name: "access token, Bearer", status: 200, reason: middleware.ReasonOK},
		{name: "Hydra access token", edit: set("token_type", "bearer", "token_use", "access_token"), status: 200, reason: middleware.ReasonOK},
		{name: "answer without token_type", edit: set("token_type", nil), status: 200, reason: middleware.ReasonOK},

		{name: "Hydra refresh token", edit: set("token_type", "Bearer", "token_use", "refresh_token"), status: 401, reason: middleware.ReasonNotAccessToken},
		{name: "Duende refresh token", edit: set("token_type", "refresh_token"), status: 401, reason: middleware.ReasonNotAccessToken},
		{name: "Keycloak refresh token", edit: set("token_type", "Refresh", "typ", "Refresh"), status: 401, reason: middleware.ReasonNotAccessToken},
		{name: "Keycloak offline token, typ only", edit: set("token_type", nil, "typ", "Offline"), status: 401, reason: middleware.ReasonNotAccessToken},
		{name: "RFC 8693 ID token", edit: set("token_type", "urn:ietf:params:oauth:token-type:id_token"), status: 401, reason: middleware.ReasonNotAccessToken},
		{name: "N_A", edit: set("token_type", "N_A"), status: 401, reason: middleware.ReasonNotAccessToken},

		{name: "cnf with DPoP jkt", edit: set("token_type", "DPoP", "cnf", map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}), status: 401, reason: middleware.ReasonBoundToken},
		{name: "cnf with mTLS x5t#S256", edit: set("cnf", map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}), status: 401, reason: middleware.ReasonBoundToken},
		{name: "cnf empty object", edit: set("cnf", map[string]any{}), status: 401, reason: middleware.ReasonBoundToken},
		{name: "cnf a string", edit: set("cnf", "jkt"), status: 401, reason: middleware.ReasonBoundToken},
		{name: "cnf null", edit: set("cnf", nil), status: 401, reason: middleware.ReasonBoundToken},
		{name: "DPoP token type without cnf", edit: set("token_type", "DPoP"), status: 401, reason: middleware.ReasonBoundToken},
		{name: "PoP token type without cnf", edit: set("token_type", "pop"), status: 401, reason: middleware.ReasonBoundToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := is.OpaqueToken("alice", tt.edit)
			for i, round := range []string{"first", "second"} {
				w := do(a, bearerRequest(tok))
				if w.Code != tt.status {
					t.Fatalf("%s request: status %d, want %d: %s", round, w.Code, tt.status, w.Body)
				}
				got := seen.last()
				if got.Reason != tt.reason {
					t.Fatalf("%s request: reason %q, want %q", round, got.Reason, tt.reason)
				}
				if tt.status == 200 {
					if i == 1 && !got.Cached {
						t.Fatal("an access token seen again was not answered from the cache")
					}
					continue
				}
				if got.Cached {
					t.Fatalf("%s request: a refused token was answered from the verified-token cache", round)
				}
				if c := errorCode(w.Header().Get("WWW-Authenticate")); c != "invalid_token" {
					t.Fatalf("error %q, want invalid_token", c)
				}
				if p := problem(t, w); p["reason"] != tt.reason {
					t.Fatalf("problem reason %v, want %s", p["reason"], tt.reason)
				}
			}
		})
	}
}

// TestBoundJWTNeverCached: a JWT with cnf is refused every time, in JWT and
// hybrid modes; the verified-token cache never answers for it.
func TestBoundJWTNeverCached(t *testing.T) {
	for _, mode := range []middleware.Mode{middleware.ModeJWT, middleware.ModeHybrid} {
		t.Run(string(mode), func(t *testing.T) {
			is := authtest.NewIssuer(t)
			is.EnableIntrospection()
			var seen outcomes
			a := mustAuthenticator(t, is, func(c *middleware.Config) {
				c.Mode = mode
				if mode == middleware.ModeHybrid {
					_, endpoint := discoverIntrospection(t, is)
					c.Introspector = &introspection.Client{Endpoint: endpoint, ClientID: authtest.IntrospectionClientID, ClientSecret: authtest.IntrospectionClientSecret, Logger: quiet()}
				}
				c.OnOutcome = seen.add
			})
			tok := is.Token(t, "alice", func(c jwt.MapClaims) { c["cnf"] = map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"} })
			for range 3 {
				if w := do(a, bearerRequest(tok)); w.Code != 401 {
					t.Fatalf("status %d, want 401", w.Code)
				}
				if got := seen.last(); got.Reason != middleware.ReasonBoundToken || got.Cached {
					t.Fatalf("outcome %+v, want bound_token, not cached", got)
				}
			}
		})
	}
}

// answerOf is an Introspector other than introspection.Client: it returns
// the same hand-made answer for every token, as a wrapper around another
// library might.
type answerOf introspection.Response

func (a *answerOf) Introspect(context.Context, string) (*introspection.Response, error) {
	r := introspection.Response(*a)
	return &r, nil
}

// TestOtherIntrospectors: the middleware itself refuses answers that are
// not about access tokens or that are bound, whichever Introspector gave
// them.
func TestOtherIntrospectors(t *testing.T) {
	exp := time.Now().Add(time.Hour)
	tests := []struct {
		name   string
		answer answerOf
		status int
		reason string
	}{
		{name: "access token", answer: answerOf{Active: true, Sub: "alice", TokenType: "Bearer", Exp: &exp}, status: 200, reason: middleware.ReasonOK},
		{name: "refresh token", answer: answerOf{Active: true, Sub: "alice", TokenType: "refresh_token", Exp: &exp}, status: 401, reason: middleware.ReasonNotAccessToken},
		{name: "Hydra refresh token", answer: answerOf{Active: true, Sub: "alice", TokenType: "Bearer", Exp: &exp,
			Claims: map[string]any{"token_use": "refresh_token"}}, status: 401, reason: middleware.ReasonNotAccessToken},
		{name: "cnf", answer: answerOf{Active: true, Sub: "alice", Exp: &exp,
			Claims: map[string]any{"cnf": map[string]any{"jkt": "x"}}}, status: 401, reason: middleware.ReasonBoundToken},
		{name: "DPoP", answer: answerOf{Active: true, Sub: "alice", TokenType: "DPoP", Exp: &exp}, status: 401, reason: middleware.ReasonBoundToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := authtest.NewIssuer(t)
			var seen outcomes
			a := mustAuthenticator(t, is, func(c *middleware.Config) {
				c.Mode = middleware.ModeIntrospection
				c.Introspector = &tt.answer
				c.OnOutcome = seen.add
			})
			if w := do(a, bearerRequest("opaque-token")); w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			if got := seen.last(); got.Reason != tt.reason {
				t.Fatalf("reason %q, want %q", got.Reason, tt.reason)
			}
		})
	}
}

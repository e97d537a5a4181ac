package todoapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestTokenProfile: with TOKEN_PROFILE=rfc9068 the todo API refuses a
// token without jti, which the default profile accepts.
func TestTokenProfile(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	noJTI := is.Token(t, "alice", func(c jwt.MapClaims) { delete(c, "jti") })
	complete := is.Token(t, "alice", nil)

	def := mustBuild(t, testConfig(t, is), true) // TOKEN_PROFILE unset: interoperable
	if rec := serve(def, "GET", "/todos", "", "Authorization", "Bearer "+noJTI); rec.Code != http.StatusOK {
		t.Errorf("token without jti, default profile: %d %s, want 200", rec.Code, rec.Body)
	}

	cfg := testConfig(t, is)
	cfg.TokenProfile = "RFC9068" // written as people write it
	strict := mustBuild(t, cfg, true)
	rec := serve(strict, "GET", "/todos", "", "Authorization", "Bearer "+noJTI)
	if rec.Code != http.StatusUnauthorized || problemReason(t, rec) != middleware.ReasonMissingClaim ||
		!strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer realm="todo-api", error="invalid_token"`) ||
		!strings.Contains(rec.Header().Get("WWW-Authenticate"), "jti") {
		t.Errorf("token without jti, TOKEN_PROFILE=rfc9068: %d %q %s, want 401 missing_claim naming jti", rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
	}
	if rec := serve(strict, "GET", "/todos", "", "Authorization", "Bearer "+complete); rec.Code != http.StatusOK {
		t.Errorf("complete token, TOKEN_PROFILE=rfc9068: %d %s, want 200", rec.Code, rec.Body)
	}
}

// TestTokenProfileRefused: a TOKEN_PROFILE the API does not know, or the
// strict one where it would check nothing, stops the server at start.
func TestTokenProfileRefused(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	for _, tt := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"unknown", func(c *Config) { c.TokenProfile = "strict" }, `TOKEN_PROFILE: want interoperable or rfc9068, got "strict"`},
		{"introspection", func(c *Config) {
			c.TokenProfile, c.AuthMode = middleware.ProfileRFC9068, middleware.ModeIntrospection
			c.IntrospectionClientID, c.IntrospectionClientSecret = authtest.IntrospectionClientID, authtest.IntrospectionClientSecret
		}, "TOKEN_PROFILE: rfc9068 applies to JWTs, not AUTH_MODE=introspection"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, is)
			tt.edit(&cfg)
			srv, err := New(t.Context(), cfg)
			if err == nil {
				_ = srv.Close()
				t.Fatal("New accepted it")
			}
			if msg := err.Error(); msg != tt.want {
				t.Errorf("error %q, want %q", msg, tt.want)
			}
		})
	}
}

package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// TestRoles: RequireRoles and RequireAnyRole look at Principal.Roles only;
// a role never passes a scope check, nor a scope a role check, even with
// the same name; a refusal is 403 insufficient_scope with no scope
// attribute and reason insufficient_role.
func TestRoles(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.RoleClaims = []string{"realm_access.roles", "groups"}
	})
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	routes := map[string]http.Handler{
		"all of editor, admin":   a.Require(a.RequireRoles("editor", "admin")(ok)),
		"any of editor, admin":   a.Require(a.RequireAnyRole("editor", "admin")(ok)),
		"no roles":               a.Require(a.RequireRoles()(ok)),
		"scope todos:write":      a.Require(a.RequireScopes("todos:write")(ok)),
		"role todos:read":        a.Require(a.RequireRoles("todos:read")(ok)),
		"any of role todos:read": a.Require(a.RequireAnyRole("todos:read")(ok)),
	}
	editor := is.Token(t, "alice", func(c jwt.MapClaims) {
		c["scope"] = "todos:read"
		c["realm_access"] = map[string]any{"roles": []string{"editor"}}
		c["groups"] = []string{"todos:write"} // a role named like a scope
	})
	both := is.Token(t, "bob", func(c jwt.MapClaims) {
		c["realm_access"] = map[string]any{"roles": []string{"editor"}}
		c["groups"] = "admin"
	})
	for _, tc := range []struct {
		route, token string
		status       int
	}{
		{"all of editor, admin", both, 204},
		{"all of editor, admin", editor, 403},
		{"any of editor, admin", editor, 204},
		{"no roles", editor, 204},
		{"scope todos:write", editor, 403},      // the role todos:write is not a scope
		{"role todos:read", editor, 403},        // the scope todos:read is not a role
		{"any of role todos:read", editor, 403}, // nor for any-of
	} {
		w := httptest.NewRecorder()
		routes[tc.route].ServeHTTP(w, bearerRequest(tc.token))
		if w.Code != tc.status {
			t.Errorf("%s: %d, want %d", tc.route, w.Code, tc.status)
			continue
		}
		if w.Code != http.StatusForbidden {
			continue
		}
		want := `Bearer realm="todo-api", error="insufficient_scope", error_description="token lacks a required role"`
		reason := middleware.ReasonRole
		switch tc.route {
		case "scope todos:write":
			want = `Bearer realm="todo-api", error="insufficient_scope", error_description="token lacks a required scope", scope="todos:write"`
			reason = middleware.ReasonScope
		case "any of role todos:read":
			want = `Bearer realm="todo-api", error="insufficient_scope", error_description="token lacks every accepted role"`
		}
		if got := w.Header().Get("WWW-Authenticate"); got != want {
			t.Errorf("%s: challenge %s, want %s", tc.route, got, want)
		}
		if got := problem(t, w)["reason"]; got != reason {
			t.Errorf("%s: reason %v, want %s", tc.route, got, reason)
		}
	}
}

// TestRolesDefault: without RoleClaims no claim becomes a role, as before
// roles existed, and scopes come from scope and scp.
func TestRolesDefault(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, nil)
	p, w := authenticateThrough(a, is.Token(t, "alice", func(c jwt.MapClaims) {
		c["scope"] = "a b"
		c["scp"] = []string{"b", "c"}
		c["roles"] = []string{"admin"}
		c["realm_access"] = map[string]any{"roles": []string{"admin"}}
	}))
	if w.Code != http.StatusOK || p.Roles != nil || !slices.Equal(p.Scopes, []string{"a", "b", "c"}) {
		t.Fatalf("status %d, scopes %q, roles %q", w.Code, p.Scopes, p.Roles)
	}
}

// TestRoleErrors: the package-level checks, WriteError with a bare ErrRole,
// and a ValidateClaims error wrapping ErrRole all answer as RequireRoles
// does.
func TestRoleErrors(t *testing.T) {
	p := principal.Principal{Subject: "alice", Scopes: []string{"admin"}, Roles: []string{"viewer"}}
	if err := middleware.CheckRoles(p, "viewer"); err != nil {
		t.Fatal(err)
	}
	if err := middleware.CheckAnyRole(p, "admin", "viewer"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		err  error
		desc string
	}{
		{middleware.CheckRoles(p, "admin"), "token lacks a required role"},
		{middleware.CheckAnyRole(p, "admin"), "token lacks every accepted role"},
		{middleware.CheckAnyRole(p), "token lacks every accepted role"},
		{middleware.ErrRole, "insufficient role"},
		{fmt.Errorf("mine: %w", middleware.ErrRole), "insufficient role"},
	} {
		err := tc.err
		if !errors.Is(err, middleware.ErrRole) || errors.Is(err, middleware.ErrScope) || middleware.Reason(err) != middleware.ReasonRole {
			t.Errorf("%v: Is(ErrRole) %v, Is(ErrScope) %v, reason %s", err, errors.Is(err, middleware.ErrRole), errors.Is(err, middleware.ErrScope), middleware.Reason(err))
		}
		status, challenge := middleware.Challenge(err)
		if status != http.StatusForbidden || challenge != `Bearer error="insufficient_scope", error_description="`+tc.desc+`"` {
			t.Errorf("%v: %d %s", err, status, challenge)
		}
	}
	if err := middleware.CheckRoles(principal.Principal{}, "x"); !middleware.IsNoToken(err) {
		t.Errorf("no caller: %v", err)
	}

	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.ValidateClaims = func(context.Context, principal.Principal) error {
			return errors.Join(errors.New("not in the tenant's staff"), middleware.ErrRole)
		}
	})
	w := do(a, bearerRequest(is.Token(t, "alice", nil)))
	if w.Code != http.StatusForbidden || w.Header().Get("WWW-Authenticate") != `Bearer realm="todo-api", error="insufficient_scope", error_description="token is not permitted here"` {
		t.Fatalf("ValidateClaims ErrRole: %d %s", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	if got := problem(t, w)["reason"]; got != middleware.ReasonClaims {
		t.Errorf("reason %v", got)
	}
}

func TestRequireAnyRolePanicsWithoutRoles(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, nil)
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	a.RequireAnyRole()
}

// TestIntrospectedShapes: introspection answers carry the token's claims,
// and are read with the same ScopeClaims, RoleClaims and AudienceClaims as
// JWTs. An answer that carries none of the audience claims passes, as one
// without aud always has.
func TestIntrospectedShapes(t *testing.T) {
	is := authtest.NewIssuer(t)
	is.EnableIntrospection()
	md, endpoint := discoverIntrospection(t, is)
	newAuth := func(edit func(*middleware.Config)) *middleware.Authenticator {
		return mustAuthenticator(t, is, func(c *middleware.Config) {
			c.Mode = middleware.ModeIntrospection
			c.Introspector = &introspection.Client{
				Endpoint:     endpoint,
				ClientID:     authtest.IntrospectionClientID,
				ClientSecret: authtest.IntrospectionClientSecret,
				CacheTTL:     -1,
				Logger:       quiet(),
			}
			c.Metadata = md
			edit(c)
		})
	}
	keycloak := newAuth(func(c *middleware.Config) {
		c.RoleClaims = []string{"realm_access.roles", "resource_access.todo-api.roles"}
	})
	tok := is.OpaqueToken("alice", func(c jwt.MapClaims) {
		c["scope"] = "todos:read"
		c["scp"] = []string{"todos:write"} // read from answers too, as from JWTs
		c["realm_access"] = map[string]any{"roles": []string{"user"}}
		c["resource_access"] = map[string]any{"todo-api": map[string]any{"roles": []string{"editor"}}}
	})
	p, w := authenticateThrough(keycloak, tok)
	if w.Code != http.StatusOK || !slices.Equal(p.Scopes, []string{"todos:read", "todos:write"}) || !slices.Equal(p.Roles, []string{"user", "editor"}) {
		t.Fatalf("status %d, scopes %q, roles %q", w.Code, p.Scopes, p.Roles)
	}

	cognito := newAuth(func(c *middleware.Config) {
		c.Audiences = []string{"1example23456789"}
		c.AudienceClaims = []string{"client_id"}
	})
	for _, tc := range []struct {
		name   string
		edit   func(jwt.MapClaims)
		status int
	}{
		{"its client", func(c jwt.MapClaims) { c["client_id"] = "1example23456789"; delete(c, "aud") }, 200},
		{"another client", func(c jwt.MapClaims) { c["client_id"] = "2other" }, 401},
		{"no client_id in the answer", func(c jwt.MapClaims) { delete(c, "client_id") }, 200},
		{"aud is not consulted", func(c jwt.MapClaims) { c["client_id"] = "1example23456789"; c["aud"] = "elsewhere" }, 200},
	} {
		_, w := authenticateThrough(cognito, is.OpaqueToken("alice", tc.edit))
		if w.Code != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.status)
		} else if tc.status == 401 && problem(t, w)["reason"] != middleware.ReasonAudience {
			t.Errorf("%s: reason %v", tc.name, problem(t, w)["reason"])
		}
	}
}

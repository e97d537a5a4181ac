package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestProviderSettings: the README's provider guide settings, given to the
// real program. Cognito: no aud, the client in client_id, scopes of a
// resource server, groups as roles. Keycloak: roles of a client whose id
// has a dot. Each accepts its token, refuses another client's, and answers
// a caller without an allowed role 403 with no scope in the challenge.
func TestProviderSettings(t *testing.T) {
	const roleChallenge = `Bearer realm="todo-api", error="insufficient_scope", error_description="token lacks every accepted role"`
	is := authtest.NewIssuer(t)
	for _, tc := range []struct {
		name     string
		env      map[string]string
		good     func(jwt.MapClaims)
		stranger func(jwt.MapClaims) // another client's token
		roleless func(jwt.MapClaims)
	}{
		{
			name: "Cognito",
			env: map[string]string{
				"ISSUER":                "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_example",
				"JWKS_URL":              is.URL + "/jwks",
				"AUDIENCE_CLAIMS":       "client_id",
				"AUDIENCE":              "1example23456789",
				"REQUIRED_SCOPES_READ":  "todo-api/todos.read",
				"REQUIRED_SCOPES_WRITE": "todo-api/todos.write",
				"ROLE_CLAIMS":           "cognito:groups",
				"ALLOWED_ROLES":         "todo-editors",
			},
			good: func(c jwt.MapClaims) {
				c["iss"] = "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_example"
				delete(c, "aud")
				c["client_id"] = "1example23456789"
				c["token_use"] = "access"
				c["scope"] = "openid todo-api/todos.read todo-api/todos.write"
				c["cognito:groups"] = []string{"todo-editors"}
			},
			stranger: func(c jwt.MapClaims) { c["client_id"] = "2other34567890123" },
			roleless: func(c jwt.MapClaims) { delete(c, "cognito:groups") },
		},
		{
			name: "Keycloak",
			env: map[string]string{
				"ISSUER":        "https://sso.example.com/realms/todo",
				"JWKS_URL":      is.URL + "/jwks",
				"AUDIENCE":      "todo.api",
				"ROLE_CLAIMS":   `realm_access.roles,resource_access.todo\.api.roles`,
				"ALLOWED_ROLES": "editor,admin",
			},
			good: func(c jwt.MapClaims) {
				c["iss"] = "https://sso.example.com/realms/todo"
				c["aud"] = []string{"todo.api", "account"}
				c["typ"] = "Bearer"
				c["azp"] = "todo-web"
				c["scope"] = "openid todos:read todos:write"
				c["realm_access"] = map[string]any{"roles": []string{"offline_access"}}
				c["resource_access"] = map[string]any{"todo.api": map[string]any{"roles": []string{"editor"}}}
			},
			stranger: func(c jwt.MapClaims) { c["aud"] = "account" },
			roleless: func(c jwt.MapClaims) {
				// The nested todo → api is not the client todo.api.
				c["resource_access"] = map[string]any{"todo": map[string]any{"api": map[string]any{"roles": []string{"editor"}}}}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := jwtEnv(t, is)
			for k, v := range tc.env {
				env[k] = v
			}
			s := startServer(t, env)
			token := func(edits ...func(jwt.MapClaims)) string {
				return is.Token(t, "alice", func(c jwt.MapClaims) {
					for _, e := range edits {
						e(c)
					}
				})
			}
			c := newCaller(t, s.URL, token(tc.good))
			expect(t, c.do("POST", "/todos", map[string]any{"title": "shaped"}), 201)
			if list := c.do("GET", "/todos", nil); len(list.todos(t)) != 1 {
				t.Fatalf("list: %s", list.Body)
			}
			r := newCaller(t, s.URL, token(tc.good, tc.stranger)).do("GET", "/todos", nil)
			expect(t, r, 401)
			if !strings.Contains(string(r.Body), `"reason":"bad_audience"`) {
				t.Errorf("another client's token: %s", r.Body)
			}
			r = newCaller(t, s.URL, token(tc.good, tc.roleless)).do("GET", "/todos", nil)
			expect(t, r, 403)
			if got := r.Header.Get("WWW-Authenticate"); got != roleChallenge {
				t.Errorf("WWW-Authenticate %s, want %s", got, roleChallenge)
			}
		})
	}
}

// TestShapeSettingsRefused: claim settings that cannot mean anything stop
// the program at start, naming what is wrong.
func TestShapeSettingsRefused(t *testing.T) {
	is := authtest.NewIssuer(t)
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"bad path", map[string]string{"ROLE_CLAIMS": "realm_access..roles"}, "RoleClaims: claim path"},
		{"unescaped URL claim", map[string]string{"ROLE_CLAIMS": "https://todo.example.com/roles"}, `https://todo\.example\.com/roles`},
		{"a claim as scope and role", map[string]string{"ROLE_CLAIMS": "scp"}, "in both ScopeClaims and RoleClaims"},
		{"no audience claim for keys", map[string]string{"AUDIENCE_CLAIMS": "aud.*"}, "AudienceClaims"},
		{"roles without their claims", map[string]string{"ALLOWED_ROLES": "editor"}, "ALLOWED_ROLES needs ROLE_CLAIMS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := jwtEnv(t, is)
			env["LISTEN_ADDR"] = "127.0.0.1:0"
			for k, v := range tc.env {
				env[k] = v
			}
			err := run(context.Background(), nil, lookup(env), io.Discard, io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

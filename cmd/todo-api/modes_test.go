package main

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// introspectionEnv is the settings for a todo-api that introspects at is.
func introspectionEnv(tb testing.TB, is *authtest.Issuer, mode string) map[string]string {
	is.EnableIntrospection()
	env := jwtEnv(tb, is)
	env["AUTH_MODE"] = mode
	env["INTROSPECTION_CLIENT_ID"] = authtest.IntrospectionClientID
	env["INTROSPECTION_CLIENT_SECRET"] = authtest.IntrospectionClientSecret
	env["INTROSPECTION_TIMEOUT"] = "300ms"
	env["INTROSPECTION_CACHE_TTL"] = "0" // every request asks, so each behaviour shows
	return env
}

// TestIntrospectionOutcomes checks each answer of the introspection
// endpoint end to end through the todo API.
func TestIntrospectionOutcomes(t *testing.T) {
	is := authtest.NewIssuer(t)
	s := startServer(t, introspectionEnv(t, is, "introspection"))
	active := is.OpaqueToken("alice", nil)
	revoked := is.OpaqueToken("alice", nil)
	is.Revoke(revoked)
	authtest.SlowDelay = time.Second
	tests := []struct {
		name      string
		token     string
		behaviour authtest.Behaviour
		status    int
	}{
		{"active", active, authtest.Normal, 200},
		{"inactive", "never-issued", authtest.Normal, 401},
		{"revoked", revoked, authtest.Normal, 401},
		{"expired", is.OpaqueToken("alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), authtest.Normal, 401},
		{"refresh token, as Hydra answers", is.OpaqueToken("alice", func(c jwt.MapClaims) { c["token_use"] = "refresh_token" }), authtest.Normal, 401},
		{"bound to a DPoP key", is.OpaqueToken("alice", func(c jwt.MapClaims) { c["cnf"] = map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"} }), authtest.Normal, 401},
		{"slow", active, authtest.Slow, 503},
		{"500", active, authtest.Fail, 503},
		{"garbage", active, authtest.Garbage, 503},
		{"huge", active, authtest.Huge, 503},
		{"recovered", active, authtest.Normal, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is.SetIntrospection(tt.behaviour)
			defer is.SetIntrospection(authtest.Normal)
			before := is.IntrospectionCalls()
			r := newCaller(t, s.URL, tt.token).do("GET", "/todos", nil)
			expect(t, r, tt.status)
			if tt.status == 503 && r.Header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			if is.IntrospectionCalls() == before {
				t.Fatal("no introspection call")
			}
		})
	}
}

func TestHybridThroughTheAPI(t *testing.T) {
	is := authtest.NewIssuer(t)
	s := startServer(t, introspectionEnv(t, is, "hybrid"))
	before := is.IntrospectionCalls()
	jwtCaller := newCaller(t, s.URL, is.Token(t, "alice", nil))
	expect(t, jwtCaller.do("POST", "/todos", map[string]any{"title": "from a JWT"}), 201)
	if is.IntrospectionCalls() != before {
		t.Fatal("a JWT was introspected in hybrid mode")
	}
	opaque := newCaller(t, s.URL, is.OpaqueToken("alice", nil))
	if got := opaque.do("GET", "/todos", nil).todos(t); len(got) != 1 || got[0]["title"] != "from a JWT" {
		t.Fatalf("opaque token of the same user sees %v", got)
	}
	if is.IntrospectionCalls() != before+1 {
		t.Fatal("the opaque token was not introspected")
	}
}

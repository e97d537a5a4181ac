package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestStepUpForDeleteAll: with REQUIRE_ACR_FOR_DELETE_ALL and
// MAX_AUTH_AGE_FOR_DELETE_ALL, deleting every todo takes a token whose
// acr is one of those named and whose auth_time is recent; a token that
// falls short gets RFC 9470's 401, which a page on an allowed origin can
// read. Clearing the completed todos and every other route need no step-up.
// The same holds for introspected tokens (acr and auth_time members).
func TestStepUpForDeleteAll(t *testing.T) {
	for _, mode := range []string{"jwt", "introspection"} {
		t.Run(mode, func(t *testing.T) {
			is := authtest.NewIssuer(t, todoScopes)
			env := jwtEnv(t, is)
			if mode == "introspection" {
				env = introspectionEnv(t, is, mode)
			}
			env["REQUIRE_ACR_FOR_DELETE_ALL"] = "urn:tollgate:acr:2fa, urn:tollgate:acr:hwk"
			env["MAX_AUTH_AGE_FOR_DELETE_ALL"] = "10m"
			s := startServer(t, env)
			if !strings.Contains(s.log.String(), "deleting every todo needs step-up") {
				t.Errorf("the step-up setting is not logged at start:\n%s", s.log)
			}
			token := func(acr string, signedIn time.Duration) string {
				edit := func(c jwt.MapClaims) {
					c["acr"] = acr
					c["auth_time"] = time.Now().Add(-signedIn).Unix()
				}
				if mode == "introspection" {
					return is.OpaqueToken("alice", edit)
				}
				return is.Token(t, "alice", edit)
			}
			const (
				wantACR    = `Bearer realm="todo-api", error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:tollgate:acr:2fa urn:tollgate:acr:hwk", max_age="600"`
				wantRecent = `Bearer realm="todo-api", error="insufficient_user_authentication", error_description="More recent authentication is required", acr_values="urn:tollgate:acr:2fa urn:tollgate:acr:hwk", max_age="600"`
			)

			weak := newCaller(t, s.URL, token("urn:tollgate:acr:password", time.Minute))
			expect(t, weak.do("POST", "/todos", map[string]any{"title": "keep", "completed": false}), 201)
			expect(t, weak.do("POST", "/todos", map[string]any{"title": "done", "completed": true}), 201)
			r := weak.do("DELETE", "/todos", nil, "Origin", "http://app.test")
			expect(t, r, 401)
			if got := r.Header.Get("WWW-Authenticate"); got != wantACR {
				t.Fatalf("WWW-Authenticate\n got %s\nwant %s", got, wantACR)
			}
			// The page reads the challenge across origins.
			if r.Header.Get("Access-Control-Allow-Origin") != "http://app.test" || !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), "Www-Authenticate") {
				t.Fatalf("the challenge is hidden from the page: %v", r.Header)
			}
			if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
				t.Errorf("Cache-Control %q", cc)
			}
			if list := weak.do("GET", "/todos", nil); len(list.todos(t)) != 2 {
				t.Fatalf("a refused delete-all deleted: %s", list.Body)
			}
			// Clearing the completed todos is not deleting every todo.
			expect(t, weak.do("DELETE", "/todos?completed=true", nil), 204)

			stale := newCaller(t, s.URL, token("urn:tollgate:acr:2fa", time.Hour))
			r = stale.do("DELETE", "/todos", nil)
			expect(t, r, 401)
			if got := r.Header.Get("WWW-Authenticate"); got != wantRecent {
				t.Fatalf("WWW-Authenticate\n got %s\nwant %s", got, wantRecent)
			}

			strong := newCaller(t, s.URL, token("urn:tollgate:acr:hwk", time.Minute))
			expect(t, strong.do("DELETE", "/todos", nil), 204)
			if list := weak.do("GET", "/todos", nil); len(list.todos(t)) != 0 {
				t.Fatalf("left after delete-all: %s", list.Body)
			}
		})
	}
}

// TestNoStepUpByDefault: without the settings, deleting every todo takes
// an ordinary token, as before.
func TestNoStepUpByDefault(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	s := startServer(t, jwtEnv(t, is))
	c := newCaller(t, s.URL, is.Token(t, "alice", nil))
	expect(t, c.do("POST", "/todos", map[string]any{"title": "x"}), 201)
	expect(t, c.do("DELETE", "/todos", nil), http.StatusNoContent)
}

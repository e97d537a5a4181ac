package main

import (
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestTwoIssuers runs the todo API with ISSUER listing two issuers, each
// discovered: both issuers' users are served, each with their own todos
// (the same sub at two issuers is two users), and a token of a third
// issuer, or one that names one issuer and is signed by the other with the
// same kid, is refused.
func TestTwoIssuers(t *testing.T) {
	a := authtest.NewIssuer(t, todoScopes)
	b := authtest.NewIssuer(t, todoScopes)
	c := authtest.NewIssuer(t, todoScopes)
	env := jwtEnv(t, a)
	env["ISSUER"] = a.URL + ", " + b.URL
	s := startServer(t, env)

	aliceA := newCaller(t, s.URL, a.Token(t, "alice", nil))
	aliceB := newCaller(t, s.URL, b.Token(t, "alice", nil))
	expect(t, aliceA.do("POST", "/todos", map[string]any{"title": "from a"}), 201)
	expect(t, aliceB.do("POST", "/todos", map[string]any{"title": "from b"}), 201)
	for _, tc := range []struct {
		c    *caller
		want string
	}{{aliceA, "from a"}, {aliceB, "from b"}} {
		if got := tc.c.do("GET", "/todos", nil).todos(t); len(got) != 1 || got[0]["title"] != tc.want {
			t.Fatalf("%s's list: %v", tc.want, got)
		}
	}

	if a.KeyFor("RS256").KID != b.KeyFor("RS256").KID {
		t.Fatal("the issuers must share kids")
	}
	for name, tok := range map[string]string{
		"a third issuer":              c.Token(t, "alice", nil),
		"iss a, b's key, same kid":    b.Token(t, "alice", func(cl jwt.MapClaims) { cl["iss"] = a.URL }),
		"iss b, a's key, same kid":    a.Token(t, "alice", func(cl jwt.MapClaims) { cl["iss"] = b.URL }),
		"iss a with a trailing slash": a.Token(t, "alice", func(cl jwt.MapClaims) { cl["iss"] = a.URL + "/" }),
	} {
		t.Run(name, func(t *testing.T) {
			r := newCaller(t, s.URL, tok).do("GET", "/todos", nil)
			expect(t, r, 401)
			if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, `Bearer realm="todo-api", error="invalid_token"`) {
				t.Fatalf("WWW-Authenticate %q", h)
			}
		})
	}
	if c.JWKSFetches() != 0 {
		t.Errorf("the third issuer's keys were fetched %d times", c.JWKSFetches())
	}
	if want := `"reason":"unknown_issuer"`; !strings.Contains(s.log.String(), want) {
		t.Errorf("no %s in the log:\n%s", want, s.log)
	}
}

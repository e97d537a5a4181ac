package main

import (
	"maps"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestReviewIssOwnersAcrossIssuerChanges: todos were owned by sub with one
// ISSUER and by "iss sub" with a list, in one column. An operator who adds
// an issuer to ISSUER (or removes one) changes the meaning of every row:
// the users of the first issuer lose their todos, and a subject that
// contains a space at one issuer ("https://b.example bob") owns, under
// the other setting, the todos of another issuer's user (bob at b). One
// database must mean one owner for one (iss, sub), whatever ISSUER lists.
func TestReviewIssOwnersAcrossIssuerChanges(t *testing.T) {
	a := authtest.NewIssuer(t, todoScopes)
	b := authtest.NewIssuer(t, todoScopes)
	single := jwtEnv(t, a) // ISSUER=a
	list := maps.Clone(single)
	list["ISSUER"] = a.URL + "," + b.URL

	// One issuer: alice keeps a todo; a user of a whose subject is b's
	// URL, a space and "bob" keeps one too.
	s1 := startServer(t, single)
	expect(t, newCaller(t, s1.URL, a.Token(t, "alice", nil)).do("POST", "/todos", map[string]any{"title": "alice's"}), 201)
	expect(t, newCaller(t, s1.URL, a.Token(t, b.URL+" bob", nil)).do("POST", "/todos", map[string]any{"title": "planted by a user of a"}), 201)
	if err := s1.stop(); err != nil {
		t.Fatal(err)
	}

	// The operator adds b.
	s2 := startServer(t, list)
	if got := newCaller(t, s2.URL, a.Token(t, "alice", nil)).do("GET", "/todos", nil).todos(t); len(got) != 1 || got[0]["title"] != "alice's" {
		t.Errorf("alice of a, after b was added to ISSUER: %v, want her todo", got)
	}
	bob := newCaller(t, s2.URL, b.Token(t, "bob", nil))
	if got := bob.do("GET", "/todos", nil).todos(t); len(got) != 0 {
		t.Errorf("bob of b, new here, sees a user of a's todos: %v", got)
	}
	expect(t, bob.do("POST", "/todos", map[string]any{"title": "bob's"}), 201)
	if err := s2.stop(); err != nil {
		t.Fatal(err)
	}

	// The operator removes b again.
	s3 := startServer(t, single)
	if got := newCaller(t, s3.URL, a.Token(t, b.URL+" bob", nil)).do("GET", "/todos", nil).todos(t); len(got) != 1 || got[0]["title"] != "planted by a user of a" {
		t.Errorf("the user of a whose subject is %q, after b was removed: %v, want only their own todo", b.URL+" bob", got)
	}
}

package e2e

import (
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/devstack"
)

// tokenTTL is the access token lifetime in these tests: short, so that the
// page has to refresh within the test.
const tokenTTL = 3 * time.Second

// waitPastExpiry sleeps until the current access token has expired: the
// one fixed wait of these tests, since nothing on the page changes when a
// token expires.
func waitPastExpiry(t *testing.T, b *browser) {
	t.Helper()
	exp := b.accessTokenExpiry()
	if d := time.Until(exp); d > tokenTTL+2*time.Second {
		t.Fatalf("the access token ends in %s; devidp was told %s", d, tokenTTL)
	}
	// The expiry has whole seconds; a little more covers the rounding.
	time.Sleep(time.Until(exp) + 1100*time.Millisecond)
}

// refreshes counts the refreshes the exchange has done.
func refreshes(t *testing.T, st *devstack.Stack) float64 {
	t.Helper()
	return metric(t, st, "exchange_refreshes_total", `outcome="ok"`) +
		metric(t, st, "exchange_refreshes_total", `outcome="shared"`)
}

// TestTodos walks the whole story of issue 6 against JWT access tokens:
// alice signs in through devidp's form, manages todos across a reload and
// a token refresh, signs out and is refused; bob then sees none of hers.
func TestTodos(t *testing.T) {
	requireChromium(t)
	st := startStack(t, devstack.ModeJWT, tokenTTL)
	b := newBrowser(t, st)

	b.open()
	if s := b.state("signed out at first"); !s.SignedOut || s.SignedIn {
		t.Fatalf("a fresh browser should see the signed-out card: %+v", s)
	}
	b.signIn("alice", "alice")
	if s := b.state("signed in"); s.User != "Alice Example" {
		t.Fatalf("signed in as %q, want Alice Example", s.User)
	}
	if tok := b.checkNoTokenInScript(); !isJWT(tok) {
		t.Errorf("in jwt mode the access token cookie holds %.20q…, not a JWT", tok)
	}

	b.add("Buy milk")
	b.add("Write tests")
	b.add("Call mom")
	b.toggle("Write tests")
	b.wantState("after adding and toggling",
		[]string{"Buy milk", "Write tests", "Call mom"}, []string{"Write tests"}, "2 items left")

	b.reload()
	b.wantState("after a reload",
		[]string{"Buy milk", "Write tests", "Call mom"}, []string{"Write tests"}, "2 items left")

	// The access token expires; the next call gets a 401, the page POSTs
	// /refreshtoken and retries.
	before := refreshes(t, st)
	waitPastExpiry(t, b)
	if status := b.apiStatus(); status != 401 {
		t.Fatalf("GET /todos with the expired token: %d, want 401 (is the token really expired?)", status)
	}
	b.add("Walk the dog")
	b.toggle("Buy milk")
	if after := refreshes(t, st); after <= before {
		t.Fatalf("no refresh happened after the access token expired (exchange_refreshes_total ok+shared: %v before, %v after)", before, after)
	}
	b.wantState("after the refresh",
		[]string{"Buy milk", "Write tests", "Call mom", "Walk the dog"}, []string{"Buy milk", "Write tests"}, "2 items left")
	b.checkNoTokenInScript()

	b.edit("Call mom", "Call mom on Sunday")
	b.remove("Walk the dog")
	b.do("clear completed", click("#clear-completed"))
	b.waitFor("clear completed", idleJS+` && document.querySelectorAll('#todo-list .todo').length === 1 && document.getElementById('clear-completed').hidden`)
	b.wantState("after edit, delete and clear completed", []string{"Call mom on Sunday"}, nil, "1 item left")
	b.reload()
	b.wantState("after edit, delete and clear completed, reloaded", []string{"Call mom on Sunday"}, nil, "1 item left")

	// Sign out: the exchange revokes the refresh token, clears the cookies
	// and sends the page through devidp's end-session endpoint back home.
	logouts := metric(t, st, "exchange_logouts_total", `revocation="ok"`)
	eval[bool](b, "mark the old document", `window.__e2eOld = true`)
	b.do("sign out", click("#sign-out"))
	b.waitFor("signed out, back on the page", `location.href === `+jsString(st.ExchangeURL+"/")+` && `+idleJS+` && !document.getElementById('signed-out').hidden`)
	if got := metric(t, st, "exchange_logouts_total", `revocation="ok"`); got != logouts+1 {
		t.Errorf("exchange_logouts_total{revocation=\"ok\"} went from %v to %v, want one more", logouts, got)
	}
	if s := b.state("signed out"); s.SignedIn || s.User != "" || len(s.Titles) != 0 {
		t.Fatalf("after signing out the page still shows %+v", s)
	}
	if status := b.apiStatus(); status != 401 {
		t.Fatalf("GET /todos after signing out: %d, want 401", status)
	}
	if status := eval[int](b, "refresh after signing out", `fetch('/refreshtoken', {method: 'POST', headers: {'X-CSRF': '1'}}).then((r) => r.status)`); status != 401 {
		t.Fatalf("POST /refreshtoken after signing out: %d, want 401", status)
	}
	b.reload()
	if s := b.state("signed out, reloaded"); !s.SignedOut {
		t.Fatalf("after signing out and reloading the page shows %+v", s)
	}

	b.signIn("bob", "bob")
	if s := b.state("bob signed in"); s.User != "Bob Example" || len(s.Titles) != 0 || s.Count != "" {
		t.Fatalf("bob sees %+v; want his own empty list", s)
	}
	b.add("Bob's only todo")
	b.reload()
	b.wantState("bob's list", []string{"Bob's only todo"}, nil, "1 item left")
}

// TestTodosIntrospection runs the system with opaque access tokens, which
// the todo API checks by introspection at devidp.
func TestTodosIntrospection(t *testing.T) {
	requireChromium(t)
	st := startStack(t, devstack.ModeIntrospection, tokenTTL)
	b := newBrowser(t, st)

	b.open()
	b.signIn("alice", "alice")
	if tok := b.checkNoTokenInScript(); tok == "" || isJWT(tok) {
		t.Errorf("in introspection mode the access token cookie holds %.20q…; want an opaque token", tok)
	}
	b.add("Opaque one")
	b.add("Opaque two")
	b.toggle("Opaque one")
	b.reload()
	b.wantState("after a reload", []string{"Opaque one", "Opaque two"}, []string{"Opaque one"}, "1 item left")

	before := refreshes(t, st)
	waitPastExpiry(t, b)
	b.add("After the refresh")
	if after := refreshes(t, st); after <= before {
		t.Fatalf("no refresh happened after the access token expired (%v before, %v after)", before, after)
	}
	b.reload()
	b.wantState("after the refresh, reloaded", []string{"Opaque one", "Opaque two", "After the refresh"}, []string{"Opaque one"}, "2 items left")
}

// TestTodosHybrid runs the todo API in hybrid mode (JWT-shaped tokens
// checked locally, others introspected): the page must not notice.
func TestTodosHybrid(t *testing.T) {
	requireChromium(t)
	st := startStack(t, devstack.ModeHybrid, 0)
	b := newBrowser(t, st)

	b.open()
	b.signIn("alice", "alice")
	b.add("Hybrid one")
	b.toggle("Hybrid one")
	b.add("Hybrid two")
	b.reload()
	b.wantState("after a reload", []string{"Hybrid one", "Hybrid two"}, []string{"Hybrid one"}, "1 item left")
}

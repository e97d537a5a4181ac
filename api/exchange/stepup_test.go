package exchange

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
	"github.com/tollgate-dev/tollgate/api/todoapi"
)

// txOf opens the transaction cookie a GET /login answer set.
func txOf(t *testing.T, e *testEnv, r result) transaction {
	t.Helper()
	var tx transaction
	for _, c := range r.cookies {
		if strings.HasPrefix(c.Name, e.ex.names.txPrefix) && c.Value != "" {
			if err := e.ex.sealer.openJSON(c.Name, c.Value, &tx); err != nil {
				t.Fatal(err)
			}
			return tx
		}
	}
	t.Fatalf("no transaction cookie among %v", r.cookies)
	return tx
}

// TestStepUpThroughTheExchange is RFC 9470 end to end, in process: the todo
// API refuses to delete every todo for a password-only sign-in with
// insufficient_user_authentication; the page's next stop, /login with the
// challenge's acr_values and max_age, passes them on to devidp, which asks
// for the second step; back at the callback the person lands where they
// were, and the same request now succeeds.
func TestStepUpThroughTheExchange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	todo := startTodoAPIWith(t, e, func(c *todoapi.Config) {
		c.RequireACRForDeleteAll = []string{devidp.ACRTwoFactor}
		c.MaxAuthAgeForDeleteAll = 5 * time.Minute
	})
	b := e.newBrowser()
	b.login("alice", "/")
	deleteAll := func() result {
		t.Helper()
		return b.do(http.MethodDelete, todo.URL+"/todos", "X-CSRF", "1", "Origin", e.URL)
	}

	r := deleteAll()
	want := `Bearer realm="todo-api", error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:tollgate:acr:2fa", max_age="300"`
	if r.status != http.StatusUnauthorized || r.header.Get("WWW-Authenticate") != want {
		t.Fatalf("delete-all after a password sign-in: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}

	// What the page does with the challenge.
	r = b.get(loginPath + "?" + url.Values{"acr_values": {devidp.ACRTwoFactor}, "max_age": {"300"}, "returnTo": {"/#/completed"}}.Encode())
	if r.status != http.StatusFound {
		t.Fatalf("GET /login: %d %s", r.status, r.body)
	}
	authURL := r.header.Get("Location")
	q := mustQuery(t, authURL)
	if q.Get("acr_values") != devidp.ACRTwoFactor || q.Get("max_age") != "300" {
		t.Fatalf("authorization request %s lacks acr_values or max_age", authURL)
	}
	if tx := txOf(t, e, r); tx.ACRValues != devidp.ACRTwoFactor || tx.MaxAge != "300" || tx.ReturnTo != "/#/completed" {
		t.Fatalf("transaction %+v", tx)
	}
	// devidp wants the second step: the password alone is not enough.
	if _, err := devidptest.Login(t.Context(), devidptest.Browser(e.cfg.RedirectURL), authURL, "alice", "alice"); !errors.Is(err, devidptest.ErrSecondStep) {
		t.Fatalf("devidp without the second step: %v", err)
	}
	resp, err := devidptest.LoginTwoFactor(t.Context(), devidptest.Browser(e.cfg.RedirectURL), authURL, "alice", "alice", devidp.DefaultSecondFactor)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb := b.get(resp.Header.Get("Location"))
	if cb.status != http.StatusSeeOther || cb.header.Get("Location") != "/#/completed" {
		t.Fatalf("callback: %d, Location %q, want 303 back to the page", cb.status, cb.header.Get("Location"))
	}
	if r := deleteAll(); r.status != http.StatusNoContent {
		t.Fatalf("delete-all after the step-up: %d %q %s", r.status, r.header.Get("WWW-Authenticate"), r.body)
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

// TestStepUpParams: /login passes on well-formed acr_values and max_age,
// normalised, and answers anything else 400, with no transaction started
// and without showing the input back.
func TestStepUpParams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	good := []struct {
		query         url.Values
		acr, maxAge   string
		sendsACR, age bool
	}{
		{url.Values{}, "", "", false, false},
		{url.Values{"acr_values": {""}, "max_age": {""}}, "", "", false, false},
		{url.Values{"acr_values": {"urn:tollgate:acr:2fa"}}, "urn:tollgate:acr:2fa", "", true, false},
		{url.Values{"acr_values": {"  urn:a   2 http://schemas.example/mfa "}}, "urn:a 2 http://schemas.example/mfa", "", true, false},
		{url.Values{"max_age": {"0"}}, "", "0", false, true},
		{url.Values{"max_age": {"007"}}, "", "7", false, true},
		{url.Values{"max_age": {"2147483647"}}, "", "2147483647", false, true},
		{url.Values{"acr_values": {strings.TrimSpace(strings.Repeat("v ", 10))}}, strings.TrimSpace(strings.Repeat("v ", 10)), "", true, false},
	}
	for _, tt := range good {
		t.Run("good "+tt.query.Encode(), func(t *testing.T) {
			t.Parallel()
			r := e.newBrowser().get(loginPath + "?" + tt.query.Encode())
			if r.status != http.StatusFound {
				t.Fatalf("status %d %s", r.status, r.body)
			}
			q := mustQuery(t, r.header.Get("Location"))
			if _, ok := q["acr_values"]; ok != tt.sendsACR || q.Get("acr_values") != tt.acr {
				t.Errorf("acr_values %q (sent %v), want %q", q.Get("acr_values"), ok, tt.acr)
			}
			if _, ok := q["max_age"]; ok != tt.age || q.Get("max_age") != tt.maxAge {
				t.Errorf("max_age %q (sent %v), want %q", q.Get("max_age"), ok, tt.maxAge)
			}
		})
	}

	bad := []url.Values{
		{"acr_values": {`urn:"quoted"`}},
		{"acr_values": {`urn:back\slash`}},
		{"acr_values": {"urn:a\turn:b"}},
		{"acr_values": {"urn:a\nurn:b"}},
		{"acr_values": {"caf\u00e9"}},
		{"acr_values": {"\x00"}},
		{"acr_values": {"   "}},
		{"acr_values": {strings.Repeat("v ", 11)}},
		{"acr_values": {strings.Repeat("a", 257)}},
		{"acr_values": {strings.Repeat("abcd ", 103)}},
		{"acr_values": {"a", "b"}},
		{"acr_values": {`<script>alert("x")</script>`}},
		{"max_age": {"-1"}},
		{"max_age": {"1.5"}},
		{"max_age": {"1e3"}},
		{"max_age": {"+5"}},
		{"max_age": {" 5"}},
		{"max_age": {"0x10"}},
		{"max_age": {"2147483648"}},
		{"max_age": {"99999999999999999999"}},
		{"max_age": {"<b>5</b>"}},
		{"max_age": {"5", "6"}},
	}
	for _, q := range bad {
		t.Run("bad "+q.Encode(), func(t *testing.T) {
			t.Parallel()
			r := e.newBrowser().get(loginPath + "?" + q.Encode() + "&returnTo=/x")
			if r.status != http.StatusBadRequest || r.header.Get("Location") != "" {
				t.Fatalf("status %d, Location %q, want 400", r.status, r.header.Get("Location"))
			}
			for _, c := range r.cookies {
				if strings.HasPrefix(c.Name, e.ex.names.txPrefix) && c.MaxAge >= 0 {
					t.Errorf("a transaction started: %s", c.Name)
				}
			}
			if !strings.Contains(r.body, "malformed acr_values or max_age") {
				t.Errorf("the page does not say what was wrong: %s", r.body)
			}
			for _, vs := range q {
				for _, v := range vs {
					if len(v) > 3 && strings.Contains(r.body, v) {
						t.Errorf("the page shows the input %q back", v)
					}
				}
			}
			if strings.Contains(r.body, "<script>") || strings.Contains(r.body, "<b>") {
				t.Errorf("markup from the query on the page: %s", r.body)
			}
		})
	}
}

// TestStepUpKeptOnRetry: the automatic retry after a refused code, and
// the "Sign in again" link of an error page, ask for the same step-up.
func TestStepUpKeptOnRetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	cb := e.authorize(b.startLogin("/x"), "alice")
	if r := b.get(cb); r.status != http.StatusSeeOther {
		t.Fatalf("first callback: %d", r.status)
	}
	code := mustQuery(t, cb).Get("code")

	r := b.get(loginPath + "?" + url.Values{"acr_values": {devidp.ACRTwoFactor}, "max_age": {"60"}, "returnTo": {"/y"}}.Encode())
	state := mustQuery(t, r.header.Get("Location")).Get("state")
	// The old code under the new state: devidp refuses it, the exchange
	// starts again once.
	r = b.get(callbackPath + "?" + url.Values{"code": {code}, "state": {state}, "iss": {e.idp.URL}}.Encode())
	want := loginPath + "?" + url.Values{"error": {"expired"}, "returnTo": {"/y"}, "acr_values": {devidp.ACRTwoFactor}, "max_age": {"60"}}.Encode()
	if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
		t.Fatalf("retry: %d, Location %q, want %q", r.status, r.header.Get("Location"), want)
	}

	// An error page's "Sign in again" link.
	r = b.get(loginPath + "?" + url.Values{"acr_values": {devidp.ACRTwoFactor}, "returnTo": {"/z"}}.Encode())
	state = mustQuery(t, r.header.Get("Location")).Get("state")
	r = b.get(callbackPath + "?" + url.Values{"error": {"access_denied"}, "state": {state}, "iss": {e.idp.URL}}.Encode())
	link := `href="/login?acr_values=urn%3Atollgate%3Aacr%3A2fa&amp;returnTo=%2Fz"`
	if r.status != http.StatusForbidden || !strings.Contains(r.body, link) {
		t.Fatalf("error page: %d, want a link %s in\n%s", r.status, link, r.body)
	}
}

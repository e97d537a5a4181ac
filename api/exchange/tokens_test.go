package exchange

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// refreshToken is the refresh token inside b's sealed refresh cookie.
func (e *testEnv) refreshToken(b *browser) string {
	e.t.Helper()
	var rc refreshCookie
	if err := e.ex.sealer.openJSON(e.ex.names.refresh, b.cookieValue(e.ex.names.refresh, refreshPath), &rc); err != nil || rc.Token == "" {
		e.t.Fatalf("no refresh cookie: %v", err)
	}
	return rc.Token
}

// checkCleared fails unless r deletes the access, refresh and session
// cookies, each with the Path and Domain it was set with.
func (e *testEnv) checkCleared(t *testing.T, r result) {
	t.Helper()
	want := map[string]string{e.ex.names.access: "/", e.ex.names.refresh: refreshPath, e.ex.names.session: "/"}
	for name, path := range want {
		c := r.cookie(name)
		if c == nil || c.MaxAge >= 0 || c.Path != path || c.Domain != e.ex.cfg.CookieDomain && name == e.ex.names.access {
			t.Errorf("%s not deleted at Path=%s: %v", name, path, c)
		}
	}
}

// TestRefreshRotation: a refresh sets a new access token and, as devidp
// rotates, a new refresh token; replaying the old one once the grace window
// is over is invalid_grant, which signs the browser out.
func TestRefreshRotation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	b.login("alice", "")
	n := e.ex.names
	access1, sealed1 := b.cookieValue(n.access, "/"), b.cookieValue(n.refresh, refreshPath)
	sess1 := n.session + "=" + b.cookieValue(n.session, "/")
	rt1 := e.refreshToken(b)
	tokens := e.calls.count("/token")

	r := b.do(http.MethodPost, refreshPath, "X-CSRF", "1")
	if r.status != http.StatusOK || r.json(t)["access_token_expires_at"] == nil {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	if a := r.cookie(n.access); a == nil || a.Value == "" || a.Value == access1 {
		t.Errorf("no new access token cookie: %v", a)
	}
	if c := r.cookie(n.refresh); c == nil || c.Value == sealed1 || c.Path != refreshPath {
		t.Errorf("no new refresh token cookie: %v", c)
	}
	if rt2 := e.refreshToken(b); rt2 == rt1 {
		t.Error("devidp rotates, but the refresh token did not change")
	}
	if c := r.cookie(n.session); c == nil || c.MaxAge <= 0 {
		t.Errorf("session cookie not renewed: %v", c)
	}
	if n := e.calls.count("/token"); n != tokens+1 {
		t.Errorf("%d token requests, want 1", n-tokens)
	}
	if me := b.get(mePath); me.status != http.StatusOK || me.json(t)["sub"] != "alice" {
		t.Errorf("GET /me after refresh: %d %s", me.status, me.body)
	}

	// The old refresh token, after the grace window: the server refuses it.
	e.clock.advance(DefaultRefreshGrace + time.Second)
	old := e.newBrowser()
	r = old.do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", n.refresh+"="+sealed1+"; "+sess1)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("replayed refresh token: %d %s, want 401", r.status, r.body)
	}
	e.checkCleared(t, r)
	if got := e.metric("exchange_refreshes_total", "outcome", "invalid_grant"); got != 1 {
		t.Errorf("refreshes{invalid_grant} = %v", got)
	}
}

// TestRefreshGrace: a request that still carries the replaced refresh token
// (a second tab whose request left before the first one's answer arrived)
// gets the same new tokens, not invalid_grant, and the server sees one
// refresh only.
func TestRefreshGrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	b.login("alice", "")
	n := e.ex.names
	sealed1 := b.cookieValue(n.refresh, refreshPath)
	sess1 := n.session + "=" + b.cookieValue(n.session, "/")
	tokens := e.calls.count("/token")

	first := b.do(http.MethodPost, refreshPath, "X-CSRF", "1")
	if first.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", first.status, first.body)
	}
	late := e.newBrowser().do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", n.refresh+"="+sealed1+"; "+sess1)
	if late.status != http.StatusOK {
		t.Fatalf("refresh with the replaced token within the grace window: %d %s", late.status, late.body)
	}
	if a, b := first.cookie(n.access), late.cookie(n.access); a == nil || b == nil || a.Value != b.Value {
		t.Errorf("the late request got another access token")
	}
	var got refreshCookie
	if c := late.cookie(n.refresh); c == nil || e.ex.sealer.openJSON(n.refresh, c.Value, &got) != nil || got.Token != e.refreshToken(b) {
		t.Errorf("the late request did not get the new refresh token")
	}
	if n := e.calls.count("/token"); n != tokens+1 {
		t.Errorf("%d token requests, want 1", n-tokens)
	}
	if got := e.metric("exchange_refreshes_total", "outcome", "shared"); got != 1 {
		t.Errorf("refreshes{shared} = %v, want 1", got)
	}
	// The new refresh token still works: the server never saw a replay.
	if r := b.do(http.MethodPost, refreshPath, "X-CSRF", "1"); r.status != http.StatusOK {
		t.Errorf("refresh with the new token: %d %s", r.status, r.body)
	}
}

// TestConcurrentRefreshes: 20 requests with one refresh token make one
// token request, and all succeed with the same tokens.
func TestConcurrentRefreshes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	b.login("alice", "")
	n := e.ex.names
	cookie := n.refresh + "=" + b.cookieValue(n.refresh, refreshPath) + "; " + n.session + "=" + b.cookieValue(n.session, "/")
	tokens := e.calls.count("/token")

	const workers = 20
	results := make([]result, workers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range workers {
		wg.Go(func() {
			<-start
			results[i] = e.newBrowser().do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie)
		})
	}
	close(start)
	wg.Wait()

	var access string
	for i, r := range results {
		if r.status != http.StatusOK {
			t.Errorf("request %d: %d %s", i, r.status, r.body)
			continue
		}
		a := r.cookie(n.access)
		if a == nil {
			t.Errorf("request %d: no access cookie", i)
			continue
		}
		if access == "" {
			access = a.Value
		} else if a.Value != access {
			t.Errorf("request %d got another access token", i)
		}
	}
	if got := e.calls.count("/token") - tokens; got != 1 {
		t.Errorf("%d token requests, want 1", got)
	}
	if ok, shared := e.metric("exchange_refreshes_total", "outcome", "ok"), e.metric("exchange_refreshes_total", "outcome", "shared"); ok != 1 || shared != workers-1 {
		t.Errorf("refreshes ok=%v shared=%v, want 1 and %d", ok, shared, workers-1)
	}
	if got := e.metric("exchange_token_endpoint_duration_seconds", "grant", "refresh_token"); got != 1 {
		t.Errorf("token endpoint histogram counted %v refresh calls, want 1", got)
	}
}

// TestRefreshWithoutCookie: nobody signed in is 401, and leftovers are
// cleared.
func TestRefreshWithoutCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for name, cookie := range map[string]string{
		"none":                      "",
		"not ours":                  e.ex.names.refresh + "=garbage",
		"sealed for another cookie": e.ex.names.refresh + "=" + e.ex.sealer.seal(e.ex.names.session, []byte(`{"rt":"x"}`)),
	} {
		t.Run(name, func(t *testing.T) {
			h := []string{"X-CSRF", "1"}
			if cookie != "" {
				h = append(h, "Cookie", cookie)
			}
			r := e.newBrowser().do(http.MethodPost, refreshPath, h...)
			if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("Content-Type"), "application/problem+json") {
				t.Errorf("%d %q %s, want a 401 problem", r.status, r.header.Get("Content-Type"), r.body)
			}
			e.checkCleared(t, r)
		})
	}
	if n := e.calls.count("/token"); n != 0 {
		t.Errorf("%d token requests, want none", n)
	}
}

// TestSignOut: DELETE /refreshtoken revokes the refresh token at devidp,
// clears every cookie (logins in flight too), and answers the end-session
// URL, which devidp accepts.
func TestSignOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	b.login("alice", "")
	n := e.ex.names
	sealed := b.cookieValue(n.refresh, refreshPath)
	sess1 := n.session + "=" + b.cookieValue(n.session, "/")
	rt := e.refreshToken(b)
	at := b.cookieValue(n.access, "/")
	if !e.introspect(at) {
		t.Fatal("the grant's access token is not active before sign-out")
	}
	b.startLogin("/pending") // a login in flight in another tab

	r := b.do(http.MethodDelete, refreshPath, "X-CSRF", "1", "Origin", e.URL)
	if r.status != http.StatusOK {
		t.Fatalf("sign-out: %d %s", r.status, r.body)
	}
	body := r.json(t)
	if body["revoked"] != true || body["revocation"] != "ok" {
		t.Errorf("revoked = %v, revocation = %v", body["revoked"], body["revocation"])
	}
	e.checkCleared(t, r)
	if names := b.cookieNamesAt(e.URL + refreshPath); len(names) != 0 {
		t.Errorf("cookies left after sign-out: %v", names)
	}
	if e.introspect(at) {
		t.Error("the grant's access token is still active at devidp")
	}
	if e.refreshAccepted(rt) {
		t.Error("devidp still accepts the refresh token")
	}
	if e.calls.count("/revoke") != 2 {
		t.Errorf("%d revocation requests, want 2 (the refresh token, then the access token)", e.calls.count("/revoke"))
	}

	end, err := url.Parse(body["end_session_url"].(string))
	if err != nil || end.Scheme+"://"+end.Host+end.Path != e.idp.URL+"/logout" {
		t.Fatalf("end_session_url %v (%v)", body["end_session_url"], err)
	}
	q := end.Query()
	if q.Get("id_token_hint") == "" || q.Get("post_logout_redirect_uri") != e.URL+"/" || q.Get("client_id") != testClientID {
		t.Errorf("end_session_url query %v", q)
	}
	// devidp checks the hint and the registered post-logout URI.
	if r := b.get(end.String()); r.status != http.StatusSeeOther || r.header.Get("Location") != e.URL+"/" {
		t.Errorf("devidp's end-session endpoint: %d, Location %q", r.status, r.header.Get("Location"))
	}

	if r := b.get(mePath); r.status != http.StatusUnauthorized {
		t.Errorf("GET /me after sign-out: %d", r.status)
	}
	// The revoked refresh token, even replayed within the grace window,
	// gets nothing.
	r = e.newBrowser().do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", n.refresh+"="+sealed+"; "+sess1)
	if r.status != http.StatusUnauthorized {
		t.Errorf("refresh with the revoked token: %d %s", r.status, r.body)
	}
	if got := e.metric("exchange_logouts_total", "revocation", "ok"); got != 1 {
		t.Errorf("logouts{ok} = %v", got)
	}
}

// TestSignOutAfterRefresh: the grace cache must not hand the refreshed
// tokens to the replaced refresh token once the user signed out.
func TestSignOutAfterRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	b.login("alice", "")
	n := e.ex.names
	sealed1 := b.cookieValue(n.refresh, refreshPath)
	sess1 := n.session + "=" + b.cookieValue(n.session, "/")
	if r := b.do(http.MethodPost, refreshPath, "X-CSRF", "1"); r.status != http.StatusOK {
		t.Fatalf("refresh: %d", r.status)
	}
	if r := b.do(http.MethodDelete, refreshPath, "X-CSRF", "1"); r.status != http.StatusOK {
		t.Fatalf("sign-out: %d", r.status)
	}
	r := e.newBrowser().do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", n.refresh+"="+sealed1+"; "+sess1)
	if r.status != http.StatusUnauthorized {
		t.Errorf("refresh with the replaced token after sign-out: %d %s", r.status, r.body)
	}
	e.checkCleared(t, r)
}

// TestSignOutWithoutRefreshCookie: sign-out works, minus the revocation,
// for a browser whose refresh cookie is gone.
func TestSignOutWithoutRefreshCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	r := e.newBrowser().do(http.MethodDelete, refreshPath, "X-CSRF", "1")
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	body := r.json(t)
	end, _ := url.Parse(body["end_session_url"].(string))
	q := end.Query()
	if body["revoked"] != false || body["revocation"] != "none" || q.Has("id_token_hint") || q.Get("client_id") != testClientID || q.Get("post_logout_redirect_uri") != e.URL+"/" {
		t.Errorf("answer %v", body)
	}
	e.checkCleared(t, r)
	if e.calls.count("/revoke") != 0 {
		t.Error("a revocation request without a refresh token")
	}
	if got := e.metric("exchange_logouts_total", "revocation", "none"); got != 1 {
		t.Errorf("logouts{none} = %v", got)
	}
}

// TestAuthorizationServerDown: refresh answers 503 with Retry-After and
// keeps the cookies (the person is still signed in); sign-out still signs
// out; a callback shows a page.
func TestAuthorizationServerDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	b.login("alice", "")
	pending := e.authorize(b.startLogin(""), "alice")
	e.idp.Close()

	r := b.do(http.MethodPost, refreshPath, "X-CSRF", "1")
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" || len(r.cookies) != 0 {
		t.Errorf("refresh: %d, Retry-After %q, cookies %v; want 503 changing nothing", r.status, r.header.Get("Retry-After"), r.cookies)
	}
	if got := e.metric("exchange_token_endpoint_duration_seconds", "grant", "refresh_token", "result", "unavailable"); got != 1 {
		t.Errorf("token endpoint unavailable observations = %v", got)
	}

	r = b.get(pending)
	if r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "not answering") {
		t.Errorf("callback: %d\n%s", r.status, r.body)
	}

	r = b.do(http.MethodDelete, refreshPath, "X-CSRF", "1")
	if r.status != http.StatusOK || r.json(t)["revoked"] != false {
		t.Errorf("sign-out: %d %s", r.status, r.body)
	}
	e.checkCleared(t, r)
	if got := e.metric("exchange_logouts_total", "revocation", "failed"); got != 1 {
		t.Errorf("logouts{failed} = %v", got)
	}
}

// TestWrongClientSecret: the server refuses the code exchange; the page
// names the error, the log names it too, and neither shows the secret.
func TestWrongClientSecret(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{exchange: func(c *Config) { c.ClientSecret = "not-the-registered-secret" }})
	b := e.newBrowser()
	r := b.get(e.authorize(b.startLogin(""), "alice"))
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "invalid_client") || strings.Contains(r.body, e.cfg.ClientSecret) {
		t.Errorf("callback: %d\n%s", r.status, r.body)
	}
	if !strings.Contains(e.logs.String(), `"reason":"invalid_client"`) {
		t.Errorf("the error code is not logged:\n%s", e.logs)
	}
	if e.calls.count("/token") != 1 {
		t.Errorf("%d token requests, want exactly 1 (no retry with the other client authentication)", e.calls.count("/token"))
	}
}

// TestRefreshNeedsSession: a refresh cookie without the session cookie
// (which lives as long as it, so our own browsers never hold one alone) is
// refused before any token request: it may have been planted by another
// host of the site, and would sign the browser in as its owner.
func TestRefreshNeedsSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	b.login("bob", "")
	n := e.ex.names
	tokens := e.calls.count("/token")
	r := e.newBrowser().do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", n.refresh+"="+b.cookieValue(n.refresh, refreshPath))
	if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "no session") {
		t.Fatalf("refresh without a session cookie: %d %s, want 401 no session", r.status, r.body)
	}
	if got := e.calls.count("/token") - tokens; got != 0 {
		t.Errorf("%d token requests, want none", got)
	}
	e.checkCleared(t, r)
	if got := e.metric("exchange_refreshes_total", "outcome", "no_session"); got != 1 {
		t.Errorf("refreshes{no_session} = %v, want 1", got)
	}
	// bob's own browser, with both cookies, still refreshes.
	if r := b.do(http.MethodPost, refreshPath, "X-CSRF", "1"); r.status != http.StatusOK {
		t.Errorf("refresh with both cookies: %d %s", r.status, r.body)
	}
}

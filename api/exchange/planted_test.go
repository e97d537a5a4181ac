package exchange

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// Cookie tossing: a host of the site (siblingHost) sets cookies with
// Domain=parentDomain, which the browser then sends to the exchange on
// siteHost along with the exchange's own.
const (
	siteHost     = "app.tollgate.localhost"
	siblingHost  = "evil.tollgate.localhost"
	parentDomain = "tollgate.localhost"
)

// jwtSubject reads sub from a JWT without verifying it.
func jwtSubject(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT (%d parts)", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	return claims.Sub
}

// cookieValues lists the values of name the jar would send to the
// exchange at path, in the order it would send them.
func (b *browser) cookieValues(name, path string) []string {
	u, _ := url.Parse(b.base + path)
	var vs []string
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			vs = append(vs, c.Value)
		}
	}
	return vs
}

// expires reports whether r deletes name at Domain=domain (empty: the
// host-only cookie) and Path=path.
func (r result) expires(name, domain, path string) bool {
	for _, c := range r.cookies {
		if c.Name == name && c.Domain == domain && c.Path == path && c.MaxAge < 0 {
			return true
		}
	}
	return false
}

// checkPlantedExpired fails unless r deletes name at each Domain= under
// which a host of the site could have set it, at each of paths.
func checkPlantedExpired(t *testing.T, r result, name string, paths ...string) {
	t.Helper()
	for _, d := range []string{siteHost, parentDomain} {
		for _, p := range paths {
			if !r.expires(name, d, p) {
				t.Errorf("%s not deleted at Domain=%s Path=%s", name, d, p)
			}
		}
	}
	checkPrefixRules(t, r.cookies)
}

// plantedRefresh is what a sibling host plants as the refresh cookie.
type plantedRefresh struct {
	name string
	// noIDToken: the server's refresh answers carry no ID token.
	noIDToken bool
	// fromAttacker: the attacker's own refresh cookie, from his sign-in as
	// bob; otherwise garbage.
	fromAttacker bool
}

var plantedRefreshes = []plantedRefresh{
	{name: "attacker's refresh cookie, refresh answers without ID token", noIDToken: true, fromAttacker: true},
	{name: "attacker's refresh cookie, refresh answers with an ID token", fromAttacker: true},
	{name: "garbage"},
}

// value signs the attacker in as bob and returns his sealed refresh cookie
// and the refresh token in it, or garbage.
func (p plantedRefresh) value(e *testEnv) (sealed, token string) {
	if !p.fromAttacker {
		return "garbage", ""
	}
	attacker := e.newBrowserAt(siteHost)
	attacker.login("bob", "")
	return attacker.cookieValue(e.ex.names.refresh, refreshPath), e.refreshToken(attacker)
}

// TestPlantedBeforeSignIn: a refresh cookie planted with Domain=<parent>
// before the victim signs in is older than the victim's, so the browser
// sends it first. Before the fix the exchange refreshed with it: the
// victim's browser got the attacker's access token while /me still named
// the victim (without an ID token in the refresh answer), or every refresh
// failed and the planted cookie outlived every sign-in (with one, or with
// garbage). The sign-in now deletes it.
func TestPlantedBeforeSignIn(t *testing.T) {
	t.Parallel()
	for _, p := range plantedRefreshes {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{redirectHost: siteHost, refreshWithoutIDToken: p.noIDToken})
			n := e.ex.names
			planted, _ := p.value(e)

			victim := e.newBrowserAt(siteHost)
			victim.plant(siblingHost, n.refresh, planted, parentDomain, refreshPath)
			victim.login("alice", "")
			if slices.Contains(victim.cookieValues(n.refresh, refreshPath), planted) {
				t.Error("the planted refresh cookie survived the sign-in")
			}
			r := victim.do(http.MethodPost, refreshPath, "X-CSRF", "1")
			if r.status != http.StatusOK {
				t.Fatalf("refresh: %d %s, want 200", r.status, r.body)
			}
			if sub := jwtSubject(t, victim.cookieValue(n.access, "/")); sub != "alice" {
				t.Errorf("the victim's access token is %s's", sub)
			}
			if me := victim.get(mePath); me.status != http.StatusOK || me.json(t)["sub"] != "alice" {
				t.Errorf("GET /me: %d %s", me.status, me.body)
			}
		})
	}
}

// TestTwoRefreshCookies: a request that carries two different refresh
// cookies is refused, whichever comes first: 401, no token request (so no
// refresh token is used up), every cookie cleared, and the planted one
// deleted under each Domain= the exchange can name, so that the next
// sign-in holds.
func TestTwoRefreshCookies(t *testing.T) {
	t.Parallel()
	for _, p := range plantedRefreshes {
		for _, plantedFirst := range []bool{true, false} {
			name := p.name + ", the victim's first"
			if plantedFirst {
				name = p.name + ", planted first"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, envOptions{redirectHost: siteHost, refreshWithoutIDToken: p.noIDToken})
				n := e.ex.names
				planted, plantedRT := p.value(e)
				victim := e.newBrowserAt(siteHost)
				victim.login("alice", "")
				victimRT := e.refreshToken(victim)
				tokens := e.calls.count("/token")

				var r result
				if plantedFirst {
					// As the browser sends a cookie planted before the
					// victim's: the older first.
					r = e.newBrowserAt(siteHost).do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie",
						n.refresh+"="+planted+"; "+n.refresh+"="+victim.cookieValue(n.refresh, refreshPath)+"; "+
							n.session+"="+victim.cookieValue(n.session, "/"))
				} else {
					victim.plant(siblingHost, n.refresh, planted, parentDomain, refreshPath)
					if got := victim.cookieValues(n.refresh, refreshPath); len(got) != 2 {
						t.Fatalf("the jar sends %d refresh cookies, want 2", len(got))
					}
					r = victim.do(http.MethodPost, refreshPath, "X-CSRF", "1")
				}
				if r.status != http.StatusUnauthorized || !strings.Contains(r.body, "not signed in") {
					t.Fatalf("refresh with two refresh cookies: %d %s, want 401 not signed in", r.status, r.body)
				}
				if got := e.calls.count("/token") - tokens; got != 0 {
					t.Errorf("%d token requests, want none", got)
				}
				if a := r.cookie(n.access); a != nil && a.MaxAge >= 0 {
					t.Error("an access token cookie was set")
				}
				e.checkCleared(t, r)
				checkPlantedExpired(t, r, n.refresh, refreshPath, "/")
				if !e.refreshAccepted(victimRT) || (plantedRT != "" && !e.refreshAccepted(plantedRT)) {
					t.Error("a refresh token is no longer active")
				}
				if got := e.metric("exchange_refreshes_total", "outcome", "ambiguous_cookie"); got != 1 {
					t.Errorf("refreshes{ambiguous_cookie} = %v, want 1", got)
				}
				if plantedFirst {
					return
				}
				if got := victim.cookieValues(n.refresh, refreshPath); len(got) != 0 {
					t.Errorf("%d refresh cookies left in the browser, want none", len(got))
				}
				// Signed out, the victim signs in again and stays signed in.
				victim.login("alice", "")
				if r := victim.do(http.MethodPost, refreshPath, "X-CSRF", "1"); r.status != http.StatusOK {
					t.Fatalf("refresh after signing in again: %d %s", r.status, r.body)
				}
				if sub := jwtSubject(t, victim.cookieValue(n.access, "/")); sub != "alice" {
					t.Errorf("the victim's access token is %s's", sub)
				}
			})
		}
	}
}

// TestSignOutWithTwoRefreshCookies: sign-out with two different refresh
// cookies revokes neither (before the fix it revoked the first, the
// planted one, and left the victim's active), still clears every cookie,
// the planted ones under their Domain= too, and answers the end-session
// URL. The victim's own access cookie, not in doubt, is still revoked
// (devidp then ends its grant, refresh token included).
func TestSignOutWithTwoRefreshCookies(t *testing.T) {
	t.Parallel()
	for _, plantedFirst := range []bool{true, false} {
		t.Run(map[bool]string{true: "planted first", false: "the victim's first"}[plantedFirst], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{redirectHost: siteHost})
			n := e.ex.names
			planted, plantedRT := plantedRefresh{fromAttacker: true}.value(e)
			victim := e.newBrowserAt(siteHost)
			victim.login("alice", "")
			victimRT := e.refreshToken(victim)

			var r result
			if plantedFirst {
				r = e.newBrowserAt(siteHost).do(http.MethodDelete, refreshPath, "X-CSRF", "1", "Cookie",
					n.refresh+"="+planted+"; "+n.refresh+"="+victim.cookieValue(n.refresh, refreshPath)+"; "+
						n.session+"="+victim.cookieValue(n.session, "/"))
			} else {
				victim.plant(siblingHost, n.refresh, planted, parentDomain, refreshPath)
				r = victim.do(http.MethodDelete, refreshPath, "X-CSRF", "1")
			}
			if r.status != http.StatusOK {
				t.Fatalf("sign-out: %d %s", r.status, r.body)
			}
			body := r.json(t)
			if body["revoked"] != false {
				t.Errorf("revoked = %v, want false", body["revoked"])
			}
			// The planted-first request carries the refresh and session
			// cookies only; the victim's browser its access cookie too.
			wantRevocations := map[bool]int{true: 0, false: 1}[plantedFirst]
			if got := e.calls.count("/revoke"); got != wantRevocations {
				t.Errorf("%d revocation requests, want %d (the access token's)", got, wantRevocations)
			}
			if !e.refreshAccepted(plantedRT) {
				t.Error("the planted refresh token was revoked")
			}
			if plantedFirst && !e.refreshAccepted(victimRT) {
				t.Error("the victim's refresh token was revoked without its access token")
			}
			if end, _ := body["end_session_url"].(string); !strings.Contains(end, "id_token_hint=") {
				t.Errorf("end_session_url %q lacks the hint from the (unambiguous) session", end)
			}
			e.checkCleared(t, r)
			checkPlantedExpired(t, r, n.refresh, refreshPath, "/")
			if !plantedFirst {
				if got := victim.cookieValues(n.refresh, refreshPath); len(got) != 0 {
					t.Errorf("%d refresh cookies left after sign-out, want none", len(got))
				}
			}
			if got := e.metric("exchange_logouts_total", "revocation", "ambiguous_cookie"); got != 1 {
				t.Errorf("logouts{ambiguous_cookie} = %v, want 1", got)
			}
		})
	}
}

// TestSignInDeletesPlantedCookies: the callback deletes the refresh
// cookie (and the access cookie, which COOKIE_DOMAIN lets siblings plant
// too) under every Domain= it can name, before it sets its own.
func TestSignInDeletesPlantedCookies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		domain string
		names  []string // Domain= the refresh cookie is deleted under
	}{
		{name: "host-only", names: []string{siteHost, parentDomain}},
		// COOKIE_DOMAIN=localhost: one label, named because configured.
		{name: "COOKIE_DOMAIN=localhost", domain: "localhost", names: []string{siteHost, parentDomain, "localhost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{redirectHost: siteHost, exchange: func(c *Config) { c.CookieDomain = tc.domain }})
			n := e.ex.names
			_, cb := e.rawLogin(t)
			for _, d := range tc.names {
				for _, p := range []string{refreshPath, "/"} {
					if !cb.expires(n.refresh, d, p) {
						t.Errorf("the sign-in does not delete %s at Domain=%s Path=%s", n.refresh, d, p)
					}
				}
			}
			if tc.domain != "" && !cb.expires(n.access, siteHost, "/") {
				t.Errorf("the sign-in does not delete %s at Domain=%s", n.access, siteHost)
			}
			if cb.expires(n.access, tc.domain, "/") {
				t.Errorf("the sign-in deletes its own access cookie")
			}
			// The cookies it sets come after the deletions, so that a
			// browser that files a Domain= equal to the host as the
			// host-only cookie still ends with the new one.
			if c := cb.cookies[len(cb.cookies)-1]; c.MaxAge < 0 {
				t.Errorf("the last Set-Cookie is a deletion: %v", c)
			}
			for _, name := range []string{n.refresh, n.access, n.session} {
				if c := cb.cookie(name); c == nil || c.MaxAge <= 0 {
					t.Errorf("%s not set: %v", name, c)
				}
			}
			checkPrefixRules(t, cb.cookies)
			if slices.ContainsFunc(cb.cookies, func(c *http.Cookie) bool {
				return c.Domain != "" && strings.Count(c.Domain, ".") == 0 && c.Domain != tc.domain
			}) {
				t.Errorf("a one-label Domain= other than COOKIE_DOMAIN: %v", cb.cookies)
			}
		})
	}
}

// TestRefreshCannotChangeSubject: the refresh cookie is sealed with the
// subject it was issued to; a refresh cookie of someone else than the
// session's user is refused before any token request. Before the fix, a
// refresh answer without an ID token (which OpenID Connect Core §12.2
// allows) handed the victim's browser the attacker's access token while
// /me still named the victim.
func TestRefreshCannotChangeSubject(t *testing.T) {
	t.Parallel()
	for _, noIDToken := range []bool{true, false} {
		t.Run(map[bool]string{true: "without ID token", false: "with ID token"}[noIDToken], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{refreshWithoutIDToken: noIDToken})
			n := e.ex.names
			victim, attacker := e.newBrowser(), e.newBrowser()
			victim.login("alice", "")
			attacker.login("bob", "")
			tokens := e.calls.count("/token")
			bobs := n.refresh + "=" + attacker.cookieValue(n.refresh, refreshPath)
			alices := n.session + "=" + victim.cookieValue(n.session, "/")

			r := e.newBrowser().do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", bobs+"; "+alices)
			if r.status != http.StatusUnauthorized {
				t.Fatalf("refresh with bob's refresh cookie and alice's session: %d %s, want 401", r.status, r.body)
			}
			if got := e.calls.count("/token") - tokens; got != 0 {
				t.Errorf("%d token requests, want none", got)
			}
			e.checkCleared(t, r)
			if got := e.metric("exchange_refreshes_total", "outcome", "subject_mismatch"); got != 1 {
				t.Errorf("refreshes{subject_mismatch} = %v, want 1", got)
			}

			// With bob's own session, bob's refresh cookie works, ID token
			// or not: so the refused request did not use up bob's token
			// (devidp rotates and detects reuse).
			r = e.newBrowser().do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", bobs+"; "+n.session+"="+attacker.cookieValue(n.session, "/"))
			var sess session
			if c := r.cookie(n.session); r.status != http.StatusOK || c == nil || e.ex.sealer.openJSON(n.session, c.Value, &sess) != nil {
				t.Fatalf("refresh with bob's own cookies: %d %s", r.status, r.body)
			}
			if sess.Subject != "bob" {
				t.Errorf("renewed session for %q, want bob", sess.Subject)
			}
			var rc refreshCookie
			if c := r.cookie(n.refresh); c == nil || e.ex.sealer.openJSON(n.refresh, c.Value, &rc) != nil || rc.Subject != "bob" {
				t.Errorf("the rotated refresh cookie is not bound to bob: %+v", rc)
			}
		})
	}
}

// TestRefreshCookieWithoutSubject: a refresh cookie sealed before the
// subject was sealed with it cannot be checked against the session, so it
// is refused without a token request: such browsers sign in once more.
func TestRefreshCookieWithoutSubject(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{refreshWithoutIDToken: true})
	n := e.ex.names
	victim := e.newBrowser()
	victim.login("alice", "")
	var rc refreshCookie
	if err := e.ex.sealer.openJSON(n.refresh, victim.cookieValue(n.refresh, refreshPath), &rc); err != nil {
		t.Fatal(err)
	}
	legacy, err := e.ex.sealer.sealJSON(n.refresh, map[string]any{"rt": rc.Token, "exp": rc.Expires})
	if err != nil {
		t.Fatal(err)
	}
	tokens := e.calls.count("/token")
	r := e.newBrowser().do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie",
		n.refresh+"="+legacy+"; "+n.session+"="+victim.cookieValue(n.session, "/"))
	if r.status != http.StatusUnauthorized {
		t.Fatalf("refresh with a refresh cookie without subject: %d %s, want 401", r.status, r.body)
	}
	if got := e.calls.count("/token") - tokens; got != 0 {
		t.Errorf("%d token requests, want none", got)
	}
	e.checkCleared(t, r)
}

// TestTwoSessionCookies: two different session cookies (planted from a
// sibling domain when COOKIE_SECURE=false drops the __Host- prefix) make
// /me answer 401, refresh answer 401 without a token request, and
// sign-out leave out the id_token_hint; each deletes the session cookie
// under the Domain= it can name when its name allows one.
func TestTwoSessionCookies(t *testing.T) {
	t.Parallel()
	for _, insecure := range []bool{false, true} {
		t.Run(map[bool]string{false: "secure", true: "COOKIE_SECURE=false"}[insecure], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{redirectHost: siteHost, exchange: func(c *Config) { c.InsecureCookies = insecure }})
			n := e.ex.names
			victim, attacker := e.newBrowserAt(siteHost), e.newBrowserAt(siteHost)
			victim.login("alice", "")
			attacker.login("bob", "")
			sessions := n.session + "=" + victim.cookieValue(n.session, "/") + "; " + n.session + "=" + attacker.cookieValue(n.session, "/")
			refresh := n.refresh + "=" + victim.cookieValue(n.refresh, refreshPath)
			checkSessionVariants := func(r result, paths ...string) {
				t.Helper()
				if insecure {
					checkPlantedExpired(t, r, n.session, paths...)
				} else {
					checkPrefixRules(t, r.cookies)
				}
			}

			me := e.newBrowser().do(http.MethodGet, mePath, "Cookie", sessions)
			if me.status != http.StatusUnauthorized {
				t.Errorf("GET /me with two session cookies: %d %s, want 401", me.status, me.body)
			}
			checkSessionVariants(me, "/", mePath, refreshPath)

			tokens := e.calls.count("/token")
			r := e.newBrowser().do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", refresh+"; "+sessions)
			if r.status != http.StatusUnauthorized {
				t.Errorf("refresh with two session cookies: %d %s, want 401", r.status, r.body)
			}
			if got := e.calls.count("/token") - tokens; got != 0 {
				t.Errorf("%d token requests, want none", got)
			}
			e.checkCleared(t, r)
			checkSessionVariants(r, "/", mePath, refreshPath)

			// The refresh cookie is unambiguous: sign-out revokes it, but
			// names no session's ID token as the hint.
			out := e.newBrowser().do(http.MethodDelete, refreshPath, "X-CSRF", "1", "Cookie", refresh+"; "+sessions)
			if out.status != http.StatusOK {
				t.Fatalf("sign-out: %d %s", out.status, out.body)
			}
			body := out.json(t)
			if end, _ := body["end_session_url"].(string); strings.Contains(end, "id_token_hint=") {
				t.Errorf("end_session_url %q has a hint from one of two session cookies", end)
			}
			if body["revoked"] != true {
				t.Errorf("revoked = %v, want true", body["revoked"])
			}
			e.checkCleared(t, out)
			checkSessionVariants(out, "/", mePath, refreshPath)
		})
	}
}

// TestTwoTransactionCookies: a callback whose transaction cookie comes
// twice with different values is refused before any token request, and the
// cookie is deleted.
func TestTwoTransactionCookies(t *testing.T) {
	t.Parallel()
	for _, validFirst := range []bool{true, false} {
		t.Run(map[bool]string{true: "valid first", false: "valid second"}[validFirst], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			b := e.newBrowser()
			cb, _ := url.Parse(e.authorize(b.startLogin(""), "alice"))
			name := e.ex.names.txCookieName(cb.Query().Get("state"))
			valid, other := name+"="+b.cookieValue(name, callbackPath), name+"=garbage"
			cookies := valid + "; " + other
			if !validFirst {
				cookies = other + "; " + valid
			}
			tokens := e.calls.count("/token")
			r := e.newBrowser().do(http.MethodGet, cb.RequestURI(), "Cookie", cookies)
			if r.status != http.StatusBadRequest {
				t.Fatalf("callback with two transaction cookies: %d, want 400\n%s", r.status, r.body)
			}
			if got := e.calls.count("/token") - tokens; got != 0 {
				t.Errorf("%d token requests, want none", got)
			}
			if !r.expires(name, "", "/") {
				t.Errorf("%s not deleted: %v", name, r.cookies)
			}
		})
	}
}

// TestPlantDomains: the Domain= values the exchange deletes planted
// cookies under.
func TestPlantDomains(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host, cookieDomain string
		want               []string
	}{
		{host: "app.example.com", want: []string{"app.example.com", "example.com"}},
		{host: "a.b.example.co.uk", want: []string{"a.b.example.co.uk", "b.example.co.uk", "example.co.uk", "co.uk"}},
		{host: "App.Example.COM.", want: []string{"app.example.com", "example.com"}},
		{host: "app.example.com", cookieDomain: "example.com", want: []string{"app.example.com", "example.com"}},
		{host: "app.localhost", cookieDomain: "localhost", want: []string{"app.localhost", "localhost"}},
		{host: "app.localhost", want: []string{"app.localhost"}},
		{host: "localhost", want: []string{"localhost"}},
		{host: "127.0.0.1", want: nil},
		{host: "::1", want: nil},
		{host: "", want: nil},
	} {
		if got := plantDomains(tc.host, tc.cookieDomain); !slices.Equal(got, tc.want) {
			t.Errorf("plantDomains(%q, %q) = %q, want %q", tc.host, tc.cookieDomain, got, tc.want)
		}
	}
}

// TestAmbiguousCookies: two different values of one name are ambiguous;
// the same value twice, or one value, is not.
func TestAmbiguousCookies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		header string
		want   []string
	}{
		{"", nil},
		{"a=1", nil},
		{"a=1; a=1", nil},
		{"a=1; b=2", nil},
		{"a=1; a=2", []string{"a"}},
		{"a=1; a=", []string{"a"}},
		{"a=; a=1", []string{"a"}},
		{"a=1; a=1; a=2; b=1; b=2", []string{"a", "b"}},
	} {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		if tc.header != "" {
			r.Header.Set("Cookie", tc.header)
		}
		if got := ambiguousCookies(r, "a", "b"); !slices.Equal(got, tc.want) {
			t.Errorf("ambiguousCookies(%q) = %q, want %q", tc.header, got, tc.want)
		}
		if v, ok := requestCookie(r, "a"); len(tc.want) > 0 && tc.want[0] == "a" && (ok || v != "") {
			t.Errorf("requestCookie(%q) = %q, %v; want nothing", tc.header, v, ok)
		}
	}
}

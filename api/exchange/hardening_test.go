package exchange

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// TestSignInWithoutRefreshTokenDropsTheOldOne: a sign-in whose grant has
// no refresh token (no offline_access) deletes a refresh cookie left by an
// earlier sign-in, which may be another person's: refreshing with it would
// swap the new user's access token for the old user's.
func TestSignInWithoutRefreshTokenDropsTheOldOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, tc := range []struct {
		name        string
		refresh     string
		wantDeleted bool
	}{
		{"no refresh token", "", true},
		{"a refresh token", "rt-new", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tok := &oauth2.Token{AccessToken: "at", RefreshToken: tc.refresh}
			if err := e.ex.setTokenCookies(w, tok, &session{Subject: "bob"}, ""); err != nil {
				t.Fatal(err)
			}
			var got *http.Cookie
			for _, c := range w.Result().Cookies() {
				if c.Name == e.ex.names.refresh {
					got = c
				}
			}
			switch {
			case got == nil:
				t.Fatalf("no Set-Cookie for %s", e.ex.names.refresh)
			case tc.wantDeleted && (got.MaxAge >= 0 || got.Path != refreshPath):
				t.Errorf("refresh cookie %v, want it deleted at Path=%s", got, refreshPath)
			case !tc.wantDeleted && got.MaxAge <= 0:
				t.Errorf("refresh cookie %v, want it set", got)
			}
		})
	}
}

// TestExpiredRefreshCookie: a sealed refresh cookie past the expiry sealed
// into it is refused without asking the server, even when a copy of it is
// replayed after the browser dropped it.
func TestExpiredRefreshCookie(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	b.login("alice", "")
	sealed := b.cookieValue(e.ex.names.refresh, refreshPath)
	e.clock.advance(e.ex.cfg.RefreshCookieMaxAge + time.Second)
	before := e.calls.count("/token")
	r := e.newBrowser().do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", e.ex.names.refresh+"="+sealed)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("refresh with an expired sealed cookie: %d, want 401", r.status)
	}
	if n := e.calls.count("/token") - before; n != 0 {
		t.Errorf("%d token requests, want none", n)
	}
}

// TestGraceForget: a sign-out forgets the refresh token, so that a refresh
// still running with it neither caches its result nor hands it out.
func TestGraceForget(t *testing.T) {
	clock := &testClock{}
	g := newGraceCache(20*time.Second, time.Minute, clock.Now)
	res := refreshResult{tok: &oauth2.Token{RefreshToken: "rt2"}}
	g.forget("rt1")
	g.put(hashKey("rt1"), res)
	if _, ok := g.get(hashKey("rt1")); ok {
		t.Error("a result for a forgotten refresh token was cached")
	}
	if !g.isForgotten(hashKey("rt1")) {
		t.Error("rt1 not reported forgotten")
	}
	clock.advance(time.Minute)
	if g.isForgotten(hashKey("rt1")) {
		t.Error("rt1 still forgotten after forgetFor")
	}
	g.put(hashKey("rt1"), res)
	if _, ok := g.get(hashKey("rt1")); !ok {
		t.Error("after forgetFor a result is cached again")
	}
	// Expired entries (which hold tokens) are swept on a later put, not
	// only when the cache is full.
	clock.advance(21 * time.Second)
	g.put(hashKey("rt3"), res)
	g.mu.Lock()
	_, stale := g.entries[hashKey("rt1")]
	g.mu.Unlock()
	if stale {
		t.Error("an expired entry is still held after a sweep")
	}
}

// TestGuardedClient: requests to the authorization server never follow a
// redirect (a 307 would re-post the code and secret elsewhere), and an
// answer over the cap ends in an error, not an unbounded read.
func TestGuardedClient(t *testing.T) {
	t.Parallel()
	var elsewhere bool
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere = true }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
		case "/huge":
			_, _ = io.Copy(w, io.LimitReader(zeros{}, maxServerResponseBytes+1))
		}
	}))
	defer srv.Close()
	c := guardedClient(nil, 5*time.Second)

	resp, err := c.Post(srv.URL+"/redirect", "application/x-www-form-urlencoded", strings.NewReader("client_secret=s"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || elsewhere {
		t.Errorf("redirect followed: status %d, reached the other server: %v", resp.StatusCode, elsewhere)
	}

	resp, err = c.Get(srv.URL + "/huge")
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !errors.Is(err, errResponseTooLarge) {
		t.Errorf("reading an answer over the cap: %v, want errResponseTooLarge", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// TestRefreshForAnotherSubject: a refresh whose new ID token names someone
// other than the session's user signs the browser out instead of mixing
// one person's session with another's tokens. The refresh result is put in
// the grace cache, where the handler finds it as it would a shared one.
func TestRefreshForAnotherSubject(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	b.login("alice", "")
	var rc refreshCookie
	if err := e.ex.sealer.openJSON(e.ex.names.refresh, b.cookieValue(e.ex.names.refresh, refreshPath), &rc); err != nil {
		t.Fatal(err)
	}
	e.ex.grace.put(hashKey(rc.Token), refreshResult{
		tok: &oauth2.Token{AccessToken: "someone-elses-access-token", RefreshToken: "someone-elses-refresh-token"},
		idt: &idTokenInfo{sub: "mallory", raw: "x"},
	})
	r := b.do(http.MethodPost, refreshPath, "X-CSRF", "1")
	if r.status != http.StatusUnauthorized {
		t.Fatalf("refresh for another subject: %d, want 401", r.status)
	}
	e.checkCleared(t, r)
	if v := b.cookieValue(e.ex.names.access, "/"); v == "someone-elses-access-token" {
		t.Error("the other subject's access token was set")
	}
}

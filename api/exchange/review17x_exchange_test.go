package exchange

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestReview17xEndpointWithoutHostname: an endpoint URL with a scheme and a
// port but no host name ("https://:443/x") is not an absolute URL either:
// Go would dial the exchange's own machine with it.
func TestReview17xEndpointWithoutHostname(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"authorization_endpoint", "token_endpoint", "revocation_endpoint", "end_session_endpoint", "jwks_uri"} {
		t.Run("https issuer, "+f, func(t *testing.T) {
			t.Parallel()
			_, err := newAt(t, discoveryServer(t, true, func(_ string, doc map[string]any) { doc[f] = "https://:443/x" }))
			if err == nil || !strings.Contains(err.Error(), f) {
				t.Fatalf("New: %v, want an error naming %s", err, f)
			}
		})
		t.Run("http issuer, "+f, func(t *testing.T) {
			t.Parallel()
			_, err := newAt(t, discoveryServer(t, false, func(_ string, doc map[string]any) { doc[f] = "http://:9/x" }))
			if err == nil || !strings.Contains(err.Error(), f) {
				t.Fatalf("New: %v, want an error naming %s", err, f)
			}
		})
	}
}

// TestReview17xFormEncodedExpiresIn: a form-encoded answer's expires_in,
// which checkTokenResponse accepts, sets the access cookie's lifetime as a
// JSON one does (Token.Extra gives it as int64), at sign-in and at refresh.
func TestReview17xFormEncodedExpiresIn(t *testing.T) {
	t.Parallel()
	for _, grant := range []string{"authorization_code", "refresh_token"} {
		t.Run(grant, func(t *testing.T) {
			t.Parallel()
			rw := &answerRewrite{grant: grant, token: formAnswer(map[string]string{"expires_in": "60"})}
			e := newEnv(t, envOptions{exchange: withRewrite(rw)})
			b := e.newBrowser()
			r := b.login("alice", "")
			if grant == "refresh_token" {
				r = b.do(http.MethodPost, refreshPath, "X-CSRF", "1")
			}
			ck := r.cookie(e.ex.names.access)
			if ck == nil {
				t.Fatalf("%d, no access cookie\n%s", r.status, r.body)
			}
			if ck.MaxAge < 59 || ck.MaxAge > 60 {
				t.Errorf("access cookie Max-Age %d, want 60 (expires_in of the form-encoded answer)", ck.MaxAge)
			}
		})
	}
}

// slowRevocation holds every revocation request until its context ends,
// as an authorization server that accepts the connection and never
// answers.
type slowRevocation struct{ next http.RoundTripper }

func (s slowRevocation) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == "/revoke" {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
	return s.next.RoundTrip(req)
}

// TestReview17xSignOutBoundedInTotal: revoking two tokens at a server that
// never answers holds a sign-out for one HTTPTimeout in all, not one per
// token; the cookies are still cleared and the answer says failed.
func TestReview17xSignOutBoundedInTotal(t *testing.T) {
	t.Parallel()
	const timeout = 700 * time.Millisecond
	e := newEnv(t, envOptions{exchange: func(c *Config) {
		c.HTTPTimeout = timeout
		c.HTTPClient = &http.Client{Transport: slowRevocation{next: c.HTTPClient.Transport}}
	}})
	b := e.newBrowser()
	b.login("alice", "")
	start := time.Now()
	r := b.do(http.MethodDelete, refreshPath, "X-CSRF", "1")
	took := time.Since(start)
	if body := r.json(t); r.status != http.StatusOK || body["revocation"] != "failed" || body["revoked"] != false {
		t.Errorf("sign-out: %d %v, want 200 revocation failed", r.status, body)
	}
	e.checkCleared(t, r)
	if took > timeout+timeout/2 {
		t.Errorf("sign-out took %v, want about one HTTPTimeout (%v) in all", took, timeout)
	}
}

// redirectTo answers every POST to path with a 307 or 308 to target, as an
// endpoint that moved (or was subverted) might.
type redirectTo struct {
	next         http.RoundTripper
	path, target string
	status       int
}

func (d redirectTo) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && req.URL.Path == d.path {
		resp := rawResponse(req, d.status, "text/plain", nil)
		resp.Header.Set("Location", d.target)
		return resp, nil
	}
	return d.next.RoundTrip(req)
}

// TestReview17xRedirectToHTTPNotFollowed: a token or revocation endpoint
// that answers 307/308 to an http URL does not get the code, the refresh
// token, the access token or the client secret re-posted there: the
// redirect is not followed. Sign-in and refresh fail (502), sign-out
// answers failed and still clears the cookies.
func TestReview17xRedirectToHTTPNotFollowed(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, path string
		status     int
	}{
		{"revocation 307", "/revoke", http.StatusTemporaryRedirect},
		{"revocation 308", "/revoke", http.StatusPermanentRedirect},
		{"token 307", "/token", http.StatusTemporaryRedirect},
		{"token 308", "/token", http.StatusPermanentRedirect},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			hits := 0
			sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				hits++
				mu.Unlock()
				_, _ = io.WriteString(w, `{"access_token":"x","token_type":"Bearer"}`)
			}))
			t.Cleanup(sink.Close)
			var rd *redirectTo
			e := newEnv(t, envOptions{exchange: func(c *Config) {
				rd = &redirectTo{next: c.HTTPClient.Transport, target: sink.URL + "/steal", status: tc.status}
				c.HTTPClient = &http.Client{Transport: rd, Timeout: c.HTTPClient.Timeout}
			}})
			b := e.newBrowser()
			if tc.path == "/token" {
				// Sign-in first, with the real endpoint; then the refresh
				// meets the redirect.
				b.login("alice", "")
				rd.path = tc.path
				if r := b.do(http.MethodPost, refreshPath, "X-CSRF", "1"); r.status != http.StatusBadGateway {
					t.Errorf("refresh: %d %s, want 502", r.status, r.body)
				}
				b2 := e.newBrowser()
				if r := b2.get(e.authorize(b2.startLogin(""), "alice")); r.status != http.StatusBadGateway {
					t.Errorf("callback: %d, want 502", r.status)
				}
			} else {
				rd.path = tc.path
				b.login("alice", "")
				r := b.do(http.MethodDelete, refreshPath, "X-CSRF", "1")
				if body := r.json(t); body["revocation"] != "failed" {
					t.Errorf("sign-out: %v, want revocation failed", body)
				}
				e.checkCleared(t, r)
			}
			mu.Lock()
			defer mu.Unlock()
			if hits != 0 {
				t.Errorf("%d requests reached the redirect's http target", hits)
			}
		})
	}
}

// rawTokenAnswer replaces the token answer with devidp's access, refresh
// and ID tokens followed by the members in tail, written as given (in
// order, duplicates kept).
func rawTokenAnswer(tail string) func(map[string]any) (string, []byte) {
	return func(body map[string]any) (string, []byte) {
		parts := []string{}
		for _, k := range []string{"access_token", "refresh_token", "id_token"} {
			if v, ok := body[k].(string); ok {
				parts = append(parts, strconv.Quote(k)+":"+strconv.Quote(v))
			}
		}
		return "application/json", []byte("{" + strings.Join(parts, ",") + "," + tail + "}")
	}
}

// TestReview17xTokenTypeCaseVariantMember: an answer whose token_type
// member says DPoP is refused even when a later member whose name differs
// only in case (which encoding/json, and so oauth2's Token.TokenType,
// takes for token_type) says Bearer.
func TestReview17xTokenTypeCaseVariantMember(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, tail, code string }{
		{"token_type DPoP, TOKEN_TYPE Bearer", `"expires_in":300,"token_type":"DPoP","TOKEN_TYPE":"Bearer"`, "unsupported_token_type"},
		{"token_type DPoP, Token_Type Bearer", `"expires_in":300,"token_type":"DPoP","Token_Type":"Bearer"`, "unsupported_token_type"},
		{"TOKEN_TYPE Bearer alone", `"expires_in":300,"TOKEN_TYPE":"Bearer"`, "unsupported_token_type"},
		{"token_type Bearer twice", `"expires_in":300,"token_type":"Bearer","token_type":"bearer"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rw := &answerRewrite{grant: "authorization_code", token: rawTokenAnswer(tc.tail)}
			e := newEnv(t, envOptions{exchange: withRewrite(rw)})
			b := e.newBrowser()
			r := b.get(e.authorize(b.startLogin(""), "alice"))
			if tc.code == "" {
				if r.status != http.StatusSeeOther {
					t.Fatalf("callback: %d, want 303\n%s", r.status, r.body)
				}
				return
			}
			if r.status != http.StatusBadGateway || !strings.Contains(r.body, tc.code) {
				t.Fatalf("callback: %d, want 502 naming %s\n%s", r.status, tc.code, r.body)
			}
			if b.cookieValue(e.ex.names.access, "/") != "" {
				t.Error("the browser holds an access token after a refused answer")
			}
		})
	}
}

// TestReview17xEndpointSpellings: spellings of a downgrade that url.Parse
// might let through under an https ISSUER are refused; an upper-case HTTPS
// scheme (url.Parse lowers it) is not a downgrade and is accepted.
func TestReview17xEndpointSpellings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		value string
		ok    bool
	}{
		{"HTTP://127.0.0.1:9/x", false},
		{"Http://127.0.0.1:9/x", false},
		{"https:/127.0.0.1/x", false},
		{"https:127.0.0.1/x", false},
		{"https://user:pw@:443/x", false},
		{" https://127.0.0.1/x", false},
		{"https://127.0.0.1/x\n", false},
		{"https:\\\\127.0.0.1\\x", false},
		{"//127.0.0.1/x", false},
		{"HTTPS://127.0.0.1:9/x", true},
	} {
		t.Run(strconv.Quote(tc.value), func(t *testing.T) {
			t.Parallel()
			_, err := newAt(t, discoveryServer(t, true, func(_ string, doc map[string]any) { doc["revocation_endpoint"] = tc.value }))
			if tc.ok && err != nil {
				t.Fatalf("New: %v", err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "revocation_endpoint")) {
				t.Fatalf("New: %v, want an error naming revocation_endpoint", err)
			}
		})
	}
}

// TestReview17xAmbiguousAccessCookieStillForgets: a second access cookie
// (planted by another host of the site) keeps a sign-out from revoking,
// but not from forgetting the session's refresh token: the refresh token
// the last refresh replaced must not collect that refresh's result from the
// grace cache after the sign-out, as it cannot after one without the
// planted cookie.
func TestReview17xAmbiguousAccessCookieStillForgets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	n := e.ex.names
	b := e.newBrowser()
	b.login("alice", "")
	old := n.refresh + "=" + b.cookieValue(n.refresh, refreshPath) + "; " + n.session + "=" + b.cookieValue(n.session, "/")
	if r := b.do(http.MethodPost, refreshPath, "X-CSRF", "1"); r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	cookies := n.access + "=planted; " + n.access + "=" + b.cookieValue(n.access, "/") + "; " +
		n.refresh + "=" + b.cookieValue(n.refresh, refreshPath) + "; " + n.session + "=" + b.cookieValue(n.session, "/")
	r := e.send(&http.Client{}, http.MethodDelete, refreshPath, "X-CSRF", "1", "Cookie", cookies)
	if body := r.json(t); body["revocation"] != "ambiguous_cookie" {
		t.Fatalf("sign-out: %d %v, want ambiguous_cookie", r.status, body)
	}
	r = e.send(&http.Client{}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", old)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("the replaced refresh token after sign-out: %d %s, want 401", r.status, r.body)
	}
	e.checkCleared(t, r)
}

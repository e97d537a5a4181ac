package exchange

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// answerRewrite passes every request to the authorization server through
// and lets a test change answers on their way back: the 200 answers of the
// token endpoint to one grant type (raw body and content type), the
// discovery document, and the status of the revocation endpoint by
// token_type_hint. It records the token_type_hint of every revocation
// request, in order.
type answerRewrite struct {
	next http.RoundTripper
	// grant and token rewrite the token endpoint's 200 answers to grant.
	grant string
	token func(body map[string]any) (contentType string, raw []byte)
	// meta edits the discovery document.
	meta func(doc map[string]any)
	// revokeStatus, by hint, replaces the revocation endpoint's answer.
	revokeStatus map[string]int

	mu    sync.Mutex
	hints []string
}

func (a *answerRewrite) revokeHints() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.hints...)
}

func (a *answerRewrite) RoundTrip(req *http.Request) (*http.Response, error) {
	var form url.Values
	if req.Method == http.MethodPost && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		form, _ = url.ParseQuery(string(body))
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	if req.URL.Path == "/revoke" {
		a.mu.Lock()
		a.hints = append(a.hints, form.Get("token_type_hint"))
		a.mu.Unlock()
		if status, ok := a.revokeStatus[form.Get("token_type_hint")]; ok {
			return rawResponse(req, status, "application/json", []byte(`{"error":"server_error"}`)), nil
		}
	}
	resp, err := a.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	switch {
	case strings.HasSuffix(req.URL.Path, "/.well-known/openid-configuration") && a.meta != nil:
		doc, err := readJSON(resp)
		if err != nil {
			return nil, err
		}
		a.meta(doc)
		raw, _ := json.Marshal(doc)
		return rawResponse(req, http.StatusOK, "application/json", raw), nil
	case req.URL.Path == "/token" && a.token != nil && form.Get("grant_type") == a.grant:
		doc, err := readJSON(resp)
		if err != nil {
			return nil, err
		}
		ct, raw := a.token(doc)
		return rawResponse(req, http.StatusOK, ct, raw), nil
	}
	return resp, nil
}

func readJSON(resp *http.Response) (map[string]any, error) {
	defer resp.Body.Close()
	var m map[string]any
	err := json.NewDecoder(resp.Body).Decode(&m)
	return m, err
}

func rawResponse(req *http.Request, status int, contentType string, body []byte) *http.Response {
	return &http.Response{
		StatusCode: status, Status: strconv.Itoa(status) + " " + http.StatusText(status),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {contentType}, "Content-Length": {strconv.Itoa(len(body))}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
		Request:       req,
	}
}

// withRewrite makes the exchange's requests to devidp go through a.
func withRewrite(a *answerRewrite) func(*Config) {
	return func(c *Config) {
		a.next = c.HTTPClient.Transport
		c.HTTPClient = &http.Client{Transport: a, Timeout: c.HTTPClient.Timeout}
	}
}

// jsonAnswer replaces members of devidp's token answer; raw values are
// written as given (JSON text), so that numbers no float64 holds can be
// sent.
func jsonAnswer(set map[string]string, drop ...string) func(map[string]any) (string, []byte) {
	return func(body map[string]any) (string, []byte) {
		for _, k := range drop {
			delete(body, k)
		}
		parts := []string{}
		for k, v := range body {
			if _, ok := set[k]; ok {
				continue
			}
			b, _ := json.Marshal(v)
			parts = append(parts, strconv.Quote(k)+":"+string(b))
		}
		for k, v := range set {
			parts = append(parts, strconv.Quote(k)+":"+v)
		}
		return "application/json", []byte("{" + strings.Join(parts, ",") + "}")
	}
}

// formAnswer sends devidp's token answer form-encoded (as some servers
// do), with members replaced.
func formAnswer(set map[string]string) func(map[string]any) (string, []byte) {
	return func(body map[string]any) (string, []byte) {
		v := url.Values{}
		for k, x := range body {
			if s, ok := x.(string); ok {
				v.Set(k, s)
			} else {
				b, _ := json.Marshal(x)
				v.Set(k, string(b))
			}
		}
		for k, x := range set {
			v.Set(k, x)
		}
		return "application/x-www-form-urlencoded", []byte(v.Encode())
	}
}

// tokenAnswerCases are token answers and whether the exchange must refuse
// them, with the code it names.
var tokenAnswerCases = []struct {
	name   string
	answer func(map[string]any) (string, []byte)
	code   string // "" when the answer is used
}{
	{"token_type Bearer", jsonAnswer(map[string]string{"token_type": `"Bearer"`}), ""},
	{"token_type bearer (devidp, Hydra)", jsonAnswer(map[string]string{"token_type": `"bearer"`}), ""},
	{"token_type BEARER", jsonAnswer(map[string]string{"token_type": `"BEARER"`}), ""},
	{"token_type N_A", jsonAnswer(map[string]string{"token_type": `"N_A"`}), "unsupported_token_type"},
	{"token_type DPoP (the exchange sends no proofs)", jsonAnswer(map[string]string{"token_type": `"DPoP"`}), "unsupported_token_type"},
	{"token_type mac", jsonAnswer(map[string]string{"token_type": `"mac"`}), "unsupported_token_type"},
	{"token_type empty", jsonAnswer(map[string]string{"token_type": `""`}), "unsupported_token_type"},
	{"token_type absent", jsonAnswer(nil, "token_type"), "unsupported_token_type"},
	{"token_type absent, form-encoded", formAnswer(map[string]string{"token_type": ""}), "unsupported_token_type"},
	{"expires_in 0", jsonAnswer(map[string]string{"expires_in": `0`}), ""},
	{"expires_in absent", jsonAnswer(nil, "expires_in"), ""},
	{"expires_in numeric string", jsonAnswer(map[string]string{"expires_in": `"300"`}), ""},
	{"expires_in -1", jsonAnswer(map[string]string{"expires_in": `-1`}), "invalid_expires_in"},
	{"expires_in \"-1\"", jsonAnswer(map[string]string{"expires_in": `"-1"`}), "invalid_expires_in"},
	{"expires_in 1.5", jsonAnswer(map[string]string{"expires_in": `1.5`}), "invalid_response"},
	{"expires_in abc", jsonAnswer(map[string]string{"expires_in": `"abc"`}), "invalid_response"},
	{"expires_in past 64 bits", jsonAnswer(map[string]string{"expires_in": `99999999999999999999`}), "invalid_response"},
	{"expires_in 300, form-encoded", formAnswer(map[string]string{"expires_in": "300"}), ""},
	{"expires_in -1, form-encoded", formAnswer(map[string]string{"expires_in": "-1"}), "invalid_expires_in"},
	{"expires_in abc, form-encoded", formAnswer(map[string]string{"expires_in": "abc"}), "invalid_expires_in"},
	{"expires_in 1.5, form-encoded", formAnswer(map[string]string{"expires_in": "1.5"}), "invalid_expires_in"},
	{"expires_in past 64 bits, form-encoded", formAnswer(map[string]string{"expires_in": "99999999999999999999"}), "invalid_expires_in"},
}

// TestSignInTokenAnswerChecks: a code redemption answer with a token_type
// other than Bearer (or none), or an expires_in that is not a non-negative
// integer, ends the sign-in like other bad token answers: 502, no cookies,
// a page naming the reason, callbacks{token_error}.
func TestSignInTokenAnswerChecks(t *testing.T) {
	t.Parallel()
	for _, tc := range tokenAnswerCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rw := &answerRewrite{grant: "authorization_code", token: tc.answer}
			e := newEnv(t, envOptions{exchange: withRewrite(rw)})
			b := e.newBrowser()
			r := b.get(e.authorize(b.startLogin(""), "alice"))
			if tc.code == "" {
				if r.status != http.StatusSeeOther || b.cookieValue(e.ex.names.access, "/") == "" {
					t.Fatalf("callback: %d, want 303 with cookies\n%s", r.status, r.body)
				}
				return
			}
			if r.status != http.StatusBadGateway || r.cookie(e.ex.names.access) != nil && r.cookie(e.ex.names.access).MaxAge >= 0 {
				t.Fatalf("callback: %d, want 502 without tokens\n%s", r.status, r.body)
			}
			if b.cookieValue(e.ex.names.access, "/") != "" || b.cookieValue(e.ex.names.session, "/") != "" {
				t.Error("the browser holds tokens after a refused answer")
			}
			if !strings.Contains(r.body, tc.code) {
				t.Errorf("the page does not name %s:\n%s", tc.code, r.body)
			}
			if got := e.metric("exchange_callbacks_total", "outcome", "token_error"); got != 1 {
				t.Errorf("callbacks{token_error} = %v, want 1", got)
			}
			if !strings.Contains(e.logs.String(), `"reason":"`+tc.code+`"`) {
				t.Errorf("the log does not name %s", tc.code)
			}
		})
	}
}

// TestRefreshTokenAnswerChecks: a refresh answer refused by the same checks
// answers 502 naming the reason and changes no cookie, as other unusable
// refresh answers do.
func TestRefreshTokenAnswerChecks(t *testing.T) {
	t.Parallel()
	for _, tc := range tokenAnswerCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rw := &answerRewrite{grant: "refresh_token", token: tc.answer}
			e := newEnv(t, envOptions{exchange: withRewrite(rw)})
			b := e.newBrowser()
			b.login("alice", "")
			before := b.cookieValue(e.ex.names.access, "/")
			r := b.do(http.MethodPost, refreshPath, "X-CSRF", "1")
			if tc.code == "" {
				if r.status != http.StatusOK {
					t.Fatalf("refresh: %d %s", r.status, r.body)
				}
				return
			}
			if r.status != http.StatusBadGateway || len(r.cookies) != 0 || !strings.Contains(r.body, tc.code) {
				t.Fatalf("refresh: %d, cookies %v, %s; want 502 naming %s, changing no cookie", r.status, r.cookies, r.body, tc.code)
			}
			if b.cookieValue(e.ex.names.access, "/") != before || b.cookieValue(e.ex.names.refresh, refreshPath) == "" {
				t.Error("the refused refresh changed the cookies")
			}
			if got := e.metric("exchange_refreshes_total", "outcome", "error"); got != 1 {
				t.Errorf("refreshes{error} = %v, want 1", got)
			}
		})
	}
}

// TestCheckTokenResponse: the checks on values as Token.Extra gives them
// from JSON and form-encoded answers.
func TestCheckTokenResponse(t *testing.T) {
	for _, tc := range []struct {
		typ       string
		expiresIn any
		code      string
	}{
		{"Bearer", nil, ""},
		{"bearer", 3600.0, ""},
		{"Bearer", int64(0), ""},
		{"Bearer", "", ""},
		{"Bearer", "60", ""},
		{"Bearer", json.Number("60"), ""},
		{"Bearer", -1.0, "invalid_expires_in"},
		{"Bearer", int64(-1), "invalid_expires_in"},
		{"Bearer", 1.5, "invalid_expires_in"},
		{"Bearer", 1e19, "invalid_expires_in"},
		{"Bearer", "NaN", "invalid_expires_in"},
		{"Bearer", " 60", "invalid_expires_in"},
		{"Bearer", true, "invalid_expires_in"},
		{"Bearer", map[string]any{}, "invalid_expires_in"},
		{"Bearer", json.Number("-3"), "invalid_expires_in"},
		{"", 60.0, "unsupported_token_type"},
		{"DPoP", 60.0, "unsupported_token_type"},
		{"Bearer ", 60.0, "unsupported_token_type"},
		{"N_A", nil, "unsupported_token_type"},
	} {
		extra := map[string]any{}
		if tc.typ != "" {
			// As oauth2 keeps it in the raw answer.
			extra["token_type"] = tc.typ
		}
		if tc.expiresIn != nil {
			extra["expires_in"] = tc.expiresIn
		}
		tok := (&oauth2.Token{AccessToken: "a", TokenType: tc.typ}).WithExtra(extra)
		err := checkTokenResponse(tok)
		got := ""
		if be, ok := err.(*badTokenResponse); ok {
			got = be.code
		} else if err != nil {
			t.Fatalf("%q %v: %v", tc.typ, tc.expiresIn, err)
		}
		if got != tc.code {
			t.Errorf("token_type %q, expires_in %#v: %q, want %q", tc.typ, tc.expiresIn, got, tc.code)
		}
	}
}

// TestSignOutRevokesBothTokens: sign-out revokes the refresh token (hint
// refresh_token), then the access token (hint access_token); revoked is
// true only when both answered 200.
func TestSignOutRevokesBothTokens(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		fail       string // the hint whose revocation answers 503
		revocation string
	}{
		{"both revoked", "", "ok"},
		{"the access token's revocation fails", "access_token", "failed"},
		{"the refresh token's revocation fails", "refresh_token", "failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rw := &answerRewrite{revokeStatus: map[string]int{}}
			if tc.fail != "" {
				rw.revokeStatus[tc.fail] = http.StatusServiceUnavailable
			}
			e := newEnv(t, envOptions{exchange: withRewrite(rw)})
			b := e.newBrowser()
			b.login("alice", "")
			r := b.do(http.MethodDelete, refreshPath, "X-CSRF", "1")
			body := r.json(t)
			if r.status != http.StatusOK || body["revocation"] != tc.revocation || body["revoked"] != (tc.revocation == "ok") {
				t.Errorf("sign-out: %d %v, want revocation %s", r.status, body, tc.revocation)
			}
			if got := strings.Join(rw.revokeHints(), ","); got != "refresh_token,access_token" {
				t.Errorf("revocation requests with hints %q, want refresh_token,access_token (both, even when one fails)", got)
			}
			e.checkCleared(t, r)
			if got := e.metric("exchange_logouts_total", "revocation", tc.revocation); got != 1 {
				t.Errorf("logouts{%s} = %v, want 1", tc.revocation, got)
			}
		})
	}
}

// TestSignOutWithOnlyAnAccessCookie: the access token is revoked, so that
// it ends at once at a server that does not end it with the grant.
func TestSignOutWithOnlyAnAccessCookie(t *testing.T) {
	t.Parallel()
	rw := &answerRewrite{}
	e := newEnv(t, envOptions{exchange: withRewrite(rw)})
	b := e.newBrowser()
	b.login("alice", "")
	at := b.cookieValue(e.ex.names.access, "/")
	r := e.newBrowser().do(http.MethodDelete, refreshPath, "X-CSRF", "1", "Cookie", e.ex.names.access+"="+at)
	body := r.json(t)
	if r.status != http.StatusOK || body["revocation"] != "ok" || body["revoked"] != true {
		t.Errorf("sign-out: %d %v", r.status, body)
	}
	if got := strings.Join(rw.revokeHints(), ","); got != "access_token" {
		t.Errorf("revocation hints %q, want access_token", got)
	}
	if e.introspect(at) {
		t.Error("the access token is still active at devidp")
	}
}

// TestSignOutWithTwoAccessCookies: two different access cookies revoke
// nothing (one may be planted), the refresh token included.
func TestSignOutWithTwoAccessCookies(t *testing.T) {
	t.Parallel()
	rw := &answerRewrite{}
	e := newEnv(t, envOptions{exchange: withRewrite(rw)})
	b := e.newBrowser()
	b.login("alice", "")
	n := e.ex.names
	cookies := n.access + "=planted; " + n.access + "=" + b.cookieValue(n.access, "/") + "; " +
		n.refresh + "=" + b.cookieValue(n.refresh, refreshPath) + "; " + n.session + "=" + b.cookieValue(n.session, "/")
	r := e.newBrowser().do(http.MethodDelete, refreshPath, "X-CSRF", "1", "Cookie", cookies)
	body := r.json(t)
	if r.status != http.StatusOK || body["revocation"] != "ambiguous_cookie" || body["revoked"] != false {
		t.Errorf("sign-out: %d %v", r.status, body)
	}
	// The refresh cookie is not in doubt: its token is revoked; neither
	// access token is.
	if got := rw.revokeHints(); len(got) != 1 || got[0] != "refresh_token" {
		t.Errorf("revocation requests %q, want the refresh token's only", got)
	}
	e.checkCleared(t, r)
}

// TestSignOutWithoutRevocationEndpoint: New warns that sign-out cannot
// revoke; sign-out still clears the cookies and answers
// revocation: no_revocation_endpoint, or none when there was nothing to
// revoke.
func TestSignOutWithoutRevocationEndpoint(t *testing.T) {
	t.Parallel()
	rw := &answerRewrite{meta: func(doc map[string]any) { delete(doc, "revocation_endpoint") }}
	e := newEnv(t, envOptions{exchange: withRewrite(rw)})
	if !strings.Contains(e.logs.String(), "sign-out cannot revoke tokens at this issuer") {
		t.Errorf("New did not warn:\n%s", e.logs)
	}
	b := e.newBrowser()
	b.login("alice", "")
	r := b.do(http.MethodDelete, refreshPath, "X-CSRF", "1")
	body := r.json(t)
	if r.status != http.StatusOK || body["revocation"] != "no_revocation_endpoint" || body["revoked"] != false {
		t.Errorf("sign-out: %d %v", r.status, body)
	}
	e.checkCleared(t, r)
	if got := e.calls.count("/revoke"); got != 0 {
		t.Errorf("%d revocation requests", got)
	}
	if got := e.metric("exchange_logouts_total", "revocation", "no_revocation_endpoint"); got != 1 {
		t.Errorf("logouts{no_revocation_endpoint} = %v", got)
	}
	r = e.newBrowser().do(http.MethodDelete, refreshPath, "X-CSRF", "1")
	if body := r.json(t); body["revocation"] != "none" {
		t.Errorf("sign-out with nothing to revoke: %v, want revocation none", body)
	}
}

// discoveryServer serves a discovery document for its own URL as issuer,
// the endpoints on that URL, with edit's changes.
func discoveryServer(t *testing.T, tls bool, edit func(base string, doc map[string]any)) *httptest.Server {
	t.Helper()
	var ts *httptest.Server
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := ts.URL
		doc := map[string]any{
			"issuer":                                base,
			"authorization_endpoint":                base + "/authorize",
			"token_endpoint":                        base + "/token",
			"jwks_uri":                              base + "/jwks",
			"revocation_endpoint":                   base + "/revoke",
			"end_session_endpoint":                  base + "/logout",
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		}
		if edit != nil {
			edit(base, doc)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	})
	if tls {
		ts = httptest.NewTLSServer(h)
	} else {
		ts = httptest.NewServer(h)
	}
	t.Cleanup(ts.Close)
	return ts
}

// newAt runs New against ts, trusting its certificate.
func newAt(t *testing.T, ts *httptest.Server) (*Server, error) {
	t.Helper()
	client := ts.Client()
	client.Timeout = 5 * time.Second
	return New(t.Context(), Config{
		Issuer:        ts.URL,
		ClientID:      testClientID,
		ClientSecret:  testClientSecret,
		RedirectURL:   "http://127.0.0.1:8081" + callbackPath,
		SessionSecret: testSessionSecret,
		TodoAPIURL:    "http://127.0.0.1:1",
		HTTPClient:    client,
		Logger:        slog.New(slog.DiscardHandler),
	})
}

// TestDiscoveryEndpointsHTTPS: with an https ISSUER, every endpoint the
// exchange takes from the discovery document must be an absolute https URL
// (no transport downgrade); with an http ISSUER, http endpoints are the
// operator's choice, but each must still be an absolute http(s) URL.
func TestDiscoveryEndpointsHTTPS(t *testing.T) {
	t.Parallel()
	fields := []string{"authorization_endpoint", "token_endpoint", "revocation_endpoint", "end_session_endpoint", "jwks_uri"}
	t.Run("https issuer, https endpoints", func(t *testing.T) {
		if _, err := newAt(t, discoveryServer(t, true, nil)); err != nil {
			t.Fatal(err)
		}
	})
	for _, f := range fields {
		for _, bad := range []string{"http://127.0.0.1:9/x", "/relative", "https:///nohost", "ftp://as.example/x"} {
			t.Run("https issuer, "+f+" "+bad, func(t *testing.T) {
				_, err := newAt(t, discoveryServer(t, true, func(_ string, doc map[string]any) { doc[f] = bad }))
				if err == nil || !strings.Contains(err.Error(), f) || !strings.Contains(err.Error(), "absolute https URL") {
					t.Fatalf("New: %v, want an error naming %s", err, f)
				}
			})
		}
		t.Run("http issuer, "+f+" http", func(t *testing.T) {
			_, err := newAt(t, discoveryServer(t, false, func(base string, doc map[string]any) { doc[f] = "http://127.0.0.1:9/x" }))
			if err != nil {
				t.Fatalf("New: %v; an http ISSUER may name http endpoints", err)
			}
		})
		t.Run("http issuer, "+f+" relative", func(t *testing.T) {
			_, err := newAt(t, discoveryServer(t, false, func(_ string, doc map[string]any) { doc[f] = "/relative" }))
			if err == nil || !strings.Contains(err.Error(), f) {
				t.Fatalf("New: %v, want an error naming %s", err, f)
			}
		})
	}
	t.Run("https issuer, no revocation or end-session endpoint", func(t *testing.T) {
		_, err := newAt(t, discoveryServer(t, true, func(_ string, doc map[string]any) {
			delete(doc, "revocation_endpoint")
			delete(doc, "end_session_endpoint")
		}))
		if err != nil {
			t.Fatal(err)
		}
	})
}

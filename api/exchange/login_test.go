package exchange

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/todoapi"
)

// todoAPI is the real todo API (todoapi on SQLite) trusting devidp, with
// the cookie names of the last request it received.
type todoAPI struct {
	URL  string
	mu   sync.Mutex
	seen []string
}

func (a *todoAPI) lastCookies() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.seen
}

func startTodoAPI(t *testing.T, e *testEnv) *todoAPI {
	t.Helper()
	return startTodoAPIWith(t, e, nil)
}

// startTodoAPIWith is startTodoAPI with edit (which may be nil) changing
// the todo API's configuration first.
func startTodoAPIWith(t *testing.T, e *testEnv, edit func(*todoapi.Config)) *todoAPI {
	t.Helper()
	cfg := todoapi.Config{
		Issuers:            []string{e.idp.URL},
		Audiences:          []string{"todo-api"},
		DatabaseURL:        "sqlite:" + filepath.Join(t.TempDir(), "todos.db"),
		CORSAllowedOrigins: []string{e.URL},
		ReadScopes:         []string{"todos:read"},
		WriteScopes:        []string{"todos:write"},
		Logger:             slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&cfg)
	}
	h, err := todoapi.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	a := &todoAPI{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var names []string
		for _, c := range r.Cookies() {
			names = append(names, c.Name)
		}
		a.mu.Lock()
		a.seen = names
		a.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	a.URL = ts.URL
	return a
}

// TestLoginThenTodoAPI is the "done when": a login against devidp
// ends with the todo API answering 200 to a request that carries only the
// cookie and X-CSRF: 1.
func TestLoginThenTodoAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	todo := startTodoAPI(t, e)
	b := e.newBrowser()
	n := e.ex.names

	if r := b.get(mePath); r.status != http.StatusUnauthorized {
		t.Fatalf("GET /me before login: %d, want 401", r.status)
	}

	r := b.login("alice", "/todos?view=all")
	for _, name := range []string{n.access, n.refresh, n.session} {
		if c := r.cookie(name); c == nil || c.Value == "" || c.MaxAge <= 0 {
			t.Errorf("callback did not set %s: %v", name, c)
		}
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("callback Cache-Control %q, want no-store", got)
	}
	if got := r.header.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("callback Referrer-Policy %q, want no-referrer (its URL carries the code)", got)
	}
	if names := b.cookieNamesAt(e.URL + "/"); slices.ContainsFunc(names, func(s string) bool { return strings.HasPrefix(s, n.txPrefix) }) {
		t.Errorf("a transaction cookie outlived the callback: %v", names)
	}

	me := b.get(mePath).json(t)
	if me["sub"] != "alice" || me["name"] != "Alice Example" || me["email"] != "alice@example.com" ||
		me["access_token_expires_at"] == nil || me["refresh_token_expires_at"] == nil {
		t.Errorf("GET /me = %v", me)
	}

	// The todo API: the cookie alone is refused without X-CSRF (400
	// invalid_request), accepted with it.
	if r := b.do(http.MethodGet, todo.URL+"/todos"); r.status != http.StatusBadRequest {
		t.Errorf("todo API without X-CSRF: %d, want 400", r.status)
	}
	r = b.do(http.MethodGet, todo.URL+"/todos", "X-CSRF", "1")
	if r.status != http.StatusOK || strings.TrimSpace(r.body) != "[]" {
		t.Fatalf("todo API with the cookie and X-CSRF: %d %s", r.status, r.body)
	}
	// A write, from the exchange's origin.
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, todo.URL+"/todos", strings.NewReader(`{"title":"buy milk"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF", "1")
	req.Header.Set("Origin", e.URL)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("POST /todos with the cookie: %d", resp.StatusCode)
	}
	if r := b.do(http.MethodGet, todo.URL+"/todos", "X-CSRF", "1"); !strings.Contains(r.body, "buy milk") {
		t.Errorf("GET /todos after the write: %d %s", r.status, r.body)
	}
	seen := todo.lastCookies()
	if !slices.Contains(seen, n.access) || slices.Contains(seen, n.refresh) {
		t.Errorf("the todo API received cookies %v: want %s and never %s", seen, n.access, n.refresh)
	}

	if got := e.metric("exchange_callbacks_total", "outcome", "ok"); got != 1 {
		t.Errorf("callbacks ok = %v, want 1", got)
	}
	if !strings.Contains(e.logs.String(), `"msg":"signed in"`) {
		t.Errorf("no sign-in logged:\n%s", e.logs)
	}

	// The session cookie outlives its own expiry only in the browser's
	// clock, never in ours.
	e.clock.advance(DefaultRefreshCookieMaxAge + time.Hour)
	if r := b.get(mePath); r.status != http.StatusUnauthorized {
		t.Errorf("GET /me after the session expired: %d, want 401", r.status)
	}
}

// TestClientAuthMethods signs in, refreshes and signs out with each client
// authentication method, which devidp both accepts.
func TestClientAuthMethods(t *testing.T) {
	t.Parallel()
	for _, method := range []string{ClientAuthBasic, ClientAuthPost} {
		t.Run(method, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{exchange: func(c *Config) { c.ClientAuth = method }})
			b := e.newBrowser()
			b.login("bob", "")
			if r := b.do(http.MethodPost, refreshPath, "X-CSRF", "1"); r.status != http.StatusOK {
				t.Fatalf("refresh: %d %s", r.status, r.body)
			}
			rt := e.refreshToken(b)
			r := b.do(http.MethodDelete, refreshPath, "X-CSRF", "1")
			if r.status != http.StatusOK || r.json(t)["revoked"] != true {
				t.Fatalf("sign-out: %d %s", r.status, r.body)
			}
			if e.refreshAccepted(rt) {
				t.Error("devidp still accepts the refresh token after sign-out")
			}
		})
	}
}

// TestAuthorizationRequest checks what GET /login sends to the server and
// the transaction cookie it sets.
func TestAuthorizationRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{exchange: func(c *Config) { c.Audience = "https://api.example" }})
	b := e.newBrowser()
	r := b.get(loginPath + "?returnTo=/somewhere")
	if r.status != http.StatusFound || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /login: %d, Cache-Control %q", r.status, r.header.Get("Cache-Control"))
	}
	u, err := url.Parse(r.header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := map[string]string{
		"client_id":             testClientID,
		"redirect_uri":          e.URL + callbackPath,
		"response_type":         "code",
		"scope":                 DefaultScopes,
		"code_challenge_method": "S256",
		"audience":              "https://api.example",
		"resource":              "https://api.example",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 22 {
			t.Errorf("%s = %q: missing or too short to be unguessable", k, q.Get(k))
		}
	}
	if u.Scheme+"://"+u.Host+u.Path != e.idp.URL+"/authorize" {
		t.Errorf("authorization endpoint %s", u)
	}

	tx := r.cookie(e.ex.names.txCookieName(q.Get("state")))
	if tx == nil {
		t.Fatalf("no transaction cookie named after the state among %v", r.cookies)
	}
	var got transaction
	if err := e.ex.sealer.openJSON(tx.Name, tx.Value, &got); err != nil {
		t.Fatal(err)
	}
	if got.State != q.Get("state") || got.Nonce != q.Get("nonce") || got.ReturnTo != "/somewhere" ||
		oauth2.S256ChallengeFromVerifier(got.Verifier) != q.Get("code_challenge") {
		t.Errorf("transaction %+v does not match the request %v", got, q)
	}

	// A second attempt gets fresh values.
	u2, _ := url.Parse(b.startLogin(""))
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if u2.Query().Get(k) == q.Get(k) {
			t.Errorf("two logins share %s", k)
		}
	}
}

// TestCallbackRefusals: every way a callback can be wrong ends on a page,
// with no token request, and uses up the transaction.
func TestCallbackRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})

	// start signs in at devidp and returns the browser and the callback
	// URL's query, not yet delivered.
	start := func(t *testing.T) (*browser, url.Values) {
		t.Helper()
		b := e.newBrowser()
		u, _ := url.Parse(e.authorize(b.startLogin("/back"), "alice"))
		return b, u.Query()
	}
	callback := func(q url.Values) string { return callbackPath + "?" + q.Encode() }

	tests := []struct {
		name    string
		deliver func(t *testing.T) result
		status  int
		page    string // expected in the page
		outcome string // metric
	}{
		{
			name: "state of no attempt",
			deliver: func(t *testing.T) result {
				b, q := start(t)
				q.Set("state", "forged-state-0123456789abcdef")
				return b.get(callback(q))
			},
			status: http.StatusBadRequest, page: "no longer valid", outcome: "bad_state",
		},
		{
			name: "state of another browser's attempt",
			deliver: func(t *testing.T) result {
				_, other := start(t)
				b, q := start(t)
				q.Set("state", other.Get("state"))
				return b.get(callback(q))
			},
			status: http.StatusBadRequest, page: "no longer valid", outcome: "bad_state",
		},
		{
			name: "no state",
			deliver: func(t *testing.T) result {
				b, q := start(t)
				q.Del("state")
				return b.get(callback(q))
			},
			status: http.StatusBadRequest, page: "no longer valid", outcome: "bad_state",
		},
		{
			name: "missing transaction cookie",
			deliver: func(t *testing.T) result {
				_, q := start(t)
				return e.newBrowser().get(callback(q))
			},
			status: http.StatusBadRequest, page: "no longer valid", outcome: "bad_state",
		},
		{
			name: "tampered transaction cookie",
			deliver: func(t *testing.T) result {
				_, q := start(t)
				name := e.ex.names.txCookieName(q.Get("state"))
				forged := e.ex.sealer.seal(name+"x", []byte(`{"s":"`+q.Get("state")+`","e":9999999999}`))
				return e.newBrowser().do(http.MethodGet, callback(q), "Cookie", name+"="+forged)
			},
			status: http.StatusBadRequest, page: "no longer valid", outcome: "bad_state",
		},
		{
			name: "expired transaction cookie",
			deliver: func(t *testing.T) result {
				b, q := start(t)
				e.clock.advance(DefaultTransactionTTL + time.Second)
				defer e.clock.advance(-DefaultTransactionTTL - time.Second)
				return b.get(callback(q))
			},
			status: http.StatusBadRequest, page: "no longer valid", outcome: "bad_state",
		},
		{
			name: "access_denied",
			deliver: func(t *testing.T) result {
				b, q := start(t)
				denied := url.Values{"error": {"access_denied"}, "error_description": {"The user said <no>"},
					"state": {q.Get("state")}, "iss": {e.idp.URL}}
				return b.get(callback(denied))
			},
			status: http.StatusForbidden, page: "The user said &lt;no&gt;", outcome: "access_denied",
		},
		{
			name: "other authorization error",
			deliver: func(t *testing.T) result {
				b, q := start(t)
				return b.get(callback(url.Values{"error": {"login_required"}, "state": {q.Get("state")}, "iss": {e.idp.URL}}))
			},
			status: http.StatusBadRequest, page: "login_required", outcome: "authorization_error",
		},
		{
			name: "iss of another server (RFC 9207)",
			deliver: func(t *testing.T) result {
				b, q := start(t)
				q.Set("iss", "https://evil.example")
				return b.get(callback(q))
			},
			status: http.StatusBadRequest, page: "issuer mismatch", outcome: "iss_mismatch",
		},
		{
			name: "iss missing though the server promises it",
			deliver: func(t *testing.T) result {
				b, q := start(t)
				q.Del("iss")
				return b.get(callback(q))
			},
			status: http.StatusBadRequest, page: "issuer mismatch", outcome: "iss_mismatch",
		},
		{
			name: "iss twice",
			deliver: func(t *testing.T) result {
				b, q := start(t)
				q.Add("iss", "https://evil.example")
				return b.get(callback(q))
			},
			status: http.StatusBadRequest, page: "issuer mismatch", outcome: "iss_mismatch",
		},
		{
			name: "no code",
			deliver: func(t *testing.T) result {
				b, q := start(t)
				q.Del("code")
				return b.get(callback(q))
			},
			status: http.StatusBadRequest, page: "no authorization code", outcome: "authorization_error",
		},
	}
	// Not parallel: each case counts the token requests of the shared
	// server.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokens := e.calls.count("/token")
			outcomes := e.metric("exchange_callbacks_total", "outcome", tt.outcome)
			r := tt.deliver(t)
			if r.status != tt.status || !strings.Contains(r.body, tt.page) {
				t.Errorf("status %d, want %d with %q in the page:\n%s", r.status, tt.status, tt.page, r.body)
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q, want a page", ct)
			}
			if n := e.calls.count("/token"); n != tokens {
				t.Errorf("%d token requests made, want none", n-tokens)
			}
			if got := e.metric("exchange_callbacks_total", "outcome", tt.outcome); got != outcomes+1 {
				t.Errorf("callbacks{outcome=%s} went from %v to %v", tt.outcome, outcomes, got)
			}
			for _, c := range r.cookies {
				if c.MaxAge >= 0 {
					t.Errorf("a refused callback set %s", c.Name)
				}
			}
		})
	}
}

// TestTransactionUsedUp: once a callback got past the state check, its
// transaction cookie is deleted whatever happens next.
func TestTransactionUsedUp(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	u, _ := url.Parse(e.authorize(b.startLogin(""), "alice"))
	q := u.Query()
	q.Set("iss", "https://evil.example")
	r := b.get(callbackPath + "?" + q.Encode())
	name := e.ex.names.txCookieName(q.Get("state"))
	if c := r.cookie(name); r.status != http.StatusBadRequest || c == nil || c.MaxAge >= 0 || c.Path != "/" {
		t.Fatalf("status %d, %s: %v; want 400 deleting the transaction cookie", r.status, name, c)
	}
	// The genuine answer cannot be used after the forged one.
	q.Set("iss", e.idp.URL)
	if r := b.get(callbackPath + "?" + q.Encode()); r.status != http.StatusBadRequest {
		t.Errorf("callback after the transaction was used up: %d, want 400", r.status)
	}
}

// TestReplayedCode: a code delivered twice, and a code reused with a fresh
// transaction, which the server refuses with invalid_grant: the exchange
// starts one new login, then shows a page rather than loop.
func TestReplayedCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	cb := e.authorize(b.startLogin("/x"), "alice")
	if r := b.get(cb); r.status != http.StatusSeeOther || r.header.Get("Location") != "/x" {
		t.Fatalf("first callback: %d %q", r.status, r.header.Get("Location"))
	}
	tokens := e.calls.count("/token")
	if r := b.get(cb); r.status != http.StatusBadRequest {
		t.Errorf("second delivery of the same callback: %d, want 400", r.status)
	}
	if n := e.calls.count("/token"); n != tokens {
		t.Errorf("the second delivery made %d token requests, want none", n-tokens)
	}

	u, _ := url.Parse(cb)
	code := u.Query().Get("code")
	// withFreshTx is the old code delivered under the state of the login
	// that authURL starts.
	withFreshTx := func(authURL string) string {
		a, _ := url.Parse(authURL)
		return callbackPath + "?" + url.Values{"code": {code}, "state": {a.Query().Get("state")}, "iss": {e.idp.URL}}.Encode()
	}

	r := b.get(withFreshTx(b.startLogin("/y")))
	wantLoc := loginPath + "?" + url.Values{"error": {"expired"}, "returnTo": {"/y"}}.Encode()
	if r.status != http.StatusSeeOther || r.header.Get("Location") != wantLoc {
		t.Fatalf("reused code: %d, Location %q; want 303 to %q\n%s", r.status, r.header.Get("Location"), wantLoc, r.body)
	}
	if got := e.metric("exchange_callbacks_total", "outcome", "expired_code"); got != 1 {
		t.Errorf("callbacks{expired_code} = %v", got)
	}

	// The automatic retry fails the same way: now a page, not a loop.
	retry := b.get(r.header.Get("Location"))
	if retry.status != http.StatusFound {
		t.Fatalf("GET %s: %d", r.header.Get("Location"), retry.status)
	}
	r = b.get(withFreshTx(retry.header.Get("Location")))
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "invalid_grant") || r.header.Get("Location") != "" {
		t.Errorf("second refusal: %d, Location %q; want a 502 page naming invalid_grant\n%s", r.status, r.header.Get("Location"), r.body)
	}
	if n := e.calls.count("/token"); n != tokens+2 {
		t.Errorf("%d token requests for two reuses, want 2", n-tokens)
	}
	// A person can still sign in afterwards.
	b.login("alice", "/y")
}

// TestTwoTabs: two logins started before either finishes both succeed, in
// either order.
func TestTwoTabs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	first, second := b.startLogin("/a"), b.startLogin("/b")
	cb1, cb2 := e.authorize(first, "alice"), e.authorize(second, "alice")
	for _, c := range []struct{ cb, want string }{{cb2, "/b"}, {cb1, "/a"}} {
		r := b.get(c.cb)
		if r.status != http.StatusSeeOther || r.header.Get("Location") != c.want {
			t.Errorf("callback: %d, Location %q, want 303 to %s\n%s", r.status, r.header.Get("Location"), c.want, r.body)
		}
	}
	if got := e.metric("exchange_callbacks_total", "outcome", "ok"); got != 2 {
		t.Errorf("callbacks ok = %v, want 2", got)
	}
}

// TestTransactionCap: at most MaxTransactions attempts are kept; the
// oldest go first.
func TestTransactionCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{exchange: func(c *Config) { c.MaxTransactions = 3 }})
	b := e.newBrowser()
	var auths []string
	for range 5 {
		auths = append(auths, b.startLogin(""))
		var tx []string
		for _, n := range b.cookieNamesAt(e.URL + "/") {
			if strings.HasPrefix(n, e.ex.names.txPrefix) {
				tx = append(tx, n)
			}
		}
		if len(tx) > 3 {
			t.Fatalf("%d transaction cookies after %d logins, want at most 3", len(tx), len(auths))
		}
	}
	cbs := make([]string, len(auths))
	for i, a := range auths {
		cbs[i] = e.authorize(a, "alice")
	}
	for i, cb := range cbs {
		want := http.StatusBadRequest // dropped
		if i >= 2 {
			want = http.StatusSeeOther
		}
		if r := b.get(cb); r.status != want {
			t.Errorf("callback of login %d: %d, want %d", i+1, r.status, want)
		}
	}
}

// TestTransactionCapDropsUnreadable: a transaction cookie that does not
// open (another key, tampered) is dropped at the next login.
func TestTransactionCapDropsUnreadable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	junk := e.ex.names.txPrefix + "0123456789abcdef"
	r := e.newBrowser().do(http.MethodGet, loginPath, "Cookie", junk+"=garbage")
	if c := r.cookie(junk); c == nil || c.MaxAge >= 0 {
		t.Errorf("unreadable transaction cookie not deleted: %v", r.cookies)
	}
}

// TestReturnTo: only local paths survive; the rest become "/".
func TestReturnTo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	tests := []struct{ in, want string }{
		{"/ok?x=1", "/ok?x=1"},
		{"/todos/7#top", "/todos/7#top"},
		{"/%2F%2Fevil.example", "/%2F%2Fevil.example"}, // encoded: a path on this host
		{"", "/"},
		{"//evil.example", "/"},
		{"///evil.example", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{"/ok/..//evil.example", "/"},
		{"https://evil.example", "/"},
		{"http:evil.example", "/"},
		{"javascript:alert(1)", "/"},
		{"evil.example", "/"},
		{"\t/evil.example", "/"},
		{"/\t/evil.example", "/"},
		{"/\n/evil.example", "/"},
		{"/\x00/evil.example", "/"},
		{"/a\r\nSet-Cookie: x=1", "/"},
		{"/a b", "/"},
		{"/caf\u00e9", "/"},
		{"/\x7f", "/"},
		{"/" + strings.Repeat("a", maxReturnToLen), "/"},
		{"/" + strings.Repeat("a", maxReturnToLen-1), "/" + strings.Repeat("a", maxReturnToLen-1)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			if got := sanitizeReturnTo(tt.in); got != tt.want {
				t.Errorf("sanitizeReturnTo(%q) = %q, want %q", tt.in, got, tt.want)
			}
			// Through GET /login, into the transaction cookie.
			r := e.newBrowser().get(loginPath + "?" + url.Values{"returnTo": {tt.in}}.Encode())
			var tx transaction
			for _, c := range r.cookies {
				if strings.HasPrefix(c.Name, e.ex.names.txPrefix) {
					if err := e.ex.sealer.openJSON(c.Name, c.Value, &tx); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tx.ReturnTo != tt.want {
				t.Errorf("GET /login kept returnTo %q, want %q", tx.ReturnTo, tt.want)
			}
		})
	}
	t.Run("whole flow", func(t *testing.T) {
		t.Parallel()
		b := e.newBrowser()
		r := b.get(e.authorize(b.startLogin("//evil.example/x"), "alice"))
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "/" {
			t.Errorf("callback: %d, Location %q, want 303 to /", r.status, r.header.Get("Location"))
		}
	})
}

// TestIDTokenNonce verifies a real ID token from devidp: with the nonce
// sent it passes, with any other it is refused.
func TestIDTokenNonce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	b := e.newBrowser()
	authURL := b.startLogin("")
	a, _ := url.Parse(authURL)
	state := a.Query().Get("state")
	name := e.ex.names.txCookieName(state)
	var tx transaction
	if err := e.ex.sealer.openJSON(name, b.cookieValue(name, "/"), &tx); err != nil {
		t.Fatal(err)
	}
	cb, _ := url.Parse(e.authorize(authURL, "alice"))

	ctx := e.ex.clientContext(t.Context())
	tok, err := e.ex.oauth.Exchange(ctx, cb.Query().Get("code"), oauth2.VerifierOption(tx.Verifier))
	if err != nil {
		t.Fatal(err)
	}
	e.noteSecret(tok.AccessToken)
	e.noteSecret(tok.RefreshToken)

	if _, err := e.ex.verifyIDToken(ctx, tok, "some-other-nonce"); err == nil || !strings.Contains(err.Error(), "nonce") {
		t.Errorf("wrong nonce: err = %v, want a nonce mismatch", err)
	}
	idt, err := e.ex.verifyIDToken(ctx, tok, tx.Nonce)
	if err != nil || idt.sub != "alice" || idt.Name != "Alice Example" || idt.Email != "alice@example.com" {
		t.Errorf("right nonce: %+v, %v", idt, err)
	}

	raw := tok.Extra("id_token").(string)
	for name, bad := range map[string]*oauth2.Token{
		"no ID token":        {AccessToken: "x"},
		"signature tampered": (&oauth2.Token{}).WithExtra(map[string]any{"id_token": raw[:len(raw)-4] + "AAAA"}),
		"not a JWT":          (&oauth2.Token{}).WithExtra(map[string]any{"id_token": "not-a-jwt"}),
	} {
		if _, err := e.ex.verifyIDToken(ctx, bad, ""); err == nil {
			t.Errorf("%s: verified", name)
		}
	}
	// Our clock, not the server's, decides expiry.
	e.clock.advance(2 * time.Hour)
	if _, err := e.ex.verifyIDToken(ctx, tok, tx.Nonce); err == nil {
		t.Error("an expired ID token verified")
	}
}

// TestTokenTooLarge: devidp issues an access token over 4 KB (a huge sub);
// the callback says so on a page and in the log, and sets no cookie.
func TestTokenTooLarge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{idp: func(c *devidp.Config) {
		c.Users = append(devidp.DemoUsers(), devidp.User{Subject: strings.Repeat("s", 5000), Username: "huge", Password: "huge"})
	}})
	b := e.newBrowser()
	r := b.get(e.authorize(b.startLogin(""), "huge"))
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "too large for a browser cookie") {
		t.Fatalf("callback: %d\n%s", r.status, r.body)
	}
	for _, c := range r.cookies {
		if c.MaxAge >= 0 {
			t.Errorf("set %s despite the error", c.Name)
		}
	}
	if !strings.Contains(e.logs.String(), `"outcome":"too_large"`) {
		t.Errorf("not logged:\n%s", e.logs)
	}
}

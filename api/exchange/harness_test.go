package exchange

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
	"github.com/tollgate-dev/tollgate/internal/testbuf"
)

// The exchange's client at devidp, and devidp's introspection client.
const (
	testClientID     = "exchange-under-test"
	testClientSecret = "exchange-client-secret-0123456789"
	apiClientID      = "todo-api-introspection"
	apiClientSecret  = "todo-api-introspection-secret"
)

// testSessionSecret is SESSION_SECRET in every test: the log check looks for
// it.
var testSessionSecret = []byte("test-session-secret-0123456789abcdef")

// testKey is shared by every devidp in the process: a 2048-bit RSA key
// takes a noticeable while to make, more so under -race.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// testEnv is a devidp and an exchange, each on its own httptest server, the
// exchange registered at devidp with its real callback URL.
type testEnv struct {
	t   testing.TB
	URL string // the exchange
	ex  *Server
	idp *devidptest.Server
	cfg Config // as given to New

	clock *testClock
	calls *callCounter
	logs  *testbuf.Buffer

	mu      sync.Mutex
	secrets map[string]bool // values the logs must never contain
}

type envOptions struct {
	// idp edits devidp's configuration; its Clients are already set.
	idp func(*devidp.Config)
	// exchange edits the exchange's configuration before New.
	exchange func(*Config)
	// redirectHost, when set, replaces 127.0.0.1 in the callback URL
	// registered at devidp and configured (COOKIE_DOMAIN needs a host name).
	// Requests still go to 127.0.0.1.
	redirectHost string
	// refreshWithoutIDToken removes id_token from devidp's answers to
	// refresh grants, as a server may (OpenID Connect Core §12.2).
	refreshWithoutIDToken bool
}

// newEnv starts devidp and an exchange with Secure cookies (the jar of
// newBrowser handles them on loopback as browsers do).
func newEnv(t testing.TB, opts envOptions) *testEnv {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	redirect := base + callbackPath
	if opts.redirectHost != "" {
		_, port, _ := net.SplitHostPort(ts.Listener.Addr().String())
		redirect = "http://" + net.JoinHostPort(opts.redirectHost, port) + callbackPath
	}
	postLogout := origin(redirect) + "/"

	idpCfg := devidp.Config{
		SigningKey: testKey(),
		Clients: []devidp.Client{
			{ID: testClientID, Secret: testClientSecret, RedirectURIs: []string{redirect}, PostLogoutRedirectURIs: []string{postLogout}},
			{ID: apiClientID, Secret: apiClientSecret},
		},
	}
	if opts.idp != nil {
		opts.idp(&idpCfg)
	}
	idp := devidptest.Start(t, idpCfg)

	e := &testEnv{
		t:       t,
		URL:     base,
		idp:     idp,
		clock:   &testClock{},
		calls:   &callCounter{next: http.DefaultTransport, n: map[string]int{}},
		logs:    &testbuf.Buffer{},
		secrets: map[string]bool{},
	}
	if opts.refreshWithoutIDToken {
		e.calls.next = refreshWithoutIDToken{next: http.DefaultTransport}
	}
	cfg := Config{
		Issuer:        idp.URL,
		ClientID:      testClientID,
		ClientSecret:  testClientSecret,
		RedirectURL:   redirect,
		SessionSecret: testSessionSecret,
		TodoAPIURL:    "http://127.0.0.1:1",
		HTTPClient:    &http.Client{Transport: e.calls, Timeout: 10 * time.Second},
		Now:           e.clock.Now,
		Logger:        slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if opts.exchange != nil {
		opts.exchange(&cfg)
	}
	e.cfg = cfg
	e.noteSecret(cfg.ClientSecret)
	e.noteSecret(string(cfg.SessionSecret))

	ex, err := New(t.Context(), cfg)
	if err != nil {
		ts.Close()
		t.Fatal(err)
	}
	e.ex = ex
	ts.Config.Handler = ex
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(e.checkLogs)
	return e
}

// noteSecret adds a value that must never appear in the logs.
func (e *testEnv) noteSecret(v string) {
	if len(v) < 8 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.secrets[v] = true
}

// checkLogs fails the test when the exchange logged a token, code or secret.
func (e *testEnv) checkLogs() {
	logs := e.logs.String()
	e.mu.Lock()
	defer e.mu.Unlock()
	for s := range e.secrets {
		if strings.Contains(logs, s) {
			e.t.Errorf("the logs contain a secret, token or code (%.12s…)", s)
		}
	}
	// A JWT (access or ID token) starts with the base64 of `{"`.
	if strings.Contains(logs, "eyJ") {
		e.t.Errorf("the logs contain something token-like:\n%s", logs)
	}
}

// metric returns the value of a counter, or the sample count of a
// histogram, of the exchange's registry whose labels include labels; 0 when
// it has not been observed.
func (e *testEnv) metric(name string, labels ...string) float64 {
	e.t.Helper()
	mfs, err := e.ex.metrics.registry.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// authorize signs user in at devidp through authURL (the Location of GET
// /login) and returns the callback URL devidp redirects to, with code,
// state and iss.
func (e *testEnv) authorize(authURL, user string) string {
	e.t.Helper()
	resp, err := devidptest.Login(e.t.Context(), devidptest.Browser(e.cfg.RedirectURL), authURL, user, user)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, e.cfg.RedirectURL+"?") {
		e.t.Fatalf("devidp answered %d, Location %q; want a 303 to the callback", resp.StatusCode, loc)
	}
	u, _ := url.Parse(loc)
	e.noteSecret(u.Query().Get("code"))
	return loc
}

// refreshAccepted reports whether devidp's token endpoint accepts
// refreshToken from the exchange's client. Only for a token that should be
// dead: a live one is rotated by the call. (devidp's introspection answers
// "active": true for access tokens only, so it cannot tell.)
func (e *testEnv) refreshAccepted(refreshToken string) bool {
	e.t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	req, _ := http.NewRequest(http.MethodPost, e.idp.URL+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(testClientID, testClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// introspect asks devidp whether token, an access token, is active.
func (e *testEnv) introspect(token string) bool {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.idp.URL+"/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(apiClientID, apiClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Active bool `json:"active"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		e.t.Fatalf("introspection: %d, %v", resp.StatusCode, err)
	}
	return body.Active
}

// browser is a person's browser: a cookie jar and a client that follows no
// redirect, so each step of a flow can be checked.
type browser struct {
	env    *testEnv
	base   string // the exchange as this browser reaches it
	jar    *loopbackJar
	client *http.Client
}

func (e *testEnv) newBrowser() *browser {
	jar := newLoopbackJar()
	return &browser{env: e, base: e.URL, jar: jar, client: &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// newBrowserAt is a browser that reaches the exchange as http://host:port,
// host being a name under .localhost that it dials at 127.0.0.1, so that
// its jar files Domain= cookies by name as browsers do: a cookie planted by
// a sibling host with Domain=<parent> reaches the exchange too.
func (e *testEnv) newBrowserAt(host string) *browser {
	b := e.newBrowser()
	u, _ := url.Parse(e.URL)
	b.base = "http://" + net.JoinHostPort(host, u.Port())
	tr := http.DefaultTransport.(*http.Transport).Clone()
	var d net.Dialer
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if h, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(h, ".localhost") {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}
	b.client.Transport = tr
	return b
}

// plant files a cookie as a sibling host (say evil.tollgate.localhost)
// would set it with Set-Cookie: name=value; Domain=domain; Path=path;
// Secure.
func (b *browser) plant(sibling, name, value, domain, path string) {
	u, _ := url.Parse("https://" + sibling + "/")
	b.jar.SetCookies(u, []*http.Cookie{{Name: name, Value: value, Domain: domain, Path: path, Secure: true, HttpOnly: true}})
}

// result is one response, read whole.
type result struct {
	status  int
	header  http.Header
	body    string
	cookies []*http.Cookie // as set by Set-Cookie
}

// cookie returns the last Set-Cookie of name, or nil: the exchange writes
// the deletions of planted copies (other Domain= and Path=) before its own.
func (r result) cookie(name string) *http.Cookie {
	var last *http.Cookie
	for _, c := range r.cookies {
		if c.Name == name {
			last = c
		}
	}
	return last
}

func (r result) json(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		tb.Fatalf("status %d, body not JSON: %q", r.status, r.body)
	}
	return m
}

// do sends a request to target (a path on the exchange, or an absolute
// URL) with header name/value pairs.
func (b *browser) do(method, target string, header ...string) result {
	b.env.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = b.base + target
	}
	return b.env.send(b.client, method, target, header...)
}

func (b *browser) get(target string) result {
	b.env.t.Helper()
	return b.do(http.MethodGet, target)
}

// send is do for any client (a browser's, or one without cookies).
func (e *testEnv) send(c *http.Client, method, target string, header ...string) result {
	e.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = e.URL + target
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, target, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := result{status: resp.StatusCode, header: resp.Header, body: string(body), cookies: resp.Cookies()}
	e.noteCookies(r.cookies)
	return r
}

// noteCookies records the tokens in the exchange's cookies as secrets: the
// access token as is, the refresh token and ID token from inside their
// sealed cookies.
func (e *testEnv) noteCookies(cs []*http.Cookie) {
	for _, c := range cs {
		switch c.Name {
		case e.ex.names.access:
			e.noteSecret(c.Value)
		case e.ex.names.refresh:
			var rc refreshCookie
			if e.ex.sealer.openJSON(c.Name, c.Value, &rc) == nil {
				e.noteSecret(rc.Token)
			}
		}
	}
}

// startLogin is GET /login?returnTo=…; it returns the authorization URL.
func (b *browser) startLogin(returnTo string) string {
	b.env.t.Helper()
	target := loginPath
	if returnTo != "" {
		target += "?" + url.Values{"returnTo": {returnTo}}.Encode()
	}
	r := b.get(target)
	loc := r.header.Get("Location")
	if r.status != http.StatusFound || !strings.HasPrefix(loc, b.env.idp.URL+"/authorize?") {
		b.env.t.Fatalf("GET /login: %d, Location %q", r.status, loc)
	}
	return loc
}

// login signs user in through the whole flow and returns the callback's
// answer, which it checks is the 303 to returnTo ("/" when empty).
func (b *browser) login(user, returnTo string) result {
	b.env.t.Helper()
	r := b.get(b.env.authorize(b.startLogin(returnTo), user))
	want := returnTo
	if want == "" {
		want = "/"
	}
	if r.status != http.StatusSeeOther || r.header.Get("Location") != want {
		b.env.t.Fatalf("callback: %d, Location %q, want 303 to %q\n%s", r.status, r.header.Get("Location"), want, r.body)
	}
	return r
}

// cookieValue is the value the jar would send to the exchange at path.
func (b *browser) cookieValue(name, path string) string {
	u, _ := url.Parse(b.base + path)
	for _, c := range b.jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// cookieNamesAt lists the names of the cookies the jar would send to u.
func (b *browser) cookieNamesAt(u string) []string {
	pu, _ := url.Parse(u)
	var names []string
	for _, c := range b.jar.Cookies(pu) {
		names = append(names, c.Name)
	}
	return names
}

// loopbackJar is a cookie jar that, like browsers, treats http on loopback
// as a secure context: Chrome, Firefox and Safari keep and send Secure
// cookies on http://localhost, net/http/cookiejar does not. It files and
// reads every cookie as if the URL were https. Ports do not separate
// cookies (RFC 6265 §8.5), so the todo API on another port of 127.0.0.1
// receives the exchange's host-only access token cookie, as in `make run`.
type loopbackJar struct{ jar *cookiejar.Jar }

func newLoopbackJar() *loopbackJar {
	jar, _ := cookiejar.New(nil) // never fails with nil options
	return &loopbackJar{jar: jar}
}

func asHTTPS(u *url.URL) *url.URL {
	c := *u
	c.Scheme = "https"
	return &c
}

func (j *loopbackJar) SetCookies(u *url.URL, cs []*http.Cookie) { j.jar.SetCookies(asHTTPS(u), cs) }
func (j *loopbackJar) Cookies(u *url.URL) []*http.Cookie        { return j.jar.Cookies(asHTTPS(u)) }

// callCounter passes every request of the exchange to the authorization
// server through, counting them by path: the server is real, only counted.
type callCounter struct {
	next http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (c *callCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.n[req.URL.Path]++
	c.mu.Unlock()
	return c.next.RoundTrip(req)
}

func (c *callCounter) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// testClock is time.Now moved by advance.
type testClock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

// refreshWithoutIDToken passes every request to the authorization server
// through and removes id_token from its answers to refresh grants.
type refreshWithoutIDToken struct{ next http.RoundTripper }

func (t refreshWithoutIDToken) RoundTrip(req *http.Request) (*http.Response, error) {
	refresh := false
	if req.Method == http.MethodPost && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		form, _ := url.ParseQuery(string(body))
		refresh = form.Get("grant_type") == "refresh_token"
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil || !refresh || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	if _, ok := m["id_token"]; !ok {
		return nil, errors.New("test: devidp sent no id_token to remove")
	}
	delete(m, "id_token")
	body, _ = json.Marshal(m)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return resp, nil
}

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
	"github.com/tollgate-dev/tollgate/internal/devstack"
	"github.com/tollgate-dev/tollgate/store/redistest"
	"github.com/tollgate-dev/tollgate/todos/todostest"
)

// The cluster tests run the site as an operator would with several
// instances: devidp, three exchange processes behind one round-robin
// reverse proxy (the browser's only exchange origin: the REDIRECT_URL,
// the cookies and the CSRF Origin all name it), and, with Redis, two
// todo-api processes on one PostgreSQL behind another. They count the
// refresh grants at devidp from its "token request" log lines.

const (
	clusterExchanges = 3
	clusterAPIs      = 2
	burst            = 20 // concurrent POST /refreshtoken with the same cookies
)

// TestClusterRefreshOnRedis: with STORE_URL on a shared Redis, 20
// concurrent refreshes spread over three exchange instances spend the
// refresh token once, all 20 answer 200 with the same new access token,
// and the user stays signed in (/me, todo CRUD through the second proxy).
// Redis stopped: a refresh answers 503 with Retry-After on every instance
// (never a grant it cannot coordinate) while CRUD with the access cookie
// goes on; Redis back on the same port: refresh works again, still one
// grant for 20 requests.
func TestClusterRefreshOnRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts seven programs: not in -short")
	}
	start := time.Now()
	rdb := redistest.Start(t)
	dbURL := todostest.PostgresURL(t)
	c := startCluster(t, rdb.URL, dbURL)
	t.Logf("cluster up in %s", time.Since(start).Round(time.Millisecond))

	c.signIn()
	c.mustGet(c.exchange.url+"/me", http.StatusOK)
	c.crud("before the refresh")

	granted := c.refreshBurst("on Redis")
	if len(granted) != 1 || !granted[0] {
		t.Fatalf("refresh grants at devidp for %d requests on three instances sharing Redis: %v, want exactly one, issued", burst, granted)
	}
	c.mustGet(c.exchange.url+"/me", http.StatusOK)
	c.crud("after the refresh")

	// Redis down.
	rdb.Stop()
	before, hits := len(c.refreshGrants()), c.exchange.counts()
	for i := range clusterExchanges {
		resp, body := c.postRefresh(c.cookieHeader())
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("refresh %d with Redis down: %d (Retry-After %q) %s, want 503 with Retry-After", i, resp.StatusCode, resp.Header.Get("Retry-After"), body)
		}
		if len(resp.Cookies()) != 0 {
			t.Fatalf("refresh %d with Redis down changed cookies", i)
		}
	}
	for i, h := range c.exchange.counts() {
		if h-hits[i] != 1 {
			t.Errorf("with Redis down, exchange instance %d got %d of the refreshes, want 1 each", i+1, h-hits[i])
		}
	}
	if got := len(c.refreshGrants()); got != before {
		t.Fatalf("%d refresh grants while Redis was down, want none", got-before)
	}
	c.crud("with Redis down")
	c.mustGet(c.exchange.url+"/me", http.StatusOK)

	// Redis back, on the same port, empty.
	rdb.Start()
	granted = c.refreshBurst("after Redis came back")
	if len(granted) != 1 || !granted[0] {
		t.Fatalf("refresh grants after Redis came back: %v, want exactly one, issued", granted)
	}
	c.mustGet(c.exchange.url+"/me", http.StatusOK)
	c.crud("after Redis came back")
	t.Logf("whole scenario %s; requests per exchange instance %v, per todo-api instance %v",
		time.Since(start).Round(time.Millisecond), c.exchange.counts(), c.api.counts())
}

// TestClusterRefreshWithoutStoreSpendsTheTokenPerInstance documents why
// STORE_URL exists: three exchange instances keeping their refresh
// coordination in-process (no STORE_URL) each spend the same refresh token
// when 20 concurrent refreshes are spread over them. Deterministic without
// any delay at devidp: round robin gives every instance at least six of
// the requests, and an instance without a shared store never learns of
// another's grant, so each sends the token at least once. devidp, like
// any server with rotation, issues tokens for one of them at most and
// refuses the others (a reuse also revokes the whole family), so the
// requests on the other instances fail and those tabs are signed out.
func TestClusterRefreshWithoutStoreSpendsTheTokenPerInstance(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four programs: not in -short")
	}
	c := startCluster(t, "", "")
	c.signIn()

	before := len(c.refreshGrants())
	cookies := c.cookieHeader()
	statuses := make([]int, burst)
	var wg sync.WaitGroup
	for i := range burst {
		wg.Go(func() {
			resp, _ := c.postRefresh(cookies)
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	grants := c.refreshGrants()[before:]
	if len(grants) < clusterExchanges {
		t.Fatalf("%d refresh grants for %d requests over %d in-process instances, want at least one per instance (statuses %v)", len(grants), burst, clusterExchanges, statuses)
	}
	issued, refused := 0, 0
	for _, ok := range grants {
		if ok {
			issued++
		}
	}
	for _, s := range statuses {
		if s != http.StatusOK {
			refused++
		}
	}
	if issued > 1 || refused == 0 {
		t.Fatalf("%d of %d grants issued tokens and %d of %d refreshes failed: want at most one issued and failures", issued, len(grants), refused, burst)
	}
	t.Logf("without STORE_URL: %d refresh grants at devidp (issued: %v), %d of %d refreshes refused (statuses %v)", len(grants), grants, refused, burst, statuses)
}

// cluster is the running site.
type cluster struct {
	t        *testing.T
	idpURL   string
	idp      *clusterProgram
	exchange *roundRobin // the browser-facing exchange origin
	api      *roundRobin // the todo API's
	browser  *http.Client
	jar      http.CookieJar
	todos    int

	mu    sync.Mutex
	progs []*clusterProgram // every program started, for the logs of a failed test
}

// startCluster starts devidp, three exchanges (STORE_URL storeURL, "" for
// in-process) and, when dbURL is set, two todo-APIs on that PostgreSQL,
// each group behind its proxy.
func startCluster(t *testing.T, storeURL, dbURL string) *cluster {
	t.Helper()
	bin := buildBinaries(t)
	ports, err := devstack.FreePorts(1 + clusterExchanges + clusterAPIs)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, idpURL: "http://localhost:" + strconv.Itoa(ports[0])}
	c.exchange = newRoundRobin(t)
	c.api = newRoundRobin(t)
	// Registered first, so it runs last: after every program has stopped,
	// with all they wrote.
	t.Cleanup(func() {
		if t.Failed() {
			c.mu.Lock()
			defer c.mu.Unlock()
			for _, p := range c.progs {
				t.Logf("--- last lines of %s:\n%s", p.label, p.prog.Tail())
			}
		}
	})
	secret := make([]byte, 32)
	rand.Read(secret)

	c.idp = c.startProgram(bin, devstack.DevIDP, "devidp", []string{
		"LISTEN_ADDR=127.0.0.1:" + strconv.Itoa(ports[0]),
		"ISSUER=" + c.idpURL,
		"ACCESS_TOKEN_FORMAT=jwt",
		"ACCESS_TOKEN_AUDIENCE=" + devstack.Audience,
		"EXCHANGE_CLIENT_ID=" + devstack.ExchangeClientID,
		"EXCHANGE_CLIENT_SECRET=" + devstack.ExchangeClientSecret,
		"EXCHANGE_REDIRECT_URLS=" + c.exchange.url + "/oauth-callback",
		"EXCHANGE_POST_LOGOUT_REDIRECT_URLS=" + c.exchange.url + "/",
		"INTROSPECTION_CLIENT_ID=" + devstack.IntrospectionClientID,
		"INTROSPECTION_CLIENT_SECRET=" + devstack.IntrospectionClientSecret,
	}, c.idpURL+"/.well-known/openid-configuration")
	if c.idp == nil {
		t.FailNow()
	}

	var wg sync.WaitGroup
	for i := range clusterExchanges {
		addr := "127.0.0.1:" + strconv.Itoa(ports[1+i])
		env := []string{
			"LISTEN_ADDR=" + addr,
			"ISSUER=" + c.idpURL,
			"CLIENT_ID=" + devstack.ExchangeClientID,
			"CLIENT_SECRET=" + devstack.ExchangeClientSecret,
			// The same on every instance: the proxy's address, and one
			// SESSION_SECRET, so any instance opens any cookie.
			"REDIRECT_URL=" + c.exchange.url + "/oauth-callback",
			"SESSION_SECRET=" + base64.StdEncoding.EncodeToString(secret),
			"COOKIE_SECURE=false",
			"TODO_API_URL=" + c.api.url,
		}
		if storeURL != "" {
			env = append(env, "STORE_URL="+storeURL)
		}
		c.exchange.add("http://" + addr)
		wg.Go(func() {
			c.startProgram(bin, devstack.Exchange, fmt.Sprintf("exch-%d", i+1), env, "http://"+addr+"/healthz")
		})
	}
	if dbURL != "" {
		for i := range clusterAPIs {
			addr := "127.0.0.1:" + strconv.Itoa(ports[1+clusterExchanges+i])
			env := []string{
				"LISTEN_ADDR=" + addr,
				"DATABASE_URL=" + dbURL,
				"AUTH_MODE=jwt",
				"ISSUER=" + c.idpURL,
				"AUDIENCE=" + devstack.Audience,
				"TOKEN_COOKIE=" + devstack.TokenCookies,
				"CORS_ALLOWED_ORIGINS=" + c.exchange.url,
				"BASE_URL=" + c.api.url,
				"RESOURCE_URL=" + c.api.url,
			}
			c.api.add("http://" + addr)
			wg.Go(func() {
				c.startProgram(bin, devstack.TodoAPI, fmt.Sprintf("api-%d", i+1), env, "http://"+addr+"/readyz")
			})
		}
	}
	wg.Wait()
	// Runs before the programs stop: a burst makes the proxies dial
	// connections that end up carrying no request, which a server's
	// graceful shutdown waits for (net/http counts a new connection as
	// busy for 5s), so that an exchange would be killed after SIGTERM.
	t.Cleanup(func() {
		c.exchange.tr.CloseIdleConnections()
		c.api.tr.CloseIdleConnections()
	})
	if t.Failed() {
		t.FailNow()
	}
	jar, _ := cookiejar.New(nil)
	c.jar = jar
	c.browser = devidptest.Browser("")
	c.browser.Jar = jar
	c.browser.Timeout = stepTimeout
	return c
}

// signIn signs alice in through the exchange proxy: /login, devidp's form,
// the callback, the page.
func (c *cluster) signIn() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	resp, err := devidptest.Login(ctx, c.browser, c.exchange.url+"/login", "alice", "alice")
	if err != nil {
		c.t.Fatalf("signing in through %s: %v", c.exchange.url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Host != mustHost(c.t, c.exchange.url) {
		c.t.Fatalf("signing in ended at %s with %d, want the page at %s", resp.Request.URL.Redacted(), resp.StatusCode, c.exchange.url)
	}
	if c.accessCookie() == "" {
		c.t.Fatal("signed in, but no access token cookie")
	}
}

// cookieHeader is the Cookie header the browser sends to /refreshtoken now.
func (c *cluster) cookieHeader() string {
	u, _ := url.Parse(c.exchange.url + "/refreshtoken")
	var parts []string
	for _, ck := range c.jar.Cookies(u) {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	return strings.Join(parts, "; ")
}

func (c *cluster) accessCookie() string {
	u, _ := url.Parse(c.api.url + "/")
	for _, ck := range c.jar.Cookies(u) {
		if ck.Name == "access_token" {
			return ck.Value
		}
	}
	return ""
}

// postRefresh sends POST /refreshtoken as the page does, with the given
// cookies, through the exchange proxy, and leaves the jar alone.
func (c *cluster) postRefresh(cookies string) (*http.Response, string) {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.exchange.url+"/refreshtoken", nil)
	if err != nil {
		panic(err)
	}
	req.Header.Set("Cookie", cookies)
	req.Header.Set("X-CSRF", "1")
	req.Header.Set("Origin", c.exchange.url)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Errorf("POST /refreshtoken: %v", err)
		return &http.Response{StatusCode: -1, Header: http.Header{}}, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp, string(body)
}

// refreshBurst fires the burst of refreshes with the browser's current
// cookies, checks that every one answers 200 with the same new access
// token and that they were spread over every exchange instance, stores the
// new cookies in the jar, and returns the grants devidp logged meanwhile
// (true: tokens issued).
func (c *cluster) refreshBurst(step string) []bool {
	c.t.Helper()
	before := len(c.refreshGrants())
	hitsBefore := c.exchange.counts()
	oldAccess := c.accessCookie()
	cookies := c.cookieHeader()
	type answer struct {
		status  int
		body    string
		cookies []*http.Cookie
	}
	answers := make([]answer, burst)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range burst {
		wg.Go(func() {
			resp, body := c.postRefresh(cookies)
			answers[i] = answer{resp.StatusCode, body, resp.Cookies()}
		})
	}
	wg.Wait()
	c.t.Logf("%s: %d concurrent refreshes answered in %s", step, burst, time.Since(t0).Round(time.Millisecond))
	for i, h := range c.exchange.counts() {
		if h-hitsBefore[i] == 0 {
			c.t.Errorf("%s: exchange instance %d got none of the refreshes", step, i+1)
		}
	}
	newAccess := ""
	for i, a := range answers {
		if a.status != http.StatusOK {
			c.t.Fatalf("%s: refresh %d answered %d %s", step, i, a.status, a.body)
		}
		access := ""
		for _, ck := range a.cookies {
			if ck.Name == "access_token" {
				access = ck.Value
			}
		}
		if access == "" || access == oldAccess {
			c.t.Fatalf("%s: refresh %d set no new access token", step, i)
		}
		if newAccess == "" {
			newAccess = access
			u, _ := url.Parse(c.exchange.url + "/refreshtoken")
			c.jar.SetCookies(u, a.cookies)
		} else if access != newAccess {
			c.t.Fatalf("%s: refresh %d handed out another access token than refresh 0", step, i)
		}
	}
	return c.refreshGrants()[before:]
}

// refreshGrants reads devidp's log: one entry per refresh_token request at
// its token endpoint, true when it issued tokens.
func (c *cluster) refreshGrants() []bool {
	var out []bool
	for _, line := range c.idp.lines() {
		var e struct {
			Msg       string `json:"msg"`
			GrantType string `json:"grant_type"`
			Issued    bool   `json:"issued"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "token request" && e.GrantType == "refresh_token" {
			out = append(out, e.Issued)
		}
	}
	return out
}

// crud creates, reads, updates and deletes a todo through the todo-api
// proxy with the access cookie, as the page does (X-CSRF, Origin), once
// per todo-api instance at least.
func (c *cluster) crud(step string) {
	c.t.Helper()
	for range clusterAPIs {
		c.todos++
		resp, body := c.apiDo(http.MethodPost, c.api.url+"/todos", fmt.Sprintf(`{"title":"cluster %d"}`, c.todos))
		if resp.StatusCode != http.StatusCreated {
			c.t.Fatalf("%s: create: %d %s", step, resp.StatusCode, body)
		}
		var todo struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal([]byte(body), &todo); err != nil || !strings.HasPrefix(todo.URL, c.api.url+"/") {
			c.t.Fatalf("%s: create answered %s (%v)", step, body, err)
		}
		for _, op := range []struct {
			method, body string
			want         int
		}{
			{http.MethodGet, "", http.StatusOK},
			{http.MethodPatch, `{"completed":true}`, http.StatusOK},
			{http.MethodDelete, "", http.StatusNoContent},
			{http.MethodGet, "", http.StatusNotFound},
		} {
			if resp, body := c.apiDo(op.method, todo.URL, op.body); resp.StatusCode != op.want {
				c.t.Fatalf("%s: %s %s: %d %s, want %d", step, op.method, todo.URL, resp.StatusCode, body, op.want)
			}
		}
	}
}

func (c *cluster) apiDo(method, target, body string) (*http.Response, string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-CSRF", "1")
	req.Header.Set("Origin", c.exchange.url)
	resp, err := c.browser.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(b)
}

func (c *cluster) mustGet(target string, want int) {
	c.t.Helper()
	resp, body := c.apiDo(http.MethodGet, target, "")
	if resp.StatusCode != want {
		c.t.Fatalf("GET %s: %d %s, want %d", target, resp.StatusCode, body, want)
	}
}

func mustHost(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// roundRobin is the load balancer: an httputil.ReverseProxy on its own
// port of 127.0.0.1, named http://localhost:PORT like the programs, that
// sends each request to the next backend in turn and passes the Host on.
type roundRobin struct {
	url      string
	mu       sync.Mutex
	backends []*url.URL
	hits     []*atomic.Int64 // requests sent to each backend
	next     atomic.Uint64
	tr       *http.Transport
}

func newRoundRobin(t *testing.T) *roundRobin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rr := &roundRobin{
		url: "http://localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port),
		tr:  &http.Transport{MaxIdleConnsPerHost: burst, IdleConnTimeout: 30 * time.Second},
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			rr.mu.Lock()
			n := len(rr.backends)
			i := int(rr.next.Add(1)-1) % n
			target, hits := rr.backends[i], rr.hits[i]
			rr.mu.Unlock()
			hits.Add(1)
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: rr.tr,
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return rr
}

func (rr *roundRobin) add(backend string) {
	u, err := url.Parse(backend)
	if err != nil {
		panic(err)
	}
	rr.mu.Lock()
	defer rr.mu.Unlock()
	rr.backends = append(rr.backends, u)
	rr.hits = append(rr.hits, new(atomic.Int64))
}

// counts returns how many requests each backend got so far.
func (rr *roundRobin) counts() []int64 {
	rr.mu.Lock()
	defer rr.mu.Unlock()
	out := make([]int64, len(rr.hits))
	for i, h := range rr.hits {
		out[i] = h.Load()
	}
	return out
}

// clusterProgram is one started program and everything it wrote.
type clusterProgram struct {
	label string
	prog  *devstack.Program
	mu    sync.Mutex
	out   bytes.Buffer
}

func (p *clusterProgram) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.out.Len() > 32<<20 {
		return len(b), nil // bounded: a runaway program cannot fill memory
	}
	return p.out.Write(b)
}

// lines returns the program's output lines without their prefix.
func (p *clusterProgram) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for l := range strings.Lines(p.out.String()) {
		_, rest, _ := strings.Cut(l, " | ")
		out = append(out, strings.TrimSuffix(rest, "\n"))
	}
	return out
}

// startProgram starts one program, waits until ready answers 200, and
// stops it when the test ends. Safe from several goroutines: it reports
// with t.Errorf and returns nil when the program does not come up.
func (c *cluster) startProgram(bin, name, label string, env []string, ready string) *clusterProgram {
	t := c.t
	cp := &clusterProgram{label: label}
	prog, err := devstack.StartProgram(bin, name, label, env, cp)
	if err != nil {
		t.Errorf("starting %s: %v", label, err)
		return nil
	}
	cp.prog = prog
	c.mu.Lock()
	c.progs = append(c.progs, cp)
	c.mu.Unlock()
	t.Cleanup(func() {
		if err := prog.Stop(5 * time.Second); err != nil {
			t.Errorf("stopping %s: %v", label, err)
		}
	})
	deadline := time.Now().Add(startTimeout)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := client.Get(ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cp
			}
		}
		select {
		case <-prog.Done():
			t.Errorf("%s exited before it was ready:\n%s", label, prog.Tail())
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Errorf("%s not ready at %s after %s:\n%s", label, ready, startTimeout, prog.Tail())
			return nil
		}
	}
}

package exchange

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
	"github.com/tollgate-dev/tollgate/internal/testbuf"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/redistest"
)

// cluster is one devidp and several exchange instances of one site, as
// behind a load balancer: one client registration, one SESSION_SECRET, one
// public callback URL (the first instance's), and each instance on its own
// port of 127.0.0.1, which the browser's cookies reach alike (ports do not
// separate cookies).
type cluster struct {
	t    testing.TB
	envs []*testEnv
	// grants counts the refresh grants that reached devidp's token
	// endpoint, each delayed by delay so that concurrent ones overlap.
	grants atomic.Int32
	delay  time.Duration
}

// newCluster starts devidp and n exchanges; storeFor gives the i-th
// instance's Config.StoreURL ("" keeps its coordination in-process).
func newCluster(t testing.TB, n int, delay time.Duration, storeFor func(i int) string, edits ...func(i int, cfg *Config)) *cluster {
	t.Helper()
	c := &cluster{t: t, delay: delay}
	idpTS := httptest.NewUnstartedServer(nil)
	issuer := "http://" + idpTS.Listener.Addr().String()
	exTS := make([]*httptest.Server, n)
	for i := range exTS {
		exTS[i] = httptest.NewUnstartedServer(nil)
	}
	redirect := "http://" + exTS[0].Listener.Addr().String() + callbackPath
	idp, err := devidp.New(t.Context(), devidp.Config{
		Issuer:     issuer,
		SigningKey: testKey(),
		Clients: []devidp.Client{
			{ID: testClientID, Secret: testClientSecret, RedirectURIs: []string{redirect}, PostLogoutRedirectURIs: []string{origin(redirect) + "/"}},
			{ID: apiClientID, Secret: apiClientSecret},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	idpTS.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/token" {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if form, _ := url.ParseQuery(string(body)); form.Get("grant_type") == "refresh_token" {
				c.grants.Add(1)
				time.Sleep(c.delay)
			}
		}
		idp.ServeHTTP(w, r)
	})
	idpTS.Start()
	t.Cleanup(idpTS.Close)
	dt := &devidptest.Server{Server: idpTS, IDP: idp}

	for i, ts := range exTS {
		e := &testEnv{
			t: t, URL: "http://" + ts.Listener.Addr().String(), idp: dt,
			clock:   &testClock{},
			calls:   &callCounter{next: http.DefaultTransport, n: map[string]int{}},
			logs:    &testbuf.Buffer{},
			secrets: map[string]bool{},
		}
		cfg := Config{
			Issuer:        issuer,
			ClientID:      testClientID,
			ClientSecret:  testClientSecret,
			RedirectURL:   redirect,
			SessionSecret: testSessionSecret,
			TodoAPIURL:    "http://127.0.0.1:1",
			HTTPClient:    &http.Client{Transport: e.calls, Timeout: 10 * time.Second},
			HTTPTimeout:   5 * time.Second,
			StoreURL:      storeFor(i),
			Now:           e.clock.Now,
			Logger:        slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		}
		for _, edit := range edits {
			edit(i, &cfg)
		}
		e.cfg = cfg
		e.noteSecret(cfg.ClientSecret)
		e.noteSecret(string(cfg.SessionSecret))
		ex, err := New(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ex.Close() })
		e.ex = ex
		ts.Config.Handler = ex
		ts.Start()
		t.Cleanup(ts.Close)
		t.Cleanup(e.checkLogs)
		c.envs = append(c.envs, e)
	}
	return c
}

// signIn signs alice in through the first instance and returns her
// browser.
func (c *cluster) signIn() *browser {
	c.t.Helper()
	b := c.envs[0].newBrowser()
	b.login("alice", "")
	return b
}

// refreshCookies are the Cookie header of b's POST /refreshtoken.
func (c *cluster) refreshCookies(b *browser) string {
	n := c.envs[0].ex.names
	return n.refresh + "=" + b.cookieValue(n.refresh, refreshPath) + "; " + n.session + "=" + b.cookieValue(n.session, "/")
}

// refreshAll sends workers POST /refreshtoken with cookie at once, spread
// over the instances round-robin.
func (c *cluster) refreshAll(workers int, cookie string) []result {
	results := make([]result, workers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range workers {
		e := c.envs[i%len(c.envs)]
		wg.Go(func() {
			<-start
			results[i] = e.send(&http.Client{Timeout: 30 * time.Second}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie)
		})
	}
	close(start)
	wg.Wait()
	return results
}

// TestClusterRefreshOneGrant: three instances sharing one Redis, twenty
// concurrent refreshes with the same cookies spread over them: devidp sees
// one refresh grant, every request gets the same new tokens, the user stays
// signed in, and Redis holds no token, in clear or as a plain hash.
func TestClusterRefreshOneGrant(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newCluster(t, 3, 300*time.Millisecond, func(int) string { return srv.URL })
	b := c.signIn()
	e := c.envs[0]
	n := e.ex.names
	rt1 := e.refreshToken(b)

	results := c.refreshAll(20, c.refreshCookies(b))
	var access, sealed string
	for i, r := range results {
		if r.status != http.StatusOK {
			t.Errorf("request %d (instance %d): %d %s", i, i%3, r.status, r.body)
			continue
		}
		a, rc := r.cookie(n.access), r.cookie(n.refresh)
		if a == nil || rc == nil {
			t.Errorf("request %d: access cookie %v, refresh cookie %v", i, a, rc)
			continue
		}
		if access == "" {
			access, sealed = a.Value, rc.Value
		} else if a.Value != access {
			t.Errorf("request %d got another access token", i)
		}
	}
	if got := c.grants.Load(); got != 1 {
		t.Fatalf("%d refresh grants at devidp, want exactly 1", got)
	}
	var rt2 refreshCookie
	if e.ex.sealer.openJSON(n.refresh, sealed, &rt2) != nil || rt2.Token == "" || rt2.Token == rt1 {
		t.Fatal("the refresh did not hand out a new refresh token")
	}
	e.noteSecret(rt2.Token)

	// What Redis holds: no token, no plain SHA-256 of one, no JWT.
	dump := srv.Dump()
	if len(dump) == 0 {
		t.Fatal("Redis holds nothing after a coordinated refresh")
	}
	// (Not "eyJ": base64 ciphertext contains it by chance.)
	forbidden := []string{rt1, rt2.Token, access}
	for _, tok := range []string{rt1, rt2.Token} {
		h := sha256.Sum256([]byte(tok))
		forbidden = append(forbidden, hex.EncodeToString(h[:]), string(h[:]))
	}
	for k, v := range dump {
		if !strings.HasPrefix(k, storeKeyPrefix) {
			t.Errorf("key %q outside the exchange's prefix", k)
		}
		for _, f := range forbidden {
			if strings.Contains(k, f) || strings.Contains(v, f) {
				t.Errorf("Redis key %q or its value contains a token or its plain hash (%.8s…)", k, f)
			}
		}
	}

	// Still signed in: the new refresh token works, on another instance.
	b.jar.SetCookies(mustURL(e.URL+refreshPath), []*http.Cookie{{Name: n.refresh, Value: sealed, Path: refreshPath}})
	r := c.envs[1].send(&http.Client{}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", c.refreshCookies(b))
	if r.status != http.StatusOK {
		t.Fatalf("refresh with the new token: %d %s", r.status, r.body)
	}
	if got := c.grants.Load(); got != 2 {
		t.Errorf("%d refresh grants after the second refresh, want 2", got)
	}
}

// TestClusterSharesAFailedGrant: when the one grant fails (here
// invalid_grant for a refresh token spent elsewhere), the waiters on every
// instance answer as it did instead of each sending the token again.
func TestClusterSharesAFailedGrant(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newCluster(t, 3, 300*time.Millisecond, func(int) string { return srv.URL })
	b := c.signIn()
	e := c.envs[0]
	// Spent behind the exchange's back: its next use is a replay.
	if !e.refreshAccepted(e.refreshToken(b)) {
		t.Fatal("devidp refused a fresh refresh token")
	}
	before := c.grants.Load()
	results := c.refreshAll(12, c.refreshCookies(b))
	for i, r := range results {
		if r.status != http.StatusUnauthorized {
			t.Errorf("request %d: %d %s, want 401", i, r.status, r.body)
		}
	}
	if got := c.grants.Load() - before; got != 1 {
		t.Errorf("%d refresh grants, want 1: the waiters must not send the dead token again", got)
	}
}

// TestClusterWithoutStoreSpendsTheTokenTwice documents why STORE_URL
// exists: three instances each keeping the coordination to themselves each
// spend the refresh token, which a rotating server with reuse detection
// (devidp, Auth0, Okta, Keycloak, Hydra) takes for theft.
func TestClusterWithoutStoreSpendsTheTokenTwice(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 3, 300*time.Millisecond, func(int) string { return "" })
	b := c.signIn()
	results := c.refreshAll(20, c.refreshCookies(b))
	if got := c.grants.Load(); got <= 1 {
		t.Fatalf("%d refresh grants at devidp; three in-process instances were expected to spend the token more than once", got)
	}
	failed := 0
	for _, r := range results {
		if r.status != http.StatusOK {
			failed++
		}
	}
	t.Logf("without a shared store: %d refresh grants for one refresh token, %d of 20 requests refused", c.grants.Load(), failed)
}

// TestClusterRedisOutage: with Redis down a refresh answers 503 with
// Retry-After and spends nothing; sign-out still revokes and clears the
// cookies; once Redis is back, refreshes work again without a restart.
func TestClusterRedisOutage(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newCluster(t, 2, 0, func(int) string { return srv.URL })
	b := c.signIn()
	e := c.envs[0]
	cookie := c.refreshCookies(b)

	srv.Stop()
	for i, inst := range c.envs {
		r := inst.send(&http.Client{}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie)
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Fatalf("instance %d with Redis down: %d (Retry-After %q) %s, want 503 with Retry-After", i, r.status, r.header.Get("Retry-After"), r.body)
		}
		if r.cookie(e.ex.names.access) != nil || r.cookie(e.ex.names.refresh) != nil {
			t.Errorf("instance %d: a 503 touched the cookies", i)
		}
	}
	if got := c.grants.Load(); got != 0 {
		t.Fatalf("%d refresh grants while Redis was down, want 0", got)
	}
	if got := e.metric("exchange_refreshes_total", "outcome", "store_unavailable"); got != 1 {
		t.Errorf("refreshes{store_unavailable} = %v, want 1", got)
	}
	if strings.Count(e.logs.String(), "shared store unavailable") != 1 {
		t.Errorf("the outage was not logged exactly once:\n%s", e.logs)
	}

	srv.Start()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := c.envs[1].send(&http.Client{}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie)
		if r.status == http.StatusOK {
			break
		}
		if r.status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			t.Fatalf("refresh after Redis came back: %d %s", r.status, r.body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := c.grants.Load(); got != 1 {
		t.Errorf("%d refresh grants once Redis was back, want 1", got)
	}
	// The instance that answered the retry within the grace period gets
	// the same result from Redis, spending nothing.
	if r := e.send(&http.Client{}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie); r.status != http.StatusOK {
		t.Errorf("the other instance within the grace period: %d %s", r.status, r.body)
	}
	if got := c.grants.Load(); got != 1 {
		t.Errorf("%d refresh grants, want still 1", got)
	}
}

// TestClusterSignOutWithRedisDown: sign-out does not depend on the store:
// the refresh token is revoked at devidp and the cookies go.
func TestClusterSignOutWithRedisDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newCluster(t, 2, 0, func(int) string { return srv.URL })
	b := c.signIn()
	e := c.envs[0]
	rt := e.refreshToken(b)
	srv.Stop()
	r := c.envs[1].send(&http.Client{}, http.MethodDelete, refreshPath, "X-CSRF", "1", "Cookie", c.refreshCookies(b))
	if r.status != http.StatusOK || r.json(t)["revoked"] != true {
		t.Fatalf("sign-out with Redis down: %d %s", r.status, r.body)
	}
	e.checkCleared(t, r)
	if e.refreshAccepted(rt) {
		t.Error("the refresh token still works after sign-out")
	}
	if !strings.Contains(c.envs[1].logs.String(), "sign-out: the shared store did not record it") {
		t.Error("the store failure at sign-out was not logged")
	}
}

// TestClusterSignOutAfterRefresh: sign-out on one instance forgets the
// session for all: another instance does not hand the refreshed tokens to
// the replaced refresh token within the grace period.
func TestClusterSignOutAfterRefresh(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newCluster(t, 2, 0, func(int) string { return srv.URL })
	b := c.signIn()
	e := c.envs[0]
	old := c.refreshCookies(b)
	if r := b.do(http.MethodPost, refreshPath, "X-CSRF", "1"); r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	if r := b.do(http.MethodDelete, refreshPath, "X-CSRF", "1"); r.status != http.StatusOK {
		t.Fatalf("sign-out: %d %s", r.status, r.body)
	}
	r := c.envs[1].send(&http.Client{}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", old)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("the replaced token on another instance after sign-out: %d %s, want 401", r.status, r.body)
	}
	e.checkCleared(t, r)
}

// TestClusterDeadLockIsNotTakenOver: a lock whose holder died (it never
// stores a result nor releases the lock) delays the refresh until it
// expires; the waiters then answer 503 with Retry-After rather than spend
// a token the holder may have spent (review-store), and the retry runs the
// grant once.
func TestClusterDeadLockIsNotTakenOver(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newCluster(t, 2, 0, func(int) string { return srv.URL })
	b := c.signIn()
	e := c.envs[0]
	st, err := store.Open(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const held = 1500 * time.Millisecond
	if won, err := st.SetNX(t.Context(), key("lock", e.ex.shared.id(e.refreshToken(b))), []byte("a dead instance"), held); !won || err != nil {
		t.Fatalf("planting the lock: %v %v", won, err)
	}
	start := time.Now()
	results := c.refreshAll(4, c.refreshCookies(b))
	for i, r := range results {
		if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("request %d: %d %s, want 503 with Retry-After", i, r.status, r.body)
		}
	}
	if d := time.Since(start); d < held-100*time.Millisecond {
		t.Errorf("answered after %v, before the dead holder's lock expired", d)
	}
	if got := c.grants.Load(); got != 0 {
		t.Errorf("%d refresh grants by waiters, want 0", got)
	}
	for i, r := range c.refreshAll(4, c.refreshCookies(b)) {
		if r.status != http.StatusOK {
			t.Errorf("retry %d: %d %s", i, r.status, r.body)
		}
	}
	if got := c.grants.Load(); got != 1 {
		t.Errorf("%d refresh grants, want 1", got)
	}
}

// TestSharedResultBoundToItsKey: a sealed result moved to another token's
// key does not open there, and a value sealed under another SESSION_SECRET
// does not either: both count as absent.
func TestSharedResultBoundToItsKey(t *testing.T) {
	t.Parallel()
	mem := store.NewMemory(store.MemoryOptions{})
	e := newEnv(t, envOptions{exchange: func(c *Config) { c.Store = mem }})
	b := e.newBrowser()
	b.login("alice", "")
	rt := e.refreshToken(b)
	if r := b.do(http.MethodPost, refreshPath, "X-CSRF", "1"); r.status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	ctx := t.Context()
	id := e.ex.shared.id(rt)
	v, ok, _ := mem.Get(ctx, key("result", id))
	if !ok {
		t.Fatal("no shared result after a refresh")
	}
	if _, ok, err := e.ex.loadResult(ctx, id); !ok || err != nil {
		t.Fatalf("the result does not load from its own key: %v %v", ok, err)
	}
	other := e.ex.shared.id("another refresh token")
	if err := mem.Set(ctx, key("result", other), v, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.ex.loadResult(ctx, other); ok {
		t.Error("a result moved to another key opened")
	}
	alien, err := newSealerFor([]byte("another-session-secret-0123456789abcdef"), "tollgate exchange store v1", maxStoredLen)
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := alien.sealJSON(key("result", other), sharedResult{Access: "forged"})
	if err := mem.Set(ctx, key("result", other), []byte(forged), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := e.ex.loadResult(ctx, other); ok {
		t.Error("a result sealed under another secret opened")
	}
}

// TestSharedStoreKeepsSingleInstanceBehaviour: with a store (here the
// in-process one), the single-instance guarantees hold as without: 20
// concurrent refreshes make one grant, a late request with the replaced
// token gets the same tokens, and sign-out forgets it.
func TestSharedStoreKeepsSingleInstanceBehaviour(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{exchange: func(c *Config) { c.Store = store.NewMemory(store.MemoryOptions{}) }})
	b := e.newBrowser()
	b.login("alice", "")
	n := e.ex.names
	cookie := n.refresh + "=" + b.cookieValue(n.refresh, refreshPath) + "; " + n.session + "=" + b.cookieValue(n.session, "/")
	tokens := e.calls.count("/token")
	results := make([]result, 20)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = e.newBrowser().do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie) })
	}
	wg.Wait()
	for i, r := range results {
		if r.status != http.StatusOK || r.cookie(n.access) == nil || r.cookie(n.access).Value != results[0].cookie(n.access).Value {
			t.Errorf("request %d: %d %s", i, r.status, r.body)
		}
	}
	if got := e.calls.count("/token") - tokens; got != 1 {
		t.Errorf("%d token requests, want 1", got)
	}
	if ok, shared := e.metric("exchange_refreshes_total", "outcome", "ok"), e.metric("exchange_refreshes_total", "outcome", "shared"); ok != 1 || shared != 19 {
		t.Errorf("refreshes ok=%v shared=%v, want 1 and 19", ok, shared)
	}
	b.jar.SetCookies(mustURL(e.URL+refreshPath), []*http.Cookie{{Name: n.refresh, Value: results[0].cookie(n.refresh).Value, Path: refreshPath}})
	if r := b.do(http.MethodDelete, refreshPath, "X-CSRF", "1"); r.status != http.StatusOK {
		t.Fatalf("sign-out: %d", r.status)
	}
	if r := e.newBrowser().do(http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie); r.status != http.StatusUnauthorized {
		t.Errorf("the replaced token after sign-out: %d %s, want 401", r.status, r.body)
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}

// BenchmarkRefresh is one POST /refreshtoken (devidp's grant included) with
// the refresh coordinated in-process and through Redis; the difference is
// the store's round trips. go test -run '^$' -bench Refresh -benchtime 200x
func BenchmarkRefresh(b *testing.B) {
	for _, mode := range []string{"in-process", "redis"} {
		b.Run(mode, func(b *testing.B) {
			url := ""
			if mode == "redis" {
				url = redistest.Start(b).URL
			}
			c := newCluster(b, 1, 0, func(int) string { return url })
			br := c.signIn()
			e := c.envs[0]
			n := e.ex.names
			b.ResetTimer()
			for range b.N {
				r := br.do(http.MethodPost, refreshPath, "X-CSRF", "1")
				if r.status != http.StatusOK || r.cookie(n.refresh) == nil {
					b.Fatalf("refresh: %d %s", r.status, r.body)
				}
			}
		})
	}
}

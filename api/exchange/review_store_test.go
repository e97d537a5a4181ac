package exchange

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/store/redistest"
)

// flakyStore is a real store (Redis here) behind a network that slows or
// loses some calls, as a flaky link between one instance and Redis would.
type flakyStore struct {
	store.Store
	gets atomic.Int32
	// getDelay, when set, delays the n-th Get (from 1).
	getDelay atomic.Pointer[func(n int32) time.Duration]
	// failResultSets is how many Sets of a refresh result still fail.
	failResultSets atomic.Int32
	// failProducedSets is how many Sets of a "produced" mark still fail.
	failProducedSets atomic.Int32
	// resultSetDelay delays each Set of a refresh result (nanoseconds).
	resultSetDelay atomic.Int64
}

func (f *flakyStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	n := f.gets.Add(1)
	if d := f.getDelay.Load(); d != nil {
		if wait := (*d)(n); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return nil, false, store.ErrUnavailable
			}
		}
	}
	return f.Store.Get(ctx, key)
}

func (f *flakyStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if strings.Contains(key, ":result:") && f.failResultSets.Add(-1) >= 0 {
		return store.ErrUnavailable
	}
	if strings.Contains(key, ":produced:") && f.failProducedSets.Add(-1) >= 0 {
		return store.ErrUnavailable
	}
	if d := time.Duration(f.resultSetDelay.Load()); d > 0 && strings.Contains(key, ":result:") {
		time.Sleep(d)
	}
	return f.Store.Set(ctx, key, value, ttl)
}

// flakyFor wraps a Redis store of srv for instance 0 of a cluster.
func flakyFor(t *testing.T, srv *redistest.Server, f *flakyStore) func(i int, cfg *Config) {
	return func(i int, cfg *Config) {
		cfg.HTTPTimeout = 2 * time.Second // lockTTL 5s
		if i != 0 {
			return
		}
		st, err := store.Open(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		f.Store = st
		cfg.Store, cfg.StoreURL = f, ""
	}
}

// TestReviewStoreGrantNeverOutlivesTheLock: an instance whose lock is taken
// but whose store calls before the grant are slow must not start a grant
// that would run past the lock's expiry: another instance, seeing no lock,
// would spend the same refresh token a second time.
func TestReviewStoreGrantNeverOutlivesTheLock(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := &flakyStore{}
	c := newCluster(t, 2, 1500*time.Millisecond, func(int) string { return srv.URL }, flakyFor(t, srv, f))
	b := c.signIn()
	cookie := c.refreshCookies(b)
	// Get 1 is the holder's first look for a result (fast), then it takes
	// the lock; Get 2, its look again under the lock, takes 4.2 of the
	// lock's 5 seconds.
	base := f.gets.Load()
	delay := func(n int32) time.Duration {
		if n == base+2 {
			return 4200 * time.Millisecond
		}
		return 0
	}
	f.getDelay.Store(&delay)
	var wg sync.WaitGroup
	var first result
	wg.Go(func() {
		first = c.envs[0].send(&http.Client{Timeout: 30 * time.Second}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie)
	})
	// After the lock expired (5s), while a grant started at 4.2s would
	// still run (1.5s at devidp): a request of another tab, at another
	// instance.
	time.Sleep(5300 * time.Millisecond)
	second := c.envs[1].send(&http.Client{Timeout: 30 * time.Second}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie)
	wg.Wait()
	if got := c.grants.Load(); got != 1 {
		t.Errorf("%d refresh grants for one refresh token, want 1 (first %d, second %d)", got, first.status, second.status)
	}
	if second.status != http.StatusOK {
		t.Errorf("the request after the lock expired: %d %s", second.status, second.body)
	}
	if first.status == http.StatusServiceUnavailable && first.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
}

// TestReviewStoreFailedResultStoreIsNotSpentAgain: the holder's grant
// succeeds but storing its result fails (a flake between it and Redis).
// The holder's browser gets the new tokens; a request waiting at another
// instance must not take the expired lock over and spend the old refresh
// token again (with a rotating server: reuse, the family revoked, the
// tokens just handed out dead). It answers 503, and the browser's retry,
// with the new cookie, works.
func TestReviewStoreFailedResultStoreIsNotSpentAgain(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := &flakyStore{}
	c := newCluster(t, 2, 500*time.Millisecond, func(int) string { return srv.URL }, flakyFor(t, srv, f))
	b := c.signIn()
	cookie := c.refreshCookies(b)
	f.failResultSets.Store(1)
	var wg sync.WaitGroup
	var first result
	wg.Go(func() {
		first = c.envs[0].send(&http.Client{Timeout: 30 * time.Second}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie)
	})
	time.Sleep(150 * time.Millisecond)
	second := c.envs[1].send(&http.Client{Timeout: 30 * time.Second}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie)
	wg.Wait()
	if first.status != http.StatusOK {
		t.Fatalf("the holder: %d %s", first.status, first.body)
	}
	if got := c.grants.Load(); got != 1 {
		t.Errorf("%d refresh grants for one refresh token, want 1 (the waiter answered %d %s)", got, second.status, second.body)
	}
	if second.status != http.StatusServiceUnavailable || second.header.Get("Retry-After") == "" {
		t.Errorf("the waiter: %d %s, want 503 with Retry-After", second.status, second.body)
	}
	for _, ck := range second.cookies {
		if ck.MaxAge < 0 {
			t.Errorf("the waiter cleared cookie %s", ck.Name)
		}
	}
	// The browser took the holder's cookies; its retry works.
	n := c.envs[0].ex.names
	rc, sc := first.cookie(n.refresh), first.cookie(n.session)
	if rc == nil || sc == nil {
		t.Fatalf("the holder set no refresh or session cookie")
	}
	if r := c.envs[1].send(&http.Client{}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", n.refresh+"="+rc.Value+"; "+n.session+"="+sc.Value); r.status != http.StatusOK {
		t.Errorf("the retry with the new cookie: %d %s", r.status, r.body)
	}
}

// TestReviewStoreSignOutOutlivesTheResult: a sign-out made while a refresh
// with the same token runs on another instance marks the token forgotten
// before that refresh stores its result. The mark must last as long as the
// result: with a RefreshGrace longer than the mark (a minute), the old
// refresh cookie (a copy kept by whoever stole it) collected the new
// tokens once the mark expired, where one instance never hands them out
// (graceCache.put refuses a forgotten token).
func TestReviewStoreSignOutOutlivesTheResult(t *testing.T) {
	t.Parallel()
	var off atomic.Int64
	mem := store.NewMemory(store.MemoryOptions{Now: func() time.Time { return time.Now().Add(time.Duration(off.Load())) }})
	slow := &flakyStore{Store: mem}
	c := newCluster(t, 2, 0, func(int) string { return "" }, func(i int, cfg *Config) {
		cfg.Store = mem
		if i == 0 {
			cfg.Store = slow
		}
		cfg.RefreshGrace = 5 * time.Minute
	})
	b := c.signIn()
	cookie := c.refreshCookies(b)
	// The grant ends at once; storing its result takes a second, in which
	// the browser signs out at the other instance.
	slow.resultSetDelay.Store(int64(time.Second))
	var wg sync.WaitGroup
	var refreshed result
	wg.Go(func() {
		refreshed = c.envs[0].send(&http.Client{Timeout: 30 * time.Second}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie)
	})
	time.Sleep(300 * time.Millisecond)
	if r := c.envs[1].send(&http.Client{}, http.MethodDelete, refreshPath, "X-CSRF", "1", "Cookie", cookie); r.status != http.StatusOK {
		t.Fatalf("sign-out: %d %s", r.status, r.body)
	}
	wg.Wait()
	if refreshed.status != http.StatusUnauthorized {
		t.Fatalf("the refresh that ran during sign-out: %d %s, want 401", refreshed.status, refreshed.body)
	}
	off.Store(int64(2 * time.Minute))
	// At the instance that ran the refresh (the one that signed out also
	// remembers it in-process; a third would not).
	r := c.envs[0].send(&http.Client{}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie)
	if r.status == http.StatusOK {
		t.Errorf("the signed-out refresh cookie two minutes later: %d, the new tokens handed out (%d grants)", r.status, c.grants.Load())
	}
}

// TestReviewStoreSignOutFindsTheResultThatHandedOutItsToken: sign-out with
// the current refresh token drops the result that handed it out, found
// through the "produced" mark. When writing that mark failed (a flake) but
// the result was stored, sign-out missed the result, and the replaced
// refresh cookie (a stolen copy) collected the signed-out session's tokens
// at any instance for the rest of RefreshGrace.
func TestReviewStoreSignOutFindsTheResultThatHandedOutItsToken(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	f := &flakyStore{}
	c := newCluster(t, 2, 0, func(int) string { return srv.URL }, flakyFor(t, srv, f))
	b := c.signIn()
	old := c.refreshCookies(b)
	f.failProducedSets.Store(1)
	r := c.envs[0].send(&http.Client{}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", old)
	if r.status != http.StatusOK && r.status != http.StatusServiceUnavailable {
		t.Fatalf("refresh: %d %s", r.status, r.body)
	}
	if r.status == http.StatusOK {
		n := c.envs[0].ex.names
		current := n.refresh + "=" + r.cookie(n.refresh).Value + "; " + n.session + "=" + r.cookie(n.session).Value
		if s := c.envs[1].send(&http.Client{}, http.MethodDelete, refreshPath, "X-CSRF", "1", "Cookie", current); s.status != http.StatusOK {
			t.Fatalf("sign-out: %d %s", s.status, s.body)
		}
	}
	if got := c.envs[0].send(&http.Client{}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", old); got.status == http.StatusOK {
		t.Errorf("the replaced refresh cookie after sign-out: %d, the signed-out session's tokens handed out", got.status)
	}
}

// TestReviewStoreOddRedisValues: someone who can write to Redis plants
// values of the wrong type or size under this session's keys. The
// exchange answers 503 (the refresh cannot be coordinated) or goes on, and
// never panics nor answers 500; sign-out still signs out.
func TestReviewStoreOddRedisValues(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newCluster(t, 1, 0, func(int) string { return srv.URL }, func(_ int, cfg *Config) { cfg.HTTPTimeout = time.Second })
	e := c.envs[0]
	b := c.signIn()
	id := e.ex.shared.id(e.refreshToken(b))
	cookie := c.refreshCookies(b)
	refresh := func(what string, want ...int) {
		t.Helper()
		r := e.send(&http.Client{Timeout: 30 * time.Second}, http.MethodPost, refreshPath, "X-CSRF", "1", "Cookie", cookie)
		for _, w := range want {
			if r.status == w {
				return
			}
		}
		t.Errorf("%s: %d %s, want one of %v", what, r.status, r.body, want)
	}
	srv.Do("rpush", key("result", id), "x")
	refresh("result is a list", http.StatusServiceUnavailable)
	srv.Do("del", key("result", id))
	srv.Do("set", key("result", id), strings.Repeat("A", 1<<20))
	srv.Do("hset", key("lock", id), "a", "b")
	srv.Do("pexpire", key("lock", id), 1500)
	refresh("result is 1 MiB of junk, lock is a hash", http.StatusServiceUnavailable)
	srv.Do("del", key("result", id), key("lock", id))
	srv.Do("hset", key("forgotten", id), "a", "b")
	refresh("forgotten mark is a hash", http.StatusOK, http.StatusUnauthorized)
	b2 := c.signIn()
	id2 := e.ex.shared.id(e.refreshToken(b2))
	srv.Do("rpush", key("produced", id2), "x")
	if r := e.send(&http.Client{}, http.MethodDelete, refreshPath, "X-CSRF", "1", "Cookie", c.refreshCookies(b2)); r.status != http.StatusOK {
		t.Errorf("sign-out with a list as produced mark: %d %s", r.status, r.body)
	}
	// The mark that could not be read must not cost the token's own
	// sign-out mark.
	if _, ok := srv.Dump()[key("forgotten", id2)]; !ok {
		t.Errorf("sign-out left no forgotten mark when the produced mark could not be read")
	}
}

// TestReviewStoreWaitersUnsubscribe: after refreshes that made instances
// wait for each other, no channel stays subscribed at Redis.
func TestReviewStoreWaitersUnsubscribe(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c := newCluster(t, 3, 300*time.Millisecond, func(int) string { return srv.URL })
	b := c.signIn()
	for i, r := range c.refreshAll(12, c.refreshCookies(b)) {
		if r.status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, r.status, r.body)
		}
	}
	if got := c.grants.Load(); got != 1 {
		t.Errorf("%d grants, want 1", got)
	}
	deadline := time.Now().Add(3 * time.Second)
	for {
		chans, _ := srv.Do("pubsub", "channels", "*").([]any)
		if len(chans) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still subscribed at Redis: %v", chans)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

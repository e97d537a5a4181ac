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

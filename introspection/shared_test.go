package introspection

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// memShared is a test helper standing in for Redis: a SharedCache backed by
// a map whose entries expire after their TTL on the test's clock. fail makes
// every call fail at once, block makes every call wait until its ctx ends
// (a cache that stopped answering). The real Redis adapter is tested in the
// store module.
type memShared struct {
	now        func() time.Time
	ignoreTTL  bool // keep entries past their TTL, as a skewed clock would
	fail       atomic.Bool
	block      atomic.Bool
	gets, sets atomic.Int64

	mu   sync.Mutex
	m    map[string]memItem
	ttls map[string]time.Duration // the TTL of each key's last Set
}

type memItem struct {
	v   []byte
	exp time.Time
}

var errCacheDown = errors.New("connection refused")

func newMemShared(now func() time.Time) *memShared {
	return &memShared{now: now, m: map[string]memItem{}, ttls: map[string]time.Duration{}}
}

func (c *memShared) trouble(ctx context.Context) error {
	if c.fail.Load() {
		return errCacheDown
	}
	if c.block.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (c *memShared) Get(ctx context.Context, key string) ([]byte, bool, error) {
	c.gets.Add(1)
	if err := c.trouble(ctx); err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	it, ok := c.m[key]
	if !ok || (!c.ignoreTTL && !c.now().Before(it.exp)) {
		return nil, false, nil
	}
	return bytes.Clone(it.v), true, nil
}

func (c *memShared) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	c.sets.Add(1)
	if err := c.trouble(ctx); err != nil {
		return err
	}
	if ttl <= 0 {
		return errors.New("invalid expire time") // as Redis answers PX 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = memItem{v: bytes.Clone(value), exp: c.now().Add(ttl)}
	c.ttls[key] = ttl
	return nil
}

// only returns the one key and value held; the test fails if there are
// more or fewer.
func (c *memShared) only(t *testing.T) (string, []byte) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) != 1 {
		t.Fatalf("shared cache holds %d entries, want 1", len(c.m))
	}
	for k, it := range c.m {
		return k, it.v
	}
	panic("unreachable")
}

func (c *memShared) put(key string, v []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[key] = memItem{v: v, exp: c.now().Add(time.Hour)}
}

// testClock is an injectable Now.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

// logBuffer collects log records for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *logBuffer) String() string     { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }
func (l *logBuffer) count(s string) int { return strings.Count(l.String(), s) }

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// fleet makes n Clients for endpoint, as n processes would, sharing sc.
func fleet(t *testing.T, n int, endpoint string, sc SharedCache, edit func(*Client)) []*Client {
	t.Helper()
	cs := make([]*Client, n)
	for i := range cs {
		cs[i] = newTestClient(t, endpoint, func(c *Client) {
			c.SharedCache = sc
			if edit != nil {
				edit(c)
			}
		})
	}
	return cs
}

var testSharedKey = []byte("0123456789abcdef0123456789abcdef")

func TestSharedCacheServesTheFleet(t *testing.T) {
	clk := &testClock{now: time.Now()}
	exp := clk.Now().Add(time.Hour)
	tests := []struct {
		name    string
		answer  http.HandlerFunc
		wantErr error
	}{
		{"active", answerJSON(200, fmt.Sprintf(`{"active":true,"sub":"alice","scope":"todos:read todos:write","exp":%d,"big":12345678901234567890}`, exp.Unix())), nil},
		{"inactive", answerJSON(200, `{"active":false}`), ErrInactive},
		{"not an access token", answerJSON(200, `{"active":true,"sub":"alice","token_type":"refresh_token"}`), ErrNotAccessToken},
	}
	for _, withKey := range []bool{false, true} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/mac=%v", tt.name, withKey), func(t *testing.T) {
				srv := newIntroServer(t, tt.answer)
				sc := newMemShared(clk.Now)
				cs := fleet(t, 2, srv.endpoint(), sc, func(c *Client) {
					c.Now = clk.Now
					if withKey {
						c.SharedCacheKey = testSharedKey
					}
				})
				const token = "good-token-of-alice"
				r1, err1 := cs[0].Introspect(context.Background(), token)
				r2, err2 := cs[1].Introspect(context.Background(), token)
				if n := srv.calls.Load(); n != 1 {
					t.Fatalf("server calls = %d, want 1: the second instance asked again", n)
				}
				if !errors.Is(err1, tt.wantErr) || !errors.Is(err2, tt.wantErr) {
					t.Fatalf("errors = %v, %v; want %v", err1, err2, tt.wantErr)
				}
				if tt.wantErr != nil && err1.Error() != err2.Error() {
					t.Errorf("second instance says %q, first %q", err2, err1)
				}
				if tt.wantErr == nil {
					if r2.Sub != "alice" || r2.Scope != r1.Scope || !r2.Exp.Equal(*r1.Exp) || !r2.Active {
						t.Errorf("second instance's answer %+v differs from the first's %+v", r2, r1)
					}
					if got := string(r2.Raw); !strings.Contains(got, `"big":12345678901234567890`) {
						t.Errorf("Raw lost the exact number: %s", got)
					}
				}
				if st := cs[1].Stats(); st.SharedHits != 1 || st.Calls != 0 {
					t.Errorf("second instance Stats = %+v, want 1 shared hit and no call", st)
				}
				// The second instance keeps it locally too: no second trip.
				if _, _ = cs[1].Introspect(context.Background(), token); sc.gets.Load() != 2 {
					t.Errorf("shared cache gets = %d, want 2 (one per instance)", sc.gets.Load())
				}
				key, v := sc.only(t)
				if strings.Contains(key, token) || bytes.Contains(v, []byte(token)) {
					t.Error("the shared cache holds the token")
				}
				if want := "tollgate:introspection:v1:"; !strings.HasPrefix(key, want) || !strings.HasSuffix(key, ":"+fmt.Sprintf("%x", HashToken(token))) {
					t.Errorf("key %q, want %s<scope>:<sha256 of token>", key, want)
				}
			})
		}
	}
}

func TestSharedCacheTTL(t *testing.T) {
	base := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		answer  http.HandlerFunc
		edit    func(*Client)
		wantTTL time.Duration
	}{
		{"exp before CacheTTL", answerActive(base.Add(30 * time.Second)), nil, 30 * time.Second},
		{"CacheTTL before exp", answerActive(base.Add(time.Hour)), func(c *Client) { c.CacheTTL = 10 * time.Second }, 10 * time.Second},
		{"inactive for InactiveCacheTTL", answerJSON(200, `{"active":false}`), func(c *Client) { c.InactiveCacheTTL = 3 * time.Second }, 3 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newIntroServer(t, tt.answer)
			clk := &testClock{now: base}
			sc := newMemShared(clk.Now)
			writer := fleet(t, 1, srv.endpoint(), sc, func(c *Client) {
				c.Now = clk.Now
				if tt.edit != nil {
					tt.edit(c)
				}
			})[0]
			_, _ = writer.Introspect(context.Background(), "good")
			key, _ := sc.only(t)
			if got := sc.ttls[key]; got != tt.wantTTL {
				t.Fatalf("TTL given to Set = %v, want %v", got, tt.wantTTL)
			}
		})
	}

	t.Run("active answer past its exp is not shared", func(t *testing.T) {
		srv := newIntroServer(t, answerActive(base.Add(-time.Second)))
		clk := &testClock{now: base}
		sc := newMemShared(clk.Now)
		c := fleet(t, 1, srv.endpoint(), sc, func(c *Client) { c.Now = clk.Now })[0]
		if _, err := c.Introspect(context.Background(), "good"); err != nil {
			t.Fatal(err)
		}
		if sc.sets.Load() != 0 {
			t.Errorf("an expired answer was stored in the shared cache")
		}
	})

	// A reader with a longer CacheTTL, or a store whose clock runs late,
	// must not keep a verdict past the instant its writer would have.
	for _, ignoreTTL := range []bool{false, true} {
		t.Run(fmt.Sprintf("reader never stretches the writer's TTL/store keeps it=%v", ignoreTTL), func(t *testing.T) {
			srv := newIntroServer(t, answerActive(base.Add(time.Hour)))
			clk := &testClock{now: base}
			sc := newMemShared(clk.Now)
			sc.ignoreTTL = ignoreTTL
			writer := fleet(t, 1, srv.endpoint(), sc, func(c *Client) { c.Now = clk.Now; c.CacheTTL = 10 * time.Second })[0]
			reader := fleet(t, 1, srv.endpoint(), sc, func(c *Client) { c.Now = clk.Now; c.CacheTTL = time.Hour })[0]
			if _, err := writer.Introspect(context.Background(), "good"); err != nil {
				t.Fatal(err)
			}
			clk.Add(9 * time.Second)
			r, err := reader.Introspect(context.Background(), "good")
			if err != nil || srv.calls.Load() != 1 {
				t.Fatalf("reader at 9s: %v, %d calls; want a shared hit", err, srv.calls.Load())
			}
			if want := base.Add(10 * time.Second); !r.CacheUntil.Equal(want) {
				t.Errorf("reader's CacheUntil = %v, want the writer's %v", r.CacheUntil, want)
			}
			clk.Add(time.Second)
			if _, err := reader.Introspect(context.Background(), "good"); err != nil || srv.calls.Load() != 2 {
				t.Errorf("reader at 10s: %v, %d calls; want a new call", err, srv.calls.Load())
			}
		})
	}

	t.Run("reader's own shorter TTL and exp cap a shared verdict", func(t *testing.T) {
		srv := newIntroServer(t, answerActive(base.Add(time.Hour)))
		clk := &testClock{now: base}
		sc := newMemShared(clk.Now)
		writer := fleet(t, 1, srv.endpoint(), sc, func(c *Client) { c.Now = clk.Now })[0]
		reader := fleet(t, 1, srv.endpoint(), sc, func(c *Client) { c.Now = clk.Now; c.CacheTTL = 5 * time.Second })[0]
		_, _ = writer.Introspect(context.Background(), "good")
		r, err := reader.Introspect(context.Background(), "good")
		if err != nil || !r.CacheUntil.Equal(base.Add(5*time.Second)) {
			t.Errorf("reader: %v, CacheUntil %v; want its own 5s", err, r.CacheUntil)
		}
	})
}

func TestSharedCacheSeparatesEndpointsAndClients(t *testing.T) {
	clk := &testClock{now: time.Now()}
	srv1 := newIntroServer(t, answerActive(clk.Now().Add(time.Hour)))
	srv2 := newIntroServer(t, answerJSON(200, `{"active":false}`))
	sc := newMemShared(clk.Now)
	a := fleet(t, 1, srv1.endpoint(), sc, nil)[0]
	otherEndpoint := fleet(t, 1, srv2.endpoint(), sc, nil)[0]
	otherClient := fleet(t, 1, srv1.endpoint(), sc, func(c *Client) { c.ClientID = "billing-api" })[0]
	if _, err := a.Introspect(context.Background(), "good"); err != nil {
		t.Fatal(err)
	}
	if _, err := otherEndpoint.Introspect(context.Background(), "good"); !errors.Is(err, ErrInactive) || srv2.calls.Load() != 1 {
		t.Errorf("other endpoint: %v after %d calls; want its own server's inactive verdict", err, srv2.calls.Load())
	}
	if _, err := otherClient.Introspect(context.Background(), "good"); err != nil || srv1.calls.Load() != 2 {
		t.Errorf("other client: %v after %d calls; want a call of its own", err, srv1.calls.Load())
	}
	if otherEndpoint.Stats().SharedHits+otherClient.Stats().SharedHits != 0 {
		t.Error("an API read another's verdict")
	}
}

func TestSharedCacheRefusesBadValues(t *testing.T) {
	clk := &testClock{now: time.Now()}
	future := clk.Now().Add(time.Hour).UnixMilli()
	// The server says the token is inactive: any value that makes a reader
	// accept it was trusted wrongly.
	tests := []struct {
		name  string
		key   []byte
		value func(name string, good []byte) []byte
	}{
		{"empty", nil, func(string, []byte) []byte { return nil }},
		{"unknown version", nil, func(_ string, g []byte) []byte { return append([]byte{9}, g[1:]...) }},
		{"not JSON", nil, func(string, []byte) []byte { return []byte("\x01\x00{\"until\":") }},
		{"trailing data", nil, func(_ string, g []byte) []byte { return append(bytes.Clone(g), "{}"...) }},
		{"unknown member", nil, func(string, []byte) []byte {
			return fmt.Appendf(nil, "\x01\x00{\"until\":%d,\"answer\":{\"active\":true,\"sub\":\"x\"},\"evil\":1}", future)
		}},
		{"answer not active", nil, func(string, []byte) []byte {
			return fmt.Appendf(nil, "\x01\x00{\"until\":%d,\"answer\":{\"active\":\"true\",\"sub\":\"x\"}}", future)
		}},
		{"answer not an access token", nil, func(string, []byte) []byte {
			return fmt.Appendf(nil, "\x01\x00{\"until\":%d,\"answer\":{\"active\":true,\"token_type\":\"refresh_token\"}}", future)
		}},
		{"answer malformed", nil, func(string, []byte) []byte {
			return fmt.Appendf(nil, "\x01\x00{\"until\":%d,\"answer\":{\"active\":true,\"exp\":\"soon\"}}", future)
		}},
		{"too long", nil, func(string, []byte) []byte { return append([]byte("\x01\x00"), bytes.Repeat([]byte(" "), 2<<20)...) }},
		{"MACed value, reader has no key", nil, func(name string, _ []byte) []byte {
			sc := &sharedCache{mac: testSharedKey}
			return sc.seal(name, fmt.Appendf(nil, `{"until":%d,"answer":{"active":true,"sub":"x"}}`, future))
		}},
		{"unauthenticated value, reader has a key", testSharedKey, func(string, []byte) []byte {
			return fmt.Appendf(nil, "\x01\x00{\"until\":%d,\"answer\":{\"active\":true,\"sub\":\"x\"}}", future)
		}},
		{"tampered value", testSharedKey, func(_ string, g []byte) []byte {
			// The MAC of this key's inactive verdict over an active body.
			return append(bytes.Clone(g[:2+32]), fmt.Appendf(nil, `{"until":%d,"answer":{"active":true,"sub":"x"}}`, future)...)
		}},
		{"forged with another key", testSharedKey, func(name string, _ []byte) []byte {
			sc := &sharedCache{mac: []byte("another key, another key, anoth!")}
			return sc.seal(name, fmt.Appendf(nil, `{"until":%d,"answer":{"active":true,"sub":"x"}}`, future))
		}},
		{"truncated MAC", testSharedKey, func(string, []byte) []byte { return []byte{1, 1, 2, 3} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A good active value for this key, as a template.
			good := newIntroServer(t, answerActive(clk.Now().Add(time.Hour)))
			goodSC := newMemShared(clk.Now)
			_, _ = fleet(t, 1, good.endpoint(), goodSC, func(c *Client) { c.SharedCacheKey = tt.key })[0].Introspect(context.Background(), "tok")
			_, goodValue := goodSC.only(t)

			srv := newIntroServer(t, answerJSON(200, `{"active":false}`))
			sc := newMemShared(clk.Now)
			var logs logBuffer
			c := fleet(t, 1, srv.endpoint(), sc, func(c *Client) { c.SharedCacheKey = tt.key; c.Logger = logs.logger() })[0]
			name := c.state.shared.key(HashToken("tok"))
			// For "tampered": the inactive verdict of this very key, MACed.
			inactive := c.state.shared.seal(name, fmt.Appendf(nil, `{"until":%d}`, future))
			if tt.name == "tampered value" {
				goodValue = inactive
			}
			sc.put(name, tt.value(name, goodValue))
			for range 3 {
				if _, err := c.Introspect(context.Background(), "tok"); !errors.Is(err, ErrInactive) {
					t.Fatalf("Introspect = %v, want the server's inactive verdict", err)
				}
				c.state.cache.m = map[key]entry{} // forget locally, to read the bad value again
				sc.put(name, tt.value(name, goodValue))
			}
			if n := srv.calls.Load(); n != 3 {
				t.Errorf("server calls = %d, want 3: the bad value was trusted", n)
			}
			if n := logs.count("shared cache value ignored"); n != 1 {
				t.Errorf("logged %d times, want once:\n%s", n, logs.String())
			}
		})
	}

	t.Run("a verdict moved to another token's key is refused", func(t *testing.T) {
		srv := newIntroServer(t, answerByToken(clk.Now().Add(time.Hour)))
		sc := newMemShared(clk.Now)
		cs := fleet(t, 2, srv.endpoint(), sc, func(c *Client) { c.SharedCacheKey = testSharedKey })
		if _, err := cs[0].Introspect(context.Background(), "good"); err != nil {
			t.Fatal(err)
		}
		_, v := sc.only(t)
		sc.put(cs[1].state.shared.key(HashToken("bad")), v)
		if _, err := cs[1].Introspect(context.Background(), "bad"); !errors.Is(err, ErrInactive) {
			t.Errorf("Introspect(bad) = %v, want ErrInactive: a moved verdict was trusted", err)
		}
	})

	t.Run("an answer quoting the token is not shared", func(t *testing.T) {
		const token = "tok/with/slashes"
		srv := newIntroServer(t, answerJSON(200, `{"active":true,"sub":"alice","echo":"tok\/with\/slashes"}`))
		sc := newMemShared(clk.Now)
		c := fleet(t, 1, srv.endpoint(), sc, nil)[0]
		if _, err := c.Introspect(context.Background(), token); err != nil {
			t.Fatal(err)
		}
		if sc.sets.Load() != 0 {
			t.Error("an answer quoting the token was stored in the shared cache")
		}
	})
}

func TestSharedCacheKeyValidation(t *testing.T) {
	c := &Client{Endpoint: "https://as.example/introspect", ClientID: "rs", SharedCacheKey: []byte("short"), SharedCacheTimeout: -1}
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "SharedCacheKey must be at least 32 bytes") || !strings.Contains(err.Error(), "SharedCacheTimeout") {
		t.Errorf("Validate = %v, want the short key and negative timeout refused", err)
	}
}

func TestSharedCacheOutage(t *testing.T) {
	clk := &testClock{now: time.Now()}
	srv := newIntroServer(t, answerByToken(clk.Now().Add(time.Hour)))
	sc := newMemShared(clk.Now)
	var logs logBuffer
	c := fleet(t, 1, srv.endpoint(), sc, func(c *Client) { c.Now = clk.Now; c.Logger = logs.logger() })[0]

	sc.fail.Store(true)
	for i := range 5 {
		if _, err := c.Introspect(context.Background(), fmt.Sprint("good-", i)); err != nil {
			t.Fatalf("lookup %d during the outage: %v", i, err)
		}
		clk.Add(300 * time.Millisecond) // past the retry second after a few
	}
	if n := srv.calls.Load(); n != 5 {
		t.Errorf("server calls = %d, want 5", n)
	}
	if n := logs.count("shared cache unavailable"); n != 1 {
		t.Errorf("outage logged %d times, want once:\n%s", n, logs.String())
	}
	// Lookups 0 (get) and 4 (get, a second later) tried; the others left
	// the cache alone.
	if st := c.Stats(); st.SharedErrors != 2 || sc.gets.Load() != 2 || sc.sets.Load() != 0 {
		t.Errorf("SharedErrors = %d, gets %d, sets %d; want 2, 2, 0", st.SharedErrors, sc.gets.Load(), sc.sets.Load())
	}
	if strings.Contains(logs.String(), "good-") {
		t.Error("a token was logged")
	}

	sc.fail.Store(false)
	clk.Add(2 * time.Second)
	if _, err := c.Introspect(context.Background(), "good-after"); err != nil {
		t.Fatal(err)
	}
	if n := logs.count("shared cache recovered"); n != 1 {
		t.Errorf("recovery logged %d times, want once:\n%s", n, logs.String())
	}
	if sc.sets.Load() != 1 {
		t.Errorf("sets after recovery = %d, want 1", sc.sets.Load())
	}
	if n := logs.count("shared cache unavailable"); n != 1 {
		t.Errorf("outage logged %d times in all, want once", n)
	}
}

func TestSharedCacheTimeoutBoundsEachCall(t *testing.T) {
	srv := newIntroServer(t, answerActive(time.Now().Add(time.Hour)))
	sc := newMemShared(time.Now)
	sc.block.Store(true)
	c := fleet(t, 1, srv.endpoint(), sc, func(c *Client) { c.SharedCacheTimeout = 50 * time.Millisecond })[0]
	start := time.Now()
	if _, err := c.Introspect(context.Background(), "good"); err != nil {
		t.Fatalf("Introspect = %v, want the server's answer despite the hung cache", err)
	}
	// One get of 50ms; the set is skipped while the cache is down.
	if took := time.Since(start); took > time.Second {
		t.Errorf("lookup took %v with a hung shared cache", took)
	}
	if st := c.Stats(); st.SharedErrors != 1 || st.Calls != 1 {
		t.Errorf("Stats = %+v, want 1 shared error and 1 call", st)
	}
}

func TestSharedHitsDoNotCountAgainstRateLimit(t *testing.T) {
	srv := newIntroServer(t, answerByToken(time.Now().Add(time.Hour)))
	sc := newMemShared(time.Now)
	writer := fleet(t, 1, srv.endpoint(), sc, nil)[0]
	for _, tok := range []string{"good-1", "good-2", "good-3"} {
		if _, err := writer.Introspect(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	}
	reader := fleet(t, 1, srv.endpoint(), sc, func(c *Client) { c.RateLimit = 0.001; c.RateBurst = 1 })[0]
	for _, tok := range []string{"good-1", "good-2", "good-3", "good-4"} {
		if _, err := reader.Introspect(context.Background(), tok); err != nil {
			t.Fatalf("%s: %v; want shared hits free and one request allowed", tok, err)
		}
	}
	if _, err := reader.Introspect(context.Background(), "good-5"); !errors.Is(err, ErrOverloaded) {
		t.Errorf("second request to the server: %v, want ErrOverloaded", err)
	}
	if st := reader.Stats(); st.SharedHits != 3 || st.Calls != 1 || st.Refused != 1 {
		t.Errorf("Stats = %+v, want 3 shared hits, 1 call, 1 refused", st)
	}
}

package middleware_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// memStore is a test helper standing in for Redis: a ReplayStore and an
// introspection.SharedCache backed by a map whose entries expire after
// their TTL. fail makes every call fail at once, block makes every call
// wait until its ctx ends (a store that stopped answering). The real Redis
// adapter is tested in the store module.
type memStore struct {
	fail, block atomic.Bool
	calls       atomic.Int64

	mu   sync.Mutex
	m    map[string]memEntry
	ttls []time.Duration
}

type memEntry struct {
	v   []byte
	exp time.Time
}

func newMemStore() *memStore { return &memStore{m: map[string]memEntry{}} }

func (s *memStore) trouble(ctx context.Context) error {
	s.calls.Add(1)
	if s.fail.Load() {
		return errors.New("dial tcp 127.0.0.1:6379: connection refused")
	}
	if s.block.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (s *memStore) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := s.trouble(ctx); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && time.Now().Before(e.exp) {
		return false, nil
	}
	s.m[key] = memEntry{v: bytes.Clone(value), exp: time.Now().Add(ttl)}
	s.ttls = append(s.ttls, ttl)
	return true, nil
}

func (s *memStore) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := s.trouble(ctx); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[key]
	if !ok || !time.Now().Before(e.exp) {
		return nil, false, nil
	}
	return bytes.Clone(e.v), true, nil
}

func (s *memStore) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := s.trouble(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = memEntry{v: bytes.Clone(value), exp: time.Now().Add(ttl)}
	s.ttls = append(s.ttls, ttl)
	return nil
}

// dump is every key and value held, for checks that no secret is stored.
func (s *memStore) dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for k, e := range s.m {
		b.WriteString(k + "=" + string(e.v) + "\n")
	}
	return b.String()
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *syncBuffer) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestDPoPReplayStoreSharedByTheFleet: a proof used at one instance is
// refused at another sharing the ReplayStore; when the store is down each
// instance falls back to its own replay cache (documented), logs once, and
// recovers by itself.
func TestDPoPReplayStoreSharedByTheFleet(t *testing.T) {
	is := authtest.NewIssuer(t)
	store := newMemStore()
	var logs syncBuffer
	var offset atomic.Int64 // the instances' clock runs ahead by this much
	instance := func() *middleware.Authenticator {
		return dpopAuthenticator(t, is, middleware.DPoPRequired, func(c *middleware.Config) {
			c.DPoPReplayStore = store
			c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			c.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
		})
	}
	a, b := instance(), instance()
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	send := func(at *middleware.Authenticator, proof string) *httptest.ResponseRecorder {
		return do(at, dpopRequest("GET", "/todos", "DPoP", tok, proof))
	}

	p := k.Proof(t, "GET", dpopURL, tok)
	if w := send(a, p); w.Code != 200 {
		t.Fatalf("first use at A: %d %s", w.Code, w.Body)
	}
	w := send(b, p)
	if w.Code != 401 || problem(t, w)["reason"] != middleware.ReasonDPoPReplay {
		t.Fatalf("replay at B: %d %s, want 401 %s", w.Code, w.Body, middleware.ReasonDPoPReplay)
	}
	// Local first: a replay at A is refused without asking the store.
	calls := store.calls.Load()
	if w := send(a, p); w.Code != 401 || store.calls.Load() != calls {
		t.Errorf("replay at A: %d, %d store calls; want 401 and none", w.Code, store.calls.Load()-calls)
	}
	if w := send(b, k.Proof(t, "GET", dpopURL, tok)); w.Code != 200 {
		t.Errorf("fresh proof at B: %d %s", w.Code, w.Body)
	}
	dump := store.dump()
	if strings.Contains(dump, k.Thumbprint()) || strings.Contains(dump, tok) {
		t.Errorf("the store holds the thumbprint or the token:\n%s", dump)
	}
	for _, line := range strings.Split(strings.TrimSpace(dump), "\n") {
		if !strings.HasPrefix(line, "tollgate:dpop-jti:v1:") || len(line) != len("tollgate:dpop-jti:v1:")+64+2 {
			t.Errorf("store key %q, want tollgate:dpop-jti:v1:<sha256 hex>", line)
		}
	}
	store.mu.Lock()
	for _, ttl := range store.ttls {
		// The proof window (60s) plus a second, less the time the test took.
		if ttl < 55*time.Second || ttl > 61*time.Second {
			t.Errorf("TTL %v, want about the proof window plus a second", ttl)
		}
	}
	store.mu.Unlock()

	// Outage: each instance checks its own cache only.
	store.fail.Store(true)
	p2 := k.Proof(t, "GET", dpopURL, tok)
	if w := send(a, p2); w.Code != 200 {
		t.Fatalf("store down, first use at A: %d %s", w.Code, w.Body)
	}
	if w := send(b, p2); w.Code != 200 {
		t.Errorf("store down, use at B: %d %s; want 200, the documented fallback", w.Code, w.Body)
	}
	if w := send(a, p2); w.Code != 401 {
		t.Errorf("store down, replay at A: %d; the local cache must still refuse it", w.Code)
	}
	for range 3 {
		_ = send(a, k.Proof(t, "GET", dpopURL, tok))
	}
	if n := strings.Count(logs.String(), "DPoP replay store unavailable"); n != 2 {
		t.Errorf("outage logged %d times, want once per instance:\n%s", n, logs.String())
	}

	// Back: the first call after the retry interval recovers.
	store.fail.Store(false)
	offset.Store(int64(2 * time.Second))
	p3 := k.Proof(t, "GET", dpopURL, tok)
	if w := send(a, p3); w.Code != 200 {
		t.Fatalf("store back, first use at A: %d %s", w.Code, w.Body)
	}
	if w := send(b, p3); w.Code != 401 {
		t.Errorf("store back, replay at B: %d; want 401", w.Code)
	}
	if n := strings.Count(logs.String(), "DPoP replay store recovered"); n != 2 {
		t.Errorf("recovery logged %d times, want once per instance:\n%s", n, logs.String())
	}
	if strings.Contains(logs.String(), tok) {
		t.Error("the token was logged")
	}
}

// TestDPoPReplayStoreTimeout: a store that stops answering costs a request
// one DPoPReplayStoreTimeout, then nothing until it is tried again.
func TestDPoPReplayStoreTimeout(t *testing.T) {
	is := authtest.NewIssuer(t)
	store := newMemStore()
	store.block.Store(true)
	a := dpopAuthenticator(t, is, middleware.DPoPRequired, func(c *middleware.Config) {
		c.DPoPReplayStore = store
		c.DPoPReplayStoreTimeout = 50 * time.Millisecond
	})
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	start := time.Now()
	for i := range 3 {
		if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", dpopURL, tok))); w.Code != 200 {
			t.Fatalf("request %d with a hung store: %d %s", i, w.Code, w.Body)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("three requests took %v with a hung store", took)
	}
	if n := store.calls.Load(); n != 1 {
		t.Errorf("store calls = %d, want 1: it is left alone after a failure", n)
	}
}

func TestDPoPReplayStoreConfig(t *testing.T) {
	is := authtest.NewIssuer(t)
	_, err := middleware.New(context.Background(), middleware.Config{
		Issuer: is.URL, Audiences: []string{authtest.Audience}, DPoP: middleware.DPoPAllowed,
		DPoPReplayStore: newMemStore(), DPoPReplayStoreTimeout: -1,
	})
	if err == nil || !strings.Contains(err.Error(), "DPoPReplayStoreTimeout") {
		t.Errorf("New = %v, want the negative timeout refused", err)
	}
}

// TestIntrospectionSharedByTheFleet: two API instances, each with its own
// introspection client, sharing one cache: the second takes the first's
// verdict without asking the authorization server, for an active token
// and for a revoked one.
func TestIntrospectionSharedByTheFleet(t *testing.T) {
	is := authtest.NewIssuer(t)
	is.EnableIntrospection()
	md, endpoint := discoverIntrospection(t, is)
	shared := newMemStore()
	key := []byte(strings.Repeat("k", 32))
	instance := func() *middleware.Authenticator {
		return mustAuthenticator(t, is, func(c *middleware.Config) {
			c.Mode = middleware.ModeIntrospection
			c.Introspector = &introspection.Client{Endpoint: endpoint, ClientID: authtest.IntrospectionClientID,
				ClientSecret: authtest.IntrospectionClientSecret, Timeout: time.Second, Logger: quiet(),
				SharedCache: shared, SharedCacheKey: key}
			c.Metadata = md
		})
	}
	a, b := instance(), instance()
	tok := is.OpaqueToken("alice", func(jwt.MapClaims) {})
	if w := do(a, bearerRequest(tok)); w.Code != 200 || w.Body.String() != "alice" {
		t.Fatalf("A: %d %s", w.Code, w.Body)
	}
	if w := do(b, bearerRequest(tok)); w.Code != 200 || w.Body.String() != "alice" {
		t.Fatalf("B: %d %s", w.Code, w.Body)
	}
	revoked := is.OpaqueToken("bob", func(jwt.MapClaims) {})
	is.Revoke(revoked)
	for _, at := range []*middleware.Authenticator{a, b} {
		if w := do(at, bearerRequest(revoked)); w.Code != 401 || problem(t, w)["reason"] != middleware.ReasonInactive {
			t.Fatalf("revoked token: %d %s", w.Code, w.Body)
		}
	}
	if n := is.IntrospectionCalls(); n != 2 {
		t.Errorf("introspection calls = %d, want 2 (one per token, whichever instance)", n)
	}
	if d := shared.dump(); strings.Contains(d, tok) || strings.Contains(d, revoked) {
		t.Error("the shared cache holds a token")
	}
}

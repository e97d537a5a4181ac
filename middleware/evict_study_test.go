package middleware

import (
	"container/list"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// The eviction study: which entries should a full verified-token cache
// drop? BenchmarkEviction drives the real verifiedCache and the candidates
// it was chosen from (below), each with the default size and maximum age,
// with simulated traffic, and reports the hit rate of the callers' requests
// (hit%). It is a measurement, not a test, and its full matrix takes a few
// minutes, so it runs only when asked:
//
//	go test -run '^$' -bench BenchmarkEviction -benchtime 2000000x -count 3 ./middleware -args -eviction-study
//
// -eviction-dists and -eviction-clients narrow or widen the matrix. Use
// -benchtime Nx: every run then serves the same requests, drawn from a
// fixed seed. The hit rates still move a little between runs (well under a
// point), because the evictions that pick at random (map order, the
// runtime's generator) are not seeded. ns/op is the cache's own cost per
// request, misses included but not their signature checks; it is noisy,
// and not what decides.
var (
	evictionStudy = flag.Bool("eviction-study", false, "run BenchmarkEviction's full matrix")
	evictionDists = flag.String("eviction-dists", "uniform,zipf,loop,zipf+flood", "BenchmarkEviction's traffic distributions")
	evictionSizes = flag.String("eviction-clients", "1000,10000,100000", "BenchmarkEviction's numbers of distinct clients")
)

// studyRate is the simulated request rate. With it, the default maximum age
// (5 minutes) spans 1.5 million requests, and token rotation (below) happens
// during the run, so expiry plays its part.
const studyRate = 5000

// studyTokenLifetime is the access-token lifetime in the simulation: each
// client rotates its token this often, at its own phase.
const studyTokenLifetime = 15 * time.Minute

// studyWarmup requests run before the measured ones, so that the cache is
// full and in its steady state.
const studyWarmup = 1_000_000

// cachePolicy is what the study needs of a candidate cache: the signatures
// of verifiedCache (lookup, by value, for get).
type cachePolicy interface {
	lookup(token string, now time.Time) (principal.Principal, bool)
	put(token string, p principal.Principal, now time.Time)
	len() int
}

// keyedPolicy is a candidate keyed by the token's SHA-256, as the real
// cache was when the study was made.
type keyedPolicy interface {
	get(k tokenKey, now time.Time) (principal.Principal, bool)
	put(k tokenKey, p principal.Principal, now time.Time)
	len() int
}

// byKey makes a keyedPolicy a cachePolicy. The study's tokens are the
// 32 bytes of a tokenKey, so the key is the token itself.
type byKey struct{ keyedPolicy }

func (b byKey) lookup(token string, now time.Time) (principal.Principal, bool) {
	return b.keyedPolicy.get(tokenKey([]byte(token)), now)
}

func (b byKey) put(token string, p principal.Principal, now time.Time) {
	b.keyedPolicy.put(tokenKey([]byte(token)), p, now)
}

// studyPolicies are the candidates.
var studyPolicies = []struct {
	name string
	make func(max int, maxAge time.Duration) cachePolicy
}{
	// The real cache: CLOCK, the hand starting at a random slot.
	{"verifiedCache", func(max int, maxAge time.Duration) cachePolicy { return newVerifiedCache(max, maxAge) }},
	{"batch10", func(max int, maxAge time.Duration) cachePolicy { return byKey{newBatchCache(max, maxAge)} }},
	{"random1", func(max int, maxAge time.Duration) cachePolicy { return byKey{newRandomCache(max, maxAge)} }},
	{"leastlife", func(max int, maxAge time.Duration) cachePolicy { return byKey{newLeastLifeCache(max, maxAge)} }},
	{"clock", func(max int, maxAge time.Duration) cachePolicy { return byKey{newClockCache(max, maxAge)} }},
	{"lru", func(max int, maxAge time.Duration) cachePolicy { return byKey{newLRUCache(max, maxAge)} }},
}

// request is one simulated request: a client's current token, or a
// one-time token from the flood.
type request struct {
	client uint64
	flood  bool
}

// studyStream makes the traffic of one distribution over n clients; nil
// for an unknown distribution.
func studyStream(dist string, n int, r *rand.Rand) func() request {
	switch dist {
	case "uniform":
		return func() request { return request{client: r.Uint64N(uint64(n))} }
	case "zipf":
		// s = 1.1: a few heavy clients and a long tail, like real traffic.
		z := rand.NewZipf(r, 1.1, 1, uint64(n-1))
		return func() request { return request{client: z.Uint64()} }
	case "loop":
		// Every client in turn: n clients polling at one interval, the
		// pattern that defeats recency (LRU, CLOCK) once n > the cache.
		i := uint64(0)
		return func() request { i = (i + 1) % uint64(n); return request{client: i} }
	case "zipf+flood":
		// Half the requests carry a valid token never seen before and
		// never sent again: a caller minting tokens to flush the cache.
		z := rand.NewZipf(r, 1.1, 1, uint64(n-1))
		return func() request {
			if r.IntN(2) == 0 {
				return request{flood: true}
			}
			return request{client: z.Uint64()}
		}
	}
	return nil
}

// studyClock turns request numbers into times and clients into their
// current tokens.
type studyClock struct {
	start time.Time
	flood uint64
}

func (s *studyClock) at(i int) time.Time {
	return s.start.Add(time.Duration(i) * time.Second / studyRate)
}

// token returns the key and expiry of the token rq carries at now. A client
// rotates its token every studyTokenLifetime at a phase of its own, so its
// key changes and the old entry lingers, dead, until evicted.
func (s *studyClock) token(rq request, now time.Time) (tokenKey, time.Time) {
	var k tokenKey
	if rq.flood {
		s.flood++
		k[0] = 1
		binary.LittleEndian.PutUint64(k[1:], s.flood)
		return k, now.Add(studyTokenLifetime)
	}
	life := int64(studyTokenLifetime)
	phase := int64(rq.client*0x9E3779B97F4A7C15>>1) % life
	t := now.Sub(s.start).Nanoseconds() + phase
	gen := t / life
	binary.LittleEndian.PutUint64(k[1:], rq.client)
	binary.LittleEndian.PutUint64(k[9:], uint64(gen))
	return k, s.start.Add(time.Duration((gen+1)*life - phase))
}

func BenchmarkEviction(b *testing.B) {
	if !*evictionStudy {
		b.Skip("the eviction study runs with -args -eviction-study")
	}
	for _, dist := range strings.Split(*evictionDists, ",") {
		for _, f := range strings.Split(*evictionSizes, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 2 {
				b.Fatalf("-eviction-clients: %q is not a number of clients above 1", f)
			}
			for _, pol := range studyPolicies {
				b.Run(fmt.Sprintf("%s/n=%d/%s", dist, n, pol.name), func(b *testing.B) {
					c := pol.make(DefaultCacheSize, DefaultCacheMaxAge)
					r := rand.New(rand.NewPCG(1, uint64(n)))
					next := studyStream(dist, n, r)
					if next == nil {
						b.Fatalf("-eviction-dists: unknown distribution %q", dist)
					}
					clk := &studyClock{start: time.Unix(1_700_000_000, 0)}
					serve := func(i int) (hit, counted bool) {
						rq := next()
						now := clk.at(i)
						k, exp := clk.token(rq, now)
						tok := string(k[:])
						if _, ok := c.lookup(tok, now); ok {
							return true, !rq.flood
						}
						c.put(tok, principal.Principal{Subject: "s", ExpiresAt: exp}, now)
						return false, !rq.flood
					}
					for i := range studyWarmup {
						serve(i)
					}
					var hits, counted int
					b.ResetTimer()
					for i := range b.N {
						h, ok := serve(studyWarmup + i)
						if ok {
							counted++
							if h {
								hits++
							}
						}
					}
					b.StopTimer()
					if c.len() > DefaultCacheSize {
						b.Fatalf("cache grew to %d entries", c.len())
					}
					b.ReportMetric(100*float64(hits)/float64(max(counted, 1)), "hit%")
				})
			}
		}
	}
}

// batchCache is the eviction Tollgate shipped first: when full, drop the
// expired entries, then arbitrary ones until 90% full.
type batchCache struct {
	mu      sync.RWMutex
	entries map[tokenKey]studyEntry
	max     int
	maxAge  time.Duration
}

type studyEntry struct {
	p       principal.Principal
	expires time.Time
}

func newBatchCache(max int, maxAge time.Duration) *batchCache {
	return &batchCache{entries: make(map[tokenKey]studyEntry, min(max, 1024)), max: max, maxAge: maxAge}
}

func (c *batchCache) get(k tokenKey, now time.Time) (principal.Principal, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return principal.Principal{}, false
	}
	return e.p, true
}

func studyExpiry(p principal.Principal, now time.Time, maxAge time.Duration) time.Time {
	expires := now.Add(maxAge)
	if !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(expires) {
		expires = p.ExpiresAt
	}
	return expires
}

func (c *batchCache) put(k tokenKey, p principal.Principal, now time.Time) {
	expires := studyExpiry(p, now, c.maxAge)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		target := c.max - c.max/10 - 1
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) <= target {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[k] = studyEntry{p: p, expires: expires}
}

func (c *batchCache) len() int { c.mu.RLock(); defer c.mu.RUnlock(); return len(c.entries) }

// randomCache evicts one entry per insert into a full cache: among the
// first studySample entries of a map iteration (a random start), the
// expired ones if any, else the first.
type randomCache struct{ batchCache }

const studySample = 8

func newRandomCache(max int, maxAge time.Duration) *randomCache {
	return &randomCache{*newBatchCache(max, maxAge)}
}

func (c *randomCache) put(k tokenKey, p principal.Principal, now time.Time) {
	expires := studyExpiry(p, now, c.maxAge)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		var first tokenKey
		freed, seen := false, 0
		for k, e := range c.entries {
			if seen == 0 {
				first = k
			}
			if !now.Before(e.expires) {
				delete(c.entries, k)
				freed = true
			}
			if seen++; seen >= studySample {
				break
			}
		}
		if !freed {
			delete(c.entries, first)
		}
	}
	c.entries[k] = studyEntry{p: p, expires: expires}
}

// leastLifeCache is the introspection client's eviction: among
// studySample entries, the expired ones if any, else the one expiring
// soonest.
type leastLifeCache struct{ batchCache }

func newLeastLifeCache(max int, maxAge time.Duration) *leastLifeCache {
	return &leastLifeCache{*newBatchCache(max, maxAge)}
}

func (c *leastLifeCache) put(k tokenKey, p principal.Principal, now time.Time) {
	expires := studyExpiry(p, now, c.maxAge)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; !ok && len(c.entries) >= c.max {
		var victim tokenKey
		var soonest time.Time
		freed, seen := false, 0
		for k, e := range c.entries {
			switch {
			case !now.Before(e.expires):
				delete(c.entries, k)
				freed = true
			case seen == 0 || e.expires.Before(soonest):
				victim, soonest = k, e.expires
			}
			if seen++; seen >= studySample {
				break
			}
		}
		if !freed {
			delete(c.entries, victim)
		}
	}
	c.entries[k] = studyEntry{p: p, expires: expires}
}

// clockCache is plain CLOCK (second chance): verifiedCache's ring and used
// bits, but its hand goes round in order, from where it stopped last time.
type clockCache struct {
	mu      sync.RWMutex
	entries map[tokenKey]*clockEntry
	ring    []*clockEntry
	hand    int
	max     int
	maxAge  time.Duration
}

type clockEntry struct {
	p       principal.Principal
	expires time.Time
	key     tokenKey
	slot    int
	used    atomic.Bool
}

func newClockCache(max int, maxAge time.Duration) *clockCache {
	return &clockCache{entries: make(map[tokenKey]*clockEntry, min(max, 1024)), max: max, maxAge: maxAge}
}

func (c *clockCache) get(k tokenKey, now time.Time) (principal.Principal, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return principal.Principal{}, false
	}
	if !e.used.Load() {
		e.used.Store(true)
	}
	return e.p, true
}

func (c *clockCache) put(k tokenKey, p principal.Principal, now time.Time) {
	e := &clockEntry{p: p, expires: studyExpiry(p, now, c.maxAge), key: k}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[k]; ok {
		e.slot = old.slot
	} else if len(c.ring) < c.max {
		e.slot = len(c.ring)
		c.ring = append(c.ring, nil)
	} else {
		for {
			v := c.ring[c.hand]
			if !now.Before(v.expires) || !v.used.Load() {
				delete(c.entries, v.key)
				e.slot = c.hand
				c.hand = (c.hand + 1) % len(c.ring)
				break
			}
			v.used.Store(false)
			c.hand = (c.hand + 1) % len(c.ring)
		}
	}
	c.ring[e.slot] = e
	c.entries[k] = e
}

func (c *clockCache) len() int { c.mu.RLock(); defer c.mu.RUnlock(); return len(c.entries) }

// lruCache is a true LRU, for reference only: every hit moves its entry to
// the front of a list, so every hit takes the write lock.
type lruCache struct {
	mu      sync.Mutex
	entries map[tokenKey]*list.Element
	order   *list.List
	max     int
	maxAge  time.Duration
}

type lruEntry struct {
	studyEntry
	key tokenKey
}

func newLRUCache(max int, maxAge time.Duration) *lruCache {
	return &lruCache{entries: make(map[tokenKey]*list.Element), order: list.New(), max: max, maxAge: maxAge}
}

func (c *lruCache) get(k tokenKey, now time.Time) (principal.Principal, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[k]
	if !ok {
		return principal.Principal{}, false
	}
	e := el.Value.(*lruEntry)
	if !now.Before(e.expires) {
		return principal.Principal{}, false
	}
	c.order.MoveToFront(el)
	return e.p, true
}

func (c *lruCache) put(k tokenKey, p principal.Principal, now time.Time) {
	e := &lruEntry{studyEntry{p: p, expires: studyExpiry(p, now, c.maxAge)}, k}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[k]; ok {
		el.Value = e
		c.order.MoveToFront(el)
		return
	}
	if len(c.entries) >= c.max {
		back := c.order.Back()
		delete(c.entries, back.Value.(*lruEntry).key)
		c.order.Remove(back)
	}
	c.entries[k] = c.order.PushFront(e)
}

func (c *lruCache) len() int { c.mu.Lock(); defer c.mu.Unlock(); return len(c.entries) }

package middleware

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

func TestVerifiedCacheBounded(t *testing.T) {
	now := time.Now()
	c := newVerifiedCache(100, time.Minute)
	for i := range 1000 {
		c.put(fmt.Sprint(i), principal.Principal{Subject: "s", ExpiresAt: now.Add(time.Hour)}, now)
		if c.len() > 100 {
			t.Fatalf("cache grew to %d entries", c.len())
		}
	}
	// The newest entry survives the eviction that made room for it.
	if _, ok := c.lookup("999", now); !ok {
		t.Fatal("newest entry evicted")
	}
	// Entries end at the earlier of exp and the maximum age.
	c.put("short", principal.Principal{Subject: "s", ExpiresAt: now.Add(time.Second)}, now)
	if _, ok := c.lookup("short", now.Add(2*time.Second)); ok {
		t.Fatal("entry outlived its exp")
	}
	c.put("long", principal.Principal{Subject: "s", ExpiresAt: now.Add(time.Hour)}, now)
	if _, ok := c.lookup("long", now.Add(2*time.Minute)); ok {
		t.Fatal("entry outlived the maximum age")
	}
	// An already expired token is not stored.
	n := c.len()
	c.put("dead", principal.Principal{Subject: "s", ExpiresAt: now.Add(-time.Second)}, now)
	if c.len() > n {
		t.Fatal("stored an expired token")
	}
	var disabled *verifiedCache = newVerifiedCache(-1, time.Minute)
	disabled.put("x", principal.Principal{Subject: "s"}, now)
	if _, ok := disabled.lookup("x", now); ok || disabled.len() != 0 {
		t.Fatal("disabled cache answered")
	}
}

// TestVerifiedCacheEviction: which entries a full cache gives up. The
// eviction starts at a random slot, so each case holds whatever slot it
// starts at, and the cases that depend on it run many times.
func TestVerifiedCacheEviction(t *testing.T) {
	const size = 100
	now := time.Now()
	valid := func(name string) principal.Principal {
		return principal.Principal{Subject: name, ExpiresAt: now.Add(time.Hour)}
	}
	// fill makes a full cache of entries "0" to "99", each verified once.
	fill := func() *verifiedCache {
		c := newVerifiedCache(size, time.Hour)
		for i := range size {
			c.put(fmt.Sprint(i), valid(fmt.Sprint(i)), now)
		}
		return c
	}
	has := func(c *verifiedCache, name string, at time.Time) bool {
		p, ok := c.lookup(name, at)
		if ok && p.Subject != name {
			t.Fatalf("entry %q answered with subject %q", name, p.Subject)
		}
		return ok
	}
	tests := []struct {
		name string
		runs int
		run  func(t *testing.T)
	}{
		{name: "a hot entry outlives a flood of fresh tokens", runs: 5, run: func(t *testing.T) {
			// A caller minting valid tokens, each sent once, cannot push
			// out a client that keeps using its token: fresh entries start
			// unused, so every sweep stops at one before it could take the
			// hot entry's second chance from it twice.
			c := fill()
			for i := range 20 * size {
				if !has(c, "7", now) {
					t.Fatalf("hot entry evicted after %d fresh tokens", i)
				}
				c.put(fmt.Sprint("flood-", i), valid("flood"), now)
				if c.len() > size {
					t.Fatalf("cache grew to %d entries", c.len())
				}
			}
		}},
		{name: "an expired entry goes before any entry in use", runs: 200, run: func(t *testing.T) {
			c := newVerifiedCache(size, time.Hour)
			for i := range size - 1 {
				c.put(fmt.Sprint(i), valid(fmt.Sprint(i)), now)
			}
			short := principal.Principal{Subject: "short", ExpiresAt: now.Add(time.Second)}
			c.put("short", short, now)
			has(c, "short", now) // in use too, until it expired
			later := now.Add(time.Minute)
			for i := range size - 1 {
				has(c, fmt.Sprint(i), later) // all in use
			}
			if has(c, "short", later) {
				t.Fatal("expired entry answered")
			}
			c.put("new", valid("new"), later)
			for i := range size - 1 {
				if !has(c, fmt.Sprint(i), later) {
					t.Fatalf("entry %d in use evicted while an expired one stayed", i)
				}
			}
			if !has(c, "new", later) || c.len() != size {
				t.Fatalf("new entry missing or size %d", c.len())
			}
		}},
		{name: "every entry in use: one goes, the cache stays bounded", runs: 50, run: func(t *testing.T) {
			c := fill()
			for i := range size {
				has(c, fmt.Sprint(i), now)
			}
			c.put("new", valid("new"), now)
			if !has(c, "new", now) || c.len() != size {
				t.Fatalf("new entry missing or size %d", c.len())
			}
			gone := 0
			for i := range size {
				if !has(c, fmt.Sprint(i), now) {
					gone++
				}
			}
			if gone != 1 {
				t.Fatalf("%d entries evicted to make room for one", gone)
			}
		}},
		{name: "a token verified again replaces its entry, evicting nothing", runs: 1, run: func(t *testing.T) {
			c := fill()
			c.put("42", principal.Principal{Subject: "42", Scopes: []string{"new"}, ExpiresAt: now.Add(time.Hour)}, now)
			if p, ok := c.lookup("42", now); !ok || len(p.Scopes) != 1 {
				t.Fatalf("entry not replaced: %+v, %v", p, ok)
			}
			for i := range size {
				if !has(c, fmt.Sprint(i), now) {
					t.Fatalf("entry %d evicted", i)
				}
			}
		}},
		{name: "clients polling in turn, a few more than fit, keep most hits", runs: 1, run: func(t *testing.T) {
			// 110 clients, one request each in a fixed order, over and
			// over: with LRU or a CLOCK hand going round in order, every
			// insert evicts the client due next and nothing ever hits.
			// Random starts keep about what random eviction keeps.
			c := newVerifiedCache(size, time.Hour)
			hits, requests := 0, 0
			for round := range 100 {
				for i := range size + size/10 {
					name := fmt.Sprint(i)
					if has(c, name, now) {
						if round > 0 {
							hits++
						}
					} else {
						c.put(name, valid(name), now)
					}
					if round > 0 {
						requests++
					}
				}
			}
			if rate := float64(hits) / float64(requests); rate < 0.5 {
				t.Fatalf("hit rate %.2f, want above 0.5 (random eviction gives ~0.75)", rate)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range tc.runs {
				tc.run(t)
			}
		})
	}
}

// TestVerifiedCacheConcurrent: hits (which set used bits without the write
// lock) racing inserts and sweeps; run with -race. Every answer is the
// entry of the token asked for, and the cache stays bounded.
func TestVerifiedCacheConcurrent(t *testing.T) {
	const size = 64
	now := time.Now()
	c := newVerifiedCache(size, time.Hour)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				name := fmt.Sprint((i*7 + g*13) % (3 * size))
				if p, ok := c.lookup(name, now); ok {
					if p.Subject != name {
						t.Errorf("asked for %q, got %q", name, p.Subject)
						return
					}
					continue
				}
				c.put(name, principal.Principal{Subject: name, ExpiresAt: now.Add(time.Hour)}, now)
				if n := c.len(); n > size {
					t.Errorf("cache grew to %d entries", n)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkVerifiedCacheGet is the hit path alone, from every P at once,
// over a working set that fits: what an eviction policy must not slow down
// (its bookkeeping on a hit, if any, runs here).
func BenchmarkVerifiedCacheGet(b *testing.B) {
	now := time.Now()
	c := newVerifiedCache(DefaultCacheSize, time.Hour)
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprint(i)
		c.put(keys[i], principal.Principal{Subject: "s", ExpiresAt: now.Add(time.Hour)}, now)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, ok := c.lookup(keys[i%len(keys)], now); !ok {
				b.Error("miss")
				return
			}
			i++
		}
	})
}

// TestVerifiedCacheTellsCollidingTokensApart: entries are found by a 64-bit
// hash, then compared with the token. A token whose hash lands on another
// token's entry (a collision, made here by hand) misses, and caching it
// replaces that entry.
func TestVerifiedCacheTellsCollidingTokensApart(t *testing.T) {
	now := time.Now()
	c := newVerifiedCache(10, time.Hour)
	c.put("token-a", principal.Principal{Subject: "a", ExpiresAt: now.Add(time.Hour)}, now)

	c.mu.Lock()
	e := c.entries[c.hash("token-a")]
	delete(c.entries, e.hash)
	e.hash = c.hash("token-b")
	c.entries[e.hash] = e
	c.mu.Unlock()

	if p, ok := c.lookup("token-b", now); ok {
		t.Fatalf("token-b was answered with token-a's entry (subject %q)", p.Subject)
	}
	c.put("token-b", principal.Principal{Subject: "b", ExpiresAt: now.Add(time.Hour)}, now)
	if p, ok := c.lookup("token-b", now); !ok || p.Subject != "b" {
		t.Fatalf("token-b after put: %q, %v", p.Subject, ok)
	}
	if n := c.len(); n != 1 {
		t.Fatalf("%d entries, want 1: the colliding entry is replaced", n)
	}
}

// TestVerifiedCacheTokensSharingTheirTail: the key is a hash of a token's
// last hashTail bytes only, so tokens that end alike share it (the test
// checks they do); the comparison with the whole token keeps them apart,
// whatever the order of puts and gets.
func TestVerifiedCacheTokensSharingTheirTail(t *testing.T) {
	now := time.Now()
	tail := strings.Repeat("t", hashTail)
	a, b := "alice."+tail, "bob."+tail
	c := newVerifiedCache(10, time.Hour)
	if c.hash(a) != c.hash(b) {
		t.Fatal("tokens with the same last hashTail bytes have different keys: the test no longer makes them collide")
	}
	if c.hash(a) == c.hash("x"+tail[1:]+"y") {
		t.Fatal("the last byte does not reach the key")
	}
	for i := range 4 {
		tok, sub, other := a, "alice", b
		if i%2 == 1 {
			tok, sub, other = b, "bob", a
		}
		if p, ok := c.lookup(tok, now); ok {
			t.Fatalf("round %d: %s answered with %q before its put", i, sub, p.Subject)
		}
		c.put(tok, principal.Principal{Subject: sub, ExpiresAt: now.Add(time.Hour)}, now)
		if p, ok := c.lookup(tok, now); !ok || p.Subject != sub {
			t.Fatalf("round %d: %s after put: %q, %v", i, sub, p.Subject, ok)
		}
		if p, ok := c.lookup(other, now); ok {
			t.Fatalf("round %d: the other token was answered with %q", i, p.Subject)
		}
	}
}

// lookup is get for a header-borne token, by value.
func (c *verifiedCache) lookup(token string, now time.Time) (principal.Principal, bool) {
	p, ok := c.get(token, false, principal.SourceHeader, now)
	if !ok {
		return principal.Principal{}, false
	}
	return *p, true
}

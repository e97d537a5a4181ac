package middleware

import (
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// tokenKey is the SHA-256 of a token, computed without copying it, the same
// key the introspection client's cache uses: a lookup needs no copy of the
// token, and a collision would need a second preimage. An entry does hold
// its own token, inside the Principal, for RawToken (see withToken).
type tokenKey = introspection.TokenHash

func keyOf(token string) tokenKey { return introspection.HashToken(token) }

type cacheEntry struct {
	p       principal.Principal
	expires time.Time
}

// verifiedCache remembers tokens that passed verification, until their exp
// or a maximum age, whichever is first. It is bounded: when full, it drops
// expired entries and then arbitrary ones (Go's map iteration order is
// random), which costs nothing on the hit path and cannot be steered by an
// attacker into evicting one chosen entry.
//
// It is not the introspection client's cache (introspection/cache.go),
// though both are bounded maps keyed by TokenHash, on purpose: this one
// holds only accepted callers (a refusal is never cached here, so garbage
// tokens cannot fill it), and a lost entry costs one local signature check,
// so it evicts a tenth at a time, cheaply and rarely. The client's cache
// also holds "inactive" verdicts and a lost entry costs a round trip to the
// authorization server, so it evicts one entry per insert, choosing the
// one with the least life left. With introspection both run: an answer is
// kept here no longer than the client keeps it (putUntil).
type verifiedCache struct {
	mu      sync.RWMutex
	entries map[tokenKey]cacheEntry
	max     int
	maxAge  time.Duration
}

func newVerifiedCache(max int, maxAge time.Duration) *verifiedCache {
	if max <= 0 {
		return nil
	}
	return &verifiedCache{entries: make(map[tokenKey]cacheEntry, min(max, 1024)), max: max, maxAge: maxAge}
}

func (c *verifiedCache) get(k tokenKey, now time.Time) (principal.Principal, bool) {
	if c == nil {
		return principal.Principal{}, false
	}
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return principal.Principal{}, false
	}
	return e.p, true
}

func (c *verifiedCache) put(k tokenKey, p principal.Principal, now time.Time) {
	if c == nil {
		return
	}
	c.putUntil(k, p, now, now.Add(c.maxAge))
}

// putUntil caches p until the earliest of until, its expiry and the
// cache's maximum age; a zero until keeps nothing.
func (c *verifiedCache) putUntil(k tokenKey, p principal.Principal, now, until time.Time) {
	if c == nil || until.IsZero() {
		return
	}
	expires := now.Add(c.maxAge)
	if until.Before(expires) {
		expires = until
	}
	if !p.ExpiresAt.IsZero() && p.ExpiresAt.Before(expires) {
		expires = p.ExpiresAt
	}
	if !now.Before(expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		c.evict(now)
	}
	c.entries[k] = cacheEntry{p: p, expires: expires}
}

// evict frees about a tenth of the cache; the caller holds the lock.
func (c *verifiedCache) evict(now time.Time) {
	target := c.max - c.max/10 - 1
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			delete(c.entries, k)
		}
	}
	for k := range c.entries {
		if len(c.entries) <= target {
			return
		}
		delete(c.entries, k)
	}
}

func (c *verifiedCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

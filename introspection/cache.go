package introspection

import (
	"sync"
	"time"
)

// key is the SHA-256 of a token (HashToken): the cache never holds a token
// itself.
type key = TokenHash

// entry is a cached verdict: resp for an active token, nil for an
// inactive one, with err saying why (nil: ErrInactive).
type entry struct {
	resp    *Response
	err     error
	expires time.Time
}

// result is what Introspect returns for a cached verdict: the same as the
// first answer gave, ErrNotAccessToken included.
func (e entry) result() (*Response, error) {
	if e.resp == nil {
		if e.err != nil {
			return nil, e.err
		}
		return nil, ErrInactive
	}
	return e.resp, nil
}

// cache is a bounded map of verdicts.
//
// Eviction is sampled rather than LRU. An LRU list must be reordered on
// every hit, so every authenticated API request would take a write lock on
// this one hot structure; here hits take only a read lock, inserts are
// O(1), and entries carry no list pointers. When the cache is full, an
// insert looks at a few entries (Go randomizes where map iteration starts),
// drops those already expired, and if none was, drops the sampled entry
// that would expire soonest: it has the least cache life left to lose. The
// worst case, evicting a token in heavy use, costs one extra introspection
// call.
//
// The middleware's verified-token cache (middleware/cache.go) is a separate
// bounded map on the same TokenHash keys, on purpose: it holds only accepted
// callers, whose loss costs a local signature check, and keeps the ones in
// use with a second-chance bit set on every hit; this one also holds
// inactive verdicts, whose loss costs a call to the authorization server,
// and evicts by time left. This package must not depend on the middleware,
// and sharing would mean exporting a cache type here for the middleware
// alone.
type cache struct {
	mu  sync.RWMutex
	max int
	m   map[key]entry
}

// evictionSample is how many entries an insert into a full cache looks at.
const evictionSample = 8

func newCache(max int) *cache {
	return &cache{max: max, m: make(map[key]entry, min(max, 1024))}
}

// get returns the live entry for k, if any.
func (c *cache) get(k key, now time.Time) (entry, bool) {
	c.mu.RLock()
	e, ok := c.m[k]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return entry{}, false
	}
	return e, true
}

// put stores e under k, evicting if the cache is full.
func (c *cache) put(k key, e entry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		c.evictLocked(now)
	}
	c.m[k] = e
}

func (c *cache) evictLocked(now time.Time) {
	var (
		victim  key
		soonest time.Time
		freed   bool
		seen    int
	)
	for k, e := range c.m {
		switch {
		case !now.Before(e.expires):
			delete(c.m, k)
			freed = true
		case seen == 0 || e.expires.Before(soonest):
			victim, soonest = k, e.expires
		}
		if seen++; seen >= evictionSample {
			break
		}
	}
	if !freed {
		delete(c.m, victim)
	}
}

func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.m)
}

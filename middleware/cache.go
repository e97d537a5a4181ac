package middleware

import (
	"hash/maphash"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// tokenKey is the SHA-256 of a token, computed without copying it, the same
// key the introspection client's cache uses. It names a refused token in
// the logs; a token that passes is not hashed (Principal.TokenHash does it
// when asked), and the verified-token cache itself is looked up by a
// cheaper hash (see verifiedCache.hash).
type tokenKey = introspection.TokenHash

func keyOf(token string) tokenKey { return introspection.HashToken(token) }

// cacheEntry is one verified token. Its fields never change once it is in
// the cache (a new answer for the same token is a new entry), so a hit may
// read it after releasing the lock; only used changes, atomically.
type cacheEntry struct {
	// ps is the Principal as each source presents it (Source, per
	// request, is the one field that differs), so that a hit hands on a
	// pointer into the entry: see sourceIndex.
	ps      [2]principal.Principal
	expires time.Time
	// token is the token itself (the same string as ps's RawToken): a hit
	// is an entry whose token equals the request's, so two tokens whose
	// hashes collide can never be taken for each other.
	token string
	hash  uint64
	slot  int // index in verifiedCache.ring
	// used is set by a hit and cleared by an eviction sweep passing over
	// the entry: its second chance.
	used atomic.Bool
}

// verifiedCache remembers tokens that passed verification, until their exp
// or a maximum age, whichever is first. It is bounded, and when full it
// evicts with CLOCK (second chance) whose hand starts at a random slot:
// every entry sits in a ring; a hit sets the entry's used bit; an insert
// into a full cache walks the ring from a random slot, clearing the used
// bits it passes, and replaces the first entry that is expired or unused.
// After a full turn without one (every entry was hit since the last
// sweep) it replaces the entry it started at.
//
// Why this eviction, from the hit rates of the study in
// evict_study_test.go (default size and age, 1k–100k distinct tokens):
//
//   - Real traffic is skewed: a few heavy clients and a long tail. With
//     Zipf-distributed requests over 100,000 tokens it keeps 84% hits, as a
//     true LRU does, where random eviction (what this cache did before: drop
//     a tenth at a time, arbitrary entries, Go's map order) keeps 81%.
//   - A caller minting fresh tokens to flush the cache gets its tokens
//     evicted first (a new entry starts unused), so the callers in steady
//     use keep their hits: 74% instead of 68% with half the requests from
//     such a flood.
//   - The random start keeps the one weakness of LRU and plain CLOCK away:
//     n clients polling in turn, n a little above the cache size, make
//     every insert evict the entry needed next, 0% hits; here they keep
//     random eviction's share (77% at 11,000 clients).
//   - Hits stay lock-free of writers: a read lock, a map read, and one
//     atomic load (plus a store when the bit was clear); no allocation. A
//     true LRU would take the write lock on every hit. The sweep runs on a
//     miss, which has just paid for a signature check, and never passes
//     more than one turn of the ring.
//   - An attacker cannot choose what is evicted: the hand starts where the
//     runtime's random generator says, and the used bits follow only the
//     tokens that are being hit.
//
// It is not the introspection client's cache (introspection/cache.go),
// though both are bounded maps keyed by TokenHash, on purpose: this one
// holds only accepted callers (a refusal is never cached here, so garbage
// tokens cannot fill it), and a lost entry costs one local signature check.
// The client's cache also holds "inactive" verdicts and a lost entry costs
// a round trip to the authorization server; it evicts the sampled entry
// with the least life left. With introspection both run: an answer is kept
// here no longer than the client keeps it (putUntil).
//
// Entries are found by a 64-bit maphash, with a seed of this cache's, of
// the token's last 64 bytes (all of it for an introspected token: see
// hashTail), then compared with the token itself: a hit costs a hash of 64
// bytes (nanoseconds) where the SHA-256 of the whole token cost a hundred
// times more, half the middleware's time on a hit under load. The seed is
// random, so no caller can choose tokens that collide; if two did, the
// token comparison keeps them apart and the later simply replaces the
// earlier.
type verifiedCache struct {
	seed    maphash.Seed
	mu      sync.RWMutex
	entries map[uint64]*cacheEntry
	// ring holds every entry at its slot: it grows to max, then an
	// insert into a full cache reuses the slot of the entry it evicts.
	ring   []*cacheEntry
	max    int
	maxAge time.Duration
}

func newVerifiedCache(max int, maxAge time.Duration) *verifiedCache {
	if max <= 0 {
		return nil
	}
	return &verifiedCache{seed: maphash.MakeSeed(), entries: make(map[uint64]*cacheEntry, min(max, 1024)), max: max, maxAge: maxAge}
}

// hashTail is how many of a token's last bytes the key of a JWT's entry
// is computed from. A JWS ends in its signature (43 to 683 characters of
// base64url): its last 64 bytes tell live tokens apart as well as the
// whole token does, since nobody can mint a token that verifies and ends
// in another token's signature, and a hit then hashes 64 bytes instead of
// every byte of a token of several hundred (an RS256 token's hash was a
// sixth of a hit). An introspected token is keyed by all of it: opaque
// formats may end alike (a PASETO footer naming the key, a fixed tenant
// part), and tokens sharing a key would take turns in one entry, each
// request evicting another caller's. Nothing rests on a key being unique:
// a hit also compares the whole token, and the seed keeps anyone from
// aiming at a 64-bit collision.
const hashTail = 64

// hash is the key of a locally verified token's entry: a seeded maphash
// of its tail.
func (c *verifiedCache) hash(token string) uint64 {
	if len(token) > hashTail {
		token = token[len(token)-hashTail:]
	}
	return maphash.String(c.seed, token)
}

// hashWhole is the key of an introspected token's entry: a seeded maphash
// of all of it.
func (c *verifiedCache) hashWhole(token string) uint64 { return maphash.String(c.seed, token) }

// keyOf is token's key, of its tail or of all of it.
func (c *verifiedCache) keyOf(token string, whole bool) uint64 {
	if whole {
		return c.hashWhole(token)
	}
	return c.hash(token)
}

// sourceIndex is src's index in cacheEntry.ps.
func sourceIndex(src principal.Source) int {
	if src == principal.SourceCookie {
		return 1
	}
	return 0
}

// get returns the principal cached for token under its whole or tail key
// (whole: stored by putUntil for an introspected token), as src presents
// it, unless it expired by now. It is the entry's own: read it, never
// change it.
func (c *verifiedCache) get(token string, whole bool, src principal.Source, now time.Time) (*principal.Principal, bool) {
	if c == nil {
		return nil, false
	}
	h := c.keyOf(token, whole)
	c.mu.RLock()
	e, ok := c.entries[h]
	c.mu.RUnlock()
	if !ok || e.token != token || !now.Before(e.expires) {
		return nil, false
	}
	// Load first: a hot entry's bit is already set, and a store on every
	// hit would bounce its cache line between cores.
	if !e.used.Load() {
		e.used.Store(true)
	}
	return &e.ps[sourceIndex(src)], true
}

// put caches p, the caller token proves, for the cache's maximum age at
// most. token must not be the request's own header string, which would
// stay in memory as long as the entry: see withToken.
func (c *verifiedCache) put(token string, p principal.Principal, now time.Time) {
	if c == nil {
		return
	}
	c.putUntil(token, false, p, now, now.Add(c.maxAge))
}

// putUntil caches p under token's whole or tail key until the earliest of
// until, its expiry and the cache's maximum age; a zero until keeps
// nothing.
func (c *verifiedCache) putUntil(token string, whole bool, p principal.Principal, now, until time.Time) {
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
	h := c.keyOf(token, whole)
	e := &cacheEntry{ps: [2]principal.Principal{p, p}, expires: expires, token: token, hash: h}
	e.ps[0].Source, e.ps[1].Source = principal.SourceHeader, principal.SourceCookie
	c.mu.Lock()
	defer c.mu.Unlock()
	switch old, ok := c.entries[h]; {
	case ok:
		// The same token, or (as good as never) another with the same
		// hash: either way the new entry takes the slot.
		e.slot = old.slot
	case len(c.ring) < c.max:
		e.slot = len(c.ring)
		c.ring = append(c.ring, nil)
	default:
		e.slot = c.sweep(now)
		delete(c.entries, c.ring[e.slot].hash)
	}
	c.ring[e.slot] = e
	c.entries[h] = e
}

// sweep returns the slot whose entry an insert into the full cache
// replaces: from a random slot on, the first entry that is expired or was
// not hit since a sweep last passed it, clearing the used bits it passes;
// after a full turn, the slot it started at. The caller holds the lock.
func (c *verifiedCache) sweep(now time.Time) int {
	n := len(c.ring)
	start := rand.IntN(n)
	for i := range n {
		s := start + i
		if s >= n {
			s -= n
		}
		e := c.ring[s]
		if !now.Before(e.expires) || !e.used.Load() {
			return s
		}
		e.used.Store(false)
	}
	return start
}

func (c *verifiedCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

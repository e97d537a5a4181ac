package middleware

import (
	"hash/maphash"
	"sync"
	"time"
)

// replayCache remembers the jti of accepted DPoP proofs until they could no
// longer be accepted anyway (iat plus the proof window, plus a second so
// that the inclusive edge of the window is covered), so that a proof is
// used once (RFC 9449 §11.1). Its memory is fixed when it is made: slots
// entries of 16 bytes (a 64-bit keyed hash of the key's thumbprint and the
// jti, and an expiry), in buckets of 32; each jti may live in either of two
// buckets ("two choices", the emptier one taking it), which keeps the
// table usable until about nine in ten slots are live (TestReplayCacheBound).
//
// When both buckets of a new jti are full of live entries, the proof is
// refused (503, ReasonDPoPReplayFull), never let through by forgetting an
// older jti: forgetting would make a captured proof replayable, silently.
// Refusing fails closed, and cannot be used to lock users out cheaply: a
// jti is recorded only after every other check has passed, the token's
// binding included, so only the holder of a valid DPoP-bound token and its
// key can fill the cache, under a subject the log names; and every entry
// expires at most two proof windows (and a second) after it was made, so the cache
// empties itself once the flood stops.
//
// Two proofs that hash alike within one window would be taken for a
// replay: with 64-bit hashes under a random seed that happens with
// probability about 16/2^64 per proof.
type replayCache struct {
	mu      sync.Mutex
	seed    maphash.Seed
	buckets []replayBucket
}

const replayBucketSlots = 32

type replayBucket struct {
	hash [replayBucketSlots]uint64
	exp  [replayBucketSlots]int64 // unix nanoseconds; 0 or past: free
}

func newReplayCache(slots int) *replayCache {
	n := max(2, (slots+replayBucketSlots-1)/replayBucketSlots)
	return &replayCache{seed: maphash.MakeSeed(), buckets: make([]replayBucket, n)}
}

// slots is the number of jti the cache can hold.
func (c *replayCache) slots() int { return len(c.buckets) * replayBucketSlots }

type replayResult int

const (
	replayFresh replayResult = iota
	replaySeen
	replayFull
)

// add records jti of the key jkt until expires, and says whether it was
// fresh, already there, or could not be recorded.
func (c *replayCache) add(jkt, jti string, expires, now time.Time) replayResult {
	var h maphash.Hash
	h.SetSeed(c.seed)
	_, _ = h.WriteString(jkt)
	_ = h.WriteByte(0)
	_, _ = h.WriteString(jti)
	x := h.Sum64()
	if x == 0 {
		x = 1
	}
	n := uint64(len(c.buckets))
	b1, b2 := x%n, (x>>32^x*0x9e3779b97f4a7c15)%n
	if b2 == b1 {
		b2 = (b1 + 1) % n
	}
	nowN := now.UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	free1, free2 := -1, -1
	live1 := 0
	for i, b := range []*replayBucket{&c.buckets[b1], &c.buckets[b2]} {
		for s := range replayBucketSlots {
			if b.exp[s] > nowN {
				if b.hash[s] == x {
					return replaySeen
				}
				if i == 0 {
					live1++
				}
				continue
			}
			if i == 0 && free1 < 0 {
				free1 = s
			} else if i == 1 && free2 < 0 {
				free2 = s
			}
		}
	}
	bucket, slot := &c.buckets[b1], free1
	live2 := 0
	for s := range replayBucketSlots {
		if c.buckets[b2].exp[s] > nowN {
			live2++
		}
	}
	if free1 < 0 || (free2 >= 0 && live2 < live1) {
		bucket, slot = &c.buckets[b2], free2
	}
	if slot < 0 {
		return replayFull
	}
	bucket.hash[slot], bucket.exp[slot] = x, expires.UnixNano()
	return replayFresh
}

package middleware

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
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

// ReplayStore records DPoP proof identifiers for the whole fleet: SetNX
// stores key for ttl only if it is absent and reports whether it stored it
// (false: seen before). Errors mean the store cannot be reached now. It must
// be safe for concurrent use and honour ctx, which DPoPReplayStoreTimeout
// bounds. A Redis adapter is SET key value NX PX ttl (ttl rounded up to a
// whole millisecond).
type ReplayStore interface {
	SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (stored bool, err error)
}

// replayStoreKeyBase begins every key given to a ReplayStore.
const replayStoreKeyBase = "tollgate:dpop-jti:v1:"

// replayStoreRetry is how long a failed ReplayStore is left alone, so that
// an outage in which every call times out costs one timeout a second, not
// one per DPoP request.
const replayStoreRetry = time.Second

// sharedReplay is an Authenticator's view of its ReplayStore.
//
// When the store cannot be reached, proofs are checked against the local
// replay cache only: a proof replayed at another instance during the outage
// passes, as it would without a store, while failing closed (503 for every
// DPoP request) would turn a Redis outage into an outage of the API. A
// replay needs a captured proof, which is bound to one method and URL and
// lives for the proof window only; the token, which the proof does not
// replace, is checked as always.
type sharedReplay struct {
	store   ReplayStore
	timeout time.Duration
	log     *slog.Logger
	now     func() time.Time

	down  atomic.Bool  // a call failed and none has succeeded since
	retry atomic.Int64 // Unix nanoseconds before which no call is made while down
}

// replayStoreKey names the proof (jkt, jti) in the store: a hash, so that
// neither the jti nor the key's thumbprint is stored, and every key has the
// same bounded length, whatever the proof's jti.
func replayStoreKey(jkt, jti string) string {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	return replayStoreKeyBase + hex.EncodeToString(h.Sum(nil))
}

// check records the proof in the store for ttl. It returns errDPoPReplay
// when the fleet had seen it already, nil when not, and nil without asking
// while the store is down (see sharedReplay).
//
// A request whose own context ended (its client went away, or
// half-closed the connection) is no store outage: counting it as one
// would let anyone with a DPoP token of their own switch an instance to
// its local replay cache, on demand, for replayStoreRetry, and the proof
// of such a request would pass unchecked. It is refused (503) instead; its
// client is gone.
func (s *sharedReplay) check(ctx context.Context, jkt, jti string, ttl time.Duration) error {
	if s.down.Load() && s.now().UnixNano() < s.retry.Load() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return errDPoPGone(err)
	}
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	stored, err := s.store.SetNX(cctx, replayStoreKey(jkt, jti), []byte{1}, ttl)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return errDPoPGone(ctx.Err())
		}
		s.retry.Store(s.now().Add(replayStoreRetry).UnixNano())
		if s.down.CompareAndSwap(false, true) {
			s.log.LogAttrs(ctx, slog.LevelWarn, "DPoP replay store unavailable: checking proofs against this instance's replay cache only until it answers", errAttr(err))
		}
		return nil
	}
	if s.down.Load() && s.down.CompareAndSwap(true, false) {
		s.log.LogAttrs(ctx, slog.LevelInfo, "DPoP replay store recovered")
	}
	if !stored {
		return errDPoPReplay
	}
	return nil
}

// errDPoPGone is a request that ended before its proof could be checked
// against the fleet.
func errDPoPGone(cause error) error {
	return newErr(ErrUnavailable, ReasonUnavailable, "the request ended before its DPoP proof was checked", cause)
}

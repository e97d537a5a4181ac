package introspection

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"
)

// SharedCache is a cache the instances of a fleet share (Redis, for one).
// Get reports ok=false for a key that is absent or expired. Errors mean the
// cache cannot be reached now. It must be safe for concurrent use, and must
// honour ctx: the Client bounds every call with SharedCacheTimeout.
//
// The Client stores in it the verdicts of the authorization server, keyed
// by the SHA-256 of the token (never the token) and by which endpoint and
// client asked, as values that never contain the token. See the package
// documentation, "Cache shared by a fleet".
type SharedCache interface {
	Get(ctx context.Context, key string) (value []byte, ok bool, err error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// Defaults and bounds of the shared cache settings.
const (
	// DefaultSharedCacheTimeout bounds one call to SharedCache: a cache on
	// the local network answers in a millisecond or two, and one that does
	// not must cost a request little more than the call to the server it
	// was meant to save.
	DefaultSharedCacheTimeout = 100 * time.Millisecond
	// MinSharedCacheKeyBytes is the least length of SharedCacheKey.
	MinSharedCacheKeyBytes = 32
	// sharedRetry is how long the Client leaves the shared cache alone
	// after a call to it failed, so that an outage in which every call
	// times out costs one timeout per second rather than one per lookup.
	sharedRetry = time.Second
)

// The shared value's layout: a version byte, a byte saying whether a MAC
// follows, the MAC (32 bytes) when it does, then the JSON of sharedVerdict.
const (
	sharedVersion = 1
	sharedNoMAC   = 0
	sharedHMAC    = 1
	sharedKeyBase = "tollgate:introspection:v1:"
	// sharedMACLabel separates these MACs from any other use of the key.
	sharedMACLabel = "tollgate introspection shared cache v1\x00"
)

// sharedVerdict is a verdict as the shared cache holds it. Until is the
// last instant (Unix milliseconds, rounded down) at which the writer would
// have reused the verdict itself: a reader never keeps it longer, so that
// passing a verdict from instance to instance never stretches it past the
// token's exp or the writer's TTL. Answer is the server's answer for an
// active token; NotAccess names the member that showed an active token to
// be no access token; neither means inactive.
type sharedVerdict struct {
	Until     int64            `json:"until"`
	Answer    json.RawMessage  `json:"answer,omitempty"`
	NotAccess *sharedNotAccess `json:"not_access_token,omitempty"`
}

type sharedNotAccess struct {
	Member string `json:"member"`
	Value  string `json:"value"`
}

// sharedCache is a Client's view of its SharedCache.
type sharedCache struct {
	c       SharedCache
	mac     []byte // nil: values are not authenticated
	timeout time.Duration
	prefix  string // sharedKeyBase and the scope of endpoint and client
	maxLen  int    // longer values are refused unread

	down    atomic.Bool  // a call failed and none has succeeded since
	retry   atomic.Int64 // Unix nanoseconds before which no call is made while down
	corrupt atomic.Bool  // a bad value was logged and no good one read since

	hits, errs atomic.Uint64
}

func newSharedCache(c *Client, maxBytes int64) *sharedCache {
	// Two APIs that share one Redis but ask different endpoints, or the
	// same endpoint as different clients, must never read each other's
	// verdicts: a server may answer differently per client.
	scope := sha256.Sum256([]byte("tollgate introspection scope\x00" + c.Endpoint + "\x00" + c.ClientID))
	sc := &sharedCache{
		c:       c.SharedCache,
		timeout: orDefault(c.SharedCacheTimeout, DefaultSharedCacheTimeout),
		prefix:  sharedKeyBase + hex.EncodeToString(scope[:16]) + ":",
		maxLen:  int(min(maxBytes, 1<<30)) + 1024,
	}
	if len(c.SharedCacheKey) > 0 {
		sc.mac = bytes.Clone(c.SharedCacheKey)
	}
	return sc
}

// key is the shared cache's name for the verdict on the token hashed to k.
func (sc *sharedCache) key(k key) string { return sc.prefix + hex.EncodeToString(k[:]) }

func (sc *sharedCache) sum(name string, body []byte) []byte {
	m := hmac.New(sha256.New, sc.mac)
	m.Write([]byte(sharedMACLabel))
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write(body)
	return m.Sum(nil)
}

// seal makes the stored value of body under the name key.
func (sc *sharedCache) seal(name string, body []byte) []byte {
	if sc.mac == nil {
		return append([]byte{sharedVersion, sharedNoMAC}, body...)
	}
	v := make([]byte, 0, 2+sha256.Size+len(body))
	v = append(v, sharedVersion, sharedHMAC)
	v = append(v, sc.sum(name, body)...)
	return append(v, body...)
}

// open returns the JSON body of a stored value, or why it is refused. A
// Client with a key refuses every value without a valid MAC for this very
// name; one without a key refuses MACed values, which it cannot check.
func (sc *sharedCache) open(name string, v []byte) ([]byte, string) {
	switch {
	case len(v) > sc.maxLen:
		return nil, "too long"
	case len(v) < 2 || v[0] != sharedVersion:
		return nil, "unknown format"
	case sc.mac == nil && v[1] == sharedNoMAC:
		return v[2:], ""
	case sc.mac == nil:
		return nil, "authenticated value, but no SharedCacheKey to check it"
	case v[1] != sharedHMAC || len(v) < 2+sha256.Size:
		return nil, "not authenticated"
	}
	body := v[2+sha256.Size:]
	if !hmac.Equal(v[2:2+sha256.Size], sc.sum(name, body)) {
		return nil, "authentication failed"
	}
	return body, ""
}

// skip reports whether the shared cache is down and not due for another
// try.
func (sc *sharedCache) skip(now time.Time) bool {
	return sc.down.Load() && now.UnixNano() < sc.retry.Load()
}

// failed records a failed call; the first failure of an outage is logged.
// Callers leave out calls that failed because the lookup's own context
// ended (every caller went away): those say nothing of the cache, and
// counting them would let anyone switch it off for sharedRetry on demand.
func (s *state) sharedFailed(ctx context.Context, op string, err error, token string) {
	sc := s.shared
	sc.errs.Add(1)
	sc.retry.Store(s.now().Add(sharedRetry).UnixNano())
	if sc.down.CompareAndSwap(false, true) && s.log != nil {
		s.log.LogAttrs(ctx, slog.LevelWarn, "introspection shared cache unavailable: using the local cache only until it answers",
			slog.String("op", op), slog.String("error", clean(err.Error(), token)))
	}
}

// succeeded records a call that worked; the first after an outage is
// logged.
func (s *state) sharedSucceeded(ctx context.Context) {
	if s.shared.down.Load() && s.shared.down.CompareAndSwap(true, false) && s.log != nil {
		s.log.LogAttrs(ctx, slog.LevelInfo, "introspection shared cache recovered")
	}
}

// sharedGet looks the token up in the shared cache. It returns an entry
// whose expiry is the stored one, cut to this Client's own TTLs and the
// token's exp, or false: absent, expired, refused, or the cache is down.
func (s *state) sharedGet(ctx context.Context, k key, token string) (entry, bool) {
	sc := s.shared
	if sc.skip(s.now()) {
		return entry{}, false
	}
	name := sc.key(k)
	cctx, cancel := context.WithTimeout(ctx, sc.timeout)
	v, ok, err := sc.c.Get(cctx, name)
	cancel()
	if err != nil {
		if ctx.Err() == nil { // not a lookup every caller abandoned
			s.sharedFailed(ctx, "get", err, token)
		}
		return entry{}, false
	}
	s.sharedSucceeded(ctx)
	if !ok {
		return entry{}, false
	}
	e, why := s.decodeShared(name, v)
	if why != "" {
		if sc.corrupt.CompareAndSwap(false, true) && s.log != nil {
			s.log.LogAttrs(ctx, slog.LevelWarn, "introspection shared cache value ignored", k.LogAttr(), slog.String("why", why))
		}
		return entry{}, false
	}
	if sc.corrupt.Load() {
		sc.corrupt.Store(false)
	}
	if !s.now().Before(e.expires) {
		return entry{}, false
	}
	return e, true
}

// decodeShared reads a stored value. Anything it cannot read whole is
// refused, so that no damaged value ever passes for an active verdict.
func (s *state) decodeShared(name string, v []byte) (entry, string) {
	body, why := s.shared.open(name, v)
	if why != "" {
		return entry{}, why
	}
	var sv sharedVerdict
	d := json.NewDecoder(bytes.NewReader(body))
	d.DisallowUnknownFields()
	if err := d.Decode(&sv); err != nil || d.More() {
		return entry{}, "not a verdict"
	}
	now := s.now()
	until := time.UnixMilli(sv.Until)
	switch {
	case len(sv.Answer) > 0 && sv.NotAccess != nil:
		return entry{}, "not a verdict"
	case len(sv.Answer) > 0:
		if s.activeTTL <= 0 {
			return entry{}, "" // this Client keeps no active verdicts: expired at once
		}
		resp, err := parseResponse(sv.Answer)
		if err != nil || !resp.Active {
			return entry{}, "answer is not an active access token"
		}
		until = earliest(until, now.Add(s.activeTTL), resp.Exp)
		resp.CacheUntil = until
		return entry{resp: resp, expires: until}, ""
	case sv.NotAccess != nil:
		if s.inactiveTTL <= 0 {
			return entry{}, ""
		}
		na := sv.NotAccess
		if na.Member != "token_use" && na.Member != "token_type" && na.Member != "typ" || len(na.Value) > 4*maxDescription {
			return entry{}, "not a verdict"
		}
		return entry{err: &notAccessToken{member: na.Member, value: na.Value},
			expires: earliest(until, now.Add(s.inactiveTTL), nil)}, ""
	}
	if s.inactiveTTL <= 0 {
		return entry{}, ""
	}
	return entry{expires: earliest(until, now.Add(s.inactiveTTL), nil)}, ""
}

func earliest(t, u time.Time, exp *time.Time) time.Time {
	if u.Before(t) {
		t = u
	}
	if exp != nil && exp.Before(t) {
		t = *exp
	}
	return t
}

// sharedPut stores the verdict e, reached at now, for the fleet. An answer
// that quotes the token anywhere is kept out of the shared cache.
func (s *state) sharedPut(ctx context.Context, k key, e entry, token string, now time.Time) {
	sc := s.shared
	ttl := e.expires.Sub(now)
	if ttl <= 0 || sc.skip(now) {
		return
	}
	sv := sharedVerdict{Until: e.expires.UnixMilli()}
	var na *notAccessToken
	switch {
	case e.resp != nil:
		answer, ok := normalizeAnswer(e.resp.Raw)
		if !ok || bytes.Contains(answer, []byte(token)) {
			return
		}
		sv.Answer = answer
	case errors.As(e.err, &na):
		sv.NotAccess = &sharedNotAccess{Member: na.member, Value: na.value}
	case e.err != nil && !errors.Is(e.err, ErrInactive):
		return
	}
	body, err := json.Marshal(sv)
	if err != nil || bytes.Contains(body, []byte(token)) {
		return
	}
	name := sc.key(k)
	cctx, cancel := context.WithTimeout(ctx, sc.timeout)
	err = sc.c.Set(cctx, name, sc.seal(name, body), ttl)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			s.sharedFailed(ctx, "set", err, token)
		}
		return
	}
	s.sharedSucceeded(ctx)
}

// normalizeAnswer re-encodes a server's answer with its numbers as written
// and no escapes beyond JSON's own, so that a token the server quoted
// (escaping "/" as "\/", say) is found by a plain search.
func normalizeAnswer(raw []byte) ([]byte, bool) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil || m == nil {
		return nil, false
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, false
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), true
}

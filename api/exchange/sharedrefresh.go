package exchange

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/tollgate-dev/tollgate/store"
)

// With STORE_URL set, the refresh grant is coordinated through the store
// that every instance shares, so that one refresh token is spent once
// across all of them:
//
//   - lock:<id>   SET NX PX by the instance that runs the grant; its value
//     is that instance's random owner tag, so that only it releases the
//     lock (compare-and-delete). It expires after lockTTL (a little above
//     HTTPTimeout); a grant that could not end and store its outcome
//     before then is not started. A waiter that sees the lock expire
//     without a result answers 503 rather than take the grant over: the
//     holder may have spent the token (it died, or could not store the
//     outcome), and its browser may hold the new one already.
//   - result:<id> the grant's outcome, sealed, for RefreshGrace (at least
//     minShareTTL, so that waiters collect it even with the grace off); a
//     failure for failureTTL, so that waiters answer as the holder did
//     rather than spend the token again.
//   - done:<id>   the pub/sub topic the holder publishes once the result is
//     stored; waiters subscribe, check, then wait on it (with a backstop
//     timer for a lost message).
//   - forgotten:<id>, produced:<id>  sign-out's marks (see forgetShared).
//
// <id> is HMAC-SHA256 of the refresh token under a key derived from
// SESSION_SECRET: the store never holds a token, nor a plain hash of one.
// Values are sealed (AES-256-GCM) under another key derived from it, with
// the key's name as additional data, so a value moved to another key does
// not open.
const (
	storeKeyPrefix = "tollgate:exchange:"
	// minShareTTL is how long a result stays for the waiters of its grant
	// when RefreshGrace is off or shorter.
	minShareTTL = 2 * time.Second
	// failureTTL is how long a failed grant's outcome is handed to waiters.
	failureTTL = 3 * time.Second
	// waitBackstop is how often a waiter looks again without a wake-up:
	// pub/sub delivers at most once.
	waitBackstop = 500 * time.Millisecond
	// maxStoredLen bounds a sealed result read from the store.
	maxStoredLen = 64 << 10
	// storeMargin is the least time the lock must have left once the
	// grant ends, for storing its outcome; lockTTL leaves two seconds more
	// for the store calls before the grant.
	storeMargin = time.Second
	// storeRetryAfter is the Retry-After of a refresh refused because the
	// store is down, in seconds.
	storeRetryAfter = "5"
)

// errStoreUnavailable is a refresh that could not be coordinated: the store
// did not answer, or another instance's grant did not end in time.
var errStoreUnavailable = errors.New("exchange: the shared store is unavailable")

// sharedStore is the exchange's side of STORE_URL.
type sharedStore struct {
	st    store.Store
	owned bool // opened from Config.StoreURL, so closed by Server.Close
	seal  *sealer
	idKey []byte

	lockTTL   time.Duration
	forgetFor time.Duration
	shareTTL  time.Duration
	// down is set while the store fails, so that an outage is logged once
	// when it starts and once when it ends.
	down atomic.Bool
}

func newSharedStore(st store.Store, owned bool, secret []byte, cfg *Config, forgetFor time.Duration) (*sharedStore, error) {
	seal, err := newSealerFor(secret, "tollgate exchange store v1", maxStoredLen)
	if err != nil {
		return nil, err
	}
	idKey, err := hkdf.Key(sha256.New, secret, nil, "tollgate exchange store ids v1", 32)
	if err != nil {
		return nil, err
	}
	lockTTL := cfg.HTTPTimeout + 3*time.Second
	shareTTL := max(cfg.RefreshGrace, minShareTTL)
	return &sharedStore{
		st: st, owned: owned, seal: seal, idKey: idKey,
		lockTTL: lockTTL,
		// A sign-out made while a grant runs elsewhere marks the token
		// before that grant stores its result: the mark must outlast the
		// result (stored up to lockTTL later, kept shareTTL), or the old
		// refresh cookie collects the new tokens once the mark is gone.
		forgetFor: max(forgetFor, lockTTL+shareTTL),
		shareTTL:  shareTTL,
	}, nil
}

// id names a refresh token in the store's keys.
func (ss *sharedStore) id(refreshToken string) string {
	m := hmac.New(sha256.New, ss.idKey)
	m.Write([]byte(refreshToken))
	return hex.EncodeToString(m.Sum(nil))
}

func key(kind, id string) string { return storeKeyPrefix + kind + ":" + id }

// sharedResult is a refreshResult, or a failed grant's classification, as
// sealed in the store.
type sharedResult struct {
	Failed     bool           `json:"failed,omitempty"`
	FailResult string         `json:"fail_result,omitempty"`
	FailCode   string         `json:"fail_code,omitempty"`
	Access     string         `json:"access,omitempty"`
	Type       string         `json:"type,omitempty"`
	Refresh    string         `json:"refresh,omitempty"`
	Expiry     time.Time      `json:"expiry,omitzero"`
	ExpiresIn  int64          `json:"expires_in,omitempty"`
	Extra      map[string]any `json:"extra,omitempty"`
	IDToken    *sharedIDToken `json:"idt,omitempty"`
}

type sharedIDToken struct {
	Raw, Sub, Name, Email string
}

// sharedExtras are the token response fields the exchange reads with
// Token.Extra.
var sharedExtras = []string{"id_token", "expires_in", "refresh_expires_in", "scope"}

func toShared(res refreshResult) sharedResult {
	sr := sharedResult{Access: res.tok.AccessToken, Type: res.tok.TokenType, Refresh: res.tok.RefreshToken, Expiry: res.tok.Expiry, ExpiresIn: res.tok.ExpiresIn, Extra: map[string]any{}}
	for _, k := range sharedExtras {
		if v := res.tok.Extra(k); v != nil {
			sr.Extra[k] = v
		}
	}
	if res.idt != nil {
		sr.IDToken = &sharedIDToken{Raw: res.idt.raw, Sub: res.idt.sub, Name: res.idt.Name, Email: res.idt.Email}
	}
	return sr
}

func (sr sharedResult) result() refreshResult {
	tok := (&oauth2.Token{AccessToken: sr.Access, TokenType: sr.Type, RefreshToken: sr.Refresh, Expiry: sr.Expiry, ExpiresIn: sr.ExpiresIn}).WithExtra(sr.Extra)
	res := refreshResult{tok: tok}
	if sr.IDToken != nil {
		res.idt = &idTokenInfo{raw: sr.IDToken.Raw, sub: sr.IDToken.Sub, Name: sr.IDToken.Name, Email: sr.IDToken.Email}
	}
	return res
}

// sharedGrantError is another instance's failed grant, as classified there.
type sharedGrantError struct{ result, code string }

func (e *sharedGrantError) Error() string {
	return "refresh grant failed on another instance: " + e.code
}

// failed reports a store error as errStoreUnavailable, logging the first
// of an outage.
func (s *Server) storeFailed(what string, err error) error {
	if s.shared.down.CompareAndSwap(false, true) {
		s.logger.Error("shared store unavailable: refreshes answer 503 until it is back", "during", what, "error", err)
	}
	return fmt.Errorf("%w: %s", errStoreUnavailable, what)
}

// storeAnswered notes a store call that worked, ending an outage.
func (s *Server) storeAnswered() {
	if s.shared.down.CompareAndSwap(true, false) {
		s.logger.Info("shared store available again")
	}
}

// loadResult returns the shared outcome of the grant that spent id's
// token, when there is one.
func (s *Server) loadResult(ctx context.Context, id string) (sharedResult, bool, error) {
	k := key("result", id)
	v, ok, err := s.shared.st.Get(ctx, k)
	if err != nil {
		return sharedResult{}, false, s.storeFailed("reading a refresh result", err)
	}
	if !ok {
		return sharedResult{}, false, nil
	}
	var sr sharedResult
	if err := s.shared.seal.openJSON(k, string(v), &sr); err != nil {
		// Not ours (another SESSION_SECRET, or tampered with): as if
		// absent, and the grant goes ahead.
		s.logger.Warn("refresh: ignoring a shared result that does not open (SESSION_SECRET differs between instances?)")
		return sharedResult{}, false, nil
	}
	return sr, true, nil
}

// sharedOutcome turns a stored outcome into refresh's answer.
func sharedOutcome(sr sharedResult) (refreshResult, bool, error) {
	if sr.Failed {
		return refreshResult{}, true, &sharedGrantError{result: sr.FailResult, code: sr.FailCode}
	}
	return sr.result(), true, nil
}

// sharedRefresh is refresh across every instance sharing the store: the
// instance that takes the lock runs the grant, the others wait for its
// result. Within one instance, callers still join one flight first.
func (s *Server) sharedRefresh(ctx context.Context, key, refreshToken string) (refreshResult, bool, error) {
	ran := false
	type answer struct {
		res    refreshResult
		shared bool
	}
	v, err, _ := s.flights.Do(key, func() (any, error) {
		ran = true
		res, shared, err := s.coordinate(ctx, refreshToken)
		return answer{res, shared}, err
	})
	a, _ := v.(answer)
	return a.res, !ran || a.shared, err
}

func (s *Server) coordinate(ctx context.Context, refreshToken string) (refreshResult, bool, error) {
	ss := s.shared
	id := ss.id(refreshToken)
	// One caller's cancelled request must not fail the others of the
	// flight; the wait is bounded by the lock's lifetime, after which the
	// waiters answer 503 (see the lock above).
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ss.lockTTL+time.Second)
	defer cancel()
	owner := make([]byte, 16)
	_, _ = rand.Read(owner)

	var sub *store.Subscription
	defer func() {
		if sub != nil {
			sub.Close()
		}
	}()
	for {
		sr, ok, err := s.loadResult(ctx, id)
		if err != nil {
			return refreshResult{}, false, err
		}
		if ok {
			s.storeAnswered()
			return sharedOutcome(sr)
		}
		// The lock expires lockTTL after the server took it, which is no
		// earlier than lockTTL after we asked for it.
		expires := time.Now().Add(ss.lockTTL)
		won, err := ss.st.SetNX(ctx, key("lock", id), owner, ss.lockTTL)
		if err != nil {
			return refreshResult{}, false, s.storeFailed("taking the refresh lock", err)
		}
		s.storeAnswered()
		if won && sub != nil {
			// We saw another instance hold the lock, and it expired
			// without a result: that instance died, or ran the grant and
			// could not store its outcome. The token may well be spent,
			// and the holder's browser may hold its successor already:
			// spending it again is a reuse, which a rotating server
			// answers by revoking the whole family, the new tokens
			// included. Answer 503 instead; the browser's retry carries
			// whatever cookie it holds by then.
			_, _ = ss.st.CompareAndDelete(ctx, key("lock", id), owner)
			s.logger.Warn("refresh: another instance's grant ended without a result (it died, or the store failed it); not spending the refresh token again")
			return refreshResult{}, false, fmt.Errorf("%w: another instance's grant ended without a result", errStoreUnavailable)
		}
		if won {
			return s.grantShared(ctx, id, owner, refreshToken, expires)
		}
		if sub == nil {
			// Subscribe, then check again: a result stored in between is
			// seen by the check, one stored after it wakes us.
			if sub, err = ss.st.Subscribe(ctx, key("done", id)); err != nil {
				return refreshResult{}, false, s.storeFailed("waiting for another instance's refresh", err)
			}
			continue
		}
		timer := time.NewTimer(waitBackstop)
		select {
		case <-sub.C:
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return refreshResult{}, false, s.storeFailed("waiting for another instance's refresh", ctx.Err())
		}
		timer.Stop()
	}
}

// grantShared runs the grant under the lock it holds, stores the outcome,
// wakes the waiters and releases the lock.
func (s *Server) grantShared(ctx context.Context, id string, owner []byte, refreshToken string, lockExpires time.Time) (refreshResult, bool, error) {
	ss := s.shared
	// Not the wait's deadline, which may be near: storing the result must
	// not fail for it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ss.lockTTL)
	defer cancel()
	lock := key("lock", id)
	// A grant that ended between our look and our lock has stored its
	// result already: spending the token again would be a reuse.
	if sr, ok, err := s.loadResult(ctx, id); err != nil || ok {
		_, _ = ss.st.CompareAndDelete(ctx, lock, owner)
		if err != nil {
			return refreshResult{}, false, err
		}
		return sharedOutcome(sr)
	}
	// The grant may take HTTPTimeout, and its outcome must be stored
	// before the lock expires: once it has, another instance takes the
	// lock and spends the token again. A store slow enough to eat that
	// margin fails the refresh instead.
	if time.Until(lockExpires) < s.cfg.HTTPTimeout+storeMargin {
		_, _ = ss.st.CompareAndDelete(ctx, lock, owner)
		return refreshResult{}, false, s.storeFailed("taking the refresh lock", errors.New("the store answered too slowly for the grant to end before the lock expires"))
	}
	res, err := s.grant(ctx, refreshToken)
	var sr sharedResult
	ttl := ss.shareTTL
	if err != nil {
		result, code := classifyTokenError(err)
		sr, ttl = sharedResult{Failed: true, FailResult: result, FailCode: code}, failureTTL
	} else {
		sr = toShared(res)
	}
	var serr error
	if err == nil && res.tok.RefreshToken != "" && res.tok.RefreshToken != refreshToken {
		// For sign-out with the new token (forgetShared): which result
		// handed it out. Written before the result, and the result only
		// with it: a result sign-out cannot find would hand the
		// signed-out session's tokens to the replaced refresh token for
		// the rest of its TTL. It outlasts the result, which is
		// written after it.
		pk := key("produced", ss.id(res.tok.RefreshToken))
		var v string
		if v, serr = ss.seal.sealJSON(pk, id); serr == nil {
			serr = ss.st.Set(ctx, pk, []byte(v), ttl+ss.lockTTL)
		}
	}
	rk := key("result", id)
	if serr == nil {
		var sealed string
		if sealed, serr = ss.seal.sealJSON(rk, sr); serr == nil {
			serr = ss.st.Set(ctx, rk, []byte(sealed), ttl)
		}
	}
	if serr != nil {
		// The waiters cannot see the outcome: the lock stays until it
		// expires, so that none of them spends the token, and then they
		// answer 503 rather than take it over.
		// This caller still gets the grant: its token is spent, and
		// dropping the new one would end the session for sure.
		_ = s.storeFailed("storing a refresh result", serr)
		return res, false, err
	}
	_ = ss.st.Publish(ctx, key("done", id))
	_, _ = ss.st.CompareAndDelete(ctx, lock, owner)
	return res, false, err
}

// sharedForgotten reports whether a sign-out on any instance has forgotten
// refreshToken lately. A store error counts as not forgotten: it is asked
// after a grant succeeded, when the token is spent, and the sign-out has
// revoked the tokens at the server anyway.
func (s *Server) sharedForgotten(ctx context.Context, refreshToken string) bool {
	// A browser that gave up must not count as a store outage.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.HTTPTimeout)
	defer cancel()
	_, ok, err := s.shared.st.Get(ctx, key("forgotten", s.shared.id(refreshToken)))
	if err != nil {
		_ = s.storeFailed("reading a sign-out mark", err)
		return false
	}
	return ok
}

// forgetShared is graceCache.forget for every instance: it marks
// refreshToken forgotten, drops the result that spent it and the one that
// handed it out (and marks that one's token forgotten too), so that after
// sign-out no request with either token is signed back in.
func (s *Server) forgetShared(ctx context.Context, refreshToken string) error {
	ss := s.shared
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.HTTPTimeout)
	defer cancel()
	id := ss.id(refreshToken)
	ids := []string{id}
	pk := key("produced", id)
	// A produced mark that cannot be read must not cost this token's own
	// mark: the error is reported after the rest is done.
	v, ok, gerr := ss.st.Get(ctx, pk)
	var prev string
	if gerr == nil && ok && ss.seal.openJSON(pk, string(v), &prev) == nil && prev != "" {
		ids = append(ids, prev)
	}
	for _, id := range ids {
		if err := ss.st.Set(ctx, key("forgotten", id), []byte("1"), ss.forgetFor); err != nil {
			return err
		}
		if err := ss.st.Delete(ctx, key("result", id)); err != nil {
			return err
		}
	}
	return gerr
}

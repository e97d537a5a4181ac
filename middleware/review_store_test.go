package middleware_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// ctxStore is memStore honouring ctx as a Redis client does: a call with a
// context already ended fails at once with the context's error.
type ctxStore struct{ *memStore }

func (s ctxStore) SetNX(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	return s.memStore.SetNX(ctx, key, value, ttl)
}

// TestReviewDPoPReplayStoreCancelledRequest: a request whose client went
// away (its context cancelled: a closed or half-closed connection) is no
// store outage. Counting it as one switched the instance to its local
// replay cache for a second, so that anyone with a DPoP token of their own
// could, on demand, open a window in which a proof captured from another
// user and used at another instance is accepted again; and the cancelled
// request itself passed the check unasked.
func TestReviewDPoPReplayStoreCancelledRequest(t *testing.T) {
	is := authtest.NewIssuer(t)
	st := ctxStore{newMemStore()}
	var logs syncBuffer
	instance := func() *middleware.Authenticator {
		return dpopAuthenticator(t, is, middleware.DPoPRequired, func(c *middleware.Config) {
			c.DPoPReplayStore = st
			c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		})
	}
	a, b, c := instance(), instance(), instance()
	victim := authtest.NewDPoPKey(t, "ES256")
	vtok := is.MintDPoP(t, "alice", victim)
	captured := victim.Proof(t, "GET", dpopURL, vtok)
	if w := do(a, dpopRequest("GET", "/todos", "DPoP", vtok, captured)); w.Code != 200 {
		t.Fatalf("the victim's request at A: %d %s", w.Code, w.Body)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	// The attacker's own valid request at B, abandoned; then the captured
	// proof at B.
	mallory := authtest.NewDPoPKey(t, "ES256")
	mtok := is.MintDPoP(t, "mallory", mallory)
	_ = do(b, dpopRequest("GET", "/todos", "DPoP", mtok, mallory.Proof(t, "GET", dpopURL, mtok)).WithContext(cancelled))
	if w := do(b, dpopRequest("GET", "/todos", "DPoP", vtok, captured)); w.Code != 401 {
		t.Errorf("the captured proof replayed at B after a cancelled request: %d %s, want 401", w.Code, w.Body)
	}
	// The replay itself, sent and abandoned at once, at C.
	if w := do(c, dpopRequest("GET", "/todos", "DPoP", vtok, captured).WithContext(cancelled)); w.Code == 200 {
		t.Errorf("the captured proof at C, its request cancelled: %d, accepted", w.Code)
	}
	if strings.Contains(logs.String(), "DPoP replay store unavailable") {
		t.Errorf("a cancelled request was logged as a store outage:\n%s", logs.String())
	}
}

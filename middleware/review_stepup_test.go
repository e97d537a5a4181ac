package middleware_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// TestReviewStepUpHugeMaxAge: StepUp.Validate bounds MaxAge below but not
// above. A MaxAge within ClockSkew of the largest time.Duration passes
// Validate (so RequireStepUp starts), but MaxAge+ClockSkew overflows to a
// negative limit and a token authenticated a second ago is refused with
// "More recent authentication is required", forever; and any MaxAge over
// 2^31-1 s puts a max_age in the challenge that the exchange's /login and
// devidp both refuse (400, invalid_request), so the client cannot follow
// it. Validate should refuse what the challenge's consumers cannot take.
func TestReviewStepUpHugeMaxAge(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, nil)
	now := time.Now()
	p := principal.Principal{Subject: "alice", Claims: map[string]any{"auth_time": float64(now.Add(-time.Second).Unix())}}
	ctx := principal.With(context.Background(), p)
	// 1. Overflow: a fresh sign-in is refused.
	huge := middleware.StepUp{MaxAge: time.Duration(math.MaxInt64) / time.Second * time.Second}
	if huge.Validate() == nil {
		if err := a.CheckStepUp(ctx, huge); err != nil {
			t.Errorf("MaxAge %d s passes Validate, but a sign-in a second old is refused: %v (MaxAge+ClockSkew overflowed)", huge.MaxAge/time.Second, err)
		}
	}
	// 2. A challenge nobody downstream accepts.
	tooBig := middleware.StepUp{MaxAge: (1 << 31) * time.Second}
	if tooBig.Validate() == nil {
		noAuthTime := principal.With(context.Background(), principal.Principal{Subject: "alice", Claims: map[string]any{}})
		_, ch := middleware.Challenge(a.CheckStepUp(noAuthTime, tooBig))
		t.Errorf("MaxAge 2^31 s passes Validate; its challenge %q carries a max_age the exchange's /login (400) and devidp (invalid_request) refuse", ch)
	}
}

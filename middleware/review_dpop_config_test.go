package middleware_test

import (
	"math"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestReviewDPoPSettingsBounded: DPoPProofWindow and DPoPReplaySlots had
// no upper bound. With a window of centuries a proof's expiry in the
// replay cache (iat plus the window, in int64 nanoseconds) overflowed
// into the past, so the same proof passed again and again; a huge slot
// count made New allocate without limit (or, near MaxInt, wrapped around
// to a 64-entry table).
func TestReviewDPoPSettingsBounded(t *testing.T) {
	is := authtest.NewIssuer(t)
	for name, edit := range map[string]func(*middleware.Config){
		"window of centuries": func(c *middleware.Config) { c.DPoPProofWindow = 280 * 365 * 24 * time.Hour },
		"window over an hour": func(c *middleware.Config) { c.DPoPProofWindow = time.Hour + time.Second },
		"slots MaxInt":        func(c *middleware.Config) { c.DPoPReplaySlots = math.MaxInt },
		"slots 2^40":          func(c *middleware.Config) { c.DPoPReplaySlots = 1 << 40 },
	} {
		cfg := middleware.Config{Issuer: is.URL, Audiences: []string{authtest.Audience}, DPoP: middleware.DPoPAllowed}
		edit(&cfg)
		if _, err := middleware.New(t.Context(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The bounds themselves are fine.
	a := dpopAuthenticator(t, is, middleware.DPoPRequired, func(c *middleware.Config) {
		c.DPoPProofWindow, c.DPoPReplaySlots = time.Hour, 1<<20
	})
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	p := k.Proof(t, "GET", dpopURL, tok, authtest.WithProofTime(time.Now().Add(59*time.Minute)))
	if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, p)); w.Code != 200 {
		t.Fatalf("first use: %d %s", w.Code, w.Body)
	}
	if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, p)); w.Code != 401 {
		t.Errorf("replay: %d %s", w.Code, w.Body)
	}
}

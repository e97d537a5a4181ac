package middleware_test

import (
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestReviewDPoPReplayAtWindowEdge: the window is inclusive (a proof whose
// iat is exactly a window old is accepted), so its jti must still be
// remembered at that instant. It was kept until iat plus the window,
// exclusive: a captured proof replayed at exactly iat+window passed.
func TestReviewDPoPReplayAtWindowEdge(t *testing.T) {
	is := authtest.NewIssuer(t)
	iat := time.Unix(time.Now().Unix(), 0)
	now := iat
	a := dpopAuthenticator(t, is, middleware.DPoPRequired, func(c *middleware.Config) {
		c.Now = func() time.Time { return now }
	})
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	p := k.Proof(t, "GET", dpopURL, tok, authtest.WithProofTime(iat))
	if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, p)); w.Code != 200 {
		t.Fatalf("first use: %d %s", w.Code, w.Body)
	}
	for _, d := range []time.Duration{time.Second, middleware.DefaultDPoPProofWindow - time.Nanosecond, middleware.DefaultDPoPProofWindow} {
		now = iat.Add(d)
		if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, p)); w.Code != 401 {
			t.Errorf("replayed %v after iat: %d %s, want 401", d, w.Code, w.Body)
		}
	}
}

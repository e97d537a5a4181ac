package todoapi

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestReviewDPoP2ForeignOriginDPoP: with DPoP on, a page of an origin not
// in CORS_ALLOWED_ORIGINS (another site, "null", the allowed one's
// sibling scheme or port) gets no CORS grant for the DPoP header, with
// credentials or without, and its answer exposes no DPoP-Nonce.
func TestReviewDPoP2ForeignOriginDPoP(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	cfg := testConfig(t, is)
	cfg.DPoP, cfg.DPoPNonceSecret = middleware.DPoPRequired, strings.Repeat("n", 32)
	h := mustBuild(t, cfg, true)
	for _, origin := range []string{"https://evil.example", "null", strings.Replace(testOrigin, "://", "://x.", 1), testOrigin + ":1"} {
		pre := serve(h, "OPTIONS", "/todos", "", "Origin", origin,
			"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,dpop")
		if got := pre.Header().Get("Access-Control-Allow-Origin"); got != "" || pre.Header().Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight from %s: Allow-Origin %q, Allow-Credentials %q", origin, got, pre.Header().Get("Access-Control-Allow-Credentials"))
		}
		key := authtest.NewDPoPKey(t, "ES256")
		tok := is.MintDPoP(t, "alice", key)
		rec := serve(h, "GET", "/todos", "", "Origin", origin, "Authorization", "DPoP "+tok,
			"DPoP", key.Proof(t, "GET", "http://example.com/todos", tok))
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("Access-Control-Allow-Origin") != "" ||
			strings.Contains(strings.ToLower(rec.Header().Get("Access-Control-Expose-Headers")), "dpop-nonce") {
			t.Errorf("GET from %s: %d, headers %v", origin, rec.Code, rec.Header())
		}
	}
}

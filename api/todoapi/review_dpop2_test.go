package todoapi

import (
	"net/http"
	"net/http/httptest"
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
	cfg.BaseURL = "http://example.com"
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

// TestReviewDPoP2HostWithoutBaseURL: without BASE_URL a proof's htu would
// be compared with the request's own Host header, which whoever sends the
// request chooses: a token and proof captured on their way to another
// server that takes the same tokens (svc-b.example) would pass here by
// naming that server in Host, within the proof's minute. So DPoP needs
// BASE_URL (New refuses it without), and with it that proof is refused.
func TestReviewDPoP2HostWithoutBaseURL(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	for _, mode := range []middleware.DPoPMode{middleware.DPoPAllowed, middleware.DPoPRequired} {
		cfg := testConfig(t, is)
		cfg.DPoP = mode
		if srv, err := New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "BASE_URL") {
			if err == nil {
				_ = srv.Close()
			}
			t.Errorf("DPOP_MODE=%s without BASE_URL: %v, want a refusal naming BASE_URL", mode, err)
		}
	}

	h := mustBuild(t, dpopConfig(t, is, middleware.DPoPRequired, "https://todo.example.com"), true)
	key := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", key)
	req := httptest.NewRequest("GET", "/todos", nil)
	req.Host = "svc-b.example"
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set("DPoP", key.Proof(t, "GET", "http://svc-b.example/todos", tok))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("a proof for another host, sent with that Host: %d, want 401", rec.Code)
	}
}

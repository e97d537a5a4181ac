package todoapi

import (
	"bytes"
	"log/slog"
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

// TestReviewDPoP2HostWithoutBaseURL: without BASE_URL a proof's htu is
// compared with the request's own Host header, which whoever sends the
// request chooses: a token and proof captured on their way to another
// server that takes the same tokens (svc-b.example) pass here by naming
// that server in Host, within the proof's minute. BASE_URL closes it; New
// says so in the log whenever DPoP is on without it.
func TestReviewDPoP2HostWithoutBaseURL(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	h := mustBuild(t, dpopConfig(t, is, middleware.DPoPRequired, ""), true)
	key := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", key)
	req := httptest.NewRequest("GET", "/todos", nil)
	req.Host = "svc-b.example"
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set("DPoP", key.Proof(t, "GET", "http://svc-b.example/todos", tok))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("a proof for another host, sent with that Host: %d (the weakness this test documents is gone; drop this part)", rec.Code)
	}

	for _, tt := range []struct {
		base string
		warn bool
	}{{"", true}, {"https://todo.example.com", false}} {
		var logs bytes.Buffer
		cfg := dpopConfig(t, is, middleware.DPoPAllowed, tt.base)
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		srv, err := New(t.Context(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		_ = srv.Close()
		if got := strings.Contains(logs.String(), "level=WARN") && strings.Contains(logs.String(), "BASE_URL"); got != tt.warn {
			t.Errorf("BASE_URL %q: a warning naming BASE_URL %t, want %t:\n%s", tt.base, got, tt.warn, logs.String())
		}
	}
}

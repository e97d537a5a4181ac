package middleware

// Review of the prm merge: failing proofs for the RFC 9728 configuration
// (see /work/wt/review-prm-REPORT.md).

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestReviewResourceNeedsAHostAndPort: a resource identifier, and an
// authorization server's issuer identifier, is a URL with a host (RFC 9728
// §1.2, RFC 8414 §2) and, if any, a port a client can dial. New accepted
// "https://:443" (no host: the challenge then sends clients to
// https://:443/.well-known/...), ports 0 and past 65535, and an empty port.
func TestReviewResourceNeedsAHostAndPort(t *testing.T) {
	for _, bad := range []string{
		"https://:443",
		"https://:443/mcp",
		"https://example.com:0",
		"https://example.com:99999",
		"https://example.com:",
		"https://example.com:/mcp",
	} {
		if u, _, _, err := ResourceMetadataURL(bad); err == nil {
			t.Errorf("ResourceMetadataURL(%q) accepted: %q", bad, u)
		}
		if err := checkServerURL(bad); err == nil {
			t.Errorf("AuthorizationServers %q accepted", bad)
		}
	}
	for _, good := range []string{"https://example.com:8443/mcp", "http://127.0.0.1:1", "https://[::1]:65535", "https://example.com"} {
		if _, _, _, err := ResourceMetadataURL(good); err != nil {
			t.Errorf("ResourceMetadataURL(%q): %v", good, err)
		}
		if err := checkServerURL(good); err != nil {
			t.Errorf("AuthorizationServers %q: %v", good, err)
		}
	}
}

// TestReviewMetadataIsWhole: the metadata is one small JSON document; a
// Range request gets it whole (200), not 206 partial content or a
// multipart/byteranges answer that a client or shared cache must
// reassemble, and that lets a single request multiply the answer.
func TestReviewMetadataIsWhole(t *testing.T) {
	m, err := (&ResourceMetadata{Resource: "https://api.example.com"}).build([]string{"https://as.example.com"}, dpopMeta{})
	if err != nil {
		t.Fatal(err)
	}
	a := &Authenticator{meta: m}
	for _, rng := range []string{"bytes=0-0", "bytes=0-0,1-1,2-2,3-3"} {
		r := httptest.NewRequest(http.MethodGet, "/.well-known/oauth-protected-resource", nil)
		r.Header.Set("Range", rng)
		w := httptest.NewRecorder()
		a.ResourceMetadataHandler().ServeHTTP(w, r)
		if w.Code != http.StatusOK || w.Body.String() != string(m.body) || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("Range %s: %d %s %q", rng, w.Code, w.Header().Get("Content-Type"), w.Body.String())
		}
	}
}

package middleware_test

import (
	"testing"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestReviewDPoPHostDelimiters: without DPoPBaseURL the expected htu is
// built from r.Host. net/http refuses a Host header with "/", "?", "#" or
// "@", but r.Host is also what other servers, HTTP/2 front ends and
// proxy-header middleware (X-Forwarded-Host) set; one such character in it
// turned the request's path into a query or fragment, or moved it, so
// that a proof made for "http://example.com/" passed for every path.
func TestReviewDPoPHostDelimiters(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, nil)
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	for _, tc := range []struct{ host, htu string }{
		{"example.com#", "http://example.com/"},
		{"example.com?", "http://example.com/"},
		{"example.com/admin", "http://example.com/admin/todos"},
		{"example.com/..", "http://example.com/todos"},
		{"example.com\\x", "http://example.com\\x/todos"},
		{"example.com x", "http://example.com x/todos"},
	} {
		r := dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", tc.htu, tok))
		r.Host = tc.host
		if w := do(a, r); w.Code != 401 {
			t.Errorf("Host %q, proof for %s, request /todos: %d %s, want 401", tc.host, tc.htu, w.Code, w.Body)
		}
	}
}

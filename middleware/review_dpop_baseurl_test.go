package middleware_test

import (
	"net/http/httptest"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestReviewDPoPBaseURLPrefix: with DPoPBaseURL naming a path prefix, the
// request's path is appended under it; dot segments in the request's path
// must not climb out of the prefix, or a proof made for another service
// behind the same origin (https://api.example.com/admin/…) is accepted
// here for the request path /../admin/….
func TestReviewDPoPBaseURLPrefix(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, func(c *middleware.Config) { c.DPoPBaseURL = "https://api.example.com/v1/" })
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	for _, target := range []string{"/../admin/users", "/%2e%2e/admin/users", "/todos/../../admin/users", "/./../admin/users"} {
		r := dpopRequest("GET", "/", "DPoP", tok, k.Proof(t, "GET", "https://api.example.com/admin/users", tok))
		r.URL.Path, r.URL.RawPath = "", ""
		r2 := httptest.NewRequest("GET", target, nil)
		r.URL, r.RequestURI = r2.URL, r2.RequestURI
		if w := do(a, r); w.Code != 401 {
			t.Errorf("proof for /admin/users (outside /v1) at %s: %d %s, want 401", target, w.Code, w.Body)
		}
	}
	// Within the prefix, dot segments are still normalised.
	r := dpopRequest("GET", "/a/../todos", "DPoP", tok, k.Proof(t, "GET", "https://api.example.com/v1/todos", tok))
	if w := do(a, r); w.Code != 200 {
		t.Errorf("/a/../todos under /v1: %d %s", w.Code, w.Body)
	}
}

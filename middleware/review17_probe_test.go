package middleware_test

import (
	"net/http/httptest"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestReview17ProofBesideUnboundTokenEveryPath: a DPoP proof beside a
// token that is not DPoP-bound is refused in introspection and hybrid
// modes (opaque token), on a miss and on a hit, with the header's name in
// any case and with an empty value.
func TestReview17ProofBesideUnboundTokenEveryPath(t *testing.T) {
	for _, mode := range []middleware.Mode{middleware.ModeIntrospection, middleware.ModeHybrid} {
		t.Run(string(mode), func(t *testing.T) {
			is := authtest.NewIssuer(t)
			a := introspectingAuthenticator(t, is, mode, nil)
			tok := is.OpaqueToken("bob", nil)
			k := authtest.NewDPoPKey(t, "ES256")
			if w := do(a, bearerRequest(tok)); w.Code != 200 {
				t.Fatalf("plain: %d %s", w.Code, w.Body)
			}
			for _, name := range []string{"DPoP", "dpop", "DPOP"} {
				for _, v := range []string{k.Proof(t, "GET", "http://example.com/todos", tok), ""} {
					r := httptest.NewRequest("GET", "/todos", nil)
					r.Header.Set("Authorization", "Bearer "+tok)
					r.Header.Set(name, v)
					if w := do(a, r); w.Code != 401 {
						t.Errorf("header %s value %.10q: %d, want 401", name, v, w.Code)
					}
				}
			}
		})
	}
}

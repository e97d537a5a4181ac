package middleware_test

import (
	"net/http"
	"runtime"
	"testing"
	"unsafe"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// TestCacheHitAllocations: a cache hit allocates only the request's new
// context, which points at the Principal in the cache entry, and
// r.WithContext's copy of the request, for a locally verified token and an
// introspected one alike (both sit in the same cache).
func TestCacheHitAllocations(t *testing.T) {
	is := authtest.NewIssuer(t)
	jwtAuth := mustAuthenticator(t, is, nil)
	introAuth := introspectingAuthenticator(t, is, middleware.ModeIntrospection, nil)
	for _, tc := range []struct {
		name  string
		a     *middleware.Authenticator
		token string
	}{
		{"jwt", jwtAuth, is.Token(t, "alice", nil)},
		{"introspection", introAuth, is.OpaqueToken("alice", nil)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var raw string
			h := tc.a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				p, _ := principal.From(r.Context())
				raw = p.RawToken()
				w.WriteHeader(http.StatusNoContent)
			}))
			r := bearerRequest(tc.token)
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, r) // verify once, then hit
			if w.status != http.StatusNoContent || raw != tc.token {
				t.Fatalf("priming request: status %d, RawToken matches: %v", w.status, raw == tc.token)
			}
			if allocs := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) }); allocs > 2 {
				t.Errorf("a cache hit allocates %v times, want at most 2 (the context and the request copy)", allocs)
			}
			if raw != tc.token {
				t.Error("RawToken on a cache hit is not the request's token")
			}
			// The Principal stays in the cache entry: what a hit allocates
			// is the request's copy and a context holding a pointer, not
			// a copy of the Principal. The least of a few tries, so that
			// another goroutine's allocation cannot fail the test.
			limit := uint64(unsafe.Sizeof(http.Request{})) + 64
			least := ^uint64(0)
			for range 3 {
				const n = 1000
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				for range n {
					h.ServeHTTP(w, r)
				}
				runtime.ReadMemStats(&after)
				least = min(least, (after.TotalAlloc-before.TotalAlloc)/n)
			}
			if least > limit {
				t.Errorf("a cache hit allocates %d bytes, want at most %d (the request copy and a context holding a pointer)", least, limit)
			}
		})
	}
}

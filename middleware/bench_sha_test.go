package middleware_test

import (
	"crypto/sha256"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

var sinkSum [sha256.Size]byte

// BenchmarkSHA256Token is crypto/sha256.Sum256 alone over a token of the
// size the cache-hit benchmarks use: an RS256 access token from authtest
// (jwt) and an opaque introspection token (opaque). Compared with
// BenchmarkCacheHit and BenchmarkIntrospectionCacheHit in the same run, it
// gives the share of the hit path spent hashing the token into its cache key.
func BenchmarkSHA256Token(b *testing.B) {
	is := authtest.NewIssuer(b)
	for _, tc := range []struct {
		name  string
		token string
	}{
		{"jwt", is.Token(b, "alice", nil)},
		{"opaque", is.OpaqueToken("alice", nil)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			buf := []byte(tc.token)
			b.ReportAllocs()
			for b.Loop() {
				sinkSum = sha256.Sum256(buf)
			}
			b.ReportMetric(float64(len(buf)), "token-bytes")
		})
	}
}

package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// discardWriter is a ResponseWriter that costs nothing, so the benchmarks
// measure the middleware rather than the recorder.
type discardWriter struct {
	h      http.Header
	status int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(status int)      { d.status = status }

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })

// BenchmarkBaseline is the trivial handler with no authentication.
func BenchmarkBaseline(b *testing.B) {
	r := httptest.NewRequest(http.MethodGet, "/todos", nil)
	r.Header.Set("Authorization", "Bearer x")
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		okHandler.ServeHTTP(w, r)
	}
}

// BenchmarkCacheHit is the warm path: the same token, verified once.
func BenchmarkCacheHit(b *testing.B) {
	is := authtest.NewIssuer(b)
	a := mustAuthenticator(b, is, nil)
	h := a.Require(okHandler)
	r := bearerRequest(is.Token(b, "alice", nil))
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r) // prime the cache
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

// BenchmarkCacheHitStepUp is BenchmarkCacheHit behind RequireStepUp too,
// with a token that meets it: what a step-up route adds to the warm path
// (two map lookups and a comparison, no allocation).
func BenchmarkCacheHitStepUp(b *testing.B) {
	is := authtest.NewIssuer(b)
	a := mustAuthenticator(b, is, nil)
	h := a.Require(a.RequireStepUp(middleware.StepUp{ACRValues: []string{"urn:example:acr:mfa"}, MaxAge: time.Hour})(okHandler))
	r := bearerRequest(is.Token(b, "alice", func(c jwt.MapClaims) {
		c["acr"] = "urn:example:acr:mfa"
		c["auth_time"] = time.Now().Unix()
	}))
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r) // prime the cache
	if w.status != http.StatusNoContent {
		b.Fatalf("status %d: the token does not meet the step-up", w.status)
	}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, r)
	}
}

const poolSize = 512

// tokenPool signs poolSize distinct valid tokens with alg.
func tokenPool(b *testing.B, is *authtest.Issuer, alg string) []string {
	b.Helper()
	pool := make([]string, poolSize)
	for i := range pool {
		pool[i] = is.Sign(b, alg, is.Claims("alice"), nil)
	}
	return pool
}

// BenchmarkCacheMiss verifies a new token every time: the cache is on, but
// its entries expire at once, so every request pays hashing, lookup,
// signature check, claim checks and the cache insert.
func BenchmarkCacheMiss(b *testing.B) {
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			is := authtest.NewIssuer(b)
			a := mustAuthenticator(b, is, func(c *middleware.Config) { c.CacheMaxAge = time.Nanosecond })
			h := a.Require(okHandler)
			pool := tokenPool(b, is, alg)
			reqs := make([]*http.Request, len(pool))
			for i, t := range pool {
				reqs[i] = bearerRequest(t)
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				h.ServeHTTP(w, reqs[i%poolSize])
				i++
			}
		})
	}
}

// BenchmarkBareParse is golang-jwt alone with the same keys and tokens: the
// floor the cache-miss path is compared with.
func BenchmarkBareParse(b *testing.B) {
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			is := authtest.NewIssuer(b)
			pub := is.KeyFor(alg).Private.Public()
			pool := tokenPool(b, is, alg)
			keyfunc := func(*jwt.Token) (any, error) { return pub, nil }
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := jwt.Parse(pool[i%poolSize], keyfunc); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkIntrospectionCacheHit is the warm introspection path, to compare
// with BenchmarkCacheHit: "jwt-token" introspects the very token
// BenchmarkCacheHit verifies locally (same length, so the same hashing
// cost), "opaque" a 52-byte opaque token.
func BenchmarkIntrospectionCacheHit(b *testing.B) {
	is := authtest.NewIssuer(b)
	a := introspectingAuthenticator(b, is, middleware.ModeIntrospection, nil)
	h := a.Require(okHandler)
	for _, bc := range []struct{ name, token string }{
		{"jwt-token", is.Token(b, "alice", nil)},
		{"opaque", is.OpaqueToken("alice", nil)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := bearerRequest(bc.token)
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, r) // prime the cache
			if w.status != http.StatusNoContent {
				b.Fatalf("priming request: %d", w.status)
			}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, r)
			}
		})
	}
}

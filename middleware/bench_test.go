package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
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

// BenchmarkBareParseKeyfunc is golang-jwt with keyfunc v3 over the issuer's
// JWKS in a jwkset memory storage, as their documentation sets them up, and
// the checks golang-jwt itself can make that the middleware makes too:
// the algorithm, strict base64url, iss, aud, exp required, iat, and the
// same leeway. It is the fairer floor for BenchmarkCacheMiss: the key is
// looked up by kid on every parse, as the middleware's is.
func BenchmarkBareParseKeyfunc(b *testing.B) {
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			is := authtest.NewIssuer(b)
			parser, kf := keyfuncParser(b, is, alg)
			pool := tokenPool(b, is, alg)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := parser.Parse(pool[i%poolSize], kf.Keyfunc); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// keyfuncParser is golang-jwt with keyfunc v3 over is's JWKS, as their
// documentation sets them up, making the checks the middleware makes that
// golang-jwt can: the algorithm, strict base64url, iss, aud, exp required,
// iat, and the same leeway.
func keyfuncParser(b *testing.B, is *authtest.Issuer, alg string) (*jwt.Parser, keyfunc.Keyfunc) {
	b.Helper()
	kf, err := keyfunc.NewJWKSetJSON(is.JWKS())
	if err != nil {
		b.Fatal(err)
	}
	return jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithIssuer(is.URL),
		jwt.WithAudience(authtest.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(middleware.DefaultClockSkew),
		jwt.WithStrictDecoding(),
	), kf
}

// BenchmarkCacheMissVsBare runs a cache miss (as BenchmarkCacheMiss), a
// bare parse (as BenchmarkBareParse) and a keyfunc parse (as
// BenchmarkBareParseKeyfunc) in turn in one loop, timing each, so that the
// load of a shared machine falls on the three alike; run apart, their
// timings drift by more than the differences between them. ns/op is the
// sum of the three. It reports each one's median time (miss-ns, bare-ns,
// keyfunc-ns), which a neighbour's burst moves least, and the ratios of
// the medians and of the means (mean-miss/bare, mean-miss/keyfunc), which
// count the rare slow runs, garbage collection among them, too.
func BenchmarkCacheMissVsBare(b *testing.B) {
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
			pub := is.KeyFor(alg).Private.Public()
			direct := func(*jwt.Token) (any, error) { return pub, nil }
			parser, kf := keyfuncParser(b, is, alg)
			runs := [3]func(i int){
				func(i int) {
					h.ServeHTTP(w, reqs[i%poolSize])
					if w.status != http.StatusNoContent {
						b.Fatalf("status %d", w.status)
					}
				},
				func(i int) {
					if _, err := jwt.Parse(pool[i%poolSize], direct); err != nil {
						b.Fatal(err)
					}
				},
				func(i int) {
					if _, err := parser.Parse(pool[i%poolSize], kf.Keyfunc); err != nil {
						b.Fatal(err)
					}
				},
			}
			var took [3][]time.Duration
			i := 0
			for b.Loop() {
				// Each goes first in turn, and each parses its own token.
				for k := range runs {
					j := (i + k) % len(runs)
					start := time.Now()
					runs[j](i + 100*j)
					took[j] = append(took[j], time.Since(start))
				}
				i++
			}
			var median, mean [3]float64
			for j, d := range took {
				slices.Sort(d)
				median[j] = float64(d[len(d)/2].Nanoseconds())
				var sum time.Duration
				for _, x := range d {
					sum += x
				}
				mean[j] = float64(sum.Nanoseconds()) / float64(len(d))
			}
			b.ReportMetric(median[0], "miss-ns")
			b.ReportMetric(median[1], "bare-ns")
			b.ReportMetric(median[2], "keyfunc-ns")
			b.ReportMetric(median[0]/median[1], "miss/bare")
			b.ReportMetric(median[0]/median[2], "miss/keyfunc")
			b.ReportMetric(mean[0]/mean[1], "mean-miss/bare")
			b.ReportMetric(mean[0]/mean[2], "mean-miss/keyfunc")
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

// BenchmarkDPoPCacheHit is BenchmarkCacheHit for a DPoP-bound token: the
// token is in the cache, the proof (a new one for every request, all made
// before the timer starts: stopping the timer per request would cost more
// than what is measured) is verified each time, per proof algorithm.
// Compare with BenchmarkCacheHit for the cost of the proof.
func BenchmarkDPoPCacheHit(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256"} {
		b.Run(alg, func(b *testing.B) {
			is := authtest.NewIssuer(b)
			a := mustAuthenticator(b, is, func(c *middleware.Config) { c.DPoP = middleware.DPoPAllowed })
			h := a.Require(okHandler)
			k := authtest.NewDPoPKey(b, alg)
			tok := is.MintDPoP(b, "alice", k)
			r := httptest.NewRequest(http.MethodGet, "/todos", nil)
			r.Header.Set("Authorization", "DPoP "+tok)
			w := &discardWriter{h: http.Header{}}
			r.Header.Set("DPoP", k.Proof(b, "GET", "http://example.com/todos", tok))
			h.ServeHTTP(w, r) // prime the cache
			if w.status != http.StatusNoContent {
				b.Fatalf("priming request: %d", w.status)
			}
			proofs := make([]string, b.N)
			for i := range proofs {
				proofs[i] = k.Proof(b, "GET", "http://example.com/todos", tok)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.Header["Dpop"][0] = proofs[i]
				h.ServeHTTP(w, r)
			}
			b.StopTimer()
			if w.status != http.StatusNoContent {
				b.Fatalf("status %d", w.status)
			}
		})
	}
}

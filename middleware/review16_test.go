package middleware_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// footerServer is an RFC 7662 endpoint for opaque tokens of the form
// "<sub>.<random>.<footer>" where footer is the same for every token the
// server issues (as a PASETO token's footer carrying a PASERK key id is,
// or any opaque format ending in a fixed issuer/tenant/key-id part).
func footerServer(t *testing.T, is *authtest.Issuer, footer string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.PostFormValue("token")
		sub, rest, _ := strings.Cut(tok, ".")
		if !strings.HasSuffix(rest, "."+footer) {
			_, _ = w.Write([]byte(`{"active":false}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "sub": sub, "scope": "read:" + sub, "iss": is.URL, "aud": authtest.Audience, "exp": time.Now().Add(time.Hour).Unix()})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// paserkFooter is the base64url of {"kid":"k4.pid.<43 chars>"}: 80
// characters, the same at the end of every token of one key.
const paserkFooter = "eyJraWQiOiJrNC5waWQuY0xTZ2xOUDU2c2o4Q0lzNWlDOHNBTzBnN2h0SnN2X0dETjdmZUxsOENEbyJ9"

// TestReview16SharedTailTargetedEviction (attacker review of issue 16's
// cache key): when the cache keyed every token by its last 64 bytes, one
// caller's request evicted another caller's entry whenever their opaque
// tokens ended alike (a PASETO footer), however empty the cache was. An
// introspected token is now keyed by all of it, in introspection and in
// hybrid mode.
func TestReview16SharedTailTargetedEviction(t *testing.T) {
	for _, mode := range []middleware.Mode{middleware.ModeIntrospection, middleware.ModeHybrid} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) { testSharedTailTargetedEviction(t, mode) })
	}
}

func testSharedTailTargetedEviction(t *testing.T, mode middleware.Mode) {
	is := authtest.NewIssuer(t)
	srv := footerServer(t, is, paserkFooter)
	var cached atomic.Bool
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Mode = mode
		c.Introspector = &introspection.Client{Endpoint: srv.URL, ClientID: "rs", ClientSecret: "secret", Timeout: time.Second, Logger: quiet()}
		c.OnOutcome = func(o middleware.Outcome) { cached.Store(o.Cached) }
	})
	victim := fmt.Sprintf("alice.%d.%s", rand.Uint64(), paserkFooter)
	attacker := fmt.Sprintf("mallory.%d.%s", rand.Uint64(), paserkFooter)

	if w := do(a, bearerRequest(victim)); w.Code != 200 || w.Body.String() != "alice" {
		t.Fatalf("victim's first request: %d %q", w.Code, w.Body.String())
	}
	if w := do(a, bearerRequest(victim)); !cached.Load() {
		t.Fatalf("victim's second request was not a cache hit (%d)", w.Code)
	}
	// The attacker's own, valid, token: one request.
	if w := do(a, bearerRequest(attacker)); w.Code != 200 || w.Body.String() != "mallory" {
		t.Fatalf("attacker's request: %d %q", w.Code, w.Body.String())
	}
	w := do(a, bearerRequest(victim))
	if w.Code != 200 || w.Body.String() != "alice" {
		t.Fatalf("victim after attacker: %d %q (identity confusion!)", w.Code, w.Body.String())
	}
	if !cached.Load() {
		t.Errorf("one request with another caller's token evicted the victim's entry from a cache of %d holding 2 tokens: tokens ending in the same 64 bytes share one slot", middleware.DefaultCacheSize)
	}

	// And the whole cache collapses to one entry for such a format: 20
	// callers in turn, default cache size, get no hits at all.
	toks := make([]string, 20)
	for i := range toks {
		toks[i] = fmt.Sprintf("user%d.%d.%s", i, rand.Uint64(), paserkFooter)
	}
	hits := 0
	for round := range 5 {
		for i, tok := range toks {
			w := do(a, bearerRequest(tok))
			if w.Code != 200 || w.Body.String() != fmt.Sprintf("user%d", i) {
				t.Fatalf("round %d user%d: %d %q", round, i, w.Code, w.Body.String())
			}
			if cached.Load() {
				hits++
			}
		}
	}
	if hits < 80 {
		t.Errorf("20 callers in turn, 100 requests: %d cache hits, want 80 (the cache holds one of them at a time)", hits)
	}
}

// TestReview16NoCrossCallerUnderChurn: many callers at once over a real
// server, through a tiny cache (constant eviction and same-key
// replacement), JWTs by header and cookie, DPoP-bound JWTs, and opaque
// tokens sharing their tail (hybrid mode), through Require and Optional:
// every handler must see its own subject, scopes, source, binding, JKT and
// raw token, and changing its copy (or ValidateClaims changing its own)
// reaches nobody. Run with -race.
func TestReview16NoCrossCallerUnderChurn(t *testing.T) {
	is := authtest.NewIssuer(t)
	intro := footerServer(t, is, paserkFooter)
	var bad atomic.Int64
	var firstBad atomic.Value
	fail := func(s string) {
		bad.Add(1)
		firstBad.CompareAndSwap(nil, s)
	}
	describe := func(p principal.Principal) string {
		return fmt.Sprintf("%s|%s|%s|%s|%s|%v", p.Subject, p.Source, p.Binding, p.JKT, p.RawToken(), p.HasScope("read:"+p.Subject))
	}
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Mode = middleware.ModeHybrid
		c.Introspector = &introspection.Client{Endpoint: intro.URL, ClientID: "rs", ClientSecret: "secret", Timeout: 5 * time.Second, Logger: quiet()}
		c.CacheSize = 3
		c.DPoP = middleware.DPoPAllowed
		c.ValidateClaims = func(ctx context.Context, p principal.Principal) error {
			if p.Source != principal.SourceHeader && p.Source != principal.SourceCookie {
				fail("ValidateClaims saw source " + string(p.Source))
			}
			// The hook's own copy: changes must not stick.
			p.Subject, p.Source, p.JKT, p.Binding = "mallory", "evil", "x", "y"
			_ = p.WithToken("stolen")
			return nil
		}
	})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := principal.From(r.Context())
		want := r.Header.Get("X-Want")
		if !ok {
			fail("no principal for " + want)
		} else if got := describe(p); got != want {
			fail(fmt.Sprintf("got %q want %q", got, want))
		}
		p.Subject, p.Source, p.JKT, p.Binding = "mallory", "evil", "x", "y"
		if again, _ := principal.From(r.Context()); describe(again) != want {
			fail("a handler's change reached the context")
		}
		_, _ = io.WriteString(w, "ok")
	})
	mux := http.NewServeMux()
	mux.Handle("/todos", a.Require(handler))
	mux.Handle("/opt", a.Optional(handler))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	type caller struct {
		kind, tok, want string
		key             *authtest.DPoPKey
	}
	var callers []caller
	for i := range 6 {
		sub := fmt.Sprintf("user%d", i)
		jt := is.Mint(t, sub, authtest.WithScopes("read:"+sub))
		callers = append(callers,
			caller{kind: "header", tok: jt, want: fmt.Sprintf("%s|header|||%s|true", sub, jt)},
			caller{kind: "cookie", tok: jt, want: fmt.Sprintf("%s|cookie|||%s|true", sub, jt)})
		k := authtest.NewDPoPKey(t, "ES256")
		dt := is.MintDPoP(t, sub, k, authtest.WithScopes("read:"+sub))
		callers = append(callers, caller{kind: "dpop", tok: dt, key: k, want: fmt.Sprintf("%s|header|dpop|%s|%s|true", sub, k.Thumbprint(), dt)})
		ot := fmt.Sprintf("%s.%d.%s", sub, rand.Uint64(), paserkFooter)
		callers = append(callers,
			caller{kind: "header", tok: ot, want: fmt.Sprintf("%s|header|||%s|true", sub, ot)},
			caller{kind: "cookie", tok: ot, want: fmt.Sprintf("%s|cookie|||%s|true", sub, ot)})
	}
	client := srv.Client()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for range 150 {
				c := callers[rng.IntN(len(callers))]
				path := "/todos"
				if rng.IntN(2) == 0 {
					path = "/opt"
				}
				req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
				req.Header.Set("X-Want", c.want)
				switch c.kind {
				case "header":
					req.Header.Set("Authorization", "Bearer "+c.tok)
				case "cookie":
					req.AddCookie(&http.Cookie{Name: "__Host-access_token", Value: c.tok})
					req.Header.Set("X-CSRF", "1")
				case "dpop":
					req.Header.Set("Authorization", "DPoP "+c.tok)
					req.Header.Set("DPoP", c.key.Proof(t, http.MethodGet, srv.URL+path, c.tok))
				}
				resp, err := client.Do(req)
				if err != nil {
					fail(err.Error())
					return
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					fail(fmt.Sprintf("%s %s: %d %s %s", c.kind, c.want, resp.StatusCode, body, resp.Header.Get("WWW-Authenticate")))
				}
			}
		})
	}
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d bad answers; first: %v", n, firstBad.Load())
	}
}

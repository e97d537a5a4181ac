// Command loadserver serves one trivial JSON handler behind several token
// checks, one path each, for the load benchmark (bench/cmd/loadtest, make
// loadtest):
//
//	/none              no authentication (the baseline)
//	/bare              golang-jwt v5 + keyfunc v3: jwt.Parse on every request
//	/auth0             auth0/go-jwt-middleware v3.1.0
//	/tollgate          Tollgate's middleware, defaults (verified-token cache on)
//	/tollgate-nocache  Tollgate with CacheSize: middleware.Off
//
// each served at its name padded with '-' to one length (internal/route),
// so that routing costs them alike; unprotected, /gc (a full garbage collection, for
// loadtest -instructions) and /stats: how many requests each Tollgate path
// authenticated and how many of them its verified-token cache answered
// (counted through Config.OnOutcome), as JSON, so that the load test can
// report the cache's hit rate next to its throughput.
//
// Every protected path checks the same things: the signature against the
// issuer's JWKS, iss, aud, exp and an algorithm allowlist. The issuer is an
// in-process authtest server on loopback; the tokens are signed with -alg
// (RS256 by default, 2048-bit; also PS256, ES256 or EdDSA), and every
// protected path allows that algorithm only. The tokens it signed are written to -tokens-dir: one.txt (one token) and, for
// each number N in -distinct, many-N.txt (N distinct tokens, one a line;
// the smaller files are prefixes of the larger). The server listens on loopback
// only, prints "listening http://ADDR" on stdout when ready, and stops when
// its stdin closes (its parent is gone), on SIGINT/SIGTERM, or after
// -max-lifetime, whichever comes first.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	jwtmiddleware "github.com/auth0/go-jwt-middleware/v3"
	"github.com/auth0/go-jwt-middleware/v3/jwks"
	"github.com/auth0/go-jwt-middleware/v3/validator"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/bench/internal/route"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// tokenLifetime outlives any bounded run, so no token expires mid-measurement
// (authtest's default is five minutes).
const tokenLifetime = 2 * time.Hour

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on")
	dir := flag.String("tokens-dir", "", "directory for one.txt and many.txt (required)")
	distinctList := flag.String("distinct", "2000", "comma-separated numbers of distinct tokens, one many-N.txt each")
	maxLifetime := flag.Duration("max-lifetime", 30*time.Minute, "stop after this long in any case")
	alg := flag.String("alg", "RS256", "signing algorithm of the tokens: RS256, PS256, ES256 or EdDSA")
	flag.Parse()
	distinct, err := parseCounts(*distinctList)
	if *dir == "" || err != nil {
		log.Fatalf("loadserver: -tokens-dir is required and -distinct must list positive numbers (%v)", err)
	}
	if !slices.Contains(algorithms, *alg) {
		log.Fatalf("loadserver: -alg %q: one of %s", *alg, strings.Join(algorithms, ", "))
	}
	if err := run(*addr, *dir, *alg, distinct, *maxLifetime); err != nil {
		log.Fatalf("loadserver: %v", err)
	}
}

// parseCounts parses a comma-separated list of positive numbers.
func parseCounts(list string) ([]int, error) {
	var ns []int
	for f := range strings.SplitSeq(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

// algorithms are the -alg values: the asymmetric algorithms authtest's
// issuer has a key for.
var algorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

func run(addr, dir, alg string, distinct []int, maxLifetime time.Duration) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %q: loopback addresses only", addr)
	}

	tb := &fatalTB{}
	defer tb.cleanup()
	is := authtest.NewIssuer(tb)
	jwksURL := is.URL + "/jwks"

	if err := writeTokens(tb, is, dir, alg, distinct); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, maxLifetime)
	defer cancel()

	mux := http.NewServeMux()
	mux.Handle("GET "+route.Path("/none"), handler)

	bare, err := bareJWT(ctx, jwksURL, is.URL, alg)
	if err != nil {
		return fmt.Errorf("bare: %w", err)
	}
	mux.Handle("GET "+route.Path("/bare"), bare)

	auth0, err := auth0JWT(jwksURL, is.URL, alg)
	if err != nil {
		return fmt.Errorf("auth0: %w", err)
	}
	mux.Handle("GET "+route.Path("/auth0"), auth0)

	stats := map[string]*counts{"/tollgate": {}, "/tollgate-nocache": {}}
	cached, err := middleware.New(ctx, middleware.Config{Issuer: is.URL, Audiences: []string{authtest.Audience}, JWKSURL: jwksURL,
		Algorithms: []string{alg}, OnOutcome: stats["/tollgate"].add})
	if err != nil {
		return fmt.Errorf("tollgate: %w", err)
	}
	mux.Handle("GET "+route.Path("/tollgate"), cached.Require(handler))

	uncached, err := middleware.New(ctx, middleware.Config{Issuer: is.URL, Audiences: []string{authtest.Audience}, JWKSURL: jwksURL, CacheSize: middleware.Off,
		Algorithms: []string{alg}, OnOutcome: stats["/tollgate-nocache"].add})
	if err != nil {
		return fmt.Errorf("tollgate-nocache: %w", err)
	}
	mux.Handle("GET "+route.Path("/tollgate-nocache"), uncached.Require(handler))

	// /gc runs a full garbage collection, sweeping included, before it
	// answers: loadtest -instructions runs this server with GOGC=off and
	// calls it before and at the end of every window, so that each window
	// pays for exactly one collection, of its own garbage.
	mux.HandleFunc("GET /gc", func(w http.ResponseWriter, _ *http.Request) {
		runtime.GC()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		out := make(map[string]Counts, len(stats))
		for path, c := range stats {
			out[path] = c.total()
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	// The parent holds our stdin; EOF means it is gone, so we go too.
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	go func() {
		<-ctx.Done()
		shutdownCtx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		_ = srv.Shutdown(shutdownCtx)
	}()
	fmt.Printf("listening http://%s\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// counts are one Tollgate path's authentications, counted by OnOutcome in
// shards, each on a cache line of its own and picked at random (the
// runtime's per-P generator): one pair of shared counters would bounce
// between the CPUs on every request and charge the measured path for the
// measurement.
type counts struct{ shards [countShards]countShard }

const countShards = 16

type countShard struct {
	requests, cached atomic.Int64
	_                [48]byte
}

func (c *counts) add(o middleware.Outcome) {
	s := &c.shards[rand.Uint32()%countShards]
	s.requests.Add(1)
	if o.Cached {
		s.cached.Add(1)
	}
}

// total sums the shards.
func (c *counts) total() Counts {
	var t Counts
	for i := range c.shards {
		t.Requests += c.shards[i].requests.Load()
		t.Cached += c.shards[i].cached.Load()
	}
	return t
}

// Counts is one path's entry in /stats: requests authenticated (accepted or
// not) and how many of them the verified-token cache answered.
type Counts struct {
	Requests int64 `json:"requests"`
	Cached   int64 `json:"cached"`
}

// handler is the trivial JSON endpoint every path serves.
var handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}` + "\n"))
})

// bareJWT is what a service would write by hand with golang-jwt v5 and
// keyfunc v3: a full jwt.Parse on every request, with the same checks as the
// others (alg allowlist, iss, aud, exp required, 60 s leeway as Tollgate's
// default clock skew).
func bareJWT(ctx context.Context, jwksURL, issuer, alg string) (http.Handler, error) {
	k, err := keyfunc.NewDefaultCtx(ctx, []string{jwksURL})
	if err != nil {
		return nil, err
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{alg}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(authtest.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(60*time.Second),
	)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if _, err := parser.Parse(raw, k.Keyfunc); err != nil {
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		handler.ServeHTTP(w, r)
	}), nil
}

// auth0JWT is auth0/go-jwt-middleware v3.1.0 with its caching JWKS provider
// and its validator set to the same issuer, audience and algorithm.
func auth0JWT(jwksURL, issuer, alg string) (http.Handler, error) {
	iu, err := url.Parse(issuer)
	if err != nil {
		return nil, err
	}
	ju, err := url.Parse(jwksURL)
	if err != nil {
		return nil, err
	}
	provider, err := jwks.NewCachingProvider(jwks.WithIssuerURL(iu), jwks.WithCustomJWKSURI(ju))
	if err != nil {
		return nil, err
	}
	v, err := validator.New(
		validator.WithKeyFunc(provider.KeyFunc),
		validator.WithAlgorithm(validator.SignatureAlgorithm(alg)),
		validator.WithIssuer(issuer),
		validator.WithAudience(authtest.Audience),
		validator.WithAllowedClockSkew(60*time.Second),
	)
	if err != nil {
		return nil, err
	}
	m, err := jwtmiddleware.New(jwtmiddleware.WithValidator(v))
	if err != nil {
		return nil, err
	}
	return m.CheckJWT(handler), nil
}

// writeTokens writes one.txt (one token) and, for every n in distinct,
// many-n.txt (n distinct tokens, one a line), all signed with alg, valid for
// tokenLifetime. The tokens are signed on every CPU: 100,000 RS256
// signatures take a minute or more on one.
func writeTokens(tb authtest.TB, is *authtest.Issuer, dir, alg string, distinct []int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	mint := func(sub string) string {
		c := is.Claims(sub)
		c["exp"] = time.Now().Add(tokenLifetime).Unix()
		return is.Sign(tb, alg, c, nil)
	}
	if err := os.WriteFile(filepath.Join(dir, "one.txt"), []byte(mint("user-one")+"\n"), 0o600); err != nil {
		return err
	}
	tokens := make([]string, slices.Max(distinct))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(tokens); i = int(next.Add(1) - 1) {
				tokens[i] = mint("user-" + strconv.Itoa(i))
			}
		})
	}
	wg.Wait()
	for _, n := range distinct {
		var b strings.Builder
		for _, t := range tokens[:n] {
			b.WriteString(t)
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("many-%d.txt", n)), []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// fatalTB lets authtest, written for tests, run in a program: a failure ends
// the program, and cleanups run when it returns.
type fatalTB struct{ cleanups []func() }

func (*fatalTB) Helper()                           {}
func (*fatalTB) Fatal(args ...any)                 { log.Fatal(args...) }
func (*fatalTB) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }
func (t *fatalTB) Cleanup(f func())                { t.cleanups = append(t.cleanups, f) }
func (t *fatalTB) cleanup() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

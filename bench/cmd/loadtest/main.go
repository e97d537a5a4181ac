// Command loadtest measures the throughput of loadserver's endpoints from a
// second process (make loadtest). It starts loadserver on loopback, then, for
// every round, runs a load generator against each endpoint in turn (the order
// rotates from round to round), in several scenarios: every request with the
// same token, and, for each number in -distinct, requests spread over that
// many distinct tokens. It prints a markdown table of requests/s as a ratio
// to the unprotected endpoint of the same round and scenario (median over
// rounds, with the min–max spread), the raw medians, and the hit rate of
// Tollgate's verified-token cache in each run (from loadserver's /stats,
// read before and after it). Ratios, not absolute numbers, because the
// machine is shared and noisy: neighbours slow all endpoints of a round
// alike.
//
// -pick says how a request chooses among the distinct tokens: cycle (each
// connection or wrk thread in turn through the list, from a place of its
// own), uniform (at random), or zipf (at random with Zipf's law, s = 1.1:
// the first tokens of the list are the heavy clients of real traffic, the
// rest a long tail). -endpoints limits the run to some paths; the
// unprotected one is always measured, as the baseline.
//
// The load generator is wrk when it is on PATH (or -wrk names it), with a Lua
// script that picks the distinct tokens; otherwise, or with -gen go, a small
// Go generator in this process with the same connections and duration. The
// table says which was used. The server is killed by its PID at the end, on
// Ctrl-C, and on any error.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tollgate-dev/tollgate/bench/internal/route"
)

// endpoint is one of loadserver's paths.
type endpoint struct{ path, label string }

// endpoints are loadserver's paths, the baseline first, with their labels.
var endpoints = []endpoint{
	{"/none", "unprotected"},
	{"/bare", "golang-jwt v5 + keyfunc v3, parse on every request"},
	{"/auth0", "auth0/go-jwt-middleware v3.1.0"},
	{"/tollgate", "Tollgate (defaults: cache on)"},
	{"/tollgate-nocache", "Tollgate with `CacheSize: middleware.Off` (a signature check per request)"},
}

// scenario is one way of choosing tokens.
type scenario struct {
	name string
	file string // one.txt or many-N.txt in the tokens directory
}

// zipfS is the exponent of -pick zipf.
const zipfS = 1.1

// settings are the command's flags.
type settings struct {
	server      string
	alg         string
	rounds      int
	duration    time.Duration
	threads     int
	connections int
	distinct    string
	counts      []int
	pick        string
	paths       string
	gen         string
	wrk         string
	// instructions > 0: count instructions per request under callgrind
	// (instr.go) instead of measuring throughput.
	instructions int
}

func main() {
	var s settings
	flag.StringVar(&s.server, "server", "", "path of the loadserver binary (required)")
	flag.IntVar(&s.rounds, "rounds", 3, "rounds; each runs every endpoint in every scenario once")
	flag.DurationVar(&s.duration, "duration", 5*time.Second, "length of each load run")
	flag.IntVar(&s.threads, "threads", 2, "load generator threads (wrk -t)")
	flag.IntVar(&s.connections, "connections", 32, "open connections (wrk -c)")
	flag.StringVar(&s.distinct, "distinct", "2000", "comma-separated numbers of distinct tokens, one scenario each")
	flag.StringVar(&s.pick, "pick", "cycle", "how requests choose among distinct tokens: cycle, uniform or zipf")
	flag.StringVar(&s.paths, "endpoints", "", "comma-separated paths to measure besides /none (default: all)")
	flag.StringVar(&s.gen, "gen", "auto", "load generator: auto (wrk if found, else go), wrk or go")
	flag.StringVar(&s.wrk, "wrk", "wrk", "the wrk binary")
	flag.StringVar(&s.alg, "alg", "RS256", "signing algorithm of the tokens (loadserver -alg): RS256, PS256, ES256 or EdDSA")
	flag.IntVar(&s.instructions, "instructions", 0, "count instructions per request under valgrind's callgrind, over this many requests per run, instead of measuring throughput (see instr.go)")
	flag.Parse()
	if s.server == "" || s.rounds < 1 || s.duration < time.Second || s.threads < 1 || s.connections < s.threads {
		log.Fatal("loadtest: need -server, -rounds ≥ 1, -duration ≥ 1s, -threads ≥ 1, -connections ≥ -threads")
	}
	for f := range strings.SplitSeq(s.distinct, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			log.Fatalf("loadtest: -distinct %q: want positive numbers, comma-separated", s.distinct)
		}
		s.counts = append(s.counts, n)
	}
	if !slices.Contains([]string{"cycle", "uniform", "zipf"}, s.pick) {
		log.Fatalf("loadtest: -pick %q: want cycle, uniform or zipf", s.pick)
	}
	if s.paths != "" {
		keep := strings.Split(s.paths, ",")
		for _, p := range keep {
			if !slices.ContainsFunc(endpoints, func(e endpoint) bool { return e.path == p }) {
				log.Fatalf("loadtest: -endpoints: unknown path %q", p)
			}
		}
		endpoints = slices.DeleteFunc(endpoints, func(e endpoint) bool { return e.path != "/none" && !slices.Contains(keep, e.path) })
	}
	switch s.gen {
	case "auto":
		if p, err := exec.LookPath(s.wrk); err == nil {
			s.gen, s.wrk = "wrk", p
		} else {
			s.gen = "go"
		}
	case "wrk":
		p, err := exec.LookPath(s.wrk)
		if err != nil {
			log.Fatalf("loadtest: -gen wrk: %v", err)
		}
		s.wrk = p
	case "go":
	default:
		log.Fatalf("loadtest: -gen %q: want auto, wrk or go", s.gen)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if s.instructions > 0 {
		if err := runInstructions(ctx, s); err != nil {
			log.Fatalf("loadtest: %v", err)
		}
		return
	}
	if err := run(ctx, s); err != nil {
		log.Fatalf("loadtest: %v", err)
	}
}

// withServer starts loadserver (startServer) with its tokens in a
// temporary directory, runs f with that directory, the server's base URL
// and its PID, and then kills the server by its PID and removes the
// directory, whatever happened.
func withServer(ctx context.Context, s settings, f func(dir, base string, pid int) error) error {
	dir, err := os.MkdirTemp("", "tollgate-loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	base, srv, err := startServer(ctx, s, dir)
	if err != nil {
		return err
	}
	// Killed by PID whatever happens; closing its stdin would also stop it.
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	return f(dir, base, srv.Process.Pid)
}

// scenariosOf is one token, then each number of distinct tokens in
// s.counts chosen the way pick says.
func scenariosOf(s settings, pick string) []scenario {
	scenarios := []scenario{{"one token", "one.txt"}}
	for _, n := range s.counts {
		scenarios = append(scenarios, scenario{fmt.Sprintf("%d distinct tokens (%s)", n, pick), fmt.Sprintf("many-%d.txt", n)})
	}
	return scenarios
}

func run(ctx context.Context, s settings) error {
	return withServer(ctx, s, func(dir, base string, _ int) error { return runLoad(ctx, s, dir, base) })
}

// runLoad is run with the server started.
func runLoad(ctx context.Context, s settings, dir, base string) error {
	scenarios := scenariosOf(s, s.pick)
	load, err := newLoader(s, dir)
	if err != nil {
		return err
	}

	// Warm-up: one short run per endpoint and scenario, so that JWKS
	// fetches, first connections and the runtime's warm-up do not land in
	// round 1.
	for _, sc := range scenarios {
		for _, ep := range endpoints {
			if _, err := load(ctx, base+route.Path(ep.path), sc, time.Second); err != nil {
				return fmt.Errorf("warm-up %s, %s: %w", ep.path, sc.name, err)
			}
		}
	}

	// rps[scenario][endpoint][round], and the cache's hit rate in %
	// (NaN for an endpoint without cache statistics).
	rps := make([][][]float64, len(scenarios))
	hits := make([][][]float64, len(scenarios))
	for i := range rps {
		rps[i] = make([][]float64, len(endpoints))
		hits[i] = make([][]float64, len(endpoints))
	}
	for round := range s.rounds {
		for si, sc := range scenarios {
			for k := range endpoints {
				ei := (k + round) % len(endpoints)
				path := endpoints[ei].path
				before, err := readStats(ctx, base)
				if err != nil {
					return err
				}
				v, err := load(ctx, base+route.Path(path), sc, s.duration)
				if err != nil {
					return fmt.Errorf("round %d %s, %s: %w", round+1, path, sc.name, err)
				}
				after, err := readStats(ctx, base)
				if err != nil {
					return err
				}
				h := math.NaN()
				if a, ok := after[path]; ok && a.Requests > before[path].Requests {
					h = 100 * float64(a.Cached-before[path].Cached) / float64(a.Requests-before[path].Requests)
				}
				rps[si][ei] = append(rps[si][ei], v)
				hits[si][ei] = append(hits[si][ei], h)
				fmt.Fprintf(os.Stderr, "round %d/%d  %-34s %-18s %10.0f req/s  cache hits %5.1f%%\n", round+1, s.rounds, sc.name, path, v, h)
			}
		}
	}
	printTable(os.Stdout, s, scenarios, rps, hits)
	return nil
}

// stats is loadserver's /stats: per Tollgate path, requests authenticated
// and cache hits among them.
type stats map[string]struct {
	Requests int64 `json:"requests"`
	Cached   int64 `json:"cached"`
}

func readStats(ctx context.Context, base string) (stats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/stats", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("stats: status %d", resp.StatusCode)
	}
	var st stats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	return st, nil
}

// startServer starts loadserver and waits for its address. Its stdin is a
// pipe this process holds, so it also stops if this process dies.
func startServer(ctx context.Context, s settings, dir string) (string, *exec.Cmd, error) {
	cmd := exec.Command(s.server, "-tokens-dir", dir, "-distinct", s.distinct, "-alg", s.alg)
	if s.instructions > 0 {
		cmd = instrServer(s, dir)
	}
	cmd.Stderr = os.Stderr
	if _, err := cmd.StdinPipe(); err != nil {
		return "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening "); ok {
				addr <- a
				break
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case a := <-addr:
		return a, cmd, nil
	case <-time.After(startTimeout(s)):
		err = fmt.Errorf("loadserver did not start within %s", startTimeout(s))
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return "", nil, err
}

// startTimeout is how long loadserver may take to start: it signs every
// token first, RS256 at a few milliseconds each on a busy 2-CPU machine
// (100,000 took 2.5 minutes).
func startTimeout(s settings) time.Duration {
	d := 60*time.Second + time.Duration(slices.Max(s.counts))*5*time.Millisecond
	if s.instructions > 0 {
		d *= 50 // under callgrind everything runs some 50 times slower
	}
	return d
}

// loader runs load against url for d and returns requests/s.
type loader func(ctx context.Context, url string, sc scenario, d time.Duration) (float64, error)

func newLoader(s settings, dir string) (loader, error) {
	if s.gen == "wrk" {
		return wrkLoader(s, dir)
	}
	return goLoader(s, dir), nil
}

// wrkScript sends each request with a token of the file given after "--",
// picked as the second argument says: cycle (the next token, each thread
// starting at its own place, so that concurrent connections carry different
// tokens), uniform, or zipf (rank k with weight k^-s, by binary search in
// the cumulative weights; the third argument is s).
const wrkScript = `
local tokens = {}
local i = 0
local pick = "cycle"
local cdf, total = {}, 0
function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
  end
  pick = args[2] or "cycle"
  if pick == "zipf" then
    local s = tonumber(args[3])
    for k = 1, #tokens do
      total = total + k ^ -s
      cdf[k] = total
    end
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  i = math.random(#tokens)
end
function request()
  if pick == "uniform" then
    i = math.random(#tokens)
  elseif pick == "zipf" then
    local u, lo, hi = math.random() * total, 1, #tokens
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if cdf[mid] < u then lo = mid + 1 else hi = mid end
    end
    i = lo
  else
    i = i % #tokens + 1
  end
  return wrk.format(nil, nil, {["Authorization"] = tokens[i]})
end
`

var (
	wrkRPS    = regexp.MustCompile(`(?m)^Requests/sec:\s+([0-9.]+)`)
	wrkErrors = regexp.MustCompile(`(?m)^\s*(Non-2xx or 3xx responses|Socket errors):.*$`)
)

func wrkLoader(s settings, dir string) (loader, error) {
	script := filepath.Join(dir, "tokens.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o600); err != nil {
		return nil, err
	}
	return func(ctx context.Context, url string, sc scenario, d time.Duration) (float64, error) {
		// --timeout 10s: wrk's default, 2 s, counts one request held up by
		// a busy neighbour on this shared machine as a socket error, which
		// fails the whole run.
		args := []string{"-t", strconv.Itoa(s.threads), "-c", strconv.Itoa(s.connections), "-d", fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second)), "--timeout", "10s"}
		tokens := filepath.Join(dir, sc.file)
		if sc.file == "one.txt" {
			// One token: a fixed header, wrk's cheapest path, as a client
			// reusing its token would send it.
			tok, err := os.ReadFile(tokens)
			if err != nil {
				return 0, err
			}
			args = append(args, "-H", "Authorization: Bearer "+strings.TrimSpace(string(tok)), url)
		} else {
			args = append(args, "-s", script, url, "--", tokens, s.pick, strconv.FormatFloat(zipfS, 'f', -1, 64))
		}
		cctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(cctx, s.wrk, args...).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("wrk: %w", err)
		}
		if m := wrkErrors.Find(out); m != nil {
			return 0, fmt.Errorf("wrk: %s", strings.TrimSpace(string(m)))
		}
		m := wrkRPS.FindSubmatch(out)
		if m == nil {
			return 0, errors.New("wrk printed no Requests/sec")
		}
		return strconv.ParseFloat(string(m[1]), 64)
	}, nil
}

// goLoader is the fallback generator: s.connections goroutines, each with
// its own kept-alive connection, sending requests back to back for d.
func goLoader(s settings, dir string) loader {
	return func(ctx context.Context, url string, sc scenario, d time.Duration) (float64, error) {
		raw, err := os.ReadFile(filepath.Join(dir, sc.file))
		if err != nil {
			return 0, err
		}
		tokens := strings.Fields(string(raw))
		if len(tokens) == 0 {
			return 0, errors.New("no tokens")
		}
		tr := &http.Transport{MaxIdleConnsPerHost: s.connections, MaxConnsPerHost: s.connections, DisableCompression: true}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		cctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		var ok atomic.Int64
		var firstErr error
		var once sync.Once
		var wg sync.WaitGroup
		start := time.Now()
		for c := range s.connections {
			wg.Go(func() {
				next := picker(s.pick, len(tokens), c*len(tokens)/s.connections, rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano()))))
				for cctx.Err() == nil {
					req, _ := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
					req.Header.Set("Authorization", "Bearer "+tokens[next()])
					resp, err := client.Do(req)
					if err != nil {
						if cctx.Err() == nil {
							once.Do(func() { firstErr = err })
						}
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						once.Do(func() { firstErr = fmt.Errorf("status %d", resp.StatusCode) })
						return
					}
					ok.Add(1)
				}
			})
		}
		wg.Wait()
		if firstErr != nil {
			return 0, firstErr
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return float64(ok.Load()) / time.Since(start).Seconds(), nil
	}
}

// picker returns the Go generator's choice of token index for -pick: the
// same three ways as the wrk script's.
func picker(pick string, n, start int, r *rand.Rand) func() int {
	switch pick {
	case "uniform":
		return func() int { return r.IntN(n) }
	case "zipf":
		if n < 2 {
			return func() int { return 0 }
		}
		z := rand.NewZipf(r, zipfS, 1, uint64(n-1))
		return func() int { return int(z.Uint64()) }
	}
	i := start
	return func() int { i = (i + 1) % n; return i }
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// ratios is num ÷ den round by round.
func ratios(num, den []float64) []float64 {
	out := make([]float64, len(num))
	for r := range num {
		out[r] = num[r] / den[r]
	}
	return out
}

// spread is a table cell: the median of v over the rounds and its
// [min–max], each formatted with verb.
func spread(verb string, v []float64) string {
	return fmt.Sprintf(" "+verb+" ["+verb+"–"+verb+"] |", median(v), slices.Min(v), slices.Max(v))
}

// printVersus prints, when both paths were measured, a row of requests/s
// of path a ÷ path b in the same round and scenario: the comparison the
// table's ratios to the unprotected endpoint only give at one remove.
func printVersus(w io.Writer, s settings, scenarios []scenario, rps [][][]float64, a, b, label string) {
	ai := slices.IndexFunc(endpoints, func(e endpoint) bool { return e.path == a })
	bi := slices.IndexFunc(endpoints, func(e endpoint) bool { return e.path == b })
	if ai < 0 || bi < 0 {
		return
	}
	printHeader(w, "\n", "ratio", "", scenarios)
	fmt.Fprintf(w, "\n| %s |", label)
	for si := range scenarios {
		fmt.Fprint(w, spread("%.2f", ratios(rps[si][ai], rps[si][bi])))
	}
	fmt.Fprintln(w)
}

// printHeader starts a markdown table: prefix (a caption, line breaks),
// then a header row of first and each scenario's name followed by suffix,
// and the separator row. The caller ends the line.
func printHeader(w io.Writer, prefix, first, suffix string, scenarios []scenario) {
	fmt.Fprintf(w, "%s| %s |", prefix, first)
	for _, sc := range scenarios {
		fmt.Fprintf(w, " %s%s |", sc.name, suffix)
	}
	fmt.Fprint(w, "\n| --- |")
	for range scenarios {
		fmt.Fprint(w, " --- |")
	}
}

func printTable(w io.Writer, s settings, scenarios []scenario, rps, hits [][][]float64) {
	gen := "wrk (" + s.wrk + ")"
	if s.gen == "go" {
		gen = "the Go load generator in bench/cmd/loadtest"
	}
	fmt.Fprintf(w, "\nTokens signed %s. Load generator: %s, %d threads, %d connections, %s per run, %d rounds, endpoints interleaved; %d CPUs, %s.\n",
		s.alg, gen, s.threads, s.connections, s.duration, s.rounds, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(w, "Ratio: requests/s ÷ the unprotected endpoint's in the same round and scenario; median over rounds [min–max].\n\n")

	printHeader(w, "", "endpoint", ", × unprotected", scenarios)
	fmt.Fprintln(w)
	for ei, ep := range endpoints {
		fmt.Fprintf(w, "| %s |", ep.label)
		for si := range scenarios {
			fmt.Fprint(w, spread("%.2f", ratios(rps[si][ei], rps[si][0])))
		}
		fmt.Fprintln(w)
	}
	printVersus(w, s, scenarios, rps, "/tollgate-nocache", "/bare",
		"Tollgate with the cache off ÷ golang-jwt v5 + keyfunc v3 (both a signature check per request)")

	printHeader(w, "\nRaw medians, requests/s [min–max]:\n\n", "endpoint", "", scenarios)
	fmt.Fprintln(w)
	for ei, ep := range endpoints {
		fmt.Fprintf(w, "| `%s` |", ep.path)
		for si := range scenarios {
			fmt.Fprint(w, spread("%.0f", rps[si][ei]))
		}
		fmt.Fprintln(w)
	}

	printHeader(w, "\nVerified-token cache hits, % of each run's requests, median [min–max]:\n\n", "endpoint", "", scenarios)
	fmt.Fprintln(w)
	for ei, ep := range endpoints {
		if math.IsNaN(hits[0][ei][0]) {
			continue
		}
		fmt.Fprintf(w, "| `%s` |", ep.path)
		for si := range scenarios {
			fmt.Fprint(w, spread("%.1f", hits[si][ei]))
		}
		fmt.Fprintln(w)
	}
}

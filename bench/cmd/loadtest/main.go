// Command loadtest measures the throughput of loadserver's endpoints from a
// second process (make loadtest). It starts loadserver on loopback, then, for
// every round, runs a load generator against each endpoint in turn (the order
// rotates from round to round), in two scenarios: every request with the same
// token, and requests cycling through many distinct tokens. It prints a
// markdown table of requests/s as a ratio to the unprotected endpoint of the
// same round and scenario (median over rounds, with the min–max spread), and
// the raw medians. Ratios, not absolute numbers, because the machine is
// shared and noisy: neighbours slow all endpoints of a round alike.
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
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
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
)

// endpoints are loadserver's paths, the baseline first, with their labels.
var endpoints = []struct{ path, label string }{
	{"/none", "unprotected"},
	{"/bare", "golang-jwt v5 + keyfunc v3, parse on every request"},
	{"/auth0", "auth0/go-jwt-middleware v3.1.0"},
	{"/tollgate", "Tollgate (defaults: cache on)"},
	{"/tollgate-nocache", "Tollgate with `CacheSize: middleware.Off` (a signature check per request)"},
}

// scenario is one way of choosing tokens.
type scenario struct {
	name string
	file string // one.txt or many.txt in the tokens directory
}

// settings are the command's flags.
type settings struct {
	server      string
	rounds      int
	duration    time.Duration
	threads     int
	connections int
	distinct    int
	gen         string
	wrk         string
}

func main() {
	var s settings
	flag.StringVar(&s.server, "server", "", "path of the loadserver binary (required)")
	flag.IntVar(&s.rounds, "rounds", 3, "rounds; each runs every endpoint in every scenario once")
	flag.DurationVar(&s.duration, "duration", 5*time.Second, "length of each load run")
	flag.IntVar(&s.threads, "threads", 2, "load generator threads (wrk -t)")
	flag.IntVar(&s.connections, "connections", 32, "open connections (wrk -c)")
	flag.IntVar(&s.distinct, "distinct", 2000, "distinct tokens in the second scenario")
	flag.StringVar(&s.gen, "gen", "auto", "load generator: auto (wrk if found, else go), wrk or go")
	flag.StringVar(&s.wrk, "wrk", "wrk", "the wrk binary")
	flag.Parse()
	if s.server == "" || s.rounds < 1 || s.duration < time.Second || s.threads < 1 || s.connections < s.threads || s.distinct < 1 {
		log.Fatal("loadtest: need -server, -rounds ≥ 1, -duration ≥ 1s, -threads ≥ 1, -connections ≥ -threads, -distinct ≥ 1")
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
	if err := run(ctx, s); err != nil {
		log.Fatalf("loadtest: %v", err)
	}
}

func run(ctx context.Context, s settings) error {
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

	scenarios := []scenario{
		{"one token", "one.txt"},
		{fmt.Sprintf("%d distinct tokens", s.distinct), "many.txt"},
	}
	load, err := newLoader(s, dir)
	if err != nil {
		return err
	}

	// Warm-up: one short run per endpoint and scenario, so that JWKS
	// fetches, first connections and the runtime's warm-up do not land in
	// round 1.
	for _, sc := range scenarios {
		for _, ep := range endpoints {
			if _, err := load(ctx, base+ep.path, sc, time.Second); err != nil {
				return fmt.Errorf("warm-up %s, %s: %w", ep.path, sc.name, err)
			}
		}
	}

	// rps[scenario][endpoint][round]
	rps := make([][][]float64, len(scenarios))
	for i := range rps {
		rps[i] = make([][]float64, len(endpoints))
	}
	for round := range s.rounds {
		for si, sc := range scenarios {
			for k := range endpoints {
				ei := (k + round) % len(endpoints)
				v, err := load(ctx, base+endpoints[ei].path, sc, s.duration)
				if err != nil {
					return fmt.Errorf("round %d %s, %s: %w", round+1, endpoints[ei].path, sc.name, err)
				}
				rps[si][ei] = append(rps[si][ei], v)
				fmt.Fprintf(os.Stderr, "round %d/%d  %-22s %-18s %10.0f req/s\n", round+1, s.rounds, sc.name, endpoints[ei].path, v)
			}
		}
	}
	printTable(os.Stdout, s, scenarios, rps)
	return nil
}

// startServer starts loadserver and waits for its address. Its stdin is a
// pipe this process holds, so it also stops if this process dies.
func startServer(ctx context.Context, s settings, dir string) (string, *exec.Cmd, error) {
	cmd := exec.Command(s.server, "-tokens-dir", dir, "-distinct", strconv.Itoa(s.distinct))
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
	case <-time.After(60 * time.Second):
		err = errors.New("loadserver did not start within 60s")
	case <-ctx.Done():
		err = ctx.Err()
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return "", nil, err
}

// loader runs load against url for d and returns requests/s.
type loader func(ctx context.Context, url string, sc scenario, d time.Duration) (float64, error)

func newLoader(s settings, dir string) (loader, error) {
	if s.gen == "wrk" {
		return wrkLoader(s, dir)
	}
	return goLoader(s, dir), nil
}

// wrkScript sends each request with the next token of the file given after
// "--", each thread starting at its own place, so that concurrent
// connections carry different tokens.
const wrkScript = `
local tokens = {}
local i = 0
function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then tokens[#tokens + 1] = "Bearer " .. line end
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  i = math.random(#tokens)
end
function request()
  i = i % #tokens + 1
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
		args := []string{"-t", strconv.Itoa(s.threads), "-c", strconv.Itoa(s.connections), "-d", fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))}
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
			args = append(args, "-s", script, url, "--", tokens)
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
				i := c * len(tokens) / s.connections
				for cctx.Err() == nil {
					req, _ := http.NewRequestWithContext(cctx, http.MethodGet, url, nil)
					req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
					i++
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

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func printTable(w io.Writer, s settings, scenarios []scenario, rps [][][]float64) {
	gen := "wrk (" + s.wrk + ")"
	if s.gen == "go" {
		gen = "the Go load generator in bench/cmd/loadtest"
	}
	fmt.Fprintf(w, "\nLoad generator: %s, %d threads, %d connections, %s per run, %d rounds, endpoints interleaved; %d CPUs, %s.\n",
		gen, s.threads, s.connections, s.duration, s.rounds, runtime.NumCPU(), runtime.Version())
	fmt.Fprintf(w, "Ratio: requests/s ÷ the unprotected endpoint's in the same round and scenario; median over rounds [min–max].\n\n")

	fmt.Fprint(w, "| endpoint |")
	for _, sc := range scenarios {
		fmt.Fprintf(w, " %s, × unprotected |", sc.name)
	}
	fmt.Fprint(w, "\n| --- |")
	for range scenarios {
		fmt.Fprint(w, " --- |")
	}
	fmt.Fprintln(w)
	for ei, ep := range endpoints {
		fmt.Fprintf(w, "| %s |", ep.label)
		for si := range scenarios {
			ratios := make([]float64, s.rounds)
			for r := range s.rounds {
				ratios[r] = rps[si][ei][r] / rps[si][0][r]
			}
			fmt.Fprintf(w, " %.2f [%.2f–%.2f] |", median(ratios), slices.Min(ratios), slices.Max(ratios))
		}
		fmt.Fprintln(w)
	}

	fmt.Fprint(w, "\nRaw medians, requests/s [min–max]:\n\n| endpoint |")
	for _, sc := range scenarios {
		fmt.Fprintf(w, " %s |", sc.name)
	}
	fmt.Fprint(w, "\n| --- |")
	for range scenarios {
		fmt.Fprint(w, " --- |")
	}
	fmt.Fprintln(w)
	for ei, ep := range endpoints {
		fmt.Fprintf(w, "| `%s` |", ep.path)
		for si := range scenarios {
			v := rps[si][ei]
			fmt.Fprintf(w, " %.0f [%.0f–%.0f] |", median(v), slices.Min(v), slices.Max(v))
		}
		fmt.Fprintln(w)
	}
}

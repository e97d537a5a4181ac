package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/bench/internal/route"
)

// Instruction counts: with -instructions N, loadserver runs under
// valgrind's callgrind and, for every round, endpoint and scenario, this
// process sends exactly N requests on one kept-alive connection between a
// zeroing and a dump of callgrind's counters (callgrind_control -z, -d).
// The figure is instructions executed by the whole server process per
// request, GC and runtime included: unlike requests/s it does not move
// with the machine's other load, so small differences (a percent) that
// wrk's noise hides can be read. Instructions are not time (a cache miss
// or a divide costs more than an add), so this complements the
// throughput table rather than replacing it. Go's asynchronous preemption
// signals crash callgrind 3.19, so loadserver runs with
// GODEBUG=asyncpreemptoff=1.
//
// Garbage collection is counted, but not left to chance: loadserver runs
// with GOGC=off, and collects (its /gc) before each window's zeroing and
// again at the window's end, inside it. Every window thus pays for exactly
// one collection, of its own garbage: the sweeping and allocation its
// requests cause, and one marking of the live heap, the same for every
// endpoint. Left to the runtime, whether a collection (a few thousand
// instructions per request of a 1,000-request window) fell in a window was
// chance, and collecting only before each window made that chance a bias
// (a collection triggered in every round of one endpoint's window and in
// none of another's). What this leaves out is that an endpoint which
// allocates more would, in production, start collections more often.
// The one /gc request of a window adds the same few instructions per
// request to every endpoint. GOMAXPROCS=1 as well: callgrind runs one
// thread at a time anyway, and with more Ps the runtime's idle workers
// and background sweeper spin while they wait for it, hundreds of millions
// of instructions in some windows (runtime.goschedIfBusy), which counted
// the scheduler's waiting rather than the server's work.

// instrServer is the command that starts loadserver under callgrind,
// writing its dumps into dir.
func instrServer(s settings, dir string) *exec.Cmd {
	cmd := exec.Command("valgrind", "--tool=callgrind", "--callgrind-out-file="+filepath.Join(dir, "callgrind.out"),
		s.server, "-tokens-dir", dir, "-distinct", s.distinct, "-alg", s.alg)
	cmd.Env = append(os.Environ(), "GODEBUG=asyncpreemptoff=1", "GOGC=off", "GOMAXPROCS=1")
	return cmd
}

// runInstructions is run's counterpart for -instructions.
func runInstructions(ctx context.Context, s settings) error {
	for _, tool := range []string{"valgrind", "callgrind_control"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("-instructions needs %s (apt-get install valgrind): %w", tool, err)
		}
	}
	return withServer(ctx, s, func(dir, base string, pid int) error { return countInstructions(ctx, s, dir, base, strconv.Itoa(pid)) })
}

// countInstructions is runInstructions with the server started under
// callgrind, whose PID is pid.
func countInstructions(ctx context.Context, s settings, dir, base, pid string) error {
	scenarios := scenariosOf(s, "cycle")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true}, Timeout: time.Minute}
	send := func(url string, tokens []string, n int) error {
		for i := range n {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("%s: status %d", url, resp.StatusCode)
			}
		}
		return nil
	}
	tokensOf := make([][]string, len(scenarios))
	for si, sc := range scenarios {
		raw, err := os.ReadFile(filepath.Join(dir, sc.file))
		if err != nil {
			return err
		}
		if tokensOf[si] = strings.Fields(string(raw)); len(tokensOf[si]) == 0 {
			return errors.New("no tokens in " + sc.file)
		}
		// Warm-up: keys fetched, caches filled, connection open.
		for _, ep := range endpoints {
			if err := send(base+route.Path(ep.path), tokensOf[si], len(tokensOf[si])+10); err != nil {
				return fmt.Errorf("warm-up: %w", err)
			}
		}
	}
	// ir[scenario][endpoint][round]: instructions per request.
	ir := make([][][]float64, len(scenarios))
	for si := range ir {
		ir[si] = make([][]float64, len(endpoints))
	}
	dumps := 0
	for round := range s.rounds {
		for si, sc := range scenarios {
			for k := range endpoints {
				ei := (k + round) % len(endpoints)
				if err := collect(ctx, client, base); err != nil {
					return err
				}
				if err := exec.CommandContext(ctx, "callgrind_control", "-z", pid).Run(); err != nil {
					return fmt.Errorf("callgrind_control -z: %w", err)
				}
				if err := send(base+route.Path(endpoints[ei].path), tokensOf[si], s.instructions); err != nil {
					return err
				}
				if err := collect(ctx, client, base); err != nil {
					return err
				}
				if err := exec.CommandContext(ctx, "callgrind_control", "-d", pid).Run(); err != nil {
					return fmt.Errorf("callgrind_control -d: %w", err)
				}
				dumps++
				total, err := callgrindTotal(filepath.Join(dir, "callgrind.out."+strconv.Itoa(dumps)))
				if err != nil {
					return err
				}
				v := float64(total) / float64(s.instructions)
				ir[si][ei] = append(ir[si][ei], v)
				fmt.Fprintf(os.Stderr, "round %d/%d  %-26s %-18s %10.0f instructions/request\n", round+1, s.rounds, sc.name, endpoints[ei].path, v)
			}
		}
	}
	printInstructions(os.Stdout, s, scenarios, ir)
	return nil
}

// collect has loadserver run a full garbage collection (its /gc).
func collect(ctx context.Context, client *http.Client, base string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/gc", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("/gc: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("/gc: status %d", resp.StatusCode)
	}
	return nil
}

// callgrindTotal reads the "totals:" line of a callgrind dump, waiting a
// little for callgrind to finish writing it.
func callgrindTotal(path string) (int64, error) {
	for range 50 {
		f, err := os.Open(path)
		if err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "totals: "); ok {
					f.Close()
					return strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				}
			}
			f.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, fmt.Errorf("no totals in %s", path)
}

func printInstructions(w io.Writer, s settings, scenarios []scenario, ir [][][]float64) {
	fmt.Fprintf(w, "\nTokens signed %s. Instructions executed by loadserver (callgrind) per request, %d requests on one kept-alive connection per run, %d rounds, endpoints interleaved.\n",
		s.alg, s.instructions, s.rounds)
	fmt.Fprintf(w, "Median over rounds [min–max]; the ratio columns are the unprotected endpoint's instructions ÷ the endpoint's (throughput-like: higher is cheaper).\n\n")
	printHeader(w, "", "endpoint", " instructions/request", scenarios)
	fmt.Fprintln(w)
	for ei, ep := range endpoints {
		fmt.Fprintf(w, "| %s |", ep.label)
		for si := range scenarios {
			fmt.Fprint(w, spread("%.0f", ir[si][ei]))
		}
		fmt.Fprintln(w)
	}
	printHeader(w, "\n", "endpoint", ", unprotected ÷ endpoint", scenarios)
	fmt.Fprintln(w)
	for ei, ep := range endpoints {
		fmt.Fprintf(w, "| %s |", ep.label)
		for si := range scenarios {
			fmt.Fprint(w, spread("%.3f", ratios(ir[si][0], ir[si][ei])))
		}
		fmt.Fprintln(w)
	}
	ai := slices.IndexFunc(endpoints, func(e endpoint) bool { return e.path == "/tollgate-nocache" })
	bi := slices.IndexFunc(endpoints, func(e endpoint) bool { return e.path == "/bare" })
	if ai < 0 || bi < 0 {
		return
	}
	printHeader(w, "\n", "ratio", "", scenarios)
	fmt.Fprint(w, "\n| golang-jwt v5 + keyfunc v3 instructions ÷ Tollgate with the cache off (both a signature check per request; above 1: Tollgate cheaper) |")
	for si := range scenarios {
		fmt.Fprint(w, spread("%.3f", ratios(ir[si][bi], ir[si][ai])))
	}
	fmt.Fprintln(w)
}

package e2e

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
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tollgate-dev/tollgate/internal/devstack"
)

// Timeouts. The machines that run these tests are small and busy, so they
// are generous; a passing run never waits for them.
const (
	startTimeout = 3 * time.Minute  // building the three programs and starting them
	stepTimeout  = 30 * time.Second // one browser step, navigation included
)

// skipMessage is what a run without Chromium says; the Makefile's test
// target prints the same line, since go test hides the skips of passing
// packages.
const skipMessage = "browser tests skipped: Chromium not found (apt-get install chromium)"

// findChromium returns the browser to drive: $CHROMIUM, else chromium,
// chromium-browser or google-chrome on PATH.
func findChromium() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("not found")
}

// requireChromium skips the test without a browser, except in CI (the
// variable CI is set), where a missing browser must fail the build rather
// than pass it silently.
func requireChromium(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser tests take a minute: not in -short")
	}
	path, err := findChromium()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but Chromium was not found (CHROMIUM=%q): %v", os.Getenv("CHROMIUM"), err)
		}
		t.Skip(skipMessage)
	}
	return path
}

// Binaries are built once per package run, then every test starts its own
// processes from them.
var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func buildBinaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "tollgate-e2e-bin-*")
		if binErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		binErr = devstack.Build(ctx, "", binDir, nil)
	})
	if binErr != nil {
		t.Fatalf("building devidp, exchange and todo-api: %v", binErr)
	}
	return binDir
}

// startStack runs devidp, exchange and todo-api on free ports until the
// test ends. ttl is the access token lifetime (0: devidp's default).
func startStack(t *testing.T, mode string, ttl time.Duration) *devstack.Stack {
	t.Helper()
	return startStackEnv(t, mode, ttl, nil)
}

// startStackEnv is startStack with more settings of the todo API, as
// KEY=VALUE.
func startStackEnv(t *testing.T, mode string, ttl time.Duration, todoAPIEnv []string) *devstack.Stack {
	t.Helper()
	bin := buildBinaries(t)
	ports, err := devstack.FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	st, err := devstack.Start(ctx, devstack.Config{
		BinDir:         bin,
		SkipBuild:      true,
		DataDir:        t.TempDir(),
		IDPPort:        ports[0],
		ExchangePort:   ports[1],
		APIPort:        ports[2],
		AuthMode:       mode,
		AccessTokenTTL: ttl,
		ReadyTimeout:   startTimeout,
		Env: map[string][]string{
			// No leeway: a token is refused the moment it expires, so the
			// refresh is exercised within seconds, not a minute later.
			devstack.TodoAPI: append([]string{"CLOCK_SKEW=0s"}, todoAPIEnv...),
		},
	})
	if err != nil {
		t.Fatalf("starting the stack: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Stop(); err != nil {
			t.Errorf("stopping the stack: %v", err)
		}
	})
	return st
}

// browser is one Chromium tab on the stack's web page.
type browser struct {
	t       *testing.T
	ctx     context.Context // the tab's; no deadline, each step sets its own
	st      *devstack.Stack
	console *consoleLog
}

// newBrowser starts a headless Chromium with a fresh profile. When the test
// fails it saves a screenshot to testdata/failures/<test>.png and logs the
// end of the programs' output and the browser console.
func newBrowser(t *testing.T, st *devstack.Stack) *browser {
	t.Helper()
	path := requireChromium(t)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first action starts the browser; it gets no deadline of its own,
	// since a deadline on it would end the browser too.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("starting Chromium (%s): %v", path, err)
		}
	case <-time.After(startTimeout):
		t.Fatalf("Chromium (%s) did not start within %s", path, startTimeout)
	}
	b := &browser{t: t, ctx: ctx, st: st, console: &consoleLog{}}
	go b.console.collect(ctx)
	t.Cleanup(b.reportFailure)
	return b
}

// reportFailure runs at cleanup, before the browser closes. It also
// catches console errors logged after the last step.
func (b *browser) reportFailure() {
	t := b.t
	b.checkConsole("by the end of the test")
	if !t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err != nil {
		t.Logf("no screenshot: %v", err)
	} else {
		name := regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_") + ".png"
		path := filepath.Join("testdata", "failures", name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Logf("saving the screenshot: %v", err)
		} else if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Logf("saving the screenshot: %v", err)
		} else {
			abs, _ := filepath.Abs(path)
			t.Logf("screenshot of the page: %s", abs)
		}
	}
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
		t.Logf("the page was at %s", loc)
	}
	t.Logf("browser console:\n%s", b.console.dump())
	t.Logf("programs:\n%s", b.st.Logs())
}

// consoleLog keeps what the page wrote to the console.
type consoleLog struct {
	mu   sync.Mutex
	msgs []chromedp.ConsoleMessage
	seen int // messages already checked for errors
}

func (c *consoleLog) collect(ctx context.Context) {
	for m, err := range chromedp.Console(ctx) {
		if err != nil {
			return
		}
		c.mu.Lock()
		c.msgs = append(c.msgs, m)
		c.mu.Unlock()
	}
}

// isError reports whether m is an error the page is to blame for. The
// browser logs every failed request too (source "network"): the 401 that
// precedes each refresh is such a line, and by design.
func isError(m chromedp.ConsoleMessage) bool {
	if m.IsException() {
		return true
	}
	return (m.Type == chromedp.ConsoleError || m.Type == "assert") && m.Source != "network"
}

// newErrors returns the errors logged since the last call.
func (c *consoleLog) newErrors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []string
	for _, m := range c.msgs[c.seen:] {
		if isError(m) {
			errs = append(errs, formatMessage(m))
		}
	}
	c.seen = len(c.msgs)
	return errs
}

func (c *consoleLog) dump() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.msgs) == 0 {
		return "\t(empty)\n"
	}
	var b strings.Builder
	for _, m := range c.msgs {
		b.WriteString("\t" + formatMessage(m) + "\n")
	}
	return b.String()
}

func formatMessage(m chromedp.ConsoleMessage) string {
	s := m.String()
	if m.Source != "" {
		s = "[" + m.Source + "] " + s
	}
	if m.URL != "" {
		s += fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
	}
	return s
}

// checkConsole fails the test when the page logged an error: "no console
// errors" is a requirement of the page.
func (b *browser) checkConsole(step string) {
	b.t.Helper()
	if errs := b.console.newErrors(); len(errs) > 0 {
		b.t.Errorf("%s: the page logged errors:\n\t%s", step, strings.Join(errs, "\n\t"))
	}
}

// do runs actions as one step, failing the test with the step's name.
func (b *browser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", step, err)
	}
	b.checkConsole(step)
}

// eval evaluates a JavaScript expression in the page; a promise is
// awaited.
func eval[T any](b *browser, step, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: evaluating %s: %v", step, expr, err)
	}
	return v
}

// waitFor polls the JavaScript predicate until it is true. Unlike
// chromedp.Poll it survives navigations (sign-in and sign-out go through
// other pages), so errors while a page loads only mean "not yet".
func (b *browser) waitFor(step, predicate string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "false"
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("Boolean("+predicate+")"))
		if err == nil && ok {
			b.checkConsole(step)
			return
		}
		if err != nil {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			loc, _ := chromedp.Run(context.WithoutCancel(b.ctx), chromedp.Location())
			b.t.Fatalf("%s: still not %s after %s (last: %s) at %s", step, predicate, stepTimeout, last, loc)
		case <-tick.C:
		}
	}
}

// metric reads the sum of the exchange's counter name over the series
// whose labels contain match, from its /metrics.
func metric(t *testing.T, st *devstack.Stack, name, match string) float64 {
	t.Helper()
	resp, err := http.Get(st.ExchangeURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	var sum float64
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, match) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}

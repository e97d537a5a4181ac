package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Default ports, the ones the programs themselves default to.
const (
	DefaultIDPPort      = 9000
	DefaultExchangePort = 3000
	DefaultAPIPort      = 8080
)

// Development credentials shared by devidp and the programs that call it:
// devidp's own defaults.
const (
	ExchangeClientID          = "tollgate-exchange"
	ExchangeClientSecret      = "dev-exchange-secret"
	IntrospectionClientID     = "tollgate-todo-api"
	IntrospectionClientSecret = "dev-introspection-secret"
	Audience                  = "todo-api"

	// StepUpACR is the acr devidp issues after its second sign-in step
	// (devidp.ACRTwoFactor), and StepUpCode the code that step asks for
	// (devidp.DefaultSecondFactor): what REQUIRE_ACR_FOR_DELETE_ALL names
	// to try RFC 9470 step-up with make run.
	StepUpACR  = "urn:tollgate:acr:2fa"
	StepUpCode = "123456"
)

// TokenCookies is the todo API's TOKEN_COOKIE: the exchange's cookie names
// with and without prefix, since on plain http (COOKIE_SECURE=false) it drops
// the __Host- prefix.
const TokenCookies = "__Host-access_token,__Secure-access_token,access_token"

// Auth modes of the todo API that Start supports.
const (
	ModeJWT           = "jwt"           // devidp issues JWTs; the todo API checks them with JWKS
	ModeIntrospection = "introspection" // devidp issues opaque tokens; the todo API introspects them
	ModeHybrid        = "hybrid"        // devidp issues JWTs; the todo API checks JWT-shaped tokens locally, would introspect others
)

// Program names: the prefixes of their output lines and the keys of
// Config.Env.
const (
	DevIDP   = "devidp"
	Exchange = "exchange"
	TodoAPI  = "todo-api"
)

// Config says how to build and run the stack. Zero fields take the defaults.
type Config struct {
	// SourceDir is the root of the Tollgate module the programs are built
	// from. Default: the module holding the working directory.
	SourceDir string
	// BinDir receives the binaries. Default: a temporary directory that
	// Stop removes.
	BinDir string
	// SkipBuild runs the binaries already in BinDir (see Build) instead of
	// building them.
	SkipBuild bool
	// DataDir holds the todo API's SQLite database, todos.db. Default: a
	// temporary directory that Stop removes.
	DataDir string

	// Ports on 127.0.0.1. Default 9000 (devidp), 3000 (exchange) and 8080
	// (todo API). FreePorts picks unused ones.
	IDPPort, ExchangePort, APIPort int

	// AuthMode is the todo API's AUTH_MODE: ModeJWT (default),
	// ModeIntrospection or ModeHybrid.
	AuthMode string
	// AccessTokenTTL is the lifetime of access tokens. Default: devidp's
	// (5 minutes).
	AccessTokenTTL time.Duration
	// WebDir, when set, makes the exchange serve the web page from this
	// directory (WEB_DIR) instead of the copy built into it, so that edits
	// show on reload.
	WebDir string

	// Output receives every line the programs and the build write, each
	// prefixed with the program's name. Default: discarded.
	Output io.Writer
	// ReadyTimeout bounds the wait for each program to answer. Default 60s.
	ReadyTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before it kills.
	// Default 5s.
	StopTimeout time.Duration
	// Env adds or overrides settings of one program, as KEY=VALUE, keyed by
	// DevIDP, Exchange or TodoAPI.
	Env map[string][]string
}

func (c Config) withDefaults() Config {
	if c.IDPPort == 0 {
		c.IDPPort = DefaultIDPPort
	}
	if c.ExchangePort == 0 {
		c.ExchangePort = DefaultExchangePort
	}
	if c.APIPort == 0 {
		c.APIPort = DefaultAPIPort
	}
	if c.AuthMode == "" {
		c.AuthMode = ModeJWT
	}
	if c.Output == nil {
		c.Output = io.Discard
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 60 * time.Second
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 5 * time.Second
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if c.AuthMode != ModeJWT && c.AuthMode != ModeIntrospection && c.AuthMode != ModeHybrid {
		errs = append(errs, fmt.Errorf("devstack: AuthMode: want %s, %s or %s, got %q", ModeJWT, ModeIntrospection, ModeHybrid, c.AuthMode))
	}
	ports := map[int]string{}
	for _, p := range []struct {
		name string
		port int
	}{{"IDPPort", c.IDPPort}, {"ExchangePort", c.ExchangePort}, {"APIPort", c.APIPort}} {
		if p.port < 1 || p.port > 65535 {
			errs = append(errs, fmt.Errorf("devstack: %s: %d is no TCP port", p.name, p.port))
		} else if other, dup := ports[p.port]; dup {
			errs = append(errs, fmt.Errorf("devstack: %s and %s are both %d", other, p.name, p.port))
		}
		ports[p.port] = p.name
	}
	if c.AccessTokenTTL < 0 || (c.AccessTokenTTL > 0 && c.AccessTokenTTL < time.Second) {
		errs = append(errs, fmt.Errorf("devstack: AccessTokenTTL: want at least 1s, got %s", c.AccessTokenTTL))
	}
	if c.SkipBuild && c.BinDir == "" {
		errs = append(errs, errors.New("devstack: SkipBuild needs BinDir"))
	}
	for name := range c.Env {
		if name != DevIDP && name != Exchange && name != TodoAPI {
			errs = append(errs, fmt.Errorf("devstack: Env: unknown program %q", name))
		}
	}
	return errors.Join(errs...)
}

// Stack is the running system. Its URLs all use the host name localhost.
type Stack struct {
	IssuerURL   string // devidp, the issuer: http://localhost:9000
	ExchangeURL string // the exchange and the web page, the address to open: http://localhost:3000
	APIURL      string // the todo API: http://localhost:8080
	DataDir     string // where todos.db lives

	cfg      Config
	out      *lockedWriter
	procs    []*process
	exited   chan error
	temp     []string
	mu       sync.Mutex
	stopping bool
	stopOnce sync.Once
	stopErr  error
}

// Start builds the three programs (unless cfg.SkipBuild), starts them and
// waits until each answers: devidp's discovery document, the exchange's
// /healthz and the todo API's /readyz. devidp starts first, since the other
// two read its discovery document at start. On error nothing is left
// running. Stop the stack with Stop; ctx only bounds the start.
func Start(ctx context.Context, cfg Config) (_ *Stack, err error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	s := &Stack{
		IssuerURL:   localURL(cfg.IDPPort),
		ExchangeURL: localURL(cfg.ExchangePort),
		APIURL:      localURL(cfg.APIPort),
		cfg:         cfg,
		out:         &lockedWriter{w: cfg.Output},
		exited:      make(chan error, 3),
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	if s.cfg.BinDir == "" {
		if s.cfg.BinDir, err = s.tempDir("tollgate-dev-bin-*"); err != nil {
			return nil, err
		}
	}
	if s.cfg.DataDir == "" {
		if s.cfg.DataDir, err = s.tempDir("tollgate-dev-data-*"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(s.cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("devstack: data directory: %w", err)
	}
	s.DataDir = s.cfg.DataDir
	if err := checkPortsFree(cfg.IDPPort, cfg.ExchangePort, cfg.APIPort); err != nil {
		return nil, err
	}
	if !cfg.SkipBuild {
		if err := Build(ctx, cfg.SourceDir, s.cfg.BinDir, cfg.Output); err != nil {
			return nil, err
		}
	}

	idp, err := s.start(DevIDP, s.devidpEnv())
	if err != nil {
		return nil, err
	}
	if err := s.waitReady(ctx, idp, "http://127.0.0.1:"+strconv.Itoa(cfg.IDPPort)+"/.well-known/openid-configuration"); err != nil {
		return nil, err
	}
	ex, err := s.start(Exchange, s.exchangeEnv())
	if err != nil {
		return nil, err
	}
	api, err := s.start(TodoAPI, s.todoAPIEnv())
	if err != nil {
		return nil, err
	}
	errc := make(chan error, 2)
	go func() { errc <- s.waitReady(ctx, ex, "http://127.0.0.1:"+strconv.Itoa(cfg.ExchangePort)+"/healthz") }()
	go func() { errc <- s.waitReady(ctx, api, "http://127.0.0.1:"+strconv.Itoa(cfg.APIPort)+"/readyz") }()
	if err := errors.Join(<-errc, <-errc); err != nil {
		return nil, err
	}
	return s, nil
}

// Exited receives an error when a program ends before Stop was called.
func (s *Stack) Exited() <-chan error { return s.exited }

// Logs returns the last lines each program wrote, program by program, for
// a test to show when it fails.
func (s *Stack) Logs() string {
	s.mu.Lock()
	procs := slices.Clone(s.procs)
	s.mu.Unlock()
	var b strings.Builder
	for _, p := range procs {
		fmt.Fprintf(&b, "--- last lines of %s:\n%s", p.name, p.tail())
	}
	return b.String()
}

// PIDs returns the process IDs of the programs Start started, for tests
// that check nothing outlives Stop.
func (s *Stack) PIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pids := make([]int, 0, len(s.procs))
	for _, p := range s.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	return pids
}

// Stop sends SIGTERM to every program, kills those still running after
// Config.StopTimeout, and removes the temporary directories Start made. It
// reports programs that had to be killed or did not exit cleanly. Calling it
// again returns the first result.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		s.mu.Lock()
		s.stopping = true
		procs := s.procs
		s.mu.Unlock()
		var wg sync.WaitGroup
		errs := make([]error, len(procs))
		for i, p := range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = p.stop(s.cfg.StopTimeout)
			}()
		}
		wg.Wait()
		for _, dir := range s.temp {
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, fmt.Errorf("devstack: %w", err))
			}
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

func (s *Stack) tempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", fmt.Errorf("devstack: %w", err)
	}
	s.temp = append(s.temp, dir)
	return dir, nil
}

func (s *Stack) start(name string, env []string) (*process, error) {
	env = append(env, s.cfg.Env[name]...)
	p, err := startProcess(name, filepath.Join(s.cfg.BinDir, name), env, s.out)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	go func() {
		<-p.done
		s.mu.Lock()
		stopping := s.stopping
		s.mu.Unlock()
		if !stopping {
			s.exited <- fmt.Errorf("devstack: %s exited early: %v\n%s", name, p.err, p.tail())
		}
	}()
	return p, nil
}

// waitReady polls url until it answers 200, p exits, ctx ends or the ready
// timeout passes.
func (s *Stack) waitReady(ctx context.Context, p *process, url string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReadyTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("devstack: %w", err)
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return fmt.Errorf("devstack: %s exited before it was ready: %v\n%s", p.name, p.err, p.tail())
		case <-ctx.Done():
			return fmt.Errorf("devstack: %s not ready at %s after %s (last: %s)\n%s", p.name, url, s.cfg.ReadyTimeout, last, p.tail())
		case <-tick.C:
		}
	}
}

func (s *Stack) devidpEnv() []string {
	format := "jwt"
	if s.cfg.AuthMode == ModeIntrospection {
		format = "opaque"
	}
	env := []string{
		"LISTEN_ADDR=127.0.0.1:" + strconv.Itoa(s.cfg.IDPPort),
		"ISSUER=" + s.IssuerURL,
		"ACCESS_TOKEN_FORMAT=" + format,
		"ACCESS_TOKEN_AUDIENCE=" + Audience,
		"EXCHANGE_CLIENT_ID=" + ExchangeClientID,
		"EXCHANGE_CLIENT_SECRET=" + ExchangeClientSecret,
		"EXCHANGE_REDIRECT_URLS=" + s.ExchangeURL + "/oauth-callback",
		"EXCHANGE_POST_LOGOUT_REDIRECT_URLS=" + s.ExchangeURL + "/",
		"INTROSPECTION_CLIENT_ID=" + IntrospectionClientID,
		"INTROSPECTION_CLIENT_SECRET=" + IntrospectionClientSecret,
	}
	if s.cfg.AccessTokenTTL > 0 {
		env = append(env, "ACCESS_TOKEN_TTL="+s.cfg.AccessTokenTTL.String())
	}
	return env
}

func (s *Stack) exchangeEnv() []string {
	env := []string{
		"LISTEN_ADDR=127.0.0.1:" + strconv.Itoa(s.cfg.ExchangePort),
		"ISSUER=" + s.IssuerURL,
		"CLIENT_ID=" + ExchangeClientID,
		"CLIENT_SECRET=" + ExchangeClientSecret,
		"REDIRECT_URL=" + s.ExchangeURL + "/oauth-callback",
		// Plain http: Chrome and Firefox keep Secure cookies from
		// http://localhost, Safari does not, and make run must work in
		// all of them. Production runs on https with the default true.
		"COOKIE_SECURE=false",
		"DEV_MODE=true",
		"TODO_API_URL=" + s.APIURL,
	}
	if s.cfg.WebDir != "" {
		env = append(env, "WEB_DIR="+s.cfg.WebDir)
	}
	return env
}

func (s *Stack) todoAPIEnv() []string {
	env := []string{
		"LISTEN_ADDR=127.0.0.1:" + strconv.Itoa(s.cfg.APIPort),
		"DATABASE_URL=sqlite:" + filepath.Join(s.cfg.DataDir, "todos.db"),
		"AUTH_MODE=" + s.cfg.AuthMode,
		"ISSUER=" + s.IssuerURL,
		"AUDIENCE=" + Audience,
		"TOKEN_COOKIE=" + TokenCookies,
		"CORS_ALLOWED_ORIGINS=" + s.ExchangeURL,
		"BASE_URL=" + s.APIURL,
		// RFC 9728: the API names its metadata in every challenge, so a
		// client that knows only the API's URL finds devidp.
		"RESOURCE_URL=" + s.APIURL,
	}
	if s.cfg.AuthMode != ModeJWT {
		env = append(env,
			"INTROSPECTION_CLIENT_ID="+IntrospectionClientID,
			"INTROSPECTION_CLIENT_SECRET="+IntrospectionClientSecret,
		)
	}
	return env
}

func localURL(port int) string { return "http://localhost:" + strconv.Itoa(port) }

// FreePorts returns n distinct TCP ports that were free on 127.0.0.1 a
// moment ago. Another process may take one before it is used; good enough
// for tests.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("devstack: free port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// checkPortsFree fails with one clear line per port already in use on
// loopback.
func checkPortsFree(ports ...int) error {
	var errs []error
	for _, port := range ports {
		// The browser may try either for localhost.
		for _, host := range []string{"127.0.0.1", "::1"} {
			ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
			if err != nil {
				if errors.Is(err, syscall.EADDRINUSE) {
					errs = append(errs, fmt.Errorf("devstack: port %d is already in use on %s; stop what runs there or choose another port", port, host))
					break
				}
				continue // e.g. no IPv6: nothing can be listening there
			}
			ln.Close()
		}
	}
	return errors.Join(errs...)
}

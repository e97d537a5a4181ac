// Command tollgate-dev runs Tollgate's whole development system on loopback
// (what make run does): it builds and starts the development authorization
// server (devidp), the exchange service with the todo web page, and the todo
// API with matching settings, waits until each answers, prints the address
// to open and the demo logins, and stops all three on Ctrl-C. Every setting
// is an environment variable and an equal flag; --help lists them. Never for
// production.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tollgate-dev/tollgate/internal/devstack"
	"github.com/tollgate-dev/tollgate/internal/envflag"
	"github.com/tollgate-dev/tollgate/store"
)

func main() {
	stopWithParent()
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate-dev:", err)
		os.Exit(1)
	}
}

// run starts the stack and keeps it running until ctx ends, a signal
// arrives or one of the programs exits.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	// SIGHUP too: closing the terminal should stop the servers as cleanly
	// as Ctrl-C does.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, envflag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg.Output = stdout
	verb := "building and starting"
	if cfg.SkipBuild {
		verb = "starting"
	}
	fmt.Fprintf(stdout, "tollgate-dev: %s devidp, exchange and todo-api (%s mode)…\n", verb, cfg.AuthMode)
	st, err := devstack.Start(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil // Ctrl-C during the start
		}
		return err
	}
	writeBanner(stdout, st, cfg)

	var exitErr error
	select {
	case <-ctx.Done():
		// A second Ctrl-C now ends us at once; the kernel then sends each
		// server SIGTERM (devstack starts them with a parent-death signal).
		stop()
		fmt.Fprintln(stdout, "tollgate-dev: stopping…")
	case exitErr = <-st.Exited():
	}
	if err := st.Stop(); err != nil && exitErr == nil {
		return err
	}
	if exitErr == nil {
		fmt.Fprintln(stdout, "tollgate-dev: stopped")
	}
	return exitErr
}

func parseConfig(args []string, getenv func(string) string, out io.Writer) (devstack.Config, error) {
	s := envflag.New("tollgate-dev", getenv, out)
	idpPort := s.Int("DEVIDP_PORT", devstack.DefaultIDPPort, "port of the development authorization server (the issuer)")
	exPort := s.Int("EXCHANGE_PORT", devstack.DefaultExchangePort, "port of the exchange service and the web page (the address to open)")
	apiPort := s.Int("TODO_API_PORT", devstack.DefaultAPIPort, "port of the todo API")
	mode := s.String("AUTH_MODE", devstack.ModeJWT, "how the todo API checks tokens: jwt (devidp issues JWTs), introspection (devidp issues opaque tokens) or hybrid (JWTs checked locally, other tokens introspected)")
	ttl := s.Duration("ACCESS_TOKEN_TTL", 5*time.Minute, "access token lifetime; short values exercise the refresh")
	dataDir := s.String("DATA_DIR", defaultDataDir(), "directory of the todo API's SQLite database (todos.db)")
	webDir := s.String("WEB_DIR", "", "serve the web page from this directory instead of the exchange's built-in copy (e.g. api/exchange/web, to see edits on reload)")
	stepUpACR := s.String("REQUIRE_ACR_FOR_DELETE_ALL", "", "the todo API's setting of that name: acr values a token needs to delete every todo (RFC 9470 step-up); "+devstack.StepUpACR+" makes devidp ask for a second sign-in step")
	storeURL := s.String("STORE_URL", "", "the exchange's STORE_URL, e.g. redis://127.0.0.1:6379/0 (make run STORE=redis): refresh coordination in Redis instead of in-process")
	prebuilt := s.String("PREBUILT_DIR", "", "run the devidp, exchange and todo-api binaries in this directory instead of building them (go build -o DIR/ ./cmd/devidp ./cmd/exchange ./cmd/todo-api)")
	if err := s.Parse(args); err != nil {
		return devstack.Config{}, err
	}
	if *mode != devstack.ModeJWT && *mode != devstack.ModeIntrospection && *mode != devstack.ModeHybrid {
		return devstack.Config{}, fmt.Errorf("AUTH_MODE: invalid value %q: want jwt, introspection or hybrid", *mode)
	}
	for _, p := range []struct {
		env  string
		port int
	}{{"DEVIDP_PORT", *idpPort}, {"EXCHANGE_PORT", *exPort}, {"TODO_API_PORT", *apiPort}} {
		if p.port < 1 || p.port > 65535 {
			return devstack.Config{}, fmt.Errorf("%s: invalid value %d: want a TCP port (1-65535)", p.env, p.port)
		}
	}
	if *idpPort == *exPort || *idpPort == *apiPort || *exPort == *apiPort {
		return devstack.Config{}, errors.New("DEVIDP_PORT, EXCHANGE_PORT and TODO_API_PORT must differ")
	}
	if *ttl < time.Second {
		return devstack.Config{}, fmt.Errorf("ACCESS_TOKEN_TTL: invalid value %q: want at least 1s", ttl.String())
	}
	if *dataDir == "" {
		return devstack.Config{}, errors.New("DATA_DIR must not be empty")
	}
	cfg := devstack.Config{
		IDPPort:        *idpPort,
		ExchangePort:   *exPort,
		APIPort:        *apiPort,
		AuthMode:       *mode,
		AccessTokenTTL: *ttl,
		DataDir:        *dataDir,
	}
	if *stepUpACR != "" {
		// The todo API checks the value, and says what is wrong with it.
		cfg.Env = map[string][]string{devstack.TodoAPI: {"REQUIRE_ACR_FOR_DELETE_ALL=" + *stepUpACR}}
	}
	if *storeURL != "" {
		// The exchange checks the value, and says what is wrong with it.
		if cfg.Env == nil {
			cfg.Env = map[string][]string{}
		}
		cfg.Env[devstack.Exchange] = append(cfg.Env[devstack.Exchange], "STORE_URL="+*storeURL)
	}
	if *prebuilt != "" {
		abs, err := filepath.Abs(*prebuilt)
		if err != nil {
			return devstack.Config{}, fmt.Errorf("PREBUILT_DIR: %w", err)
		}
		for _, name := range []string{devstack.DevIDP, devstack.Exchange, devstack.TodoAPI} {
			if fi, err := os.Stat(filepath.Join(abs, name)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return devstack.Config{}, fmt.Errorf("PREBUILT_DIR: %s holds no %s program", abs, name)
			}
		}
		cfg.BinDir, cfg.SkipBuild = abs, true
	}
	if *webDir != "" {
		abs, err := filepath.Abs(*webDir)
		if err != nil {
			return devstack.Config{}, fmt.Errorf("WEB_DIR: %w", err)
		}
		if fi, err := os.Stat(filepath.Join(abs, "index.html")); err != nil || fi.IsDir() {
			return devstack.Config{}, fmt.Errorf("WEB_DIR: %s holds no index.html", abs)
		}
		cfg.WebDir = abs
	}
	return cfg, nil
}

// defaultDataDir keeps the todos across runs without writing into the
// repository: the user's cache directory, else the system's temporary one.
func defaultDataDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "tollgate-dev")
	}
	return filepath.Join(os.TempDir(), "tollgate-dev")
}

func writeBanner(w io.Writer, st *devstack.Stack, cfg devstack.Config) {
	tokens := "JWT access tokens, checked with JWKS"
	switch cfg.AuthMode {
	case devstack.ModeIntrospection:
		tokens = "opaque access tokens, checked by introspection"
	case devstack.ModeHybrid:
		tokens = "JWT access tokens, checked with JWKS; hybrid mode would introspect others"
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\n")
	fmt.Fprintf(tw, "  Tollgate is running (development only).\n\n")
	fmt.Fprintf(tw, "  open\t%s\n", st.ExchangeURL)
	fmt.Fprintf(tw, "  sign in as\talice / alice   or   bob / bob\n\n")
	fmt.Fprintf(tw, "  devidp\t%s\t(issuer; %s, lifetime %s)\n", st.IssuerURL, tokens, cfg.AccessTokenTTL)
	fmt.Fprintf(tw, "  todo API\t%s\t(docs %s/docs)\n", st.APIURL, st.APIURL)
	fmt.Fprintf(tw, "  data\t%s\n", filepath.Join(st.DataDir, "todos.db"))
	for _, kv := range cfg.Env[devstack.TodoAPI] {
		if acr, ok := strings.CutPrefix(kv, "REQUIRE_ACR_FOR_DELETE_ALL="); ok {
			fmt.Fprintf(tw, "  step-up\tDelete all needs acr %s (devidp gives %s after the password and the code %s)\n", acr, devstack.StepUpACR, devstack.StepUpCode)
		}
	}
	for _, kv := range cfg.Env[devstack.Exchange] {
		if v, ok := strings.CutPrefix(kv, "STORE_URL="); ok {
			fmt.Fprintf(tw, "  store\t%s\t(the exchange's refresh coordination)\n", store.Redacted(v))
		}
	}
	fmt.Fprintf(tw, "\n")
	fmt.Fprintf(tw, "  Press Ctrl-C to stop.\n\n")
	_ = tw.Flush()
}

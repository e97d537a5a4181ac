package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
	"github.com/tollgate-dev/tollgate/internal/envflag"
	"github.com/tollgate-dev/tollgate/internal/testbuf"
)

const testSecret = "cmd-test-session-secret-0123456789abcdef"

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// baseEnv is a complete configuration against idpURL on a free port.
func baseEnv(idpURL string) map[string]string {
	return map[string]string{
		"LISTEN_ADDR":    "127.0.0.1:0",
		"ISSUER":         idpURL,
		"CLIENT_ID":      devidp.DefaultExchangeClientID,
		"CLIENT_SECRET":  devidp.DefaultExchangeClientSecret,
		"SESSION_SECRET": testSecret,
	}
}

// program is the exchange started through run, as main starts it.
type program struct {
	URL    string
	logs   *testbuf.Buffer
	cancel context.CancelFunc
	errc   chan error
}

// start runs the program with env and args and waits until /healthz
// answers.
func start(t *testing.T, env map[string]string, args ...string) *program {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	x := &program{logs: &testbuf.Buffer{}, cancel: cancel, errc: make(chan error, 1)}
	addrc := make(chan net.Addr, 1)
	go func() {
		x.errc <- run(ctx, args, lookup(env), x.logs, x.logs, func(a net.Addr) { addrc <- a })
	}()
	select {
	case a := <-addrc:
		x.URL = "http://" + a.String()
	case err := <-x.errc:
		cancel()
		t.Fatalf("exchange did not start: %v\n%s", err, x.logs)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("exchange did not start in time")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-x.errc:
		case <-time.After(30 * time.Second):
			t.Error("exchange did not stop")
		}
		if logs := x.logs.String(); strings.Contains(logs, testSecret) || strings.Contains(logs, devidp.DefaultExchangeClientSecret) {
			t.Errorf("the logs contain a secret:\n%s", logs)
		}
	})
	resp, err := http.Get(x.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}
	return x
}

// stop cancels run's context and returns what run returned.
func (x *program) stop(t *testing.T) error {
	t.Helper()
	x.cancel()
	select {
	case err := <-x.errc:
		x.errc <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("exchange did not stop")
		return nil
	}
}

// TestRunServes: settings reach the server, and cancelling the context
// shuts it down cleanly.
func TestRunServes(t *testing.T) {
	t.Parallel()
	idp := devidptest.Start(t, devidp.Config{})
	env := baseEnv(idp.URL)
	env["TODO_API_URL"] = "http://127.0.0.1:8181"
	env["SCOPES"] = "openid todos:read"
	env["LISTEN_ADDR"] = "not an address" // the flag wins
	x := start(t, env, "-listen-addr", "127.0.0.1:0")

	resp, err := http.Get(x.URL + "/config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]string
	err = json.NewDecoder(resp.Body).Decode(&cfg)
	resp.Body.Close()
	if err != nil || cfg["todo_api_url"] != "http://127.0.0.1:8181" {
		t.Errorf("/config.json: %v, %v", cfg, err)
	}

	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get(x.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if q := loc.Query(); resp.StatusCode != http.StatusFound || q.Get("client_id") != devidp.DefaultExchangeClientID ||
		q.Get("scope") != "openid todos:read" || q.Get("redirect_uri") != "http://localhost:3000/oauth-callback" {
		t.Errorf("/login: %d, Location %s", resp.StatusCode, loc)
	}

	if err := x.stop(t); err != nil {
		t.Errorf("run returned %v after cancel, want nil", err)
	}
	if _, err := http.Get(x.URL + "/healthz"); err == nil {
		t.Error("still answering after shutdown")
	}
	if logs := x.logs.String(); !strings.Contains(logs, "shutting down") || !strings.Contains(logs, "exchange ready") {
		t.Errorf("logs:\n%s", logs)
	}
}

// TestRunDevMode: without SESSION_SECRET, DEV_MODE starts with a warning.
func TestRunDevMode(t *testing.T) {
	t.Parallel()
	idp := devidptest.Start(t, devidp.Config{})
	env := baseEnv(idp.URL)
	delete(env, "SESSION_SECRET")
	env["DEV_MODE"] = "true"
	x := start(t, env)
	if logs := x.logs.String(); !strings.Contains(logs, `"level":"WARN"`) || !strings.Contains(logs, "DEV_MODE") {
		t.Errorf("no warning about the random SESSION_SECRET:\n%s", logs)
	}
}

// TestRunRefusesBadSettings: a missing or malformed setting stops the
// program at once with one line naming it.
func TestRunRefusesBadSettings(t *testing.T) {
	t.Parallel()
	// Nothing listens here: settings are checked before discovery.
	const issuer = "http://127.0.0.1:1"
	tests := []struct {
		name string
		edit func(map[string]string)
		want string
	}{
		{"no ISSUER", func(e map[string]string) { delete(e, "ISSUER") }, "ISSUER is required"},
		{"empty ISSUER", func(e map[string]string) { e["ISSUER"] = "" }, "ISSUER is required"},
		{"no CLIENT_ID", func(e map[string]string) { delete(e, "CLIENT_ID") }, "CLIENT_ID is required"},
		{"no CLIENT_SECRET", func(e map[string]string) { delete(e, "CLIENT_SECRET") }, "CLIENT_SECRET is required"},
		{"no SESSION_SECRET", func(e map[string]string) { delete(e, "SESSION_SECRET") }, "SESSION_SECRET is required"},
		{"short SESSION_SECRET", func(e map[string]string) { e["SESSION_SECRET"] = "hunter2" }, "SESSION_SECRET is 7 bytes"},
		{"COOKIE_SECURE", func(e map[string]string) { e["COOKIE_SECURE"] = "maybe" }, "COOKIE_SECURE: invalid value"},
		{"TRANSACTION_TTL", func(e map[string]string) { e["TRANSACTION_TTL"] = "soon" }, "TRANSACTION_TTL: invalid value"},
		{"LOG_LEVEL", func(e map[string]string) { e["LOG_LEVEL"] = "loud" }, "LOG_LEVEL: invalid value"},
		{"REFRESH_GRACE", func(e map[string]string) { e["REFRESH_GRACE"] = "a while" }, "REFRESH_GRACE: invalid value"},
		{"REDIRECT_URL", func(e map[string]string) { e["REDIRECT_URL"] = "http://localhost:3000/callback" }, "REDIRECT_URL"},
		{"CLIENT_AUTH", func(e map[string]string) { e["CLIENT_AUTH"] = "private_key_jwt" }, "CLIENT_AUTH"},
		{"COOKIE_DOMAIN", func(e map[string]string) { e["COOKIE_DOMAIN"] = "example.com" }, "COOKIE_DOMAIN"},
		{"STORE_URL scheme", func(e map[string]string) { e["STORE_URL"] = "memcached://127.0.0.1:11211" }, "STORE_URL scheme"},
		{"STORE_URL database", func(e map[string]string) { e["STORE_URL"] = "redis://:hunter2-store@127.0.0.1:6379/first" }, "STORE_URL"},
		{"an argument", func(map[string]string) {}, "unexpected argument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := baseEnv(issuer)
			tt.edit(env)
			var args []string
			if tt.name == "an argument" {
				args = []string{"serve"}
			}
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			err := run(ctx, args, lookup(env), &out, &out, func(net.Addr) { t.Error("started") })
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("run: %v; want one line with %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error()+out.String(), "hunter2") {
				t.Errorf("a password shows: %v\n%s", err, out.String())
			}
		})
	}
}

// TestRunStoreURL: STORE_URL reaches the exchange, which names the store
// in its start line without the password. (Opening does not connect: the
// refreshes answer 503 until Redis does.)
func TestRunStoreURL(t *testing.T) {
	t.Parallel()
	idp := devidptest.Start(t, devidp.Config{})
	env := baseEnv(idp.URL)
	env["STORE_URL"] = "redis://tollgate:hunter2-store@127.0.0.1:1/3"
	x := start(t, env)
	if err := x.stop(t); err != nil {
		t.Fatal(err)
	}
	logs := x.logs.String()
	if !strings.Contains(logs, `"store":"redis://tollgate:xxxxx@127.0.0.1:1/3"`) {
		t.Errorf("the start line does not name the store:\n%s", logs)
	}
	if strings.Contains(logs, "hunter2") {
		t.Errorf("the logs show the store's password:\n%s", logs)
	}
}

// TestRunHelp lists every setting with its environment variable.
func TestRunHelp(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"--help"}, lookup(nil), &stdout, &stderr, nil)
	if !errors.Is(err, envflag.ErrHelp) {
		t.Fatalf("run --help: %v", err)
	}
	help := stdout.String() + stderr.String()
	for _, s := range []string{"LISTEN_ADDR", "ISSUER", "CLIENT_ID", "CLIENT_SECRET", "REDIRECT_URL", "SCOPES", "AUDIENCE",
		"COOKIE_DOMAIN", "COOKIE_SECURE", "SESSION_SECRET", "TODO_API_URL", "CLIENT_AUTH", "DEV_MODE", "STORE_URL", "-cookie-domain", "(default :3000)"} {
		if !strings.Contains(help, s) {
			t.Errorf("--help lacks %q:\n%s", s, help)
		}
	}
}

// TestRunRefreshGrace: REFRESH_GRACE=0 (or negative) disables the grace
// window, as --help says.
func TestRunRefreshGrace(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want time.Duration
	}{
		{"20s", 20 * time.Second},
		{"5", 5 * time.Second},
		{"0", -1},
		{"0s", -1},
		{"-1s", -1},
	} {
		env := baseEnv("http://127.0.0.1:1")
		env["REFRESH_GRACE"] = tt.in
		cfg, _, err := parseConfig(nil, lookup(env), io.Discard)
		if err != nil || cfg.RefreshGrace != tt.want {
			t.Errorf("REFRESH_GRACE=%s: %v, %v; want %v", tt.in, cfg.RefreshGrace, err, tt.want)
		}
	}
}

// TestRunWaitsForDiscovery: an issuer that does not answer yet is retried,
// and a cancel during the wait ends run quietly.
func TestRunWaitsForDiscovery(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	ln.Close()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	logs := &testbuf.Buffer{}
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, nil, lookup(baseEnv(issuer)), logs, logs, nil) }()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "retrying") {
		if time.Now().After(deadline) {
			t.Fatalf("no retry logged:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("run: %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
}

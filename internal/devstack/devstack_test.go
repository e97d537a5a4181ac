package devstack

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/api/devidp"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string // a part of the error; "" for none
	}{
		{name: "defaults"},
		{name: "introspection", edit: func(c *Config) { c.AuthMode = ModeIntrospection }},
		{name: "hybrid", edit: func(c *Config) { c.AuthMode = ModeHybrid }},
		{name: "unknown auth mode", edit: func(c *Config) { c.AuthMode = "opaque" }, want: `AuthMode: want jwt, introspection or hybrid, got "opaque"`},
		{name: "negative port", edit: func(c *Config) { c.APIPort = -1 }, want: "APIPort: -1 is no TCP port"},
		{name: "port too high", edit: func(c *Config) { c.IDPPort = 65536 }, want: "IDPPort: 65536 is no TCP port"},
		{name: "two programs on one port", edit: func(c *Config) { c.ExchangePort, c.APIPort = 3000, 3000 }, want: "ExchangePort and APIPort are both 3000"},
		{name: "token lifetime under a second", edit: func(c *Config) { c.AccessTokenTTL = 500 * time.Millisecond }, want: "AccessTokenTTL: want at least 1s"},
		{name: "skip build without binaries", edit: func(c *Config) { c.SkipBuild = true }, want: "SkipBuild needs BinDir"},
		{name: "settings of an unknown program", edit: func(c *Config) { c.Env = map[string][]string{"todoapi": {"X=1"}} }, want: `unknown program "todoapi"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			if tt.edit != nil {
				tt.edit(&c)
			}
			err := c.withDefaults().validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestStartRejectsConfigBeforeDoingAnything(t *testing.T) {
	_, err := Start(t.Context(), Config{AuthMode: "nonsense", APIPort: 3000})
	if err == nil || !strings.Contains(err.Error(), "AuthMode") || !strings.Contains(err.Error(), "both 3000") {
		t.Fatalf("want every problem at once, got %v", err)
	}
}

// TestSettingsMatch checks that the three programs are told the same
// issuer, secrets, URLs and cookie names: a mismatch is what breaks a
// hand-made setup.
func TestSettingsMatch(t *testing.T) {
	for _, mode := range []string{ModeJWT, ModeIntrospection, ModeHybrid} {
		t.Run(mode, func(t *testing.T) {
			cfg := Config{IDPPort: 9100, ExchangePort: 3100, APIPort: 8180, AuthMode: mode, AccessTokenTTL: 3 * time.Second, DataDir: "/data", WebDir: "/web"}.withDefaults()
			s := &Stack{IssuerURL: localURL(9100), ExchangeURL: localURL(3100), APIURL: localURL(8180), cfg: cfg}
			idp, ex, api := envMap(s.devidpEnv()), envMap(s.exchangeEnv()), envMap(s.todoAPIEnv())

			same := func(what string, values ...string) {
				t.Helper()
				for _, v := range values[1:] {
					if v != values[0] {
						t.Errorf("%s differs: %q", what, values)
						return
					}
				}
			}
			same("issuer", idp["ISSUER"], ex["ISSUER"], api["ISSUER"], "http://localhost:9100")
			same("exchange client ID", idp["EXCHANGE_CLIENT_ID"], ex["CLIENT_ID"])
			same("exchange client secret", idp["EXCHANGE_CLIENT_SECRET"], ex["CLIENT_SECRET"])
			same("redirect URL", idp["EXCHANGE_REDIRECT_URLS"], ex["REDIRECT_URL"], "http://localhost:3100/oauth-callback")
			same("post-logout URL (the exchange's default: its origin + /)", idp["EXCHANGE_POST_LOGOUT_REDIRECT_URLS"], "http://localhost:3100/")
			same("audience", idp["ACCESS_TOKEN_AUDIENCE"], api["AUDIENCE"])
			same("todo API URL", ex["TODO_API_URL"], api["BASE_URL"], "http://localhost:8180")
			same("resource identifier (RFC 9728)", api["RESOURCE_URL"], api["BASE_URL"])
			same("page origin allowed by CORS", api["CORS_ALLOWED_ORIGINS"], "http://localhost:3100")
			same("listen addresses on loopback", idp["LISTEN_ADDR"], "127.0.0.1:9100")
			same("listen addresses on loopback", ex["LISTEN_ADDR"], "127.0.0.1:3100")
			same("listen addresses on loopback", api["LISTEN_ADDR"], "127.0.0.1:8180")
			same("auth mode", api["AUTH_MODE"], mode)
			same("token lifetime", idp["ACCESS_TOKEN_TTL"], "3s")
			same("web dir", ex["WEB_DIR"], "/web")
			same("database", api["DATABASE_URL"], "sqlite:"+filepath.Join("/data", "todos.db"))
			// Plain http: the exchange drops the cookie prefixes, so the todo
			// API must read the plain name.
			same("cookie security", ex["COOKIE_SECURE"], "false")
			if !strings.Contains(","+api["TOKEN_COOKIE"]+",", ",access_token,") {
				t.Errorf("TOKEN_COOKIE %q lacks the plain access_token name", api["TOKEN_COOKIE"])
			}
			if mode == ModeIntrospection {
				same("token format", idp["ACCESS_TOKEN_FORMAT"], "opaque")
			} else {
				same("token format", idp["ACCESS_TOKEN_FORMAT"], "jwt")
			}
			if mode != ModeJWT {
				same("introspection client ID", idp["INTROSPECTION_CLIENT_ID"], api["INTROSPECTION_CLIENT_ID"], IntrospectionClientID)
				same("introspection client secret", idp["INTROSPECTION_CLIENT_SECRET"], api["INTROSPECTION_CLIENT_SECRET"], IntrospectionClientSecret)
			}
		})
	}
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func TestFreePorts(t *testing.T) {
	ports, err := FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p < 1 || p > 65535 || seen[p] {
			t.Fatalf("ports %v: want three distinct TCP ports", ports)
		}
		seen[p] = true
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Fatalf("port %d is not free: %v", p, err)
		}
		ln.Close()
	}
	if err := checkPortsFree(ports...); err != nil {
		t.Errorf("checkPortsFree on free ports: %v", err)
	}
}

func TestCheckPortsFree(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	err = checkPortsFree(port)
	if err == nil || !strings.Contains(err.Error(), "port "+strconv.Itoa(port)+" is already in use") {
		t.Fatalf("want a clear line naming port %d, got %v", port, err)
	}
}

func TestModulePath(t *testing.T) {
	for _, tt := range []struct{ gomod, want string }{
		{"module github.com/tollgate-dev/tollgate\n\ngo 1.26\n", ModulePath},
		{"// comment\nmodule \"github.com/tollgate-dev/tollgate\" // quoted\n", ModulePath},
		{"module example.com/other\n", "example.com/other"},
		{"go 1.26\n", ""},
	} {
		if got := modulePath([]byte(tt.gomod)); got != tt.want {
			t.Errorf("modulePath(%q) = %q, want %q", tt.gomod, got, tt.want)
		}
	}
}

func TestFindModule(t *testing.T) {
	dir, err := FindModule(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cmd", DevIDP)); err != nil {
		t.Errorf("FindModule = %s, which has no cmd/devidp: %v", dir, err)
	}
}

func TestLineWriter(t *testing.T) {
	var out bytes.Buffer
	w := &lineWriter{prefix: "devidp   | ", out: &lockedWriter{w: &out}}
	_, _ = w.Write([]byte("one\r\ntw"))
	_, _ = w.Write([]byte("o\nthree"))
	if got, want := out.String(), "devidp   | one\ndevidp   | two\n"; got != want {
		t.Fatalf("before flush: %q, want %q (whole lines only)", got, want)
	}
	w.flush()
	if !strings.HasSuffix(out.String(), "devidp   | three\n") {
		t.Fatalf("flush did not write the last partial line: %q", out.String())
	}
	for i := range 2 * tailLines {
		_, _ = w.Write([]byte("line " + strconv.Itoa(i) + "\n"))
	}
	tail := w.tail()
	if n := strings.Count(tail, "\n"); n != tailLines {
		t.Errorf("tail has %d lines, want %d", n, tailLines)
	}
	if !strings.HasSuffix(tail, "line "+strconv.Itoa(2*tailLines-1)+"\n") || strings.Contains(tail, "line 0\n") {
		t.Errorf("tail is not the last lines:\n%s", tail)
	}
}

// fakePrograms writes shell scripts in place of the three programs: the
// start and stop logic is tested without building anything.
func fakePrograms(t *testing.T, devidp string) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("fake programs are shell scripts")
	}
	dir := t.TempDir()
	for name, body := range map[string]string{DevIDP: devidp, Exchange: "exit 0", TodoAPI: "exit 0"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func freeConfig(t *testing.T, bin string) Config {
	t.Helper()
	ports, err := FreePorts(3)
	if err != nil {
		t.Fatal(err)
	}
	return Config{BinDir: bin, SkipBuild: true, IDPPort: ports[0], ExchangePort: ports[1], APIPort: ports[2], DataDir: t.TempDir()}
}

func TestStartReportsAProgramThatExits(t *testing.T) {
	bin := fakePrograms(t, `echo "devidp: ISSUER: invalid value" >&2; exit 3`)
	_, err := Start(t.Context(), freeConfig(t, bin))
	if err == nil || !strings.Contains(err.Error(), "devidp exited before it was ready") || !strings.Contains(err.Error(), "ISSUER: invalid value") {
		t.Fatalf("want the exit and the program's last words, got %v", err)
	}
}

func TestStartStopsWhatItStartedWhenNotReady(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// Runs, but never answers HTTP.
	bin := fakePrograms(t, `echo $$ > `+pidFile+`; exec sleep 600`)
	cfg := freeConfig(t, bin)
	cfg.ReadyTimeout = 500 * time.Millisecond
	_, err := Start(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "devidp not ready") {
		t.Fatalf("want a readiness timeout, got %v", err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	// Start waited for it to end, so it is gone, not merely signalled.
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("devidp (pid %d) still exists after the failed start: %v", pid, err)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func TestStartGivesUpWhenCancelled(t *testing.T) {
	bin := fakePrograms(t, `exec sleep 600`)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Start(ctx, freeConfig(t, bin)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Start with a cancelled context: %v", err)
	}
}

func TestStopKillsAProgramThatIgnoresSIGTERM(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGTERM")
	}
	script := filepath.Join(t.TempDir(), "stubborn")
	// An ignored signal stays ignored across exec.
	if err := os.WriteFile(script, []byte("#!/bin/sh\ntrap '' TERM\necho ready\nexec sleep 600\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := startProcess("stubborn", script, nil, &lockedWriter{w: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.tail(), "ready") {
		if time.Now().After(deadline) {
			t.Fatal("the script never said ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	err = p.stop(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "was killed") {
		t.Fatalf("stop: %v; want a note that it had to kill", err)
	}
	select {
	case <-p.done:
	default:
		t.Fatal("stop returned before the program ended")
	}
}

func TestBuildNeedsCgo(t *testing.T) {
	t.Setenv("CGO_ENABLED", "0")
	err := Build(t.Context(), "", t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "install a C compiler") {
		t.Fatalf("Build without cgo: %v; want advice to install a C compiler", err)
	}
}

// TestStepUpConstants: the step-up values the banner and the tests name
// are devidp's own.
func TestStepUpConstants(t *testing.T) {
	if StepUpACR != devidp.ACRTwoFactor || StepUpCode != devidp.DefaultSecondFactor {
		t.Fatalf("devstack says %s and %s; devidp issues %s after the code %s", StepUpACR, StepUpCode, devidp.ACRTwoFactor, devidp.DefaultSecondFactor)
	}
}

// TestStartProgram: a program started on its own gets only the given
// environment (and PATH and the like), its output prefixed, and stops.
func TestStartProgram(t *testing.T) {
	bin := fakePrograms(t, `echo "issuer=$ISSUER store=$STORE_URL"; exec sleep 600`)
	t.Setenv("STORE_URL", "redis://leaked")
	var out bytes.Buffer
	var mu sync.Mutex
	p, err := StartProgram(bin, DevIDP, "devidp-2", []string{"ISSUER=http://x"}, writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return out.Write(b)
	}))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(p.Tail(), "issuer=") {
		if time.Now().After(deadline) {
			t.Fatal("the script never wrote")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Stop returned before the program ended")
	}
	if err := syscall.Kill(p.PID(), 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("pid %d still exists after Stop: %v", p.PID(), err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := out.String(); got != "devidp-2 | issuer=http://x store=\n" {
		t.Fatalf("output %q", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/devstack"
	"github.com/tollgate-dev/tollgate/internal/envflag"
)

func mapEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	web := t.TempDir()
	if err := os.WriteFile(filepath.Join(web, "index.html"), []byte("<!doctype html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	prebuilt := t.TempDir()
	for _, name := range []string{devstack.DevIDP, devstack.Exchange, devstack.TodoAPI} {
		if err := os.WriteFile(filepath.Join(prebuilt, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	incomplete := t.TempDir()

	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		want    func(devstack.Config) string // "" when right
		wantErr string                       // a part of the one error line
	}{
		{
			name: "defaults: the programs' own ports, JWTs, 5 minute tokens",
			want: func(c devstack.Config) string {
				if c.IDPPort != 9000 || c.ExchangePort != 3000 || c.APIPort != 8080 || c.AuthMode != "jwt" || c.AccessTokenTTL != 5*time.Minute || c.DataDir == "" || c.SkipBuild || c.WebDir != "" {
					return "not the defaults"
				}
				return ""
			},
		},
		{
			name: "environment, as make run passes it",
			env:  map[string]string{"AUTH_MODE": "introspection", "EXCHANGE_PORT": "3001", "DEVIDP_PORT": "9001", "TODO_API_PORT": "8081", "ACCESS_TOKEN_TTL": "30s", "DATA_DIR": "/tmp/x"},
			want: func(c devstack.Config) string {
				if c.AuthMode != "introspection" || c.ExchangePort != 3001 || c.IDPPort != 9001 || c.APIPort != 8081 || c.AccessTokenTTL != 30*time.Second || c.DataDir != "/tmp/x" {
					return "environment not read"
				}
				return ""
			},
		},
		{
			name: "STORE_URL goes to the exchange (make run STORE=redis), alongside the step-up setting",
			args: []string{"-store-url=redis://127.0.0.1:6379/0", "-require-acr-for-delete-all=" + devstack.StepUpACR},
			want: func(c devstack.Config) string {
				if ex := c.Env[devstack.Exchange]; len(ex) != 1 || ex[0] != "STORE_URL=redis://127.0.0.1:6379/0" || len(c.Env[devstack.TodoAPI]) != 1 {
					return fmt.Sprintf("Env = %q", c.Env)
				}
				return ""
			},
		},
		{
			name: "a flag wins over the environment",
			env:  map[string]string{"AUTH_MODE": "introspection"},
			args: []string{"-auth-mode=jwt"},
			want: func(c devstack.Config) string {
				if c.AuthMode != "jwt" {
					return "the flag lost"
				}
				return ""
			},
		},
		{
			name: "web dir and prebuilt programs",
			args: []string{"-web-dir=" + web, "-prebuilt-dir=" + prebuilt},
			want: func(c devstack.Config) string {
				if c.WebDir != web || c.BinDir != prebuilt || !c.SkipBuild {
					return "WEB_DIR or PREBUILT_DIR not used"
				}
				return ""
			},
		},
		{
			name: "step-up for Delete all, passed to the todo API",
			env:  map[string]string{"REQUIRE_ACR_FOR_DELETE_ALL": devstack.StepUpACR},
			want: func(c devstack.Config) string {
				if len(c.Env[devstack.TodoAPI]) != 1 || c.Env[devstack.TodoAPI][0] != "REQUIRE_ACR_FOR_DELETE_ALL="+devstack.StepUpACR {
					return "REQUIRE_ACR_FOR_DELETE_ALL not passed on"
				}
				return ""
			},
		},
		{name: "unknown auth mode", env: map[string]string{"AUTH_MODE": "opaque"}, wantErr: `AUTH_MODE: invalid value "opaque"`},
		{name: "port out of range", env: map[string]string{"EXCHANGE_PORT": "70000"}, wantErr: "EXCHANGE_PORT: invalid value 70000"},
		{name: "port not a number", env: map[string]string{"TODO_API_PORT": "eighty"}, wantErr: "TODO_API_PORT"},
		{name: "two programs on one port", args: []string{"-todo-api-port=3000"}, wantErr: "must differ"},
		{name: "token lifetime under a second", env: map[string]string{"ACCESS_TOKEN_TTL": "500ms"}, wantErr: "ACCESS_TOKEN_TTL: invalid value"},
		{name: "web dir without the page", env: map[string]string{"WEB_DIR": incomplete}, wantErr: "holds no index.html"},
		{name: "prebuilt dir without the programs", env: map[string]string{"PREBUILT_DIR": incomplete}, wantErr: "holds no devidp program"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			cfg, err := parseConfig(tt.args, mapEnv(tt.env), &out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error %q is more than one line", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if problem := tt.want(cfg); problem != "" {
				t.Errorf("%s: %+v", problem, cfg)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := parseConfig([]string{"--help"}, mapEnv(nil), &out)
	if !errors.Is(err, envflag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, setting := range []string{"AUTH_MODE", "DEVIDP_PORT", "EXCHANGE_PORT", "TODO_API_PORT", "ACCESS_TOKEN_TTL", "DATA_DIR", "WEB_DIR", "PREBUILT_DIR", "REQUIRE_ACR_FOR_DELETE_ALL"} {
		if !strings.Contains(out.String(), setting) {
			t.Errorf("--help does not list %s:\n%s", setting, out.String())
		}
	}
	// run treats --help as success: make run ARGS=--help is no failure.
	if err := run(t.Context(), []string{"--help"}, mapEnv(nil), &out, &out); err != nil {
		t.Errorf("run --help: %v", err)
	}
}

// TestBannerStepUp: with REQUIRE_ACR_FOR_DELETE_ALL the banner says how
// to pass the step-up.
func TestBannerStepUp(t *testing.T) {
	st := &devstack.Stack{IssuerURL: "http://localhost:9000", ExchangeURL: "http://localhost:3000", APIURL: "http://localhost:8080", DataDir: "/data"}
	var out bytes.Buffer
	writeBanner(&out, st, devstack.Config{AuthMode: devstack.ModeJWT, Env: map[string][]string{devstack.TodoAPI: {"REQUIRE_ACR_FOR_DELETE_ALL=" + devstack.StepUpACR}}})
	if !strings.Contains(out.String(), "Delete all needs acr "+devstack.StepUpACR) || !strings.Contains(out.String(), devstack.StepUpCode) {
		t.Fatalf("banner:\n%s", out.String())
	}
	out.Reset()
	writeBanner(&out, st, devstack.Config{AuthMode: devstack.ModeJWT})
	if strings.Contains(out.String(), "step-up") {
		t.Fatalf("a step-up line without the setting:\n%s", out.String())
	}
}

// TestBannerStore: the banner names the exchange's store without its
// password.
func TestBannerStore(t *testing.T) {
	st := &devstack.Stack{IssuerURL: "http://localhost:9000", ExchangeURL: "http://localhost:3000", APIURL: "http://localhost:8080", DataDir: "/data"}
	var out bytes.Buffer
	writeBanner(&out, st, devstack.Config{AuthMode: devstack.ModeJWT, Env: map[string][]string{devstack.Exchange: {"STORE_URL=redis://u:hunter2@127.0.0.1:6379/0"}}})
	if !strings.Contains(out.String(), "redis://u:xxxxx@127.0.0.1:6379/0") || strings.Contains(out.String(), "hunter2") {
		t.Fatalf("banner:\n%s", out.String())
	}
}

func TestBanner(t *testing.T) {
	st := &devstack.Stack{IssuerURL: "http://localhost:9000", ExchangeURL: "http://localhost:3000", APIURL: "http://localhost:8080", DataDir: "/data"}
	for _, tt := range []struct {
		mode string
		want string
	}{
		{devstack.ModeJWT, "JWT access tokens"},
		{devstack.ModeIntrospection, "opaque access tokens, checked by introspection"},
		{devstack.ModeHybrid, "hybrid mode would introspect others"},
	} {
		var out bytes.Buffer
		writeBanner(&out, st, devstack.Config{AuthMode: tt.mode, AccessTokenTTL: time.Minute})
		banner := out.String()
		for _, want := range []string{
			"open", "http://localhost:3000", // the address to open
			"alice / alice", "bob / bob", // the demo logins
			"http://localhost:9000", "http://localhost:8080/docs",
			tt.want, "lifetime 1m0s",
			filepath.Join("/data", "todos.db"),
			"development only", "Ctrl-C",
		} {
			if !strings.Contains(banner, want) {
				t.Errorf("%s banner lacks %q:\n%s", tt.mode, want, banner)
			}
		}
	}
}

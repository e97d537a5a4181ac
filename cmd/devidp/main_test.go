package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testbuf"
)

func getenvFrom(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stdout, stderr testbuf.Buffer
	env := map[string]string{"LISTEN_ADDR": "127.0.0.1:0", "ACCESS_TOKEN_TTL": "2m", "EXCHANGE_CLIENT_SECRET": "s3cret-for-test"}
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenvFrom(env), &stdout, &stderr) }()

	// The banner names the issuer, derived from the port the kernel picked.
	issuerLine := regexp.MustCompile(`(?m)^issuer\s+(\S+)`)
	var issuer string
	deadline := time.Now().Add(10 * time.Second)
	for issuer == "" {
		if m := issuerLine.FindStringSubmatch(stdout.String()); m != nil {
			issuer = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no issuer in banner:\n%s", stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.HasPrefix(issuer, "http://localhost:") {
		t.Fatalf("issuer = %q", issuer)
	}
	// The banner is printed in several writes: the issuer line may come
	// before the rest.
	wants := []string{"DEVELOPMENT ONLY", "tollgate-exchange", "s3cret-for-test", "tollgate-todo-api", "dev-introspection-secret", "tollgate-cli", "(public: none, PKCE)", "alice", "bob", "2m0s"}
	hasAll := func(banner string) bool {
		for _, want := range wants {
			if !strings.Contains(banner, want) {
				return false
			}
		}
		return true
	}
	for !hasAll(stdout.String()) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	banner := stdout.String()
	for _, want := range wants {
		if !strings.Contains(banner, want) {
			t.Errorf("banner lacks %q:\n%s", want, banner)
		}
	}

	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || doc["issuer"] != issuer {
		t.Fatalf("discovery: %v, issuer %v", err, doc["issuer"])
	}
	if strings.Contains(stderr.String(), "s3cret-for-test") {
		t.Fatal("a secret reached the log")
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr testbuf.Buffer
	if err := run(t.Context(), []string{"--help"}, getenvFrom(nil), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"LISTEN_ADDR (default 127.0.0.1:9000)", "ISSUER", "ALLOW_NON_LOOPBACK", "ACCESS_TOKEN_FORMAT (default jwt)",
		"ACCESS_TOKEN_AUDIENCE (default todo-api)", "ACCESS_TOKEN_TTL (default 5m0s)", "REFRESH_TOKEN_TTL",
		"EXCHANGE_CLIENT_ID (default tollgate-exchange)", "EXCHANGE_CLIENT_SECRET", "EXCHANGE_REDIRECT_URLS (default http://localhost:3000/oauth-callback)",
		"EXCHANGE_POST_LOGOUT_REDIRECT_URLS", "INTROSPECTION_CLIENT_ID (default tollgate-todo-api)", "INTROSPECTION_CLIENT_SECRET",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(stdout.String())
	}
}

func TestBadSettings(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"ACCESS_TOKEN_FORMAT": "jwe"}, "ACCESS_TOKEN_FORMAT"},
		{map[string]string{"ACCESS_TOKEN_TTL": "soon"}, "ACCESS_TOKEN_TTL"},
		{map[string]string{"ACCESS_TOKEN_TTL": "0"}, "ACCESS_TOKEN_TTL"},
		{map[string]string{"ALLOW_NON_LOOPBACK": "maybe"}, "ALLOW_NON_LOOPBACK"},
		{map[string]string{"ISSUER": "ftp://example.com"}, "ISSUER"},
		{map[string]string{"EXCHANGE_REDIRECT_URLS": "/oauth-callback"}, "EXCHANGE_REDIRECT_URLS"},
		{map[string]string{"INTROSPECTION_CLIENT_ID": "tollgate-exchange"}, "INTROSPECTION_CLIENT_ID"},
		{map[string]string{"LISTEN_ADDR": "0.0.0.0:0"}, "ALLOW_NON_LOOPBACK=true"},
		{map[string]string{"LISTEN_ADDR": ":0"}, "LISTEN_ADDR"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			var stdout, stderr testbuf.Buffer
			err := run(t.Context(), nil, getenvFrom(tt.env), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line naming %s", err, tt.want)
			}
		})
	}
}

package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testbuf"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/store/redistest"
)

const testStoreSecret = "a store secret of thirty-two bytes or more, for tests"

// sharedEnv is introspectionEnv with verdicts cached and STORE_URL and
// STORE_SECRET set.
func sharedEnv(t *testing.T, is *authtest.Issuer, storeURL string) map[string]string {
	env := introspectionEnv(t, is, "introspection")
	env["INTROSPECTION_CACHE_TTL"] = "1m"
	env["STORE_URL"] = storeURL
	env["STORE_SECRET"] = testStoreSecret
	return env
}

// TestRunSharedStore: two todo-api programs given one STORE_URL ask the
// authorization server once for a token used at both, and log at start
// which store they share (never STORE_SECRET).
func TestRunSharedStore(t *testing.T) {
	rs := redistest.Start(t)
	is := authtest.NewIssuer(t, todoScopes)
	a := startServer(t, sharedEnv(t, is, rs.URL))
	b := startServer(t, sharedEnv(t, is, rs.URL))
	tok := is.OpaqueToken("alice", nil)
	expect(t, newCaller(t, a.URL, tok).do("POST", "/todos", map[string]any{"title": "shared"}), 201)
	if n := is.IntrospectionCalls(); n != 1 {
		t.Fatalf("%d introspection calls at A, want 1", n)
	}
	expect(t, newCaller(t, b.URL, tok).do("GET", "/todos", nil), 200)
	if n := is.IntrospectionCalls(); n != 1 {
		t.Fatalf("%d introspection calls after B, want 1 (B answers from the shared cache)", n)
	}
	for _, s := range []*server{a, b} {
		log := s.log.String()
		if !strings.Contains(log, `"store":"`+rs.URL+`"`) || strings.Contains(log, testStoreSecret) {
			t.Fatalf("the log does not name the store, or holds STORE_SECRET:\n%s", log)
		}
	}
}

// TestRunStoreDownAtStart: a todo-api whose Redis is not answering starts
// and serves, asking the authorization server itself, and says once that
// the shared cache is unavailable; the URL's password is never logged.
func TestRunStoreDownAtStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	is := authtest.NewIssuer(t, todoScopes)
	s := startServer(t, sharedEnv(t, is, "redis://:redis-password-sekrit@"+addr+"/0"))
	for range 3 {
		expect(t, newCaller(t, s.URL, is.OpaqueToken("alice", nil)).do("GET", "/todos", nil), 200)
	}
	if n := is.IntrospectionCalls(); n != 3 {
		t.Fatalf("%d introspection calls, want 3", n)
	}
	log := s.log.String()
	if strings.Count(log, "introspection shared cache unavailable") != 1 || strings.Contains(log, "redis-password-sekrit") || !strings.Contains(log, `"store":"redis://:xxxxx@`+addr+`/0"`) {
		t.Fatalf("want one outage line, the store named without its password:\n%s", log)
	}
}

// TestRunRefusesStoreSettings: a malformed STORE_URL or a short
// STORE_SECRET stops the program at start with an error naming the
// setting, and neither the error nor the output shows the secret or the
// URL's password.
func TestRunRefusesStoreSettings(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	const password, short = "redis-password-sekrit", "short-sekrit"
	tests := []struct {
		name, url, secret, want string
	}{
		{"bad scheme", "http://:" + password + "@127.0.0.1:6379/0", testStoreSecret, `STORE_URL scheme "http" is not supported`},
		{"unparsable", "redis://:" + password + "@[::1%zz]:6379/0", testStoreSecret, "STORE_URL is not a URL"},
		{"short secret", "redis://127.0.0.1:6379/0", short, "STORE_SECRET: must be at least 32 bytes, got 12"},
		{"no secret", "redis://127.0.0.1:6379/0", "", "STORE_SECRET is required with STORE_URL"},
		{"secret without a store", "", testStoreSecret, "STORE_SECRET: only with STORE_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := sharedEnv(t, is, tt.url)
			env["STORE_SECRET"] = tt.secret
			out := &testbuf.Buffer{}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, nil, lookup(env), out, out, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			for _, secret := range []string{password, short, testStoreSecret} {
				if strings.Contains(err.Error()+out.String(), secret) {
					t.Fatalf("the error or output shows a secret: %v\n%s", err, out)
				}
			}
		})
	}
}

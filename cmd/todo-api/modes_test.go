package main

import (
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// introspectionEnv is the settings for a todo-api that introspects at is.
func introspectionEnv(tb testing.TB, is *authtest.Issuer, mode string) map[string]string {
	is.EnableIntrospection()
	env := jwtEnv(tb, is)
	env["AUTH_MODE"] = mode
	env["INTROSPECTION_CLIENT_ID"] = authtest.IntrospectionClientID
	env["INTROSPECTION_CLIENT_SECRET"] = authtest.IntrospectionClientSecret
	env["INTROSPECTION_TIMEOUT"] = "300ms"
	env["INTROSPECTION_CACHE_TTL"] = "0" // every request asks, so each behaviour shows
	return env
}

// TestIntrospectionOutcomes checks each answer of the introspection
// endpoint end to end through the todo API.
func TestIntrospectionOutcomes(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	s := startServer(t, introspectionEnv(t, is, "introspection"))
	active := is.OpaqueToken("alice", nil)
	revoked := is.OpaqueToken("alice", nil)
	is.Revoke(revoked)
	is.SetSlowDelay(time.Second)
	tests := []struct {
		name      string
		token     string
		behaviour authtest.Behaviour
		status    int
	}{
		{"active", active, authtest.Normal, 200},
		{"inactive", "never-issued", authtest.Normal, 401},
		{"revoked", revoked, authtest.Normal, 401},
		{"expired", is.OpaqueToken("alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), authtest.Normal, 401},
		{"refresh token, as Hydra answers", is.OpaqueToken("alice", func(c jwt.MapClaims) { c["token_use"] = "refresh_token" }), authtest.Normal, 401},
		{"bound to a DPoP key", is.OpaqueToken("alice", func(c jwt.MapClaims) { c["cnf"] = map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"} }), authtest.Normal, 401},
		{"slow", active, authtest.Slow, 503},
		{"500", active, authtest.Fail, 503},
		{"garbage", active, authtest.Garbage, 503},
		{"huge", active, authtest.Huge, 503},
		{"recovered", active, authtest.Normal, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is.SetIntrospection(tt.behaviour)
			defer is.SetIntrospection(authtest.Normal)
			before := is.IntrospectionCalls()
			r := newCaller(t, s.URL, tt.token).do("GET", "/todos", nil)
			expect(t, r, tt.status)
			if tt.status == 503 && r.Header.Get("Retry-After") == "" {
				t.Fatal("503 without Retry-After")
			}
			if is.IntrospectionCalls() == before {
				t.Fatal("no introspection call")
			}
		})
	}
}

func TestHybridThroughTheAPI(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	s := startServer(t, introspectionEnv(t, is, "hybrid"))
	before := is.IntrospectionCalls()
	jwtCaller := newCaller(t, s.URL, is.Token(t, "alice", nil))
	expect(t, jwtCaller.do("POST", "/todos", map[string]any{"title": "from a JWT"}), 201)
	if is.IntrospectionCalls() != before {
		t.Fatal("a JWT was introspected in hybrid mode")
	}
	opaque := newCaller(t, s.URL, is.OpaqueToken("alice", nil))
	if got := opaque.do("GET", "/todos", nil).todos(t); len(got) != 1 || got[0]["title"] != "from a JWT" {
		t.Fatalf("opaque token of the same user sees %v", got)
	}
	if is.IntrospectionCalls() != before+1 {
		t.Fatal("the opaque token was not introspected")
	}
}

// TestIntrospectionOverloadThroughTheAPI: INTROSPECTION_MAX_IN_FLIGHT and
// INTROSPECTION_RATE_LIMIT bound the requests a flood of garbage tokens
// makes to the authorization server; the request over the bound gets 503
// with Retry-After at once, without reaching the server.
func TestIntrospectionOverloadThroughTheAPI(t *testing.T) {
	tests := []struct {
		name     string
		setting  string
		value    string
		answered int // garbage tokens the server gets before the refusal
		hold     bool
	}{
		{name: "in flight", setting: "INTROSPECTION_MAX_IN_FLIGHT", value: "2", answered: 2, hold: true},
		{name: "per second", setting: "INTROSPECTION_RATE_LIMIT", value: "1", answered: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := authtest.NewIssuer(t, todoScopes)
			// An authorization server that answers inactive, or when hold
			// is set, never: each request waits until its client hangs up.
			var arrived atomic.Int64
			is.Handle("POST /counted-introspect", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm() // after which net/http notices a hang-up
				arrived.Add(1)
				if tt.hold {
					<-r.Context().Done()
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"active":false}`)
			}))
			env := introspectionEnv(t, is, "introspection")
			env["INTROSPECTION_URL"] = is.URL + "/counted-introspect"
			env["INTROSPECTION_TIMEOUT"] = "10s"
			env[tt.setting] = tt.value
			s := startServer(t, env)

			ctx, cancel := context.WithCancel(context.Background())
			var sent sync.WaitGroup
			t.Cleanup(func() { cancel(); sent.Wait() })
			for range tt.answered {
				req, err := http.NewRequestWithContext(ctx, "GET", s.URL+"/todos", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Authorization", "Bearer "+rand.Text())
				sent.Add(1)
				go func() {
					defer sent.Done()
					if res, err := http.DefaultClient.Do(req); err == nil {
						res.Body.Close()
					}
				}()
			}
			deadline := time.Now().Add(5 * time.Second)
			for arrived.Load() < int64(tt.answered) {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d requests reached the server", arrived.Load(), tt.answered)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if !tt.hold {
				sent.Wait()
			}

			r := newCaller(t, s.URL, rand.Text()).do("GET", "/todos", nil)
			expect(t, r, http.StatusServiceUnavailable)
			if r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), `"reason":"overloaded"`) {
				t.Fatalf("503 without Retry-After or reason overloaded: %v %s", r.Header, r.Body)
			}
			if n := arrived.Load(); n != int64(tt.answered) {
				t.Errorf("the refused request reached the server: %d requests, want %d", n, tt.answered)
			}
		})
	}
}

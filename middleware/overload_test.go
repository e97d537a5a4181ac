package middleware_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestIntrospectionOverloadIs503: when the introspection client refuses to
// ask the authorization server (MaxInFlight requests already in flight, or
// RateLimit reached), the caller gets 503 with Retry-After and a
// problem+json body, at once and without a request to the server.
func TestIntrospectionOverloadIs503(t *testing.T) {
	tests := []struct {
		name string
		mode middleware.Mode
		edit func(*introspection.Client)
		hold int // garbage tokens whose requests the server holds first
	}{
		{name: "introspection, default MaxInFlight full", mode: middleware.ModeIntrospection, hold: introspection.DefaultMaxInFlight},
		{name: "hybrid, default MaxInFlight full", mode: middleware.ModeHybrid, hold: introspection.DefaultMaxInFlight},
		{name: "introspection, RateLimit reached", mode: middleware.ModeIntrospection, hold: 1,
			edit: func(c *introspection.Client) { c.RateLimit, c.RateBurst = 0.001, 1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := authtest.NewIssuer(t)
			// An authorization server that never answers: each request
			// waits until its client hangs up.
			var arrived atomic.Int64
			is.Handle("POST /held-introspect", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = r.ParseForm() // after which net/http notices a hang-up
				arrived.Add(1)
				<-r.Context().Done()
			}))
			a := introspectingAuthenticator(t, is, tt.mode, func(c *introspection.Client) {
				c.Endpoint = is.URL + "/held-introspect"
				c.Timeout = 10 * time.Second
				if tt.edit != nil {
					tt.edit(c)
				}
			})

			ctx, cancel := context.WithCancel(context.Background())
			var held sync.WaitGroup
			t.Cleanup(func() { cancel(); held.Wait() })
			for range tt.hold {
				held.Add(1)
				go func() {
					defer held.Done()
					do(a, bearerRequest(rand.Text()).WithContext(ctx))
				}()
			}
			deadline := time.Now().Add(5 * time.Second)
			for arrived.Load() < int64(tt.hold) {
				if time.Now().After(deadline) {
					t.Fatalf("%d of %d held requests reached the server", arrived.Load(), tt.hold)
				}
				time.Sleep(5 * time.Millisecond)
			}

			refused := make(chan *httptest.ResponseRecorder, 1)
			go func() { refused <- do(a, bearerRequest(rand.Text())) }()
			var w *httptest.ResponseRecorder
			select {
			case w = <-refused:
			case <-time.After(5 * time.Second):
				t.Fatalf("the request over the bound waits (%d requests at the server) instead of being refused", arrived.Load())
			}
			if w.Code != http.StatusServiceUnavailable {
				t.Fatalf("status %d, want 503", w.Code)
			}
			if got, want := w.Header().Get("Retry-After"), strconv.Itoa(middleware.RetryAfter); got != want {
				t.Errorf("Retry-After %q, want %q", got, want)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != "" {
				t.Errorf("WWW-Authenticate %q: the token is not at fault", got)
			}
			if got := w.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q", got)
			}
			p := problem(t, w)
			if p["status"] != float64(503) || p["reason"] != middleware.ReasonOverloaded {
				t.Errorf("problem %v, want status 503 and reason %q", p, middleware.ReasonOverloaded)
			}
			if n := arrived.Load(); n != int64(tt.hold) {
				t.Errorf("the refused request reached the server: %d requests, want %d", n, tt.hold)
			}
		})
	}
}

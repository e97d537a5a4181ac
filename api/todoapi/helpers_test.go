package todoapi

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// testOrigin is the page origin the test configurations allow.
const testOrigin = "http://app.test"

// testConfig is a todo API trusting is, on a fresh SQLite file, allowing
// testOrigin.
// todoScopes makes the test issuer grant the todo API's scopes: authtest's
// defaults name no application.
var todoScopes = authtest.WithScopes("todos:read", "todos:write")

func testConfig(tb testing.TB, is *authtest.Issuer) Config {
	tb.Helper()
	return Config{
		DatabaseURL:        "sqlite:" + filepath.Join(tb.TempDir(), "todos.db"),
		Issuers:            []string{is.URL},
		Audiences:          []string{authtest.Audience},
		CORSAllowedOrigins: []string{testOrigin},
		ReadScopes:         []string{"todos:read"},
		WriteScopes:        []string{"todos:write"},
	}
}

// mustBuild builds the real todo API handler from cfg, as the todo-api
// program does. When ready is set it waits until /readyz answers 200.
func mustBuild(tb testing.TB, cfg Config, ready bool) *Server {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := New(ctx, cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { _ = h.Close() })
	if !ready {
		return h
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		if rec.Code == http.StatusOK {
			return h
		}
		if time.Now().After(deadline) {
			tb.Fatalf("never ready: %d %s", rec.Code, rec.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serve sends one request to h with the headers given as name, value
// pairs and returns the answer.
func serve(h http.Handler, method, target, body string, headers ...string) *httptest.ResponseRecorder {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

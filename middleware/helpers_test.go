package middleware_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// mustAuthenticator builds an Authenticator for is with test defaults,
// after edit changes the config, and waits until its keys are loaded.
func mustAuthenticator(tb testing.TB, is *authtest.Issuer, edit func(*middleware.Config)) *middleware.Authenticator {
	tb.Helper()
	cfg := middleware.Config{
		Issuer:         is.URL,
		Audiences:      []string{authtest.Audience},
		Realm:          "todo-api",
		CookieNames:    []string{"__Host-access_token", "__Secure-access_token"},
		AllowedOrigins: []string{"https://app.example.com"},
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	a, err := middleware.New(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	waitReady(tb, a)
	return a
}

func waitReady(tb testing.TB, a *middleware.Authenticator) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for a.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			tb.Fatal("keys never loaded")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// echoSubject is the protected handler of the tests: it writes the subject.
var echoSubject = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, ok := principal.From(r.Context())
	if !ok {
		http.Error(w, "no principal", http.StatusInternalServerError)
		return
	}
	_, _ = io.WriteString(w, p.Subject)
})

// do sends r through a.Require(echoSubject).
func do(a *middleware.Authenticator, r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	a.Require(echoSubject).ServeHTTP(w, r)
	return w
}

func bearerRequest(token string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/todos", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

// errorCode extracts error="..." from a WWW-Authenticate challenge.
func errorCode(h string) string {
	_, after, ok := strings.Cut(h, `error="`)
	if !ok {
		return ""
	}
	code, _, _ := strings.Cut(after, `"`)
	return code
}

// rawJWT assembles a compact JWS from parts without signing.
func rawJWT(header, payload any, sig string) string {
	enc := func(v any) string {
		var b []byte
		switch v := v.(type) {
		case string:
			b = []byte(v)
		default:
			b, _ = json.Marshal(v)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(header) + "." + enc(payload) + "." + sig
}

// problem decodes a problem+json answer.
func problem(tb testing.TB, w *httptest.ResponseRecorder) map[string]any {
	tb.Helper()
	if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
		tb.Fatalf("Content-Type = %q, want application/problem+json", ct)
	}
	var m map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
		tb.Fatalf("body is not JSON: %v", err)
	}
	return m
}

func rawJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

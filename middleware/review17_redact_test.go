package middleware_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/middleware"
)

// TestJWKSURLPasswordNeverLogged: a key set behind HTTP Basic names its
// credentials in JWKSURL; a failing fetch logs the URL without them.
func TestJWKSURLPasswordNeverLogged(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusInternalServerError)
	}))
	defer srv.Close()
	var logs syncBuffer
	u := strings.Replace(srv.URL, "http://", "http://reader:s3cret-pw@", 1) + "/jwks"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := middleware.New(ctx, middleware.Config{
		Issuer:    "http://issuer.example",
		Audiences: []string{"api"},
		JWKSURL:   u,
		LazyKeys:  true,
		Logger:    slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = a
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && !strings.Contains(logs.String(), "jwks refresh failed"); {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "jwks refresh failed") {
		t.Fatalf("no refresh failure logged: %s", logs.String())
	}
	if strings.Contains(logs.String(), "s3cret-pw") {
		t.Errorf("the JWKS password is in the logs:\n%s", logs.String())
	}
}

package middleware_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestOpaqueTokensEndingAlike: opaque tokens that differ only at the start
// (an introspection server's answer names the subject by the first part)
// each get their own caller, request after request, cached or not. A
// JWT's cache key is computed from its tail only; TestReview16… checks
// that an introspected token's is not.
func TestOpaqueTokensEndingAlike(t *testing.T) {
	is := authtest.NewIssuer(t)
	tail := "." + strings.Repeat("0123456789abcdef", 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub, rest, _ := strings.Cut(r.PostFormValue("token"), ".")
		if "."+rest != tail {
			_, _ = w.Write([]byte(`{"active":false}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"active": true, "sub": sub, "iss": is.URL, "aud": authtest.Audience, "exp": time.Now().Add(time.Hour).Unix()})
	}))
	t.Cleanup(srv.Close)
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Mode = middleware.ModeIntrospection
		c.Introspector = &introspection.Client{Endpoint: srv.URL, ClientID: "rs", ClientSecret: "secret", Timeout: time.Second, Logger: quiet()}
	})
	for i := range 12 {
		sub := []string{"alice", "bob", "carol"}[i%3]
		w := do(a, bearerRequest(sub+tail))
		if w.Code != http.StatusOK || w.Body.String() != sub {
			t.Fatalf("request %d with %s's token: %d %q", i, sub, w.Code, w.Body.String())
		}
	}
}

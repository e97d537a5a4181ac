package authtest_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// claimsOf reads a token's payload without verifying it.
func claimsOf(t *testing.T, tok string) map[string]any {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDefaultsNameNoApplication(t *testing.T) {
	is := authtest.NewIssuer(t)
	b, _ := json.Marshal(is.Claims("alice"))
	if strings.Contains(strings.ToLower(string(b)+authtest.Audience+authtest.IntrospectionClientID), "todo") {
		t.Fatalf("defaults name the todo API: %s, %s, %s", b, authtest.Audience, authtest.IntrospectionClientID)
	}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name   string
		issuer []authtest.Option
		token  []authtest.Option
		check  func(map[string]any) bool
	}{
		{"default audience", nil, nil, func(c map[string]any) bool { return c["aud"] == authtest.Audience }},
		{"issuer audience", []authtest.Option{authtest.WithAudience("billing")}, nil, func(c map[string]any) bool { return c["aud"] == "billing" }},
		{"token audiences", []authtest.Option{authtest.WithAudience("billing")}, []authtest.Option{authtest.WithAudience("a", "b")}, func(c map[string]any) bool {
			aud, _ := c["aud"].([]any)
			return len(aud) == 2 && aud[0] == "a" && aud[1] == "b"
		}},
		{"issuer scopes", []authtest.Option{authtest.WithScopes("x:read", "x:write")}, nil, func(c map[string]any) bool { return c["scope"] == "x:read x:write" }},
		{"token scopes win", []authtest.Option{authtest.WithScopes("x:read")}, []authtest.Option{authtest.WithScopes("y")}, func(c map[string]any) bool { return c["scope"] == "y" }},
		{"no scopes", nil, []authtest.Option{authtest.WithScopes()}, func(c map[string]any) bool { _, ok := c["scope"]; return !ok }},
		{"claims after scopes", []authtest.Option{authtest.WithClaims(func(c map[string]any) { c["tenant"] = "acme" })}, []authtest.Option{authtest.WithScopes("z"), authtest.WithClaims(func(c map[string]any) { c["scope"] = c["scope"].(string) + " extra" })}, func(c map[string]any) bool {
			return c["tenant"] == "acme" && c["scope"] == "z extra"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			is := authtest.NewIssuer(t, tt.issuer...)
			if c := claimsOf(t, is.Mint(t, "alice", tt.token...)); !tt.check(c) || c["sub"] != "alice" || c["iss"] != is.URL {
				t.Fatalf("claims %v", c)
			}
		})
	}
}

// TestHS256Issuer: an HS256 issuer's tokens pass an Authenticator that has
// its secret, and tokens of another secret do not.
func TestHS256Issuer(t *testing.T) {
	is := authtest.NewIssuer(t, authtest.WithHS256(nil))
	other := authtest.NewIssuer(t, authtest.WithHS256([]byte("another-secret-another-secret-another")))
	if len(is.HMACSecret()) < 32 {
		t.Fatalf("secret of %d bytes", len(is.HMACSecret()))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := middleware.New(ctx, middleware.Config{
		Issuer: is.URL, Audiences: []string{authtest.Audience}, HMACSecret: is.HMACSecret(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	h := a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, principal.Subject(r.Context())) }))
	otherTok := other.Mint(t, "alice")
	otherClaims := claimsOf(t, otherTok)
	otherClaims["iss"] = is.URL
	for _, tc := range []struct {
		name   string
		token  string
		status int
	}{
		{"Mint", is.Mint(t, "alice"), 200},
		{"Token", is.Token(t, "alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(time.Minute).Unix() }), 200},
		{"another secret", other.Sign(t, "HS256", jwt.MapClaims(otherClaims), nil), 401},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+tc.token)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.status {
			t.Errorf("%s: status %d, want %d", tc.name, w.Code, tc.status)
		}
	}
	if h := jwtHeader(t, is.Mint(t, "alice")); h["alg"] != "HS256" {
		t.Errorf("header %v", h)
	}
}

func jwtHeader(t *testing.T, tok string) map[string]any {
	t.Helper()
	tk, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	return tk.Header
}

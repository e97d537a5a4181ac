package ginauth_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/ginauth"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// TestGinExtensions: Optional, RequireAnyScope, and the Authenticator's
// ErrorHandler and realm on every refusal of the adapter.
func TestGinExtensions(t *testing.T) {
	gin.SetMode(gin.TestMode)
	is := authtest.NewIssuer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := middleware.New(ctx, middleware.Config{
		Issuer: is.URL, Audiences: []string{authtest.Audience}, Realm: "shop",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("X-Custom", middleware.Reason(err))
			middleware.WriteError(w, r, err)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	for a.Ready(ctx) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	r := gin.New()
	r.GET("/public", ginauth.Optional(a), func(c *gin.Context) {
		p, ok := ginauth.Principal(c)
		c.String(http.StatusOK, "hello %s %v", p.Subject, ok)
	})
	r.GET("/staff", ginauth.Require(a), ginauth.RequireAnyScope(a, "admin", "support"), func(c *gin.Context) {
		c.String(http.StatusOK, "staff %s", principal.Subject(c.Request.Context()))
	})
	r.GET("/both", ginauth.Require(a), ginauth.RequireScopes(a, "admin", "support"), func(c *gin.Context) {
		c.String(http.StatusOK, "both")
	})
	support := is.Mint(t, "alice", authtest.WithScopes("support"))
	tests := []struct {
		name, path, token string
		status            int
		body, challenge   string
		custom            string
	}{
		{"optional, no token", "/public", "", 200, "hello  false", "", ""},
		{"optional, valid token", "/public", support, 200, "hello alice true", "", ""},
		{"optional, bad token", "/public", "x.y.z", 401, "", `Bearer realm="shop", error="invalid_token", error_description="token is malformed"`, "malformed_token"},
		{"any-of, one held", "/staff", support, 200, "staff alice", "", ""},
		{"any-of, none held", "/staff", is.Mint(t, "bob", authtest.WithScopes("read")), 403, "", `Bearer realm="shop", error="insufficient_scope", error_description="token lacks every accepted scope", scope="admin support"`, "insufficient_scope"},
		{"all-of, one missing", "/both", support, 403, "", `Bearer realm="shop", error="insufficient_scope", error_description="token lacks a required scope", scope="admin support"`, "insufficient_scope"},
		{"require, no token", "/staff", "", 401, "", `Bearer realm="shop"`, "no_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", tt.path, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != tt.status || w.Header().Get("WWW-Authenticate") != tt.challenge || w.Header().Get("X-Custom") != tt.custom {
				t.Fatalf("got %d %q custom %q, want %d %q %q", w.Code, w.Header().Get("WWW-Authenticate"), w.Header().Get("X-Custom"), tt.status, tt.challenge, tt.custom)
			}
			if tt.status == 200 && w.Body.String() != tt.body {
				t.Fatalf("body %q, want %q", w.Body, tt.body)
			}
		})
	}
}

// Protect Gin routes: Require verifies the token, RequireScopes and
// RequireAnyScope check scopes, Optional admits anonymous callers, and
// handlers read the caller with Principal (or principal.From).
func Example() {
	gin.SetMode(gin.ReleaseMode)
	is := authtest.NewIssuer(logTB{})
	defer is.Server.Close()
	auth, err := middleware.New(context.Background(), middleware.Config{
		Issuer:    is.URL, // your authorization server
		Audiences: []string{authtest.Audience},
		Realm:     "shop",
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	for auth.Ready(context.Background()) != nil {
		time.Sleep(5 * time.Millisecond)
	}

	r := gin.New()
	r.GET("/catalog", ginauth.Optional(auth), func(c *gin.Context) {
		p, _ := ginauth.Principal(c)
		c.String(http.StatusOK, "catalog for %q", p.Subject)
	})
	api := r.Group("/", ginauth.Require(auth))
	api.GET("/orders", ginauth.RequireScopes(auth, "orders:read"), func(c *gin.Context) {
		p, _ := ginauth.Principal(c)
		c.JSON(http.StatusOK, gin.H{"owner": p.Subject})
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	for _, tc := range []struct{ path, token string }{
		{"/orders", is.Mint(logTB{}, "alice", authtest.WithScopes("orders:read"))},
		{"/orders", ""},
		{"/orders", is.Mint(logTB{}, "bob", authtest.WithScopes("profile"))},
		{"/catalog", ""},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"), strings.TrimSpace(string(body)))
	}
	// Output:
	// 200  {"owner":"alice"}
	// 401 Bearer realm="shop" {"detail":"no access token","reason":"no_token","status":401,"title":"Unauthorized","type":"about:blank"}
	// 403 Bearer realm="shop", error="insufficient_scope", error_description="token lacks a required scope", scope="orders:read" {"detail":"token lacks a required scope","reason":"insufficient_scope","status":403,"title":"Forbidden","type":"about:blank"}
	// 200  catalog for ""
}

// logTB lets an example use authtest outside a test: failures panic.
type logTB struct{}

func (logTB) Helper()                           {}
func (logTB) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (logTB) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (logTB) Cleanup(func())                    {}

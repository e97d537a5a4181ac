package ginauth_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/ginauth"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

func TestGinRoutes(t *testing.T) {
	gin.SetMode(gin.TestMode)
	is := authtest.NewIssuer(t, authtest.WithScopes("todos:read", "todos:write"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := middleware.New(ctx, middleware.Config{
		Issuer: is.URL, Audiences: []string{authtest.Audience}, Realm: "todo-api",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for a.Ready(ctx) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	handlerRan := false
	r := gin.New()
	api := r.Group("/", ginauth.Require(a))
	api.GET("/me", func(c *gin.Context) {
		handlerRan = true
		p, ok := ginauth.Principal(c)
		q, _ := principal.From(c.Request.Context())
		if !ok || p.Subject != q.Subject {
			c.Status(http.StatusInternalServerError)
			return
		}
		c.String(http.StatusOK, p.Subject)
	})
	api.POST("/todos", ginauth.RequireScopes(a, "todos:write"), func(c *gin.Context) {
		handlerRan = true
		c.Status(http.StatusCreated)
	})

	readOnly := is.Token(t, "bob", func(c jwt.MapClaims) { c["scope"] = "todos:read" })
	tests := []struct {
		name, method, path, token string
		status                    int
		challenge                 string
		ran                       bool
	}{
		{"valid", "GET", "/me", is.Token(t, "alice", nil), 200, "", true},
		{"no token", "GET", "/me", "", 401, `Bearer realm="todo-api"`, false},
		{"bad token", "GET", "/me", "x.y.z", 401, `error="invalid_token"`, false},
		{"scope granted", "POST", "/todos", is.Token(t, "alice", nil), 201, "", true},
		{"scope missing", "POST", "/todos", readOnly, 403, `error="insufficient_scope"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			handlerRan = false
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != tt.status || handlerRan != tt.ran {
				t.Fatalf("status %d (handler ran %v), want %d (%v)", w.Code, handlerRan, tt.status, tt.ran)
			}
			if tt.challenge != "" {
				if ch := w.Header().Get("WWW-Authenticate"); !strings.Contains(ch, tt.challenge) {
					t.Fatalf("challenge %q lacks %q", ch, tt.challenge)
				}
				if ct := w.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Fatalf("Content-Type %q", ct)
				}
			}
			if tt.status == 200 && w.Body.String() != "alice" {
				t.Fatalf("body %q", w.Body)
			}
		})
	}
}

// TestGinStepUp: RequireStepUp answers a token whose authentication falls
// short with the RFC 9470 challenge, and lets a stepped-up one through.
func TestGinStepUp(t *testing.T) {
	gin.SetMode(gin.TestMode)
	is := authtest.NewIssuer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := middleware.New(ctx, middleware.Config{
		Issuer: is.URL, Audiences: []string{authtest.Audience}, Realm: "todo-api",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for a.Ready(ctx) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	need := middleware.StepUp{ACRValues: []string{"urn:example:acr:2fa"}, MaxAge: 10 * time.Minute}
	ran := false
	r := gin.New()
	r.DELETE("/todos", ginauth.Require(a), ginauth.RequireStepUp(a, need), func(c *gin.Context) {
		ran = true
		c.Status(http.StatusNoContent)
	})
	at := func(acr string, age time.Duration) string {
		return is.Token(t, "alice", func(c jwt.MapClaims) {
			c["acr"] = acr
			c["auth_time"] = time.Now().Add(-age).Unix()
		})
	}
	tests := []struct {
		name, token string
		status      int
		challenge   string
	}{
		{"stepped up", at("urn:example:acr:2fa", time.Minute), http.StatusNoContent, ""},
		{"password only", at("urn:example:acr:password", time.Minute), http.StatusUnauthorized,
			`Bearer realm="todo-api", error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:example:acr:2fa", max_age="600"`},
		{"too long ago", at("urn:example:acr:2fa", time.Hour), http.StatusUnauthorized,
			`Bearer realm="todo-api", error="insufficient_user_authentication", error_description="More recent authentication is required", acr_values="urn:example:acr:2fa", max_age="600"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ran = false
			req := httptest.NewRequest(http.MethodDelete, "/todos", nil)
			req.Header.Set("Authorization", "Bearer "+tt.token)
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != tt.status || ran != (tt.challenge == "") {
				t.Fatalf("status %d (handler ran %v), want %d", w.Code, ran, tt.status)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Fatalf("WWW-Authenticate\n got %s\nwant %s", got, tt.challenge)
			}
		})
	}

	defer func() {
		if recover() == nil {
			t.Fatal("RequireStepUp accepted a negative MaxAge")
		}
	}()
	ginauth.RequireStepUp(a, middleware.StepUp{MaxAge: -time.Second})
}

// TestGinRoles: RequireRoles and RequireAnyRole answer as the net/http
// ones do (403, no scope attribute, reason insufficient_role), and a
// scope of the same name never passes for a role.
func TestGinRoles(t *testing.T) {
	gin.SetMode(gin.TestMode)
	is := authtest.NewIssuer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := middleware.New(ctx, middleware.Config{
		Issuer: is.URL, Audiences: []string{authtest.Audience}, Realm: "todo-api",
		RoleClaims: []string{"roles"},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for a.Ready(ctx) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	r := gin.New()
	api := r.Group("/", ginauth.Require(a))
	api.GET("/all", ginauth.RequireRoles(a, "editor", "admin"), func(c *gin.Context) { c.Status(http.StatusNoContent) })
	api.GET("/any", ginauth.RequireAnyRole(a, "editor", "admin"), func(c *gin.Context) { c.Status(http.StatusNoContent) })
	editor := is.Token(t, "alice", func(c jwt.MapClaims) { c["roles"] = []string{"editor"}; c["scope"] = "admin" })
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/all", 403}, // the scope admin is no role
		{"/any", 204},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.path, nil)
		req.Header.Set("Authorization", "Bearer "+editor)
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != tc.status {
			t.Fatalf("%s: %d, want %d", tc.path, w.Code, tc.status)
		}
		if tc.status == 403 {
			if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="todo-api", error="insufficient_scope", error_description="token lacks a required role"` {
				t.Errorf("challenge %s", got)
			}
			if !strings.Contains(w.Body.String(), `"reason":"insufficient_role"`) {
				t.Errorf("body %s", w.Body)
			}
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("RequireAnyRole with no role did not panic")
		}
	}()
	ginauth.RequireAnyRole(a)
}

// TestGinDPoPNonceOnSuccess: with DPoP server nonces, Require and Optional
// give an accepted DPoP request the nonce for its next proof, as
// middleware.Require does (RFC 9449 §8.2), so a client is not refused each
// time the nonce rotates; a Bearer request gets none.
func TestGinDPoPNonceOnSuccess(t *testing.T) {
	gin.SetMode(gin.TestMode)
	is := authtest.NewIssuer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := middleware.New(ctx, middleware.Config{
		Issuer: is.URL, Audiences: []string{authtest.Audience},
		DPoP:          middleware.DPoPAllowed,
		DPoPNonceKeys: [][]byte{[]byte(strings.Repeat("k", 32))},
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	for a.Ready(ctx) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	r := gin.New()
	ok := func(c *gin.Context) { c.Status(http.StatusNoContent) }
	r.GET("/required", ginauth.Require(a), ok)
	r.GET("/optional", ginauth.Optional(a), ok)

	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	for _, path := range []string{"/required", "/optional"} {
		t.Run(path, func(t *testing.T) {
			send := func(nonce string) *httptest.ResponseRecorder {
				req := httptest.NewRequest("GET", path, nil)
				req.Header.Set("Authorization", "DPoP "+tok)
				var opts []authtest.ProofOption
				if nonce != "" {
					opts = append(opts, authtest.WithProofNonce(nonce))
				}
				req.Header.Set("DPoP", k.Proof(t, "GET", "http://example.com"+path, tok, opts...))
				w := httptest.NewRecorder()
				r.ServeHTTP(w, req)
				return w
			}
			first := send("")
			nonce := first.Header().Get(middleware.DPoPNonceHeader)
			if first.Code != http.StatusUnauthorized || nonce == "" {
				t.Fatalf("without a nonce: %d, nonce %q", first.Code, nonce)
			}
			w := send(nonce)
			if w.Code != http.StatusNoContent {
				t.Fatalf("with the nonce: %d %s", w.Code, w.Header().Get("WWW-Authenticate"))
			}
			if w.Header().Get(middleware.DPoPNonceHeader) == "" {
				t.Error("an accepted DPoP request got no DPoP-Nonce for its next proof")
			}

			req := httptest.NewRequest("GET", path, nil)
			req.Header.Set("Authorization", "Bearer "+is.Token(t, "bob", nil))
			w = httptest.NewRecorder()
			r.ServeHTTP(w, req)
			if w.Code != http.StatusNoContent || w.Header().Get(middleware.DPoPNonceHeader) != "" {
				t.Errorf("Bearer: %d, DPoP-Nonce %q", w.Code, w.Header().Get(middleware.DPoPNonceHeader))
			}
		})
	}
}

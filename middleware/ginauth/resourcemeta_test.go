package ginauth_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/ginauth"
)

// TestServeResourceMetadata: a Gin router serves the RFC 9728 document for
// GET and HEAD (and a CORS preflight) at the path derived from the resource identifier, outside
// authentication, and Gin's refusals carry resource_metadata; with no
// ResourceMetadata nothing is registered.
func TestServeResourceMetadata(t *testing.T) {
	gin.SetMode(gin.TestMode)
	is := authtest.NewIssuer(t)
	build := func(meta *middleware.ResourceMetadata) (*gin.Engine, *middleware.Authenticator) {
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		a, err := middleware.New(ctx, middleware.Config{
			Issuer: is.URL, Audiences: []string{authtest.Audience},
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), ResourceMetadata: meta,
		})
		if err != nil {
			t.Fatal(err)
		}
		r := gin.New()
		ginauth.ServeResourceMetadata(r, a)
		r.GET("/mcp", ginauth.Require(a), func(c *gin.Context) { c.String(200, "ok") })
		return r, a
	}
	r, a := build(&middleware.ResourceMetadata{Resource: "https://mcp.example.com/mcp", ScopesSupported: []string{"mcp"}})
	const wk = "/.well-known/oauth-protected-resource/mcp"
	for _, method := range []string{"GET", "HEAD"} {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, httptest.NewRequest(method, wk, nil))
		if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("%s %s: %d %q", method, wk, w.Code, w.Header().Get("Content-Type"))
		}
		if method == "GET" {
			var doc map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || doc["resource"] != "https://mcp.example.com/mcp" {
				t.Errorf("document %s (%v)", w.Body, err)
			}
		}
	}
	pre := httptest.NewRequest("OPTIONS", wk, nil)
	pre.Header.Set("Origin", "https://client.example")
	pre.Header.Set("Access-Control-Request-Method", "GET")
	w := httptest.NewRecorder()
	r.ServeHTTP(w, pre)
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("CORS preflight: %d %v", w.Code, w.Header())
	}
	w = httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest("GET", "/mcp", nil))
	if ch := w.Header().Get("WWW-Authenticate"); w.Code != 401 || !strings.Contains(ch, `resource_metadata="`+a.ResourceMetadataURL()+`"`) {
		t.Errorf("401 without token: %d %q", w.Code, ch)
	}

	plain, _ := build(nil)
	w = httptest.NewRecorder()
	plain.ServeHTTP(w, httptest.NewRequest("GET", "/.well-known/oauth-protected-resource", nil))
	if w.Code != http.StatusNotFound {
		t.Errorf("without ResourceMetadata: %d", w.Code)
	}
	if n := len(plain.Routes()); n != 1 {
		t.Errorf("without ResourceMetadata %d routes registered, want 1", n)
	}
}

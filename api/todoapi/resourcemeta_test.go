package todoapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/internal/openapitest"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestResourceMetadata: with RESOURCE_URL the API serves its RFC 9728
// metadata as openapi.yaml describes it, at the URL derived from the
// resource identifier, and every challenge names it; without, neither.
func TestResourceMetadata(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	v := openapitest.New(t)
	const wk = "/.well-known/oauth-protected-resource"
	tests := []struct {
		name, resource, baseURL string
		path                    string // where the document is served
		doc                     map[string]any
	}{
		{
			name: "resource without path", resource: "https://todo.example.com", baseURL: "https://todo.example.com/",
			path: wk,
			doc: map[string]any{
				"resource": "https://todo.example.com", "authorization_servers": []any{is.URL},
				"scopes_supported": []any{"todos:read", "todos:write"}, "bearer_methods_supported": []any{"header"},
				"resource_name": "Tollgate todo API", "resource_documentation": "https://todo.example.com/docs",
			},
		},
		{
			name: "resource with path", resource: "http://127.0.0.1:8080/todo-api",
			path: wk + "/todo-api",
			doc: map[string]any{
				"resource": "http://127.0.0.1:8080/todo-api", "authorization_servers": []any{is.URL},
				"scopes_supported": []any{"todos:read", "todos:write"}, "bearer_methods_supported": []any{"header"},
				"resource_name": "Tollgate todo API",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, is)
			cfg.ResourceURL, cfg.BaseURL = tt.resource, tt.baseURL
			h := mustBuild(t, cfg, true)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("GET %s: %d %q %s", tt.path, rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			var doc map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || !reflect.DeepEqual(doc, tt.doc) {
				t.Errorf("document %s, want %v (%v)", rec.Body, tt.doc, err)
			}
			if tt.path == wk {
				// Checked against openapi.yaml, which describes the root form.
				v.Serve(t, h, httptest.NewRequest(http.MethodGet, wk, nil))
				v.Serve(t, h, httptest.NewRequest(http.MethodHead, wk, nil))
			} else {
				if rec := serve(h, http.MethodGet, wk, ""); rec.Code != http.StatusNotFound {
					t.Errorf("GET %s with a path resource: %d, want 404", wk, rec.Code)
				}
			}
			for _, c := range []struct {
				name, method, auth string
				status             int
			}{
				{"no token", http.MethodGet, "", 401},
				{"bad token", http.MethodGet, "Bearer x.y.z", 401},
				{"no write scope", http.MethodPost, "Bearer " + is.Token(t, "alice", func(c jwt.MapClaims) { c["scope"] = "todos:read" }), 403},
			} {
				headers := []string{"Content-Type", "application/json"}
				if c.auth != "" {
					headers = append(headers, "Authorization", c.auth)
				}
				rec := serve(h, c.method, "/todos", `{"title":"x"}`, headers...)
				ch := rec.Header().Get("WWW-Authenticate")
				if rec.Code != c.status || !strings.Contains(ch, `resource_metadata="`+originOf(tt.resource)+tt.path+`"`) {
					t.Errorf("%s: %d %q", c.name, rec.Code, ch)
				}
			}
		})
	}
	t.Run("without RESOURCE_URL", func(t *testing.T) {
		h := mustBuild(t, testConfig(t, is), true)
		if rec := serve(h, http.MethodGet, wk, ""); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", wk, rec.Code)
		}
		rec := serve(h, http.MethodGet, "/todos", "")
		if ch := rec.Header().Get("WWW-Authenticate"); rec.Code != 401 || strings.Contains(ch, "resource_metadata") {
			t.Errorf("%d %q", rec.Code, ch)
		}
	})
	t.Run("bad RESOURCE_URL", func(t *testing.T) {
		for _, bad := range []string{"http://todo.example.com", "https://todo.example.com/#x", "todo.example.com"} {
			cfg := testConfig(t, is)
			cfg.ResourceURL = bad
			_, err := New(context.Background(), cfg)
			if err == nil || !strings.HasPrefix(err.Error(), "RESOURCE_URL: ") {
				t.Errorf("%q: err = %v, want one naming RESOURCE_URL", bad, err)
			}
		}
	})
}

// originOf returns scheme://host[:port] of an absolute URL.
func originOf(u string) string {
	scheme, rest, _ := strings.Cut(u, "://")
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + host
}

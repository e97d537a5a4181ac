package todoapi

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/openapitest"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestRoutesMatchOpenAPI: every route the server serves is in openapi.yaml
// with its method, and every operation of openapi.yaml is served.
func TestRoutesMatchOpenAPI(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	cfg := testConfig(t, is)
	cfg.ResourceURL = "https://todo.example.com" // serves the RFC 9728 route too
	srv := mustBuild(t, cfg, false)
	ginParam := regexp.MustCompile(`:([A-Za-z_]+)`)
	var served []string
	for _, rt := range srv.engine.Routes() {
		if rt.Path == "/docs/*asset" { // Swagger UI's files, documented as /docs
			continue
		}
		served = append(served, rt.Method+" "+ginParam.ReplaceAllString(rt.Path, "{$1}"))
	}
	var documented []string
	doc := openapitest.New(t).Document()
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(served)
	slices.Sort(documented)
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("%s is served but not in openapi.yaml", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("%s is in openapi.yaml but not served", r)
		}
	}
	if len(served) < 10 {
		t.Errorf("only %d routes found: %v", len(served), served)
	}
}

// TestUnmatchedTodoAnswersArePrivate: a 404 or 405 on a todo path, to a
// caller with a valid token, is as private as the routes' own answers; the
// other unmatched answers are no-store.
func TestUnmatchedTodoAnswersArePrivate(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	h := mustBuild(t, testConfig(t, is), true)
	bearer := "Bearer " + is.Token(t, "alice", nil)
	tests := []struct {
		method, path string
		status       int
		private      bool
	}{
		{"PUT", "/todos", http.StatusMethodNotAllowed, true},
		{"HEAD", "/todos", http.StatusMethodNotAllowed, true},
		{"GET", "/todos/", http.StatusNotFound, true},
		{"GET", "/todos/x/y", http.StatusNotFound, true},
		{"PUT", "/todos/abc", http.StatusMethodNotAllowed, true},
		{"GET", "/nothing-here", http.StatusNotFound, false},
		{"POST", "/healthz", http.StatusMethodNotAllowed, false},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := serve(h, tt.method, tt.path, "", "Authorization", bearer, "Origin", testOrigin)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d", rec.Code, tt.status)
			}
			cc := rec.Header().Get("Cache-Control")
			vary := strings.Join(rec.Header().Values("Vary"), ",")
			if tt.private {
				if cc != "private, no-store" {
					t.Errorf("Cache-Control %q, want private, no-store", cc)
				}
				for _, f := range []string{"Origin", "Cookie", "Authorization"} {
					if !strings.Contains(vary, f) {
						t.Errorf("Vary %q lacks %s", vary, f)
					}
				}
			} else if cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
		})
	}
}

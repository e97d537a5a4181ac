package todoapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// varyTokens lists the field names of every Vary header value, as
// written.
func varyTokens(h http.Header) []string {
	var out []string
	for _, v := range h.Values("Vary") {
		for _, tok := range strings.Split(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" {
				out = append(out, tok)
			}
		}
	}
	return out
}

// checkPrivate fails unless rec may be kept by no cache and names what it
// depends on in Vary, each field once. wantCacheControl is the exact
// Cache-Control the answer must carry.
func checkPrivate(t *testing.T, rec *httptest.ResponseRecorder, wantCacheControl string) {
	t.Helper()
	if got := rec.Header().Values("Cache-Control"); len(got) != 1 || got[0] != wantCacheControl {
		t.Errorf("Cache-Control %q, want %q", got, wantCacheControl)
	}
	tokens := varyTokens(rec.Header())
	for _, want := range []string{"Origin", "Cookie", "Authorization"} {
		if n := slices.IndexFunc(tokens, func(s string) bool { return strings.EqualFold(s, want) }); n < 0 {
			t.Errorf("Vary %q lacks %s", rec.Header().Values("Vary"), want)
		}
	}
	seen := map[string]bool{}
	for _, tok := range tokens {
		if seen[strings.ToLower(tok)] {
			t.Errorf("Vary %q names %s twice", rec.Header().Values("Vary"), tok)
		}
		seen[strings.ToLower(tok)] = true
	}
}

// TestAuthenticatedAnswersArePrivate: no shared cache may keep or serve
// one caller's todos to another, so every answer of a todo route, success
// or error, says no-store and varies by the credentials and the Origin.
func TestAuthenticatedAnswersArePrivate(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	h := mustBuild(t, testConfig(t, is), true)
	tok := is.Token(t, "alice", nil)
	bearer := "Bearer " + tok
	create := serve(h, "POST", "/todos", `{"title":"milk"}`, "Authorization", bearer, "Content-Type", "application/json")
	if create.Code != 201 {
		t.Fatalf("create: %d %s", create.Code, create.Body)
	}
	var todo struct{ ID string }
	if err := json.Unmarshal(create.Body.Bytes(), &todo); err != nil || todo.ID == "" {
		t.Fatalf("create body %s: %v", create.Body, err)
	}
	doomed := serve(h, "POST", "/todos", `{"title":"bread"}`, "Authorization", bearer, "Content-Type", "application/json")
	var doomedTodo struct{ ID string }
	_ = json.Unmarshal(doomed.Body.Bytes(), &doomedTodo)
	const missing = "00000000-0000-4000-8000-000000000000"
	readOnly := is.Token(t, "alice", func(c jwt.MapClaims) { c["scope"] = "todos:read" })

	const private = "private, no-store"
	tests := []struct {
		name, method, path, body string
		headers                  []string // beyond Origin
		status                   int
		cacheControl             string
	}{
		{"list", "GET", "/todos", "", []string{"Authorization", bearer}, 200, private},
		{"list bad cursor", "GET", "/todos?cursor=%%%", "", []string{"Authorization", bearer}, 400, private},
		{"create", "POST", "/todos", `{"title":"eggs"}`, []string{"Authorization", bearer, "Content-Type", "application/json"}, 201, private},
		{"create malformed", "POST", "/todos", `{"title":`, []string{"Authorization", bearer, "Content-Type", "application/json"}, 400, private},
		{"create invalid", "POST", "/todos", `{"title":""}`, []string{"Authorization", bearer, "Content-Type", "application/json"}, 422, private},
		{"get", "GET", "/todos/" + todo.ID, "", []string{"Authorization", bearer}, 200, private},
		{"get missing", "GET", "/todos/" + missing, "", []string{"Authorization", bearer}, 404, private},
		{"patch", "PATCH", "/todos/" + todo.ID, `{"completed":true}`, []string{"Authorization", bearer, "Content-Type", "application/json"}, 200, private},
		{"patch malformed", "PATCH", "/todos/" + todo.ID, `{"completed":`, []string{"Authorization", bearer, "Content-Type", "application/json"}, 400, private},
		{"patch missing", "PATCH", "/todos/" + missing, `{"completed":true}`, []string{"Authorization", bearer, "Content-Type", "application/json"}, 404, private},
		{"delete", "DELETE", "/todos/" + doomedTodo.ID, "", []string{"Authorization", bearer}, 204, private},
		{"delete missing", "DELETE", "/todos/" + missing, "", []string{"Authorization", bearer}, 404, private},
		{"delete all bad query", "DELETE", "/todos?completed=maybe", "", []string{"Authorization", bearer}, 400, private},
		{"delete completed", "DELETE", "/todos?completed=true", "", []string{"Authorization", bearer}, 204, private},
		{"cookie list", "GET", "/todos", "", []string{"Cookie", "__Host-access_token=" + tok, "X-CSRF", "1"}, 200, private},
		// Refusals by the middleware keep its own no-store.
		{"no token", "GET", "/todos", "", nil, 401, "no-store"},
		{"malformed authorization", "GET", "/todos/" + todo.ID, "", []string{"Authorization", "Bearer a b"}, 400, "no-store"},
		{"cookie without X-CSRF", "GET", "/todos", "", []string{"Cookie", "__Host-access_token=" + tok}, 400, "no-store"},
		{"bad token", "DELETE", "/todos", "", []string{"Authorization", "Bearer " + tok + "x"}, 401, "no-store"},
		{"insufficient scope", "POST", "/todos", `{"title":"x"}`, []string{"Authorization", "Bearer " + readOnly, "Content-Type", "application/json"}, 403, "no-store"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serve(h, tt.method, tt.path, tt.body, append([]string{"Origin", testOrigin}, tt.headers...)...)
			if rec.Code != tt.status {
				t.Fatalf("%s %s: %d, want %d: %s", tt.method, tt.path, rec.Code, tt.status, rec.Body)
			}
			if rec.Header().Get("Access-Control-Allow-Origin") != testOrigin {
				t.Errorf("no CORS headers: %v", rec.Header())
			}
			checkPrivate(t, rec, tt.cacheControl)
		})
	}
	t.Run("without Origin", func(t *testing.T) {
		checkPrivate(t, serve(h, "GET", "/todos", "", "Authorization", bearer), private)
	})
}

// TestKeysNotLoadedAnswerIsPrivate: the 503 the middleware answers while
// the signing keys cannot be fetched is not kept either.
func TestKeysNotLoadedAnswerIsPrivate(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	is.SetDown(true)
	h := mustBuild(t, testConfig(t, is), false)
	rec := serve(h, "GET", "/todos", "", "Origin", testOrigin, "Authorization", "Bearer "+is.Token(t, "alice", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("%d, want 503: %s", rec.Code, rec.Body)
	}
	checkPrivate(t, rec, "no-store")
}

// TestPublicEndpointsCaching: the unauthenticated endpoints keep caching
// rules of their own. Health, readiness and metrics are live state, never
// kept; openapi.yaml is public and revalidated by its ETag.
func TestPublicEndpointsCaching(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	h := mustBuild(t, testConfig(t, is), true)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		rec := serve(h, "GET", path, "")
		if rec.Code != 200 || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("%s: %d, Cache-Control %q, want no-store", path, rec.Code, rec.Header().Get("Cache-Control"))
		}
	}
	rec := serve(h, "GET", "/openapi.yaml", "")
	etag := rec.Header().Get("ETag")
	if rec.Code != 200 || rec.Body.String() != string(tollgate.OpenAPI) || rec.Header().Get("Cache-Control") != "public, no-cache" ||
		!strings.HasPrefix(etag, `"`) || !strings.Contains(rec.Header().Get("Content-Type"), "yaml") {
		t.Fatalf("openapi.yaml: %d, headers %v", rec.Code, rec.Header())
	}
	if again := serve(h, "GET", "/openapi.yaml", "", "If-None-Match", etag); again.Code != http.StatusNotModified || again.Body.Len() != 0 {
		t.Errorf("openapi.yaml with its ETag: %d, %d bytes; want 304", again.Code, again.Body.Len())
	}
	if other := serve(h, "GET", "/openapi.yaml", "", "If-None-Match", `"other"`); other.Code != 200 {
		t.Errorf("openapi.yaml with another ETag: %d", other.Code)
	}
}

package todos_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/openapitest"
	"github.com/tollgate-dev/tollgate/todos"
)

// TestAllowDeleteAll: the hook guards exactly the request that deletes
// every todo. Its refusal is the answer, and nothing is deleted; clearing
// the completed todos, and a request that is answered 400 anyway, never
// ask it.
func TestAllowDeleteAll(t *testing.T) {
	t.Parallel()
	asked := 0
	allow := false
	s := newTestServer(t, todos.Config{AllowDeleteAll: func(w http.ResponseWriter, r *http.Request) bool {
		asked++
		if allow {
			return true
		}
		// What the todo API's step-up check answers.
		w.Header().Set("WWW-Authenticate", `Bearer realm="todo-api", error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:tollgate:acr:2fa"`)
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": "Unauthorized", "status": 401, "detail": "A different authentication level is required"})
		return false
	}}, todos.StoreConfig{})
	s.mustCreate("", `{"title":"open"}`)
	s.mustCreate("", `{"title":"done","completed":true}`)
	before := s.snapshot("alice")

	rec := s.do(request{method: "DELETE", target: "/todos"})
	if rec.Code != http.StatusUnauthorized || asked != 1 {
		t.Fatalf("refused delete-all: %d (hook asked %d times) %s", rec.Code, asked, rec.Body)
	}
	if got := s.snapshot("alice"); got != before {
		t.Fatalf("a refused delete-all changed the list:\n%s\nwas\n%s", got, before)
	}
	for _, bad := range []struct {
		target string
		mark   func(*http.Request) *http.Request
	}{
		{"/todos?completed=maybe", openapitest.ExpectInvalid},
		// Beyond what the document can say: the handler's own refusals.
		{"/todos?completed=true&completed=true", openapitest.SkipRequestCheck},
		{"/todos?%zz", openapitest.SkipRequestCheck},
	} {
		if rec := s.do(request{method: "DELETE", target: bad.target, mark: bad.mark}); rec.Code != http.StatusBadRequest {
			t.Errorf("DELETE %s: %d, want 400", bad.target, rec.Code)
		}
	}
	if asked != 1 {
		t.Fatalf("a malformed request asked the hook (%d times)", asked)
	}
	if rec := s.do(request{method: "DELETE", target: "/todos?completed=true"}); rec.Code != http.StatusNoContent || asked != 1 {
		t.Fatalf("clear completed: %d, hook asked %d times, want 204 without asking", rec.Code, asked)
	}
	allow = true
	if rec := s.do(request{method: "DELETE", target: "/todos"}); rec.Code != http.StatusNoContent || asked != 2 {
		t.Fatalf("allowed delete-all: %d, hook asked %d times", rec.Code, asked)
	}
	if got := s.snapshot("alice"); got == before {
		t.Fatal("the allowed delete-all deleted nothing")
	}
}

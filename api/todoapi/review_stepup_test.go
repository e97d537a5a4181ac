package todoapi

import (
	"encoding/json"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestReviewStepUpDeleteAllOutcomeWithWeakToken: with
// REQUIRE_ACR_FOR_DELETE_ALL set, a password-only token is refused
// DELETE /todos, yet reaches the same outcome (an empty list) in two
// requests per todo: PATCH completed=true, then DELETE ?completed=true,
// which is not a step-up route. The test fails while the step-up guards
// only the one request shape and not the outcome.
func TestReviewStepUpDeleteAllOutcomeWithWeakToken(t *testing.T) {
	if os.Getenv("TOLLGATE_REVIEW_DESIGN") == "" {
		t.Skip("a design question for the lead (see review-stepup-REPORT.md): TOLLGATE_REVIEW_DESIGN=1 runs it")
	}
	is := authtest.NewIssuer(t, todoScopes)
	cfg := testConfig(t, is)
	cfg.RequireACRForDeleteAll = []string{"urn:tollgate:acr:2fa"}
	cfg.MaxAuthAgeForDeleteAll = 5 * time.Minute
	h := mustBuild(t, cfg, true)
	weak := "Bearer " + is.Token(t, "alice", func(c jwt.MapClaims) {
		c["acr"] = "urn:tollgate:acr:password"
		c["auth_time"] = time.Now().Unix()
	})
	hdr := []string{"Authorization", weak, "Content-Type", "application/json"}

	var ids []string
	for _, title := range []string{"keep me", "and me", "me too"} {
		rec := serve(h, http.MethodPost, "/todos", `{"title":"`+title+`"}`, hdr...)
		if rec.Code != http.StatusCreated {
			t.Fatalf("POST: %d %s", rec.Code, rec.Body)
		}
		var todo struct{ ID string }
		_ = json.Unmarshal(rec.Body.Bytes(), &todo)
		ids = append(ids, todo.ID)
	}
	if rec := serve(h, http.MethodDelete, "/todos", "", hdr...); rec.Code != http.StatusUnauthorized {
		t.Fatalf("DELETE /todos with a weak token: %d, want 401 (the step-up route)", rec.Code)
	}

	// The same outcome, without the step-up.
	for _, id := range ids {
		if rec := serve(h, http.MethodPatch, "/todos/"+id, `{"completed":true}`, hdr...); rec.Code != http.StatusOK {
			t.Fatalf("PATCH: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := serve(h, http.MethodDelete, "/todos?completed=true", "", hdr...); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE ?completed=true: %d %s", rec.Code, rec.Body)
	}
	gone := 0
	for _, id := range ids {
		if rec := serve(h, http.MethodGet, "/todos/"+id, "", hdr...); rec.Code == http.StatusNotFound {
			gone++
		}
	}
	if gone == len(ids) {
		t.Errorf("a token without the required acr deleted all %d todos in %d requests, though DELETE /todos asks it for step-up", gone, len(ids)+1)
	}
}

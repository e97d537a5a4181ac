package openapitest_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/openapitest"
)

const (
	id   = "K5QPXYFJ3NN3CJLVUW3ZRJQ2KE"
	todo = `{"id":"` + id + `","title":"Buy milk","completed":false,"order":0,` +
		`"url":"http://example.com/todos/` + id + `","created_at":"2025-01-02T03:04:05Z","updated_at":"2025-01-02T03:04:05Z"}`
	etag = `"` + id + `-1"`
)

func newRequest(method, target, body string) *http.Request {
	var r *http.Request
	if body == "" {
		r = httptest.NewRequest(method, target, nil)
	} else {
		r = httptest.NewRequest(method, target, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Authorization", "Bearer t")
	return r
}

// TestCheckRequest shows the document's rules as kin-openapi applies them,
// OpenAPI 3.1 features included (type arrays, const, patterns).
func TestCheckRequest(t *testing.T) {
	v := openapitest.New(t)
	cookie := func(csrf bool) *http.Request {
		r := httptest.NewRequest("GET", "/todos", nil)
		r.AddCookie(&http.Cookie{Name: "__Host-access_token", Value: "t"})
		if csrf {
			r.Header.Set("X-CSRF", "1")
		}
		return r
	}
	dpop := func(auth string, proofs ...string) *http.Request {
		r := httptest.NewRequest("GET", "/todos", nil)
		r.Header.Set("Authorization", auth)
		for _, p := range proofs {
			r.Header.Add("DPoP", p)
		}
		return r
	}
	tests := []struct {
		name  string
		req   *http.Request
		body  string
		valid bool
	}{
		{"list_with_dpop", dpop("DPoP t", "a.b.c"), "", true},
		{"list_with_dpop_without_proof", dpop("DPoP t"), "", false},
		{"list_with_dpop_and_two_proofs", dpop("DPoP t", "a.b.c", "d.e.f"), "", false},
		{"list_with_dpop_proof_not_a_jws", dpop("DPoP t", "not a jws"), "", false},
		{"list_with_bearer_and_proof", dpop("Bearer t", "a.b.c"), "", true},
		{"list", newRequest("GET", "/todos?limit=10&completed=false", ""), "", true},
		{"list_without_token", httptest.NewRequest("GET", "/todos", nil), "", false},
		{"list_with_cookie_and_csrf", cookie(true), "", true},
		{"list_with_cookie_without_csrf", cookie(false), "", false},
		{"limit_over_500", newRequest("GET", "/todos?limit=501", ""), "", false},
		{"create", newRequest("POST", "/todos", `{"title":"a","order":-1}`), `{"title":"a","order":-1}`, true},
		{"create_unknown_field", newRequest("POST", "/todos", `{"title":"a","x":1}`), `{"title":"a","x":1}`, false},
		{"create_blank_title", newRequest("POST", "/todos", `{"title":"  "}`), `{"title":"  "}`, false},
		{"create_control_character", newRequest("POST", "/todos", `{"title":"a\tb"}`), `{"title":"a\tb"}`, false},
		{"create_null_completed", newRequest("POST", "/todos", `{"title":"a","completed":null}`), `{"title":"a","completed":null}`, false},
		{"patch_nulls", newRequest("PATCH", "/todos/"+id, `{"title":null,"completed":null,"order":null}`), `{"title":null,"completed":null,"order":null}`, true},
		{"patch_completed_string", newRequest("PATCH", "/todos/"+id, `{"completed":"no"}`), `{"completed":"no"}`, false},
		{"patch_empty_title", newRequest("PATCH", "/todos/"+id, `{"title":""}`), `{"title":""}`, false},
		{"delete_completed_false", newRequest("DELETE", "/todos?completed=false", ""), "", false},
		{"unknown_path", newRequest("GET", "/nope", ""), "", false},
		{"healthz_needs_no_token", httptest.NewRequest("GET", "/healthz", nil), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.CheckRequest(tt.req, []byte(tt.body))
			if (err == nil) != tt.valid {
				t.Errorf("valid = %t, want %t (%v)", err == nil, tt.valid, err)
			}
		})
	}
}

// TestCheckResponse shows that drift in a response is caught.
func TestCheckResponse(t *testing.T) {
	v := openapitest.New(t)
	h := func(kv ...string) http.Header {
		hd := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			hd.Set(kv[i], kv[i+1])
		}
		return hd
	}
	const problem = `{"type":"about:blank","title":"Not Found","status":404,"detail":"no"}`
	tests := []struct {
		name   string
		req    *http.Request
		status int
		header http.Header
		body   string
		valid  bool
	}{
		{"get", newRequest("GET", "/todos/"+id, ""), 200, h("Content-Type", "application/json; charset=utf-8", "ETag", etag), todo, true},
		{"get_without_etag", newRequest("GET", "/todos/"+id, ""), 200, h("Content-Type", "application/json"), todo, false},
		{"get_without_url", newRequest("GET", "/todos/"+id, ""), 200, h("Content-Type", "application/json", "ETag", etag), strings.Replace(todo, `"url":"http://example.com/todos/`+id+`",`, "", 1), false},
		{"get_extra_field", newRequest("GET", "/todos/"+id, ""), 200, h("Content-Type", "application/json", "ETag", etag), strings.Replace(todo, `{`, `{"owner":"alice",`, 1), false},
		{"created_without_location", newRequest("POST", "/todos", `{"title":"a"}`), 201, h("Content-Type", "application/json", "ETag", etag), todo, false},
		{"list_null", newRequest("GET", "/todos", ""), 200, h("Content-Type", "application/json"), `null`, false},
		{"list_bad_link", newRequest("GET", "/todos", ""), 200, h("Content-Type", "application/json", "Link", "next"), `[]`, false},
		{"undocumented_status", newRequest("GET", "/todos", ""), 418, h("Content-Type", "application/problem+json"), problem, false},
		{"problem_as_json", newRequest("GET", "/todos/"+id, ""), 404, h("Content-Type", "application/json"), problem, false},
		{"not_found", newRequest("GET", "/todos/"+id, ""), 404, h("Content-Type", "application/problem+json"), problem, true},
		{"422_without_errors", newRequest("POST", "/todos", `{}`), 422, h("Content-Type", "application/problem+json"), `{"type":"about:blank","title":"Unprocessable Entity","status":422}`, false},
		{"422_with_status_400", newRequest("POST", "/todos", `{}`), 422, h("Content-Type", "application/problem+json"), `{"type":"about:blank","title":"x","status":400,"errors":[{"field":"title","pointer":"/title","detail":"is required"}]}`, false},
		{"401_dpop_challenge", newRequest("GET", "/todos", ""), 401, h("Content-Type", "application/problem+json", "WWW-Authenticate", `DPoP realm="todo-api", error="invalid_dpop_proof", algs="ES256", Bearer realm="todo-api"`, "DPoP-Nonce", "n"), problem, true},
		{"401_other_scheme_challenge", newRequest("GET", "/todos", ""), 401, h("Content-Type", "application/problem+json", "WWW-Authenticate", `Basic realm="todo-api"`), problem, false},
		{"401_without_challenge", newRequest("GET", "/todos", ""), 401, h("Content-Type", "application/problem+json"), problem, false},
		{"unknown_path_404_problem", newRequest("GET", "/nope", ""), 404, h("Content-Type", "application/problem+json"), problem, true},
		{"405_without_allow", newRequest("PUT", "/todos", ""), 405, h("Content-Type", "application/problem+json"), problem, false},
		{"405_with_allow", newRequest("PUT", "/todos", ""), 405, h("Content-Type", "application/problem+json", "Allow", "GET, POST, DELETE"), problem, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.CheckResponse(tt.req, nil, tt.status, tt.header, []byte(tt.body))
			if (err == nil) != tt.valid {
				t.Errorf("valid = %t, want %t (%v)", err == nil, tt.valid, err)
			}
		})
	}
}

// TestServe shows the marks at work through a handler.
func TestServe(t *testing.T) {
	v := openapitest.New(t)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`[]`))
	})
	if rec := v.Serve(t, h, newRequest("GET", "/todos", "")); rec.Code != 200 {
		t.Errorf("%d", rec.Code)
	}
	// A test-only testing.TB records what Serve reports.
	ft := &fakeTB{TB: t}
	v.Serve(ft, h, openapitest.ExpectInvalid(newRequest("GET", "/todos", "")))
	if !ft.failed {
		t.Error("ExpectInvalid on a valid request went unreported")
	}
	ft = &fakeTB{TB: t}
	v.Serve(ft, h, openapitest.SkipRequestCheck(newRequest("GET", "/todos?limit=0", "")))
	if ft.failed {
		t.Error("SkipRequestCheck still checked the request")
	}
}

type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Error(...any)          { f.failed = true }
func (f *fakeTB) Errorf(string, ...any) { f.failed = true }
func (f *fakeTB) Helper()               {}

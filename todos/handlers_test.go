package todos_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/tollgate-dev/tollgate/internal/openapitest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
	"github.com/tollgate-dev/tollgate/todos"
	"github.com/tollgate-dev/tollgate/todos/todostest"
)

// spec is openapi.yaml, loaded once for every handler test.
var spec = sync.OnceValues(func() (*openapitest.Validator, error) {
	path, err := openapitest.SpecPath()
	if err != nil {
		return nil, err
	}
	return openapitest.Load(path)
})

// testServer is the todo routes on a Gin engine over a fresh SQLite
// database, with a stand-in for the authentication middleware.
type testServer struct {
	t     *testing.T
	h     http.Handler
	store *todos.Store
	spec  *openapitest.Validator
}

// fakeAuth stands in for the authentication middleware, which has tests of
// its own with real tokens: the bearer token is taken as the subject.
// Without an Authorization header no principal is set.
func fakeAuth(c *gin.Context) {
	if scheme, sub, ok := strings.Cut(c.GetHeader("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		ctx := principal.With(c.Request.Context(), principal.Principal{Subject: sub, Source: principal.SourceHeader})
		c.Request = c.Request.WithContext(ctx)
	}
	c.Next()
}

func newTestServer(t *testing.T, cfg todos.Config, scfg todos.StoreConfig) *testServer {
	t.Helper()
	v, err := spec()
	if err != nil {
		t.Fatal(err)
	}
	store := mustOpenStore(t, mustOpenDB(t, todostest.SQLiteURL(t)), scfg)
	h, err := todos.NewHandlers(store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.TestMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	h.Register(r, gin.HandlersChain{fakeAuth}, gin.HandlersChain{fakeAuth})
	return &testServer{t: t, h: r, store: store, spec: v}
}

// request is one request of a test; the zero value of each field is the
// usual: alice's bearer token, JSON when there is a body.
type request struct {
	method, target, body string
	user                 string // "-": no Authorization header
	contentType          string // "-": none
	header               http.Header
	mark                 func(*http.Request) *http.Request // openapitest.ExpectInvalid or SkipRequestCheck
}

func (s *testServer) do(r request) *httptest.ResponseRecorder {
	s.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req := httptest.NewRequest(r.method, r.target, body)
	switch r.user {
	case "-":
	case "":
		req.Header.Set("Authorization", "Bearer alice")
	default:
		req.Header.Set("Authorization", "Bearer "+r.user)
	}
	switch {
	case r.contentType == "-":
	case r.contentType != "":
		req.Header.Set("Content-Type", r.contentType)
	case r.body != "":
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if r.mark != nil {
		req = r.mark(req)
	}
	return s.spec.Serve(s.t, s.h, req)
}

// view is a todo as the API shows it.
type view struct {
	ID        string `json:"id"`
	Title     string `json:"title"`
	Completed bool   `json:"completed"`
	Order     int    `json:"order"`
	URL       string `json:"url"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

type problemBody struct {
	Type, Title, Detail string
	Status              int
	Errors              []struct{ Field, Pointer, Detail string }
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
	}
	return v
}

func (s *testServer) mustCreate(user, body string) view {
	s.t.Helper()
	rec := s.do(request{method: "POST", target: "/todos", body: body, user: user})
	if rec.Code != http.StatusCreated {
		s.t.Fatalf("POST %s: %d %s", body, rec.Code, rec.Body)
	}
	return decode[view](s.t, rec)
}

// snapshot is the whole state of some users' lists, to compare before and
// after a request that must change nothing.
func (s *testServer) snapshot(users ...string) string {
	s.t.Helper()
	var b strings.Builder
	for _, u := range users {
		for _, td := range mustListAll(s.t, s.store, u, todos.ListOptions{Limit: todos.MaxPageSize}) {
			fmt.Fprintf(&b, "%s %+v\n", u, td)
		}
	}
	return b.String()
}

func TestHandlers(t *testing.T) {
	t.Parallel()
	t.Run("create_returns_201_location_etag", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, todos.Config{}, todos.StoreConfig{})
		rec := s.do(request{method: "POST", target: "/todos", body: `{"title":"Buy milk","order":2}`})
		if rec.Code != http.StatusCreated {
			t.Fatalf("%d %s", rec.Code, rec.Body)
		}
		v := decode[view](t, rec)
		if v.Title != "Buy milk" || v.Order != 2 || v.Completed {
			t.Errorf("created %+v", v)
		}
		if want := "http://example.com/todos/" + v.ID; v.URL != want || rec.Header().Get("Location") != want {
			t.Errorf("url %q, Location %q; want %q", v.URL, rec.Header().Get("Location"), want)
		}
		if want := `"` + v.ID + `-1"`; rec.Header().Get("ETag") != want {
			t.Errorf("ETag %q, want %q", rec.Header().Get("ETag"), want)
		}
		get := s.do(request{method: "GET", target: "/todos/" + v.ID})
		if get.Code != http.StatusOK || get.Header().Get("ETag") != rec.Header().Get("ETag") || decode[view](t, get) != v {
			t.Errorf("GET after POST: %d %s %s", get.Code, get.Header(), get.Body)
		}
	})

	t.Run("full_crud_cycle", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, todos.Config{}, todos.StoreConfig{})
		v := s.mustCreate("", `{"title":"walk the dog"}`)
		rec := s.do(request{method: "PATCH", target: "/todos/" + v.ID, body: `{"completed":true,"title":null}`})
		if rec.Code != http.StatusOK {
			t.Fatalf("PATCH: %d %s", rec.Code, rec.Body)
		}
		patched := decode[view](t, rec)
		if !patched.Completed || patched.Title != "walk the dog" || patched.CreatedAt != v.CreatedAt {
			t.Errorf("patched %+v", patched)
		}
		if rec.Header().Get("ETag") != `"`+v.ID+`-2"` {
			t.Errorf("ETag after PATCH %q", rec.Header().Get("ETag"))
		}
		list := s.do(request{method: "GET", target: "/todos"})
		if got := decode[[]view](t, list); len(got) != 1 || got[0] != patched {
			t.Errorf("list %s", list.Body)
		}
		if rec := s.do(request{method: "DELETE", target: "/todos/" + v.ID}); rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
			t.Errorf("DELETE: %d %s", rec.Code, rec.Body)
		}
		if rec := s.do(request{method: "GET", target: "/todos/" + v.ID}); rec.Code != http.StatusNotFound {
			t.Errorf("GET after DELETE: %d", rec.Code)
		}
	})

	t.Run("empty_list_is_an_empty_array", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, todos.Config{}, todos.StoreConfig{})
		rec := s.do(request{method: "GET", target: "/todos"})
		if rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "[]" || rec.Header().Get("Link") != "" {
			t.Errorf("%d %q Link %q", rec.Code, rec.Body, rec.Header().Get("Link"))
		}
	})

	t.Run("list_pages_through_link_next", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, todos.Config{}, todos.StoreConfig{})
		var want []string
		for i := range 7 {
			want = append(want, s.mustCreate("", fmt.Sprintf(`{"title":"t%d","completed":%t}`, i, i%2 == 0)).ID)
		}
		next := regexp.MustCompile(`^<(http://example\.com/todos\?[^>]+)>; rel="next"$`)
		var got []string
		target := "/todos?limit=3"
		for pages := 1; ; pages++ {
			rec := s.do(request{method: "GET", target: target})
			if rec.Code != http.StatusOK {
				t.Fatalf("%s: %d %s", target, rec.Code, rec.Body)
			}
			for _, v := range decode[[]view](t, rec) {
				got = append(got, v.ID)
			}
			link := rec.Header().Get("Link")
			if link == "" {
				if pages != 3 {
					t.Errorf("%d pages, want 3", pages)
				}
				break
			}
			m := next.FindStringSubmatch(link)
			if m == nil {
				t.Fatalf("Link %q", link)
			}
			u, _ := url.Parse(m[1])
			target = u.RequestURI()
		}
		if !slices.Equal(got, want) {
			t.Errorf("paged %v, want %v", got, want)
		}
		// The filter is kept in the next link.
		rec := s.do(request{method: "GET", target: "/todos?completed=true&limit=2"})
		if link := rec.Header().Get("Link"); !strings.Contains(link, "completed=true") {
			t.Errorf("Link %q lost the filter", link)
		}
		if n := len(decode[[]view](t, rec)); n != 2 {
			t.Errorf("%d todos in a page of 2", n)
		}
	})

	t.Run("completed_filter_and_delete_completed", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, todos.Config{}, todos.StoreConfig{})
		for i := range 5 {
			s.mustCreate("", fmt.Sprintf(`{"title":"t%d","completed":%t}`, i, i < 2))
		}
		bobs := s.mustCreate("bob", `{"title":"bob's","completed":true}`)
		count := func(target string) int {
			rec := s.do(request{method: "GET", target: target})
			return len(decode[[]view](t, rec))
		}
		if a, b := count("/todos?completed=true"), count("/todos?completed=false"); a != 2 || b != 3 {
			t.Errorf("completed %d, open %d; want 2, 3", a, b)
		}
		if rec := s.do(request{method: "DELETE", target: "/todos?completed=true"}); rec.Code != http.StatusNoContent {
			t.Fatalf("DELETE completed: %d %s", rec.Code, rec.Body)
		}
		if a, b := count("/todos?completed=true"), count("/todos"); a != 0 || b != 3 {
			t.Errorf("after clearing completed: %d completed, %d in all", a, b)
		}
		if rec := s.do(request{method: "DELETE", target: "/todos"}); rec.Code != http.StatusNoContent {
			t.Fatalf("DELETE all: %d %s", rec.Code, rec.Body)
		}
		if n := count("/todos"); n != 0 {
			t.Errorf("%d left", n)
		}
		if rec := s.do(request{method: "GET", target: "/todos/" + bobs.ID, user: "bob"}); rec.Code != http.StatusOK {
			t.Errorf("bob's todo: %d", rec.Code)
		}
	})

	t.Run("another_users_todo_is_404", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, todos.Config{}, todos.StoreConfig{})
		v := s.mustCreate("", `{"title":"alice's"}`)
		before := s.snapshot("alice", "bob")
		for _, r := range []request{
			{method: "GET", target: "/todos/" + v.ID},
			{method: "PATCH", target: "/todos/" + v.ID, body: `{"title":"bob's now"}`},
			{method: "PATCH", target: "/todos/" + v.ID, body: `{"title":"bob's now"}`, header: http.Header{"If-Match": {`"` + v.ID + `-1"`}}},
			{method: "DELETE", target: "/todos/" + v.ID},
			{method: "DELETE", target: "/todos/" + v.ID, header: http.Header{"If-Match": {"*"}}},
			{method: "DELETE", target: "/todos"},
		} {
			r.user = "bob"
			rec := s.do(r)
			want := http.StatusNotFound
			if r.target == "/todos" {
				want = http.StatusNoContent
			}
			if rec.Code != want {
				t.Errorf("bob %s %s: %d, want %d", r.method, r.target, rec.Code, want)
			}
		}
		if rows := s.do(request{method: "GET", target: "/todos", user: "bob"}); strings.TrimSpace(rows.Body.String()) != "[]" {
			t.Errorf("bob lists %s", rows.Body)
		}
		if after := s.snapshot("alice", "bob"); after != before {
			t.Errorf("bob changed alice's todos:\n%s\n→\n%s", before, after)
		}
	})

	t.Run("unknown_or_malformed_id_is_404", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, todos.Config{}, todos.StoreConfig{})
		for _, id := range []string{"AAAAAAAAAAAAAAAAAAAAAAAAAA", "nope", "%27%20OR%201=1--", strings.Repeat("A", 300)} {
			for _, m := range []string{"GET", "DELETE"} {
				if rec := s.do(request{method: m, target: "/todos/" + id}); rec.Code != http.StatusNotFound {
					t.Errorf("%s %s: %d", m, id, rec.Code)
				}
			}
		}
	})

	t.Run("if_match", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, todos.Config{}, todos.StoreConfig{})
		v := s.mustCreate("", `{"title":"v1"}`)
		etag1 := `"` + v.ID + `-1"`
		patch := func(ifMatch, title string) *httptest.ResponseRecorder {
			return s.do(request{method: "PATCH", target: "/todos/" + v.ID, body: `{"title":"` + title + `"}`, header: http.Header{"If-Match": {ifMatch}}})
		}
		rec := patch(etag1, "v2")
		if rec.Code != http.StatusOK {
			t.Fatalf("PATCH with the current ETag: %d %s", rec.Code, rec.Body)
		}
		etag2 := rec.Header().Get("ETag")
		before := s.snapshot("alice")
		for _, stale := range []string{etag1, "W/" + etag2, `"other"`, `"` + v.ID + `-99"`, "garbage", `"` + v.ID + `-1", "` + v.ID + `-3"`} {
			if rec := patch(stale, "lost update"); rec.Code != http.StatusPreconditionFailed {
				t.Errorf("PATCH If-Match %s: %d %s", stale, rec.Code, rec.Body)
			}
			if rec := s.do(request{method: "DELETE", target: "/todos/" + v.ID, header: http.Header{"If-Match": {stale}}}); rec.Code != http.StatusPreconditionFailed {
				t.Errorf("DELETE If-Match %s: %d %s", stale, rec.Code, rec.Body)
			}
		}
		if after := s.snapshot("alice"); after != before {
			t.Errorf("a refused request changed the todo:\n%s→\n%s", before, after)
		}
		if rec := patch(`"x", `+etag2, "v3"); rec.Code != http.StatusOK {
			t.Errorf("PATCH with a list holding the current ETag: %d %s", rec.Code, rec.Body)
		}
		if rec := patch("*", "v4"); rec.Code != http.StatusOK {
			t.Errorf("PATCH If-Match *: %d %s", rec.Code, rec.Body)
		}
		etag4 := s.do(request{method: "GET", target: "/todos/" + v.ID}).Header().Get("ETag")
		if rec := s.do(request{method: "DELETE", target: "/todos/" + v.ID, header: http.Header{"If-Match": {etag4}}}); rec.Code != http.StatusNoContent {
			t.Errorf("DELETE with the current ETag: %d %s", rec.Code, rec.Body)
		}
		if rec := patch("*", "gone"); rec.Code != http.StatusNotFound {
			t.Errorf("PATCH If-Match * of a deleted todo: %d", rec.Code)
		}
	})

	t.Run("per_user_cap_is_409", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, todos.Config{}, todos.StoreConfig{MaxTodosPerOwner: 2})
		s.mustCreate("", `{"title":"1"}`)
		s.mustCreate("", `{"title":"2"}`)
		before := s.snapshot("alice")
		rec := s.do(request{method: "POST", target: "/todos", body: `{"title":"3"}`})
		p := decode[problemBody](t, rec)
		if rec.Code != http.StatusConflict || !strings.Contains(p.Detail, "2") {
			t.Errorf("%d %s", rec.Code, rec.Body)
		}
		if s.snapshot("alice") != before {
			t.Error("the refused todo was stored")
		}
		s.mustCreate("bob", `{"title":"bob has room"}`)
	})

	t.Run("absolute_urls", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name   string
			cfg    todos.Config
			header http.Header
			want   string
		}{
			{"from_host", todos.Config{}, nil, "http://example.com/todos/"},
			{"forwarded_proto_ignored_by_default", todos.Config{}, http.Header{"X-Forwarded-Proto": {"https"}}, "http://example.com/todos/"},
			{"forwarded_proto_when_trusted", todos.Config{TrustForwardedProto: true}, http.Header{"X-Forwarded-Proto": {"https, http"}}, "https://example.com/todos/"},
			{"forwarded_proto_nonsense", todos.Config{TrustForwardedProto: true}, http.Header{"X-Forwarded-Proto": {"javascript"}}, "http://example.com/todos/"},
			{"base_url_wins", todos.Config{BaseURL: "https://todo.example.org/api/", TrustForwardedProto: true}, http.Header{"X-Forwarded-Proto": {"http"}}, "https://todo.example.org/api/todos/"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				s := newTestServer(t, tt.cfg, todos.StoreConfig{})
				rec := s.do(request{method: "POST", target: "/todos", body: `{"title":"x"}`, header: tt.header})
				v := decode[view](t, rec)
				if v.URL != tt.want+v.ID || rec.Header().Get("Location") != v.URL {
					t.Errorf("url %q, Location %q; want %q", v.URL, rec.Header().Get("Location"), tt.want+v.ID)
				}
			})
		}
	})

	t.Run("routes_under_a_group_prefix", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t, mustOpenDB(t, todostest.SQLiteURL(t)), todos.StoreConfig{})
		h, err := todos.NewHandlers(store, todos.Config{})
		if err != nil {
			t.Fatal(err)
		}
		r := gin.New()
		h.Register(r.Group("/v1"), gin.HandlersChain{fakeAuth}, gin.HandlersChain{fakeAuth})
		req := httptest.NewRequest("POST", "/v1/todos", strings.NewReader(`{"title":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer alice")
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if loc := rec.Header().Get("Location"); !strings.HasPrefix(loc, "http://example.com/v1/todos/") {
			t.Errorf("%d Location %q", rec.Code, loc)
		}
	})

	t.Run("any_accept_gets_json", func(t *testing.T) {
		t.Parallel()
		s := newTestServer(t, todos.Config{}, todos.StoreConfig{})
		for _, accept := range []string{"text/plain, */*; q=0.01", "application/xml", "text/html", "*/*", "application/json"} {
			rec := s.do(request{method: "GET", target: "/todos", header: http.Header{"Accept": {accept}}})
			if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
				t.Errorf("Accept %s: %d %s", accept, rec.Code, rec.Header().Get("Content-Type"))
			}
		}
	})

	t.Run("bad_input_changes_nothing", testBadInput)

	t.Run("no_caller_is_401_before_any_database_access", func(t *testing.T) {
		t.Parallel()
		// A store whose database is closed fails any query with a 500: a
		// 401 shows the handler stopped before asking it.
		db := mustOpenDB(t, todostest.SQLiteURL(t))
		store := mustOpenStore(t, db, todos.StoreConfig{})
		h, err := todos.NewHandlers(store, todos.Config{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		sqlDB, _ := db.DB()
		_ = sqlDB.Close()
		r := gin.New()
		passThrough := func(c *gin.Context) { c.Next() }
		h.Register(r, gin.HandlersChain{passThrough}, gin.HandlersChain{passThrough})
		v, err := spec()
		if err != nil {
			t.Fatal(err)
		}
		id := "AAAAAAAAAAAAAAAAAAAAAAAAAA"
		for _, rq := range []struct{ method, target, body string }{
			{"GET", "/todos", ""}, {"POST", "/todos", `{"title":"x"}`}, {"DELETE", "/todos", ""},
			{"GET", "/todos/" + id, ""}, {"PATCH", "/todos/" + id, `{"title":"x"}`}, {"DELETE", "/todos/" + id, ""},
		} {
			var body io.Reader
			if rq.body != "" {
				body = strings.NewReader(rq.body)
			}
			req := httptest.NewRequest(rq.method, rq.target, body)
			if rq.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			rec := v.Serve(t, r, openapitest.ExpectInvalid(req))
			if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") != `Bearer realm="todo-api"` ||
				rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("%s %s: %d %s %s", rq.method, rq.target, rec.Code, rec.Header(), rec.Body)
			}
		}
		// And the closed database does fail, so the check above means
		// something.
		ctx := principal.With(context.Background(), principal.Principal{Subject: "alice"})
		req := httptest.NewRequestWithContext(ctx, "GET", "/todos", nil)
		req.Header.Set("Authorization", "Bearer alice")
		if rec := v.Serve(t, r, req); rec.Code != http.StatusInternalServerError {
			t.Errorf("with a caller, the closed database answered %d", rec.Code)
		}
	})

	t.Run("register_refuses_missing_guards", func(t *testing.T) {
		t.Parallel()
		h, err := todos.NewHandlers(mustOpenStore(t, mustOpenDB(t, todostest.SQLiteURL(t)), todos.StoreConfig{}), todos.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if recover() == nil {
				t.Error("Register without middlewares did not panic")
			}
		}()
		h.Register(gin.New(), nil, gin.HandlersChain{fakeAuth})
	})

	t.Run("config_errors", func(t *testing.T) {
		t.Parallel()
		store := mustOpenStore(t, mustOpenDB(t, todostest.SQLiteURL(t)), todos.StoreConfig{})
		for _, cfg := range []todos.Config{
			{BaseURL: "example.com"}, {BaseURL: "ftp://example.com"}, {BaseURL: "https://example.com/?q=1"},
			{MaxBodyBytes: -1}, {MaxPageSize: 501}, {DefaultPageSize: 50, MaxPageSize: 10},
		} {
			if _, err := todos.NewHandlers(store, cfg); err == nil {
				t.Errorf("NewHandlers(%+v) accepted", cfg)
			}
		}
	})
}

// testBadInput sends every kind of bad input and checks the status, the
// problem document, and that nothing changed.
func testBadInput(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, todos.Config{}, todos.StoreConfig{})
	existing := s.mustCreate("", `{"title":"keep me","order":1}`)
	s.mustCreate("bob", `{"title":"bob's"}`)
	item := "/todos/" + existing.ID
	invalid, skip := openapitest.ExpectInvalid, openapitest.SkipRequestCheck
	big := `{"title":"x"` + strings.Repeat(" ", todos.DefaultMaxBodyBytes) + `}`
	tests := []struct {
		name      string
		req       request
		wantCode  int
		wantField string // for 422
	}{
		{"malformed_json", request{method: "POST", target: "/todos", body: `{"title":`, mark: invalid}, 400, ""},
		// kin-openapi reads the first JSON value only, so it cannot see this.
		{"trailing_data", request{method: "POST", target: "/todos", body: `{"title":"a"} {}`, mark: skip}, 400, ""},
		{"not_an_object", request{method: "POST", target: "/todos", body: `["a"]`, mark: invalid}, 400, ""},
		{"a_string", request{method: "POST", target: "/todos", body: `"a"`, mark: invalid}, 400, ""},
		{"empty_body", request{method: "POST", target: "/todos", body: "", contentType: "application/json", mark: invalid}, 400, ""},
		{"white_space_body", request{method: "POST", target: "/todos", body: " \n", mark: invalid}, 400, ""},
		{"no_content_type", request{method: "POST", target: "/todos", body: `{"title":"a"}`, contentType: "-", mark: invalid}, 415, ""},
		{"text_plain", request{method: "POST", target: "/todos", body: `{"title":"a"}`, contentType: "text/plain", mark: invalid}, 415, ""},
		{"form", request{method: "POST", target: "/todos", body: `title=a`, contentType: "application/x-www-form-urlencoded", mark: invalid}, 415, ""},
		{"latin1_json", request{method: "POST", target: "/todos", body: `{"title":"a"}`, contentType: "application/json; charset=iso-8859-1", mark: skip}, 415, ""},
		{"too_large", request{method: "POST", target: "/todos", body: big, mark: skip}, 413, ""},
		{"too_large_title", request{method: "POST", target: "/todos", body: `{"title":"` + strings.Repeat("x", 70_000) + `"}`, mark: invalid}, 413, ""},
		{"missing_title", request{method: "POST", target: "/todos", body: `{"completed":true}`, mark: invalid}, 422, "title"},
		{"null_title", request{method: "POST", target: "/todos", body: `{"title":null}`, mark: invalid}, 422, "title"},
		{"empty_title", request{method: "POST", target: "/todos", body: `{"title":""}`, mark: invalid}, 422, "title"},
		{"blank_title", request{method: "POST", target: "/todos", body: `{"title":"  \t "}`, mark: invalid}, 422, "title"},
		{"title_over_500", request{method: "POST", target: "/todos", body: `{"title":"` + strings.Repeat("é", 501) + `"}`, mark: invalid}, 422, "title"},
		{"title_with_newline", request{method: "POST", target: "/todos", body: `{"title":"a\nb"}`, mark: invalid}, 422, "title"},
		{"title_with_nul", request{method: "POST", target: "/todos", body: `{"title":"a\u0000"}`, mark: invalid}, 422, "title"},
		{"title_with_c1_control", request{method: "POST", target: "/todos", body: `{"title":"a\u0085"}`, mark: invalid}, 422, "title"},
		{"title_invalid_utf8", request{method: "POST", target: "/todos", body: "{\"title\":\"a\xff\xfe\"}", mark: skip}, 422, "title"},
		{"title_lone_surrogate", request{method: "POST", target: "/todos", body: `{"title":"a\ud800"}`, mark: skip}, 422, "title"},
		{"title_a_number", request{method: "POST", target: "/todos", body: `{"title":5}`, mark: invalid}, 422, "title"},
		{"completed_a_string", request{method: "POST", target: "/todos", body: `{"title":"a","completed":"yes"}`, mark: invalid}, 422, "completed"},
		{"order_a_fraction", request{method: "POST", target: "/todos", body: `{"title":"a","order":1.5}`, mark: invalid}, 422, "order"},
		{"order_too_big", request{method: "POST", target: "/todos", body: `{"title":"a","order":2147483648}`, mark: invalid}, 422, "order"},
		{"order_huge", request{method: "POST", target: "/todos", body: `{"title":"a","order":1e400}`, mark: invalid}, 422, "order"},
		{"unknown_field", request{method: "POST", target: "/todos", body: `{"title":"a","colour":"red"}`, mark: invalid}, 422, "colour"},
		{"read_only_field", request{method: "POST", target: "/todos", body: `{"title":"a","id":"AAAAAAAAAAAAAAAAAAAAAAAAAA"}`, mark: invalid}, 422, "id"},
		{"field_in_another_case", request{method: "POST", target: "/todos", body: `{"Title":"a"}`, mark: invalid}, 422, "Title"},
		{"field_twice", request{method: "POST", target: "/todos", body: `{"title":"a","title":"b"}`, mark: skip}, 422, "title"},
		{"patch_malformed", request{method: "PATCH", target: item, body: `{`, mark: invalid}, 400, ""},
		{"patch_text_plain", request{method: "PATCH", target: item, body: `{"title":"x"}`, contentType: "text/plain", mark: invalid}, 415, ""},
		{"patch_too_large", request{method: "PATCH", target: item, body: big, mark: skip}, 413, ""},
		{"patch_empty_title", request{method: "PATCH", target: item, body: `{"title":""}`, mark: invalid}, 422, "title"},
		{"patch_completed_a_number", request{method: "PATCH", target: item, body: `{"completed":1}`, mark: invalid}, 422, "completed"},
		{"patch_unknown_field", request{method: "PATCH", target: item, body: `{"done":true}`, mark: invalid}, 422, "done"},
		{"patch_url", request{method: "PATCH", target: item, body: `{"url":"http://evil.example/"}`, mark: invalid}, 422, "url"},
		{"patch_array", request{method: "PATCH", target: item, body: `[{"op":"replace"}]`, mark: invalid}, 400, ""},
		{"limit_zero", request{method: "GET", target: "/todos?limit=0", mark: invalid}, 400, ""},
		{"limit_too_big", request{method: "GET", target: "/todos?limit=501", mark: invalid}, 400, ""},
		{"limit_not_a_number", request{method: "GET", target: "/todos?limit=ten", mark: invalid}, 400, ""},
		{"limit_twice", request{method: "GET", target: "/todos?limit=1&limit=2", mark: skip}, 400, ""},
		{"cursor_garbage", request{method: "GET", target: "/todos?cursor=not-a-cursor", mark: skip}, 400, ""},
		{"cursor_forged", request{method: "GET", target: "/todos?cursor=eyJvIjowLCJ0IjowLCJpIjoiJyBPUiAxPTEifQ", mark: skip}, 400, ""},
		{"cursor_too_long", request{method: "GET", target: "/todos?cursor=" + strings.Repeat("A", 300), mark: invalid}, 400, ""},
		{"completed_yes", request{method: "GET", target: "/todos?completed=yes", mark: invalid}, 400, ""},
		{"malformed_query", request{method: "GET", target: "/todos?limit=%zz", mark: skip}, 400, ""},
		{"delete_completed_false", request{method: "DELETE", target: "/todos?completed=false", mark: invalid}, 400, ""},
		{"delete_completed_nonsense", request{method: "DELETE", target: "/todos?completed=all", mark: invalid}, 400, ""},
		{"no_token_list", request{method: "GET", target: "/todos", user: "-", mark: invalid}, 401, ""},
		{"no_token_create", request{method: "POST", target: "/todos", body: `{"title":"a"}`, user: "-", mark: invalid}, 401, ""},
		{"no_token_delete_all", request{method: "DELETE", target: "/todos", user: "-", mark: invalid}, 401, ""},
	}
	before := s.snapshot("alice", "bob")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := *s
			s.t = t
			rec := s.do(tt.req)
			if rec.Code != tt.wantCode {
				t.Errorf("status %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			p := decode[problemBody](t, rec)
			if p.Status != rec.Code || p.Type != "about:blank" || p.Title != http.StatusText(rec.Code) || p.Detail == "" {
				t.Errorf("problem %+v", p)
			}
			if tt.wantField != "" {
				var fields []string
				for _, e := range p.Errors {
					fields = append(fields, e.Field)
					if e.Detail == "" || e.Pointer != "/"+e.Field {
						t.Errorf("error %+v", e)
					}
				}
				if !slices.Contains(fields, tt.wantField) {
					t.Errorf("errors name %v, want %q: %s", fields, tt.wantField, rec.Body)
				}
			}
			if after := s.snapshot("alice", "bob"); after != before {
				t.Errorf("the database changed:\n%s→\n%s", before, after)
			}
		})
	}
	// The limits themselves are accepted.
	if v := s.mustCreate("carol", `{"title":"`+strings.Repeat("é", todos.MaxTitleLength)+`","order":-2147483648}`); v.Order != todos.MinOrder {
		t.Errorf("order %d", v.Order)
	}
}

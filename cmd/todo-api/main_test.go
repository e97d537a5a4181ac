package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate"
	"github.com/tollgate-dev/tollgate/internal/envflag"
	"github.com/tollgate-dev/tollgate/internal/openapitest"
	"github.com/tollgate-dev/tollgate/internal/testbuf"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// server is a todo-api started through run, as main starts it.
type server struct {
	URL  string
	stop func() error
	log  *testbuf.Buffer
}

// startServer runs todo-api with env on a free port and waits until
// /readyz answers 200.
// todoScopes makes the test issuer grant the todo API's scopes: authtest's
// defaults name no application.
var todoScopes = authtest.WithScopes("todos:read", "todos:write")

func startServer(tb testing.TB, env map[string]string) *server {
	tb.Helper()
	env = withDefault(env, "LISTEN_ADDR", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	logs := &testbuf.Buffer{}
	go func() {
		errc <- run(ctx, nil, lookup(env), logs, logs, func(a net.Addr) { addrc <- a })
	}()
	var s *server
	select {
	case a := <-addrc:
		s = &server{URL: "http://" + a.String(), log: logs}
	case err := <-errc:
		cancel()
		tb.Fatalf("todo-api did not start: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		cancel()
		tb.Fatal("todo-api did not start in time")
	}
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case stopErr = <-errc:
			case <-time.After(30 * time.Second):
				stopErr = errors.New("todo-api did not stop")
			}
		})
		return stopErr
	}
	tb.Cleanup(func() {
		if err := s.stop(); err != nil {
			tb.Errorf("todo-api stopped with %v", err)
		}
		if strings.Contains(logs.String(), "eyJ") {
			tb.Errorf("logs contain something token-like:\n%s", logs)
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("todo-api never ready\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func withDefault(env map[string]string, k, v string) map[string]string {
	out := map[string]string{}
	for kk, vv := range env {
		out[kk] = vv
	}
	if _, ok := out[k]; !ok {
		out[k] = v
	}
	return out
}

func lookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// jwtEnv is the settings for a todo-api trusting is, on a fresh SQLite file.
func jwtEnv(tb testing.TB, is *authtest.Issuer) map[string]string {
	return map[string]string{
		"ISSUER":               is.URL,
		"AUDIENCE":             authtest.Audience,
		"DATABASE_URL":         "sqlite:" + filepath.Join(tb.TempDir(), "todos.db"),
		"CORS_ALLOWED_ORIGINS": "http://app.test",
	}
}

// caller sends requests as one user, checking each against openapi.yaml.
type caller struct {
	tb     testing.TB
	base   string
	token  string
	client *http.Client
	// mark, when set, marks the next request for openapitest
	// (ExpectInvalid or SkipRequestCheck) and is then cleared.
	mark func(*http.Request) *http.Request
}

func newCaller(tb testing.TB, base, token string) *caller {
	return &caller{tb: tb, base: base, token: token, client: openapitest.New(tb).Client(tb)}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) todo(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		tb.Fatalf("not a todo: %s", r.Body)
	}
	return m
}

func (r response) todos(tb testing.TB) []map[string]any {
	tb.Helper()
	var list []map[string]any
	if err := json.Unmarshal(r.Body, &list); err != nil {
		tb.Fatalf("not a list: %s", r.Body)
	}
	return list
}

func (c *caller) do(method, path string, body any, headers ...string) response {
	c.tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	url := path
	if !strings.HasPrefix(path, "http") {
		url = c.base + path
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		c.tb.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	if c.mark != nil {
		req, c.mark = c.mark(req), nil
	}
	resp, err := c.client.Do(req)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func expect(tb testing.TB, r response, status int) {
	tb.Helper()
	if r.Status != status {
		tb.Fatalf("status %d, want %d: %s", r.Status, status, r.Body)
	}
}

func TestTwoUsersFullCycle(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	s := startServer(t, jwtEnv(t, is))
	alice := newCaller(t, s.URL, is.Token(t, "alice", nil))
	bob := newCaller(t, s.URL, is.Token(t, "bob", nil))

	var ids []string
	for i, title := range []string{"milk", "eggs", "bread"} {
		r := alice.do("POST", "/todos", map[string]any{"title": title, "order": i})
		expect(t, r, 201)
		todo := r.todo(t)
		if r.Header.Get("Location") != todo["url"] || r.Header.Get("ETag") == "" || todo["completed"] != false {
			t.Fatalf("created %v with headers %v", todo, r.Header)
		}
		ids = append(ids, todo["id"].(string))
	}
	list := alice.do("GET", "/todos", nil)
	expect(t, list, 200)
	if got := list.todos(t); len(got) != 3 || got[0]["title"] != "milk" || got[2]["title"] != "bread" {
		t.Fatalf("alice's list %v", got)
	}
	// Bob sees none of alice's todos, and cannot touch them: 404, never 403.
	if got := bob.do("GET", "/todos", nil).todos(t); len(got) != 0 {
		t.Fatalf("bob sees %v", got)
	}
	expect(t, bob.do("GET", "/todos/"+ids[0], nil), 404)
	expect(t, bob.do("PATCH", "/todos/"+ids[0], map[string]any{"title": "mine"}), 404)
	expect(t, bob.do("DELETE", "/todos/"+ids[0], nil), 404)
	expect(t, bob.do("DELETE", "/todos", nil), 204)
	if got := alice.do("GET", "/todos", nil).todos(t); len(got) != 3 {
		t.Fatalf("bob's DELETE /todos touched alice's list: %v", got)
	}

	// PATCH with If-Match; a stale ETag is 412 and changes nothing.
	get := alice.do("GET", "/todos/"+ids[1], nil)
	expect(t, get, 200)
	etag := get.Header.Get("ETag")
	patched := alice.do("PATCH", "/todos/"+ids[1], map[string]any{"completed": true}, "If-Match", etag)
	expect(t, patched, 200)
	if patched.todo(t)["completed"] != true || patched.todo(t)["title"] != "eggs" {
		t.Fatalf("patched %s", patched.Body)
	}
	expect(t, alice.do("PATCH", "/todos/"+ids[1], map[string]any{"title": "stale"}, "If-Match", etag), 412)
	expect(t, alice.do("DELETE", "/todos/"+ids[1], nil, "If-Match", etag), 412)
	if alice.do("GET", "/todos/"+ids[1], nil).todo(t)["title"] != "eggs" {
		t.Fatal("412 changed the todo")
	}
	// Filters and clearing completed ones.
	if got := alice.do("GET", "/todos?completed=true", nil).todos(t); len(got) != 1 || got[0]["id"] != ids[1] {
		t.Fatalf("completed filter %v", got)
	}
	expect(t, alice.do("DELETE", "/todos?completed=true", nil), 204)
	if got := alice.do("GET", "/todos", nil).todos(t); len(got) != 2 {
		t.Fatalf("after clearing completed: %v", got)
	}
	expect(t, alice.do("DELETE", "/todos/"+ids[0], nil), 204)
	expect(t, alice.do("GET", "/todos/"+ids[0], nil), 404)
	expect(t, alice.do("DELETE", "/todos", nil), 204)
	if got := alice.do("GET", "/todos", nil).todos(t); len(got) != 0 {
		t.Fatalf("after DELETE /todos: %v", got)
	}
}

func TestPagination(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	s := startServer(t, jwtEnv(t, is))
	alice := newCaller(t, s.URL, is.Token(t, "alice", nil))
	for i := range 25 {
		expect(t, alice.do("POST", "/todos", map[string]any{"title": fmt.Sprintf("t%02d", i), "order": i}), 201)
	}
	var titles []string
	next := "/todos?limit=10"
	pages := 0
	for next != "" {
		r := alice.do("GET", next, nil)
		expect(t, r, 200)
		pages++
		for _, td := range r.todos(t) {
			titles = append(titles, td["title"].(string))
		}
		next = nextLink(r.Header.Get("Link"))
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
	}
	if pages != 3 || len(titles) != 25 || titles[0] != "t00" || titles[24] != "t24" {
		t.Fatalf("%d pages, titles %v", pages, titles)
	}
}

// nextLink extracts the rel="next" target of an RFC 8288 Link header.
func nextLink(h string) string {
	for _, part := range strings.Split(h, ",") {
		if strings.Contains(part, `rel="next"`) {
			start, end := strings.Index(part, "<"), strings.Index(part, ">")
			if start >= 0 && end > start {
				return part[start+1 : end]
			}
		}
	}
	return ""
}

func TestConcurrentWritersSQLite(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	s := startServer(t, jwtEnv(t, is))
	alice := newCaller(t, s.URL, is.Token(t, "alice", nil))
	var wg sync.WaitGroup
	statuses := make(chan int, 64)
	start := make(chan struct{})
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses <- alice.do("POST", "/todos", map[string]any{"title": fmt.Sprint("w", i)}).Status
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	for st := range statuses {
		if st != 201 {
			t.Fatalf("a concurrent write got %d", st)
		}
	}
	if got := alice.do("GET", "/todos?limit=100", nil).todos(t); len(got) != 64 {
		t.Fatalf("%d todos after 64 writes", len(got))
	}
	if strings.Contains(s.log.String(), "database is locked") {
		t.Fatal("database is locked in the logs")
	}
}

func TestAuthAndBadInput(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	s := startServer(t, jwtEnv(t, is))
	alice := newCaller(t, s.URL, is.Token(t, "alice", nil))
	expect(t, alice.do("POST", "/todos", map[string]any{"title": "keep me"}), 201)
	anon := newCaller(t, s.URL, "")
	readOnly := newCaller(t, s.URL, is.Token(t, "alice", func(c jwt.MapClaims) { c["scope"] = "todos:read" }))
	expired := newCaller(t, s.URL, is.Token(t, "alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))
	raw := &http.Client{}

	tests := []struct {
		name      string
		c         *caller
		method    string
		path      string
		body      any
		headers   []string
		status    int
		challenge string
		mark      func(*http.Request) *http.Request // for requests openapi.yaml refuses too
	}{
		{"no token", anon, "GET", "/todos", nil, nil, 401, `Bearer realm="todo-api"`, openapitest.ExpectInvalid},
		{"expired token", expired, "GET", "/todos", nil, nil, 401, `error="invalid_token"`, nil},
		{"read-only token writes", readOnly, "POST", "/todos", map[string]any{"title": "x"}, nil, 403, `scope="todos:write"`, nil},
		{"read-only token reads", readOnly, "GET", "/todos", nil, nil, 200, "", nil},
		{"malformed JSON", alice, "POST", "/todos", `{"title":`, nil, 400, "", openapitest.ExpectInvalid},
		{"wrong content type", alice, "POST", "/todos", `title=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "", openapitest.ExpectInvalid},
		{"body too large", alice, "POST", "/todos", `{"title":"` + strings.Repeat("x", 70<<10) + `"}`, nil, 413, "", openapitest.ExpectInvalid},
		{"empty title", alice, "POST", "/todos", map[string]any{"title": "  "}, nil, 422, "", openapitest.ExpectInvalid},
		{"unknown field", alice, "POST", "/todos", map[string]any{"title": "x", "owner": "bob"}, nil, 422, "", openapitest.ExpectInvalid},
		{"wrong type", alice, "POST", "/todos", map[string]any{"title": 5}, nil, 422, "", openapitest.ExpectInvalid},
		{"unknown route", alice, "GET", "/nope", nil, nil, 404, "", openapitest.ExpectInvalid},
		{"wrong method", alice, "PUT", "/todos", nil, nil, 405, "", openapitest.ExpectInvalid},
		{"odd Accept still JSON", alice, "GET", "/todos", nil, []string{"Accept", "text/plain, */*; q=0.01"}, 200, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.mark = tt.mark
			r := tt.c.do(tt.method, tt.path, tt.body, tt.headers...)
			expect(t, r, tt.status)
			if tt.status >= 400 && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/problem+json") {
				t.Fatalf("Content-Type %q", r.Header.Get("Content-Type"))
			}
			if tt.challenge != "" && !strings.Contains(r.Header.Get("WWW-Authenticate"), tt.challenge) {
				t.Fatalf("WWW-Authenticate %q lacks %q", r.Header.Get("WWW-Authenticate"), tt.challenge)
			}
		})
	}
	// Nothing above changed what was stored.
	if got := alice.do("GET", "/todos", nil).todos(t); len(got) != 1 || got[0]["title"] != "keep me" {
		t.Fatalf("bad input changed the list: %v", got)
	}
	// A token in the query string is refused, not read.
	resp, err := raw.Get(s.URL + "/todos?access_token=" + alice.token)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("token in query: %d", resp.StatusCode)
	}
}

func TestCORSAndCookies(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	s := startServer(t, jwtEnv(t, is))
	tok := is.Token(t, "alice", nil)
	send := func(method, path string, h map[string]string) *http.Response {
		t.Helper()
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader(`{"title":"from the page"}`)
		}
		req, _ := http.NewRequest(method, s.URL+path, body)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	// A preflight needs no token.
	pre := send("OPTIONS", "/todos", map[string]string{"Origin": "http://app.test", "Access-Control-Request-Method": "PATCH", "Access-Control-Request-Headers": "content-type,if-match,x-csrf"}) // as browsers send it: lower case, sorted, no spaces
	if pre.StatusCode/100 != 2 || pre.Header.Get("Access-Control-Allow-Origin") != "http://app.test" || pre.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("preflight: %d %v", pre.StatusCode, pre.Header)
	}
	// Errors carry CORS headers too, so the page can read them.
	unauth := send("GET", "/todos", map[string]string{"Origin": "http://app.test"})
	if unauth.StatusCode != 401 || unauth.Header.Get("Access-Control-Allow-Origin") != "http://app.test" || !strings.Contains(unauth.Header.Get("Access-Control-Expose-Headers"), "Www-Authenticate") {
		t.Fatalf("401 without CORS headers: %v", unauth.Header)
	}
	if other := send("GET", "/todos", map[string]string{"Origin": "http://evil.test"}); other.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("foreign origin allowed")
	}
	cookie := "__Host-access_token=" + tok
	for _, tc := range []struct {
		name    string
		method  string
		headers map[string]string
		status  int
	}{
		{"cookie and X-CSRF", "GET", map[string]string{"Cookie": cookie, "X-CSRF": "1", "Origin": "http://app.test"}, 200},
		{"cookie without X-CSRF", "GET", map[string]string{"Cookie": cookie}, 400},
		{"cookie POST from the page", "POST", map[string]string{"Cookie": cookie, "X-CSRF": "1", "Origin": "http://app.test", "Content-Type": "application/json"}, 201},
		{"cookie POST from elsewhere", "POST", map[string]string{"Cookie": cookie, "X-CSRF": "1", "Origin": "http://evil.test", "Content-Type": "application/json"}, 400},
	} {
		if r := send(tc.method, "/todos", tc.headers); r.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.name, r.StatusCode, tc.status)
		}
	}
}

func TestOperationalEndpoints(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	s := startServer(t, jwtEnv(t, is))
	get := func(path string) (int, string, http.Header) {
		t.Helper()
		resp, err := http.Get(s.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if st, _, _ := get("/healthz"); st != 200 {
		t.Fatalf("healthz %d", st)
	}
	if st, _, _ := get("/readyz"); st != 200 {
		t.Fatalf("readyz %d", st)
	}
	anon := newCaller(t, s.URL, "")
	anon.mark = openapitest.ExpectInvalid
	anon.do("GET", "/todos", nil) // one refusal to count
	st, body, _ := get("/metrics")
	if st != 200 || !strings.Contains(body, `todo_api_auth_outcomes_total{cached="false",reason="no_token",source=""} 1`) ||
		!strings.Contains(body, `todo_api_jwks_refreshes_total{result="ok"}`) || !strings.Contains(body, `todo_api_http_requests_total{method="GET",route="/todos",status="401"}`) {
		t.Fatalf("metrics: %d\n%s", st, body)
	}
	st, body, h := get("/openapi.yaml")
	if st != 200 || body != string(tollgate.OpenAPI) || !strings.Contains(h.Get("Content-Type"), "yaml") {
		t.Fatalf("openapi.yaml: %d %q", st, h.Get("Content-Type"))
	}
	st, body, _ = get("/docs/")
	if st != 200 || !strings.Contains(body, "swagger-ui-bundle.js") || strings.Contains(body, "cdn") {
		t.Fatalf("docs: %d %s", st, body)
	}
	if st, _, _ := get("/docs/swagger-ui-bundle.js"); st != 200 {
		t.Fatalf("embedded docs asset: %d", st)
	}
}

func TestSettings(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"missing issuer", map[string]string{}, nil, "ISSUER is required"},
		{"missing audience", map[string]string{"ISSUER": "http://x"}, nil, "AUDIENCE is required"},
		{"bad mode", map[string]string{"ISSUER": "http://x", "AUTH_MODE": "magic"}, nil, "AUTH_MODE"},
		{"bad skew", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "CLOCK_SKEW": "soon"}, nil, "CLOCK_SKEW"},
		{"bad database", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "JWKS_URL": "http://127.0.0.1:1/jwks", "DATABASE_URL": "mysql://x"}, nil, "DATABASE_URL"},
		{"introspection without client", map[string]string{"ISSUER": "http://x", "AUTH_MODE": "introspection"}, nil, "INTROSPECTION_CLIENT_ID"},
		{"CORS origin with a path", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "CORS_ALLOWED_ORIGINS": "https://app.example/app"}, nil, `CORS_ALLOWED_ORIGINS: "https://app.example/app" is not an origin`},
		{"CORS wildcard", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "CORS_ALLOWED_ORIGINS": "*"}, nil, "CORS_ALLOWED_ORIGINS"},
		{"alg none", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "JWKS_URL": "http://127.0.0.1:1/jwks", "JWT_ALGORITHMS": "none"}, nil, `"none" is never accepted`},
		{"no introspection in flight", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "INTROSPECTION_MAX_IN_FLIGHT": "0"}, nil, "INTROSPECTION_MAX_IN_FLIGHT"},
		{"introspection in flight not a number", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "INTROSPECTION_MAX_IN_FLIGHT": "many"}, nil, "INTROSPECTION_MAX_IN_FLIGHT"},
		{"negative introspection rate", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "INTROSPECTION_RATE_LIMIT": "-1"}, nil, "INTROSPECTION_RATE_LIMIT"},
		{"acr value with a quote", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "REQUIRE_ACR_FOR_DELETE_ALL": `urn:x,"2fa"`}, nil, `REQUIRE_ACR_FOR_DELETE_ALL: "\"2fa\"" is not an acr value`},
		{"acr value with a space", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "REQUIRE_ACR_FOR_DELETE_ALL": "two words"}, nil, "REQUIRE_ACR_FOR_DELETE_ALL"},
		{"auth age not whole seconds", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "MAX_AUTH_AGE_FOR_DELETE_ALL": "1500ms"}, nil, "MAX_AUTH_AGE_FOR_DELETE_ALL: 1.5s is not a whole number of seconds"},
		{"auth age not a duration", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "MAX_AUTH_AGE_FOR_DELETE_ALL": "soon"}, nil, "MAX_AUTH_AGE_FOR_DELETE_ALL"},
		{"issuer list in introspection mode", map[string]string{"ISSUER": "http://x,http://y", "AUTH_MODE": "introspection", "INTROSPECTION_AUTH": "none"}, nil, "ISSUER: a list of issuers needs AUTH_MODE=jwt, not introspection"},
		{"issuer list in hybrid mode", map[string]string{"ISSUER": "http://x,http://y", "AUDIENCE": "a", "AUTH_MODE": "hybrid", "INTROSPECTION_AUTH": "none"}, nil, "ISSUER: a list of issuers needs AUTH_MODE=jwt, not hybrid"},
		{"issuer list with JWKS_URL", map[string]string{"ISSUER": "http://x,http://y", "AUDIENCE": "a", "JWKS_URL": "http://127.0.0.1:1/jwks"}, nil, "JWKS_URL: only with a single ISSUER"},
		{"issuer list with an HMAC secret", map[string]string{"ISSUER": "http://x,http://y", "AUDIENCE": "a", "JWT_HMAC_SECRET": strings.Repeat("s", 32)}, nil, "JWT_HMAC_SECRET: only with a single ISSUER"},
		{"issuer listed twice", map[string]string{"ISSUER": "http://x, http://x", "AUDIENCE": "a"}, nil, `ISSUER: "http://x" is listed twice`},
		{"issuer list with a space", map[string]string{"ISSUER": "http://x,http://y z", "AUDIENCE": "a"}, nil, `ISSUER: "http://y z" is not an issuer URL`},
		{"bad DPoP mode", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "DPOP_MODE": "on"}, nil, `DPOP_MODE: want disabled, allowed or required, got "on"`},
		{"bad DPoP mode flag", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a"}, []string{"-dpop-mode", "bearer"}, `DPOP_MODE: want disabled, allowed or required, got "bearer"`},
		{"short DPoP nonce secret", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "DPOP_MODE": "required", "BASE_URL": "https://api.example.com", "DPOP_NONCE_SECRET": "short"}, nil, "DPOP_NONCE_SECRET: must be at least 32 bytes"},
		{"DPoP nonce secret without DPoP", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "DPOP_NONCE_SECRET": strings.Repeat("s", 32)}, nil, "DPOP_NONCE_SECRET: only with DPOP_MODE=allowed or required"},
		{"DPoP without base URL", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "DPOP_MODE": "allowed"}, nil, "DPOP_MODE: DPoP needs BASE_URL"},
		{"base URL with a query", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "DPOP_MODE": "allowed", "BASE_URL": "https://api.example.com/?a=1"}, nil, "BASE_URL: "},
		{"bad token profile", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a", "TOKEN_PROFILE": "strict"}, nil, `TOKEN_PROFILE: want interoperable or rfc9068, got "strict"`},
		{"bad token profile flag", map[string]string{"ISSUER": "http://x", "AUDIENCE": "a"}, []string{"-token-profile", "rfc-9068"}, `TOKEN_PROFILE: want interoperable or rfc9068, got "rfc-9068"`},
		{"strict token profile in introspection mode", map[string]string{"ISSUER": "http://x", "AUTH_MODE": "introspection", "INTROSPECTION_AUTH": "none", "TOKEN_PROFILE": "rfc9068"}, nil, "TOKEN_PROFILE: rfc9068 applies to JWTs, not AUTH_MODE=introspection"},
		{"issuer list, one not answering", map[string]string{"ISSUER": "http://x," + "http://127.0.0.1:1", "AUDIENCE": "a"}, nil, "discovery for issuer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(context.Background(), tt.args, lookup(tt.env), io.Discard, io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line containing %q", err, tt.want)
			}
		})
	}
	var help bytes.Buffer
	err := run(context.Background(), []string{"--help"}, lookup(nil), io.Discard, &help, nil)
	if !errors.Is(err, envflag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	for _, setting := range []string{"LISTEN_ADDR", "DATABASE_URL", "AUTH_MODE", "ISSUER", "AUDIENCE", "JWKS_URL", "JWT_ALGORITHMS", "JWT_HMAC_SECRET", "CLOCK_SKEW", "REQUIRE_AT_JWT", "TOKEN_PROFILE", "INTROSPECTION_URL", "INTROSPECTION_CLIENT_ID", "INTROSPECTION_CLIENT_SECRET", "INTROSPECTION_AUTH", "INTROSPECTION_CACHE_TTL", "INTROSPECTION_TIMEOUT", "INTROSPECTION_MAX_IN_FLIGHT", "INTROSPECTION_RATE_LIMIT", "TOKEN_COOKIE", "CORS_ALLOWED_ORIGINS", "REQUIRED_SCOPES_READ", "REQUIRED_SCOPES_WRITE", "REQUIRE_ACR_FOR_DELETE_ALL", "MAX_AUTH_AGE_FOR_DELETE_ALL", "DPOP_MODE", "DPOP_NONCE_SECRET", "STORE_URL", "STORE_SECRET", "BASE_URL"} {
		if !strings.Contains(help.String(), setting) {
			t.Errorf("--help lacks %s", setting)
		}
	}
}

// TestEmptyScopeSettingDisablesCheck: REQUIRED_SCOPES_WRITE= (set, empty)
// turns the scope check off.
func TestEmptyScopeSettingDisablesCheck(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	env := jwtEnv(t, is)
	env["REQUIRED_SCOPES_WRITE"] = ""
	s := startServer(t, env)
	noScope := newCaller(t, s.URL, is.Token(t, "alice", func(c jwt.MapClaims) { c["scope"] = "todos:read" }))
	expect(t, noScope.do("POST", "/todos", map[string]any{"title": "x"}), 201)
}

// TestStartsBeforeKeys: the todo API starts while its key server is down
// (LazyKeys) and becomes ready when the keys arrive: started together with
// its authorization server, it must not exit because that one is a moment
// late. The failed fetch is logged with the URL.
func TestStartsBeforeKeys(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	is.SetDown(true)
	time.AfterFunc(300*time.Millisecond, func() { is.SetDown(false) })
	env := jwtEnv(t, is)
	env["JWKS_URL"] = is.URL + "/jwks"
	s := startServer(t, env) // waits for /readyz 200
	if !strings.Contains(s.log.String(), "jwks refresh failed") || !strings.Contains(s.log.String(), is.URL+"/jwks") {
		t.Fatalf("the failed first fetch is not logged:\n%s", s.log)
	}
	c := newCaller(t, s.URL, is.Token(t, "alice", nil))
	if r := c.do("GET", "/todos", nil); r.Status != 200 {
		t.Fatalf("GET /todos after the keys arrived: %d", r.Status)
	}
}

// TestTokenProfile: the todo-api program reads TOKEN_PROFILE (in any
// case): with rfc9068 a token without jti is refused, one with every
// claim of RFC 9068 §2.2 accepted.
func TestTokenProfile(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	env := jwtEnv(t, is)
	env["TOKEN_PROFILE"] = "RFC9068"
	s := startServer(t, env)
	noJTI := newCaller(t, s.URL, is.Token(t, "alice", func(c jwt.MapClaims) { delete(c, "jti") }))
	r := noJTI.do("GET", "/todos", nil)
	expect(t, r, 401)
	if ch := r.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, "jti") {
		t.Errorf("WWW-Authenticate %q, want invalid_token naming jti", ch)
	}
	expect(t, newCaller(t, s.URL, is.Token(t, "alice", nil)).do("GET", "/todos", nil), 200)
}

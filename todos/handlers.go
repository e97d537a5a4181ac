package todos

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// Handlers serves the todo routes of openapi.yaml (see Routes) over a
// Store. Each handler first reads the verified caller from principal.From and
// answers 401 without one, before touching the body or the database.
type Handlers struct {
	store  *Store
	cfg    Config
	prefix string // path of the router given to Register
}

// NewHandlers returns the handlers for store with cfg's settings, or every
// problem with cfg.
func NewHandlers(store *Store, cfg Config) (*Handlers, error) {
	if store == nil {
		return nil, errors.New("todos: nil Store")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Handlers{store: store, cfg: cfg}, nil
}

// Route is one todo route: its method, its path in Gin's syntax, whether it
// changes data (and so needs the write scope), and its handler.
type Route struct {
	Method string
	Path   string
	Write  bool
	handle func(*Handlers) gin.HandlerFunc
}

// Routes returns the todo routes, the one list of them: Register serves
// these, and the todo API's test checks them against openapi.yaml.
func Routes() []Route {
	return []Route{
		{http.MethodGet, "/todos", false, handleListTodos},        // the caller's todos, paged, ?completed=
		{http.MethodPost, "/todos", true, handleCreateTodo},       // 201, Location, ETag
		{http.MethodDelete, "/todos", true, handleDeleteTodos},    // all the caller's todos, or ?completed=true ones
		{http.MethodGet, "/todos/:id", false, handleGetTodo},      // one todo, with its ETag
		{http.MethodPatch, "/todos/:id", true, handlePatchTodo},   // partial update, If-Match honoured
		{http.MethodDelete, "/todos/:id", true, handleDeleteTodo}, // If-Match honoured
	}
}

// Register adds Routes to r, each behind the given middlewares: read
// before the routes that only read, write before the others. The todo API
// passes authentication plus the read or the write scope check:
//
//	h.Register(router,
//		gin.HandlersChain{authenticate, requireScope("todos:read")},
//		gin.HandlersChain{authenticate, requireScope("todos:write")})
//
// Register panics when either chain is empty, since that would serve
// everyone's todos to anyone if the handlers did not refuse (they do: 401).
func (h *Handlers) Register(r gin.IRouter, read, write gin.HandlersChain) {
	if len(read) == 0 || len(write) == 0 {
		panic("todos: Register needs the read and the write middlewares (authentication and scope checks)")
	}
	if g, ok := r.(interface{ BasePath() string }); ok {
		h.prefix = strings.TrimSuffix(g.BasePath(), "/")
	}
	for _, rt := range Routes() {
		chain := read
		if rt.Write {
			chain = write
		}
		r.Handle(rt.Method, rt.Path, append(slices.Clip(chain), rt.handle(h))...)
	}
}

// todoView is a todo as clients see it.
type todoView struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	Completed bool      `json:"completed"`
	Order     int       `json:"order"`
	URL       string    `json:"url"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (h *Handlers) view(base string, t Todo) todoView {
	return todoView{
		ID: t.ID, Title: t.Title, Completed: t.Completed, Order: t.Order,
		URL: base + "/todos/" + t.ID, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt,
	}
}

// baseURL is the absolute URL the routes are served under, without a
// trailing slash; see Config.BaseURL.
func (h *Handlers) baseURL(r *http.Request) string {
	if h.cfg.BaseURL != "" {
		return h.cfg.BaseURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if h.cfg.TrustForwardedProto {
		// A chain of proxies appends: the first value is the client's.
		first, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
		switch p := strings.ToLower(strings.TrimSpace(first)); p {
		case "http", "https":
			scheme = p
		}
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return scheme + "://" + host + h.prefix
}

// caller returns the owner of the verified caller's todos (its subject,
// unless Config.Owner says otherwise), or answers 401 and returns false.
// It is every handler's first step: nothing is read before it.
func (h *Handlers) caller(c *gin.Context) (string, bool) {
	p, ok := principal.From(c.Request.Context())
	owner := p.Subject
	if ok && h.cfg.Owner != nil {
		owner = h.cfg.Owner(p)
	}
	if !ok || owner == "" {
		c.Header("WWW-Authenticate", `Bearer realm="todo-api"`)
		writeProblem(c, http.StatusUnauthorized, "this route needs a valid access token", nil)
		return "", false
	}
	return owner, true
}

func writeJSON(c *gin.Context, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen for todoView
		writeProblem(c, http.StatusInternalServerError, "an unexpected error occurred", nil)
		return
	}
	c.Data(status, "application/json; charset=utf-8", b)
}

func (h *Handlers) writeTodo(c *gin.Context, status int, t Todo) {
	c.Header("ETag", t.ETag())
	writeJSON(c, status, h.view(h.baseURL(c.Request), t))
}

// handleListTodos serves GET /todos: a JSON array (never null), and a
// Link: <…>; rel="next" header (RFC 8288) when there is a next page.
func handleListTodos(h *Handlers) gin.HandlerFunc {
	return func(c *gin.Context) {
		owner, ok := h.caller(c)
		if !ok {
			return
		}
		q, err := parseQuery(c.Request)
		if err != nil {
			h.writeError(c, err)
			return
		}
		opts := ListOptions{Limit: h.cfg.DefaultPageSize}
		if s, ok := q.get("limit"); ok {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > h.cfg.MaxPageSize {
				h.writeError(c, badRequest("limit must be an integer from 1 to %d", h.cfg.MaxPageSize))
				return
			}
			opts.Limit = n
		}
		if s, ok := q.get("completed"); ok {
			b, err := parseBool(s)
			if err != nil {
				h.writeError(c, err)
				return
			}
			opts.Completed = &b
		}
		if s, ok := q.get("cursor"); ok {
			if opts.After, err = ParseCursor(s); err != nil {
				h.writeError(c, err)
				return
			}
		}
		if q.err != nil {
			h.writeError(c, q.err)
			return
		}
		page, err := h.store.List(c.Request.Context(), owner, opts)
		if err != nil {
			h.writeError(c, err)
			return
		}
		base := h.baseURL(c.Request)
		if !page.Next.IsZero() {
			next := url.Values{"limit": {strconv.Itoa(opts.Limit)}, "cursor": {page.Next.String()}}
			if opts.Completed != nil {
				next.Set("completed", strconv.FormatBool(*opts.Completed))
			}
			c.Header("Link", "<"+base+"/todos?"+next.Encode()+`>; rel="next"`)
		}
		views := make([]todoView, 0, len(page.Todos))
		for _, t := range page.Todos {
			views = append(views, h.view(base, t))
		}
		writeJSON(c, http.StatusOK, views)
	}
}

// handleCreateTodo serves POST /todos: 201 with Location, ETag and the todo.
func handleCreateTodo(h *Handlers) gin.HandlerFunc {
	return func(c *gin.Context) {
		owner, ok := h.caller(c)
		if !ok {
			return
		}
		req, err := decodeValid[createRequest](c.Request, c.Writer, h.cfg.MaxBodyBytes)
		if err != nil {
			h.writeError(c, err)
			return
		}
		t, err := h.store.Create(c.Request.Context(), owner, req.newTodo())
		if err != nil {
			h.writeError(c, err)
			return
		}
		c.Header("Location", h.baseURL(c.Request)+"/todos/"+t.ID)
		h.writeTodo(c, http.StatusCreated, t)
	}
}

// handleDeleteTodos serves DELETE /todos: 204, every todo of the caller
// gone, or with ?completed=true the completed ones. Deleting every todo
// asks Config.AllowDeleteAll first.
func handleDeleteTodos(h *Handlers) gin.HandlerFunc {
	return func(c *gin.Context) {
		owner, ok := h.caller(c)
		if !ok {
			return
		}
		q, err := parseQuery(c.Request)
		if err != nil {
			h.writeError(c, err)
			return
		}
		completedOnly := false
		if s, ok := q.get("completed"); ok {
			if s != "true" {
				h.writeError(c, badRequest("completed must be true, or absent to delete every todo"))
				return
			}
			completedOnly = true
		}
		if q.err != nil {
			h.writeError(c, q.err)
			return
		}
		if !completedOnly && h.cfg.AllowDeleteAll != nil && !h.cfg.AllowDeleteAll(c.Writer, c.Request) {
			c.Abort()
			return
		}
		if _, err := h.store.DeleteAll(c.Request.Context(), owner, completedOnly); err != nil {
			h.writeError(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

// handleGetTodo serves GET /todos/{id}.
func handleGetTodo(h *Handlers) gin.HandlerFunc {
	return func(c *gin.Context) {
		owner, ok := h.caller(c)
		if !ok {
			return
		}
		t, err := h.store.Get(c.Request.Context(), owner, c.Param("id"))
		if err != nil {
			h.writeError(c, err)
			return
		}
		h.writeTodo(c, http.StatusOK, t)
	}
}

// handlePatchTodo serves PATCH /todos/{id}: fields absent or null are
// unchanged; If-Match not matching the current ETag is 412.
func handlePatchTodo(h *Handlers) gin.HandlerFunc {
	return func(c *gin.Context) {
		owner, ok := h.caller(c)
		if !ok {
			return
		}
		req, err := decodeValid[patchRequest](c.Request, c.Writer, h.cfg.MaxBodyBytes)
		if err != nil {
			h.writeError(c, err)
			return
		}
		id := c.Param("id")
		version, err := h.ifMatch(c, owner, id)
		if err != nil {
			h.writeError(c, err)
			return
		}
		t, err := h.store.Update(c.Request.Context(), owner, id, req.patch(), version)
		if err != nil {
			h.writeError(c, err)
			return
		}
		h.writeTodo(c, http.StatusOK, t)
	}
}

// handleDeleteTodo serves DELETE /todos/{id}: 204; If-Match not matching
// the current ETag is 412.
func handleDeleteTodo(h *Handlers) gin.HandlerFunc {
	return func(c *gin.Context) {
		owner, ok := h.caller(c)
		if !ok {
			return
		}
		id := c.Param("id")
		version, err := h.ifMatch(c, owner, id)
		if err != nil {
			h.writeError(c, err)
			return
		}
		if err := h.store.Delete(c.Request.Context(), owner, id, version); err != nil {
			h.writeError(c, err)
			return
		}
		c.Status(http.StatusNoContent)
	}
}

// ifMatch turns the If-Match header into the version the Store must find:
// nil when there is no header or it is "*" (any existing todo matches).
//
// Entity tags are compared strongly (RFC 9110 §13.1.1), so weak ones never
// match. A missing todo is 404 even with If-Match, rather than the 412 that
// RFC 9110 §13.1.1 allows: "it is gone" tells a client more than "it
// changed". In the rare header that lists several of this todo's tags, the
// one matching the current version is used.
func (h *Handlers) ifMatch(c *gin.Context, owner, id string) (*int, error) {
	values := c.Request.Header.Values("If-Match")
	if len(values) == 0 {
		return nil, nil
	}
	var versions []int
	for _, v := range values {
		for tag := range strings.SplitSeq(v, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return nil, nil
			}
			if version, ok := parseETag(tag, id); ok {
				versions = append(versions, version)
			}
		}
	}
	if len(versions) == 1 {
		return &versions[0], nil
	}
	t, err := h.store.Get(c.Request.Context(), owner, id)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(versions, t.Version) {
		return nil, ErrPreconditionFailed
	}
	return &t.Version, nil
}

// parseETag reads the version out of a strong tag made by Todo.ETag for the
// todo id; ok is false for any other tag.
func parseETag(tag, id string) (version int, ok bool) {
	inner, found := strings.CutPrefix(tag, `"`)
	if !found {
		return 0, false // weak (W/"…") or malformed
	}
	inner, found = strings.CutSuffix(inner, `"`)
	if !found {
		return 0, false
	}
	rest, found := strings.CutPrefix(inner, id+"-")
	if !found {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 1 || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

// query reads single-valued query parameters; a repeated one is an error,
// kept in err, so that ?limit=1&limit=500 is not silently one of them.
type query struct {
	values url.Values
	err    error
}

// parseQuery parses the raw query strictly: url.URL.Query drops malformed
// pairs silently, which would turn ?limit=%zz into the default.
func parseQuery(r *http.Request) (*query, error) {
	values, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("the query string is malformed")
	}
	return &query{values: values}, nil
}

// get returns the value of parameter name, if given once.
func (q *query) get(name string) (string, bool) {
	vs := q.values[name]
	switch len(vs) {
	case 0:
		return "", false
	case 1:
		return vs[0], true
	}
	if q.err == nil {
		q.err = badRequest("%s must be given at most once", name)
	}
	return "", false
}

// parseBool accepts exactly "true" and "false", unlike strconv.ParseBool.
func parseBool(s string) (bool, error) {
	switch s {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, badRequest("completed must be true or false")
}

package api

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/cors"
	"github.com/swaggest/swgui/v5emb"

	"github.com/tollgate-dev/tollgate"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/ginauth"
	"github.com/tollgate-dev/tollgate/todos"
)

// Pinger reports whether a dependency can serve requests.
type Pinger interface {
	Ready(ctx context.Context) error
}

// PingFunc adapts a function to Pinger.
type PingFunc func(ctx context.Context) error

// Ready calls f.
func (f PingFunc) Ready(ctx context.Context) error { return f(ctx) }

// Deps are what the todo API's handler needs; NewServer takes them all so
// that tests can build one from parts they made.
type Deps struct {
	Auth        *middleware.Authenticator
	Todos       *todos.Handlers
	ReadScopes  []string
	WriteScopes []string
	// CORSAllowedOrigins are the origins allowed to call with credentials.
	// NewServer normalises them as the Authenticator does (see
	// middleware.NormalizeOrigin) and leaves out any it refuses: Build has
	// refused those at start-up already.
	CORSAllowedOrigins []string
	// Ready lists what /readyz checks (the database, the signing keys).
	Ready  []Pinger
	Logger *slog.Logger
	// metrics is set by ListenAndServe; NewServer makes its own when nil.
	metrics *metrics
}

// NewServer returns the todo API's handler: every route of openapi.yaml
// (see routes.go), behind CORS, request logging and metrics.
func NewServer(d Deps) http.Handler {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.metrics == nil {
		d.metrics = newMetrics()
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.ContextWithFallback = true
	r.Use(requestLog(d.Logger), recovery(d.Logger), d.metrics.observe())
	addRoutes(r, d)
	return corsHandler(d.CORSAllowedOrigins).Handler(r)
}

// corsHandler allows the configured origins to call with credentials. A
// preflight needs no token; every answer, errors included, carries the
// CORS headers, so a page can read a 401 or a 422.
//
// The origins are normalised as the middleware's cookie check has them, and
// the request's Origin is compared exactly, as there. A function, not
// rs/cors's AllowedOrigins, decides: that list reads empty as "every
// origin" and "*" as a wildcard, where an empty CORS_ALLOWED_ORIGINS must
// allow none.
func corsHandler(origins []string) *cors.Cors {
	allowed, _ := normalizeOrigins(origins)
	return cors.New(cors.Options{
		AllowOriginFunc:  func(origin string) bool { return slices.Contains(allowed, origin) },
		AllowCredentials: true,
		AllowedMethods:   []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
		AllowedHeaders:   []string{"Content-Type", "Authorization", "If-Match", "X-CSRF"},
		ExposedHeaders:   []string{"ETag", "Location", "Link", "WWW-Authenticate", "Retry-After"},
		MaxAge:           600,
	})
}

// docsHandler serves Swagger UI, embedded in the binary, for openapi.yaml.
func docsHandler() http.Handler {
	return v5emb.New("Tollgate todo API", "/openapi.yaml", "/docs/")
}

// openAPIETag names this build's openapi.yaml, so that a cache can
// revalidate it for the price of a 304.
var openAPIETag = func() string {
	sum := sha256.Sum256(tollgate.OpenAPI)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}()

// handleOpenAPI serves openapi.yaml. It is public and the same for
// everyone, so shared caches may keep it, but must ask again each time
// (no-cache) so that a deploy is seen at once; the ETag makes asking cheap.
func handleOpenAPI(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "public, no-cache")
	h.Set("ETag", openAPIETag)
	h.Set("Content-Type", "application/yaml")
	http.ServeContent(c.Writer, c.Request, "", time.Time{}, bytes.NewReader(tollgate.OpenAPI))
}

// noStore marks an answer that reports live state (health, readiness,
// metrics): a kept copy would be a wrong one.
func noStore(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Next()
}

// privateAnswers runs first on every todo route, before authentication,
// so that every answer there, a refusal included, says that it belongs to
// one caller: no cache may keep it (no-store; the todo ETags serve If-Match,
// not revalidation, so no-cache would buy nothing), and it depends on the
// credentials and on the Origin (CORS). The middleware's own refusals
// replace Cache-Control with their plain no-store and keep Vary.
func privateAnswers(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Cache-Control", "private, no-store")
	addVary(h, "Origin", "Cookie", "Authorization")
	c.Next()
}

// addVary adds to Vary the field names it does not name yet, keeping
// those already there (rs/cors's Origin), in one value. It stores a new
// slice rather than editing the old: rs/cors puts one shared slice into
// every answer's header.
func addVary(h http.Header, names ...string) {
	var fields []string
	for _, v := range h.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				fields = append(fields, f)
			}
		}
	}
	if slices.Contains(fields, "*") {
		return
	}
	for _, n := range names {
		if !slices.ContainsFunc(fields, func(f string) bool { return strings.EqualFold(f, n) }) {
			fields = append(fields, n)
		}
	}
	h["Vary"] = []string{strings.Join(fields, ", ")}
}

func handleHealthz(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

func handleReadyz(checks []Pinger) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		for _, p := range checks {
			if err := p.Ready(ctx); err != nil {
				c.Header("Retry-After", "5")
				writeProblem(c.Writer, http.StatusServiceUnavailable, "not ready: "+err.Error())
				return
			}
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	}
}

func handleMetrics(m *metrics) gin.HandlerFunc {
	h := promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
	return gin.WrapH(h)
}

func requireAuth(d Deps, scopes []string) gin.HandlersChain {
	chain := gin.HandlersChain{privateAnswers, ginauth.Require(d.Auth)}
	if len(scopes) > 0 {
		chain = append(chain, ginauth.RequireScopes(d.Auth, scopes...))
	}
	return chain
}

func handleNotFound(c *gin.Context) {
	writeProblem(c.Writer, http.StatusNotFound, "no such resource")
}

func handleMethodNotAllowed(c *gin.Context) {
	writeProblem(c.Writer, http.StatusMethodNotAllowed, "method not allowed on this resource")
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail,
	})
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestLog gives each request an id (the caller's X-Request-Id when it is
// sane) and logs one line when it ends. It logs the path without the
// query string and no header but the id: no token, cookie or secret.
func requestLog(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		id := c.GetHeader("X-Request-Id")
		if !requestIDPattern.MatchString(id) {
			id = rand.Text()[:16]
		}
		c.Header("X-Request-Id", id)
		c.Next()
		level := slog.LevelInfo
		if c.Writer.Status() >= 500 {
			level = slog.LevelError
		}
		logger.LogAttrs(c.Request.Context(), level, "request",
			slog.String("request_id", id),
			slog.String("method", c.Request.Method),
			slog.String("path", c.Request.URL.Path),
			slog.String("route", c.FullPath()),
			slog.Int("status", c.Writer.Status()),
			slog.Duration("duration", time.Since(start)),
		)
	}
}

// recovery turns a panic into a 500 problem, logged without request data.
func recovery(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				logger.Error("panic in handler", "route", c.FullPath(), "panic", v)
				c.Abort()
				writeProblem(c.Writer, http.StatusInternalServerError, "internal error")
			}
		}()
		c.Next()
	}
}

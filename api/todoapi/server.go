package todoapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/cors"
	"github.com/swaggest/swgui/v5emb"

	"github.com/tollgate-dev/tollgate"
	"github.com/tollgate-dev/tollgate/internal/httpserve"
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

// deps are what the todo API's handler needs.
type deps struct {
	Auth        *middleware.Authenticator
	Todos       *todos.Handlers
	ReadScopes  []string
	WriteScopes []string
	// AllowedRoles: every todo route needs one of them, when set.
	AllowedRoles []string
	// CORSAllowedOrigins are the origins allowed to call with credentials.
	// NewServer normalises them as the Authenticator does (see
	// middleware.NormalizeOrigin) and leaves out any it refuses: Build has
	// refused those at start-up already.
	CORSAllowedOrigins []string
	// DPoP: DPoP-bound tokens are accepted, so browsers may send the DPoP
	// header and read DPoP-Nonce.
	DPoP bool
	// Ready lists what /readyz checks (the database, the signing keys).
	Ready   []Pinger
	Logger  *slog.Logger
	metrics *metrics
}

// newHandler returns the todo API's handler: every route of openapi.yaml
// (see routes.go), behind request logging, CORS and metrics.
func newHandler(d deps) (http.Handler, *gin.Engine) {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.ContextWithFallback = true
	r.Use(namedRoute, d.metrics.observe())
	addRoutes(r, d)
	return httpserve.Wrap(corsHandler(d.CORSAllowedOrigins, d.DPoP).Handler(r), d.Logger), r
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
//
// With DPoP on, a page may also send the DPoP proof header and read
// DPoP-Nonce (RFC 9449 §8), whose value it must sign into its next proof;
// WWW-Authenticate, exposed anyway, carries the DPoP challenge.
func corsHandler(origins []string, dpop bool) *cors.Cors {
	allowed := []string{"Content-Type", "Authorization", "If-Match", "X-CSRF"}
	exposed := []string{"ETag", "Location", "Link", "WWW-Authenticate", "Retry-After"}
	if dpop {
		allowed = append(allowed, middleware.DPoPHeader)
		exposed = append(exposed, middleware.DPoPNonceHeader)
	}
	return cors.New(cors.Options{
		// origins are in the form browsers send: Config.validate put them
		// so, once, for this and the middleware's cookie check alike.
		AllowOriginFunc:  func(origin string) bool { return slices.Contains(origins, origin) },
		AllowCredentials: true,
		AllowedMethods:   []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
		AllowedHeaders:   allowed,
		ExposedHeaders:   exposed,
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
	markPrivate(c.Writer.Header())
	c.Next()
}

// markPrivate says that an answer belongs to one caller: no cache may keep
// it, and it depends on the credentials and the Origin.
func markPrivate(h http.Header) {
	h.Set("Cache-Control", "private, no-store")
	addVary(h, "Origin", "Cookie", "Authorization")
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

func requireAuth(d deps, scopes []string) gin.HandlersChain {
	chain := gin.HandlersChain{privateAnswers, ginauth.Require(d.Auth)}
	if len(scopes) > 0 {
		chain = append(chain, ginauth.RequireScopes(d.Auth, scopes...))
	}
	if len(d.AllowedRoles) > 0 {
		chain = append(chain, ginauth.RequireAnyRole(d.Auth, d.AllowedRoles...))
	}
	return chain
}

// underTodos reports whether path is a todo route's, or would be one.
func underTodos(path string) bool {
	return path == "/todos" || strings.HasPrefix(path, "/todos/")
}

// handleNotFound and handleMethodNotAllowed answer what no route took. On
// the todo paths the answer is private too, as the routes' own are; 404 and
// 405 are cacheable by default (RFC 9111 §4.2.2), so the others say
// no-store.
func handleNotFound(c *gin.Context) {
	unmatched(c)
	writeProblem(c.Writer, http.StatusNotFound, "no such resource")
}

func handleMethodNotAllowed(c *gin.Context) {
	unmatched(c)
	writeProblem(c.Writer, http.StatusMethodNotAllowed, "method not allowed on this resource")
}

func unmatched(c *gin.Context) {
	if underTodos(c.Request.URL.Path) {
		markPrivate(c.Writer.Header())
		return
	}
	c.Writer.Header().Set("Cache-Control", "no-store")
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	httpserve.WriteProblem(w, status, detail)
}

// namedRoute tells the request log which route matched.
func namedRoute(c *gin.Context) {
	httpserve.SetRoute(c.Request, c.FullPath())
	c.Next()
}

package exchange

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes is the whole HTTP surface:
//
//	GET    /login[?returnTo=/path]  start a login (302 to the authorization server)
//	GET    /oauth-callback           finish it (303 to returnTo, or an error page)
//	POST   /refreshtoken             refresh the access token (X-CSRF: 1)
//	DELETE /refreshtoken             sign out (X-CSRF: 1)
//	GET    /me                       who is signed in
//	GET    /config.json              what the web page needs to know
//	GET    /healthz, /metrics
//	GET    /*                        the web page
func (s *Server) routes() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.HandleMethodNotAllowed = true
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.ContextWithFallback = true
	r.Use(s.requestLog(), s.recovery(), s.metrics.observe(), securityHeaders)

	r.GET(loginPath, s.handleLogin)
	r.GET(callbackPath, s.handleCallback)
	r.POST(refreshPath, s.requireCSRF, s.handleRefresh)
	r.DELETE(refreshPath, s.requireCSRF, s.handleLogout)
	r.GET(mePath, s.handleMe)
	r.GET(configPath, s.handleConfig)
	r.GET("/healthz", handleHealthz)
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{})))
	r.NoRoute(s.handleWeb)
	r.NoMethod(func(c *gin.Context) {
		writeProblem(c.Writer, http.StatusMethodNotAllowed, "method not allowed")
	})
	return r
}

// securityHeaders go on every answer. Referrer-Policy is same-origin, not
// no-referrer, because under no-referrer browsers send "Origin: null" on
// same-origin POST and DELETE; /oauth-callback, whose URL carries the
// authorization code, sets no-referrer itself.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Next()
}

// requireCSRF admits a request to /refreshtoken only with the header
// X-CSRF: 1, which a cross-site page cannot send without a CORS preflight
// that this server never answers. When the browser names an Origin, it must
// be ours; "null" (sent by privacy settings and sandboxed frames) is let
// through to the header check, which alone already stops cross-site calls.
func (s *Server) requireCSRF(c *gin.Context) {
	if c.GetHeader("X-CSRF") != "1" {
		writeProblem(c.Writer, http.StatusForbidden, "the X-CSRF: 1 header is required")
		c.Abort()
		return
	}
	if o := c.GetHeader("Origin"); o != "" && o != "null" && o != s.origin {
		writeProblem(c.Writer, http.StatusForbidden, "cross-origin request refused")
		c.Abort()
		return
	}
	c.Next()
}

func handleHealthz(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"status": "ok"})
}

// requestLog logs method, route, status and duration: never the query
// (code, state), a cookie or a body.
func (s *Server) requestLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "static"
		}
		level := slog.LevelInfo
		if c.Writer.Status() >= 500 {
			level = slog.LevelError
		}
		s.logger.LogAttrs(c.Request.Context(), level, "request",
			slog.String("method", c.Request.Method), slog.String("route", route),
			slog.Int("status", c.Writer.Status()), slog.Duration("duration", time.Since(start)))
	}
}

func (s *Server) recovery() gin.HandlerFunc {
	return gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, err any) {
		s.logger.Error("panic", "route", c.FullPath(), "panic", err)
		writeProblem(c.Writer, http.StatusInternalServerError, "internal error")
		c.Abort()
	})
}

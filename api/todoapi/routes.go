package todoapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tollgate-dev/tollgate/middleware/ginauth"
)

// addRoutes is the todo API's whole surface, the list to read first: the
// service routes below, then the todo routes of todos.Routes, each behind
// the private-answer headers, authentication and the read or write scope.
// No todo handler runs, and so no query, before the token is verified.
// TestRoutesMatchOpenAPI checks this surface against openapi.yaml, both
// ways.
func addRoutes(r *gin.Engine, d deps) {
	r.GET("/healthz", noStore, handleHealthz)            // alive
	r.GET("/readyz", noStore, handleReadyz(d.Ready))     // database reachable, signing keys loaded
	r.GET("/metrics", noStore, handleMetrics(d.metrics)) // Prometheus
	r.GET("/openapi.yaml", handleOpenAPI)                // the contract
	r.GET("/docs", func(c *gin.Context) {                // Swagger UI …
		c.Redirect(http.StatusFound, "/docs/")
	})
	r.GET("/docs/*asset", gin.WrapH(docsHandler())) // … and its embedded assets
	// GET/HEAD /.well-known/oauth-protected-resource[/path]: RFC 9728
	// metadata, only when RESOURCE_URL is set; public, outside auth.
	ginauth.ServeResourceMetadata(r, d.Auth)

	// GET/POST/DELETE /todos, GET/PATCH/DELETE /todos/:id (todos.Routes).
	d.Todos.Register(r, requireAuth(d, d.ReadScopes), requireAuth(d, d.WriteScopes))

	r.NoRoute(handleNotFound)
	r.NoMethod(handleMethodNotAllowed)
}

package api

import (
	"github.com/gin-gonic/gin"
)

// addRoutes is the todo API's whole surface; it matches openapi.yaml.
func addRoutes(r *gin.Engine, d Deps) {
	r.GET("/healthz", noStore, handleHealthz)
	r.GET("/readyz", noStore, handleReadyz(d.Ready))
	r.GET("/metrics", noStore, handleMetrics(d.metrics))
	r.GET("/openapi.yaml", handleOpenAPI)
	docs := gin.WrapH(docsHandler())
	r.GET("/docs", func(c *gin.Context) { c.Redirect(302, "/docs/") })
	r.GET("/docs/*asset", docs)

	// The todo routes: the private-answer headers, authentication, then
	// the scope, then the handler. No handler runs, and so no query,
	// before the token is verified.
	d.Todos.Register(r, requireAuth(d, d.ReadScopes), requireAuth(d, d.WriteScopes))

	r.NoRoute(handleNotFound)
	r.NoMethod(handleMethodNotAllowed)
}

package ginauth_test

import (
	"context"
	"log"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/ginauth"
)

// Protect Gin routes with the same Authenticator.
func Example() {
	auth, err := middleware.New(context.Background(), middleware.Config{
		Issuer:    "https://auth.example.com/",
		Audiences: []string{"todo-api"},
	})
	if err != nil {
		log.Fatal(err)
	}
	r := gin.New()
	api := r.Group("/", ginauth.Require(auth))
	api.GET("/todos", ginauth.RequireScopes(auth, "todos:read"), func(c *gin.Context) {
		p, _ := ginauth.Principal(c)
		c.JSON(http.StatusOK, gin.H{"owner": p.Subject})
	})
	log.Fatal(r.Run(":8080"))
}

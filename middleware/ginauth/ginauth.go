// Package ginauth adapts middleware.Authenticator to Gin. The verified
// caller is stored in the request context, so handlers read it with
// principal.From(c.Request.Context()) or Principal(c), the same way on
// either stack. Refusals are written by the Authenticator's WriteError:
// its realm, its resource_metadata (RFC 9728), and its Config.ErrorHandler
// when set. ServeResourceMetadata serves the RFC 9728 document.
package ginauth

import (
	"slices"

	"github.com/gin-gonic/gin"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// Require answers every request without a valid token with the
// Authenticator's WriteError and aborts the chain; others continue with
// the Principal in c.Request's context.
func Require(a *middleware.Authenticator) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := a.Authenticate(c.Request)
		if err != nil {
			a.WriteError(c.Writer, c.Request, err)
			c.Abort()
			return
		}
		nextDPoPNonce(c, a, p)
		c.Request = c.Request.WithContext(principal.With(c.Request.Context(), p))
		c.Next()
	}
}

// nextDPoPNonce gives an accepted DPoP request the nonce for its next proof
// (RFC 9449 §8.2), as middleware.Require does, so that a client is not
// refused each time the nonce rotates. It is set before the handler runs,
// so a refusal further on (scope, role, step-up) carries it too.
func nextDPoPNonce(c *gin.Context, a *middleware.Authenticator, p principal.Principal) {
	if p.Binding != principal.BindingDPoP {
		return
	}
	if n := a.DPoPNonce(); n != "" {
		c.Header(middleware.DPoPNonceHeader, n)
	}
}

// Optional lets a request without a token continue with no Principal, and
// one with a valid token with its Principal; a bad token is refused as
// Require refuses it (see middleware.Authenticator.Optional).
func Optional(a *middleware.Authenticator) gin.HandlerFunc {
	return func(c *gin.Context) {
		p, err := a.Authenticate(c.Request)
		switch {
		case middleware.IsNoToken(err):
		case err != nil:
			a.WriteError(c.Writer, c.Request, err)
			c.Abort()
			return
		default:
			nextDPoPNonce(c, a, p)
			c.Request = c.Request.WithContext(principal.With(c.Request.Context(), p))
		}
		c.Next()
	}
}

// RequireScopes, placed after Require, answers 403 insufficient_scope
// unless the caller holds every one of scopes.
func RequireScopes(a *middleware.Authenticator, scopes ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := a.CheckScopes(c.Request.Context(), scopes...); err != nil {
			a.WriteError(c.Writer, c.Request, err)
			c.Abort()
			return
		}
		c.Next()
	}
}

// RequireAnyScope, placed after Require, answers 403 insufficient_scope
// unless the caller holds at least one of scopes. It panics when given no
// scope, as middleware.Authenticator.RequireAnyScope does.
func RequireAnyScope(a *middleware.Authenticator, scopes ...string) gin.HandlerFunc {
	if len(scopes) == 0 {
		panic("ginauth: RequireAnyScope needs at least one scope")
	}
	return func(c *gin.Context) {
		if err := a.CheckAnyScope(c.Request.Context(), scopes...); err != nil {
			a.WriteError(c.Writer, c.Request, err)
			c.Abort()
			return
		}
		c.Next()
	}
}

// RequireRoles, placed after Require, answers 403 (error
// insufficient_scope, no scope attribute, reason insufficient_role) unless
// the caller holds every one of roles (Principal.Roles, read from
// Config.RoleClaims).
func RequireRoles(a *middleware.Authenticator, roles ...string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := a.CheckRoles(c.Request.Context(), roles...); err != nil {
			a.WriteError(c.Writer, c.Request, err)
			c.Abort()
			return
		}
		c.Next()
	}
}

// RequireAnyRole, placed after Require, answers 403 as RequireRoles does
// unless the caller holds at least one of roles. It panics when given no
// role, as middleware.Authenticator.RequireAnyRole does.
func RequireAnyRole(a *middleware.Authenticator, roles ...string) gin.HandlerFunc {
	if len(roles) == 0 {
		panic("ginauth: RequireAnyRole needs at least one role")
	}
	return func(c *gin.Context) {
		if err := a.CheckAnyRole(c.Request.Context(), roles...); err != nil {
			a.WriteError(c.Writer, c.Request, err)
			c.Abort()
			return
		}
		c.Next()
	}
}

// RequireStepUp, placed after Require, answers 401
// insufficient_user_authentication with the RFC 9470 challenge unless the
// user authentication behind the caller's token meets s (see
// middleware.Authenticator.CheckStepUp). It panics when s is invalid, as
// middleware.Authenticator.RequireStepUp does.
func RequireStepUp(a *middleware.Authenticator, s middleware.StepUp) gin.HandlerFunc {
	if err := s.Validate(); err != nil {
		panic(err.Error())
	}
	s.ACRValues = slices.Clone(s.ACRValues) // the caller's slice may change later
	return func(c *gin.Context) {
		if err := a.CheckStepUp(c.Request.Context(), s); err != nil {
			a.WriteError(c.Writer, c.Request, err)
			c.Abort()
			return
		}
		c.Next()
	}
}

// ServeResourceMetadata registers the Authenticator's RFC 9728
// protected-resource metadata document on r for GET and HEAD (and answers
// a browser's CORS preflight), at
// a.ResourceMetadataPath() (see middleware.Authenticator.
// ResourceMetadataHandler), outside any authentication: the document is
// public, and the clients that read it have no token yet. It registers
// nothing when the Authenticator has no Config.ResourceMetadata, so it can
// be called whatever the configuration.
//
// Gin does not route HEAD to GET handlers, hence the two routes.
func ServeResourceMetadata(r gin.IRoutes, a *middleware.Authenticator) {
	path := a.ResourceMetadataPath()
	if path == "" {
		return
	}
	h := ResourceMetadata(a)
	r.GET(path, h)
	r.HEAD(path, h)
	r.OPTIONS(path, h) // a browser's CORS preflight
}

// ResourceMetadata is the Authenticator's metadata handler as a Gin
// handler, for routers that register it themselves.
func ResourceMetadata(a *middleware.Authenticator) gin.HandlerFunc {
	return gin.WrapH(a.ResourceMetadataHandler())
}

// Principal returns the verified caller of the request, if any.
func Principal(c *gin.Context) (principal.Principal, bool) {
	return principal.From(c.Request.Context())
}

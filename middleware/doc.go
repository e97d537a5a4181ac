// Package middleware authenticates requests to a resource server with OAuth
// 2.0 bearer access tokens (RFC 6750).
//
// An Authenticator reads the token from the Authorization header, or from a
// configured cookie when the request also proves it is not cross-site, and
// verifies it locally as a JWT against the issuer's JWKS (RFC 7519, RFC 8725,
// RFC 9068 §4). The verified caller is put in the request context as a
// principal.Principal; handlers read it with principal.From.
//
// Failures map to RFC 6750 §3 answers with an application/problem+json body:
// no token is 401 with a bare challenge, a malformed request 400
// invalid_request, a bad token 401 invalid_token, a missing scope 403
// insufficient_scope, and an authorization server that cannot be reached
// with nothing cached 503 with Retry-After. The sentinel errors ErrNoToken,
// ErrMalformed, ErrInvalidToken, ErrScope and ErrUnavailable let callers
// branch with errors.Is.
//
// The package depends on net/http only; middleware/ginauth adapts it to Gin.
// It never logs a token: log lines carry a short hash of it.
package middleware

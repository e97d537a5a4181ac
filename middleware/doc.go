// Package middleware authenticates requests to a resource server with OAuth
// 2.0 bearer access tokens (RFC 6750).
//
// An Authenticator reads the token from the Authorization header (and, only
// when Config.CookieNames names them, from cookies, when the request also
// proves it is not cross-site) and verifies it: locally as a JWT against
// the issuer's JWKS (RFC 7519, RFC 8725, RFC 9068 §4), by introspection
// (RFC 7662) through an Introspector, or by shape, one or the other (see
// Mode). The verified caller is put in the request context as a
// principal.Principal; handlers read it with principal.From. Which claims
// say whom a token is for, and which carry its scopes and the user's roles,
// is configurable (Config.AudienceClaims, ScopeClaims, RoleClaims), so that
// the shapes of Auth0, Entra ID, Okta, Cognito, Keycloak, FusionAuth, Hydra,
// Zitadel and Dex tokens fit; the README has a guide per server.
//
// Several issuers may be trusted at once (Config.Issuers, and
// Config.IssuerResolver for dynamic sets such as the tenants of an Entra ID
// multi-tenant application, see Entra): each token is verified with the
// keys, audiences and algorithms of the issuer its iss names, and no
// other's; the unverified iss only selects them, and a token of an issuer
// no one trusts is refused without any network request.
//
// New fails at once on a bad Config, an issuer whose metadata cannot be
// read, or signing keys that cannot be fetched (unless Config.LazyKeys), so
// a wrong setting stops the program at start rather than at the first
// request.
//
// Failures map to RFC 6750 §3 answers with an application/problem+json body
// that always carries a reason: no token is 401 with a bare challenge, a
// malformed request 400 invalid_request, a bad token 401 invalid_token, a
// missing scope 403 insufficient_scope (a missing role too, without a scope
// attribute), a user authentication that is not
// strong or recent enough for a route's StepUp 401
// insufficient_user_authentication with acr_values and max_age (RFC 9470),
// and an authorization server that cannot be reached with nothing cached
// 503 with Retry-After. The sentinel errors ErrNoToken, ErrMalformed,
// ErrInvalidToken, ErrScope, ErrRole, ErrStepUp, ErrUnavailable and
// ErrDPoPProof let callers branch with errors.Is, one sentinel per call.
//
// Tokens bound to a key (cnf) are refused by default. With Config.DPoP
// DPoPAllowed or DPoPRequired, DPoP-bound tokens (RFC 9449, cnf.jkt) are
// accepted with the DPoP scheme and a proof checked on every request;
// Principal.Binding and Principal.JKT say so.
//
// With Config.ResourceMetadata the Authenticator also describes the
// resource for OAuth 2.0 Protected Resource Metadata (RFC 9728): it serves
// the JSON document at the well-known URL derived from the resource
// identifier (ResourceMetadataHandler, ResourceMetadataURL), and every
// challenge it writes carries resource_metadata with that URL (§5.1),
// so that a client that knows nothing of the API, an MCP client for
// instance, finds its authorization server from a 401.
//
// The middleware has the net/http shape (func(http.Handler) http.Handler),
// so it fits the standard library's ServeMux and routers built on it such
// as chi; middleware/ginauth adapts it to Gin. Besides the standard library
// it uses golang-jwt/jwt/v5, MicahParks/keyfunc/v3 and jwkset,
// golang.org/x/sync, golang.org/x/time and the introspection package. It
// never logs a token: log lines carry a short hash of it.
package middleware

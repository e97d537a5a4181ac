// Package dpopinterop holds only tests: they cross-check Tollgate's DPoP
// (RFC 9449) verification in middleware and the proofs authtest makes
// against code nobody here wrote, lestrrat-go/jwx v3 and
// auth0/go-jwt-middleware v3 (and go-jose v4 for thumbprints). Proofs
// signed by jwx must pass Tollgate, authtest's proofs must pass
// go-jwt-middleware, and the three must agree on RFC 7638 thumbprints.
//
// It lives in the application module so that the library modules
// (middleware and the rest) never depend on those libraries: the tests
// need them, their importers do not.
package dpopinterop

// Package devidp is Tollgate's development authorization server: an OAuth 2.0
// (RFC 6749) and OpenID Connect server built on github.com/ory/fosite, so that
// the exchange service and the todo API can be run and tested on a machine with
// no account anywhere. It is for development only, never for production: its
// users, passwords and client secrets are well known, and it keeps everything
// in memory, so a restart forgets every code and token and makes a new
// signing key.
//
// fosite does the protocol: the authorization code grant with PKCE (S256,
// required; RFC 7636), refresh tokens with rotation and replay detection
// (RFC 6819 §5.2.2.3), introspection (RFC 7662), revocation (RFC 7009) and
// ID tokens. This package adds only the wiring, the login page, the demo users
// and the clients, plus what fosite lacks: the discovery document (RFC 8414,
// OpenID Connect Discovery), the JWKS, userinfo, end-session, and the iss
// authorization response parameter (RFC 9207).
//
// Access tokens are RS256 JWTs in the shape of RFC 9068 (header typ at+jwt;
// claims iss, sub, aud, scope, client_id, jti, iat, nbf, exp, acr,
// auth_time) or, with Config.OpaqueAccessTokens, opaque fosite HMAC tokens
// for the introspection mode. Both kinds are recorded server-side, so introspection and revocation
// work for both. Introspection answers "active": true for access tokens
// only: a refresh or ID token is inactive there, so that no resource server
// takes one for a bearer token.
//
// DPoP (RFC 9449): a token request with a DPoP proof header gets
// DPoP-bound tokens. The proof is checked as RFC 9449 §4.3 asks of an
// authorization server (typ dpop+jwt; alg among DPoPAlgorithms, which
// discovery lists as dpop_signing_alg_values_supported; a public jwk;
// signature; htm POST; htu the token endpoint; iat within 60 s; a jti
// not seen before, in the token endpoint's replay set of at most
// DPoPReplayLimit entries; no ath), with github.com/go-jose/go-jose/v4, not the middleware's code, so
// that tests cross-check the two. More than one DPoP header, or a bad
// proof, is 400 invalid_dpop_proof. The access token then carries cnf.jkt,
// the proof key's RFC 7638 SHA-256 thumbprint, and the answer says
// token_type DPoP; introspection answers for it carry cnf.jkt and
// token_type DPoP too. Refresh tokens of public clients are bound to the
// key: a refresh must bring a proof of that key (invalid_dpop_proof
// otherwise), and the new tokens stay bound. Refresh tokens of
// confidential clients are not bound; each access token is bound to the
// key of its own request's proof, if any. userinfo takes a bound token
// only with the DPoP scheme and a proof (with ath) of its key. Without a
// proof everything is as before: Bearer tokens.
//
// Besides the confidential clients, DefaultClients has a public one,
// DefaultCLIClientID ("tollgate-cli"): no secret (token endpoint auth
// method none), PKCE required as for every client, redirect URI
// DefaultCLIRedirectURL on any loopback port (RFC 8252 §7.3), for
// command-line tools and for tests that get DPoP-bound tokens. Public
// clients cannot introspect.
//
// There is no single sign-on session: every authorization request shows the
// login form, and end-session only redirects. So every sign-in is a fresh
// one and meets any max_age.
//
// For RFC 9470 step-up the server knows two authentication context
// classes: ACRPassword, the password alone, and ACRTwoFactor, the password
// and then a second step asking for the user's SecondFactor code (a
// stand-in for a real second factor, carried from the first step by a
// signed proof bound to the user and the authorization request). An
// authorization request whose acr_values prefers ACRTwoFactor gets the
// second step. Every token of the grant, refreshed ones too, carries the
// sign-in's acr and auth_time: ID tokens (with amr), access tokens and
// introspection answers.
//
// To run it behind httptest with an issuer that matches the listener's URL,
// create the listener first:
//
//	ts := httptest.NewUnstartedServer(nil)
//	srv, err := devidp.New(ctx, devidp.Config{Issuer: "http://" + ts.Listener.Addr().String()})
//	if err != nil { … }
//	ts.Config.Handler = srv
//	ts.Start()
//
// Package devidptest does exactly that, and drives the login form.
package devidp

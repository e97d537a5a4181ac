// Package exchange is Tollgate's token exchange service, a backend for the
// todo web page (a "backend for frontend" in the words of
// draft-ietf-oauth-browser-based-apps): it runs the OAuth 2.0 Authorization
// Code grant with PKCE (RFC 7636), state and an OpenID Connect nonce as a
// confidential client, and hands the tokens to the browser only as HttpOnly
// cookies, so that no script on the page ever sees one.
//
// Endpoints:
//
//	GET    /login[?returnTo=/path]  start a login; acr_values and max_age (RFC 9470 step-up) are passed on
//	GET    /oauth-callback           finish it: check state and iss (RFC 9207), exchange the code, verify the ID token and nonce
//	POST   /refreshtoken             refresh the access token cookie (needs X-CSRF: 1)
//	DELETE /refreshtoken             sign out: revoke the refresh, then the access token (RFC 7009), clear the cookies, answer the end-session URL and the revocation outcome (needs X-CSRF: 1)
//	GET    /me                       who is signed in
//	GET    /config.json              where the todo API is
//	GET    /healthz, /metrics
//	GET    /                         the todo web page
//
// # State
//
// Nothing about a login lives in server memory: each attempt's state, PKCE
// verifier, nonce and returnTo travel in a transaction cookie of its own
// (named after a hash of the state, so two tabs can sign in at once),
// sealed with AES-256-GCM under a key derived from SESSION_SECRET, with the
// cookie's name as additional data. Any number of instances sharing
// SESSION_SECRET can serve one site.
//
// The one exception is the refresh grace cache. A rotating authorization
// server revokes a whole token family when a replaced refresh token is used
// again, and a browser with several tabs does exactly that: the second tab's
// POST /refreshtoken may leave before the first one's answer (with the new
// refresh token cookie) arrives. Concurrent refreshes with one refresh token
// therefore share one grant call (singleflight), and for RefreshGrace (20s
// by default) afterwards a request that still carries the replaced token is
// handed the same result instead of replaying it. Without a store this
// protection holds per instance.
//
// # Several instances (STORE_URL)
//
// With Config.StoreURL (STORE_URL=redis://…, Redis or Valkey) the same
// holds across every instance sharing the store (see sharedrefresh.go):
// the instance that wins a short SET NX PX lock, keyed by an HMAC of the
// refresh token, runs the grant and stores its result, sealed under a key
// derived from SESSION_SECRET and bound to the key's name, for
// RefreshGrace; the others, woken by pub/sub (with a backstop timer), hand
// out that result. A holder that dies, or cannot store its result, leaves
// a lock that expires a little after HTTPTimeout; its waiters then answer
// 503 rather than spend a token that may be spent, and the browser's retry
// goes ahead. Sign-out marks the token forgotten for every instance.
//
// When the store does not answer, a refresh answers 503 with Retry-After:
// never a grant this instance cannot coordinate, never a fall back to its
// own state. Sign-in does not use the store; sign-out still revokes at the
// server and clears the cookies, and logs that the store missed it. The
// store's client reconnects by itself.
package exchange

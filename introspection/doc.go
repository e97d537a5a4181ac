// Package introspection asks an OAuth 2.0 authorization server whether an
// access token is active, using token introspection (RFC 7662). It caches
// answers, never past the token's exp, and merges concurrent lookups of the
// same token into one request. It knows nothing of HTTP middleware: it takes
// a token and returns the server's verdict, and the caller decides what an
// HTTP answer should look like. It depends on the standard library and
// golang.org/x/time/rate only.
//
// # Use
//
// A Client is a plain configuration struct; its zero fields mean the
// documented defaults. Call Validate once at start-up to report every
// configuration problem at once, then call Introspect from any number of
// goroutines:
//
//	c := &introspection.Client{
//		Endpoint:     "https://as.example.com/oauth2/introspect",
//		ClientID:     "todo-api",
//		ClientSecret: secret,
//	}
//	if err := c.Validate(); err != nil {
//		log.Fatal(err)
//	}
//	resp, err := c.Introspect(ctx, token)
//
// # The request (RFC 7662 §2.1)
//
// Introspect POSTs token=…&token_type_hint=access_token as
// application/x-www-form-urlencoded, with Accept: application/json, and
// authenticates the client by HTTP Basic (the default; client id and secret
// are form-urlencoded before base64, as RFC 6749 §2.3.1 asks), in the form
// body (AuthPost), or not at all (AuthNone). Redirects are never followed, so
// the token is only ever sent to Endpoint.
//
// # The answer (RFC 7662 §2.2)
//
// A token is active only when the answer's "active" member is the JSON
// boolean true. Anything else ("true" as a string, 1, null, a missing member)
// means inactive, and nothing else in such an answer is read. Known members of
// an active answer are checked strictly: a member of the wrong type (exp as a
// string, aud as a number) makes the whole answer malformed; JSON null counts
// as absent. Every member, known or not, is also in Response.Claims.
//
// # Errors
//
//   - ErrInactive: the server says the token is not active (or it is
//     empty). A resource server answers 401 invalid_token.
//   - ErrNotAccessToken: the server says the token is active, but its answer
//     says it is not an access token: Hydra's "token_use" is not
//     "access_token", "token_type" is not an access token type, or
//     Keycloak's "typ" names a refresh, offline or ID token (see
//     Response.CheckAccessToken). RFC 7662 servers answer for refresh tokens
//     too, and a refresh token must not pass as a bearer token. It also
//     matches ErrInactive, and is cached like an inactive answer. An answer
//     that names no kind of token is accepted.
//   - ErrUnavailable: the server could not be asked or gave no verdict:
//     network error, Timeout, or any non-200 answer. A resource server
//     answers 503. Non-200 answers are also a *Error carrying the status and
//     the RFC 6749 §5.2 error fields. This includes 401 and 403: RFC 7662 §2.3
//     reserves them for our own client credentials being refused, and §2.2
//     says an invalid token must get a 200 answer with "active": false, so no
//     error status ever says anything about the caller's token; blaming the
//     caller would hide a server or configuration fault behind 401s.
//   - ErrMalformedResponse: a 200 answer that is not a JSON object, not
//     application/json, larger than MaxResponseBytes, or with a known member
//     of the wrong type. There is no verdict either; a resource server should
//     fail closed and answer 503 as for ErrUnavailable.
//   - ErrOverloaded: the Client did not ask, because MaxInFlight requests
//     were in flight or RateLimit was reached (see below). It also matches
//     ErrUnavailable; a resource server answers 503 with Retry-After.
//   - The caller's ctx ending returns its ctx.Err(), wrapped.
//
// Neither errors nor log records ever contain the token; logs name it in the
// field token_sha256, the first 12 hex digits of its SHA-256 (HashToken,
// TokenHash.LogAttr), the same field the middleware logs.
//
// # Cache (RFC 7662 §4)
//
// Every answer cached is a trade-off between load on the authorization
// server and how soon a revoked token stops working: RFC 7662 §4 lets a
// protected resource cache answers, but a revoked token keeps working here
// for up to CacheTTL. Active answers are kept until the token's exp or
// CacheTTL from now, whichever comes first, and an active answer whose exp
// has already passed is not kept at all. Inactive answers are kept for
// InactiveCacheTTL (short, so a token minted just before its first use is not
// refused for long, yet a flood of bad tokens does not reach the server).
// Failures are never cached. Entries are keyed by the SHA-256 of the token,
// so the cache never holds a token, and there are at most CacheSize of them.
//
// # Request coalescing
//
// Concurrent Introspect calls for the same token that miss the cache share
// one HTTP request, as golang.org/x/sync/singleflight would, but the Client
// counts the callers of each shared request. The request runs detached from
// any one caller's cancellation (it keeps the first caller's ctx values)
// and is bounded by Timeout; each caller stops waiting when its own ctx
// ends, without cancelling the request for the others, and when the last
// caller leaves, the request is cancelled: no one would read its answer,
// and a client that hangs up at once must not leave work running for up to
// Timeout. Such a request is not counted as a failure.
//
// # Load on the authorization server
//
// Every distinct token that misses the cache costs a request, so a caller
// who sends random garbage tokens could otherwise make the resource server
// flood its authorization server. MaxInFlight (default 64) bounds the
// requests in flight at once: when it is reached, a lookup that would need a
// new request fails at once with ErrOverloaded rather than wait, as a queue
// would grow as fast as the garbage comes, and the requests of honest
// callers would wait behind it. A lookup of a token whose request is already
// in flight still joins it, since that costs nothing. When the Client makes
// its own HTTP client, its transport opens at most MaxInFlight connections
// to the host and keeps as many idle for the next burst. RateLimit (off by
// default) can also bound the new requests per second. Cache hits never
// count against either bound. Stats.Refused counts the refusals.
//
// # Cache shared by a fleet
//
// Several instances of one API each keep their own cache, so each asks the
// server about every token once. With SharedCache (Redis, say; the Client
// needs only Get and Set, and an adapter elsewhere supplies them), a lookup
// that misses the local cache looks in the shared one, inside the
// coalesced request, before it asks the server; every verdict the server
// gives is stored in both. The rules do not change: an active verdict is
// kept until the token's exp or CacheTTL after the server gave it,
// whichever is first, an inactive one (ErrNotAccessToken included) for
// InactiveCacheTTL, failures never. The stored value carries that instant,
// and a reader keeps the verdict no longer than it, nor past its own
// TTLs, so passing a verdict between instances never makes it live longer.
// With a shared cache, RateLimit counts only requests to the server.
//
// Keys are "tollgate:introspection:v1:", 32 hex digits of a hash of
// Endpoint and ClientID (two APIs sharing one Redis never read each
// other's verdicts), ":" and the 64 hex digits of the token's SHA-256.
// Values are a version byte, a MAC flag, the MAC when there is one, and
// JSON holding the instant and the server's answer (re-encoded; an answer
// that quotes the token is never shared): never the token. A value that
// cannot be read whole, or that is not an active access token's answer
// where one should be, is ignored like a miss and logged once, until a
// good one is read.
//
// Whoever can write to the shared cache could otherwise mark any token
// active: without SharedCacheKey the cache is trusted as the connection to
// the authorization server is. With it (at least 32 random bytes, the same
// on every instance), each value carries an HMAC-SHA256 over its key name
// and content, and a value that fails is ignored: write access to the
// cache can then only delete verdicts (costing requests to the server),
// not forge them, move them to another token, or replay them past their
// instant. Set it. The MAC does not hide the answer's claims from those
// who can read the cache.
//
// The shared cache never fails a lookup. Each call is bounded by
// SharedCacheTimeout (100ms); when one fails the Client logs a warning,
// answers from its local cache and the server, leaves the shared cache
// alone for a second, then tries again; the first call that works logs
// that it recovered. Stats.SharedHits and SharedErrors count.
package introspection

// Package mcpauth protects a Model Context Protocol server built with the
// official MCP Go SDK (github.com/modelcontextprotocol/go-sdk) with a
// Tollgate middleware.Authenticator, as the MCP authorization specification
// asks of a server: OAuth 2.0 bearer tokens (RFC 6750) verified as the
// Authenticator verifies them, and RFC 9728 protected-resource metadata
// that MCP clients discover from a 401.
//
// Handler is the whole of it for most servers: it serves the metadata
// document and puts Require in front of the SDK's streamable HTTP handler.
// Require answers refusals with Tollgate's challenges, which the SDK's own
// auth.RequireBearerToken does not write (it sends no error code, so an MCP
// client cannot tell an expired token from a missing scope): 401 with
// resource_metadata when the token is missing or bad, 403
// error="insufficient_scope" naming the scopes when one is missing. It then
// runs the SDK's auth.RequireBearerToken with Verifier, the SDK's extension
// point, so the SDK gets its auth.TokenInfo (scopes, expiry, user) as from
// any verifier and binds each session to its user.
//
// Tool, prompt and resource handlers reach the verified caller with From:
//
//	p, ok := mcpauth.From(req.Extra)
//
// Not with principal.From(ctx): the SDK runs a session's handlers in a
// context made from the session's first request, whose caller may have had
// other scopes and an expired token by now, so Require leaves it empty.
//
// The Authenticator should read tokens from the Authorization header only
// (no Config.CookieNames): the SDK's middleware reads nothing else.
//
// This package is a module of its own, so that the SDK is compiled only
// into the programs that serve MCP.
package mcpauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// principalKey is where TokenInfo keeps the Principal in
// auth.TokenInfo.Extra.
const principalKey = "github.com/tollgate-dev/tollgate/middleware/principal.Principal"

// TokenInfo maps a verified caller to the SDK's auth.TokenInfo: its scopes,
// its expiry (the zero time for a token without exp), and as UserID, which
// the SDK's streamable handler binds each session to, the subject qualified
// by the issuer ("iss sub"), since a subject is unique only within one
// issuer. The Principal itself travels in Extra, for From.
func TokenInfo(p principal.Principal) *auth.TokenInfo {
	user := p.Subject
	if iss, ok := p.Claims["iss"].(string); ok && iss != "" {
		user = iss + " " + p.Subject
	}
	return &auth.TokenInfo{
		Scopes:     slices.Clone(p.Scopes),
		Expiration: p.ExpiresAt,
		UserID:     user,
		Extra:      map[string]any{principalKey: p},
	}
}

// PrincipalOf returns the verified caller that TokenInfo put in ti, if any.
func PrincipalOf(ti *auth.TokenInfo) (principal.Principal, bool) {
	if ti == nil {
		return principal.Principal{}, false
	}
	p, ok := ti.Extra[principalKey].(principal.Principal)
	return p, ok && p.Subject != ""
}

// From returns the verified caller of an MCP request, for tool, prompt and
// resource handlers: From(req.Extra). It reports false when the request did
// not come through Require or Verifier.
func From(extra *mcp.RequestExtra) (principal.Principal, bool) {
	if extra == nil {
		return principal.Principal{}, false
	}
	return PrincipalOf(extra.TokenInfo)
}

// Verifier adapts a to the SDK's auth.TokenVerifier. Behind Require(a) it
// only maps the caller that a has verified for this request; otherwise,
// given to auth.RequireBearerToken, it verifies the token with
// a.Authenticate, even when another middleware (say, another
// Authenticator's Require, for another audience) has put a Principal in
// the context already: only a's own verdict stands for a.
//
// Alone, refusals are the SDK's: it answers 401 for an error wrapping
// auth.ErrInvalidToken (a missing, bad or insufficient token, and a
// ValidateClaims refusal), 400 for auth.ErrOAuth (a malformed request), and
// 500 for anything else (the authorization server unavailable, where
// Require answers 503). The errors' text is fixed ("invalid token"), since
// the SDK sends it as the body; the cause is in the Authenticator's log.
// Prefer Require.
func Verifier(a *middleware.Authenticator) auth.TokenVerifier {
	return func(ctx context.Context, token string, r *http.Request) (*auth.TokenInfo, error) {
		if v, ok := ctx.Value(verifiedKey{}).(*verified); ok && v != nil && v.a == a &&
			subtle.ConstantTimeCompare([]byte(v.p.RawToken()), []byte(token)) == 1 {
			return TokenInfo(v.p), nil
		}
		p, err := a.Authenticate(r)
		if err != nil {
			return nil, sdkError(err)
		}
		return TokenInfo(p), nil
	}
}

// verifiedKey is the context key under which Require records the caller
// its Authenticator verified, for Verifier of that Authenticator only. A
// Principal found with principal.From may come from any Authenticator.
type verifiedKey struct{}

// verified is a caller verified by a.
type verified struct {
	a *middleware.Authenticator
	p principal.Principal
}

// verifyError is a refusal for the SDK: its fixed text is what the SDK
// sends; it wraps the SDK's sentinel, which picks the status, and the
// Authenticator's error.
type verifyError struct {
	text string
	sdk  error
	err  error
}

func (e *verifyError) Error() string   { return e.text }
func (e *verifyError) Unwrap() []error { return []error{e.sdk, e.err} }

// errUnavailable is no sentinel of the SDK's, so the SDK answers 500.
var errUnavailable = errors.New("mcpauth: authorization server unavailable")

func sdkError(err error) error {
	switch {
	case errors.Is(err, middleware.ErrUnavailable):
		return &verifyError{text: "authorization server unavailable", sdk: errUnavailable, err: err}
	case errors.Is(err, middleware.ErrMalformed):
		return &verifyError{text: "malformed authorization", sdk: auth.ErrOAuth, err: err}
	}
	return &verifyError{text: "invalid token", sdk: auth.ErrInvalidToken, err: err}
}

// Require returns middleware for an MCP endpoint: a.Require, then, with
// scopes, a.RequireScopes(scopes...), then the SDK's
// auth.RequireBearerToken with Verifier, so that the SDK's handler finds
// its auth.TokenInfo in the request context. Refusals are a's: 401 (with
// resource_metadata when a has Config.ResourceMetadata), 403
// insufficient_scope naming scopes, 400, 503, in problem+json.
//
// The SDK's own checks come after a's, with a's ClockSkew and no demand
// for an exp that a does not make, so they refuse nothing that a accepted.
//
// The handler behind Require does not find the caller with principal.From:
// the SDK runs a session's tool, prompt and resource handlers in a context
// made from the session's first request, so principal.From there would
// answer with the token of that request (its scopes, long after it
// expired) rather than the current one. Handlers use From(req.Extra),
// which is the current request's; for the same reason they must not use
// auth.TokenInfoFromContext(ctx). A GET request (the SDK's standalone
// server-to-client event stream, which lasts as long as the client keeps
// it open) ends when its token expires (exp plus a's ClockSkew); the
// client opens it again with a fresh token. The Authorization header is
// removed from the request behind Require, so that req.Extra.Header, which
// a handler may log, does not carry the token (Principal.RawToken gives it
// to a handler that forwards it).
func Require(a *middleware.Authenticator, scopes ...string) func(http.Handler) http.Handler {
	sdk := auth.RequireBearerToken(Verifier(a), &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: a.ResourceMetadataURL(),
		// a has judged exp with its clock and leeway; a token without exp
		// is one a accepts (introspection answers may have none).
		AllowMissingExpiration: true,
		ClockSkew:              a.ClockSkew(),
	})
	scopes = slices.Clone(scopes)
	skew := a.ClockSkew()
	return func(next http.Handler) http.Handler {
		// Behind the SDK's check: the caller is in the SDK's TokenInfo
		// (req.Extra), and no longer where a session's later requests
		// would read a stale one.
		inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := principal.With(r.Context(), principal.Principal{})
			ctx = context.WithValue(ctx, verifiedKey{}, (*verified)(nil))
			// The SDK hands every handler the request's headers
			// (req.Extra.Header), where a handler that logs its request
			// would print the token; it needs it no more, and a handler
			// that forwards it has Principal.RawToken.
			h := r.Header.Clone()
			h.Del("Authorization")
			if r.Method == http.MethodGet {
				if ti := auth.TokenInfoFromContext(r.Context()); ti != nil && !ti.Expiration.IsZero() {
					var cancel context.CancelFunc
					ctx, cancel = context.WithDeadline(ctx, ti.Expiration.Add(skew))
					defer cancel()
				}
			}
			r = r.WithContext(ctx)
			r.Header = h
			next.ServeHTTP(w, r)
		})
		// In front of it: record what a verified, for Verifier.
		checked := sdk(inner)
		var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := principal.From(r.Context())
			checked.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), verifiedKey{}, &verified{a: a, p: p})))
		})
		if len(scopes) > 0 {
			h = a.RequireScopes(scopes...)(h)
		}
		return a.Require(h)
	}
}

// Handler returns the HTTP handler of an MCP server protected by a: the
// RFC 9728 metadata document at a.ResourceMetadataPath(), public (other
// paths under /.well-known/oauth-protected-resource are 404), and every
// other request through Require(a, scopes...) to mcpHandler,
// typically an *mcp.StreamableHTTPHandler.
//
// The MCP authorization specification requires the metadata, so a must
// have Config.ResourceMetadata, whose Resource is the MCP endpoint's URL
// exactly as clients call it (e.g. "https://mcp.example.com/mcp"): MCP
// clients request tokens for that URL (RFC 8707) and the Go SDK refuses a
// document whose resource is not the URL it called (RFC 9728 §3.3).
// Handler panics when a has none, so the mistake shows at start.
func Handler(a *middleware.Authenticator, mcpHandler http.Handler, scopes ...string) http.Handler {
	if a.ResourceMetadataPath() == "" {
		panic("mcpauth: the Authenticator has no Config.ResourceMetadata; MCP clients discover the authorization server from it")
	}
	mux := http.NewServeMux()
	// Every metadata URL goes to the metadata handler, which serves the
	// resource's own and answers 404 for the others (the root form when
	// the resource has a path, which clients try as a fallback), rather
	// than a 401 from the MCP side.
	meta := a.ResourceMetadataHandler()
	mux.Handle(middleware.WellKnownResourceMetadata, meta)
	mux.Handle(middleware.WellKnownResourceMetadata+"/", meta)
	mux.Handle("/", Require(a, scopes...)(mcpHandler))
	return mux
}

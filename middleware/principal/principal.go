// Package principal carries the verified caller of a request through its
// context. It is the only part of Tollgate that handlers need to import: the
// middleware puts a Principal in the context after it has verified the access
// token, and handlers read it back with From. It depends on the standard
// library only.
package principal

import (
	"context"
	"slices"
	"strings"
	"time"
)

// Source says where the middleware found the access token.
type Source string

// The places a token can come from.
const (
	SourceHeader Source = "header" // Authorization: Bearer
	SourceCookie Source = "cookie" // one of the configured cookies
)

// Principal is the verified caller: what the authorization server said about
// the access token the request carried.
type Principal struct {
	// Subject is the token's sub claim; never empty in a Principal that
	// From reports.
	Subject string
	// Scopes are the token's scopes, from the scope claim (a space-delimited
	// string) and the scp claim (an array or a string).
	Scopes []string
	// Claims holds every claim of the token, or every member of the
	// introspection answer, as decoded JSON.
	Claims map[string]any
	// Source says where the token was read from.
	Source Source
	// ExpiresAt is the token's exp, the zero time when it has none.
	ExpiresAt time.Time
	// TokenHash is a short, non-reversible hash of the token, safe to log.
	TokenHash string
}

// HasScope reports whether the caller was granted scope.
func (p Principal) HasScope(scope string) bool {
	return slices.Contains(p.Scopes, scope)
}

// HasScopes reports whether the caller was granted every one of scopes.
func (p Principal) HasScopes(scopes ...string) bool {
	for _, s := range scopes {
		if !p.HasScope(s) {
			return false
		}
	}
	return true
}

// String names the caller for logs, without the token.
func (p Principal) String() string {
	var b strings.Builder
	b.WriteString("sub=")
	b.WriteString(p.Subject)
	if p.TokenHash != "" {
		b.WriteString(" token=")
		b.WriteString(p.TokenHash)
	}
	return b.String()
}

type ctxKey struct{}

// With returns a copy of ctx that carries p.
func With(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// From reports the verified caller, if the middleware ran and verified one.
// It never panics: without a Principal it returns the zero value and false.
func From(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok && p.Subject != ""
}

// Subject returns the verified caller's subject, or "" when there is none.
func Subject(ctx context.Context) string {
	p, _ := From(ctx)
	return p.Subject
}

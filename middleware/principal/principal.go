// Package principal carries the verified caller of a request through its
// context. It is the only part of Tollgate that handlers need to import: the
// middleware puts a Principal in the context after it has verified the access
// token, and handlers read it back with From. It depends on the standard
// library only.
package principal

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode"
)

// Source says where the middleware found the access token.
type Source string

// The places a token can come from.
const (
	SourceHeader Source = "header" // Authorization: Bearer
	SourceCookie Source = "cookie" // one of the configured cookies
)

// Binding says how an access token was bound to its holder, if at all.
type Binding string

// The bindings the middleware knows.
const (
	// BindingNone: a bearer token, good for whoever holds it.
	BindingNone Binding = ""
	// BindingDPoP: the token is bound to a key by RFC 9449 DPoP (cnf.jkt),
	// and the request came with a valid proof of possession of that key.
	BindingDPoP Binding = "dpop"
)

// Principal is the verified caller: what the authorization server said about
// the access token the request carried.
//
// The middleware keeps verified principals in a cache, so Claims, Scopes,
// Roles and the raw claims behind DecodeClaims are shared by every request that
// carries the same token: treat them as read-only. They are not copied per
// request, to keep a cache hit cheap; DecodeClaims gives a private copy to
// change at will.
//
// The access token itself is kept out of sight: only RawToken returns it.
// Printing a Principal with fmt (any verb), logging it with slog or encoding
// it as JSON never shows it.
type Principal struct {
	// Subject is the token's sub claim; never empty in a Principal that
	// From reports.
	Subject string
	// Scopes are the token's scopes: what the client may do on the user's
	// behalf. By default the middleware reads the scope claim (a
	// space-delimited string) and the scp claim (an array or a string);
	// its Config.ScopeClaims names others.
	Scopes []string
	// Roles are what the user is (or the groups and permissions the
	// server lists for them), read from the claims the middleware's
	// Config.RoleClaims names (realm_access.roles, groups, permissions…);
	// none by default. Kept apart from Scopes, so that a role never passes
	// a scope check.
	Roles []string
	// Claims holds every claim of the token, or every member of the
	// introspection answer, as decoded JSON (numbers are float64; use
	// DecodeClaims for exact ones). Shared: do not modify it.
	Claims map[string]any
	// Source says where the token was read from.
	Source Source
	// ExpiresAt is the token's exp, the zero time when it has none.
	ExpiresAt time.Time
	// Binding says how the token is bound to its holder: BindingNone for
	// a bearer token, BindingDPoP for a DPoP-bound one whose proof this
	// request passed.
	Binding Binding
	// JKT is the RFC 7638 thumbprint (base64url SHA-256) of the key a
	// DPoP-bound token is bound to, its cnf.jkt; "" for a bearer token.
	// The same key signed this request's DPoP proof.
	JKT string

	// rawClaims is the claims' JSON as the server sent it, for
	// DecodeClaims; nil in a Principal built by hand.
	rawClaims []byte
	// token returns the token. A func, because fmt's reflection (which
	// reaches this field when a Principal sits in an unexported field of
	// the caller's struct, where Format cannot be called) prints a func as
	// an address, whatever the verb.
	token func() string
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

// HasAnyScope reports whether the caller was granted at least one of
// scopes; false when scopes is empty.
func (p Principal) HasAnyScope(scopes ...string) bool {
	return slices.ContainsFunc(scopes, p.HasScope)
}

// HasRole reports whether the caller holds role.
func (p Principal) HasRole(role string) bool {
	return slices.Contains(p.Roles, role)
}

// HasRoles reports whether the caller holds every one of roles.
func (p Principal) HasRoles(roles ...string) bool {
	for _, r := range roles {
		if !p.HasRole(r) {
			return false
		}
	}
	return true
}

// HasAnyRole reports whether the caller holds at least one of roles; false
// when roles is empty.
func (p Principal) HasAnyRole(roles ...string) bool {
	return slices.ContainsFunc(roles, p.HasRole)
}

// WithToken returns a copy of p that carries the raw access token, for
// RawToken. The middleware sets it on every request; tests may set it on
// a Principal they inject.
func (p Principal) WithToken(token string) Principal {
	p.token = func() string { return token }
	return p
}

// TokenHash names the token in logs without revealing it: the first 12
// hex digits of its SHA-256, the token_sha256 of every Tollgate log line,
// useless for replaying it; "" when p carries no token (see WithToken).
// It is computed on each call, not by the middleware: a request that logs
// nothing spends no hash on it.
func (p Principal) TokenHash() string {
	t := p.RawToken()
	if t == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(t))
	return hex.EncodeToString(sum[:6])
}

// RawToken returns the access token the request carried, for a call made
// on the caller's behalf (e.g. forwarding it, or RFC 8693 token exchange).
// It is a bearer credential: never log it, and send it only to servers
// that are meant to receive it. "" when there is none.
func (p Principal) RawToken() string {
	if p.token == nil {
		return ""
	}
	return p.token()
}

// WithClaimsJSON returns a copy of p whose claims DecodeClaims reads from
// raw, a JSON object, as received from the server. The middleware sets it;
// raw is kept, not copied, and must not change afterwards.
func (p Principal) WithClaimsJSON(raw []byte) Principal {
	p.rawClaims = raw
	return p
}

// DecodeClaims decodes the caller's claims into v, typically a pointer to
// the caller's own struct with json tags, as encoding/json would. Numbers
// are exact: an int64 field receives 9007199254740993 unchanged, and an
// interface value receives a json.Number, never a rounded float64. It reads
// the JSON the server sent (a JWT's payload or the introspection answer);
// for a Principal built by hand, e.g. injected in a handler test, it reads
// the Claims map. v is the caller's own copy.
func DecodeClaims(p Principal, v any) error {
	raw := p.rawClaims
	if raw == nil {
		if p.Claims == nil {
			return errors.New("principal: no claims to decode")
		}
		var err error
		if raw, err = json.Marshal(p.Claims); err != nil {
			return fmt.Errorf("principal: claims: %w", err)
		}
	}
	// encoding/json matches names ignoring case, the last one winning,
	// while Subject and Claims were read by exact name: a payload with
	// "sub" and "SUB" would decode to another subject than the one that
	// was verified. Such claims are refused, not guessed at.
	if err := checkNames(json.NewDecoder(bytes.NewReader(raw)), 0); err != nil {
		return fmt.Errorf("principal: decode claims: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("principal: decode claims: %w", err)
	}
	return nil
}

// foldName maps every rune of name to the smallest rune of its Unicode
// case-folding orbit, so that two names equal under strings.EqualFold (the
// rule encoding/json matches with: "ſub" and "SUB" both match "sub") fold
// to the same key.
func foldName(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

// maxClaimsDepth bounds the nesting checkNames walks; deeper claims are
// refused (encoding/json itself stops at 10,000).
const maxClaimsDepth = 64

// checkNames reads one JSON value from dec and reports an error when an
// object in it names a member twice, exactly or ignoring case.
func checkNames(dec *json.Decoder, depth int) error {
	if depth > maxClaimsDepth {
		return errors.New("claims nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		seen := make(map[string]bool)
		for dec.More() {
			nameTok, err := dec.Token()
			if err != nil {
				return err
			}
			name, _ := nameTok.(string)
			folded := foldName(name)
			if seen[folded] {
				return fmt.Errorf("claim %q named twice (names are compared ignoring case)", name)
			}
			seen[folded] = true
			if err := checkNames(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // '}'
		return err
	case json.Delim('['):
		for dec.More() {
			if err := checkNames(dec, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token() // ']'
		return err
	}
	return nil
}

// Format prints the caller as String does, for every verb, so that no
// verb (%#v, %+v, %x, %d...) reaches the fields and the raw token.
func (p Principal) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", p.String())
	default:
		_, _ = f.Write([]byte(p.String()))
	}
}

// LogValue makes slog log the caller's subject, source and token hash,
// never the token or the claims.
func (p Principal) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("sub", p.Subject)}
	if p.Source != "" {
		attrs = append(attrs, slog.String("source", string(p.Source)))
	}
	if h := p.TokenHash(); h != "" {
		attrs = append(attrs, slog.String("token", h))
	}
	return slog.GroupValue(attrs...)
}

// String names the caller for logs, without the token.
func (p Principal) String() string {
	var b strings.Builder
	b.WriteString("sub=")
	b.WriteString(p.Subject)
	if h := p.TokenHash(); h != "" {
		b.WriteString(" token=")
		b.WriteString(h)
	}
	return b.String()
}

type ctxKey struct{}

// principalCtx is the context With and WithShared return. It is
// context.WithValue's valueCtx with a pointer to the Principal rather than
// the Principal boxed in an interface: WithShared costs one small
// allocation, which with r.WithContext's is all the middleware allocates
// on a cache hit.
type principalCtx struct {
	context.Context
	p *Principal
}

// ownedCtx is With's context and its own copy of the Principal, one
// allocation.
type ownedCtx struct {
	principalCtx
	own Principal
}

// Value answers for the Principal and asks the parent for anything else,
// so that context's own lookups (the cancel machinery's) pass through.
func (c *principalCtx) Value(key any) any {
	if key == (ctxKey{}) {
		return c
	}
	return c.Context.Value(key)
}

// String names the context as context.WithValue's does, without printing
// the Principal's fields: fmt must not reach the claims or the token.
func (c *principalCtx) String() string {
	name := fmt.Sprintf("%T", c.Context)
	if s, ok := c.Context.(fmt.Stringer); ok {
		name = s.String()
	}
	return name + ".WithValue(principal.Principal)"
}

// Format prints String for every verb (%#v included), as Principal's own
// Format does.
func (c *principalCtx) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// With returns a copy of ctx that carries p. Like context.WithValue, it
// panics when ctx is nil: that is a programming error, not a request's.
func With(ctx context.Context, p Principal) context.Context {
	if ctx == nil {
		panic("principal.With: nil parent context")
	}
	c := &ownedCtx{own: p}
	c.Context, c.p = ctx, &c.own
	return &c.principalCtx
}

// WithShared is With without copying the Principal: the context refers to
// *p, which must not change from now on. It is for a Principal that
// outlives the request and is handed to many, such as the one the
// middleware keeps in its cache for a verified token: a cache hit then
// allocates a pointer, not a copy of the Principal. From still returns a
// copy. A nil p carries no caller. It panics when ctx is nil, as With
// does.
func WithShared(ctx context.Context, p *Principal) context.Context {
	if ctx == nil {
		panic("principal.WithShared: nil parent context")
	}
	return &principalCtx{Context: ctx, p: p}
}

// From reports the verified caller, if the middleware ran and verified one.
// It never panics: without a Principal it returns the zero value and false.
func From(ctx context.Context) (Principal, bool) {
	c, ok := ctx.Value(ctxKey{}).(*principalCtx)
	if !ok || c.p == nil {
		return Principal{}, false
	}
	return *c.p, c.p.Subject != ""
}

// Subject returns the verified caller's subject, or "" when there is none.
func Subject(ctx context.Context) string {
	p, _ := From(ctx)
	return p.Subject
}

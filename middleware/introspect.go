package middleware

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// Introspector asks the authorization server about a token (RFC 7662).
// *introspection.Client implements it, with caching and request coalescing.
type Introspector interface {
	Introspect(ctx context.Context, token string) (*introspection.Response, error)
}

// introspectVerifier checks tokens by introspection. The answer's exp,
// nbf, iss and aud are checked like a JWT's when present; sub is required.
type introspectVerifier struct {
	client Introspector
	cfg    *Config
}

// verify introspects token. Besides the caller it returns until when the
// middleware may reuse the answer: the Introspector's own CacheUntil, zero
// (do not cache) when it gives none.
func (v *introspectVerifier) verify(ctx context.Context, token string) (principal.Principal, time.Time, error) {
	resp, err := v.client.Introspect(ctx, token)
	if errors.Is(err, introspection.ErrNotAccessToken) {
		// Active, but a refresh token or another kind: a verdict on the
		// token, so 401 (it also matches ErrInactive; this is more precise).
		return principal.Principal{}, time.Time{}, notAccessToken(err)
	}
	switch {
	case errors.Is(err, introspection.ErrInactive):
		return principal.Principal{}, time.Time{}, newErr(ErrInvalidToken, ReasonInactive, "token is not active", nil)
	case errors.Is(err, introspection.ErrOverloaded):
		// The client did not ask: too many requests in flight or too
		// many per second. No verdict either, so 503 with Retry-After;
		// its own reason tells this self-protection from a failing
		// server in metrics and logs.
		return principal.Principal{}, time.Time{}, newErr(ErrUnavailable, ReasonOverloaded, "authorization server busy", err)
	case err != nil:
		// Unreachable, failing, or an answer that cannot be trusted: there
		// is no verdict, so fail closed with 503 rather than blame the
		// token (a 401 would send the web page into a refresh loop).
		return principal.Principal{}, time.Time{}, newErr(ErrUnavailable, ReasonUnavailable, "authorization server unavailable", err)
	case resp == nil || !resp.Active:
		return principal.Principal{}, time.Time{}, newErr(ErrInvalidToken, ReasonInactive, "token is not active", nil)
	}
	// introspection.Client checks the kind itself; other Introspectors may
	// not. Both checks come before the caller caches the principal.
	if err := resp.CheckAccessToken(); err != nil {
		return principal.Principal{}, time.Time{}, notAccessToken(err)
	}
	var jkt string
	if isBound(resp.Claims) || isBoundType(resp.TokenType) {
		// With DPoP on, an answer with cnf.jkt (RFC 9449 §6.2) and no
		// token_type other than DPoP is a DPoP-bound token; every other
		// binding is refused, as all are with DPoP off.
		ok := false
		if v.cfg.dpopOn() && (resp.TokenType == "" || strings.EqualFold(resp.TokenType, "DPoP")) {
			jkt, ok = dpopJKT(resp.Claims)
		}
		if !ok {
			return principal.Principal{}, time.Time{}, errBoundToken
		}
	}
	now := v.cfg.Now()
	skew := v.cfg.ClockSkew
	if resp.Exp != nil && !now.Before(resp.Exp.Add(skew)) {
		return principal.Principal{}, time.Time{}, newErr(ErrInvalidToken, ReasonExpired, "token expired", nil)
	}
	if resp.Nbf != nil && now.Add(skew).Before(*resp.Nbf) {
		return principal.Principal{}, time.Time{}, newErr(ErrInvalidToken, ReasonNotYetValid, "token not valid yet", nil)
	}
	// The causes name the expected and the received values, for the log:
	// they come from the authorization server's answer and are no secret.
	if resp.Iss != "" && resp.Iss != v.cfg.Issuer {
		return principal.Principal{}, time.Time{}, newErr(ErrInvalidToken, ReasonIssuer, "token issuer not accepted", issuerMismatch(resp.Iss, v.cfg.Issuer))
	}
	m := v.cfg.claims()
	if m.audienceIsAud {
		if len(resp.Aud) > 0 && len(v.cfg.Audiences) > 0 && !slices.ContainsFunc(resp.Aud, func(a string) bool { return slices.Contains(v.cfg.Audiences, a) }) {
			return principal.Principal{}, time.Time{}, newErr(ErrInvalidToken, ReasonAudience, "token audience not accepted", audienceMismatch(resp.Aud, v.cfg.Audiences))
		}
	} else if _, _, found := m.audienceOf(resp.Claims); found {
		// As for aud: the server has judged the token, so an answer that
		// carries none of the audience claims passes; one that carries
		// one is held to it as a JWT is.
		if err := m.checkAudience(resp.Claims, v.cfg.Audiences); err != nil {
			return principal.Principal{}, time.Time{}, newErr(ErrInvalidToken, ReasonAudience, "token audience not accepted", err)
		}
	}
	if resp.Sub == "" {
		return principal.Principal{}, time.Time{}, newErr(ErrInvalidToken, ReasonMissingClaim, "token has no subject", nil)
	}
	// The answer carries the token's claims (RFC 7662 §2.2), so they are
	// read as a JWT's are: the same ScopeClaims and RoleClaims.
	claims := resp.Claims
	if claims == nil && resp.Scope != "" {
		// An Introspector of the caller's own may fill Scope and leave
		// Claims empty; introspection.Client fills both.
		claims = map[string]any{"scope": resp.Scope}
	}
	scopes, roles, err := m.grants(claims)
	if err != nil {
		return principal.Principal{}, time.Time{}, err
	}
	p := principal.Principal{Subject: resp.Sub, Scopes: scopes, Roles: roles, Claims: resp.Claims}
	if resp.Raw != nil {
		// Another Introspector may leave Raw empty: DecodeClaims then
		// reads Claims.
		p = p.WithClaimsJSON(resp.Raw)
	}
	if resp.Exp != nil {
		p.ExpiresAt = *resp.Exp
	}
	if jkt != "" {
		p.Binding, p.JKT = principal.BindingDPoP, jkt
	}
	return p, resp.CacheUntil, nil
}

// notAccessToken is the refusal of a token that the introspection answer
// says is not an access token. The cause names the answer's member and
// value (never the token), for the log.
func notAccessToken(cause error) error {
	return newErr(ErrInvalidToken, ReasonNotAccessToken, "token is not an access token", cause)
}

// looksLikeJWS reports whether token is a JWS in compact form: exactly three
// dot-separated segments whose first decodes to a JSON object with an alg.
// Hybrid mode verifies such tokens locally and never sends them to the
// server; everything else, opaque strings and five-segment JWE tokens
// (which also begin with "eyJ") included, is introspected.
func looksLikeJWS(token string) bool {
	if strings.Count(token, ".") != 2 {
		return false
	}
	head, _, _ := strings.Cut(token, ".")
	if len(head) > 4096 {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil {
		return false
	}
	var h struct {
		Alg *string `json:"alg"`
	}
	return json.Unmarshal(raw, &h) == nil && h.Alg != nil
}

// useIntrospection says whether token goes to the introspector. The
// answer is kept in the verified-token cache no longer than the
// introspection client keeps it, under a key of the whole token (see
// hashTail).
func (a *Authenticator) useIntrospection(token string) bool {
	switch a.cfg.Mode {
	case ModeIntrospection:
		return true
	case ModeHybrid:
		return !looksLikeJWS(token)
	}
	return false
}

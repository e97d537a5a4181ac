package devidp

import (
	"context"
	"errors"
	"time"

	"github.com/mohae/deepcopy"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// session is what fosite stores with every code and token: the ID token
// claims (openid.Session) and the access token claims
// (oauth2.JWTSessionContainer).
//
// fosite gotcha: on refresh fosite copies the session with Clone, and fosite's
// own sessions clone with mohae/deepcopy, which copies exported fields only, so
// every field here is exported. openid.DefaultSession.Clone would return a
// *DefaultSession and lose the access claims, hence our own Clone.
type session struct {
	*openid.DefaultSession
	AccessClaims *jwt.JWTClaims
	AccessHeader *jwt.Headers
	// DPoPJKT is the cnf.jkt (RFC 9449 §6) of the access token being
	// issued: the RFC 7638 thumbprint of the token request's proof key,
	// or "" for a Bearer token. handleToken sets it on every token
	// request, because the session fosite stores with a refresh token
	// still carries the previous access token's.
	DPoPJKT string
	// RefreshJKT binds the grant's refresh tokens to a proof key: set for
	// public clients only (RFC 9449 §5), checked on every refresh.
	RefreshJKT string
}

var (
	_ openid.Session             = (*session)(nil)
	_ oauth2.JWTSessionContainer = (*session)(nil)
	_ fosite.ExtraClaimsSession  = (*session)(nil)
)

// newSession returns the empty session that fosite's New…Request calls
// hydrate from storage.
func newSession() *session {
	return &session{DefaultSession: &openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}}}
}

// newUserSession is the session of a user who just signed in, now, as acr
// (ACRPassword or ACRTwoFactor) says. Its auth_time and acr go into the ID
// token and, through accessTokens and GetExtraClaims, into every access
// token and introspection answer of the grant: a refresh keeps them, since
// it authenticates nobody.
func newUserSession(u User, issuer string, requestedAt time.Time, acr string) *session {
	now := time.Now().UTC().Truncate(time.Second)
	s := newSession()
	s.Subject = u.Subject
	s.Username = u.Username
	amr := []string{"pwd"}
	if acr == ACRTwoFactor {
		amr = append(amr, "otp")
	}
	s.Claims = &jwt.IDTokenClaims{
		Issuer:   issuer,
		Subject:  u.Subject,
		AuthTime: now,
		// Truncated as AuthTime is, so that fosite's prompt=login check
		// (auth_time not before the request) holds within one second.
		RequestedAt:                         requestedAt.UTC().Truncate(time.Second),
		AuthenticationContextClassReference: acr,
		AuthenticationMethodsReferences:     amr,
		Extra:                               map[string]any{},
	}
	return s
}

// authClaims are the claims of the user's authentication (RFC 9470 §6) for
// access tokens and introspection answers: acr and auth_time, when the
// session has them.
func (s *session) authClaims(into map[string]any) {
	if s.Claims == nil {
		return
	}
	if s.Claims.AuthenticationContextClassReference != "" {
		into["acr"] = s.Claims.AuthenticationContextClassReference
	}
	if !s.Claims.AuthTime.IsZero() {
		into["auth_time"] = s.Claims.AuthTime.Unix()
	}
}

func (s *session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	return deepcopy.Copy(s).(*session)
}

// GetJWTClaims returns the access token claims that accessTokens.Generate…
// filled in just before fosite signs them.
func (s *session) GetJWTClaims() jwt.JWTClaimsContainer {
	if s.AccessClaims == nil {
		s.AccessClaims = &jwt.JWTClaims{}
	}
	return s.AccessClaims
}

func (s *session) GetJWTHeader() *jwt.Headers {
	if s.AccessHeader == nil {
		s.AccessHeader = &jwt.Headers{}
	}
	return s.AccessHeader
}

// GetExtraClaims adds iss, acr and auth_time to introspection answers,
// and for a DPoP-bound token cnf.jkt and token_type "DPoP" (RFC 9449
// §6.2); fosite writes the standard ones (sub, scope, exp, iat, aud,
// client_id, username) itself, and passes token_type through.
func (s *session) GetExtraClaims() map[string]any {
	out := map[string]any{}
	if s.AccessClaims != nil && s.AccessClaims.Issuer != "" {
		out["iss"] = s.AccessClaims.Issuer
	}
	s.authClaims(out)
	if s.DPoPJKT != "" {
		out["cnf"] = map[string]any{"jkt": s.DPoPJKT}
		out["token_type"] = "DPoP"
	}
	return out
}

// accessTokens wraps fosite's JWT or HMAC strategy to stamp each new access
// token's times and claims.
//
// fosite gotchas fixed here:
//   - fosite's JWT strategy fills iat only when the session has none, and the
//     session stored with a refresh token already has the first token's iat,
//     so refreshed tokens would repeat it. We rebuild the claims every time.
//   - fosite sets exp to now+TTL rounded to the second and iat to the
//     unrounded now, so exp-iat is TTL±1s; and rounding up could put nbf in
//     the future. We take now truncated to the second for iat and nbf, and
//     exp = iat + TTL exactly; expires_in follows the session's exp.
//   - the header typ defaults to "JWT"; RFC 9068 wants "at+jwt", which goes
//     in through the session's header, and the kid comes from the
//     jose.JSONWebKey the signer holds.
type accessTokens struct {
	oauth2.CoreStrategy
	issuer string
	ttl    time.Duration
}

func (a *accessTokens) GenerateAccessToken(ctx context.Context, req fosite.Requester) (string, string, error) {
	s, ok := req.GetSession().(*session)
	if !ok {
		return "", "", errors.New("devidp: unexpected session type")
	}
	now := time.Now().UTC().Truncate(time.Second)
	s.SetExpiresAt(fosite.AccessToken, now.Add(a.ttl))
	s.AccessClaims = &jwt.JWTClaims{
		Subject:   s.Subject,
		Issuer:    a.issuer,
		IssuedAt:  now,
		NotBefore: now,
		Extra:     map[string]any{"client_id": req.GetClient().GetID()},
		// JTI stays empty: fosite puts a fresh UUID in each token.
	}
	s.authClaims(s.AccessClaims.Extra)
	if s.DPoPJKT != "" {
		s.AccessClaims.Extra["cnf"] = map[string]any{"jkt": s.DPoPJKT}
	}
	s.AccessHeader = &jwt.Headers{Extra: map[string]any{"typ": "at+jwt"}}
	return a.CoreStrategy.GenerateAccessToken(ctx, req)
}

package exchange

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// defaultAccessTokenAge is the access cookie's lifetime when the server
// sends no expires_in and the token is not a JWT with exp.
const defaultAccessTokenAge = time.Hour

// setTokenCookies sets the access token, refresh token and session cookies
// for tok. sess carries the user; its expiry fields are filled in here. The
// refresh cookie is written only when the token's refresh token differs from
// oldRefresh (a new login, or a server that rotates), sealed with
// sess.Subject, which must be set. Every cookie is built before any is set,
// so a token too large for a cookie changes nothing.
func (s *Server) setTokenCookies(w http.ResponseWriter, tok *oauth2.Token, sess *session, oldRefresh string) error {
	now := s.now()
	accessAge := s.accessTokenAge(tok, now)
	access, err := s.cookie(s.accessSpec(), tok.AccessToken, accessAge)
	if err != nil {
		return err
	}
	cookies := []*http.Cookie{access}

	sess.AccessExpires = now.Add(accessAge).Unix()
	if tok.RefreshToken != "" && tok.RefreshToken != oldRefresh {
		refreshAge := s.refreshTokenAge(tok)
		exp := now.Add(refreshAge)
		value, err := s.sealer.sealJSON(s.names.refresh, refreshCookie{Token: tok.RefreshToken, Expires: exp.Unix(), Subject: sess.Subject})
		if err != nil {
			return err
		}
		ck, err := s.cookie(s.refreshSpec(), value, refreshAge)
		if err != nil {
			return err
		}
		cookies = append(cookies, ck)
		sess.RefreshExpires = exp.Unix()
	}
	sess.Expires = max(sess.AccessExpires, sess.RefreshExpires)
	sessCookie, err := s.sessionCookie(sess, now)
	if err != nil {
		return err
	}
	for _, ck := range append(cookies, sessCookie) {
		http.SetCookie(w, ck)
	}
	if tok.RefreshToken == "" {
		// A sign-in without offline_access: a refresh cookie left by an
		// earlier sign-in (maybe another person's) must not outlive it.
		s.expire(w, s.refreshSpec())
	}
	return nil
}

// accessTokenAge is the access cookie's Max-Age: expires_in, never past the
// token's own exp when it is a JWT, never over MaxAccessTokenAge. Servers do
// send nonsense (milliseconds, nanoseconds, strings), hence the clamping.
func (s *Server) accessTokenAge(tok *oauth2.Token, now time.Time) time.Duration {
	age := defaultAccessTokenAge
	if secs, ok := numberExtra(tok, "expires_in"); ok && secs > 0 {
		age = secondsClamped(secs, s.cfg.MaxAccessTokenAge)
	}
	if exp, ok := jwtExpiry(tok.AccessToken); ok {
		if left := exp.Sub(now); left < age {
			age = left
		}
	}
	return min(max(age, time.Second), s.cfg.MaxAccessTokenAge)
}

// refreshTokenAge is the refresh cookie's Max-Age: refresh_expires_in
// (Keycloak) when the server sends a positive one, capped at
// RefreshCookieMaxAge, which is also the default.
func (s *Server) refreshTokenAge(tok *oauth2.Token) time.Duration {
	if secs, ok := numberExtra(tok, "refresh_expires_in"); ok && secs > 0 {
		return max(secondsClamped(secs, s.cfg.RefreshCookieMaxAge), time.Second)
	}
	return s.cfg.RefreshCookieMaxAge
}

func secondsClamped(secs float64, limit time.Duration) time.Duration {
	if secs >= limit.Seconds() || math.IsInf(secs, 0) {
		return limit
	}
	return time.Duration(secs * float64(time.Second))
}

// numberExtra reads a numeric field of the token response, written as a JSON
// number or a numeric string (both are seen in the wild), or form-encoded
// (Token.Extra gives an integer as int64).
func numberExtra(tok *oauth2.Token, key string) (float64, bool) {
	switch v := tok.Extra(key).(type) {
	case int64:
		return float64(v), true
	case float64:
		return v, !math.IsNaN(v)
	case json.Number:
		f, err := v.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(v, 64)
		return f, err == nil && !math.IsNaN(f)
	}
	return 0, false
}

// jwtExpiry reads exp from a JWT without verifying it: only to keep the
// cookie from outliving the token. The todo API verifies the token.
func jwtExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || len(parts[1]) > 16<<10 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return time.Time{}, false
	}
	var claims struct {
		Exp *float64 `json:"exp"`
	}
	if json.Unmarshal(payload, &claims) != nil || claims.Exp == nil || *claims.Exp <= 0 || *claims.Exp > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(int64(*claims.Exp), 0), true
}

// clearSessionCookies deletes the access, refresh and session cookies, and
// with transactions also every login attempt in flight, each with the Path
// and Domain it was set with, and the copies other hosts of the site may
// have planted (expirePlanted). Each of ours is deleted last.
func (s *Server) clearSessionCookies(w http.ResponseWriter, r *http.Request, transactions bool) {
	s.expireAllPlanted(w)
	if s.cfg.CookieDomain != "" {
		// A host-only cookie of the same name, left by an earlier setting.
		spec := s.accessSpec()
		spec.domain = ""
		s.expire(w, spec)
	}
	s.expire(w, s.accessSpec())
	s.expire(w, s.refreshSpec())
	s.expire(w, s.sessionSpec())
	if transactions {
		seen := map[string]bool{}
		for _, ck := range s.txCookies(r) {
			if seen[ck.Name] {
				continue
			}
			seen[ck.Name] = true
			s.expirePlanted(w, s.txSpec(ck.Name), txReadPaths)
			s.expire(w, s.txSpec(ck.Name))
		}
	}
}

// badTokenResponse is a token endpoint answer of 200 that the exchange
// refuses to use; code names the reason on the error page, in the log and
// in the refresh answer.
type badTokenResponse struct{ code, why string }

func (e *badTokenResponse) Error() string { return e.code + ": " + e.why }

// checkTokenResponse refuses a successful token answer the exchange must
// not use (RFC 6749 §5.1):
//
//   - token_type must be Bearer, compared case-insensitively (RFC 6749
//     §5.1, §7.1: a client must not use a token whose type it does not
//     understand). The exchange sends no DPoP proofs, so a DPoP-bound token
//     (token_type DPoP) is one it cannot use either. An absent token_type
//     is refused too: §5.1 makes it REQUIRED, and devidp, Keycloak, Auth0,
//     Okta, Entra ID and Hydra all send it. tok.TokenType is the raw field;
//     Token.Type() would turn "" into "Bearer". The member named exactly
//     token_type must be that Bearer: oauth2 reads a member whose name
//     differs only in case ("TOKEN_TYPE") as token_type too, so
//     {"token_type":"DPoP","TOKEN_TYPE":"Bearer"}, or a TOKEN_TYPE alone,
//     is refused.
//   - expires_in, when present, must be a non-negative integer (a JSON
//     number or a numeric string, as some servers send) that fits in 64
//     bits: -1, 1.5, "abc" or 1e30 are refused. 0 or an absent expires_in
//     mean what they always have (the access cookie lives
//     defaultAccessTokenAge, or until the JWT's exp).
func checkTokenResponse(tok *oauth2.Token) error {
	// tok.TokenType is what encoding/json put in oauth2's struct: the last
	// member whose name matches token_type in any case ("TOKEN_TYPE" too).
	// The member named exactly token_type must say the same.
	raw, _ := tok.Extra("token_type").(string)
	if raw != tok.TokenType || !strings.EqualFold(raw, "Bearer") {
		why := "token_type " + strconv.Quote(truncate(raw, 40)) + " is not Bearer"
		switch {
		case raw == "":
			why = "the answer has no token_type"
		case raw != tok.TokenType:
			why = "members named token_type in different cases disagree"
		}
		return &badTokenResponse{code: "unsupported_token_type", why: why}
	}
	if !validExpiresIn(tok.Extra("expires_in")) {
		return &badTokenResponse{code: "invalid_expires_in", why: "expires_in is not a non-negative integer"}
	}
	return nil
}

// validExpiresIn reports whether v, expires_in as Token.Extra gives it
// (float64 or string from JSON; int64, float64 or string from a
// form-encoded answer), is absent or a non-negative integer.
func validExpiresIn(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case int64:
		return v >= 0
	case float64:
		// JSON numbers arrive as float64: 2^63 and above do not fit.
		return v >= 0 && v == math.Trunc(v) && v < math.MaxInt64
	case json.Number:
		n, err := v.Int64()
		return err == nil && n >= 0
	case string:
		if v == "" {
			return true // a form-encoded answer without expires_in
		}
		n, err := strconv.ParseInt(v, 10, 64)
		return err == nil && n >= 0
	}
	return false
}

// truncate cuts s to at most n bytes, for logs and pages.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

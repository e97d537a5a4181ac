package exchange

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
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

// sessionCookie seals sess, leaving out the ID token (only needed as the
// end-session hint) when the cookie would otherwise be too large.
func (s *Server) sessionCookie(sess *session, now time.Time) (*http.Cookie, error) {
	age := time.Unix(sess.Expires, 0).Sub(now)
	for {
		value, err := s.sealer.sealJSON(s.names.session, sess)
		if err != nil {
			return nil, err
		}
		ck, err := s.cookie(s.sessionSpec(), value, age)
		if errors.Is(err, errCookieTooLarge) && sess.IDToken != "" {
			sess.IDToken = ""
			continue
		}
		return ck, err
	}
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
// number or a numeric string (both are seen in the wild).
func numberExtra(tok *oauth2.Token, key string) (float64, bool) {
	switch v := tok.Extra(key).(type) {
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

// refreshResult is what one refresh grant produced, shared by the requests
// that joined it and, for RefreshGrace, by those that arrive a little later
// with the refresh token it replaced.
type refreshResult struct {
	tok *oauth2.Token
	idt *idTokenInfo // from a refreshed ID token, when the server sent one
}

// handleRefresh runs the refresh grant with the refresh token cookie and
// sets a fresh access token cookie (and the new refresh token when the
// server rotates it). It refuses, before any token request, two different
// refresh or session cookies and a refresh cookie sealed for another
// subject than the session's.
func (s *Server) handleRefresh(c *gin.Context) {
	w, r := c.Writer, c.Request
	if amb := ambiguousCookies(r, s.names.refresh, s.names.session); len(amb) > 0 {
		s.metrics.refreshes.WithLabelValues("ambiguous_cookie").Inc()
		s.logger.Warn("refresh refused: two different cookies of one name (planted by another host of the site?); signing out", "cookies", amb)
		s.clearSessionCookies(w, r, false)
		s.unauthorized(w, "not signed in: the browser sent two different cookies of one name")
		return
	}
	rc, ok := s.openRefreshCookie(r)
	if !ok {
		s.metrics.refreshes.WithLabelValues("no_cookie").Inc()
		s.clearSessionCookies(w, r, false)
		s.unauthorized(w, "not signed in: no refresh token")
		return
	}
	if rc.Subject == "" {
		// Sealed by a version that did not bind the subject: it cannot be
		// checked against the session, so it is not used.
		s.metrics.refreshes.WithLabelValues("no_cookie").Inc()
		s.logger.Info("refresh refused: the refresh cookie names no subject; signing out")
		s.clearSessionCookies(w, r, false)
		s.unauthorized(w, "not signed in: sign in again")
		return
	}
	var sess session
	if v, ok := requestCookie(r, s.names.session); ok {
		if s.sealer.openJSON(s.names.session, v, &sess) != nil {
			sess = session{}
		}
	}
	if sess.Subject != "" && sess.Subject != rc.Subject {
		s.subjectMismatch(w, r, sess.Subject, rc.Subject, "the refresh cookie was issued to another subject than the session's")
		return
	}
	key := hashKey(rc.Token)
	res, shared, err := s.refresh(r.Context(), key, rc.Token)
	if err != nil {
		result, code := classifyTokenError(err)
		switch {
		case code == "invalid_grant":
			s.metrics.refreshes.WithLabelValues("invalid_grant").Inc()
			s.logger.Info("refresh refused: signing out", "error", code)
			s.clearSessionCookies(w, r, false)
			s.unauthorized(w, "the session has ended: sign in again")
		case result == "unavailable":
			s.metrics.refreshes.WithLabelValues("unavailable").Inc()
			s.logger.Error("refresh: authorization server unavailable", "error", code)
			w.Header().Set("Retry-After", "5")
			writeProblem(w, http.StatusServiceUnavailable, "the authorization server is not answering; try again shortly")
		default:
			s.metrics.refreshes.WithLabelValues("error").Inc()
			s.logger.Error("refresh failed", "error", code)
			writeProblem(w, http.StatusBadGateway, "the authorization server refused the refresh ("+code+")")
		}
		return
	}

	if s.grace.isForgotten(key) {
		// Signed out while this refresh ran: do not sign back in.
		s.metrics.refreshes.WithLabelValues("no_cookie").Inc()
		s.clearSessionCookies(w, r, false)
		s.unauthorized(w, "signed out")
		return
	}
	if res.idt != nil && res.idt.sub != rc.Subject {
		// The refresh token belongs to someone other than the one it was
		// sealed for: trust neither, hand out nothing.
		s.subjectMismatch(w, r, rc.Subject, res.idt.sub, "the refreshed ID token names another subject")
		return
	}
	if res.idt != nil {
		sess.Name, sess.Email, sess.IDToken = truncateClaim(res.idt.Name), truncateClaim(res.idt.Email), res.idt.raw
	}
	// Equal to the session's and the ID token's when they name one; it
	// also rebuilds a lost session cookie when the answer has no ID token.
	sess.Subject = rc.Subject
	if sess.RefreshExpires == 0 || res.tok.RefreshToken == rc.Token {
		sess.RefreshExpires = rc.Expires
	}
	if err := s.setTokenCookies(w, res.tok, &sess, rc.Token); err != nil {
		s.metrics.refreshes.WithLabelValues("too_large").Inc()
		s.logger.Error("refresh: token too large for a cookie", "error", err)
		writeProblem(w, http.StatusBadGateway, "the authorization server issued a token too large for a browser cookie (over 4 KB)")
		return
	}
	outcome := "ok"
	if shared {
		outcome = "shared"
	}
	s.metrics.refreshes.WithLabelValues(outcome).Inc()
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token_expires_at": time.Unix(sess.AccessExpires, 0).UTC().Format(time.RFC3339),
	})
}

// refresh runs the refresh grant once per refresh token: concurrent callers
// with the same token join one call, and callers that arrive within
// RefreshGrace after it finished get its result. A rotating server treats a
// second use of a refresh token as theft and revokes the whole family, so
// two tabs refreshing at once must not both use it.
func (s *Server) refresh(ctx context.Context, key, refreshToken string) (refreshResult, bool, error) {
	if res, ok := s.grace.get(key); ok {
		return res, true, nil
	}
	// Do runs the function in this goroutine when it runs it at all, so
	// these need no lock. Do's own shared flag is true for every caller of
	// a call that had company, the one that made it included.
	ran, cached := false, false
	v, err, _ := s.flights.Do(key, func() (any, error) {
		ran = true
		// A flight that ended between the grace check above and Do has
		// already put its result: look again, or this request would send
		// the consumed refresh token a second time.
		if res, ok := s.grace.get(key); ok {
			cached = true
			return res, nil
		}
		// One caller's cancelled request must not fail the others.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.clientContext(ctx)), s.cfg.HTTPTimeout)
		defer cancel()
		start := time.Now()
		tok, err := s.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
		if err != nil {
			result, _ := classifyTokenError(err)
			s.metrics.observeToken("refresh_token", result, start)
			return refreshResult{}, err
		}
		s.metrics.observeToken("refresh_token", "ok", start)
		res := refreshResult{tok: tok}
		if _, ok := tok.Extra("id_token").(string); ok {
			// A refreshed ID token carries no nonce (OIDC Core §12.2).
			if idt, err := s.verifyIDToken(ctx, tok, ""); err == nil {
				res.idt = &idt
			} else {
				s.logger.Warn("refresh: ignoring an ID token that does not verify", "error", err)
			}
		}
		s.grace.put(key, res)
		return res, nil
	})
	if err != nil {
		return refreshResult{}, false, err
	}
	return v.(refreshResult), !ran || cached, nil
}

// subjectMismatch signs the browser out of a refresh whose refresh token
// and session (or ID token) name different subjects.
func (s *Server) subjectMismatch(w http.ResponseWriter, r *http.Request, want, got, why string) {
	s.metrics.refreshes.WithLabelValues("subject_mismatch").Inc()
	s.logger.Warn("refresh refused: "+why+"; signing out", "want_sub_hash", shortHash(want), "got_sub_hash", shortHash(got))
	s.clearSessionCookies(w, r, false)
	s.unauthorized(w, "the session has ended: sign in again")
}

// openRefreshCookie returns the sealed refresh token cookie's content.
func (s *Server) openRefreshCookie(r *http.Request) (refreshCookie, bool) {
	var rc refreshCookie
	v, ok := requestCookie(r, s.names.refresh)
	if !ok || s.sealer.openJSON(s.names.refresh, v, &rc) != nil || rc.Token == "" {
		return refreshCookie{}, false
	}
	// A copy of the cookie must not outlive the Max-Age it was set with.
	if rc.Expires != 0 && rc.Expires <= s.now().Unix() {
		return refreshCookie{}, false
	}
	return rc, true
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

func (s *Server) unauthorized(w http.ResponseWriter, detail string) {
	writeProblem(w, http.StatusUnauthorized, detail)
}

// handleLogout signs out: it revokes the refresh token at the server (RFC
// 7009) when there is one and the server has a revocation endpoint, clears
// every cookie, and answers with the server's end-session URL. Two
// different refresh cookies revoke nothing (the first may be a planted
// one, and revoking it would leave ours active); two different session
// cookies give no id_token_hint.
func (s *Server) handleLogout(c *gin.Context) {
	w, r := c.Writer, c.Request
	revocation := "none"
	amb := ambiguousCookies(r, s.names.refresh, s.names.session)
	if len(amb) > 0 {
		s.logger.Warn("sign-out: two different cookies of one name (planted by another host of the site?); not using them", "cookies", amb)
	}
	if slices.Contains(amb, s.names.refresh) {
		revocation = "ambiguous_cookie"
	} else if rc, ok := s.openRefreshCookie(r); ok {
		s.grace.forget(rc.Token)
		if s.meta.RevocationEndpoint != "" {
			if err := s.revoke(r.Context(), rc.Token); err != nil {
				revocation = "failed"
				// Signing out locally still goes ahead: the person asked to.
				s.logger.Error("sign-out: revocation failed", "error", err)
			} else {
				revocation = "ok"
			}
		}
	}
	var sess session
	if v, ok := requestCookie(r, s.names.session); ok {
		if s.sealer.openJSON(s.names.session, v, &sess) != nil {
			sess = session{}
		}
	}
	s.clearSessionCookies(w, r, true)
	s.metrics.logouts.WithLabelValues(revocation).Inc()
	if sess.Subject != "" {
		s.logger.Info("signed out", "sub_hash", shortHash(sess.Subject), "revocation", revocation)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"end_session_url": s.endSessionURL(sess.IDToken),
		"revoked":         revocation == "ok",
	})
}

// endSessionURL is the server's end_session_endpoint with id_token_hint,
// post_logout_redirect_uri and client_id (OpenID Connect RP-Initiated Logout
// 1.0 §2), or "" when the server has none.
func (s *Server) endSessionURL(idToken string) string {
	if s.meta.EndSessionEndpoint == "" {
		return ""
	}
	u, err := url.Parse(s.meta.EndSessionEndpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	q := u.Query()
	if idToken != "" {
		q.Set("id_token_hint", idToken)
	}
	q.Set("client_id", s.cfg.ClientID)
	q.Set("post_logout_redirect_uri", s.cfg.PostLogoutRedirectURL)
	u.RawQuery = q.Encode()
	return u.String()
}

// revoke asks the server to revoke refreshToken (RFC 7009 §2.1), which also
// ends the access tokens issued with it on servers that support that.
func (s *Server) revoke(ctx context.Context, refreshToken string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.HTTPTimeout)
	defer cancel()
	form := url.Values{"token": {refreshToken}, "token_type_hint": {"refresh_token"}}
	if s.oauth.Endpoint.AuthStyle == oauth2.AuthStyleInParams {
		form.Set("client_id", s.cfg.ClientID)
		form.Set("client_secret", s.cfg.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.meta.RevocationEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if s.oauth.Endpoint.AuthStyle != oauth2.AuthStyleInParams {
		// RFC 6749 §2.3.1: form-encode both before Basic, as oauth2 does.
		req.SetBasicAuth(url.QueryEscape(s.cfg.ClientID), url.QueryEscape(s.cfg.ClientSecret))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return errors.New("revocation endpoint unreachable")
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return errors.New("revocation endpoint answered " + resp.Status)
	}
	return nil
}

// handleMe answers who is signed in, from the session cookie. Two
// different session cookies sign the browser out.
func (s *Server) handleMe(c *gin.Context) {
	w, r := c.Writer, c.Request
	if amb := ambiguousCookies(r, s.names.session); len(amb) > 0 {
		s.logger.Warn("me: two different cookies of one name (planted by another host of the site?); signing out", "cookies", amb)
		s.clearSessionCookies(w, r, false)
		s.unauthorized(w, "not signed in: the browser sent two different cookies of one name")
		return
	}
	var sess session
	v, ok := requestCookie(r, s.names.session)
	if !ok || s.sealer.openJSON(s.names.session, v, &sess) != nil || sess.Subject == "" || sess.Expires <= s.now().Unix() {
		s.unauthorized(w, "not signed in")
		return
	}
	body := map[string]any{
		"sub":                     sess.Subject,
		"access_token_expires_at": time.Unix(sess.AccessExpires, 0).UTC().Format(time.RFC3339),
	}
	if sess.Name != "" {
		body["name"] = sess.Name
	}
	if sess.Email != "" {
		body["email"] = sess.Email
	}
	if sess.RefreshExpires != 0 {
		body["refresh_token_expires_at"] = time.Unix(sess.RefreshExpires, 0).UTC().Format(time.RFC3339)
	}
	writeJSON(w, http.StatusOK, body)
}

// handleConfig tells the web page where the todo API is.
func (s *Server) handleConfig(c *gin.Context) {
	writeJSON(c.Writer, http.StatusOK, map[string]string{"todo_api_url": s.cfg.TodoAPIURL})
}

// hashKey keys the refresh flights and the grace cache: the token itself is
// never a map key that could end up in a dump.
func hashKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return string(sum[:])
}

// shortHash identifies a subject or token in logs without revealing it.
func shortHash(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:6])
}

// maxGraceEntries bounds the grace cache.
const maxGraceEntries = 10_000

// graceCache keeps each refresh result for a short while, keyed by the hash
// of the refresh token it consumed. The results hold tokens, so expired
// ones are swept out at least every ttl, not only when the cache fills.
type graceCache struct {
	ttl time.Duration
	// forgetFor is how long a signed-out refresh token stays forgotten:
	// longer than a refresh grant call can take.
	forgetFor time.Duration
	now       func() time.Time

	mu        sync.Mutex
	entries   map[string]graceEntry
	forgotten map[string]time.Time // keys signed out of, until when puts are refused
	lastSweep time.Time
}

type graceEntry struct {
	res     refreshResult
	expires time.Time
}

func newGraceCache(ttl, forgetFor time.Duration, now func() time.Time) *graceCache {
	return &graceCache{ttl: ttl, forgetFor: forgetFor, now: now, entries: make(map[string]graceEntry), forgotten: make(map[string]time.Time)}
}

// isForgotten reports whether a sign-out has forgotten key lately.
func (g *graceCache) isForgotten(key string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.forgotten[key]
	return ok && g.now().Before(until)
}

func (g *graceCache) get(key string) (refreshResult, bool) {
	if g.ttl <= 0 {
		return refreshResult{}, false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	e, ok := g.entries[key]
	if !ok || !g.now().Before(e.expires) {
		return refreshResult{}, false
	}
	return e.res, true
}

func (g *graceCache) put(key string, res refreshResult) {
	if g.ttl <= 0 {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if len(g.entries) >= maxGraceEntries || now.Sub(g.lastSweep) >= min(g.ttl, g.forgetFor) {
		g.sweep(now)
	}
	if until, ok := g.forgotten[key]; ok && now.Before(until) {
		return // signed out while this refresh was running
	}
	if len(g.entries) >= maxGraceEntries {
		return // full of live entries: late joiners fall back to the server
	}
	g.entries[key] = graceEntry{res: res, expires: now.Add(g.ttl)}
}

// sweep drops expired entries; g.mu is held.
func (g *graceCache) sweep(now time.Time) {
	g.lastSweep = now
	for k, e := range g.entries {
		if !now.Before(e.expires) {
			delete(g.entries, k)
		}
	}
	for k, until := range g.forgotten {
		if !now.Before(until) {
			delete(g.forgotten, k)
		}
	}
}

// forget drops every entry that consumed refreshToken or produced it, so
// that after sign-out a replaced refresh token cannot collect the result,
// and marks it forgotten for forgetFor, so that a refresh still running
// with it neither caches nor hands out its result.
func (g *graceCache) forget(refreshToken string) {
	key := hashKey(refreshToken)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	delete(g.entries, key)
	for k, e := range g.entries {
		if e.res.tok != nil && e.res.tok.RefreshToken == refreshToken {
			delete(g.entries, k)
		}
	}
	if len(g.forgotten) < maxGraceEntries {
		g.forgotten[key] = now.Add(g.forgetFor)
	}
}

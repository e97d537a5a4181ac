package exchange

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/introspection"
	"golang.org/x/oauth2"
)

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
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) {
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
	if sess.Subject == "" {
		// The session cookie lives as long as the refresh cookie, so a
		// browser of ours never holds one without the other. A refresh
		// cookie alone may have been planted, with Domain=, by another
		// host of the site (the __Host- session cookie cannot be): using
		// it would sign this browser in as whoever it was issued to.
		s.metrics.refreshes.WithLabelValues("no_session").Inc()
		s.logger.Warn("refresh refused: a refresh cookie without a session cookie (planted by another host of the site?); signing out")
		s.clearSessionCookies(w, r, false)
		s.unauthorized(w, "not signed in: no session")
		return
	}
	if sess.Subject != rc.Subject {
		s.subjectMismatch(w, r, sess.Subject, rc.Subject, "the refresh cookie was issued to another subject than the session's")
		return
	}
	key := hashKey(rc.Token)
	res, shared, err := s.refresh(r.Context(), key, rc.Token)
	if errors.Is(err, errStoreUnavailable) {
		// Never a grant this instance cannot coordinate with the others
		// (a second spend of the token would end the session), nor a
		// silent fall back to its own state.
		s.metrics.refreshes.WithLabelValues("store_unavailable").Inc()
		w.Header().Set("Retry-After", storeRetryAfter)
		writeProblem(w, http.StatusServiceUnavailable, "the refresh cannot be coordinated right now; try again shortly")
		return
	}
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

	if s.grace.isForgotten(key) || (s.shared != nil && s.sharedForgotten(r.Context(), rc.Token)) {
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
	// Equal to the session's (checked above) and the ID token's.
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
//
// With a shared store (STORE_URL), the same holds across every instance:
// see sharedRefresh.
func (s *Server) refresh(ctx context.Context, key, refreshToken string) (refreshResult, bool, error) {
	if s.shared != nil {
		return s.sharedRefresh(ctx, key, refreshToken)
	}
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
		res, err := s.grant(ctx, refreshToken)
		if err != nil {
			return refreshResult{}, err
		}
		s.grace.put(key, res)
		return res, nil
	})
	if err != nil {
		return refreshResult{}, false, err
	}
	return v.(refreshResult), !ran || cached, nil
}

// grant runs the refresh grant and verifies the ID token that comes with
// it, under its own timeout: one caller's cancelled request must not fail
// the others that wait for it.
func (s *Server) grant(ctx context.Context, refreshToken string) (refreshResult, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.clientContext(ctx)), s.cfg.HTTPTimeout)
	defer cancel()
	start := time.Now()
	tok, err := s.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err == nil {
		// Refused like any other unusable answer: 502, the cookies kept
		// (the refresh token may still be good; with a rotating server it
		// is spent, and the next refresh ends in invalid_grant).
		err = checkTokenResponse(tok)
	}
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
	return res, nil
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

// hashKey keys the refresh flights and the grace cache: the token itself is
// never a map key that could end up in a dump.
func hashKey(token string) string {
	h := introspection.HashToken(token)
	return string(h[:])
}

// shortHash identifies a subject in logs without revealing it, with the
// same hash and length as every Tollgate package names a token.
func shortHash(v string) string {
	return introspection.HashToken(v).Short()
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

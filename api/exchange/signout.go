package exchange

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/oauth2"
)

// handleLogout signs out: it revokes (RFC 7009) the refresh token, then the
// access token of the access cookie, clears every cookie, and answers with
// the server's end-session URL and the outcome of the revocation. Both
// revocations go even though many servers end a grant's access tokens with
// its refresh token: RFC 7009 §2.1 makes that a SHOULD, and the access
// token must not outlive the sign-out on a server that does not. Two
// different cookies of one kind, refresh or access, revoke no token of that
// kind (one may be a planted one, and revoking it would leave ours active);
// the other kind is still revoked, and a single refresh cookie forgotten
// (grace cache and shared store); two different session cookies give no
// id_token_hint. The local sign-out always goes ahead: the
// person asked for it.
//
// revocation in the answer (and exchange_logouts_total's label) is ok (every
// revocation attempted answered 200), failed, none (nothing to revoke),
// no_revocation_endpoint (tokens to revoke, but the discovery document names
// no revocation_endpoint) or ambiguous_cookie; revoked is true only for ok.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	amb := ambiguousCookies(r, s.names.refresh, s.names.access, s.names.session)
	if len(amb) > 0 {
		s.logger.Warn("sign-out: two different cookies of one name (planted by another host of the site?); not using them", "cookies", amb)
	}
	// One refresh cookie (requestCookie refuses two different ones) is
	// forgotten even when the access cookie is ambiguous and nothing is
	// revoked: forgetting only keeps a token from collecting a refresh
	// result, which harms no one, planted or not.
	rc, haveRefresh := s.openRefreshCookie(r)
	if haveRefresh {
		s.grace.forget(rc.Token)
		if s.shared != nil {
			if err := s.forgetShared(r.Context(), rc.Token); err != nil {
				// Signing out still goes ahead: the revocation below ends
				// the tokens at the server, and the cookies go.
				s.logger.Error("sign-out: the shared store did not record it; other instances may hand out this session's last refresh result until its grace period ends", "error", err)
			}
		}
	}
	// Each kind of token is revoked unless its cookie is ambiguous: a
	// planted access cookie must not save the refresh token, nor the
	// reverse. A single cookie of a kind is ours or, if ours is gone, a
	// planted one, whose revocation harms only whoever planted it.
	var targets []revocationTarget
	if haveRefresh {
		targets = append(targets, revocationTarget{rc.Token, "refresh_token"})
	}
	if !slices.Contains(amb, s.names.access) {
		if at, ok := requestCookie(r, s.names.access); ok && at != "" {
			targets = append(targets, revocationTarget{at, "access_token"})
		}
	}
	revocation := s.revokeAll(r.Context(), targets)
	if slices.Contains(amb, s.names.refresh) || slices.Contains(amb, s.names.access) {
		// Not everything the browser holds was revoked.
		revocation = "ambiguous_cookie"
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
		"revocation":      revocation,
	})
}

// revocationTarget is a token to revoke and its token_type_hint.
type revocationTarget struct{ token, hint string }

// revokeAll revokes targets in order, every one even when one fails, all
// within one HTTPTimeout, and returns the outcome for handleLogout.
func (s *Server) revokeAll(ctx context.Context, targets []revocationTarget) string {
	if len(targets) == 0 {
		return "none"
	}
	if s.meta.RevocationEndpoint == "" {
		s.logger.Error("sign-out: cannot revoke the tokens: the issuer names no revocation_endpoint")
		return "no_revocation_endpoint"
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.HTTPTimeout)
	defer cancel()
	outcome := "ok"
	for _, t := range targets {
		if err := s.revoke(ctx, t.token, t.hint); err != nil {
			outcome = "failed"
			// Signing out locally still goes ahead: the person asked to.
			s.logger.Error("sign-out: revocation failed", "token_type_hint", t.hint, "error", err)
		}
	}
	return outcome
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

// revoke asks the server to revoke token (RFC 7009 §2.1), with hint as its
// token_type_hint. Revoking a refresh token also ends the access tokens
// issued with it on servers that support that.
func (s *Server) revoke(ctx context.Context, token, hint string) error {
	form := url.Values{"token": {token}, "token_type_hint": {hint}}
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

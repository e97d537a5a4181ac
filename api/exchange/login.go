package exchange

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// handleLogin starts a login: a fresh state, PKCE verifier and nonce, sealed
// into a transaction cookie of their own, then a redirect to the
// authorization endpoint.
//
// acr_values and max_age, when given (a step-up after the todo API's 401
// insufficient_user_authentication, RFC 9470 §4), are checked and passed on
// to the authorization request; malformed ones are answered 400 with a
// fixed message.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	acrValues, maxAge, err := stepUpParams(r.URL.Query())
	if err != nil {
		s.logger.Info("login refused: malformed acr_values or max_age")
		renderError(w, http.StatusBadRequest, errorPage{
			Title:   "This sign-in link is not valid",
			Message: "It asks for a kind of sign-in this service cannot request (malformed acr_values or max_age). Please go back and try again.",
		})
		return
	}
	tx := transaction{
		State:     rand.Text(), // 26 base32 characters: 130 bits
		Verifier:  oauth2.GenerateVerifier(),
		Nonce:     rand.Text(),
		ReturnTo:  sanitizeReturnTo(r.URL.Query().Get("returnTo")),
		Created:   now.Unix(),
		Expires:   now.Add(s.cfg.TransactionTTL).Unix(),
		ACRValues: acrValues,
		MaxAge:    maxAge,
	}
	// The callback sends a person whose code expired back here once with
	// error=expired; a second failure then shows a page instead of looping.
	if r.URL.Query().Get("error") == "expired" {
		tx.Retry = 1
	}
	s.capTransactions(w, r)

	name := s.names.txCookieName(tx.State)
	value, err := s.sealer.sealJSON(name, tx)
	if err != nil {
		s.internalError(w, "seal transaction", err)
		return
	}
	ck, err := s.cookie(s.txSpec(name), value, s.cfg.TransactionTTL)
	if err != nil {
		s.internalError(w, "transaction cookie", err)
		return
	}
	http.SetCookie(w, ck)

	opts := []oauth2.AuthCodeOption{
		oauth2.S256ChallengeOption(tx.Verifier),
		oauth2.SetAuthURLParam("nonce", tx.Nonce),
	}
	if s.cfg.Audience != "" {
		opts = append(opts,
			oauth2.SetAuthURLParam("audience", s.cfg.Audience),
			oauth2.SetAuthURLParam("resource", s.cfg.Audience))
	}
	if tx.ACRValues != "" {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", tx.ACRValues))
	}
	if tx.MaxAge != "" {
		opts = append(opts, oauth2.SetAuthURLParam("max_age", tx.MaxAge))
	}
	s.metrics.logins.Inc()
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, s.oauth.AuthCodeURL(tx.State, opts...), http.StatusFound)
}

// capTransactions expires the oldest transaction cookies so that, with the
// one about to be set, at most MaxTransactions remain. Cookies that do not
// open (another key, tampered, expired) go first.
func (s *Server) capTransactions(w http.ResponseWriter, r *http.Request) {
	type attempt struct {
		name    string
		created int64
	}
	var attempts []attempt
	now := s.now().Unix()
	for _, ck := range s.txCookies(r) {
		var tx transaction
		if err := s.sealer.openJSON(ck.Name, ck.Value, &tx); err != nil || tx.Expires <= now {
			s.expire(w, s.txSpec(ck.Name))
			continue
		}
		attempts = append(attempts, attempt{ck.Name, tx.Created})
	}
	if excess := len(attempts) - (s.cfg.MaxTransactions - 1); excess > 0 {
		slices.SortFunc(attempts, func(a, b attempt) int { return int(a.created - b.created) })
		for _, a := range attempts[:excess] {
			s.expire(w, s.txSpec(a.name))
		}
	}
}

// handleCallback finishes a login: it checks state (and iss), exchanges the
// code with the PKCE verifier, verifies the ID token and its nonce, and sets
// the cookies.
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request) {
	// The URL carries the authorization code: send it nowhere.
	w.Header().Set("Referrer-Policy", "no-referrer")
	q := r.URL.Query()

	if name, ok := s.ambiguousTransaction(r, q.Get("state")); ok {
		// Delete both: which one this login set cannot be told.
		s.expirePlanted(w, s.txSpec(name), txReadPaths)
		s.expire(w, s.txSpec(name))
		s.callbackFailed(w, r, http.StatusBadRequest, "bad_state", errorPage{
			Title:   "This sign-in link is no longer valid",
			Message: "The browser sent two different cookies for this sign-in, so it was refused. Please sign in again.",
		}, "two different transaction cookies")
		return
	}
	tx, txName, ok := s.openTransaction(r, q.Get("state"))
	if !ok {
		s.callbackFailed(w, r, http.StatusBadRequest, "bad_state", errorPage{
			Title:   "This sign-in link is no longer valid",
			Message: "The sign-in took too long, was started in another browser, or was already finished. Please sign in again.",
		}, "")
		return
	}
	// From here on the attempt is used up, whatever happens.
	s.expire(w, s.txSpec(txName))
	retry := loginURL(tx)

	// RFC 9207: when the server sends iss, or promises to, it must be ours.
	iss, hasIss := q["iss"]
	if (hasIss && (len(iss) != 1 || iss[0] != s.cfg.Issuer)) || (!hasIss && s.meta.IssParameter) {
		s.callbackFailed(w, r, http.StatusBadRequest, "iss_mismatch", errorPage{
			Title:    "Sign-in refused",
			Message:  "The answer did not come from the expected sign-in server (RFC 9207 issuer mismatch), so it was ignored.",
			RetryURL: retry,
		}, "")
		return
	}

	if e := q.Get("error"); e != "" {
		status, outcome, page := http.StatusBadRequest, "authorization_error", errorPage{
			Title:    "Sign-in failed",
			Message:  "The sign-in server could not complete the sign-in.",
			Code:     e,
			Detail:   q.Get("error_description"),
			RetryURL: retry,
		}
		if e == "access_denied" {
			status, outcome = http.StatusForbidden, "access_denied"
			page.Title = "Sign-in cancelled"
			page.Message = "Access was denied, so you are not signed in."
		}
		s.callbackFailed(w, r, status, outcome, page, e)
		return
	}
	code := q.Get("code")
	if code == "" {
		s.callbackFailed(w, r, http.StatusBadRequest, "authorization_error", errorPage{
			Title: "Sign-in failed", Message: "The sign-in server sent no authorization code.", RetryURL: retry,
		}, "missing_code")
		return
	}

	ctx := s.clientContext(r.Context())
	start := time.Now()
	tok, err := s.oauth.Exchange(ctx, code, oauth2.VerifierOption(tx.Verifier))
	if err == nil {
		err = checkTokenResponse(tok)
	}
	if err != nil {
		result, errCode := classifyTokenError(err)
		s.metrics.observeToken("authorization_code", result, start)
		switch {
		case errCode == "invalid_grant" && tx.Retry == 0:
			s.metrics.callbacks.WithLabelValues("expired_code").Inc()
			s.logger.Info("callback: code refused, starting again", "error", errCode)
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, loginPath+"?"+loginQuery(tx, "error", "expired").Encode(), http.StatusSeeOther)
		case result == "unavailable":
			s.callbackFailed(w, r, http.StatusServiceUnavailable, "unavailable", errorPage{
				Title: "The sign-in server is not answering", Message: "Please try again in a moment.", RetryURL: retry,
			}, errCode)
		default:
			s.callbackFailed(w, r, http.StatusBadGateway, "token_error", errorPage{
				Title: "Sign-in failed", Message: "The sign-in server refused to issue tokens.", Code: errCode, RetryURL: retry,
			}, errCode)
		}
		return
	}
	s.metrics.observeToken("authorization_code", "ok", start)

	idt, err := s.verifyIDToken(ctx, tok, tx.Nonce)
	if err != nil {
		s.callbackFailed(w, r, http.StatusBadGateway, "id_token_invalid", errorPage{
			Title: "Sign-in failed", Message: "The sign-in server's identity token did not verify.", RetryURL: retry,
		}, err.Error())
		return
	}
	sess := session{
		Subject: idt.sub,
		Name:    truncateClaim(idt.Name),
		Email:   truncateClaim(idt.Email),
		IDToken: idt.raw,
	}
	// Copies planted by other hosts of the site would be sent along with
	// the new cookies, and every refresh then refused: delete them, before
	// the new cookies are set.
	s.expireAllPlanted(w)
	if err := s.setTokenCookies(w, tok, &sess, ""); err != nil {
		s.callbackFailed(w, r, http.StatusBadGateway, "too_large", errorPage{
			Title:    "Sign-in failed",
			Message:  "The sign-in server issued a token too large for a browser cookie (over 4 KB). Ask its administrator for smaller tokens (fewer claims or groups).",
			RetryURL: retry,
		}, err.Error())
		return
	}
	s.metrics.callbacks.WithLabelValues("ok").Inc()
	s.logger.Info("signed in", "sub_hash", shortHash(idt.sub))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, tx.ReturnTo, http.StatusSeeOther)
}

// maxStateLen bounds the state a callback is looked up with.
const maxStateLen = 512

// ambiguousTransaction returns the name of the transaction cookie of state
// when r carries two different values of it.
func (s *Server) ambiguousTransaction(r *http.Request, state string) (string, bool) {
	if state == "" || len(state) > maxStateLen {
		return "", false
	}
	name := s.names.txCookieName(state)
	return name, len(ambiguousCookies(r, name)) > 0
}

// openTransaction finds the unexpired transaction cookie whose state is
// state. The cookie is named after the state, so no other cookie is tried.
func (s *Server) openTransaction(r *http.Request, state string) (transaction, string, bool) {
	var tx transaction
	if state == "" || len(state) > maxStateLen {
		return tx, "", false
	}
	name := s.names.txCookieName(state)
	value, ok := requestCookie(r, name)
	if !ok {
		return tx, "", false
	}
	if err := s.sealer.openJSON(name, value, &tx); err != nil {
		return tx, "", false
	}
	if subtle.ConstantTimeCompare([]byte(tx.State), []byte(state)) != 1 || tx.Expires <= s.now().Unix() {
		return tx, "", false
	}
	return tx, name, true
}

// callbackFailed counts, logs (the reason, never the code or a token) and
// shows the error page.
func (s *Server) callbackFailed(w http.ResponseWriter, r *http.Request, status int, outcome string, page errorPage, reason string) {
	s.metrics.callbacks.WithLabelValues(outcome).Inc()
	level := slog.LevelInfo
	if status >= 500 || outcome == "token_error" || outcome == "id_token_invalid" || outcome == "too_large" {
		level = slog.LevelError
	}
	s.logger.LogAttrs(r.Context(), level, "callback failed",
		slog.String("outcome", outcome), slog.String("reason", reason))
	renderError(w, status, page)
}

// idTokenInfo is what the exchange keeps from a verified ID token.
type idTokenInfo struct {
	raw, sub    string
	Name, Email string
}

// verifyIDToken checks the ID token in tok: signature, iss, aud, exp (by
// go-oidc) and, when nonce is not empty, that it carries that nonce.
func (s *Server) verifyIDToken(ctx context.Context, tok *oauth2.Token, nonce string) (idTokenInfo, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return idTokenInfo{}, errors.New("no id_token in the token response")
	}
	idt, err := s.verifier.Verify(ctx, raw)
	if err != nil {
		return idTokenInfo{}, err
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return idTokenInfo{}, errors.New("id_token nonce does not match the one sent")
	}
	if idt.Subject == "" {
		return idTokenInfo{}, errors.New("id_token has no sub")
	}
	var claims struct {
		Name     string `json:"name"`
		Username string `json:"preferred_username"`
		Email    string `json:"email"`
	}
	if err := idt.Claims(&claims); err != nil {
		return idTokenInfo{}, err
	}
	if claims.Name == "" {
		claims.Name = claims.Username
	}
	return idTokenInfo{raw: raw, sub: idt.Subject, Name: claims.Name, Email: claims.Email}, nil
}

// clientContext carries our HTTP client to oauth2 and go-oidc.
func (s *Server) clientContext(ctx context.Context) context.Context {
	return oidc.ClientContext(context.WithValue(ctx, oauth2.HTTPClient, s.client), s.client)
}

// classifyTokenError sorts a token endpoint failure into a metrics result
// (oauth_error or unavailable) and the OAuth error code to log and show.
func classifyTokenError(err error) (result, code string) {
	if se, ok := errors.AsType[*sharedGrantError](err); ok {
		// Classified by the instance that ran the grant.
		return se.result, se.code
	}
	if be, ok := errors.AsType[*badTokenResponse](err); ok {
		// A 200 answer the exchange must not use (checkTokenResponse).
		return "oauth_error", be.code
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.Response != nil && re.Response.StatusCode >= 500 && re.ErrorCode == "" {
			return "unavailable", "server_error"
		}
		if re.ErrorCode == "" {
			return "oauth_error", "invalid_response"
		}
		if re.ErrorCode == "temporarily_unavailable" || re.ErrorCode == "server_error" {
			return "unavailable", re.ErrorCode
		}
		return "oauth_error", re.ErrorCode
	}
	var ue *url.Error
	if errors.As(err, &ue) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return "unavailable", "unreachable"
	}
	// A 200 answer without access_token, or one that is not JSON.
	return "oauth_error", "invalid_response"
}

func (s *Server) internalError(w http.ResponseWriter, what string, err error) {
	s.logger.Error("internal error", "what", what, "error", err)
	writeProblem(w, http.StatusInternalServerError, "internal error")
}

package devidp

import (
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"
)

const maxFormBytes = 64 << 10

// handleToken runs the authorization_code and refresh_token grants (RFC 6749
// §4.1.3, §6) through fosite, which authenticates the client
// (client_secret_basic, client_secret_post, or none for a public client),
// checks PKCE, and rotates refresh tokens.
//
// A request with a DPoP header gets DPoP-bound tokens (RFC 9449 §5): the
// proof is checked first (400 invalid_dpop_proof when it fails, or when
// there is more than one DPoP header), its jti recorded once fosite has
// accepted the client and the grant and bindDPoP the proof's key (so that
// refused requests cannot fill the replay set), and the access token
// carries cnf.jkt and comes with token_type DPoP. fosite knows nothing of
// DPoP: the binding travels in our session (DPoPJKT, RefreshJKT) and
// fosite's "bearer" token type is overwritten in the response.
//
// Every request ends with one "token request" line (logTokenRequest), so
// that tests running the devidp binary can count the grants a client ran.
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	var (
		ar     fosite.AccessRequester
		issued bool
	)
	defer func() { s.logTokenRequest(r, ar, issued) }()
	var proof *checkedProof
	if raw, present, err := proofHeader(r); err != nil {
		s.writeDPoPError(w, r, err)
		return
	} else if present {
		if proof, err = s.dpop.verify(raw, r.Method, s.dpop.tokenHTU, ""); err != nil {
			s.writeDPoPError(w, r, err)
			return
		}
	}
	ar, err := s.fosite.NewAccessRequest(ctx, r, newSession())
	if err != nil {
		s.writeTokenError(w, r, ar, err)
		return
	}
	jkt := ""
	if proof != nil {
		jkt = proof.jkt
	}
	if err := bindDPoP(ar, jkt); err != nil {
		s.writeDPoPError(w, r, err)
		return
	}
	// Recorded only now: a refresh refused for its proof's key leaves the
	// refresh token usable, so recording before would let one refresh
	// token, sent again with proofs of fresh keys, fill the replay set.
	if proof != nil {
		if err := s.dpop.record(s.dpop.tokenReplay, proof); err != nil {
			s.writeDPoPError(w, r, err)
			return
		}
	}
	resp, err := s.fosite.NewAccessResponse(ctx, ar)
	if err != nil {
		s.writeTokenError(w, r, ar, err)
		return
	}
	if jkt != "" {
		resp.SetTokenType("DPoP")
	}
	issued = true
	s.fosite.WriteAccessResponse(ctx, w, ar, resp)
}

// logTokenRequest writes one Info line per token request: its grant_type
// (one of the two this server runs, else "other", so a client cannot write
// what it likes into the log), the client when fosite authenticated one,
// and whether tokens were issued. Why a request was refused is the "oauth
// error" line's. Never a code, token or secret. The line exists for
// operators and for the end-to-end tests, which count refresh grants with
// it: several exchange instances must spend a refresh token once.
func (s *Server) logTokenRequest(r *http.Request, ar fosite.AccessRequester, issued bool) {
	grantType := "other"
	if gt := r.PostForm.Get("grant_type"); gt == "authorization_code" || gt == "refresh_token" {
		grantType = gt
	}
	client := ""
	if ar != nil && ar.GetClient() != nil {
		client = ar.GetClient().GetID()
	}
	s.logger.LogAttrs(r.Context(), slog.LevelInfo, "token request",
		slog.String("grant_type", grantType), slog.String("client_id", client), slog.Bool("issued", issued))
}

// bindDPoP puts the proof key's thumbprint jkt ("" when the request had no
// proof) into the session the new tokens are stored with.
//
// RFC 9449 §5: refresh tokens of public clients are bound to the key of the
// proof they were issued with, and a refresh must prove possession of that
// key; those of confidential clients are not bound (the client
// authentication protects them), but each new access token is bound to the
// key of the proof sent with its request, if any. A public client's refresh
// token issued without a proof becomes bound at the first refresh that
// carries one.
//
// A refresh without the bound key's proof is refused with
// invalid_dpop_proof, not invalid_grant: the refresh token is still good
// (it is not rotated, and the rightful holder can go on using it), what is
// missing is the proof of possession; invalid_grant would tell a client to
// drop the grant and sign in again.
//
// fosite gotcha: for the authorization_code grant the request's session
// is the very object stored with the code, not a copy (the refresh grant
// clones), so we bind a clone.
func bindDPoP(ar fosite.AccessRequester, jkt string) error {
	orig, ok := ar.GetSession().(*session)
	if !ok {
		return errors.New("devidp: unexpected session type")
	}
	sess := orig.Clone().(*session)
	if ar.GetGrantTypes().ExactOne("refresh_token") && sess.RefreshJKT != "" && sess.RefreshJKT != jkt {
		if jkt == "" {
			return badProof("the refresh token is DPoP-bound and the request has no proof")
		}
		return badProof("the refresh token is bound to another DPoP key")
	}
	sess.DPoPJKT = jkt
	if jkt != "" && ar.GetClient().IsPublic() {
		sess.RefreshJKT = jkt
	}
	ar.SetSession(sess)
	return nil
}

// writeUserinfoDPoPError answers a refused proof at userinfo with 401
// and a DPoP challenge (RFC 9449 §7.1).
func (s *Server) writeUserinfoDPoPError(w http.ResponseWriter, r *http.Request, err error) {
	var pe *proofError
	if errors.As(err, &pe) {
		s.logger.LogAttrs(r.Context(), slog.LevelWarn, "dpop proof refused",
			slog.String("path", r.URL.Path), slog.String("reason", err.Error()))
		w.Header().Set("WWW-Authenticate", `DPoP realm="devidp", error="invalid_dpop_proof", algs="`+strings.Join(DPoPAlgorithms, " ")+`"`)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_dpop_proof", "DPoP proof refused: "+pe.reason)
		return
	}
	s.writeDPoPError(w, r, err)
}

// writeDPoPError answers a refused proof with 400 invalid_dpop_proof (RFC
// 9449 §5), saying why but never echoing the proof, and a full replay set
// with 503.
func (s *Server) writeDPoPError(w http.ResponseWriter, r *http.Request, err error) {
	s.logger.LogAttrs(r.Context(), slog.LevelWarn, "dpop proof refused",
		slog.String("path", r.URL.Path), slog.String("reason", err.Error()))
	var pe *proofError
	switch {
	case errors.As(err, &pe):
		writeOAuthError(w, http.StatusBadRequest, "invalid_dpop_proof", "DPoP proof refused: "+pe.reason)
	case errors.Is(err, errDPoPReplayFull):
		w.Header().Set("Retry-After", "60")
		writeOAuthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "too many DPoP proofs in the last minute")
	default:
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "")
	}
}

func (s *Server) writeTokenError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	s.logOAuthError(r, err)
	if fosite.ErrorToRFC6749Error(err).ErrorField == fosite.ErrInvalidClient.ErrorField {
		// RFC 6749 §5.2: a 401 invalid_client names the scheme to use.
		w.Header().Set("WWW-Authenticate", `Basic realm="devidp"`)
	}
	s.fosite.WriteAccessError(r.Context(), w, ar, err)
}

// handleIntrospect answers RFC 7662 requests from an authenticated client,
// about access tokens only: every other token is inactive.
//
// fosite gotchas: its introspection endpoint reads client credentials from
// HTTP Basic only, and also lets any holder of an access token authenticate
// with "Authorization: Bearer" (or an access_token form field). We
// authenticate the client ourselves (Basic or client_secret_post, nothing
// else), then hand fosite a clean request carrying Basic credentials and the
// token fields alone.
func (s *Server) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	if c, err := s.fosite.AuthenticateClient(ctx, r, r.PostForm); err != nil || c.IsPublic() {
		if err == nil {
			err = fosite.ErrInvalidClient.WithHint("public clients cannot introspect")
		}
		s.logOAuthError(r, err)
		w.Header().Set("WWW-Authenticate", `Basic realm="devidp"`)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_client", "client authentication (client_secret_basic or client_secret_post) is required")
		return
	}
	form := url.Values{"token": {r.PostForm.Get("token")}}
	if v := r.PostForm.Get("token_type_hint"); v != "" {
		form.Set("token_type_hint", v)
	}
	fr, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL.Path, strings.NewReader(form.Encode()))
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	fr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if _, _, ok := r.BasicAuth(); ok {
		fr.Header.Set("Authorization", r.Header.Get("Authorization"))
	} else {
		fr.SetBasicAuth(url.QueryEscape(r.PostForm.Get("client_id")), url.QueryEscape(r.PostForm.Get("client_secret")))
	}
	ir, err := s.fosite.NewIntrospectionRequest(ctx, fr, newSession())
	if err != nil {
		if !errors.Is(err, fosite.ErrInactiveToken) {
			s.logOAuthError(r, err)
		}
		s.fosite.WriteIntrospectionError(ctx, w, err)
		return
	}
	// fosite gotcha: introspection tries the hinted token type, then falls
	// back to the other, so a refresh token comes back active, with the
	// access token's exp and nothing to tell it apart. This server's
	// introspection serves resource servers, which must never take a
	// refresh token for a bearer token: anything but an access token is
	// inactive here, whatever the hint.
	if ir.GetTokenUse() != fosite.AccessToken {
		s.fosite.WriteIntrospectionResponse(ctx, w, &fosite.IntrospectionResponse{Active: false})
		return
	}
	s.fosite.WriteIntrospectionResponse(ctx, w, ir)
}

// handleRevoke revokes a token (RFC 7009) and, through fosite's shared
// request ID, every access and refresh token of the same grant.
//
// fosite gotcha: WriteRevocationResponse answers 200 to every error other
// than invalid_request and invalid_client, including a client revoking
// another client's token (which is left alone).
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	err := s.fosite.NewRevocationRequest(ctx, r)
	if err != nil {
		s.logOAuthError(r, err)
		if fosite.ErrorToRFC6749Error(err).ErrorField == fosite.ErrInvalidClient.ErrorField {
			w.Header().Set("WWW-Authenticate", `Basic realm="devidp"`)
		}
	}
	s.fosite.WriteRevocationResponse(ctx, w, err)
}

// handleUserinfo returns the claims of the user an access token with the
// openid scope speaks for (OpenID Connect Core §5.3). fosite has no userinfo
// endpoint.
//
// userinfo is a protected resource, so a DPoP-bound token (RFC 9449 §7)
// must come as "Authorization: DPoP <token>" with one proof of the bound
// key for this request (htm, htu, ath); as a Bearer token it is refused.
// An unbound token sent with the DPoP scheme is refused too, as the
// middleware does: the scheme says the token is bound, and it is not.
func (s *Server) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	token = strings.TrimSpace(token)
	dpop := strings.EqualFold(scheme, "DPoP")
	if (!dpop && !strings.EqualFold(scheme, "Bearer")) || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="devidp", DPoP realm="devidp", algs="`+strings.Join(DPoPAlgorithms, " ")+`"`)
		writeOAuthError(w, http.StatusUnauthorized, "invalid_request", "an access token in the Authorization header is required")
		return
	}
	var proof *checkedProof
	if dpop {
		raw, present, err := proofHeader(r)
		if err == nil && !present {
			err = badProof("the DPoP scheme needs a DPoP header")
		}
		if err == nil {
			proof, err = s.dpop.verify(raw, r.Method, s.dpop.userinfoHTU, token)
		}
		if err != nil {
			s.writeUserinfoDPoPError(w, r, err)
			return
		}
	}
	// fosite gotcha: IntrospectToken falls back to the other token type, so
	// a refresh token would pass unless the use is checked.
	use, ar, err := s.fosite.IntrospectToken(ctx, token, fosite.AccessToken, newSession())
	// A refusal's challenge names the scheme the request used (RFC 9449
	// §7.1), with the proof algorithms for DPoP.
	challenge := func(params string) string {
		if dpop {
			return `DPoP realm="devidp", ` + params + `, algs="` + strings.Join(DPoPAlgorithms, " ") + `"`
		}
		return `Bearer realm="devidp", ` + params
	}
	invalid := func(description string) {
		w.Header().Set("WWW-Authenticate", challenge(`error="invalid_token"`))
		writeOAuthError(w, http.StatusUnauthorized, "invalid_token", description)
	}
	if err != nil || use != fosite.AccessToken {
		invalid("the access token is invalid, expired or revoked")
		return
	}
	sess, _ := ar.GetSession().(*session)
	if sess == nil {
		writeOAuthError(w, http.StatusInternalServerError, "server_error", "")
		return
	}
	switch {
	case sess.DPoPJKT != "" && proof == nil:
		invalid("the access token is DPoP-bound: send it with the DPoP scheme and a proof")
		return
	case sess.DPoPJKT == "" && proof != nil:
		invalid("the access token is not DPoP-bound: send it with the Bearer scheme")
		return
	case sess.DPoPJKT != "" && sess.DPoPJKT != proof.jkt:
		invalid("the DPoP proof is not signed with the key the access token is bound to")
		return
	}
	if proof != nil {
		if err := s.dpop.record(s.dpop.userinfoReplay, proof); err != nil {
			s.writeUserinfoDPoPError(w, r, err)
			return
		}
	}
	if !ar.GetGrantedScopes().Has("openid") {
		w.Header().Set("WWW-Authenticate", challenge(`error="insufficient_scope", scope="openid"`))
		writeOAuthError(w, http.StatusForbidden, "insufficient_scope", "the access token lacks the openid scope")
		return
	}
	claims := map[string]any{"sub": sess.Subject}
	if u, ok := s.users[sess.Username]; ok {
		if ar.GetGrantedScopes().Has("profile") {
			claims["name"] = u.Name
			claims["preferred_username"] = u.Username
		}
		if ar.GetGrantedScopes().Has("email") && u.Email != "" {
			claims["email"] = u.Email
			claims["email_verified"] = true
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, claims)
}

// handleLogout is the end-session endpoint (OpenID Connect RP-Initiated
// Logout 1.0). There is no login session to end; it checks the
// post_logout_redirect_uri against the client's registered ones and
// redirects there with state, or shows "Signed out". The client is named by
// id_token_hint's aud or by client_id.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.renderMessage(w, http.StatusBadRequest, "Bad request", "The request could not be read.")
		return
	}
	clientID := r.Form.Get("client_id")
	if hint := r.Form.Get("id_token_hint"); hint != "" {
		aud, err := s.idTokenAudience(r, hint)
		if err != nil {
			s.renderMessage(w, http.StatusBadRequest, "Bad request", "id_token_hint is not an ID token from this server.")
			return
		}
		switch {
		case clientID == "" && len(aud) > 0:
			clientID = aud[0]
		case clientID != "" && !slices.Contains(aud, clientID):
			s.renderMessage(w, http.StatusBadRequest, "Bad request", "client_id does not match id_token_hint.")
			return
		}
	}
	target := r.Form.Get("post_logout_redirect_uri")
	if target == "" {
		s.renderMessage(w, http.StatusOK, "Signed out", "You are signed out. You can close this page.")
		return
	}
	c, ok := s.clients[clientID]
	if !ok || !slices.Contains(c.PostLogoutRedirectURIs, target) {
		s.renderMessage(w, http.StatusBadRequest, "Bad request", "post_logout_redirect_uri is not registered for this client (name the client with id_token_hint or client_id).")
		return
	}
	u, err := url.Parse(target)
	if err != nil {
		s.renderMessage(w, http.StatusBadRequest, "Bad request", "post_logout_redirect_uri is malformed.")
		return
	}
	if state := r.Form.Get("state"); state != "" {
		q := u.Query()
		q.Set("state", state)
		u.RawQuery = q.Encode()
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// idTokenAudience verifies an ID token's signature and issuer, accepting an
// expired one as the spec asks, and returns its audience.
func (s *Server) idTokenAudience(r *http.Request, raw string) ([]string, error) {
	tok, err := s.signer.Decode(r.Context(), raw)
	var ve *jwt.ValidationError
	if err != nil && !(errors.As(err, &ve) && ve.Errors == jwt.ValidationErrorExpired) {
		return nil, err
	}
	if tok == nil || tok.Claims == nil {
		return nil, errors.New("devidp: no claims")
	}
	if iss, _ := tok.Claims["iss"].(string); iss != s.cfg.Issuer {
		return nil, errors.New("devidp: foreign issuer")
	}
	switch aud := tok.Claims["aud"].(type) {
	case string:
		return []string{aud}, nil
	case []any:
		var out []string
		for _, a := range aud {
			if s, ok := a.(string); ok {
				out = append(out, s)
			}
		}
		return out, nil
	}
	return nil, errors.New("devidp: no audience")
}

// handleDiscovery serves the OpenID Connect discovery document, which is also
// the RFC 8414 authorization server metadata.
func (s *Server) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	iss := s.cfg.Issuer
	authMethods := []string{"client_secret_basic", "client_secret_post"}
	tokenAuthMethods := authMethods
	for _, c := range s.clients {
		if c.Public {
			tokenAuthMethods = append(slices.Clip(authMethods), "none")
			break
		}
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                iss + "/authorize",
		"token_endpoint":                        iss + "/token",
		"jwks_uri":                              iss + "/jwks",
		"introspection_endpoint":                iss + "/introspect",
		"revocation_endpoint":                   iss + "/revoke",
		"userinfo_endpoint":                     iss + "/userinfo",
		"end_session_endpoint":                  iss + "/logout",
		"token_endpoint_auth_methods_supported": tokenAuthMethods,
		"introspection_endpoint_auth_methods_supported": authMethods,
		"revocation_endpoint_auth_methods_supported":    authMethods,
		"code_challenge_methods_supported":              []string{"S256"},
		"response_types_supported":                      []string{"code"},
		"response_modes_supported":                      []string{"query"},
		"grant_types_supported":                         []string{"authorization_code", "refresh_token"},
		"scopes_supported":                              Scopes,
		"subject_types_supported":                       []string{"public"},
		"id_token_signing_alg_values_supported":         []string{"RS256"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "at_hash",
			"name", "preferred_username", "email", "email_verified"},
		"acr_values_supported":                           []string{ACRPassword, ACRTwoFactor},
		"authorization_response_iss_parameter_supported": true,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"claims_parameter_supported":                     false,
		"dpop_signing_alg_values_supported":              DPoPAlgorithms,
	})
}

// handleJWKS serves the public signing key (RFC 7517).
func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=60")
	writeJSON(w, http.StatusOK, s.jwks)
}

func (s *Server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	s.renderMessage(w, http.StatusOK, "Tollgate development authorization server",
		"DEVELOPMENT ONLY. Metadata: "+s.cfg.Issuer+"/.well-known/openid-configuration")
}

var messagePage = template.Must(template.New("message").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Title}} · Tollgate devidp</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:2rem auto;padding:0 1rem}.dev{background:#fde047;padding:.25rem .5rem;font-weight:700}</style></head>
<body><p class="dev">DEVELOPMENT ONLY: Tollgate devidp</p><h1>{{.Title}}</h1><p>{{.Text}}</p></body>
</html>
`))

func (s *Server) renderMessage(w http.ResponseWriter, status int, title, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = messagePage.Execute(w, map[string]string{"Title": title, "Text": text})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeOAuthError writes an RFC 6749 §5.2 style error body.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	body := map[string]string{"error": code}
	if description != "" {
		body["error_description"] = description
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, body)
}

package exchange

import (
	"errors"
	"net/http"
	"time"
)

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

func (s *Server) unauthorized(w http.ResponseWriter, detail string) {
	writeProblem(w, http.StatusUnauthorized, detail)
}

// handleMe answers who is signed in, from the session cookie. Two
// different session cookies sign the browser out.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
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
func (s *Server) handleConfig(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"todo_api_url": s.cfg.TodoAPIURL})
}

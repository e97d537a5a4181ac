package devidp

import (
	"crypto/subtle"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite"
)

// handleAuthorizeForm validates the authorization request with fosite and
// shows the login form. There is no login session to reuse, so prompt=none
// always answers login_required.
func (s *Server) handleAuthorizeForm(w http.ResponseWriter, r *http.Request) {
	ar, err := s.fosite.NewAuthorizeRequest(r.Context(), r)
	if err != nil {
		s.writeAuthorizeError(w, r, ar, err)
		return
	}
	if slices.Contains(strings.Fields(ar.GetRequestForm().Get("prompt")), "none") {
		s.writeAuthorizeError(w, r, ar, fosite.ErrLoginRequired.WithHint("This server keeps no login session."))
		return
	}
	s.renderLogin(w, r, ar, "", "")
}

// handleAuthorizeLogin checks the posted credentials and completes the
// authorization request carried in the URL's query (the form posts back to
// the very URL it was shown at).
func (s *Server) handleAuthorizeLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed form", http.StatusBadRequest)
		return
	}
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")

	// Hand fosite the authorization request alone, so that the password never
	// reaches its request form (which it partly stores).
	ar, err := s.fosite.NewAuthorizeRequest(ctx, authorizeRequestFromURL(r))
	if err != nil {
		s.writeAuthorizeError(w, r, ar, err)
		return
	}
	u, ok := s.users[username]
	if !ok || subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) != 1 {
		s.logger.InfoContext(ctx, "login failed", "username", username)
		s.renderLogin(w, r, ar, username, "Wrong username or password.")
		return
	}

	// Every requested scope was already checked against the client's, which
	// are all of Scopes: grant them all. Every access token is for Audience.
	for _, scope := range ar.GetRequestedScopes() {
		ar.GrantScope(scope)
	}
	ar.GrantAudience(s.cfg.Audience)

	sess := newUserSession(u, s.cfg.Issuer, ar.GetRequestedAt())
	if ar.GetGrantedScopes().Has("profile") {
		sess.Claims.Extra["name"] = u.Name
		sess.Claims.Extra["preferred_username"] = u.Username
	}
	if ar.GetGrantedScopes().Has("email") && u.Email != "" {
		sess.Claims.Extra["email"] = u.Email
		sess.Claims.Extra["email_verified"] = true
	}
	resp, err := s.fosite.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		s.writeAuthorizeError(w, r, ar, err)
		return
	}
	// RFC 9207: fosite does not send iss; we do, and say so in discovery.
	resp.AddParameter("iss", s.cfg.Issuer)
	s.logger.InfoContext(ctx, "login", "username", username, "client_id", ar.GetClient().GetID())
	s.fosite.WriteAuthorizeResponse(ctx, w, ar, resp)
}

func authorizeRequestFromURL(r *http.Request) *http.Request {
	fr := r.Clone(r.Context())
	fr.Method = http.MethodGet
	fr.Body = http.NoBody
	fr.ContentLength = 0
	fr.Header.Del("Content-Type")
	fr.Form, fr.PostForm, fr.MultipartForm = nil, nil, nil
	return fr
}

// writeAuthorizeError lets fosite answer: a redirect to the client when the
// redirect URI is valid, else a JSON error. Redirects get iss (RFC 9207).
func (s *Server) writeAuthorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	s.logOAuthError(r, err)
	s.fosite.WriteAuthorizeError(r.Context(), &issRedirectWriter{ResponseWriter: w, issuer: s.cfg.Issuer}, ar, err)
}

// issRedirectWriter adds iss to the authorization error response fosite
// redirects with, in the query or, for response_mode=fragment, the fragment.
type issRedirectWriter struct {
	http.ResponseWriter
	issuer string
}

func (w *issRedirectWriter) WriteHeader(code int) {
	if loc := w.Header().Get("Location"); code >= 300 && code < 400 && loc != "" {
		if u, err := url.Parse(loc); err == nil {
			if u.Fragment != "" {
				if v, err := url.ParseQuery(u.Fragment); err == nil && v.Get("iss") == "" {
					v.Set("iss", w.issuer)
					u.Fragment = v.Encode()
				}
			} else if q := u.Query(); q.Get("iss") == "" {
				q.Set("iss", w.issuer)
				u.RawQuery = q.Encode()
			}
			w.Header().Set("Location", u.String())
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · Tollgate development server</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f4f5;color:#18181b}
main{max-width:24rem;margin:2rem auto;padding:1.5rem;background:#fff;border-radius:.5rem;box-shadow:0 1px 3px #0002}
.dev{background:#fde047;padding:.25rem .5rem;font-weight:700;text-align:center}
label{display:block;margin:.75rem 0}
input{display:block;width:100%;box-sizing:border-box;padding:.5rem;font:inherit}
button{padding:.5rem 1rem;font:inherit;cursor:pointer}
.error{color:#b91c1c;font-weight:600}
code{background:#f4f4f5;padding:0 .25rem}
</style>
</head>
<body>
<p class="dev">DEVELOPMENT ONLY: Tollgate devidp</p>
<main>
<h1>Sign in</h1>
<p><strong>{{.ClientID}}</strong> asks for {{range .Scopes}}<code>{{.}}</code> {{end}}</p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<label>Username <input name="username" value="{{.Username}}" autocomplete="username" autocapitalize="none" required {{if not .Username}}autofocus{{end}}></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required {{if .Username}}autofocus{{end}}></label>
<button type="submit">Sign in</button>
</form>
<p>Demo users: {{range $i, $u := .Users}}{{if $i}}, {{end}}<code>{{$u.Username}}</code> / <code>{{$u.Password}}</code>{{end}}</p>
</main>
</body>
</html>
`))

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, username, problem string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	// No form-action: browsers apply it to the redirect that follows the
	// post, which goes to the client.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	_ = loginPage.Execute(w, map[string]any{
		"ClientID": ar.GetClient().GetID(),
		"Scopes":   ar.GetRequestedScopes(),
		"Error":    problem,
		"Action":   "?" + r.URL.RawQuery,
		"Username": username,
		"Users":    s.cfg.Users,
	})
}

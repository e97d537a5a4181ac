package devidp

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ory/fosite"
)

// handleAuthorizeForm validates the authorization request with fosite and
// shows the login form. There is no login session to reuse, so prompt=none
// always answers login_required, and every sign-in is a fresh one: any
// max_age is met.
func (s *Server) handleAuthorizeForm(w http.ResponseWriter, r *http.Request) {
	ar, err := s.newAuthorizeRequest(r)
	if err != nil {
		s.writeAuthorizeError(w, r, ar, err)
		return
	}
	if slices.Contains(strings.Fields(ar.GetRequestForm().Get("prompt")), "none") {
		s.writeAuthorizeError(w, r, ar, fosite.ErrLoginRequired.WithHint("This server keeps no login session."))
		return
	}
	s.renderLogin(w, r, ar, loginView{})
}

// newAuthorizeRequest has fosite read the authorization request, then
// checks max_age, which fosite reads leniently (a malformed value counts as
// none): OpenID Connect Core §3.1.2.1 makes it a non-negative integer.
func (s *Server) newAuthorizeRequest(r *http.Request) (fosite.AuthorizeRequester, error) {
	ar, err := s.fosite.NewAuthorizeRequest(r.Context(), r)
	if err != nil {
		return ar, err
	}
	if v, ok := ar.GetRequestForm()["max_age"]; ok {
		if len(v) != 1 || !isMaxAge(v[0]) {
			return ar, fosite.ErrInvalidRequest.WithHint("max_age must be a non-negative integer number of seconds.")
		}
	}
	return ar, nil
}

func isMaxAge(v string) bool {
	n, err := strconv.ParseUint(v, 10, 31)
	return err == nil && strconv.FormatUint(n, 10) == v
}

// wantedACR is the authentication context class the request's acr_values
// asks for: the first value, in the client's order of preference, that
// this server knows; ACRPassword when it names none (acr_values is a wish,
// OpenID Connect Core §3.1.2.1: the resource server judges the result).
func wantedACR(acrValues string) string {
	for _, v := range strings.Fields(acrValues) {
		if v == ACRPassword || v == ACRTwoFactor {
			return v
		}
	}
	return ACRPassword
}

// handleAuthorizeLogin checks the posted credentials and completes the
// authorization request carried in the URL's query (the form posts back to
// the very URL it was shown at). A request that wants ACRTwoFactor takes
// two posts: the password, answered with the second-step form carrying a
// signed proof that the password was right, then that proof with the code.
func (s *Server) handleAuthorizeLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "malformed form", http.StatusBadRequest)
		return
	}
	username := r.PostForm.Get("username")

	// Hand fosite the authorization request alone, so that the password never
	// reaches its request form (which it partly stores).
	ar, err := s.newAuthorizeRequest(authorizeRequestFromURL(r))
	if err != nil {
		s.writeAuthorizeError(w, r, ar, err)
		return
	}
	acr := wantedACR(ar.GetRequestForm().Get("acr_values"))
	u, known := s.users[username]

	if proof := r.PostForm.Get("proof"); proof != "" {
		// The second step.
		now := time.Now()
		if !known || !s.checkStepProof(proof, username, r.URL.RawQuery, now) || !s.steps.take(proof, now) {
			s.logger.InfoContext(ctx, "second step refused: proof invalid, expired, used or out of tries", "username", username)
			s.renderLogin(w, r, ar, loginView{Username: username, Error: "The sign-in took too long. Please sign in again."})
			return
		}
		if subtle.ConstantTimeCompare([]byte(u.SecondFactor), []byte(r.PostForm.Get("code"))) != 1 {
			s.logger.InfoContext(ctx, "second step failed", "username", username)
			s.renderLogin(w, r, ar, loginView{Username: username, Proof: proof, SecondStep: true, Code: u.SecondFactor, Error: "Wrong code."})
			return
		}
		// One completion per proof: what a real second factor allows.
		s.steps.finish(proof)
		s.completeLogin(w, r, ar, u, ACRTwoFactor)
		return
	}

	if !known || subtle.ConstantTimeCompare([]byte(u.Password), []byte(r.PostForm.Get("password"))) != 1 {
		s.logger.InfoContext(ctx, "login failed", "username", username)
		s.renderLogin(w, r, ar, loginView{Username: username, Error: "Wrong username or password."})
		return
	}
	if acr == ACRTwoFactor {
		proof := s.stepProof(username, r.URL.RawQuery, time.Now().Add(stepProofTTL))
		s.renderLogin(w, r, ar, loginView{Username: username, Proof: proof, SecondStep: true, Code: u.SecondFactor})
		return
	}
	s.completeLogin(w, r, ar, u, ACRPassword)
}

// completeLogin grants the request to u, authenticated now as acr says,
// and redirects to the client.
func (s *Server) completeLogin(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, u User, acr string) {
	ctx := r.Context()
	// Every requested scope was already checked against the client's, which
	// are all of Scopes: grant them all. Every access token is for Audience.
	for _, scope := range ar.GetRequestedScopes() {
		ar.GrantScope(scope)
	}
	ar.GrantAudience(s.cfg.Audience)

	sess := newUserSession(u, s.cfg.Issuer, ar.GetRequestedAt(), acr)
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
	s.logger.InfoContext(ctx, "login", "username", u.Username, "client_id", ar.GetClient().GetID(), "acr", acr)
	s.fosite.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// stepProofTTL is how long the second step may take.
const stepProofTTL = 5 * time.Minute

// Bounds of the second step: the tries one proof allows, and the proofs
// tracked at once (each follows a right password; past the bound the
// oldest is dropped, and with it its sign-in, which starts again).
const (
	maxStepTries  = 5
	maxStepProofs = 10000
)

// stepAttempts tracks the proofs of the second step in play: how many
// codes each has been tried with, and which have finished a sign-in.
// The proof itself stays stateless to check; this is what makes it
// single-use and bounds guessing, as a real second factor must.
type stepAttempts struct {
	mu    sync.Mutex
	tries map[string]stepEntry
}

type stepEntry struct {
	n       int // codes tried; maxStepTries+1 once finished
	expires time.Time
}

// take counts one code attempt with proof at now, reporting whether it may
// be tried: not finished, and not past maxStepTries.
func (a *stepAttempts) take(proof string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tries == nil {
		a.tries = map[string]stepEntry{}
	}
	e, ok := a.tries[proof]
	if !ok {
		if len(a.tries) >= maxStepProofs {
			a.prune(now)
		}
		e = stepEntry{expires: now.Add(stepProofTTL)}
	}
	if e.n >= maxStepTries {
		return false
	}
	e.n++
	a.tries[proof] = e
	return true
}

// finish marks proof used: no further code is tried with it.
func (a *stepAttempts) finish(proof string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e, ok := a.tries[proof]; ok {
		e.n = maxStepTries
		a.tries[proof] = e
	}
}

// prune drops the expired entries and, if still full, the one expiring
// first. Called with mu held.
func (a *stepAttempts) prune(now time.Time) {
	var oldest string
	for k, e := range a.tries {
		if !now.Before(e.expires) {
			delete(a.tries, k)
		} else if oldest == "" || e.expires.Before(a.tries[oldest].expires) {
			oldest = k
		}
	}
	if len(a.tries) >= maxStepProofs {
		delete(a.tries, oldest)
	}
}

// stepProof signs "username's password was right, for the authorization
// request with this query, until expires". The query holds the client's
// state, nonce and PKCE challenge, so the proof serves no other request.
func (s *Server) stepProof(username, rawQuery string, expires time.Time) string {
	exp := strconv.FormatInt(expires.Unix(), 10)
	return exp + "." + base64.RawURLEncoding.EncodeToString(s.stepMAC(username, rawQuery, exp))
}

func (s *Server) checkStepProof(proof, username, rawQuery string, now time.Time) bool {
	exp, mac, ok := strings.Cut(proof, ".")
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || !now.Before(time.Unix(sec, 0)) {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	return err == nil && hmac.Equal(got, s.stepMAC(username, rawQuery, exp))
}

func (s *Server) stepMAC(username, rawQuery, exp string) []byte {
	m := hmac.New(sha256.New, s.stepKey)
	for _, part := range []string{"devidp second step", username, rawQuery, exp} {
		m.Write([]byte(part))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
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
.step{background:#eff6ff;padding:.5rem .75rem;border-radius:.375rem}
code{background:#f4f4f5;padding:0 .25rem}
</style>
</head>
<body>
<p class="dev">DEVELOPMENT ONLY: Tollgate devidp</p>
<main>
{{if .SecondStep}}
<h1>Second step</h1>
<p class="step">Signing in as <strong>{{.Username}}</strong> for <strong>{{.ClientID}}</strong>, which asks for two-factor sign-in (<code>{{.ACR}}</code>).</p>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="username" value="{{.Username}}">
<input type="hidden" name="proof" value="{{.Proof}}">
<label>Code <input name="code" inputmode="numeric" autocomplete="one-time-code" required autofocus></label>
<button type="submit">Verify</button>
</form>
<p>Demo code: <code>{{.Code}}</code></p>
{{else}}
<h1>Sign in</h1>
<p><strong>{{.ClientID}}</strong> asks for {{range .Scopes}}<code>{{.}}</code> {{end}}</p>
{{if eq .ACR .TwoFactor}}<p class="step">This sign-in has two steps: your password, then a code (<code>{{.ACR}}</code>).</p>{{end}}
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<label>Username <input name="username" value="{{.Username}}" autocomplete="username" autocapitalize="none" required {{if not .Username}}autofocus{{end}}></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required {{if .Username}}autofocus{{end}}></label>
<button type="submit">Sign in</button>
</form>
<p>Demo users: {{range $i, $u := .Users}}{{if $i}}, {{end}}<code>{{$u.Username}}</code> / <code>{{$u.Password}}</code>{{end}}</p>
{{end}}
</main>
</body>
</html>
`))

// loginView is what a login page shows besides the request's own parts.
type loginView struct {
	Username string
	Error    string
	// SecondStep shows the code form, with Proof from the password step
	// and the user's Code as a demo hint.
	SecondStep bool
	Proof      string
	Code       string
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, v loginView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	// No form-action: browsers apply it to the redirect that follows the
	// post, which goes to the client.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	_ = loginPage.Execute(w, map[string]any{
		"ClientID":   ar.GetClient().GetID(),
		"Scopes":     ar.GetRequestedScopes(),
		"ACR":        wantedACR(ar.GetRequestForm().Get("acr_values")),
		"TwoFactor":  ACRTwoFactor,
		"Error":      v.Error,
		"Action":     "?" + r.URL.RawQuery,
		"Username":   v.Username,
		"SecondStep": v.SecondStep,
		"Proof":      v.Proof,
		"Code":       v.Code,
		"Users":      s.cfg.Users,
	})
}

package exchange

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// maxCookieBytes is the largest Set-Cookie (name, value and attributes) we
// write. RFC 6265 §6.1 asks browsers for at least 4096 bytes per cookie,
// and browsers drop, silently, what exceeds their limit.
const maxCookieBytes = 4096

// errCookieTooLarge is returned when a cookie would exceed maxCookieBytes.
var errCookieTooLarge = errors.New("exchange: cookie too large")

// Cookie base names; cookieNames adds the __Host- or __Secure- prefixes.
const (
	accessCookieBase  = "access_token"
	refreshCookieBase = "refresh_token"
	sessionCookieBase = "tg_session"
	txCookieBase      = "tg_tx_"
)

// Paths.
const (
	loginPath    = "/login"
	callbackPath = "/oauth-callback"
	refreshPath  = "/refreshtoken"
	mePath       = "/me"
	configPath   = "/config.json"
)

// cookieNames are the names in use, which depend on COOKIE_SECURE and
// COOKIE_DOMAIN:
//
//	access token  __Host-access_token (host-only) or __Secure-access_token (Domain=COOKIE_DOMAIN)
//	refresh token __Secure-refresh_token, Path=/refreshtoken
//	session       __Host-tg_session
//	transaction   __Host-tg_tx_<first 16 hex digits of SHA-256(state)>
//
// and without prefixes when COOKIE_SECURE=false.
type cookieNames struct {
	access, refresh, session, txPrefix string
}

func newCookieNames(secure bool, domain string) cookieNames {
	if !secure {
		return cookieNames{accessCookieBase, refreshCookieBase, sessionCookieBase, txCookieBase}
	}
	n := cookieNames{
		access:   "__Host-" + accessCookieBase,
		refresh:  "__Secure-" + refreshCookieBase,
		session:  "__Host-" + sessionCookieBase,
		txPrefix: "__Host-" + txCookieBase,
	}
	if domain != "" {
		n.access = "__Secure-" + accessCookieBase
	}
	return n
}

// txCookieName names the transaction cookie of the login attempt with this
// state.
func (n cookieNames) txCookieName(state string) string {
	sum := sha256.Sum256([]byte(state))
	return n.txPrefix + hex.EncodeToString(sum[:8])
}

// cookieSpec is where one kind of cookie lives; deleting a cookie needs the
// same Path, Domain and (for prefixed names) Secure as setting it.
type cookieSpec struct {
	name     string
	path     string
	domain   string
	sameSite http.SameSite
}

func (s *Server) accessSpec() cookieSpec {
	return cookieSpec{name: s.names.access, path: "/", domain: s.cfg.CookieDomain, sameSite: http.SameSiteLaxMode}
}

func (s *Server) refreshSpec() cookieSpec {
	return cookieSpec{name: s.names.refresh, path: refreshPath, sameSite: http.SameSiteStrictMode}
}

func (s *Server) sessionSpec() cookieSpec {
	return cookieSpec{name: s.names.session, path: "/", sameSite: http.SameSiteLaxMode}
}

// txSpec: SameSite=Lax so that the cookie comes back on the top-level
// redirect from the authorization server; Path=/ because __Host- requires it
// and /login must see the attempts in flight to cap them.
func (s *Server) txSpec(name string) cookieSpec {
	return cookieSpec{name: name, path: "/", sameSite: http.SameSiteLaxMode}
}

// cookie makes the Set-Cookie for spec with value and maxAge, refusing one
// that a browser would drop for its size.
func (s *Server) cookie(spec cookieSpec, value string, maxAge time.Duration) (*http.Cookie, error) {
	secs := int(maxAge / time.Second)
	if secs < 1 {
		secs = 1
	}
	c := &http.Cookie{
		Name:     spec.name,
		Value:    value,
		Path:     spec.path,
		Domain:   spec.domain,
		MaxAge:   secs,
		Secure:   !s.cfg.InsecureCookies,
		HttpOnly: true,
		SameSite: spec.sameSite,
	}
	if n := len(c.String()); n > maxCookieBytes {
		return nil, fmt.Errorf("%w: %s would be %d bytes, over the %d browsers keep", errCookieTooLarge, spec.name, n, maxCookieBytes)
	}
	return c, nil
}

// expire deletes the cookie described by spec.
func (s *Server) expire(w http.ResponseWriter, spec cookieSpec) {
	http.SetCookie(w, &http.Cookie{
		Name:     spec.name,
		Value:    "",
		Path:     spec.path,
		Domain:   spec.domain,
		MaxAge:   -1,
		Secure:   !s.cfg.InsecureCookies,
		HttpOnly: true,
		SameSite: spec.sameSite,
	})
}

// requestCookie returns the value of the named cookie. When a browser holds
// two cookies of one name (say a host-only one and a domain one) it sends
// both; only the first is read.
func requestCookie(r *http.Request, name string) (string, bool) {
	c, err := r.Cookie(name)
	if err != nil || c.Value == "" {
		return "", false
	}
	return c.Value, true
}

// txCookies lists the request's transaction cookies by name.
func (s *Server) txCookies(r *http.Request) []*http.Cookie {
	var out []*http.Cookie
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, s.names.txPrefix) {
			out = append(out, c)
		}
	}
	return out
}

// transaction is what one login attempt keeps in its cookie.
type transaction struct {
	State    string `json:"s"`
	Verifier string `json:"v"`
	Nonce    string `json:"n"`
	ReturnTo string `json:"r"`
	Created  int64  `json:"c"` // unix seconds
	Expires  int64  `json:"e"` // unix seconds
	// Retry is 1 for an attempt started by the automatic retry after an
	// invalid_grant at the callback, so that a second one cannot loop.
	Retry int `json:"t,omitempty"`
}

// session is what GET /me answers from, kept in the session cookie.
type session struct {
	Subject string `json:"sub"`
	Name    string `json:"name,omitempty"`
	Email   string `json:"email,omitempty"`
	// AccessExpires is when the access token cookie expires (unix seconds).
	AccessExpires int64 `json:"aexp"`
	// RefreshExpires is when the refresh token cookie expires, 0 without
	// one.
	RefreshExpires int64 `json:"rexp,omitempty"`
	// IDToken is the raw ID token for the end-session id_token_hint, left
	// out when it would make the cookie too large.
	IDToken string `json:"idt,omitempty"`
	// Expires is when this cookie expires (unix seconds).
	Expires int64 `json:"exp"`
}

// refreshCookie is the refresh token cookie's sealed content.
type refreshCookie struct {
	Token   string `json:"rt"`
	Expires int64  `json:"exp"`
}

// maxClaimLen bounds the name and email kept in the session cookie.
const maxClaimLen = 256

func truncateClaim(s string) string {
	if len(s) <= maxClaimLen {
		return s
	}
	s = s[:maxClaimLen]
	// Do not cut a UTF-8 sequence in half.
	for len(s) > 0 && s[len(s)-1]&0xC0 == 0x80 {
		s = s[:len(s)-1]
	}
	if len(s) > 0 && s[len(s)-1] >= 0xC0 {
		s = s[:len(s)-1]
	}
	return s
}

package exchange

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
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

// requestCookie returns the value of the named cookie, and nothing when the
// request carries two different values of it (see ambiguousCookies):
// guessing which one is ours is how a planted cookie gets read.
func requestCookie(r *http.Request, name string) (string, bool) {
	cs := r.CookiesNamed(name)
	if len(cs) == 0 || cs[0].Value == "" || len(ambiguousCookies(r, name)) > 0 {
		return "", false
	}
	return cs[0].Value, true
}

// ambiguousCookies returns those of names of which r carries two different
// values. A browser sends every cookie whose name, Domain and Path match,
// the longest Path first and then the oldest, so a second value means a
// second cookie set under another Domain= or Path=: typically planted by
// another host of the site (cookie tossing: any host under a parent domain
// may set Domain=<parent>), and often sent before ours. Which one is ours
// cannot be told, so the request is refused, as the middleware refuses two
// access token cookies. Identical values are one cookie sent twice, and
// harmless.
func ambiguousCookies(r *http.Request, names ...string) []string {
	var out []string
	for _, name := range names {
		cs := r.CookiesNamed(name)
		for _, c := range cs[min(1, len(cs)):] {
			if c.Value != cs[0].Value {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// The paths under which a cookie is read: one planted under any of them
// reaches the reader along with ours (a cookie is sent to its Path and
// below, and our routes are one segment long). The todo API's paths are
// not known here; "/" covers the usual planting.
var (
	accessReadPaths  = []string{"/"}
	refreshReadPaths = []string{"/", refreshPath}
	sessionReadPaths = []string{"/", refreshPath, mePath}
	txReadPaths      = []string{"/", callbackPath, loginPath}
)

// plantDomains lists the Domain= values under which hosts of the site can
// set cookies that browsers send to host, the exchange's public host (from
// REDIRECT_URL; not the Host header, which a proxy may rewrite and a client
// may forge): host itself (its subdomains can set it), each parent domain
// of it with at least two labels, and cookieDomain (even of one label, as
// "localhost"). Without a public suffix list, one-label parents ("com",
// "localhost") are left out unless configured; a longer public suffix
// ("co.uk") is named in vain, browsers ignore a Set-Cookie for it. None for
// an IP address, which has no parents and takes no Domain=.
func plantDomains(host, cookieDomain string) []string {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "" || net.ParseIP(host) != nil {
		return nil
	}
	var ds []string
	for d := host; ; {
		ds = append(ds, d)
		_, parent, ok := strings.Cut(d, ".")
		if !ok || !strings.Contains(parent, ".") {
			break
		}
		d = parent
	}
	if cd := strings.TrimSuffix(strings.ToLower(cookieDomain), "."); cd != "" && !slices.Contains(ds, cd) {
		ds = append(ds, cd)
	}
	return ds
}

// expirePlanted deletes the cookies of spec's name that another host of
// the site could have planted: Domain= each of s.plantDomains, at each of
// paths, except where spec itself lives (expire deletes that one). A
// __Host- name has none: browsers refuse it a Domain= or a Path other than
// "/". Answers write these before their own cookies: a browser that files
// a Domain= equal to the host as the host-only cookie (as RFC 6265 §5.3
// reads) then still ends with ours.
func (s *Server) expirePlanted(w http.ResponseWriter, spec cookieSpec, paths []string) {
	if strings.HasPrefix(spec.name, "__Host-") {
		return
	}
	for _, d := range s.plantDomains {
		for _, p := range paths {
			if strings.EqualFold(d, spec.domain) && p == spec.path {
				continue
			}
			v := spec
			v.domain, v.path = d, p
			s.expire(w, v)
		}
	}
}

// expireAllPlanted deletes the planted copies of the access, refresh and
// session cookies that expirePlanted can name.
func (s *Server) expireAllPlanted(w http.ResponseWriter) {
	s.expirePlanted(w, s.accessSpec(), accessReadPaths)
	s.expirePlanted(w, s.refreshSpec(), refreshReadPaths)
	s.expirePlanted(w, s.sessionSpec(), sessionReadPaths)
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
	// ACRValues and MaxAge are the step-up parameters (RFC 9470 §4) the
	// attempt asked for, validated, "" when none: a retry asks again.
	ACRValues string `json:"a,omitempty"`
	MaxAge    string `json:"m,omitempty"`
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
	// Subject is the sub of the user the token was issued to. A refresh
	// answer need not carry an ID token (OpenID Connect Core §12.2), so
	// without it nothing would tie the token to the session's user: a
	// refresh cookie of someone else (planted) would hand the browser that
	// person's access token while /me still named the user. Cookies sealed
	// without it are refused at refresh.
	Subject string `json:"sub"`
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

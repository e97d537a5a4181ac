package middleware

import (
	"net/http"
	"slices"
	"strings"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// CSRFHeader is the request header a cookie-borne token must come with. A
// custom header cannot be sent cross-site without a CORS preflight, so its
// presence shows the request was made by a page the API trusts.
const CSRFHeader = "X-CSRF"

var (
	errTwoHeaders = newErr(ErrMalformed, ReasonMalformed, "more than one Authorization header", nil)
	errScheme     = newErr(ErrMalformed, ReasonMalformed, "authorization scheme must be Bearer", nil)
	errSyntax     = newErr(ErrMalformed, ReasonMalformed, "malformed Bearer credentials", nil)
	errQuery      = newErr(ErrMalformed, ReasonMalformed, "access tokens are not accepted in the query string", nil)
	errTwoCookies = newErr(ErrMalformed, ReasonMalformed, "more than one access token cookie", nil)
	errNoCSRF     = newErr(ErrMalformed, ReasonCSRF, "a cookie-borne token needs the X-CSRF: 1 header", nil)
	errOrigin     = newErr(ErrMalformed, ReasonCSRF, "request origin is not allowed to use a cookie-borne token", nil)
	errNoToken    = newErr(ErrNoToken, ReasonNoToken, "no access token", nil)
	errTooLarge   = newErr(ErrInvalidToken, ReasonTooLarge, "token too large", nil)
)

// extract finds the request's access token: the Authorization header, else
// the first configured cookie present. Cookie-borne tokens are accepted
// only with the CSRF header, and on unsafe methods only from an allowed
// Origin. Tokens in the query string are refused, never read.
//
// With DPoP on, the Authorization header may use the DPoP scheme instead of
// Bearer (RFC 9449 §7.1); dpop reports it. With DPoP off, the DPoP scheme
// is refused as any other scheme is.
func (a *Authenticator) extract(r *http.Request) (tok string, src principal.Source, dpop bool, err error) {
	if r.URL != nil && r.URL.RawQuery != "" && r.URL.Query().Has("access_token") {
		return "", "", false, errQuery
	}
	// Indexed by the canonical name, as net/http stores it: Values would
	// canonicalise the name again on every request.
	if hs := r.Header[authorizationHeader]; len(hs) > 0 {
		if len(hs) > 1 {
			return "", "", false, errTwoHeaders
		}
		// The b64token alphabet is checked by authenticate, and only for
		// tokens the cache does not know: a cached token passed it before.
		if a.dpop != nil {
			tok, dpop = splitDPoP(hs[0])
		}
		if !dpop {
			tok, err = splitBearer(hs[0])
			if err != nil {
				return "", "", false, err
			}
		} else if tok == "" {
			return "", "", true, errSyntax
		}
		if len(tok) > a.cfg.MaxTokenBytes {
			return "", principal.SourceHeader, dpop, errTooLarge
		}
		return tok, principal.SourceHeader, dpop, nil
	}
	for _, name := range a.cfg.CookieNames {
		var found []string
		for _, c := range r.CookiesNamed(name) {
			found = append(found, c.Value)
		}
		if len(found) == 0 {
			continue
		}
		// Two cookies of one name mean someone planted one (cookie tossing
		// from a sibling domain): refuse rather than guess.
		if len(found) > 1 && slices.ContainsFunc(found[1:], func(v string) bool { return v != found[0] }) {
			return "", principal.SourceCookie, false, errTwoCookies
		}
		tok := found[0]
		if tok == "" {
			continue
		}
		if r.Header.Get(CSRFHeader) != "1" {
			return "", principal.SourceCookie, false, errNoCSRF
		}
		if !safeMethod(r.Method) && !a.originAllowed(r.Header.Get("Origin")) {
			return "", principal.SourceCookie, false, errOrigin
		}
		if len(tok) > a.cfg.MaxTokenBytes {
			return "", principal.SourceCookie, false, errTooLarge
		}
		return tok, principal.SourceCookie, false, nil
	}
	return "", "", false, errNoToken
}

// authorizationHeader is the Authorization header's canonical name.
const authorizationHeader = "Authorization"

// bearerPrefix is the usual start of a Bearer Authorization header.
const bearerPrefix = "Bearer "

// splitDPoP returns the token of "DPoP <token>" (scheme case-insensitive)
// and true, or false for another scheme.
func splitDPoP(h string) (string, bool) {
	scheme, rest, _ := strings.Cut(h, " ")
	if !asciiEqualFold(scheme, "dpop") {
		return "", false
	}
	return strings.TrimLeft(rest, " "), true
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func (a *Authenticator) originAllowed(origin string) bool {
	return origin != "" && origin != "null" && slices.Contains(a.cfg.AllowedOrigins, origin)
}

// parseBearer parses "Bearer <b64token>" (RFC 6750 §2.1): the scheme is
// case-insensitive, followed by one or more spaces and a token of the
// b64token alphabet with no trailing garbage.
func parseBearer(h string) (string, error) {
	tok, err := splitBearer(h)
	if err != nil {
		return "", err
	}
	if !isB64Token(tok) {
		return "", errSyntax
	}
	return tok, nil
}

// splitBearer is parseBearer without the check of the token's alphabet.
func splitBearer(h string) (string, error) {
	// The spelling nearly every client sends, answered without the
	// general path's search and case folding (a sixth of a cache hit's
	// own cost went to them); the result is the same.
	if len(h) > len(bearerPrefix) && h[:len(bearerPrefix)] == bearerPrefix && h[len(bearerPrefix)] != ' ' {
		return h[len(bearerPrefix):], nil
	}
	return splitScheme(h)
}

// splitScheme is splitBearer for any spelling of the scheme.
func splitScheme(h string) (string, error) {
	scheme, rest, _ := strings.Cut(h, " ")
	if !asciiEqualFold(scheme, "bearer") {
		if isToken68Scheme(scheme) {
			return "", errScheme // another scheme, such as Basic
		}
		return "", errSyntax
	}
	tok := strings.TrimLeft(rest, " ")
	if tok == "" {
		return "", errSyntax
	}
	return tok, nil
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// isToken68Scheme reports whether s looks like an auth-scheme (an HTTP token).
func isToken68Scheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '+' || c == '!' || c == '#' || c == '$' || c == '%' || c == '&' || c == '\'' || c == '*' || c == '^' || c == '`' || c == '|' || c == '~') {
			return false
		}
	}
	return s != ""
}

// b64tokenChars marks the bytes of RFC 6750's b64token alphabet.
var b64tokenChars = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-._~+/" {
		t[c] = true
	}
	return t
}()

// isB64Token reports whether s matches RFC 6750's
// b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	n := len(s)
	for n > 0 && s[n-1] == '=' {
		n--
	}
	if n == 0 {
		return false
	}
	for i := 0; i < n; i++ {
		if !b64tokenChars[s[i]] {
			return false
		}
	}
	return true
}

package middleware

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// maxOriginBytes bounds a configured origin: a DNS name is at most 253
// bytes, so anything much longer is not an origin.
const maxOriginBytes = 300

// NormalizeOrigin returns the origin o as browsers write it in the Origin
// header (RFC 6454 §6.2, serialised as the WHATWG URL standard does):
// scheme and host in lower case, no port when it is the scheme's default
// (80 for http, 443 for https), no trailing slash. Surrounding spaces and
// one trailing slash are dropped, since people paste URLs. Config.
// AllowedOrigins goes through it; pass a CORS library the same results,
// or a page whose origin one of them accepts is refused by the other.
//
// It refuses, with an error saying why, anything but http(s)://host[:port]:
// a path, query, fragment or userinfo, a wildcard, "null" (the origin of
// sandboxed frames and file pages, which any page can make), a port out of
// range, and hosts with characters browsers would encode or rewrite
// (write an international name in its xn-- form).
func NormalizeOrigin(o string) (string, error) {
	s := strings.TrimSpace(o)
	bad := func(why string) (string, error) {
		shown := s
		if len(shown) > 80 {
			shown = shown[:80] + "…"
		}
		return "", fmt.Errorf("%q is not an origin like https://app.example.com: %s", shown, why)
	}
	switch {
	case s == "":
		return bad("it is empty")
	case len(s) > maxOriginBytes:
		return bad("it is too long")
	case strings.EqualFold(s, "null"):
		return bad(`"null" is sent by sandboxed frames and file pages, which anyone can make`)
	case strings.Contains(s, "*"):
		return bad("wildcards are not supported; list each origin")
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return bad("it has spaces, control or non-ASCII characters (write an international name in its xn-- form)")
		}
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return bad("it has no scheme (http:// or https://)")
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return bad("the scheme must be http or https")
	}
	rest = strings.TrimSuffix(rest, "/")
	switch {
	case strings.Contains(rest, "?"):
		return bad("it has a query")
	case strings.Contains(rest, "#"):
		return bad("it has a fragment")
	case strings.Contains(rest, "@"):
		return bad("it has userinfo")
	case strings.ContainsAny(rest, "/\\"):
		return bad("it has a path")
	}
	host, port, err := splitHostPort(rest)
	if err != nil {
		return bad(err.Error())
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}

// splitHostPort splits host[:port] and returns both in their canonical
// form: the host in lower case (an IPv6 literal compressed, in brackets)
// and the port in decimal without leading zeros, empty when absent.
func splitHostPort(hp string) (host, port string, err error) {
	if strings.HasPrefix(hp, "[") {
		end := strings.IndexByte(hp, ']')
		if end < 0 {
			return "", "", errors.New("its IPv6 address has no closing ]")
		}
		a, err := netip.ParseAddr(hp[1:end])
		if err != nil || !a.Is6() || a.Zone() != "" || a.Is4In6() {
			return "", "", errors.New("its host is not an IPv6 address")
		}
		host, hp = "["+a.String()+"]", hp[end+1:]
		if hp != "" && hp[0] != ':' {
			return "", "", errors.New("its IPv6 address is followed by something other than a port")
		}
	} else {
		name, p, found := strings.Cut(hp, ":")
		hp = ""
		if found {
			hp = ":" + p
		}
		if host, err = canonicalHost(name); err != nil {
			return "", "", err
		}
	}
	if hp == "" {
		return host, "", nil
	}
	digits := hp[1:]
	if digits == "" {
		return host, "", nil // "http://a:" is "http://a" to browsers
	}
	if len(digits) > 5 || strings.Trim(digits, "0123456789") != "" {
		return "", "", errors.New("its port is not a number from 1 to 65535")
	}
	n, _ := strconv.Atoi(digits)
	if n < 1 || n > 65535 {
		return "", "", errors.New("its port is not a number from 1 to 65535")
	}
	return host, strconv.Itoa(n), nil
}

// canonicalHost lower-cases a DNS name or IPv4 address and refuses what a
// browser would rewrite to something else, so that the result is what the
// browser sends.
func canonicalHost(name string) (string, error) {
	name = strings.ToLower(name)
	if name == "" {
		return "", errors.New("it has no host")
	}
	if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-._") != "" {
		return "", errors.New("its host has characters other than letters, digits, '-', '_' and '.'")
	}
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	for _, l := range labels {
		if l == "" {
			return "", errors.New("its host has an empty label")
		}
	}
	// Browsers read a name whose last label is a number as an IPv4
	// address and rewrite short or hex forms (127.1, 0x7f.0.0.1): accept
	// the dotted-quad form only.
	last := labels[len(labels)-1]
	if strings.Trim(last, "0123456789") == "" || strings.HasPrefix(last, "0x") {
		a, err := netip.ParseAddr(name)
		if err != nil || !a.Is4() || a.String() != name {
			return "", errors.New("its host is neither a name nor an IPv4 address in dotted-quad form")
		}
	}
	return name, nil
}

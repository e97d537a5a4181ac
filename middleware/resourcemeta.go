package middleware

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// WellKnownResourceMetadata is the well-known URI string of RFC 9728 §3,
// inserted into a resource identifier to form the URL of its metadata.
const WellKnownResourceMetadata = "/.well-known/oauth-protected-resource"

// ResourceMetadataMaxAge is how long clients and shared caches may keep the
// metadata document (Cache-Control max-age, RFC 9728 §7.10). The document
// changes only with the configuration; a client that meets a challenge
// after a change fetches it again (§5.2), and the ETag makes that cheap.
const ResourceMetadataMaxAge = time.Hour

// maxResourceLen bounds Resource and the other URLs of ResourceMetadata:
// they travel in every challenge.
const maxResourceLen = 2048

// ResourceMetadata describes the protected resource for OAuth 2.0 Protected
// Resource Metadata (RFC 9728). When Config.ResourceMetadata is set, the
// Authenticator serves the document (ResourceMetadataHandler) and every
// Bearer challenge it writes carries resource_metadata with the document's
// URL (§5.1), so that a client that knows nothing of the API finds its
// authorization server from a 401.
//
// Only parameters that describe what this middleware really does are
// served: bearer_methods_supported is always ["header"] (see
// BearerMethodsSupported); with Config.DPoP on,
// dpop_signing_alg_values_supported is Config.DPoPAlgorithms and, in
// DPoPRequired, dpop_bound_access_tokens_required is true; nothing is said
// of mutual-TLS bound tokens, which it refuses.
type ResourceMetadata struct {
	// Resource is the resource identifier (RFC 9728 §1.2, RFC 8707): an
	// absolute https URL with a host name (and a port from 1 to 65535, if
	// any) and no fragment, which clients request tokens
	// for, typically the API's base URL ("https://api.example.com") or an
	// MCP server's endpoint ("https://mcp.example.com/mcp"). Plain http is
	// accepted for loopback hosts only (localhost, 127.0.0.0/8, [::1]),
	// for development. It is served exactly as written, since clients
	// compare it exactly (§3.3, §6). Its path may hold only letters,
	// digits, "-", ".", "_", "~" and "/" (no empty, "." or ".."
	// segment), so that the well-known path is the same for every router;
	// a query is allowed (printable ASCII) but RFC 8707 discourages it.
	// Required.
	Resource string
	// AuthorizationServers are the issuer identifiers (RFC 8414) of the
	// authorization servers whose tokens the resource accepts; default
	// Config.Issuer, or the Issuer of each of Config.Issuers (none for the
	// issuers an IssuerResolver trusts: list those here). Each is an https
	// URL (http for loopback hosts) with no query or fragment.
	AuthorizationServers []string
	// ScopesSupported are the scopes clients request for the resource
	// (RECOMMENDED by RFC 9728 §2); default none. Only what the resource is
	// willing to disclose (§7.2).
	ScopesSupported []string
	// ResourceName is a human-readable name of the resource for end users
	// (resource_name, RECOMMENDED); default none.
	ResourceName string
	// ResourceDocumentation is the URL of human-readable documentation
	// for developers (resource_documentation); default none.
	ResourceDocumentation string
	// ResourcePolicyURI and ResourceTOSURI are the URLs of the resource's
	// data-use policy and terms of service; default none.
	ResourcePolicyURI string
	ResourceTOSURI    string
	// ResourceSigningAlgValuesSupported are the JWS algorithms the
	// resource signs its *responses* with (resource_signing_alg_values_
	// supported, e.g. for FAPI message signing). It is not the list of
	// algorithms accepted for access tokens (Config.Algorithms): those are
	// the authorization server's business. This middleware signs no
	// response, so leave it empty unless the application does. "none" is
	// refused (§2).
	ResourceSigningAlgValuesSupported []string
}

// BearerMethodsSupported returns bearer_methods_supported as served:
// ["header"], the RFC 6750 §2.1 Authorization request header, the only one
// of the three RFC 6750 methods this middleware accepts (never the form
// body, §2.2, nor the query, §2.3). A token read from a cookie
// (Config.CookieNames) is not an RFC 6750 method and has no value in the
// registry; it serves the same-site browser page of a backend-for-frontend,
// not the OAuth clients that read this document, so it is not named.
func BearerMethodsSupported() []string { return []string{"header"} }

// resourceDocument is the RFC 9728 §2 JSON object. Parameters with no
// value are omitted, as §3.2 requires.
type resourceDocument struct {
	Resource                          string   `json:"resource"`
	AuthorizationServers              []string `json:"authorization_servers,omitempty"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported            []string `json:"bearer_methods_supported,omitempty"`
	ResourceSigningAlgValuesSupported []string `json:"resource_signing_alg_values_supported,omitempty"`
	ResourceName                      string   `json:"resource_name,omitempty"`
	ResourceDocumentation             string   `json:"resource_documentation,omitempty"`
	ResourcePolicyURI                 string   `json:"resource_policy_uri,omitempty"`
	ResourceTOSURI                    string   `json:"resource_tos_uri,omitempty"`
	DPoPSigningAlgValuesSupported     []string `json:"dpop_signing_alg_values_supported,omitempty"`
	DPoPBoundAccessTokensRequired     bool     `json:"dpop_bound_access_tokens_required,omitempty"`
}

// resourceMeta is a validated ResourceMetadata, ready to serve.
type resourceMeta struct {
	url   string // the metadata URL, for challenges
	path  string // its path, where the handler answers
	query string // its query, "" for none
	body  []byte
	etag  string
}

// ResourceMetadataURL derives the URL of the metadata of the resource
// identifier resource, as RFC 9728 §3 says: the well-known string
// inserted between the host and the path, a terminating "/" of the path
// removed first (§3.1), the query kept. It also returns the URL's path and
// query. It reports an error for a resource identifier that
// ResourceMetadata.Resource does not accept.
//
//	https://api.example.com       → https://api.example.com/.well-known/oauth-protected-resource
//	https://api.example.com/      → https://api.example.com/.well-known/oauth-protected-resource
//	https://mcp.example.com/mcp   → https://mcp.example.com/.well-known/oauth-protected-resource/mcp
//	https://example.com/a/b/?t=1  → https://example.com/.well-known/oauth-protected-resource/a/b?t=1
func ResourceMetadataURL(resource string) (metadataURL, path, query string, err error) {
	scheme, authority, p, q, err := splitResource(resource)
	if err != nil {
		return "", "", "", err
	}
	path = WellKnownResourceMetadata + strings.TrimSuffix(p, "/")
	metadataURL = scheme + "://" + authority + path
	if q != "" {
		metadataURL += "?" + q
	}
	return metadataURL, path, q, nil
}

// splitResource checks a resource identifier and returns its parts as
// written: the lower-case scheme, the authority, the path and the query.
func splitResource(resource string) (scheme, authority, path, query string, err error) {
	if resource == "" {
		return "", "", "", "", errors.New("is required")
	}
	if len(resource) > maxResourceLen {
		return "", "", "", "", fmt.Errorf("longer than %d bytes", maxResourceLen)
	}
	for i := 0; i < len(resource); i++ {
		// Printable ASCII, nothing a quoted challenge parameter cannot
		// carry as it is (RFC 6750 §3): the URL in every challenge and the
		// document's resource must be the very string configured.
		if c := resource[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return "", "", "", "", fmt.Errorf("%q holds a character outside printable ASCII, a space, '\"' or '\\' (percent-encode it)", resource)
		}
	}
	if strings.Contains(resource, "#") {
		return "", "", "", "", fmt.Errorf("%q has a fragment; a resource identifier has none (RFC 9728 §1.2)", resource)
	}
	u, perr := url.Parse(resource)
	switch {
	case perr != nil:
		return "", "", "", "", fmt.Errorf("%q is not a URL", resource)
	case strings.HasPrefix(resource, "https://"):
		scheme = "https"
	case strings.HasPrefix(resource, "http://"):
		scheme = "http"
		if !isLoopbackHost(u.Hostname()) {
			return "", "", "", "", fmt.Errorf("%q is not https; plain http is accepted for loopback hosts only", resource)
		}
	default:
		return "", "", "", "", fmt.Errorf("%q is not an absolute https URL (written in lower case)", resource)
	}
	if u.User != nil || !hostAndPort(u) {
		return "", "", "", "", fmt.Errorf("%q needs a host, a port from 1 to 65535 if any, and no user information", resource)
	}
	rest := resource[len(scheme)+len("://"):]
	end := strings.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	authority = rest[:end]
	pq := rest[end:]
	path, query, hasQuery := strings.Cut(pq, "?")
	if hasQuery && query == "" {
		return "", "", "", "", fmt.Errorf("%q has an empty query", resource)
	}
	if !isResourcePath(path) {
		return "", "", "", "", fmt.Errorf("%q: its path may hold only letters, digits, '-', '.', '_', '~' and '/', with no empty, '.' or '..' segment", resource)
	}
	return scheme, authority, path, query, nil
}

// isResourcePath reports whether p is "" or "/" or a path of unreserved
// characters (RFC 3986 §2.3) whose segments are neither empty nor dots,
// with at most a terminating "/". Such a path reads the same escaped and
// unescaped, and no router takes it for a pattern.
func isResourcePath(p string) bool {
	if p == "" || p == "/" {
		return true
	}
	if p[0] != '/' {
		return false
	}
	segs := strings.Split(strings.TrimSuffix(p[1:], "/"), "/")
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return false
		}
		for i := 0; i < len(s); i++ {
			c := s[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
				return false
			}
		}
	}
	return true
}

// hostAndPort reports whether u has a host name and, if it has a port, one
// a client can dial: url.Parse takes "https://:443" (no host) and
// "https://h:" or "https://h:0" (no port) as they are.
func hostAndPort(u *url.URL) bool {
	if u.Hostname() == "" {
		return false
	}
	rest := u.Host
	if i := strings.LastIndexByte(rest, ']'); i >= 0 {
		rest = rest[i+1:] // after an IPv6 literal
	}
	_, port, hasPort := strings.Cut(rest, ":")
	if !hasPort {
		return true
	}
	n, err := strconv.Atoi(port)
	return err == nil && port[0] != '+' && 1 <= n && n <= 65535
}

// isLoopbackHost reports whether h (without port or brackets) names this
// machine: localhost or a loopback address.
func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// checkServerURL checks an issuer identifier of AuthorizationServers: an
// https URL (http for loopback hosts) with no query or fragment (RFC 8414
// §2).
func checkServerURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !hostAndPort(u) || u.User != nil || u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "#") {
		return fmt.Errorf("%q is not an issuer identifier (an https URL with a host and no query or fragment)", raw)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname())) {
		return fmt.Errorf("%q is not https; plain http is accepted for loopback hosts only", raw)
	}
	return nil
}

// dpopMeta is what the document says of DPoP (RFC 9728 §2, from RFC 9449):
// taken from Config, like bearer_methods_supported, not set by hand, so
// the document cannot disagree with what Require does.
type dpopMeta struct {
	algs     []string // nil with DPoP disabled
	required bool
}

// build validates m, fills its defaults from the issuers and the DPoP
// settings, and renders the document.
func (m *ResourceMetadata) build(issuers []string, dpop dpopMeta) (*resourceMeta, error) {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("middleware: ResourceMetadata."+format, args...))
	}
	metaURL, path, query, err := ResourceMetadataURL(m.Resource)
	if err != nil {
		add("Resource: %w", err)
	}
	servers := slices.Clone(m.AuthorizationServers)
	if len(servers) == 0 {
		servers = issuers
	}
	for _, s := range servers {
		if err := checkServerURL(s); err != nil {
			add("AuthorizationServers: %w", err)
		}
	}
	for _, s := range m.ScopesSupported {
		if !isScopeToken(s) {
			add("ScopesSupported: %q is not a scope (RFC 6749 §3.3: printable ASCII, no space, '\"' or '\\')", s)
		}
	}
	for _, f := range []struct{ name, v string }{
		{"ResourceDocumentation", m.ResourceDocumentation},
		{"ResourcePolicyURI", m.ResourcePolicyURI},
		{"ResourceTOSURI", m.ResourceTOSURI},
	} {
		if f.v == "" {
			continue
		}
		if err := checkHTTPURL(f.v); err != nil || len(f.v) > maxResourceLen {
			add("%s: %q is not an absolute http(s) URL", f.name, f.v)
		}
	}
	for _, alg := range m.ResourceSigningAlgValuesSupported {
		if alg == "" || strings.EqualFold(alg, "none") {
			add(`ResourceSigningAlgValuesSupported: %q is not allowed (RFC 9728 §2: never "none")`, alg)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	doc := resourceDocument{
		Resource:                          m.Resource,
		AuthorizationServers:              servers,
		ScopesSupported:                   slices.Clone(m.ScopesSupported),
		BearerMethodsSupported:            BearerMethodsSupported(),
		ResourceSigningAlgValuesSupported: slices.Clone(m.ResourceSigningAlgValuesSupported),
		ResourceName:                      m.ResourceName,
		ResourceDocumentation:             m.ResourceDocumentation,
		ResourcePolicyURI:                 m.ResourcePolicyURI,
		ResourceTOSURI:                    m.ResourceTOSURI,
		DPoPSigningAlgValuesSupported:     slices.Clone(dpop.algs),
		DPoPBoundAccessTokensRequired:     dpop.required,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// The resource is compared as a string (RFC 9728 §6): keep '&' and
	// the like as they are rather than as \u0026, which is equal after
	// unescaping but harder to read.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("middleware: ResourceMetadata: %w", err)
	}
	sum := sha256.Sum256(buf.Bytes())
	return &resourceMeta{
		url: metaURL, path: path, query: query,
		body: buf.Bytes(), etag: `"` + hex.EncodeToString(sum[:16]) + `"`,
	}, nil
}

// isScopeToken reports whether s is a scope-token of RFC 6749 §3.3 that
// a quoted challenge parameter carries as it is.
func isScopeToken(s string) bool {
	if s == "" || len(s) > maxResourceLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// ResourceMetadataURL returns the URL of the resource's metadata document,
// the value of resource_metadata in every challenge; "" when
// Config.ResourceMetadata is not set.
func (a *Authenticator) ResourceMetadataURL() string {
	if a.meta == nil {
		return ""
	}
	return a.meta.url
}

// ResourceMetadataPath returns the path at which ResourceMetadataHandler
// serves the document, for a router: "/.well-known/oauth-protected-resource"
// followed by the resource identifier's path, if any; "" when
// Config.ResourceMetadata is not set.
func (a *Authenticator) ResourceMetadataPath() string {
	if a.meta == nil {
		return ""
	}
	return a.meta.path
}

// ResourceMetadataHandler returns the handler of the RFC 9728 metadata
// document. It answers at ResourceMetadataURL's path and query only, which
// RFC 9728 §3 derives from the resource identifier, so the document's
// resource is always the identifier the URL was made from (§3.3); any other
// path is 404, as is every path when Config.ResourceMetadata is not set.
// Mount it at ResourceMetadataPath, or in front of the other routes: it
// reads the path, not the host, since a proxy may change the latter.
//
// GET and HEAD get 200 with Content-Type application/json, a CORS
// preflight (OPTIONS with Access-Control-Request-Method) 204; other
// methods 405 with Allow. The document is the same for everyone and public, so the
// answer allows any origin to read it (a browser-based client discovers
// the resource too), may be kept by shared caches for
// ResourceMetadataMaxAge, and has an ETag for cheap revalidation; it is
// always sent whole (Range is ignored).
func (a *Authenticator) ResourceMetadataHandler() http.Handler {
	return http.HandlerFunc(a.serveResourceMetadata)
}

func (a *Authenticator) serveResourceMetadata(w http.ResponseWriter, r *http.Request) {
	m := a.meta
	h := w.Header()
	if m == nil || r.URL.Path != m.path || r.URL.RawQuery != m.query {
		h.Set("Cache-Control", "no-store")
		writeProblem(w, http.StatusNotFound, "no such resource", "")
		return
	}
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		// A CORS preflight: a browser-based client (an MCP client sends
		// MCP-Protocol-Version) asks before its GET. Any origin, any
		// header, never credentials: the document is public.
		if h.Get("Access-Control-Allow-Origin") == "" {
			h.Set("Access-Control-Allow-Origin", "*")
			h.Set("Access-Control-Allow-Methods", "GET, HEAD")
			h.Set("Access-Control-Allow-Headers", "*")
			h.Set("Access-Control-Max-Age", strconv.Itoa(int(ResourceMetadataMaxAge/time.Second)))
		}
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		h.Set("Cache-Control", "no-store")
		writeProblem(w, http.StatusMethodNotAllowed, "method not allowed on this resource", "")
		return
	}
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(ResourceMetadataMaxAge/time.Second)))
	if h.Get("Access-Control-Allow-Origin") == "" {
		// A CORS middleware in front that has answered already keeps its
		// word (with credentials, "*" would not do).
		h.Set("Access-Control-Allow-Origin", "*")
	}
	h.Set("ETag", m.etag)
	if r.Header.Get("Range") != "" {
		// The document is sent whole (RFC 9110 §14.2 lets a server ignore
		// Range): no 206 of a few bytes of JSON, no multipart answer that
		// a client must reassemble and a request could multiply.
		r = r.Clone(r.Context())
		r.Header.Del("Range")
	}
	// ServeContent answers HEAD without a body and If-None-Match with 304.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(m.body))
}

package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// TestResourceMetadataURL: the metadata URL is the resource identifier
// with the well-known string inserted between host and path (RFC 9728 §3),
// a terminating slash removed first (§3.1), the query kept; identifiers
// that are not https URLs without fragment are refused.
func TestResourceMetadataURL(t *testing.T) {
	long := "https://api.example.com/" + strings.Repeat("a", 2100)
	tests := []struct {
		resource, url, path, query string
		err                        string // part of the error; "" for none
	}{
		{resource: "https://api.example.com", url: "https://api.example.com/.well-known/oauth-protected-resource", path: "/.well-known/oauth-protected-resource"},
		{resource: "https://api.example.com/", url: "https://api.example.com/.well-known/oauth-protected-resource", path: "/.well-known/oauth-protected-resource"},
		{resource: "https://resource.example.com/resource1", url: "https://resource.example.com/.well-known/oauth-protected-resource/resource1", path: "/.well-known/oauth-protected-resource/resource1"},
		{resource: "https://example.com/a/b/", url: "https://example.com/.well-known/oauth-protected-resource/a/b", path: "/.well-known/oauth-protected-resource/a/b"},
		{resource: "https://example.com:8443/v1.2/api_x-y~z", url: "https://example.com:8443/.well-known/oauth-protected-resource/v1.2/api_x-y~z", path: "/.well-known/oauth-protected-resource/v1.2/api_x-y~z"},
		{resource: "https://example.com/?tenant=a&x=1", url: "https://example.com/.well-known/oauth-protected-resource?tenant=a&x=1", path: "/.well-known/oauth-protected-resource", query: "tenant=a&x=1"},
		{resource: "https://example.com/api?t=1", url: "https://example.com/.well-known/oauth-protected-resource/api?t=1", path: "/.well-known/oauth-protected-resource/api", query: "t=1"},
		{resource: "https://Example.COM/Api", url: "https://Example.COM/.well-known/oauth-protected-resource/Api", path: "/.well-known/oauth-protected-resource/Api"},
		{resource: "http://localhost:8080", url: "http://localhost:8080/.well-known/oauth-protected-resource", path: "/.well-known/oauth-protected-resource"},
		{resource: "http://127.0.0.1:8080/mcp", url: "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp", path: "/.well-known/oauth-protected-resource/mcp"},
		{resource: "http://[::1]:9/x", url: "http://[::1]:9/.well-known/oauth-protected-resource/x", path: "/.well-known/oauth-protected-resource/x"},

		{resource: "", err: "required"},
		{resource: "http://api.example.com", err: "loopback"},
		{resource: "http://10.0.0.1", err: "loopback"},
		{resource: "HTTPS://api.example.com", err: "absolute https"},
		{resource: "ftp://api.example.com", err: "absolute https"},
		{resource: "urn:example:api", err: "absolute https"},
		{resource: "/api", err: "absolute https"},
		{resource: "https://", err: "host"},
		{resource: "https:///api", err: "host"},
		{resource: "https://user:pw@api.example.com", err: "user information"},
		{resource: "https://api.example.com/#frag", err: "fragment"},
		{resource: "https://api.example.com#", err: "fragment"},
		{resource: "https://api.example.com/?", err: "empty query"},
		{resource: "https://api.example.com/a b", err: "printable ASCII"},
		{resource: "https://api.example.com/\"x", err: "printable ASCII"},
		{resource: "https://api.example.com/a\\b", err: "printable ASCII"},
		{resource: "https://api.example.com/é", err: "printable ASCII"},
		{resource: "https://api.example.com/a%20b", err: "its path"},
		{resource: "https://api.example.com/a:b", err: "its path"},
		{resource: "https://api.example.com/a/*", err: "its path"},
		{resource: "https://api.example.com//a", err: "its path"},
		{resource: "https://api.example.com/a/../b", err: "its path"},
		{resource: "https://api.example.com/./b", err: "its path"},
		{resource: "https://api.example.com/a//", err: "its path"},
		{resource: long, err: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.resource, func(t *testing.T) {
			u, p, q, err := middleware.ResourceMetadataURL(tt.resource)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u != tt.url || p != tt.path || q != tt.query {
				t.Errorf("got %q %q %q, want %q %q %q", u, p, q, tt.url, tt.path, tt.query)
			}
		})
	}
}

// metaAuthenticator is an Authenticator for is serving metadata for
// resource (with edit applied to the ResourceMetadata).
func metaAuthenticator(t *testing.T, is *authtest.Issuer, resource string, edit func(*middleware.ResourceMetadata)) *middleware.Authenticator {
	t.Helper()
	return mustAuthenticator(t, is, func(c *middleware.Config) {
		c.ResourceMetadata = &middleware.ResourceMetadata{Resource: resource}
		if edit != nil {
			edit(c.ResourceMetadata)
		}
	})
}

// TestResourceMetadataHandler: the document is served at the URL derived
// from the resource identifier, in both of RFC 9728 §3.1's forms, with
// GET and HEAD only, as application/json, and nowhere else.
func TestResourceMetadataHandler(t *testing.T) {
	is := authtest.NewIssuer(t)
	root := metaAuthenticator(t, is, "https://api.example.com", func(m *middleware.ResourceMetadata) {
		m.ScopesSupported = []string{"todos:read", "todos:write"}
		m.ResourceName = "Todo API"
		m.ResourceDocumentation = "https://api.example.com/docs"
	})
	withPath := metaAuthenticator(t, is, "https://mcp.example.com/mcp/", func(m *middleware.ResourceMetadata) {
		m.AuthorizationServers = []string{"https://as1.example.com", "https://as2.example.net/tenant"}
		m.ResourcePolicyURI = "https://mcp.example.com/policy"
		m.ResourceTOSURI = "https://mcp.example.com/tos"
		m.ResourceSigningAlgValuesSupported = []string{"ES256"}
	})
	withQuery := metaAuthenticator(t, is, "https://example.com/api?tenant=a", nil)
	none := mustAuthenticator(t, is, nil)

	rootDoc := map[string]any{
		"resource":                 "https://api.example.com",
		"authorization_servers":    []any{is.URL},
		"scopes_supported":         []any{"todos:read", "todos:write"},
		"bearer_methods_supported": []any{"header"},
		"resource_name":            "Todo API",
		"resource_documentation":   "https://api.example.com/docs",
	}
	pathDoc := map[string]any{
		"resource":                              "https://mcp.example.com/mcp/",
		"authorization_servers":                 []any{"https://as1.example.com", "https://as2.example.net/tenant"},
		"bearer_methods_supported":              []any{"header"},
		"resource_signing_alg_values_supported": []any{"ES256"},
		"resource_policy_uri":                   "https://mcp.example.com/policy",
		"resource_tos_uri":                      "https://mcp.example.com/tos",
	}
	queryDoc := map[string]any{
		"resource":                 "https://example.com/api?tenant=a",
		"authorization_servers":    []any{is.URL},
		"bearer_methods_supported": []any{"header"},
	}
	const wk = "/.well-known/oauth-protected-resource"
	tests := []struct {
		name   string
		a      *middleware.Authenticator
		method string
		target string
		status int
		doc    map[string]any // the JSON body of a 200 GET
	}{
		{"root GET", root, "GET", wk, 200, rootDoc},
		{"root HEAD", root, "HEAD", wk, 200, nil},
		{"root POST", root, "POST", wk, 405, nil},
		{"root PUT", root, "PUT", wk, 405, nil},
		{"root DELETE", root, "DELETE", wk, 405, nil},
		{"root OPTIONS", root, "OPTIONS", wk, 405, nil},
		{"root preflight", root, "OPTIONS+preflight", wk, 204, nil},
		{"path preflight elsewhere", withPath, "OPTIONS+preflight", wk, 404, nil},
		{"root suffixed path", root, "GET", wk + "/api", 404, nil},
		{"root trailing slash", root, "GET", wk + "/", 404, nil},
		{"root with a query", root, "GET", wk + "?x=1", 404, nil},
		{"root other path", root, "GET", "/todos", 404, nil},
		{"path GET", withPath, "GET", wk + "/mcp", 200, pathDoc},
		{"path HEAD", withPath, "HEAD", wk + "/mcp", 200, nil},
		{"path at root", withPath, "GET", wk, 404, nil},
		{"path appended, not inserted", withPath, "GET", "/mcp" + wk, 404, nil},
		{"path with slash kept", withPath, "GET", wk + "/mcp/", 404, nil},
		{"path other suffix", withPath, "GET", wk + "/mcp2", 404, nil},
		{"query GET", withQuery, "GET", wk + "/api?tenant=a", 200, queryDoc},
		{"query missing", withQuery, "GET", wk + "/api", 404, nil},
		{"query other", withQuery, "GET", wk + "/api?tenant=b", 404, nil},
		{"not configured", none, "GET", wk, 404, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			req := httptest.NewRequest(strings.TrimSuffix(tt.method, "+preflight"), tt.target, nil)
			if strings.HasSuffix(tt.method, "+preflight") {
				req.Header.Set("Origin", "https://client.example")
				req.Header.Set("Access-Control-Request-Method", "GET")
				req.Header.Set("Access-Control-Request-Headers", "mcp-protocol-version")
			}
			tt.a.ResourceMetadataHandler().ServeHTTP(w, req)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			h := w.Header()
			switch tt.status {
			case 405:
				if got := h.Get("Allow"); got != "GET, HEAD" {
					t.Errorf("Allow = %q, want GET, HEAD", got)
				}
				problem(t, w)
				return
			case 404:
				problem(t, w)
				return
			case 204:
				if h.Get("Access-Control-Allow-Origin") != "*" || h.Get("Access-Control-Allow-Methods") != "GET, HEAD" ||
					h.Get("Access-Control-Allow-Headers") != "*" || h.Get("Access-Control-Allow-Credentials") != "" {
					t.Errorf("preflight headers %v", h)
				}
				return
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json (RFC 9728 §3.2)", ct)
			}
			if cc := h.Get("Cache-Control"); cc != "public, max-age=3600" {
				t.Errorf("Cache-Control = %q", cc)
			}
			if h.Get("ETag") == "" || h.Get("Access-Control-Allow-Origin") != "*" || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("headers %v", h)
			}
			if tt.method == "HEAD" {
				if w.Body.Len() != 0 {
					t.Errorf("HEAD answered with a body")
				}
				return
			}
			var got map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if !reflect.DeepEqual(got, tt.doc) {
				t.Errorf("document\n got %v\nwant %v", got, tt.doc)
			}
			// RFC 9728 §3.3: the resource equals the identifier the URL
			// was made from.
			u, _, _, _ := middleware.ResourceMetadataURL(got["resource"].(string))
			if u != tt.a.ResourceMetadataURL() || !strings.HasSuffix(u, tt.target) {
				t.Errorf("document for %q served at %q (URL %q)", got["resource"], tt.target, tt.a.ResourceMetadataURL())
			}
		})
	}

	t.Run("revalidation", func(t *testing.T) {
		w := httptest.NewRecorder()
		root.ResourceMetadataHandler().ServeHTTP(w, httptest.NewRequest("GET", wk, nil))
		r := httptest.NewRequest("GET", wk, nil)
		r.Header.Set("If-None-Match", w.Header().Get("ETag"))
		w2 := httptest.NewRecorder()
		root.ResourceMetadataHandler().ServeHTTP(w2, r)
		if w2.Code != http.StatusNotModified || w2.Body.Len() != 0 {
			t.Errorf("If-None-Match with the ETag: %d %q, want 304", w2.Code, w2.Body)
		}
	})
	t.Run("accessors", func(t *testing.T) {
		if got := withPath.ResourceMetadataPath(); got != wk+"/mcp" {
			t.Errorf("ResourceMetadataPath = %q", got)
		}
		if got := withPath.ResourceMetadataURL(); got != "https://mcp.example.com"+wk+"/mcp" {
			t.Errorf("ResourceMetadataURL = %q", got)
		}
		if none.ResourceMetadataURL() != "" || none.ResourceMetadataPath() != "" {
			t.Error("an Authenticator without ResourceMetadata reports a metadata URL")
		}
	})
}

// TestResourceMetadataConfig: New refuses metadata that RFC 9728 does not
// allow, naming every problem at once.
func TestResourceMetadataConfig(t *testing.T) {
	is := authtest.NewIssuer(t)
	tests := []struct {
		name   string
		issuer string // "" for is.URL
		meta   middleware.ResourceMetadata
		errs   []string
	}{
		{name: "no resource", meta: middleware.ResourceMetadata{}, errs: []string{"ResourceMetadata.Resource: is required"}},
		{name: "http resource", meta: middleware.ResourceMetadata{Resource: "http://api.example.com"}, errs: []string{"Resource", "loopback"}},
		{name: "fragment", meta: middleware.ResourceMetadata{Resource: "https://api.example.com/#x"}, errs: []string{"fragment"}},
		{name: "bad server", meta: middleware.ResourceMetadata{Resource: "https://api.example.com", AuthorizationServers: []string{"https://as.example.com?x=1", "http://as.example.com"}}, errs: []string{`AuthorizationServers: "https://as.example.com?x=1"`, `AuthorizationServers: "http://as.example.com" is not https`}},
		{name: "alg none", meta: middleware.ResourceMetadata{Resource: "https://api.example.com", ResourceSigningAlgValuesSupported: []string{"none"}}, errs: []string{`"none"`}},
		{name: "bad scope", meta: middleware.ResourceMetadata{Resource: "https://api.example.com", ScopesSupported: []string{"a b"}}, errs: []string{"ScopesSupported"}},
		{name: "bad documentation", meta: middleware.ResourceMetadata{Resource: "https://api.example.com", ResourceDocumentation: "docs.html", ResourceTOSURI: "javascript:alert(1)"}, errs: []string{"ResourceDocumentation", "ResourceTOSURI"}},
		{name: "all at once", meta: middleware.ResourceMetadata{Resource: "ftp://x", ScopesSupported: []string{""}}, errs: []string{"Resource", "ScopesSupported"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.meta
			_, err := middleware.New(context.Background(), middleware.Config{
				Issuer: is.URL, Audiences: []string{authtest.Audience}, Logger: quiet(), ResourceMetadata: &m,
			})
			if err == nil {
				t.Fatal("New accepted it")
			}
			for _, want := range tt.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
	t.Run("http issuer is no default server", func(t *testing.T) {
		_, err := middleware.New(context.Background(), middleware.Config{
			Issuer: "http://idp.example.com", Audiences: []string{authtest.Audience}, JWKSURL: is.URL + "/jwks", Logger: quiet(),
			ResourceMetadata: &middleware.ResourceMetadata{Resource: "https://api.example.com"},
		})
		if err == nil || !strings.Contains(err.Error(), `AuthorizationServers: "http://idp.example.com" is not https`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("caller's slices are copied", func(t *testing.T) {
		scopes := []string{"a"}
		a := metaAuthenticator(t, is, "https://api.example.com", func(m *middleware.ResourceMetadata) { m.ScopesSupported = scopes })
		scopes[0] = "changed"
		w := httptest.NewRecorder()
		a.ResourceMetadataHandler().ServeHTTP(w, httptest.NewRequest("GET", middleware.WellKnownResourceMetadata, nil))
		if !strings.Contains(w.Body.String(), `"a"`) {
			t.Errorf("document changed with the caller's slice: %s", w.Body)
		}
	})
}

// TestChallengesCarryResourceMetadata: with ResourceMetadata set, every
// Bearer challenge, 400, 401 and 403, names the metadata URL (RFC 9728
// §5.1); without it, none does.
func TestChallengesCarryResourceMetadata(t *testing.T) {
	is := authtest.NewIssuer(t, authtest.WithScopes("todos:read"))
	const resource = "https://api.example.com/v1"
	const want = `resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/v1"`
	build := func(meta bool) *middleware.Authenticator {
		return mustAuthenticator(t, is, func(c *middleware.Config) {
			if meta {
				c.ResourceMetadata = &middleware.ResourceMetadata{Resource: resource}
			}
			c.ValidateClaims = func(_ context.Context, p principal.Principal) error {
				switch p.Subject {
				case "refused":
					return errors.New("not this one")
				case "forbidden":
					return middleware.ErrScope
				}
				return nil
			}
		})
	}
	withMeta, without := build(true), build(false)
	good := is.Token(t, "alice", nil)
	now := time.Now()
	tests := []struct {
		name   string
		chain  func(a *middleware.Authenticator) http.Handler
		req    func() *http.Request
		status int
		code   string // the challenge's error, "" for none
	}{
		{"no token", require, func() *http.Request { return httptest.NewRequest("GET", "/todos", nil) }, 401, ""},
		{"malformed", require, func() *http.Request {
			r := httptest.NewRequest("GET", "/todos", nil)
			r.Header.Add("Authorization", "Bearer a")
			r.Header.Add("Authorization", "Bearer b")
			return r
		}, 400, "invalid_request"},
		{"invalid token", require, func() *http.Request { return bearerRequest("not.a.token") }, 401, "invalid_token"},
		{"expired token", require, func() *http.Request {
			return bearerRequest(is.Token(t, "alice", func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }))
		}, 401, "invalid_token"},
		{"claims refused", require, func() *http.Request { return bearerRequest(is.Token(t, "refused", nil)) }, 401, "invalid_token"},
		{"claims forbidden", require, func() *http.Request { return bearerRequest(is.Token(t, "forbidden", nil)) }, 403, "insufficient_scope"},
		{"missing scope", func(a *middleware.Authenticator) http.Handler {
			return a.Require(a.RequireScopes("todos:write")(echoSubject))
		}, func() *http.Request { return bearerRequest(good) }, 403, "insufficient_scope"},
		{"missing any scope", func(a *middleware.Authenticator) http.Handler {
			return a.Require(a.RequireAnyScope("todos:write", "admin")(echoSubject))
		}, func() *http.Request { return bearerRequest(good) }, 403, "insufficient_scope"},
		{"step-up", func(a *middleware.Authenticator) http.Handler {
			return a.Require(a.RequireStepUp(middleware.StepUp{ACRValues: []string{acr2FA}, MaxAge: time.Minute})(echoSubject))
		}, func() *http.Request { return bearerRequest(good) }, 401, "insufficient_user_authentication"},
		{"handler's own bare ErrScope", func(a *middleware.Authenticator) http.Handler {
			return a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.WriteError(w, r, middleware.ErrScope) }))
		}, func() *http.Request { return bearerRequest(good) }, 403, "insufficient_scope"},
		{"optional with a bad token", func(a *middleware.Authenticator) http.Handler { return a.Optional(echoSubject) },
			func() *http.Request { return bearerRequest("x.y.z") }, 401, "invalid_token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, meta := range []bool{true, false} {
				a := without
				if meta {
					a = withMeta
				}
				w := httptest.NewRecorder()
				tt.chain(a).ServeHTTP(w, tt.req())
				if w.Code != tt.status {
					t.Fatalf("meta %v: status %d, want %d", meta, w.Code, tt.status)
				}
				ch := w.Header().Get("WWW-Authenticate")
				if !strings.HasPrefix(ch, "Bearer ") || errorCode(ch) != tt.code {
					t.Fatalf("meta %v: challenge %q, want a Bearer challenge with error %q", meta, ch, tt.code)
				}
				has := strings.Contains(ch, want)
				if has != meta {
					t.Errorf("meta %v: challenge %q", meta, ch)
				}
				if meta && !strings.HasSuffix(ch, ", "+want) {
					t.Errorf("resource_metadata is not the last parameter: %q", ch)
				}
				// Challenge, for an ErrorHandler, gives the same value.
				if meta {
					var got string
					b := mustAuthenticator(t, is, func(c *middleware.Config) {
						c.ResourceMetadata = &middleware.ResourceMetadata{Resource: resource}
						c.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
							_, got = middleware.Challenge(err)
							w.WriteHeader(499)
						}
					})
					if tt.name == "no token" {
						b.Require(echoSubject).ServeHTTP(httptest.NewRecorder(), tt.req())
						if got != ch {
							t.Errorf("Challenge in ErrorHandler = %q, want %q", got, ch)
						}
					}
				}
			}
		})
	}
	t.Run("503 has no challenge", func(t *testing.T) {
		w := httptest.NewRecorder()
		withMeta.WriteError(w, httptest.NewRequest("GET", "/", nil), middleware.ErrUnavailable)
		if w.Code != 503 || w.Header().Get("WWW-Authenticate") != "" {
			t.Errorf("%d %q", w.Code, w.Header().Get("WWW-Authenticate"))
		}
	})
	t.Run("the bare challenge", func(t *testing.T) {
		w := httptest.NewRecorder()
		withMeta.Require(echoSubject).ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
		if got := w.Header().Get("WWW-Authenticate"); got != `Bearer realm="todo-api", `+want {
			t.Errorf("challenge %q", got)
		}
	})
}

func require(a *middleware.Authenticator) http.Handler { return a.Require(echoSubject) }

// FuzzResourceMetadataURL: whatever a setting holds, an accepted resource
// identifier gives a metadata URL on the same origin, under the well-known
// path, that parses as a URL and travels in a challenge unchanged.
func FuzzResourceMetadataURL(f *testing.F) {
	for _, s := range []string{
		"https://api.example.com", "https://api.example.com/", "https://a.example/b/c/?q=1",
		"http://127.0.0.1:1/x", "http://[::1]/", "https://a/#", "https://u@a/", "https://a/%2e%2e",
		"https://a//", "https://a?", "https://a/?#", "https://[::1", "https://a:b:c/", "http://localhost./x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, resource string) {
		u, path, query, err := middleware.ResourceMetadataURL(resource)
		if err != nil {
			return
		}
		pu, perr := url.Parse(u)
		if perr != nil {
			t.Fatalf("%q gave %q, not a URL: %v", resource, u, perr)
		}
		ru, _ := url.Parse(resource)
		if pu.Scheme != ru.Scheme || pu.Host != ru.Host || pu.Fragment != "" || pu.User != nil {
			t.Fatalf("%q gave %q on another origin", resource, u)
		}
		if !strings.HasPrefix(path, middleware.WellKnownResourceMetadata) || pu.Path != path || pu.RawQuery != query {
			t.Fatalf("%q gave %q (path %q, query %q)", resource, u, path, query)
		}
		if h := ru.Hostname(); ru.Scheme != "https" && !strings.EqualFold(h, "localhost") && !net.ParseIP(h).IsLoopback() {
			t.Fatalf("%q accepted over %s", resource, ru.Scheme)
		}
		for i := 0; i < len(u); i++ {
			if c := u[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
				t.Fatalf("%q gave %q, which a quoted challenge cannot carry", resource, u)
			}
		}
	})
}

// TestResourceMetadataNamesDPoP: with DPoP on, the document says which
// proof algorithms the resource accepts (dpop_signing_alg_values_supported,
// RFC 9728 §2) and, in DPoPRequired, that it takes DPoP-bound tokens only
// (dpop_bound_access_tokens_required); with DPoP off it says neither.
func TestResourceMetadataNamesDPoP(t *testing.T) {
	is := authtest.NewIssuer(t)
	tests := []struct {
		mode     middleware.DPoPMode
		algs     []string
		wantAlgs []string
		required bool
	}{
		{mode: middleware.DPoPDisabled},
		{mode: middleware.DPoPAllowed, wantAlgs: middleware.DefaultDPoPAlgorithms()},
		{mode: middleware.DPoPRequired, algs: []string{"ES256", "EdDSA"}, wantAlgs: []string{"ES256", "EdDSA"}, required: true},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			a := mustAuthenticator(t, is, func(c *middleware.Config) {
				c.ResourceMetadata = &middleware.ResourceMetadata{Resource: "https://api.example.com"}
				c.DPoP = tt.mode
				c.DPoPAlgorithms = tt.algs
			})
			w := httptest.NewRecorder()
			a.ResourceMetadataHandler().ServeHTTP(w, httptest.NewRequest("GET", middleware.WellKnownResourceMetadata, nil))
			var doc map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
				t.Fatalf("status %d, %v: %s", w.Code, err, w.Body)
			}
			var algs []string
			if v, ok := doc["dpop_signing_alg_values_supported"].([]any); ok {
				for _, s := range v {
					algs = append(algs, s.(string))
				}
			}
			if !reflect.DeepEqual(algs, tt.wantAlgs) {
				t.Errorf("dpop_signing_alg_values_supported = %v, want %v", algs, tt.wantAlgs)
			}
			req, present := doc["dpop_bound_access_tokens_required"]
			if tt.required && req != true {
				t.Errorf("dpop_bound_access_tokens_required = %v, want true", req)
			}
			if !tt.required && present {
				// false is the default (§2): omitted, as every parameter
				// without a value is.
				t.Errorf("dpop_bound_access_tokens_required = %v, want it omitted", req)
			}
		})
	}
}

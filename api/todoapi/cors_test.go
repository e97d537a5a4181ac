package todoapi

import (
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestPreflightWithConfiguredOriginForms sends the preflight a browser
// sends before a page's credentialed POST, against the handler built from
// CORS_ALLOWED_ORIGINS written the ways people write it: the browser's
// Origin header is always the bare, lower-case origin without a default
// port, so each form must be allowed. The same handler must also let the
// page's cookie-borne POST through the middleware's origin check.
func TestPreflightWithConfiguredOriginForms(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	tests := []struct {
		name       string
		configured string
		origin     string // what the browser sends
	}{
		{"trailing slash", "http://localhost:3000/", "http://localhost:3000"},
		{"upper case scheme and host", "HTTP://LocalHost:3000", "http://localhost:3000"},
		{"default https port", "https://app.example:443", "https://app.example"},
		{"default http port with slash", "http://app.example:80/", "http://app.example"},
		{"spaces around", "  https://app.example  ", "https://app.example"},
		{"exact", "http://localhost:3000", "http://localhost:3000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, is)
			cfg.CORSAllowedOrigins = []string{tt.configured}
			h := mustBuild(t, cfg, true)

			pre := serve(h, "OPTIONS", "/todos", "",
				"Origin", tt.origin,
				"Access-Control-Request-Method", "POST",
				// As the Fetch standard has browsers send it: lower case,
				// sorted, comma-separated; rs/cors refuses other orders.
				"Access-Control-Request-Headers", "authorization,x-csrf")
			if pre.Code/100 != 2 || pre.Header().Get("Access-Control-Allow-Origin") != tt.origin ||
				pre.Header().Get("Access-Control-Allow-Credentials") != "true" {
				t.Fatalf("preflight from %s with CORS_ALLOWED_ORIGINS=%q: %d, headers %v", tt.origin, tt.configured, pre.Code, pre.Header())
			}
			allowed := strings.ToLower(pre.Header().Get("Access-Control-Allow-Headers"))
			for _, want := range []string{"x-csrf", "authorization"} {
				if !strings.Contains(allowed, want) {
					t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, want)
				}
			}

			post := serve(h, "POST", "/todos", `{"title":"from the page"}`,
				"Origin", tt.origin, "X-CSRF", "1", "Content-Type", "application/json",
				"Cookie", "__Host-access_token="+is.Token(t, "alice", nil))
			if post.Code != 201 || post.Header().Get("Access-Control-Allow-Origin") != tt.origin {
				t.Fatalf("cookie POST from %s: %d %v %s", tt.origin, post.Code, post.Header(), post.Body)
			}
		})
	}
}

// TestCORSOriginsRefused: anything that is not scheme://host[:port] stops
// the server at start-up, with one line naming the setting.
func TestCORSOriginsRefused(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	tests := []struct{ name, origin, want string }{
		{"path", "https://app.example/app", "path"},
		{"query", "https://app.example/?x=1", "query"},
		{"fragment", "https://app.example#top", "fragment"},
		{"userinfo", "https://user:pw@app.example", "userinfo"},
		{"wildcard", "https://*.example.com", "wildcard"},
		{"everything", "*", "wildcard"},
		{"null", "null", "null"},
		{"ftp", "ftp://app.example", "http or https"},
		{"no scheme", "app.example", "scheme"},
		{"bad port", "https://app.example:99999", "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, is)
			cfg.CORSAllowedOrigins = []string{testOrigin, tt.origin}
			srv, err := New(t.Context(), cfg)
			if err == nil {
				_ = srv.Close()
				t.Fatalf("New accepted CORS_ALLOWED_ORIGINS %q", tt.origin)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "CORS_ALLOWED_ORIGINS: ") || !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q: want one line starting CORS_ALLOWED_ORIGINS and saying %q", msg, tt.want)
			}
		})
	}
}

// TestNoConfiguredOriginAllowsNone: with CORS_ALLOWED_ORIGINS empty (the
// default) no page of another origin may call, rather than rs/cors's
// reading of an empty list as "every origin".
func TestNoConfiguredOriginAllowsNone(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	cfg := testConfig(t, is)
	cfg.CORSAllowedOrigins = nil
	h := mustBuild(t, cfg, true)
	pre := serve(h, "OPTIONS", "/todos", "", "Origin", "https://evil.example",
		"Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization")
	get := serve(h, "GET", "/todos", "", "Origin", "https://evil.example", "Authorization", "Bearer "+is.Token(t, "alice", nil))
	for name, rec := range map[string]map[string][]string{"preflight": pre.Header(), "GET": get.Header()} {
		if v, ok := rec["Access-Control-Allow-Origin"]; ok {
			t.Errorf("%s from https://evil.example with no origin configured: Access-Control-Allow-Origin %q", name, v)
		}
	}
}

// TestCORSWithDPoP: with DPoP on, a page may send the DPoP proof header
// (its preflight is allowed) and read DPoP-Nonce and WWW-Authenticate on
// the answer, a refusal included, so that it can sign its next proof with
// the server's nonce; with DPoP disabled the DPoP header is not allowed.
func TestCORSWithDPoP(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	for _, mode := range []middleware.DPoPMode{middleware.DPoPDisabled, middleware.DPoPAllowed, middleware.DPoPRequired} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			on := mode != middleware.DPoPDisabled
			cfg := testConfig(t, is)
			cfg.DPoP = mode
			if on {
				cfg.BaseURL = "http://example.com"
				cfg.DPoPNonceSecret = strings.Repeat("n", 32)
			}
			h := mustBuild(t, cfg, true)
			pre := serve(h, "OPTIONS", "/todos", "", "Origin", testOrigin,
				"Access-Control-Request-Method", "POST",
				"Access-Control-Request-Headers", "authorization,content-type,dpop")
			allowed := pre.Header().Get("Access-Control-Allow-Origin") == testOrigin &&
				strings.Contains(strings.ToLower(pre.Header().Get("Access-Control-Allow-Headers")), "dpop")
			if allowed != on {
				t.Fatalf("preflight with the DPoP header: allowed %t, want %t: %d %v", allowed, on, pre.Code, pre.Header())
			}
			if !on {
				return
			}
			key := authtest.NewDPoPKey(t, "ES256")
			tok := is.MintDPoP(t, "alice", key)
			// Without a nonce: 401 use_dpop_nonce, whose nonce and
			// challenge the page must be able to read.
			rec := serve(h, "POST", "/todos", `{"title":"x"}`, "Origin", testOrigin, "Content-Type", "application/json",
				"Authorization", "DPoP "+tok, "DPoP", key.Proof(t, "POST", "http://example.com/todos", tok))
			exposed := strings.ToLower(rec.Header().Get("Access-Control-Expose-Headers"))
			if rec.Code != 401 || rec.Header().Get("DPoP-Nonce") == "" || rec.Header().Get("Access-Control-Allow-Origin") != testOrigin ||
				!strings.Contains(exposed, "dpop-nonce") || !strings.Contains(exposed, "www-authenticate") {
				t.Fatalf("DPoP POST from the page: %d, headers %v", rec.Code, rec.Header())
			}
		})
	}
}

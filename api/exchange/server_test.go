package exchange

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestRoutes: the HTTP surface, status by status.
func TestRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{exchange: func(c *Config) { c.TodoAPIURL = "http://127.0.0.1:8080" }})
	tests := []struct {
		name         string
		method, path string
		header       []string
		status       int
		contentType  string
		body         string // expected in the body
	}{
		{"health", "GET", "/healthz", nil, 200, "application/json", `"status":"ok"`},
		{"config for the page", "GET", configPath, nil, 200, "application/json", `"todo_api_url":"http://127.0.0.1:8080"`},
		{"metrics", "GET", "/metrics", nil, 200, "text/plain", "exchange_logins_total"},
		{"the web page", "GET", "/", nil, 200, "text/html", "<"},
		{"me, signed out", "GET", mePath, nil, 401, "application/problem+json", "not signed in"},
		{"unknown path", "GET", "/no/such/page", nil, 404, "", ""},
		{"unknown path, POST", "POST", "/no/such/page", nil, 405, "application/problem+json", ""},
		{"GET /refreshtoken", "GET", refreshPath, nil, 405, "application/problem+json", ""},
		{"PUT /refreshtoken", "PUT", refreshPath, []string{"X-CSRF", "1"}, 405, "application/problem+json", ""},
		{"POST /login", "POST", loginPath, nil, 405, "application/problem+json", ""},
		{"POST /oauth-callback", "POST", callbackPath, nil, 405, "application/problem+json", ""},

		// CSRF on /refreshtoken.
		{"refresh without X-CSRF", "POST", refreshPath, nil, 403, "application/problem+json", "X-CSRF"},
		{"sign-out without X-CSRF", "DELETE", refreshPath, nil, 403, "application/problem+json", "X-CSRF"},
		{"refresh with X-CSRF: 0", "POST", refreshPath, []string{"X-CSRF", "0"}, 403, "application/problem+json", "X-CSRF"},
		{"refresh from another origin", "POST", refreshPath, []string{"X-CSRF", "1", "Origin", "https://evil.example"}, 403, "application/problem+json", "cross-origin"},
		{"sign-out from another origin", "DELETE", refreshPath, []string{"X-CSRF", "1", "Origin", "https://evil.example"}, 403, "application/problem+json", "cross-origin"},
		{"refresh from another port", "POST", refreshPath, []string{"X-CSRF", "1", "Origin", "http://127.0.0.1:1"}, 403, "application/problem+json", "cross-origin"},
		{"refresh from our origin", "POST", refreshPath, []string{"X-CSRF", "1", "Origin", e.URL}, 401, "application/problem+json", ""},
		{"refresh with Origin null", "POST", refreshPath, []string{"X-CSRF", "1", "Origin", "null"}, 401, "application/problem+json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := e.newBrowser().do(tt.method, tt.path, tt.header...)
			if r.status != tt.status || !strings.HasPrefix(r.header.Get("Content-Type"), tt.contentType) || !strings.Contains(r.body, tt.body) {
				t.Errorf("%d %q %q; want %d %q with %q", r.status, r.header.Get("Content-Type"), r.body, tt.status, tt.contentType, tt.body)
			}
			if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("X-Frame-Options") != "DENY" {
				t.Errorf("security headers missing: %v", r.header)
			}
		})
	}
}

// TestPageCSP: the web page may talk to this server and the todo API only.
func TestPageCSP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{exchange: func(c *Config) { c.TodoAPIURL = "http://127.0.0.1:8080/api" }})
	csp := e.newBrowser().get("/").header.Get("Content-Security-Policy")
	for _, want := range []string{"connect-src 'self' http://127.0.0.1:8080;", "script-src 'self'", "frame-ancestors 'none'", "form-action 'self' " + e.idp.URL} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
}

// TestNewDiscovery: New fails clearly when the issuer does not answer or
// names another issuer, and picks client authentication from discovery.
func TestNewDiscovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	for name, issuer := range map[string]string{
		"nothing listening": closed,
		"another issuer":    e.idp.URL + "/", // devidp says it is e.idp.URL, exactly
		"not a server":      e.URL,
	} {
		cfg := e.cfg
		cfg.Issuer = issuer
		if _, err := New(t.Context(), cfg); !errors.Is(err, ErrDiscovery) || !strings.Contains(err.Error(), "ISSUER") {
			t.Errorf("%s: %v, want ErrDiscovery naming ISSUER", name, err)
		}
	}
	if e.ex.oauth.Endpoint.AuthStyle != oauth2.AuthStyleInHeader {
		t.Errorf("auto picked %v, want client_secret_basic (devidp lists both)", e.ex.oauth.Endpoint.AuthStyle)
	}
}

func TestChooseAuthStyle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		setting   string
		supported []string
		want      oauth2.AuthStyle
		err       bool
	}{
		{ClientAuthAuto, nil, oauth2.AuthStyleInHeader, false},
		{ClientAuthAuto, []string{"client_secret_post", "client_secret_basic"}, oauth2.AuthStyleInHeader, false},
		{ClientAuthAuto, []string{"client_secret_post"}, oauth2.AuthStyleInParams, false},
		{ClientAuthAuto, []string{"private_key_jwt"}, 0, true},
		{ClientAuthPost, []string{"client_secret_basic"}, oauth2.AuthStyleInParams, false},
		{ClientAuthBasic, []string{"client_secret_post"}, oauth2.AuthStyleInHeader, false},
	}
	for _, tt := range tests {
		got, _, err := chooseAuthStyle(tt.setting, tt.supported)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("chooseAuthStyle(%s, %v) = %v, %v", tt.setting, tt.supported, got, err)
		}
		if got == oauth2.AuthStyleAutoDetect && err == nil {
			t.Errorf("chooseAuthStyle(%s, %v) left the style to the library", tt.setting, tt.supported)
		}
	}
}

// TestConfigValidate: each problem names its setting, all at once.
func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := Config{
		Issuer: "http://127.0.0.1:9000", ClientID: "c", ClientSecret: "s",
		RedirectURL: "http://localhost:3000/oauth-callback", SessionSecret: testSessionSecret,
	}
	tests := []struct {
		name string
		edit func(*Config)
		want []string // each in the error; none: valid
	}{
		{"valid", func(*Config) {}, nil},
		{"nothing set", func(c *Config) { *c = Config{} }, []string{"ISSUER is required", "CLIENT_ID is required", "CLIENT_SECRET is required", "SESSION_SECRET is required"}},
		{"DEV_MODE needs no secret", func(c *Config) { c.SessionSecret, c.DevMode = nil, true }, nil},
		{"short secret", func(c *Config) { c.SessionSecret = []byte("short") }, []string{"SESSION_SECRET is 5 bytes"}},
		{"issuer not a URL", func(c *Config) { c.Issuer = "example.com" }, []string{"ISSUER"}},
		{"callback path", func(c *Config) { c.RedirectURL = "http://localhost:3000/callback" }, []string{"REDIRECT_URL"}},
		{"callback with query", func(c *Config) { c.RedirectURL = "http://localhost:3000/oauth-callback?x=1" }, []string{"REDIRECT_URL"}},
		{"plain http elsewhere with Secure cookies", func(c *Config) { c.RedirectURL = "http://app.example.com/oauth-callback" }, []string{"REDIRECT_URL", "COOKIE_SECURE=false"}},
		{"plain http elsewhere without Secure cookies", func(c *Config) {
			c.RedirectURL, c.InsecureCookies = "http://app.example.com/oauth-callback", true
		}, nil},
		{"no openid scope", func(c *Config) { c.Scopes = []string{"profile"} }, []string{"SCOPES"}},
		{"client auth", func(c *Config) { c.ClientAuth = "private_key_jwt" }, []string{"CLIENT_AUTH"}},
		{"cookie domain not covering", func(c *Config) {
			c.RedirectURL, c.CookieDomain = "https://app.example.com/oauth-callback", "example.org"
		}, []string{"COOKIE_DOMAIN"}},
		{"cookie domain covering", func(c *Config) {
			c.RedirectURL, c.CookieDomain = "https://app.example.com/oauth-callback", ".example.com"
		}, nil},
		{"cookie domain with a port", func(c *Config) { c.CookieDomain = "localhost:3000" }, []string{"COOKIE_DOMAIN"}},
		{"todo API URL", func(c *Config) { c.TodoAPIURL = "localhost:8080" }, []string{"TODO_API_URL"}},
		{"web dir", func(c *Config) { c.WebDir = "/no/such/dir" }, []string{"WEB_DIR"}},
	}
	for _, tt := range tests {
		cfg := good
		tt.edit(&cfg)
		cfg.setDefaults()
		err := cfg.validate()
		if len(tt.want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v, want %q", tt.name, err, w)
			}
		}
	}
}

// TestRecovery: a panic in a handler is a 500 problem and a log line, not
// a dropped connection.
func TestRecovery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	s, err := New(t.Context(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.sealer = nil // sealing the transaction now panics
	w := httptest.NewRecorder()
	s.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), http.MethodGet, loginPath, nil))
	if w.Code != http.StatusInternalServerError || !strings.Contains(e.logs.String(), `"msg":"panic in handler"`) {
		t.Errorf("%d; logs:\n%s", w.Code, e.logs)
	}
}

// TestMethodDispatch: each path answers its own methods only, HEAD on a GET
// route included, with a problem+json 405 and Allow; other paths go to the
// web page, unclean ones too (never a redirect to the clean path); the
// metrics name the route pattern, or "static" for the page and every 405.
func TestMethodDispatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	tests := []struct {
		method, target string
		status         int
		allow          string // the Allow header wanted
		route          string // the metrics route label wanted
	}{
		{"HEAD", loginPath, 405, "GET", "static"},
		{"HEAD", "/healthz", 405, "GET", "static"},
		{"GET", "/healthz", 200, "", "/healthz"},
		{"OPTIONS", refreshPath, 405, "POST, DELETE", "static"},
		{"POST", refreshPath, 403, "", refreshPath},
		{"DELETE", mePath, 405, "GET", "static"},
		{"HEAD", "/", 200, "", "static"},
		{"OPTIONS", "/", 405, "", "static"},
		{"GET", "//login", 404, "", "static"},
		{"GET", "/a/../login", 404, "", "static"},
		{"GET", "/log%69n", 302, "", loginPath},
	}
	for _, tt := range tests {
		before := e.metric("exchange_http_requests_total", "route", tt.route, "method", tt.method, "status", strconv.Itoa(tt.status))
		w := httptest.NewRecorder()
		e.ex.ServeHTTP(w, httptest.NewRequestWithContext(t.Context(), tt.method, tt.target, nil))
		if w.Code != tt.status || w.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d, Allow %q; want %d, Allow %q", tt.method, tt.target, w.Code, w.Header().Get("Allow"), tt.status, tt.allow)
		}
		if w.Code == 405 && w.Header().Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s %s: 405 as %q, want problem+json", tt.method, tt.target, w.Header().Get("Content-Type"))
		}
		if w.Header().Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s %s: no security headers", tt.method, tt.target)
		}
		if after := e.metric("exchange_http_requests_total", "route", tt.route, "method", tt.method, "status", strconv.Itoa(tt.status)); after != before+1 {
			t.Errorf("%s %s: not counted under route %q", tt.method, tt.target, tt.route)
		}
	}
}

package exchange

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/oauth2"

	"github.com/tollgate-dev/tollgate/api/devidp"
)

// rawLogin signs alice in handing cookies over by hand, so that it works
// whatever the cookies' Domain: GET /login, devidp's form, then the
// callback with the transaction cookie. It returns the /login and callback
// answers.
func (e *testEnv) rawLogin(t *testing.T) (login, callback result) {
	t.Helper()
	return e.rawLoginAs(t, "alice")
}

// rawLoginAs is rawLogin for user.
func (e *testEnv) rawLoginAs(t *testing.T, user string) (login, callback result) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login = e.send(c, http.MethodGet, loginPath)
	var tx *http.Cookie
	for _, ck := range login.cookies {
		if strings.HasPrefix(ck.Name, e.ex.names.txPrefix) {
			tx = ck
		}
	}
	if login.status != http.StatusFound || tx == nil {
		t.Fatalf("GET /login: %d, cookies %v", login.status, login.cookies)
	}
	cb, _ := url.Parse(e.authorize(login.header.Get("Location"), user))
	callback = e.send(c, http.MethodGet, cb.RequestURI(), "Cookie", tx.Name+"="+tx.Value)
	if callback.status != http.StatusSeeOther {
		t.Fatalf("callback: %d\n%s", callback.status, callback.body)
	}
	return login, callback
}

// TestCookieAttributes checks every attribute of every cookie, with Secure
// cookies (host-only, and with COOKIE_DOMAIN) and without.
func TestCookieAttributes(t *testing.T) {
	t.Parallel()
	const ttl = 90 * time.Second
	tests := []struct {
		name                    string
		opts                    envOptions
		secure                  bool
		domain                  string
		access, refresh, sess   string
		txPrefix                string
		clearsHostOnlyAccessToo bool
	}{
		{
			name: "secure host-only", secure: true,
			access: "__Host-access_token", refresh: "__Secure-refresh_token", sess: "__Host-tg_session", txPrefix: "__Host-tg_tx_",
		},
		{
			name: "secure with COOKIE_DOMAIN", secure: true, domain: "localhost",
			opts:   envOptions{redirectHost: "app.localhost", exchange: func(c *Config) { c.CookieDomain = ".localhost" }},
			access: "__Secure-access_token", refresh: "__Secure-refresh_token", sess: "__Host-tg_session", txPrefix: "__Host-tg_tx_",
			clearsHostOnlyAccessToo: true,
		},
		{
			name:   "COOKIE_SECURE=false",
			opts:   envOptions{exchange: func(c *Config) { c.InsecureCookies = true }},
			access: "access_token", refresh: "refresh_token", sess: "tg_session", txPrefix: "tg_tx_",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := tt.opts
			opts.idp = func(c *devidp.Config) { c.AccessTokenTTL = ttl }
			e := newEnv(t, opts)
			login, cb := e.rawLogin(t)

			type want struct {
				path, domain string
				sameSite     http.SameSite
				minAge       int
				maxAge       int
			}
			check := func(c *http.Cookie, w want) {
				t.Helper()
				if c == nil {
					t.Error("cookie missing")
					return
				}
				if c.Path != w.path || c.Domain != w.domain || c.SameSite != w.sameSite || !c.HttpOnly || c.Secure != tt.secure ||
					c.MaxAge < w.minAge || c.MaxAge > w.maxAge || c.Value == "" {
					t.Errorf("%s: Path=%q Domain=%q SameSite=%v HttpOnly=%v Secure=%v Max-Age=%d; want Path=%q Domain=%q SameSite=%v HttpOnly Secure=%v Max-Age in [%d,%d]",
						c.Name, c.Path, c.Domain, c.SameSite, c.HttpOnly, c.Secure, c.MaxAge,
						w.path, w.domain, w.sameSite, tt.secure, w.minAge, w.maxAge)
				}
			}
			var tx *http.Cookie
			for _, c := range login.cookies {
				if strings.HasPrefix(c.Name, tt.txPrefix) {
					tx = c
				}
			}
			check(tx, want{"/", "", http.SameSiteLaxMode, 600, 600})
			check(cb.cookie(tt.access), want{"/", tt.domain, http.SameSiteLaxMode, int(ttl/time.Second) - 5, int(ttl / time.Second)})
			days30 := int(DefaultRefreshCookieMaxAge / time.Second)
			check(cb.cookie(tt.refresh), want{refreshPath, "", http.SameSiteStrictMode, days30, days30})
			check(cb.cookie(tt.sess), want{"/", "", http.SameSiteLaxMode, days30 - 5, days30})
			if c := cb.cookie(tx.Name); c == nil || c.MaxAge >= 0 || c.Path != "/" || c.Domain != "" {
				t.Errorf("transaction cookie not deleted at the callback: %v", c)
			}
			checkPrefixRules(t, append(login.cookies, cb.cookies...))

			// Sign-out deletes each cookie where it lives.
			out := e.send(http.DefaultClient, http.MethodDelete, refreshPath, "X-CSRF", "1",
				"Cookie", tt.refresh+"="+cb.cookie(tt.refresh).Value+"; "+tt.sess+"="+cb.cookie(tt.sess).Value)
			if out.status != http.StatusOK {
				t.Fatalf("sign-out: %d %s", out.status, out.body)
			}
			deleted := map[string]bool{}
			for _, c := range out.cookies {
				if c.MaxAge >= 0 {
					t.Errorf("sign-out set %s", c.Name)
				}
				deleted[fmt.Sprintf("%s path=%s domain=%s", c.Name, c.Path, c.Domain)] = true
			}
			wantDeleted := []string{
				fmt.Sprintf("%s path=/ domain=%s", tt.access, tt.domain),
				fmt.Sprintf("%s path=%s domain=", tt.refresh, refreshPath),
				fmt.Sprintf("%s path=/ domain=", tt.sess),
			}
			if tt.clearsHostOnlyAccessToo {
				wantDeleted = append(wantDeleted, fmt.Sprintf("%s path=/ domain=", tt.access))
			}
			for _, w := range wantDeleted {
				if !deleted[w] {
					t.Errorf("sign-out did not delete %s; it deleted %v", w, deleted)
				}
			}
			checkPrefixRules(t, out.cookies)
		})
	}
}

// checkPrefixRules applies the browser rules for cookie name prefixes
// (RFC 6265bis §4.1.3): a cookie that breaks them is dropped.
func checkPrefixRules(t *testing.T, cs []*http.Cookie) {
	t.Helper()
	for _, c := range cs {
		switch {
		case strings.HasPrefix(c.Name, "__Host-") && (!c.Secure || c.Path != "/" || c.Domain != ""):
			t.Errorf("%s breaks the __Host- rules (Secure, Path=/, no Domain): %v", c.Name, c)
		case strings.HasPrefix(c.Name, "__Secure-") && !c.Secure:
			t.Errorf("%s breaks the __Secure- rule (Secure): %v", c.Name, c)
		}
	}
}

// TestAccessCookieMaxAge: Max-Age follows expires_in, capped by
// MaxAccessTokenAge, for JWT and opaque access tokens from devidp.
func TestAccessCookieMaxAge(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		ttl      time.Duration
		opaque   bool
		maxAge   time.Duration
		min, max int
	}{
		{name: "JWT, expires_in", ttl: 2 * time.Minute, min: 115, max: 120},
		{name: "opaque, expires_in", ttl: 2 * time.Minute, opaque: true, min: 115, max: 120},
		{name: "capped by MaxAccessTokenAge", ttl: 10 * time.Minute, maxAge: 30 * time.Second, min: 30, max: 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{
				idp:      func(c *devidp.Config) { c.AccessTokenTTL, c.OpaqueAccessTokens = tt.ttl, tt.opaque },
				exchange: func(c *Config) { c.MaxAccessTokenAge = tt.maxAge },
			})
			_, cb := e.rawLogin(t)
			c := cb.cookie(e.ex.names.access)
			if c == nil || c.MaxAge < tt.min || c.MaxAge > tt.max {
				t.Fatalf("access cookie %v, want Max-Age in [%d,%d]", c, tt.min, tt.max)
			}
			if _, isJWT := jwtExpiry(c.Value); isJWT == tt.opaque {
				t.Errorf("opaque=%v but the token is %q…", tt.opaque, c.Value[:10])
			}
		})
	}
}

// fakeJWT is an unsigned JWT with exp, enough for jwtExpiry.
func fakeJWT(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc(fmt.Appendf(nil, `{"exp":%d}`, exp.Unix())) + ".c2ln"
}

// TestAccessTokenAge: what servers send for expires_in, in the wild.
func TestAccessTokenAge(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	s := &Server{cfg: Config{MaxAccessTokenAge: 24 * time.Hour}}
	tests := []struct {
		name   string
		access string
		extra  map[string]any
		want   time.Duration
	}{
		{"seconds", "opaque", map[string]any{"expires_in": 300.0}, 5 * time.Minute},
		{"numeric string", "opaque", map[string]any{"expires_in": "300"}, 5 * time.Minute},
		{"absent", "opaque", nil, defaultAccessTokenAge},
		{"zero", "opaque", map[string]any{"expires_in": 0.0}, defaultAccessTokenAge},
		{"negative", "opaque", map[string]any{"expires_in": -5.0}, defaultAccessTokenAge},
		{"not a number", "opaque", map[string]any{"expires_in": "soon"}, defaultAccessTokenAge},
		{"NaN string", "opaque", map[string]any{"expires_in": "NaN"}, defaultAccessTokenAge},
		{"infinity", "opaque", map[string]any{"expires_in": "+Inf"}, 24 * time.Hour},
		{"nanoseconds", "opaque", map[string]any{"expires_in": 3.6e12}, 24 * time.Hour},
		{"past time.Duration's range", "opaque", map[string]any{"expires_in": 1e300}, 24 * time.Hour},
		{"fraction", "opaque", map[string]any{"expires_in": 0.2}, time.Second},
		{"JWT exp before expires_in", fakeJWT(now.Add(time.Minute)), map[string]any{"expires_in": 3600.0}, time.Minute},
		{"JWT exp after expires_in", fakeJWT(now.Add(time.Hour)), map[string]any{"expires_in": 60.0}, time.Minute},
		{"JWT exp, no expires_in", fakeJWT(now.Add(10 * time.Minute)), nil, 10 * time.Minute},
		{"JWT already expired", fakeJWT(now.Add(-time.Hour)), map[string]any{"expires_in": 60.0}, time.Second},
		{"JWT exp far ahead", fakeJWT(now.Add(1000 * time.Hour)), map[string]any{"expires_in": 1e9}, 24 * time.Hour},
	}
	for _, tt := range tests {
		tok := (&oauth2.Token{AccessToken: tt.access}).WithExtra(tt.extra)
		if got := s.accessTokenAge(tok, now); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestRefreshTokenAge: refresh_expires_in (Keycloak) when sent, capped.
func TestRefreshTokenAge(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: Config{RefreshCookieMaxAge: 24 * time.Hour}}
	for _, tt := range []struct {
		extra map[string]any
		want  time.Duration
	}{
		{nil, 24 * time.Hour},
		{map[string]any{"refresh_expires_in": 1800.0}, 30 * time.Minute},
		{map[string]any{"refresh_expires_in": 0.0}, 24 * time.Hour}, // Keycloak: 0 means no expiry of its own
		{map[string]any{"refresh_expires_in": 1e12}, 24 * time.Hour},
	} {
		if got := s.refreshTokenAge((&oauth2.Token{}).WithExtra(tt.extra)); got != tt.want {
			t.Errorf("%v: %v, want %v", tt.extra, got, tt.want)
		}
	}
}

// TestCookieTooLarge: a cookie a browser would drop is refused, and
// setTokenCookies then sets nothing at all.
func TestCookieTooLarge(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	if _, err := s.cookie(s.accessSpec(), strings.Repeat("a", 3900), time.Minute); err != nil {
		t.Errorf("a 3900-byte value: %v", err)
	}
	if _, err := s.cookie(s.accessSpec(), strings.Repeat("a", 4096), time.Minute); !errors.Is(err, errCookieTooLarge) {
		t.Errorf("a 4096-byte value: %v, want errCookieTooLarge", err)
	}

	tests := map[string]*oauth2.Token{
		"access token": {AccessToken: strings.Repeat("a", 5000), RefreshToken: "r"},
		// Sealing adds a third and base64.
		"refresh token": {AccessToken: "a", RefreshToken: strings.Repeat("r", 3500)},
	}
	for name, tok := range tests {
		w := httptest.NewRecorder()
		err := s.setTokenCookies(w, tok, &session{Subject: "alice"}, "")
		if !errors.Is(err, errCookieTooLarge) || len(w.Result().Cookies()) != 0 {
			t.Errorf("%s too large: err %v, %d cookies set", name, err, len(w.Result().Cookies()))
		}
	}

	// An ID token too large for the session cookie is left out (it is only
	// the end-session hint); the rest is kept.
	w := httptest.NewRecorder()
	sess := &session{Subject: "alice", IDToken: strings.Repeat("i", 5000)}
	if err := s.setTokenCookies(w, &oauth2.Token{AccessToken: "a"}, sess, ""); err != nil {
		t.Fatal(err)
	}
	var got session
	for _, c := range w.Result().Cookies() {
		if c.Name == s.names.session {
			if err := s.sealer.openJSON(c.Name, c.Value, &got); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got.Subject != "alice" || got.IDToken != "" {
		t.Errorf("session %+v, want alice without the ID token", got)
	}
}

// newTestServer is a Server with no authorization server behind it, for
// the functions that need none.
func newTestServer(t *testing.T) *Server {
	t.Helper()
	sl, err := newSealer(testSessionSecret)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{}
	cfg.setDefaults()
	cfg.Now = time.Now
	return &Server{cfg: cfg, now: cfg.Now, sealer: sl, names: newCookieNames(true, "")}
}

func TestTruncateClaim(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", maxClaimLen) // 2 bytes each
	got := truncateClaim(long)
	if len(got) > maxClaimLen || !strings.HasPrefix(long, got) || !utf8.ValidString(got) {
		t.Errorf("truncateClaim cut %d bytes into invalid UTF-8 or too long", len(got))
	}
	if got := truncateClaim("Alice"); got != "Alice" {
		t.Errorf("truncateClaim(Alice) = %q", got)
	}
}

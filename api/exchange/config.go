package exchange

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/store"
)

// Defaults for the zero values of Config, also used by cmd/exchange for its
// settings.
const (
	DefaultListenAddr  = ":3000"
	DefaultRedirectURL = "http://localhost:3000/oauth-callback"
	DefaultTodoAPIURL  = "http://localhost:8080"
	DefaultScopes      = "openid profile email offline_access todos:read todos:write"

	DefaultTransactionTTL      = 10 * time.Minute
	DefaultMaxTransactions     = 5
	DefaultMaxAccessTokenAge   = 24 * time.Hour
	DefaultRefreshCookieMaxAge = 30 * 24 * time.Hour
	DefaultRefreshGrace        = 20 * time.Second
	DefaultHTTPTimeout         = 10 * time.Second
	DefaultShutdownTimeout     = 20 * time.Second

	// MinSessionSecretBytes is the shortest SESSION_SECRET accepted.
	MinSessionSecretBytes = 32
)

// Client authentication methods at the token and revocation endpoints
// (Config.ClientAuth).
const (
	ClientAuthAuto  = "auto"
	ClientAuthBasic = "client_secret_basic"
	ClientAuthPost  = "client_secret_post"
)

// Config configures the exchange service. Zero fields take the documented
// defaults; Issuer, ClientID, ClientSecret and SessionSecret (outside
// DevMode) have none.
type Config struct {
	// ListenAddr is where ListenAndServe listens; default ":3000".
	ListenAddr string

	// Issuer is the authorization server's issuer identifier, compared
	// exactly as written (a trailing slash matters). Its OpenID Connect
	// discovery document must answer when New runs. Required.
	Issuer string
	// ClientID and ClientSecret are this confidential client's credentials
	// at the authorization server. Required.
	ClientID     string
	ClientSecret string
	// RedirectURL is the callback registered at the server; its path is
	// always /oauth-callback, and its origin is the exchange's public
	// origin. Default http://localhost:3000/oauth-callback.
	RedirectURL string
	// Scopes requested at login; must include openid. Default: openid
	// profile email offline_access todos:read todos:write.
	Scopes []string
	// Audience, when set, is sent in the authorization request as audience
	// (Auth0) and resource (RFC 8707).
	Audience string
	// ClientAuth is how the client authenticates at the token and
	// revocation endpoints: ClientAuthBasic, ClientAuthPost, or
	// ClientAuthAuto (default), which picks from the discovery document's
	// token_endpoint_auth_methods_supported (basic when both or neither are
	// listed, as RFC 8414 defaults).
	ClientAuth string
	// PostLogoutRedirectURL is the post_logout_redirect_uri sent to the
	// end-session endpoint. Default: RedirectURL's origin plus "/".
	PostLogoutRedirectURL string

	// CookieDomain, when set, is the Domain of the access token cookie
	// (then named __Secure-access_token) so that the todo API on a sibling
	// host receives it. Empty: host-only __Host-access_token. Every other
	// cookie is always host-only.
	CookieDomain string
	// InsecureCookies drops the Secure attribute and the __Host- and
	// __Secure- name prefixes, for plain-http deployments
	// (COOKIE_SECURE=false).
	InsecureCookies bool

	// SessionSecret keys the encrypted cookies: at least
	// MinSessionSecretBytes bytes, used as given (a hex or base64 string is
	// fine: it is input keying material for HKDF-SHA256, not decoded).
	// Required unless DevMode.
	SessionSecret []byte
	// DevMode makes a random SessionSecret when none is given, with a loud
	// warning: every restart then signs everybody out.
	DevMode bool

	// TodoAPIURL is told to the web page (GET /config.json) and allowed in
	// its Content-Security-Policy connect-src. Default
	// http://localhost:8080.
	TodoAPIURL string
	// WebDir, when set, serves the web page from this directory instead of
	// the embedded copy (for development).
	WebDir string

	// TransactionTTL is how long a login attempt may take; default 10m.
	TransactionTTL time.Duration
	// MaxTransactions caps the login attempts in flight per browser (one
	// cookie each); the oldest are dropped. Default 5.
	MaxTransactions int
	// MaxAccessTokenAge caps the access token cookie's Max-Age whatever
	// expires_in says; default 24h.
	MaxAccessTokenAge time.Duration
	// RefreshCookieMaxAge is the refresh token cookie's Max-Age when the
	// server sends no refresh_expires_in (and its cap when it does);
	// default 30 days.
	RefreshCookieMaxAge time.Duration
	// RefreshGrace is how long the result of a refresh is handed again to a
	// request that still carries the refresh token it replaced; default 20s,
	// negative disables. See the package documentation.
	RefreshGrace time.Duration

	// StoreURL is STORE_URL: "" keeps the refresh coordination in this
	// process (one instance); redis://… or rediss://… shares it with every
	// instance using the same Redis or Valkey, so that behind a load
	// balancer one refresh token is spent once (see the package
	// documentation). New opens it and Close closes it.
	StoreURL string
	// Store, when set, is used instead of opening StoreURL (and is not
	// closed by Close): any store.Store, the in-process one included,
	// turns on the shared coordination.
	Store store.Store

	// HTTPClient makes every request to the authorization server. Default:
	// a client with HTTPTimeout.
	HTTPClient *http.Client
	// HTTPTimeout bounds each request to the authorization server when
	// HTTPClient is nil; default 10s.
	HTTPTimeout time.Duration
	// ShutdownTimeout bounds graceful shutdown in ListenAndServe; default 20s.
	ShutdownTimeout time.Duration

	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives request lines and outcomes, never a token, code,
	// secret or cookie value; default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.RedirectURL == "" {
		c.RedirectURL = DefaultRedirectURL
	}
	if c.Scopes == nil {
		c.Scopes = strings.Fields(DefaultScopes)
	}
	if c.ClientAuth == "" {
		c.ClientAuth = ClientAuthAuto
	}
	if c.TodoAPIURL == "" {
		c.TodoAPIURL = DefaultTodoAPIURL
	}
	if c.TransactionTTL <= 0 {
		c.TransactionTTL = DefaultTransactionTTL
	}
	if c.MaxTransactions <= 0 {
		c.MaxTransactions = DefaultMaxTransactions
	}
	if c.MaxAccessTokenAge <= 0 {
		c.MaxAccessTokenAge = DefaultMaxAccessTokenAge
	}
	if c.RefreshCookieMaxAge <= 0 {
		c.RefreshCookieMaxAge = DefaultRefreshCookieMaxAge
	}
	if c.RefreshGrace == 0 {
		c.RefreshGrace = DefaultRefreshGrace
	}
	if c.HTTPTimeout <= 0 {
		c.HTTPTimeout = DefaultHTTPTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.PostLogoutRedirectURL == "" {
		if u, err := url.Parse(c.RedirectURL); err == nil && u.Host != "" {
			c.PostLogoutRedirectURL = u.Scheme + "://" + u.Host + "/"
		}
	}
	c.CookieDomain = strings.TrimPrefix(strings.TrimSpace(c.CookieDomain), ".")
}

// validate reports every problem at once, each naming its setting. It
// expects setDefaults first.
func (c *Config) validate() error {
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, errors.New("exchange: ISSUER is required"))
	} else if !isHTTPURL(c.Issuer) {
		errs = append(errs, fmt.Errorf("exchange: ISSUER %q is not an http(s) URL", c.Issuer))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("exchange: CLIENT_ID is required"))
	}
	if c.ClientSecret == "" {
		errs = append(errs, errors.New("exchange: CLIENT_SECRET is required"))
	}
	if u, err := url.Parse(c.RedirectURL); err != nil || !isHTTPURL(c.RedirectURL) || u.Path != callbackPath || u.RawQuery != "" {
		errs = append(errs, fmt.Errorf("exchange: REDIRECT_URL %q must be an http(s) URL with the path %s and no query", c.RedirectURL, callbackPath))
	} else if !c.InsecureCookies && u.Scheme != "https" && !isLoopbackHost(u.Hostname()) {
		// Browsers drop Secure cookies set over plain http, except on
		// localhost: the login would end without cookies.
		errs = append(errs, fmt.Errorf("exchange: REDIRECT_URL %q is plain http on a non-loopback host, where browsers refuse Secure cookies: use https or COOKIE_SECURE=false", c.RedirectURL))
	}
	if !slices.Contains(c.Scopes, "openid") {
		errs = append(errs, errors.New("exchange: SCOPES must include openid (the ID token names the user and carries the nonce)"))
	}
	switch c.ClientAuth {
	case ClientAuthAuto, ClientAuthBasic, ClientAuthPost:
	default:
		errs = append(errs, fmt.Errorf("exchange: CLIENT_AUTH %q: want auto, client_secret_basic or client_secret_post", c.ClientAuth))
	}
	if !isHTTPURL(c.PostLogoutRedirectURL) {
		errs = append(errs, fmt.Errorf("exchange: POST_LOGOUT_REDIRECT_URL %q is not an http(s) URL", c.PostLogoutRedirectURL))
	}
	if d := c.CookieDomain; d != "" {
		if strings.ContainsAny(d, " ;,/:=\"") || (!strings.Contains(d, ".") && d != "localhost") {
			errs = append(errs, fmt.Errorf("exchange: COOKIE_DOMAIN %q is not a domain name such as example.com", d))
		} else if u, err := url.Parse(c.RedirectURL); err == nil {
			// A browser drops a cookie whose Domain does not cover the host
			// that sets it.
			if h := strings.ToLower(u.Hostname()); h != strings.ToLower(d) && !strings.HasSuffix(h, "."+strings.ToLower(d)) {
				errs = append(errs, fmt.Errorf("exchange: COOKIE_DOMAIN %q does not cover REDIRECT_URL's host %q", d, h))
			}
		}
	}
	if !isHTTPURL(c.TodoAPIURL) {
		errs = append(errs, fmt.Errorf("exchange: TODO_API_URL %q is not an http(s) URL", c.TodoAPIURL))
	}
	switch {
	case len(c.SessionSecret) == 0 && !c.DevMode:
		errs = append(errs, errors.New("exchange: SESSION_SECRET is required (at least 32 bytes, e.g. `openssl rand -base64 32`) unless DEV_MODE=true"))
	case len(c.SessionSecret) > 0 && len(c.SessionSecret) < MinSessionSecretBytes:
		errs = append(errs, fmt.Errorf("exchange: SESSION_SECRET is %d bytes long; it must be at least %d (e.g. `openssl rand -base64 32`)", len(c.SessionSecret), MinSessionSecretBytes))
	}
	if c.WebDir != "" {
		if fi, err := os.Stat(c.WebDir); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("exchange: WEB_DIR %q is not a directory", c.WebDir))
		}
	}
	return errors.Join(errs...)
}

func isHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Fragment == ""
}

// origin returns scheme://host[:port] of an absolute URL.
func origin(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// redirectHost returns the host name of an absolute URL, without port.
func redirectHost(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

func isLoopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return true
	}
	return h == "127.0.0.1" || h == "::1" || strings.HasPrefix(h, "127.")
}

package exchange

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/tollgate-dev/tollgate/internal/httpserve"
	"github.com/tollgate-dev/tollgate/store"
)

// ErrDiscovery is returned by New when the issuer's discovery document
// cannot be fetched or names another issuer.
var ErrDiscovery = errors.New("exchange: OpenID Connect discovery failed")

// Server is the exchange service. It is safe for concurrent use; it keeps
// no login state in memory (only the short refresh grace cache), so several
// instances can serve one site.
type Server struct {
	cfg    Config
	logger *slog.Logger
	now    func() time.Time

	sealer   *sealer
	names    cookieNames
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
	meta     metadata
	client   *http.Client
	origin   string // the exchange's public origin, from RedirectURL
	// plantDomains are the Domain= values under which other hosts of the
	// site can plant cookies that reach the exchange (see plantDomains).
	plantDomains []string

	flights singleflight.Group
	grace   *graceCache
	// shared, with STORE_URL, coordinates refreshes with the other
	// instances (sharedrefresh.go); nil keeps them to flights and grace.
	shared  *sharedStore
	metrics *metrics
	web     fs.FS
	handler http.Handler
}

// metadata are the discovery fields beyond what go-oidc reads.
type metadata struct {
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	RevocationEndpoint    string   `json:"revocation_endpoint"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	TokenAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
	// IssParameter is RFC 9207's authorization_response_iss_parameter_supported:
	// when true, every authorization response must carry iss.
	IssParameter bool `json:"authorization_response_iss_parameter_supported"`
}

// New builds the exchange service from cfg. It fetches the issuer's OpenID
// Connect discovery document now, with ctx, and fails when it does not
// answer or names another issuer. Signing keys are fetched later, when the
// first ID token arrives.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	secret := cfg.SessionSecret
	if len(secret) == 0 {
		// validate allows this only in DevMode.
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
		logger.Warn("DEV_MODE: SESSION_SECRET is unset, so a random one was made; every restart signs everybody out and instances cannot share cookies. NEVER run like this in production.")
	}
	sealer, err := newSealer(secret)
	if err != nil {
		return nil, err
	}

	forgetFor := max(time.Minute, 2*cfg.HTTPTimeout)
	// Before discovery, so that a bad STORE_URL is refused at once.
	var shared *sharedStore
	if cfg.Store != nil || cfg.StoreURL != "" {
		st, owned := cfg.Store, false
		if st == nil {
			if st, err = store.Open(cfg.StoreURL); err != nil {
				return nil, fmt.Errorf("exchange: %w", err)
			}
			owned = true
		}
		if shared, err = newSharedStore(st, owned, secret, &cfg, forgetFor); err != nil {
			if owned {
				st.Close()
			}
			return nil, err
		}
		// Closed again unless New succeeds.
		defer func() {
			if err != nil && owned {
				st.Close()
			}
		}()
	}

	client := guardedClient(cfg.HTTPClient, cfg.HTTPTimeout)
	dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, client), cfg.HTTPTimeout)
	defer cancel()
	// The provider keeps the client (not ctx) for its key set fetches.
	provider, err := oidc.NewProvider(dctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w for ISSUER %q: %w", ErrDiscovery, cfg.Issuer, err)
	}
	var meta metadata
	if err := provider.Claims(&meta); err != nil {
		return nil, fmt.Errorf("exchange: discovery for ISSUER %q: %w", cfg.Issuer, err)
	}
	endpoint := provider.Endpoint()
	if endpoint.AuthURL == "" || endpoint.TokenURL == "" {
		return nil, fmt.Errorf("exchange: the discovery document of %q lacks authorization_endpoint or token_endpoint", cfg.Issuer)
	}
	if err := checkEndpoints(cfg.Issuer, meta); err != nil {
		return nil, err
	}
	if meta.RevocationEndpoint == "" {
		logger.Warn("the issuer's discovery document names no revocation_endpoint: sign-out cannot revoke tokens at this issuer (it still clears the cookies, and answers revocation: no_revocation_endpoint)", "issuer", cfg.Issuer)
	}
	style, method, err := chooseAuthStyle(cfg.ClientAuth, meta.TokenAuthMethods)
	if err != nil {
		return nil, err
	}
	endpoint.AuthStyle = style

	web, err := webFS(cfg.WebDir)
	if err != nil {
		return nil, err
	}

	s := &Server{
		cfg:    cfg,
		logger: logger,
		now:    cfg.Now,
		sealer: sealer,
		names:  newCookieNames(!cfg.InsecureCookies, cfg.CookieDomain),
		oauth: &oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint:     endpoint,
			RedirectURL:  cfg.RedirectURL,
			Scopes:       cfg.Scopes,
		},
		verifier:     provider.Verifier(&oidc.Config{ClientID: cfg.ClientID, Now: cfg.Now}),
		meta:         meta,
		client:       client,
		origin:       origin(cfg.RedirectURL),
		plantDomains: plantDomains(redirectHost(cfg.RedirectURL), cfg.CookieDomain),
		grace:        newGraceCache(cfg.RefreshGrace, forgetFor, cfg.Now),
		shared:       shared,
		metrics:      newMetrics(),
		web:          web,
	}
	s.handler = httpserve.Wrap(s.routes(), logger)
	logger.Info("exchange ready", "issuer", cfg.Issuer, "client_id", cfg.ClientID,
		"client_auth", method, "redirect_url", cfg.RedirectURL,
		"revocation", meta.RevocationEndpoint != "", "end_session", meta.EndSessionEndpoint != "",
		"cookie_domain", cfg.CookieDomain, "secure_cookies", !cfg.InsecureCookies,
		"store", storeName(cfg),
		"web", map[bool]string{true: "embedded", false: cfg.WebDir}[cfg.WebDir == ""])
	return s, nil
}

// ServeHTTP serves every endpoint, through httpserve.Wrap: a request id,
// panic recovery and one request log line.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Close releases what New opened: the store of StoreURL, when set (the
// exchange holds no other connection or background work).
func (s *Server) Close() error {
	if s.shared != nil && s.shared.owned {
		return s.shared.st.Close()
	}
	return nil
}

// storeName is the store as logged: never the URL's password.
func storeName(cfg Config) string {
	if cfg.Store != nil {
		return "given"
	}
	return store.Redacted(cfg.StoreURL)
}

// checkEndpoints refuses a transport downgrade from the discovery
// document: every endpoint it names that the exchange uses
// (authorization_endpoint, token_endpoint, revocation_endpoint,
// end_session_endpoint, jwks_uri) must be an absolute https URL, with a
// host name ("https://:443/x" has none: Go would dial this machine with
// it), when ISSUER is https. Only when ISSUER itself is http:// (an
// operator's explicit choice, such as devidp on loopback) may the document
// name http:// endpoints, with a host name too. The exchange reads no
// userinfo_endpoint.
func checkEndpoints(issuer string, meta metadata) error {
	iu, err := url.Parse(issuer)
	if err != nil {
		return fmt.Errorf("exchange: ISSUER %q: %w", issuer, err)
	}
	allowHTTP := iu.Scheme == "http"
	for _, f := range []struct{ name, value string }{
		{"authorization_endpoint", meta.AuthorizationEndpoint},
		{"token_endpoint", meta.TokenEndpoint},
		{"revocation_endpoint", meta.RevocationEndpoint},
		{"end_session_endpoint", meta.EndSessionEndpoint},
		{"jwks_uri", meta.JWKSURI},
	} {
		if f.value == "" {
			continue
		}
		u, err := url.Parse(f.value)
		ok := err == nil && u.Hostname() != "" && (u.Scheme == "https" || (allowHTTP && u.Scheme == "http"))
		if ok {
			continue
		}
		if allowHTTP {
			return fmt.Errorf("exchange: the discovery document of %q names a %s that is not an absolute http(s) URL (%q)", issuer, f.name, f.value)
		}
		return fmt.Errorf("exchange: the discovery document of %q names a %s that is not an absolute https URL (%q): with an https ISSUER, every endpoint must be https (no transport downgrade)", issuer, f.name, f.value)
	}
	return nil
}

// chooseAuthStyle turns CLIENT_AUTH into an explicit oauth2.AuthStyle, never
// AuthStyleAutoDetect, which retries a refused request the other way (a
// second use of a one-time code, or of a rotating refresh token).
func chooseAuthStyle(setting string, supported []string) (oauth2.AuthStyle, string, error) {
	switch setting {
	case ClientAuthBasic:
		return oauth2.AuthStyleInHeader, ClientAuthBasic, nil
	case ClientAuthPost:
		return oauth2.AuthStyleInParams, ClientAuthPost, nil
	}
	// RFC 8414 §2: an absent list means client_secret_basic.
	if len(supported) == 0 || slices.Contains(supported, ClientAuthBasic) {
		return oauth2.AuthStyleInHeader, ClientAuthBasic, nil
	}
	if slices.Contains(supported, ClientAuthPost) {
		return oauth2.AuthStyleInParams, ClientAuthPost, nil
	}
	return 0, "", fmt.Errorf("exchange: CLIENT_AUTH=auto: the server supports neither client_secret_basic nor client_secret_post (it lists %q)", supported)
}

// webFS is the embedded web page, or dir when set.
func webFS(dir string) (fs.FS, error) {
	if dir != "" {
		return os.DirFS(dir), nil
	}
	sub, err := fs.Sub(embeddedWeb, "web")
	if err != nil {
		return nil, errors.New("exchange: embedded web page missing")
	}
	return sub, nil
}

// maxServerResponseBytes bounds every answer read from the authorization
// server (discovery, JWKS, token, revocation): go-oidc reads its bodies
// whole.
const maxServerResponseBytes = 1 << 20

// guardedClient is base (or a client with timeout) that never follows a
// redirect, since a 307 from the token endpoint would re-post the code, the
// verifier and, with client_secret_post, the secret to wherever it points;
// and whose response bodies end in an error past maxServerResponseBytes.
func guardedClient(base *http.Client, timeout time.Duration) *http.Client {
	c := &http.Client{Timeout: timeout}
	if base != nil {
		copied := *base
		c = &copied
	}
	transport := c.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	c.Transport = cappedTransport{base: transport, max: maxServerResponseBytes}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// cappedTransport caps the bodies of the responses of base.
type cappedTransport struct {
	base http.RoundTripper
	max  int64
}

func (t cappedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: t.max}
	return resp, nil
}

// errResponseTooLarge ends the read of an answer over the cap.
var errResponseTooLarge = errors.New("exchange: the authorization server's answer is too large")

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errResponseTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	return n, err
}

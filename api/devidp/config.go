package devidp

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Defaults, also used by cmd/devidp for its settings.
const (
	DefaultListenAddr      = "127.0.0.1:9000"
	DefaultIssuer          = "http://localhost:9000"
	DefaultAudience        = "todo-api"
	DefaultAccessTokenTTL  = 5 * time.Minute
	DefaultRefreshTokenTTL = 24 * time.Hour

	DefaultExchangeClientID           = "tollgate-exchange"
	DefaultExchangeClientSecret       = "dev-exchange-secret"
	DefaultExchangeRedirectURL        = "http://localhost:3000/oauth-callback"
	DefaultExchangePostLogoutRedirect = "http://localhost:3000/"
	DefaultIntrospectionClientID      = "tollgate-todo-api"
	DefaultIntrospectionClientSecret  = "dev-introspection-secret"
	// The public development client (DefaultCLIClient): no secret, PKCE,
	// a loopback redirect on any port (RFC 8252 §7.3).
	DefaultCLIClientID    = "tollgate-cli"
	DefaultCLIRedirectURL = "http://127.0.0.1/callback"
)

// Authentication context classes (the acr claim) the server issues, for
// RFC 9470 step-up. ACRPassword is a sign-in with the password alone, the
// default. ACRTwoFactor is the password and then a second step, the user's
// SecondFactor code (a stand-in for a real second factor), asked for when
// the authorization request's acr_values prefers it. Both go into ID
// tokens, access tokens and introspection answers, with auth_time.
const (
	ACRPassword  = "urn:tollgate:acr:password"
	ACRTwoFactor = "urn:tollgate:acr:2fa"
)

// DefaultSecondFactor is the second-step code of every user without one
// of their own.
const DefaultSecondFactor = "123456"

// Scopes lists every scope the server grants. A client gets the ones it asked
// for; a refresh token comes only with offline_access.
var Scopes = []string{"openid", "profile", "email", "offline_access", "todos:read", "todos:write"}

// Config configures the server. Zero fields take the documented defaults.
type Config struct {
	// Issuer is the server's issuer identifier and the base URL of every
	// endpoint. Required by New; cmd/devidp sets IssuerFor(listener
	// address), http://localhost:PORT, when it is empty.
	Issuer string

	// ListenAddr is where Listen listens. Default 127.0.0.1:9000.
	ListenAddr string
	// AllowNonLoopback lets Listen listen on an address that other
	// machines can reach. Off by default: this server's secrets are public.
	AllowNonLoopback bool

	// Audience is the aud of every access token. Default "todo-api".
	Audience string
	// AccessTokenTTL is the access token lifetime. Default 5m.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the refresh token lifetime. Default 24h.
	RefreshTokenTTL time.Duration
	// OpaqueAccessTokens issues opaque (HMAC) access tokens, which resource
	// servers must introspect, instead of JWTs.
	OpaqueAccessTokens bool

	// Users who can sign in. Default DemoUsers().
	Users []User
	// Clients registered at start. Default DefaultClients().
	Clients []Client

	// SigningKey signs access and ID tokens (RS256). Default: a fresh
	// 2048-bit key, so a restart invalidates every token.
	SigningKey *rsa.PrivateKey

	// Logger receives the "DEVELOPMENT ONLY" warning, one line per request
	// (httpserve.Wrap: id, method, path, route, status; never a query,
	// body, code or token) and why fosite refused a request. Default:
	// discard.
	Logger *slog.Logger
}

// User is a demo user who signs in on the login page.
type User struct {
	Subject  string // sub; default Username, which keeps sub stable across restarts
	Username string
	Password string
	Name     string
	Email    string
	// SecondFactor is the code the second sign-in step asks for, when an
	// authorization request wants ACRTwoFactor; default
	// DefaultSecondFactor. Public, like the password: development only.
	SecondFactor string
}

// Client is a registered OAuth client. A confidential one (the default)
// authenticates with client_secret_basic or client_secret_post. A client
// with RedirectURIs may run the authorization code and refresh grants; a
// confidential one without (the todo API's introspection client) can only
// call /introspect and /revoke.
//
// A Public client (RFC 6749 §2.1: a native app, a command-line tool) has
// no Secret and names itself with client_id alone (token endpoint auth
// method "none"); PKCE protects its codes, as every client's, and DPoP
// binds its refresh tokens to its key (RFC 9449 §5). It needs
// RedirectURIs and cannot introspect. A loopback IP redirect URI
// (http://127.0.0.1/…) matches on any port (RFC 8252 §7.3).
type Client struct {
	ID                     string
	Secret                 string
	Public                 bool
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
}

// DemoUsers returns alice/alice and bob/bob.
func DemoUsers() []User {
	return []User{
		{Username: "alice", Password: "alice", Name: "Alice Example", Email: "alice@example.com"},
		{Username: "bob", Password: "bob", Name: "Bob Example", Email: "bob@example.com"},
	}
}

// DefaultCLIClient is the public development client: tollgate-cli, no
// secret, redirect to http://127.0.0.1/callback on any port, for
// command-line tools and tests that get DPoP-bound tokens.
func DefaultCLIClient() Client {
	return Client{ID: DefaultCLIClientID, Public: true, RedirectURIs: []string{DefaultCLIRedirectURL}}
}

// DefaultClients returns the exchange's client and the todo API's
// introspection client with their development secrets, and the public
// DefaultCLIClient.
func DefaultClients() []Client {
	return []Client{
		{
			ID:                     DefaultExchangeClientID,
			Secret:                 DefaultExchangeClientSecret,
			RedirectURIs:           []string{DefaultExchangeRedirectURL},
			PostLogoutRedirectURIs: []string{DefaultExchangePostLogoutRedirect},
		},
		{ID: DefaultIntrospectionClientID, Secret: DefaultIntrospectionClientSecret},
		DefaultCLIClient(),
	}
}

func (c Config) withDefaults() Config {
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.AccessTokenTTL == 0 {
		c.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if c.RefreshTokenTTL == 0 {
		c.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Users == nil {
		c.Users = DemoUsers()
	}
	if c.Clients == nil {
		c.Clients = DefaultClients()
	}
	users := make([]User, len(c.Users))
	for i, u := range c.Users {
		if u.Subject == "" {
			u.Subject = u.Username
		}
		if u.SecondFactor == "" {
			u.SecondFactor = DefaultSecondFactor
		}
		users[i] = u
	}
	c.Users = users
	c.Issuer = strings.TrimRight(c.Issuer, "/")
	return c
}

// validate reports every problem at once. It expects withDefaults first.
func (c Config) validate() error {
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, errors.New("devidp: Issuer is required"))
	} else if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(c.Issuer, "#") {
		// An empty "?" or "#" counts too: the endpoint URLs are the
		// Issuer and a path, which would land in the query or fragment,
		// and every endpoint's DPoP htu would be the Issuer's root.
		errs = append(errs, fmt.Errorf("devidp: Issuer %q is not an http(s) URL without query or fragment", c.Issuer))
	}
	if c.AccessTokenTTL < time.Second {
		errs = append(errs, fmt.Errorf("devidp: AccessTokenTTL %v is shorter than a second", c.AccessTokenTTL))
	}
	if c.RefreshTokenTTL < time.Second {
		errs = append(errs, fmt.Errorf("devidp: RefreshTokenTTL %v is shorter than a second", c.RefreshTokenTTL))
	}
	if c.SigningKey != nil && c.SigningKey.N.BitLen() < 2048 {
		errs = append(errs, errors.New("devidp: SigningKey is shorter than 2048 bits"))
	}
	seen := map[string]bool{}
	for _, u := range c.Users {
		switch {
		case u.Username == "" || u.Password == "":
			errs = append(errs, fmt.Errorf("devidp: user %q needs a username and a password", u.Username))
		case seen["user:"+u.Username]:
			errs = append(errs, fmt.Errorf("devidp: user %q is listed twice", u.Username))
		}
		seen["user:"+u.Username] = true
	}
	for _, cl := range c.Clients {
		switch {
		case cl.ID == "":
			errs = append(errs, errors.New("devidp: a client has no ID"))
		case !cl.Public && cl.Secret == "":
			errs = append(errs, fmt.Errorf("devidp: client %q has no secret", cl.ID))
		case cl.Public && cl.Secret != "":
			errs = append(errs, fmt.Errorf("devidp: public client %q has a secret", cl.ID))
		case cl.Public && len(cl.RedirectURIs) == 0:
			errs = append(errs, fmt.Errorf("devidp: public client %q has no redirect URI", cl.ID))
		case seen["client:"+cl.ID]:
			errs = append(errs, fmt.Errorf("devidp: client %q is listed twice", cl.ID))
		}
		seen["client:"+cl.ID] = true
		for _, raw := range append(append([]string(nil), cl.RedirectURIs...), cl.PostLogoutRedirectURIs...) {
			if u, err := url.Parse(raw); err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
				errs = append(errs, fmt.Errorf("devidp: client %q: %q is not an absolute URL without fragment", cl.ID, raw))
			}
		}
	}
	return errors.Join(errs...)
}

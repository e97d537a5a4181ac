package middleware

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// Mode says how tokens are verified.
type Mode string

// The verification modes.
const (
	// ModeJWT verifies every token locally as a signed JWT (the default).
	ModeJWT Mode = "jwt"
	// ModeIntrospection asks the authorization server about every token
	// (RFC 7662), through the introspection client's cache.
	ModeIntrospection Mode = "introspection"
	// ModeHybrid verifies JWS-shaped tokens locally and introspects the
	// rest (opaque tokens, JWE).
	ModeHybrid Mode = "hybrid"
)

// ParseMode reads a mode name as written in settings.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case "", ModeJWT:
		return ModeJWT, nil
	case ModeIntrospection, ModeHybrid:
		return m, nil
	}
	return "", fmt.Errorf("middleware: unknown mode %q (want jwt, introspection or hybrid)", s)
}

// Defaults for the zero values of Config.
const (
	DefaultClockSkew          = 60 * time.Second
	DefaultMaxTokenBytes      = 16 << 10
	DefaultCacheSize          = 10_000
	DefaultCacheMaxAge        = 5 * time.Minute
	DefaultJWKSRefresh        = time.Hour
	DefaultJWKSMinRefresh     = 10 * time.Second
	DefaultHTTPTimeout        = 5 * time.Second
	DefaultMaxMetadataBytes   = 1 << 20
	DefaultAllowedClockFuture = 0
)

// DefaultAlgorithms are the JWS algorithms accepted when Config.Algorithms is
// empty: what authorization servers sign access tokens with in practice.
var DefaultAlgorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

// DefaultCookieNames are read, in order, when there is no Authorization
// header and Config.CookieNames is empty.
var DefaultCookieNames = []string{"__Host-access_token", "__Secure-access_token"}

// asymmetricAlgorithms are the algorithms a JWKS key can be used with.
var asymmetricAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Config configures an Authenticator. Its zero fields mean the documented
// defaults; Issuer and Audiences have none.
type Config struct {
	// Mode is how tokens are verified; default ModeJWT.
	Mode Mode
	// Introspector answers for tokens in ModeIntrospection and ModeHybrid,
	// typically an *introspection.Client, ready to use: New does not look
	// inside it. To use the issuer's introspection_endpoint, discover it
	// first (Discover, Metadata.IntrospectionURL) and pass that Metadata.
	Introspector Introspector
	// Metadata is the issuer's metadata when the caller has already
	// discovered it (see Discover); New then takes jwks_uri from it instead
	// of discovering again. Its Issuer must equal Issuer. Optional.
	Metadata *Metadata

	// Issuer is the expected iss claim, compared exactly as written
	// (a trailing slash matters). Required.
	Issuer string
	// Audiences are the accepted aud values; a JWT must name at least one.
	// Required for JWTs (ModeJWT, ModeHybrid); with introspection, checked
	// when both the answer and this list have audiences.
	Audiences []string

	// JWKSURL is where the issuer publishes its keys. Empty: read jwks_uri
	// from the issuer's metadata (OpenID Connect Discovery, then RFC 8414).
	JWKSURL string
	// Algorithms is the allowlist of JWS algorithms; default
	// DefaultAlgorithms. "none" and HMAC algorithms are refused here.
	Algorithms []string
	// HMACSecret, when set, makes the Authenticator accept HS256 tokens
	// signed with it and nothing else: no JWKS is fetched. For servers that
	// sign with a shared secret. At least 32 bytes.
	HMACSecret []byte
	// ClockSkew is the leeway for exp, nbf and iat; default 60s. Use a
	// negative value for none.
	ClockSkew time.Duration
	// RequireATJWT demands the RFC 9068 header typ "at+jwt".
	RequireATJWT bool
	// MaxTokenBytes bounds the token length; default 16 KiB.
	MaxTokenBytes int

	// CookieNames are the cookies a token is read from when there is no
	// Authorization header, first present wins; default DefaultCookieNames.
	// Set DisableCookies to read the header only.
	CookieNames    []string
	DisableCookies bool
	// AllowedOrigins are the origins (scheme://host[:port]) whose unsafe
	// requests may carry a cookie-borne token. New puts each in the form
	// browsers send (see NormalizeOrigin) and refuses anything else.
	AllowedOrigins []string

	// Realm goes into WWW-Authenticate challenges when set.
	Realm string

	// CacheSize bounds the verified-token cache; default 10,000 entries.
	// A negative value disables the cache.
	CacheSize int
	// CacheMaxAge is the longest a verified token is reused without a new
	// signature check (never past its exp); default 5 minutes.
	CacheMaxAge time.Duration

	// JWKSRefreshInterval is how often keys are fetched again; default 1h.
	JWKSRefreshInterval time.Duration
	// JWKSMinRefreshInterval is the least time between two fetches caused
	// by tokens with an unknown kid; default 10s. A token whose kid cannot
	// be refreshed now is refused at once instead of waiting.
	JWKSMinRefreshInterval time.Duration
	// HTTPClient fetches metadata and keys; default a client with
	// HTTPTimeout.
	HTTPClient *http.Client
	// HTTPTimeout bounds each metadata or key fetch; default 5s.
	HTTPTimeout time.Duration

	// Logger receives one line for every refused token, with a reason and
	// a short hash of the token; default slog.Default().
	Logger *slog.Logger
	// OnOutcome, when set, is called once for every authentication, for
	// metrics. It must be fast and safe for concurrent use.
	OnOutcome func(Outcome)
	// OnKeyRefresh, when set, is called after every JWKS fetch with its
	// error (nil on success).
	OnKeyRefresh func(error)
	// Now is the clock; default time.Now.
	Now func() time.Time

	// ValidateClaims, when set, is the application's own check of every
	// caller (a tenant, azp or client_id, any custom rule). It runs after
	// all built-in checks have passed, on every request, cache hits
	// included: ctx is the request's context, so a rule may depend on the
	// request (its tenant, say), and the verified-token cache, which holds
	// only the outcome of the built-in checks, never lets a request past it.
	// It must be fast and safe for concurrent use, and must not modify p's
	// shared Claims and Scopes (principal.DecodeClaims gives a copy).
	//
	// A nil error accepts the caller. Otherwise the function chooses the
	// answer with the sentinels: an error wrapping ErrScope is 403
	// insufficient_scope, one wrapping ErrUnavailable 503 (a registry it
	// consults is down: no verdict on the token), anything else 401
	// invalid_token. The answer keeps the realm and has reason
	// ReasonClaims (ReasonUnavailable for 503) and a fixed description;
	// the error's text is logged, never sent to the client.
	ValidateClaims func(ctx context.Context, p principal.Principal) error
	// ErrorHandler, when set, writes every refusal of Require, Optional,
	// RequireScopes, RequireAnyScope, the Gin adapter and
	// (*Authenticator).WriteError, in place of the default answer. The
	// error it gets carries the realm: Reason and Challenge give the
	// reason, status and WWW-Authenticate value of the default answer, and
	// the package-level WriteError writes that answer, e.g. for the errors
	// it does not customise. (Not (*Authenticator).WriteError, which would
	// call ErrorHandler again.)
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
}

// Outcome describes one authentication for observers.
type Outcome struct {
	Reason string // ReasonOK or why the request was refused
	Cached bool   // answered from the verified-token cache
	Source string // "header", "cookie" or "" when no token was found
	Err    error  // nil on success
}

func (c *Config) setDefaults() {
	if len(c.Algorithms) == 0 {
		c.Algorithms = DefaultAlgorithms
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	} else if c.ClockSkew < 0 {
		c.ClockSkew = 0
	}
	if c.MaxTokenBytes <= 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if len(c.CookieNames) == 0 && !c.DisableCookies {
		c.CookieNames = DefaultCookieNames
	}
	if c.DisableCookies {
		c.CookieNames = nil
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.CacheMaxAge <= 0 {
		c.CacheMaxAge = DefaultCacheMaxAge
	}
	if c.JWKSRefreshInterval <= 0 {
		c.JWKSRefreshInterval = DefaultJWKSRefresh
	}
	if c.JWKSMinRefreshInterval <= 0 {
		c.JWKSMinRefreshInterval = DefaultJWKSMinRefresh
	}
	if c.HTTPTimeout <= 0 {
		c.HTTPTimeout = DefaultHTTPTimeout
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.HTTPTimeout}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if len(c.HMACSecret) > 0 {
		c.Algorithms = []string{"HS256"}
	}
}

// validate reports every problem of a defaulted Config at once.
func (c *Config) validate() error {
	var errs []error
	if c.Issuer == "" {
		errs = append(errs, errors.New("middleware: Issuer is required"))
	}
	switch c.Mode {
	case "":
		c.Mode = ModeJWT
	case ModeJWT, ModeIntrospection, ModeHybrid:
	default:
		errs = append(errs, fmt.Errorf("middleware: unknown Mode %q", c.Mode))
	}
	if (c.Mode != ModeIntrospection && len(c.Audiences) == 0) || slices.Contains(c.Audiences, "") {
		errs = append(errs, errors.New("middleware: Audiences is required for JWTs and may not contain an empty value"))
	}
	if c.Mode != ModeJWT && c.Introspector == nil {
		errs = append(errs, fmt.Errorf("middleware: Mode %s needs an Introspector", c.Mode))
	}
	if len(c.HMACSecret) > 0 {
		if len(c.HMACSecret) < 32 {
			errs = append(errs, errors.New("middleware: HMACSecret must be at least 32 bytes (RFC 7518 §3.2)"))
		}
	} else {
		for _, alg := range c.Algorithms {
			switch {
			case strings.EqualFold(alg, "none"):
				errs = append(errs, errors.New(`middleware: alg "none" is never accepted`))
			case strings.HasPrefix(alg, "HS"):
				errs = append(errs, fmt.Errorf("middleware: algorithm %q needs HMACSecret, and then is the only one accepted", alg))
			case !slices.Contains(asymmetricAlgorithms, alg):
				errs = append(errs, fmt.Errorf("middleware: unknown algorithm %q (known: %s)", alg, strings.Join(asymmetricAlgorithms, ", ")))
			}
		}
	}
	if c.Metadata != nil && c.Metadata.Issuer != c.Issuer {
		errs = append(errs, fmt.Errorf("middleware: Metadata names issuer %q, want exactly %q", c.Metadata.Issuer, c.Issuer))
	}
	if c.JWKSURL != "" {
		if err := checkHTTPURL(c.JWKSURL); err != nil {
			errs = append(errs, fmt.Errorf("middleware: JWKSURL: %w", err))
		}
	}
	origins := make([]string, 0, len(c.AllowedOrigins))
	for _, o := range c.AllowedOrigins {
		n, err := NormalizeOrigin(o)
		if err != nil {
			errs = append(errs, fmt.Errorf("middleware: AllowedOrigins: %w", err))
		} else if !slices.Contains(origins, n) {
			origins = append(origins, n)
		}
	}
	// The request's Origin is compared exactly, so keep the form browsers
	// send.
	c.AllowedOrigins = origins
	for _, n := range c.CookieNames {
		if n == "" || strings.ContainsAny(n, " \t;,=\"") {
			errs = append(errs, fmt.Errorf("middleware: CookieNames: %q is not a cookie name", n))
		}
	}
	return errors.Join(errs...)
}

func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL", raw)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", raw)
	}
	return nil
}

package todoapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/todos"
)

// Config is the todo API's configuration, one field per setting of the
// todo-api program (the setting's name is in each comment; see the README).
// This package owns every default and every check: a zero field means the
// default of DefaultConfig, except where its comment says otherwise, and
// New reports every problem at once, naming the settings.
type Config struct {
	ListenAddr  string // LISTEN_ADDR, used by cmd/todo-api
	DatabaseURL string // DATABASE_URL: "sqlite:PATH" or "postgres://…"

	AuthMode middleware.Mode // AUTH_MODE
	// Issuers are the trusted issuers (ISSUER, a comma-separated list),
	// required: one, or several in jwt mode, each discovered on its own
	// and trusted with its own keys only. Every issuer's tokens must name
	// one of Audiences.
	Issuers    []string
	Audiences  []string      // AUDIENCE, required unless AuthMode is introspection
	JWKSURL    string        // JWKS_URL, with one issuer only; empty: from discovery
	Algorithms []string      // JWT_ALGORITHMS
	HMACSecret string        // JWT_HMAC_SECRET, with one issuer only
	ClockSkew  time.Duration // CLOCK_SKEW; negative: no leeway
	// RequireATJWT demands typ at+jwt (RFC 9068): REQUIRE_AT_JWT.
	RequireATJWT bool
	// TokenProfile is how strictly a JWT access token must follow RFC
	// 9068 (TOKEN_PROFILE): middleware.ProfileInteroperable (the default)
	// or middleware.ProfileRFC9068 (typ at+jwt, kid and every claim of
	// RFC 9068 §2.2 required). Not with AUTH_MODE=introspection.
	TokenProfile middleware.Profile

	IntrospectionURL          string        // INTROSPECTION_URL; empty: from discovery
	IntrospectionClientID     string        // INTROSPECTION_CLIENT_ID, required unless IntrospectionAuth is none
	IntrospectionClientSecret string        // INTROSPECTION_CLIENT_SECRET
	IntrospectionAuth         string        // INTROSPECTION_AUTH: basic, post or none
	IntrospectionCacheTTL     time.Duration // INTROSPECTION_CACHE_TTL; negative: no cache
	IntrospectionTimeout      time.Duration // INTROSPECTION_TIMEOUT
	// IntrospectionMaxInFlight bounds the introspection requests in
	// flight at once: INTROSPECTION_MAX_IN_FLIGHT.
	IntrospectionMaxInFlight int
	// IntrospectionRateLimit bounds the new introspection requests per
	// second; 0 means no limit: INTROSPECTION_RATE_LIMIT.
	IntrospectionRateLimit int

	// TokenCookies are the cookies a token is read from when there is no
	// Authorization header (TOKEN_COOKIE); empty: DefaultTokenCookies. The
	// middleware reads none unless told, the todo API reads the exchange's.
	TokenCookies []string
	// CORSAllowedOrigins are the origins allowed to call with credentials
	// (CORS_ALLOWED_ORIGINS); New puts them in the form browsers send (see
	// middleware.NormalizeOrigin), so CORS and the cookie check agree.
	CORSAllowedOrigins []string
	// ReadScopes and WriteScopes are what the routes need
	// (REQUIRED_SCOPES_READ, REQUIRED_SCOPES_WRITE). Empty means no scope
	// check, not the default: DefaultConfig holds todos:read and todos:write.
	ReadScopes  []string
	WriteScopes []string

	// AudienceClaims, ScopeClaims and RoleClaims say where a token's
	// audience, scopes and roles are (AUDIENCE_CLAIMS, SCOPE_CLAIMS,
	// ROLE_CLAIMS): claim paths, as middleware.Config reads them. Empty:
	// the middleware's defaults (aud; scope and scp; no roles).
	AudienceClaims []string
	ScopeClaims    []string
	RoleClaims     []string
	// AllowedRoles, when set, are the roles of which a caller needs at
	// least one for every todo route (ALLOWED_ROLES), on top of the
	// scopes; they are read from RoleClaims, which must then be set.
	AllowedRoles []string

	// RequireACRForDeleteAll are the acr values, any one of them, a token
	// needs to delete every todo at once (DELETE /todos without
	// ?completed=true): REQUIRE_ACR_FOR_DELETE_ALL. MaxAuthAgeForDeleteAll
	// is the longest time since the user signed in for it, whole seconds:
	// MAX_AUTH_AGE_FOR_DELETE_ALL. Empty and 0: no step-up. A token that
	// falls short is answered 401 insufficient_user_authentication with
	// acr_values and max_age (RFC 9470), and the web page signs the user in
	// again with them.
	RequireACRForDeleteAll []string
	MaxAuthAgeForDeleteAll time.Duration

	// ResourceURL is this API's resource identifier (RESOURCE_URL): when
	// set, the API serves its RFC 9728 protected-resource metadata at
	// /.well-known/oauth-protected-resource (path-suffixed when it has a
	// path), naming ISSUER, the read and write scopes and, with BaseURL,
	// /docs, and every WWW-Authenticate challenge carries
	// resource_metadata. An https URL without fragment (http for loopback
	// hosts); empty: neither.
	ResourceURL string

	// DPoP says whether DPoP-bound tokens (RFC 9449) are accepted
	// (DPOP_MODE): middleware.DPoPDisabled (the default: bearer tokens
	// only), DPoPAllowed (both) or DPoPRequired (DPoP only). With DPoP on,
	// a proof's htu must name BaseURL followed by the request's path when
	// BaseURL is set, so that proofs made for the URL clients call pass
	// behind a proxy that strips a path prefix.
	DPoP middleware.DPoPMode
	// DPoPNonceSecret, when set, makes every DPoP proof carry a nonce this
	// API issued (RFC 9449 §9): DPOP_NONCE_SECRET, at least 32 bytes, the
	// same on every replica so that they accept each other's nonces. Only
	// with DPoP on. Changing it costs each client one 401 use_dpop_nonce.
	DPoPNonceSecret string

	// StoreURL is STORE_URL: "" keeps every cache in this process, as one
	// instance needs; redis://… or rediss://… (Redis or Valkey) shares
	// with every instance using the same server the introspection answers
	// (introspection and hybrid modes, active and inactive verdicts) and,
	// with DPoP on, the record of the proofs already used, so that a proof
	// replayed at another instance is refused. New opens it without
	// contacting it: a store that is down makes each instance fall back to
	// its own caches, logged once per outage, never a failed request.
	// Close closes it.
	StoreURL string
	// StoreSecret is STORE_SECRET, required with StoreURL: at least
	// MinStoreSecretBytes, the same on every instance. The key that
	// authenticates every introspection verdict in the store is derived
	// from it (HKDF), so that whoever can write to Redis cannot make an
	// instance trust a token the authorization server did not vouch for.
	StoreSecret string

	// BaseURL is the public URL of the API, for todo urls and links
	// (BASE_URL); empty: taken from each request.
	BaseURL          string
	MaxTodosPerOwner int   // MAX_TODOS_PER_USER
	MaxBodyBytes     int64 // largest request body
	ShutdownTimeout  time.Duration

	// Logger receives the request log and everything else; nil:
	// slog.Default().
	Logger *slog.Logger
}

// DefaultTokenCookies returns the cookie names the todo API reads a token
// from by default: those the exchange sets (a __Host- cookie on https, its
// __Secure- form when the exchange shares cookies with a parent domain).
func DefaultTokenCookies() []string {
	return []string{"__Host-access_token", "__Secure-access_token"}
}

// DefaultConfig returns the default of every setting; cmd/todo-api shows
// them in --help.
func DefaultConfig() Config {
	return Config{
		ListenAddr:               ":8080",
		DatabaseURL:              "sqlite:todos.db",
		AuthMode:                 middleware.ModeJWT,
		DPoP:                     middleware.DPoPDisabled,
		TokenProfile:             middleware.ProfileInteroperable,
		Algorithms:               middleware.DefaultAlgorithms(),
		ClockSkew:                middleware.DefaultClockSkew,
		IntrospectionAuth:        introspection.AuthBasic.String(),
		IntrospectionCacheTTL:    introspection.DefaultCacheTTL,
		IntrospectionTimeout:     introspection.DefaultTimeout,
		IntrospectionMaxInFlight: introspection.DefaultMaxInFlight,
		TokenCookies:             DefaultTokenCookies(),
		ReadScopes:               []string{"todos:read"},
		WriteScopes:              []string{"todos:write"},
		MaxTodosPerOwner:         todos.DefaultMaxTodosPerOwner,
		MaxBodyBytes:             todos.DefaultMaxBodyBytes,
		ShutdownTimeout:          20 * time.Second,
	}
}

// setDefaults fills the zero fields from DefaultConfig (not the scopes,
// whose empty value means "no check").
func (c *Config) setDefaults() {
	d := DefaultConfig()
	orDefault(&c.ListenAddr, d.ListenAddr)
	orDefault(&c.DatabaseURL, d.DatabaseURL)
	orDefault(&c.AuthMode, d.AuthMode)
	orDefault(&c.DPoP, d.DPoP)
	orDefault(&c.TokenProfile, d.TokenProfile)
	orDefault(&c.IntrospectionAuth, d.IntrospectionAuth)
	orDefault(&c.IntrospectionTimeout, d.IntrospectionTimeout)
	orDefault(&c.IntrospectionMaxInFlight, d.IntrospectionMaxInFlight)
	orDefault(&c.MaxTodosPerOwner, d.MaxTodosPerOwner)
	orDefault(&c.MaxBodyBytes, d.MaxBodyBytes)
	orDefault(&c.ShutdownTimeout, d.ShutdownTimeout)
	if len(c.TokenCookies) == 0 {
		// The middleware's empty CookieNames means the header only.
		c.TokenCookies = d.TokenCookies
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	// Algorithms, ClockSkew and IntrospectionCacheTTL keep their zero
	// value: the middleware and the introspection client apply the same
	// defaults to it.
}

func orDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// validate reports the problems that the packages below would not name by
// setting, and normalises CORSAllowedOrigins once for everything that
// reads them.
func (c *Config) validate() error {
	var errs []error
	origins, err := normalizeOrigins(c.CORSAllowedOrigins)
	if err != nil {
		errs = append(errs, err)
	}
	c.CORSAllowedOrigins = origins
	switch {
	case len(c.Issuers) == 0:
		errs = append(errs, errors.New("ISSUER is required"))
	case len(c.Issuers) > 1:
		// Introspection asks one authorization server; a key set or a
		// secret belongs to one issuer.
		if c.AuthMode != middleware.ModeJWT {
			errs = append(errs, fmt.Errorf("ISSUER: a list of issuers needs AUTH_MODE=jwt, not %s (introspection asks one authorization server)", c.AuthMode))
		}
		if c.JWKSURL != "" {
			errs = append(errs, errors.New("JWKS_URL: only with a single ISSUER (each issuer of a list is discovered)"))
		}
		if c.HMACSecret != "" {
			errs = append(errs, errors.New("JWT_HMAC_SECRET: only with a single ISSUER"))
		}
		for i, iss := range c.Issuers {
			if slices.Contains(c.Issuers[:i], iss) {
				errs = append(errs, fmt.Errorf("ISSUER: %q is listed twice", iss))
			}
		}
	}
	for _, iss := range c.Issuers {
		if strings.ContainsAny(iss, " \t") {
			// Todos are owned by iss and sub, joined by a space.
			errs = append(errs, fmt.Errorf("ISSUER: %q is not an issuer URL", iss))
		}
	}
	if c.AuthMode != middleware.ModeIntrospection && len(c.Audiences) == 0 {
		errs = append(errs, fmt.Errorf("AUDIENCE is required in %s mode", c.AuthMode))
	}
	method, err := introspection.ParseAuthMethod(c.IntrospectionAuth)
	if err != nil {
		errs = append(errs, fmt.Errorf("INTROSPECTION_AUTH: %w", err))
	} else if c.AuthMode != middleware.ModeJWT && method != introspection.AuthNone && c.IntrospectionClientID == "" {
		errs = append(errs, fmt.Errorf("INTROSPECTION_CLIENT_ID is required in %s mode unless INTROSPECTION_AUTH=none", c.AuthMode))
	}
	if c.ResourceURL != "" {
		if _, _, _, err := middleware.ResourceMetadataURL(c.ResourceURL); err != nil {
			errs = append(errs, fmt.Errorf("RESOURCE_URL: %w", err))
		}
	}
	if p, err := middleware.ParseProfile(string(c.TokenProfile)); err != nil {
		errs = append(errs, fmt.Errorf("TOKEN_PROFILE: want interoperable or rfc9068, got %q", c.TokenProfile))
	} else {
		c.TokenProfile = p // as the middleware names it
		if p == middleware.ProfileRFC9068 && c.AuthMode == middleware.ModeIntrospection {
			// A profile that checks nothing is a mistake worth a stop:
			// the operator believes it is on.
			errs = append(errs, errors.New("TOKEN_PROFILE: rfc9068 applies to JWTs, not AUTH_MODE=introspection"))
		}
	}
	errs = append(errs, c.dpopProblems()...)
	errs = append(errs, c.storeProblems()...)
	if err := checkBaseURL(c.BaseURL); err != nil {
		errs = append(errs, err)
	}
	if c.MaxTodosPerOwner < 0 {
		errs = append(errs, errors.New("MAX_TODOS_PER_USER: must be at least 1"))
	}
	if c.IntrospectionMaxInFlight < 0 {
		errs = append(errs, errors.New("INTROSPECTION_MAX_IN_FLIGHT: must be at least 1"))
	}
	if c.IntrospectionRateLimit < 0 {
		errs = append(errs, errors.New("INTROSPECTION_RATE_LIMIT: must be 0 (no limit) or more"))
	}
	if len(c.AllowedRoles) > 0 && len(c.RoleClaims) == 0 {
		errs = append(errs, errors.New("ALLOWED_ROLES needs ROLE_CLAIMS: without it no claim is read as a role, and no caller could pass"))
	}
	for _, v := range c.RequireACRForDeleteAll {
		if (middleware.StepUp{ACRValues: []string{v}}).Validate() != nil {
			errs = append(errs, fmt.Errorf("REQUIRE_ACR_FOR_DELETE_ALL: %q is not an acr value (1 to 256 printable ASCII characters, no space, '\"' or '\\')", v))
		}
	}
	if (middleware.StepUp{MaxAge: c.MaxAuthAgeForDeleteAll}).Validate() != nil {
		errs = append(errs, fmt.Errorf("MAX_AUTH_AGE_FOR_DELETE_ALL: %s is not a whole number of seconds up to %d (0 for no limit)", c.MaxAuthAgeForDeleteAll, middleware.MaxStepUpMaxAge/time.Second))
	}
	return errors.Join(errs...)
}

// minNonceSecret is the shortest DPOP_NONCE_SECRET: the middleware's
// shortest nonce key, a full HMAC-SHA256 block of entropy at best.
const minNonceSecret = 32

// dpopProblems reports the problems of the DPoP settings, naming them
// (never the secret's value), and puts DPoP in the middleware's form.
func (c *Config) dpopProblems() []error {
	var errs []error
	if m, err := middleware.ParseDPoPMode(string(c.DPoP)); err != nil {
		errs = append(errs, fmt.Errorf("DPOP_MODE: want disabled, allowed or required, got %q", c.DPoP))
	} else {
		c.DPoP = m // as the middleware names it
	}
	if c.DPoP != middleware.DPoPDisabled && c.BaseURL == "" {
		// Fail closed: without it a proof's htu would be checked against
		// each request's Host header, which the sender chooses, so a token
		// and proof captured on their way to another server that takes the
		// same tokens would pass here, naming that server.
		errs = append(errs, errors.New("DPOP_MODE: DPoP needs BASE_URL, the URL clients call (every proof's htu names it)"))
	}
	if c.DPoPNonceSecret != "" {
		if c.DPoP == middleware.DPoPDisabled {
			// A secret that does nothing is a mistake worth a stop: the
			// operator believes nonces are on.
			errs = append(errs, errors.New("DPOP_NONCE_SECRET: only with DPOP_MODE=allowed or required"))
		}
		if len(c.DPoPNonceSecret) < minNonceSecret {
			errs = append(errs, fmt.Errorf("DPOP_NONCE_SECRET: must be at least %d bytes, got %d", minNonceSecret, len(c.DPoPNonceSecret)))
		}
	}
	return errs
}

// MinStoreSecretBytes is the shortest STORE_SECRET: a full HMAC-SHA256
// key's worth of bytes.
const MinStoreSecretBytes = 32

// storeProblems reports the problems of STORE_SECRET, never its value.
// STORE_URL itself is checked by store.Open, whose errors name it and
// never show its password.
func (c *Config) storeProblems() []error {
	switch {
	case c.StoreURL != "" && c.StoreSecret == "":
		return []error{fmt.Errorf("STORE_SECRET is required with STORE_URL (at least %d bytes, the same on every instance, e.g. `openssl rand -base64 32`): it authenticates the introspection answers shared in the store", MinStoreSecretBytes)}
	case c.StoreURL == "" && c.StoreSecret != "":
		// A secret that does nothing is a mistake worth a stop: the
		// operator believes the caches are shared.
		return []error{errors.New("STORE_SECRET: only with STORE_URL")}
	case c.StoreSecret != "" && len(c.StoreSecret) < MinStoreSecretBytes:
		return []error{fmt.Errorf("STORE_SECRET: must be at least %d bytes, got %d", MinStoreSecretBytes, len(c.StoreSecret))}
	}
	return nil
}

// dpopOn reports whether DPoP-bound tokens are accepted.
func (c *Config) dpopOn() bool { return c.DPoP != middleware.DPoPDisabled }

// checkBaseURL refuses a BASE_URL that cannot name the API: todo urls,
// links and, with DPoP on, every proof's htu are built from it, so it is
// checked here once, by its setting's name, before the packages below see
// it under theirs.
func checkBaseURL(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("BASE_URL: not a URL")
	case u.User != nil:
		// Not repeated: the user info may hold a password.
		return errors.New("BASE_URL: must have no user info")
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("BASE_URL: %q is not an absolute http or https URL", raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(raw, "#"):
		return fmt.Errorf("BASE_URL: %q must have no query or fragment", raw)
	}
	return nil
}

// deleteAllStepUp is what deleting every todo requires of the user's
// sign-in; the zero StepUp when nothing is.
func (c *Config) deleteAllStepUp() middleware.StepUp {
	return middleware.StepUp{ACRValues: slices.Clone(c.RequireACRForDeleteAll), MaxAge: c.MaxAuthAgeForDeleteAll}
}

// resourceMetadata is the RFC 9728 description of the API, nil without
// ResourceURL.
func (c *Config) resourceMetadata() *middleware.ResourceMetadata {
	if c.ResourceURL == "" {
		return nil
	}
	m := &middleware.ResourceMetadata{
		Resource:     c.ResourceURL,
		ResourceName: "Tollgate todo API",
	}
	for _, s := range slices.Concat(c.ReadScopes, c.WriteScopes) {
		if !slices.Contains(m.ScopesSupported, s) {
			m.ScopesSupported = append(m.ScopesSupported, s)
		}
	}
	if c.BaseURL != "" {
		m.ResourceDocumentation = strings.TrimSuffix(c.BaseURL, "/") + "/docs"
	}
	return m
}

// normalizeOrigins returns origins in the form browsers send, each once,
// and one error per origin that is not scheme://host[:port], naming the
// setting.
func normalizeOrigins(origins []string) ([]string, error) {
	out := make([]string, 0, len(origins))
	var errs []error
	for _, o := range origins {
		n, err := middleware.NormalizeOrigin(o)
		if err != nil {
			errs = append(errs, fmt.Errorf("CORS_ALLOWED_ORIGINS: %w", err))
		} else if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, errors.Join(errs...)
}

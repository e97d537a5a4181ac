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
	return parseName(s, "mode", ModeJWT, ModeIntrospection, ModeHybrid)
}

// parseName reads the name of a setting's value as written in settings,
// in any case and with surrounding space: "" is def; anything but def or
// one of others is an error naming what and the values it takes.
func parseName[T ~string](s, what string, def T, others ...T) (T, error) {
	v := T(strings.ToLower(strings.TrimSpace(s)))
	if v == "" || v == def {
		return def, nil
	}
	if slices.Contains(others, v) {
		return v, nil
	}
	want := string(def)
	for i, o := range others {
		if i == len(others)-1 {
			want += " or " + string(o)
		} else {
			want += ", " + string(o)
		}
	}
	return "", fmt.Errorf("middleware: unknown %s %q (want %s)", what, s, want)
}

// Profile says how strictly a JWT access token must follow RFC 9068.
type Profile string

// The token profiles.
const (
	// ProfileInteroperable (the default) accepts the access tokens
	// authorization servers issue in practice, many of which omit typ
	// at+jwt, client_id or jti: a header typ at+jwt, JWT or none (at+jwt
	// only with RequireATJWT); a header without kid when exactly one key
	// of the JWKS fits the token's alg (RFC 7515 makes kid optional); and
	// of the claims RFC 9068 §2.2 requires, iss, exp and sub, and aud
	// unless AudienceClaims names other claims. iat is checked when
	// present; client_id and jti are not required.
	ProfileInteroperable Profile = "interoperable"
	// ProfileRFC9068 is RFC 9068 to the letter, and a kid besides: the
	// header must carry typ at+jwt (as with RequireATJWT) and, with keys
	// from a JWKS, a kid, which RFC 7515 leaves optional (refused with
	// reason bad_header otherwise); the claims must include
	// every claim §2.2 requires: iss, exp, aud, sub, client_id, iat and
	// jti, with iss, sub, client_id and jti non-empty strings and aud
	// holding a non-empty value (refused with reason missing_claim and a
	// description that names the claim otherwise). With HMACSecret there
	// is one key and kid is not required.
	ProfileRFC9068 Profile = "rfc9068"
)

// ParseProfile reads a profile name as written in settings; "" is
// ProfileInteroperable.
func ParseProfile(s string) (Profile, error) {
	return parseName(s, "profile", ProfileInteroperable, ProfileRFC9068)
}

// Defaults for the zero values of Config.
const (
	DefaultClockSkew        = 60 * time.Second
	DefaultMaxTokenBytes    = 16 << 10
	DefaultCacheSize        = 10_000
	DefaultCacheMaxAge      = 5 * time.Minute
	DefaultJWKSRefresh      = time.Hour
	DefaultJWKSMinRefresh   = 10 * time.Second
	DefaultHTTPTimeout      = 5 * time.Second
	DefaultMaxMetadataBytes = 1 << 20
)

// Off, given to ClockSkew, CacheSize or CacheMaxAge, turns that setting
// off: no leeway, no verified-token cache. Any negative value does the
// same; 0 always means the documented default, never "none". The other
// numeric settings have no "off" and refuse negative values.
const Off = -1

// defaultAlgorithms backs DefaultAlgorithms; a function, not a variable,
// so that no importer can change what every Authenticator accepts.
var defaultAlgorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

// DefaultAlgorithms returns the JWS algorithms accepted when
// Config.Algorithms is empty: what authorization servers sign access tokens
// with in practice. Each call returns a new slice.
func DefaultAlgorithms() []string { return slices.Clone(defaultAlgorithms) }

// asymmetricAlgorithms are the algorithms a JWKS key can be used with.
var asymmetricAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Config configures an Authenticator. Its zero fields mean the documented
// defaults; Issuer and Audiences have none. A negative value turns off the
// settings that say so (see Off) and is refused by the others.
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
	// of discovering again, and key refreshes read the issuer's metadata
	// again as for a discovered jwks_uri (see JWKSURL). Its Issuer must
	// equal Issuer. Optional.
	Metadata *Metadata

	// Issuer is the expected iss claim, compared exactly as written
	// (a trailing slash matters). Required.
	Issuer string
	// Audiences are the accepted aud values; a JWT must name at least one.
	// Required for JWTs (ModeJWT, ModeHybrid); with introspection, checked
	// when both the answer and this list have audiences. With Issuers or
	// IssuerResolver, the default of the issuers that name none.
	Audiences []string
	// AudienceClaims are the claims that say whom a token is for, in order
	// of preference; default ["aud"]. The first of them the token carries
	// with a value (a non-empty string, or a non-empty array of strings)
	// decides, and must hold one of Audiences; a JWT that carries none of
	// them is refused, and one whose deciding claim holds anything but a
	// string or strings too. ["client_id"] serves servers whose access
	// tokens name no audience (AWS Cognito): the check is then on the
	// client the token was issued to, not on this resource, so every
	// resource that accepts that client's tokens accepts the same tokens.
	// Each is a claim path (see ScopeClaims), without a final *. With
	// introspection, an answer that carries none of them passes, as one
	// without aud always has.
	AudienceClaims []string
	// ScopeClaims are the claims read into Principal.Scopes, merged in
	// order without duplicates; default DefaultScopeClaims() (scope, scp).
	// Each is a claim path: names separated by dots reach into objects
	// ("realm_access.roles"), a dot inside a name is written \. (and a
	// backslash \\), and a final * takes the member names of an object
	// rather than a value. A string is split at spaces; an array's strings
	// are taken whole; other values add nothing. A token with more than
	// MaxClaimValues distinct scopes is refused.
	ScopeClaims []string
	// RoleClaims are the claims read into Principal.Roles, as ScopeClaims
	// are into Scopes; default none. Scopes say what the client may do on
	// the user's behalf, roles what the user is: RequireScopes checks the
	// one, RequireRoles the other, and a claim may be in only one list, so
	// that a role never passes for a scope.
	RoleClaims []string

	// Issuers are the trusted issuers when there are several (ModeJWT
	// only), each with its own audiences, keys and algorithms: a token is
	// checked with the keys and rules of the issuer its iss names, and
	// refused, without any network request, when that is none of them.
	// Set either Issuer (with JWKSURL, Metadata, HMACSecret) or Issuers;
	// Audiences and Algorithms are the defaults of the entries that leave
	// theirs empty. See IssuerConfig.
	Issuers []IssuerConfig
	// IssuerResolver decides about the issuers that Issuer or Issuers do
	// not name, for sets too large or changeable to list (ModeJWT only),
	// e.g. the tenants of a Microsoft Entra ID multi-tenant application
	// (Entra). Requires Audiences. See IssuerResolver for its bounds.
	IssuerResolver IssuerResolver

	// JWKSURL is where the issuer publishes its keys, used as given. Empty:
	// read jwks_uri from the issuer's metadata (OpenID Connect Discovery,
	// then RFC 8414), an absolute https URL unless Issuer is an http://
	// URL (see Metadata), and follow it: every key refresh after the first
	// (the periodic one, and the one a token with an unknown kid causes)
	// first reads the metadata again, under the same rules, and fetches
	// the keys from a changed jwks_uri from then on; metadata that cannot
	// be read or used keeps the old jwks_uri, with a warning.
	JWKSURL string
	// LazyKeys lets New return before the signing keys are loaded: they
	// are fetched in the background, requests that need them are answered
	// 503 until they arrive, and Ready reports the wait. Without it New
	// fetches them once (bounded by HTTPTimeout) and fails when it cannot,
	// so a wrong JWKSURL stops the program at start. For services whose
	// readiness probe keeps traffic away until Ready.
	LazyKeys bool
	// Algorithms is the allowlist of JWS algorithms; default
	// DefaultAlgorithms(). "none" and HMAC algorithms are refused here.
	Algorithms []string
	// HMACSecret, when set, makes the Authenticator accept HS256 tokens
	// signed with it and nothing else: no JWKS is fetched. For servers that
	// sign with a shared secret. At least 32 bytes.
	HMACSecret []byte
	// ClockSkew is the leeway for exp, nbf and iat; 0 means the default,
	// 60s. Off (or any negative value) means none.
	ClockSkew time.Duration
	// RequireATJWT demands the RFC 9068 header typ "at+jwt".
	// ProfileRFC9068 implies it.
	RequireATJWT bool
	// Profile is how strictly a JWT access token must follow RFC 9068:
	// ProfileInteroperable (the default) or ProfileRFC9068, for every
	// issuer alike (Issuers, IssuerResolver). It applies to the tokens
	// verified as JWTs (ModeJWT, and the JWS-shaped tokens of ModeHybrid);
	// New refuses ProfileRFC9068 with ModeIntrospection, whose answers are
	// not JWTs.
	Profile Profile
	// MaxTokenBytes bounds the token length; default 16 KiB. Negative
	// values are refused.
	MaxTokenBytes int

	// DPoP says whether tokens bound to a key by RFC 9449 DPoP are
	// accepted: DPoPDisabled (the default; every token with cnf is
	// refused), DPoPAllowed (bearer tokens with the Bearer scheme and
	// DPoP-bound tokens with the DPoP scheme and a proof) or DPoPRequired
	// (DPoP-bound tokens and proofs only). See the README's DPoP section.
	DPoP DPoPMode
	// DPoPAlgorithms are the JWS algorithms accepted for DPoP proofs;
	// default DefaultDPoPAlgorithms() (ES256, EdDSA, RS256, PS256).
	// Asymmetric algorithms only. Sent in the challenge's algs parameter.
	DPoPAlgorithms []string
	// DPoPProofWindow is how far a proof's iat may be from now, in the past
	// or the future; default 60s, at most an hour. A jti is remembered for
	// as long as its proof could be accepted. Negative values are refused.
	DPoPProofWindow time.Duration
	// DPoPBaseURL is the external URL of this server (scheme://host[:port]
	// and an optional path prefix a proxy strips), that a proof's htu must
	// name before the request's path. Empty: the request's own scheme
	// (https when it came over TLS) and Host. Forwarded headers are never
	// trusted: behind a proxy, set this.
	DPoPBaseURL string
	// DPoPReplaySlots is the number of proof jti the replay cache holds
	// (16 bytes each); default DefaultDPoPReplaySlots (262,144: 4 MiB),
	// at most 2^26 (1 GiB).
	// When it is full of live entries new proofs are refused with 503
	// until entries expire. Negative values are refused.
	DPoPReplaySlots int
	// DPoPReplayStore, when set, records the jti of accepted proofs for the
	// whole fleet (Redis, for one), so that a proof used at one instance is
	// refused at every other. The local replay cache is still consulted
	// first. When the store fails or is slow, proofs are checked against
	// the local cache only (a proof replayed at another instance may then
	// pass), the outage is logged once, and the store is tried again a
	// second later. Nil, the default: the local cache only. See the
	// README's "Sharing caches across instances".
	DPoPReplayStore ReplayStore
	// DPoPReplayStoreTimeout bounds each call to DPoPReplayStore; default
	// DefaultDPoPReplayStoreTimeout (100ms). Negative values are refused.
	DPoPReplayStoreTimeout time.Duration
	// DPoPNonceKeys, when set, make server nonces (RFC 9449 §9)
	// mandatory: every proof must carry a nonce this server issued (in the
	// DPoP-Nonce header of a 401 use_dpop_nonce, and of every answer of
	// Require to a DPoP request). Nonces are MACed with the first key and
	// checked with all, so replicas share the keys and a new key goes
	// first while the old one stays for a lifetime. Each at least 32
	// bytes. Default none: no nonces.
	DPoPNonceKeys [][]byte
	// DPoPNonceLifetime is how long a nonce is accepted; default 5
	// minutes. A new one is handed out every half lifetime.
	DPoPNonceLifetime time.Duration

	// CookieNames are the cookies a token is read from when there is no
	// Authorization header, first present wins, for browser front ends
	// whose backend-for-frontend keeps the token in an HttpOnly cookie
	// (typically "__Host-access_token"). Empty, the default: the
	// Authorization header only. A cookie-borne token also needs the
	// X-CSRF: 1 header, and an allowed Origin on unsafe methods.
	CookieNames []string
	// AllowedOrigins are the origins (scheme://host[:port]) whose unsafe
	// requests may carry a cookie-borne token. New puts each in the form
	// browsers send (see NormalizeOrigin) and refuses anything else.
	AllowedOrigins []string

	// Realm goes into WWW-Authenticate challenges when set; default none
	// (a bare "Bearer" challenge).
	Realm string
	// ResourceMetadata, when set, describes the resource for OAuth 2.0
	// Protected Resource Metadata (RFC 9728): the Authenticator serves the
	// document (ResourceMetadataHandler) and every Bearer challenge it
	// writes carries resource_metadata with its URL (§5.1). New refuses a
	// Resource that is not an absolute https URL (http for loopback hosts).
	// Default none.
	ResourceMetadata *ResourceMetadata

	// CacheSize bounds the verified-token cache; default 10,000 entries.
	// Off (or any negative value) disables the cache.
	CacheSize int
	// CacheMaxAge is the longest a verified token is reused without a new
	// signature check (never past its exp); default 5 minutes. Off (or
	// any negative value) disables the cache. Cached principals share
	// their Claims map between requests: treat it as read-only.
	CacheMaxAge time.Duration

	// JWKSRefreshInterval is how often keys are fetched again; default 1h.
	// Negative values are refused.
	JWKSRefreshInterval time.Duration
	// JWKSMinRefreshInterval is the least time between two fetches caused
	// by tokens with an unknown kid; default 10s. A token whose kid cannot
	// be refreshed now is refused at once instead of waiting. Negative
	// values are refused.
	JWKSMinRefreshInterval time.Duration
	// HTTPClient fetches metadata and keys; default a client with
	// HTTPTimeout.
	HTTPClient *http.Client
	// HTTPTimeout bounds each metadata or key request, with a client of
	// the caller's too (through the request's context); default 5s.
	// Negative values are refused.
	HTTPTimeout time.Duration

	// Logger receives one line for every refused token, with a reason and
	// a short hash of the token; default slog.Default().
	Logger *slog.Logger
	// OnOutcome, when set, is called once for every authentication
	// (Authenticate, Require, ginauth.Require), with its result, for
	// metrics: once per request. A later scope check does not call it
	// again: a 403 is a successful authentication, counted by the
	// response status and logged with reason insufficient_scope. It must be
	// fast and safe for concurrent use.
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
	// shared Claims, Scopes and Roles (principal.DecodeClaims gives a copy).
	//
	// A nil error accepts the caller. Otherwise the function chooses the
	// answer with the sentinels: an error wrapping ErrScope (or ErrRole) is
	// 403 insufficient_scope, one wrapping ErrUnavailable 503 (a registry it
	// consults is down: no verdict on the token), anything else 401
	// invalid_token. The answer keeps the realm and has reason
	// ReasonClaims (ReasonUnavailable for 503) and a fixed description;
	// the error's text is logged, never sent to the client.
	ValidateClaims func(ctx context.Context, p principal.Principal) error
	// ErrorHandler, when set, writes every refusal of Require, Optional,
	// RequireScopes, RequireAnyScope, RequireRoles, RequireAnyRole,
	// RequireStepUp, the Gin adapter and
	// (*Authenticator).WriteError, in place of the default answer. The
	// error it gets carries the realm and resource_metadata: Reason and
	// Challenge give the reason, status and WWW-Authenticate value of the
	// default answer, and the package-level WriteError writes that answer,
	// e.g. for the errors it does not customise. (Not
	// (*Authenticator).WriteError, which would call ErrorHandler again.)
	// Never send err.Error() to the client: it holds what only the log
	// should see (the ValidateClaims error's text, the expected and
	// received iss and aud); build the answer from Reason and Challenge.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)

	// mapping is AudienceClaims, ScopeClaims and RoleClaims parsed by
	// validate; nil means the defaults (see claims).
	mapping *claimMapping
}

// claims returns the parsed claim paths: validate's, or the defaults for a
// Config that was never validated.
func (c *Config) claims() *claimMapping {
	if c.mapping == nil {
		return &defaultClaimMapping
	}
	return c.mapping
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
		c.Algorithms = DefaultAlgorithms()
	}
	// 0 is the default and a negative value Off, for the three settings
	// that have an "off"; the other settings' negative values are left for
	// validate to refuse.
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	} else if c.ClockSkew < 0 {
		c.ClockSkew = 0
	}
	if c.MaxTokenBytes == 0 {
		c.MaxTokenBytes = DefaultMaxTokenBytes
	}
	c.CookieNames = slices.Clone(c.CookieNames)
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.CacheMaxAge == 0 {
		c.CacheMaxAge = DefaultCacheMaxAge
	}
	if c.CacheSize < 0 || c.CacheMaxAge < 0 {
		c.CacheSize, c.CacheMaxAge = Off, Off
	}
	if c.JWKSRefreshInterval == 0 {
		c.JWKSRefreshInterval = DefaultJWKSRefresh
	}
	if c.JWKSMinRefreshInterval == 0 {
		c.JWKSMinRefreshInterval = DefaultJWKSMinRefresh
	}
	if c.HTTPTimeout == 0 {
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
	if c.DPoP == "" {
		c.DPoP = DPoPDisabled
	}
	if c.Profile == "" {
		c.Profile = ProfileInteroperable
	}
	if len(c.DPoPAlgorithms) == 0 {
		c.DPoPAlgorithms = DefaultDPoPAlgorithms()
	} else {
		c.DPoPAlgorithms = slices.Clone(c.DPoPAlgorithms)
	}
	if c.DPoPProofWindow == 0 {
		c.DPoPProofWindow = DefaultDPoPProofWindow
	}
	if c.DPoPReplaySlots == 0 {
		c.DPoPReplaySlots = DefaultDPoPReplaySlots
	}
	if c.DPoPReplayStoreTimeout == 0 {
		c.DPoPReplayStoreTimeout = DefaultDPoPReplayStoreTimeout
	}
	if c.DPoPNonceLifetime == 0 {
		c.DPoPNonceLifetime = DefaultDPoPNonceLifetime
	}
}

// validate reports every problem of a defaulted Config at once.
func (c *Config) validate() error {
	var errs []error
	switch c.Mode {
	case "":
		c.Mode = ModeJWT
	case ModeJWT, ModeIntrospection, ModeHybrid:
	default:
		errs = append(errs, fmt.Errorf("middleware: unknown Mode %q", c.Mode))
	}
	switch c.Profile {
	case ProfileInteroperable:
	case ProfileRFC9068:
		if c.Mode == ModeIntrospection {
			errs = append(errs, errors.New("middleware: Profile rfc9068 applies to JWTs, and Mode introspection verifies none"))
		}
	default:
		errs = append(errs, fmt.Errorf("middleware: unknown Profile %q (want interoperable or rfc9068)", c.Profile))
	}
	if len(c.Issuers) > 0 || c.IssuerResolver != nil {
		errs = append(errs, c.validateIssuers()...)
	} else {
		if c.Issuer == "" {
			errs = append(errs, errors.New("middleware: Issuer is required"))
		}
		errs = append(errs, c.issuerProblems("")...)
	}
	m, err := newClaimMapping(c)
	if err != nil {
		errs = append(errs, err)
	}
	c.mapping = &m
	if !m.audienceIsAud && len(c.Audiences) == 0 && c.Mode == ModeIntrospection {
		errs = append(errs, errors.New("middleware: AudienceClaims needs Audiences to compare with"))
	}
	if c.Mode != ModeJWT && c.Introspector == nil {
		errs = append(errs, fmt.Errorf("middleware: Mode %s needs an Introspector", c.Mode))
	}
	for _, f := range []struct {
		name string
		neg  bool
	}{
		{"MaxTokenBytes", c.MaxTokenBytes < 0},
		{"JWKSRefreshInterval", c.JWKSRefreshInterval < 0},
		{"JWKSMinRefreshInterval", c.JWKSMinRefreshInterval < 0},
		{"HTTPTimeout", c.HTTPTimeout < 0},
		{"DPoPProofWindow", c.DPoPProofWindow < 0},
		{"DPoPReplaySlots", c.DPoPReplaySlots < 0},
		{"DPoPReplayStoreTimeout", c.DPoPReplayStoreTimeout < 0},
	} {
		if f.neg {
			errs = append(errs, fmt.Errorf("middleware: %s may not be negative (0 means the default)", f.name))
		}
	}
	errs = append(errs, c.dpopProblems()...)
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

// issuerProblems reports the problems of the settings of one issuer: the
// single-issuer fields, or an entry of Issuers through forIssuer. prefix
// names the entry in each error.
func (c *Config) issuerProblems(prefix string) []error {
	var errs []error
	if (c.Mode != ModeIntrospection && len(c.Audiences) == 0) || slices.Contains(c.Audiences, "") {
		errs = append(errs, fmt.Errorf("middleware: %sAudiences is required for JWTs and may not contain an empty value", prefix))
	}
	if len(c.HMACSecret) > 0 {
		if len(c.HMACSecret) < 32 {
			errs = append(errs, fmt.Errorf("middleware: %sHMACSecret must be at least 32 bytes (RFC 7518 §3.2)", prefix))
		}
	} else {
		for _, alg := range c.Algorithms {
			switch {
			case strings.EqualFold(alg, "none"):
				errs = append(errs, fmt.Errorf(`middleware: %salg "none" is never accepted`, prefix))
			case strings.HasPrefix(alg, "HS"):
				errs = append(errs, fmt.Errorf("middleware: %salgorithm %q needs HMACSecret, and then is the only one accepted", prefix, alg))
			case !slices.Contains(asymmetricAlgorithms, alg):
				errs = append(errs, fmt.Errorf("middleware: %sunknown algorithm %q (known: %s)", prefix, alg, strings.Join(asymmetricAlgorithms, ", ")))
			}
		}
	}
	if c.Metadata != nil && c.Metadata.Issuer != c.Issuer {
		errs = append(errs, fmt.Errorf("middleware: %sMetadata names issuer %q, want exactly %q", prefix, c.Metadata.Issuer, c.Issuer))
	}
	if c.JWKSURL != "" {
		if err := checkHTTPURL(c.JWKSURL); err != nil {
			errs = append(errs, fmt.Errorf("middleware: %sJWKSURL: %w", prefix, err))
		}
	}
	return errs
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

// dpopProblems reports the problems of the DPoP settings.
func (c *Config) dpopProblems() []error {
	var errs []error
	switch c.DPoP {
	case DPoPDisabled, DPoPAllowed, DPoPRequired:
	default:
		errs = append(errs, fmt.Errorf("middleware: unknown DPoP mode %q", c.DPoP))
	}
	for _, alg := range c.DPoPAlgorithms {
		if !slices.Contains(asymmetricAlgorithms, alg) {
			errs = append(errs, fmt.Errorf("middleware: DPoPAlgorithms: %q is not an asymmetric JWS algorithm (known: %s)", alg, strings.Join(asymmetricAlgorithms, ", ")))
		}
	}
	for _, k := range c.DPoPNonceKeys {
		if len(k) < 32 {
			errs = append(errs, errors.New("middleware: DPoPNonceKeys: each key must be at least 32 bytes"))
			break
		}
	}
	// Upper bounds: a jti is kept for the proof window past its iat, in
	// int64 nanoseconds, which a window of centuries overflows into the
	// past (every proof then replayable); the replay table is allocated
	// whole by New.
	if c.DPoPProofWindow > maxDPoPProofWindow {
		errs = append(errs, fmt.Errorf("middleware: DPoPProofWindow may be at most %v", maxDPoPProofWindow))
	}
	if c.DPoPReplaySlots > maxDPoPReplaySlots {
		errs = append(errs, fmt.Errorf("middleware: DPoPReplaySlots may be at most %d", maxDPoPReplaySlots))
	}
	if c.DPoPNonceLifetime < 2*time.Second {
		errs = append(errs, errors.New("middleware: DPoPNonceLifetime must be at least 2s (0 means the default)"))
	}
	if c.DPoPBaseURL != "" {
		if _, err := parseBaseURL(c.DPoPBaseURL); err != nil {
			errs = append(errs, fmt.Errorf("middleware: DPoPBaseURL: %w", err))
		}
	}
	return errs
}

// dpopOn reports whether DPoP-bound tokens may be accepted.
func (c *Config) dpopOn() bool { return c.DPoP == DPoPAllowed || c.DPoP == DPoPRequired }

package api

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tollgate-dev/tollgate/middleware"
)

// Config is the todo API's configuration, one field per setting of the
// todo-api program (see cmd/todo-api and the README).
type Config struct {
	ListenAddr  string // default ":8080"
	DatabaseURL string // "sqlite:PATH" or "postgres://…"; default "sqlite:todos.db"

	AuthMode   middleware.Mode
	Issuer     string
	Audiences  []string
	JWKSURL    string
	Algorithms []string
	HMACSecret string
	ClockSkew  time.Duration
	// RequireATJWT demands typ at+jwt (RFC 9068).
	RequireATJWT bool

	IntrospectionURL          string
	IntrospectionClientID     string
	IntrospectionClientSecret string
	IntrospectionAuth         string // basic, post or none
	IntrospectionCacheTTL     time.Duration
	IntrospectionTimeout      time.Duration // default 5s
	// IntrospectionMaxInFlight bounds the introspection requests in
	// flight at once; 0 means introspection.DefaultMaxInFlight (64).
	IntrospectionMaxInFlight int
	// IntrospectionRateLimit bounds the new introspection requests per
	// second; 0 means no limit.
	IntrospectionRateLimit int
	// IntrospectionCacheOff disables the introspection cache (the setting
	// INTROSPECTION_CACHE_TTL=0).
	IntrospectionCacheOff bool

	TokenCookies []string
	// CORSAllowedOrigins are the origins allowed to call with credentials;
	// validate puts them in the form browsers send (see
	// middleware.NormalizeOrigin), so CORS and the cookie check agree.
	CORSAllowedOrigins []string
	ReadScopes         []string // empty: no scope check
	WriteScopes        []string

	// BaseURL is the public URL of the API, for todo urls and links; empty:
	// taken from each request.
	BaseURL          string
	MaxTodosPerOwner int
	MaxBodyBytes     int64
	ShutdownTimeout  time.Duration // default 20s
}

func (c *Config) setDefaults() {
	if c.ListenAddr == "" {
		c.ListenAddr = ":8080"
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "sqlite:todos.db"
	}
	if c.AuthMode == "" {
		c.AuthMode = middleware.ModeJWT
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 20 * time.Second
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
	if c.Issuer == "" {
		errs = append(errs, errors.New("ISSUER is required"))
	}
	if c.AuthMode != middleware.ModeIntrospection && len(c.Audiences) == 0 {
		errs = append(errs, fmt.Errorf("AUDIENCE is required in %s mode", c.AuthMode))
	}
	return errors.Join(errs...)
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

// Command todo-api is the todo resource server: a REST API whose handlers
// see only the verified subject of the caller's OAuth 2.0 access token.
// Every setting is an environment variable and an equal flag; --help lists
// them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate-dev/tollgate/api"
	"github.com/tollgate-dev/tollgate/internal/envflag"
	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr, nil); err != nil {
		if errors.Is(err, envflag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "todo-api:", err)
		os.Exit(1)
	}
}

// run parses the settings and serves until ctx ends or a signal arrives.
// ready, when not nil, receives the bound address.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer, ready func(net.Addr)) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, logLevel, err := parseConfig(args, lookupEnv, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: logLevel}))
	return api.ListenAndServe(ctx, cfg, logger, ready)
}

func parseConfig(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (api.Config, slog.Level, error) {
	s := envflag.NewLookup("todo-api", lookupEnv, stderr)
	listen := s.String("LISTEN_ADDR", ":8080", "address to listen on")
	dbURL := s.String("DATABASE_URL", "sqlite:todos.db", "sqlite:PATH or postgres://user@host/db")
	mode := s.String("AUTH_MODE", "jwt", "jwt, introspection, or hybrid (JWT-shaped tokens locally, others by introspection)")
	issuer := s.Required("ISSUER", "expected iss; its discovery document supplies jwks_uri and introspection_endpoint")
	audience := s.String("AUDIENCE", "", "expected aud, a comma-separated list (any one matches); required in jwt and hybrid modes")
	jwksURL := s.String("JWKS_URL", "", "JWKS URL (default: from discovery)")
	algs := s.String("JWT_ALGORITHMS", strings.Join(middleware.DefaultAlgorithms, ","), "accepted JWS algorithms; none is never accepted")
	hmac := s.String("JWT_HMAC_SECRET", "", "shared secret for servers that sign HS256; when set, only HS256 with it is accepted")
	skew := s.Duration("CLOCK_SKEW", 60*time.Second, "leeway for exp, nbf and iat")
	atjwt := s.Bool("REQUIRE_AT_JWT", false, "require the header typ at+jwt (RFC 9068)")
	iURL := s.String("INTROSPECTION_URL", "", "introspection endpoint (default: from discovery)")
	iID := s.String("INTROSPECTION_CLIENT_ID", "", "client id for introspection")
	iSecret := s.String("INTROSPECTION_CLIENT_SECRET", "", "client secret for introspection")
	iAuth := s.String("INTROSPECTION_AUTH", "basic", "introspection client authentication: basic, post or none")
	iTTL := s.Duration("INTROSPECTION_CACHE_TTL", 60*time.Second, "longest an active introspection answer is reused (never past exp); 0 disables the cache")
	iTimeout := s.Duration("INTROSPECTION_TIMEOUT", 5*time.Second, "longest wait for one introspection answer")
	iInFlight := s.Int("INTROSPECTION_MAX_IN_FLIGHT", introspection.DefaultMaxInFlight, "most introspection requests in flight at once; a token that would need one more is answered 503 at once")
	iRate := s.Int("INTROSPECTION_RATE_LIMIT", 0, "most new introspection requests per second (cache misses); more are answered 503 at once; 0 means no limit")
	cookies := s.String("TOKEN_COOKIE", strings.Join(middleware.DefaultCookieNames, ","), "cookie names read when there is no Authorization header, first present wins")
	origins := s.String("CORS_ALLOWED_ORIGINS", "", "origins (scheme://host[:port]) allowed to call with credentials, comma-separated; empty: none")
	readScopes := s.String("REQUIRED_SCOPES_READ", "todos:read", "scopes the read routes need; empty disables the check")
	writeScopes := s.String("REQUIRED_SCOPES_WRITE", "todos:write", "scopes the write routes need; empty disables the check")
	baseURL := s.String("BASE_URL", "", "public URL of the API for todo urls and links (default: from each request)")
	maxTodos := s.Int("MAX_TODOS_PER_USER", 10000, "most todos one user may keep")
	logLevel := s.String("LOG_LEVEL", "info", "debug, info, warn or error")
	if err := s.Parse(args); err != nil {
		return api.Config{}, 0, err
	}
	m, err := middleware.ParseMode(*mode)
	if err != nil {
		return api.Config{}, 0, fmt.Errorf("AUTH_MODE: want jwt, introspection or hybrid, got %q", *mode)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return api.Config{}, 0, fmt.Errorf("LOG_LEVEL: want debug, info, warn or error, got %q", *logLevel)
	}
	if *maxTodos < 1 {
		return api.Config{}, 0, fmt.Errorf("MAX_TODOS_PER_USER: must be at least 1")
	}
	if *iInFlight < 1 {
		return api.Config{}, 0, fmt.Errorf("INTROSPECTION_MAX_IN_FLIGHT: must be at least 1")
	}
	if *iRate < 0 {
		return api.Config{}, 0, fmt.Errorf("INTROSPECTION_RATE_LIMIT: must be 0 (no limit) or more")
	}
	if m != middleware.ModeIntrospection && len(envflag.List(*audience)) == 0 {
		return api.Config{}, 0, fmt.Errorf("AUDIENCE is required in %s mode (environment variable AUDIENCE or flag -audience)", m)
	}
	if m != middleware.ModeJWT && *iAuth != "none" && *iID == "" {
		return api.Config{}, 0, fmt.Errorf("INTROSPECTION_CLIENT_ID is required in %s mode unless INTROSPECTION_AUTH=none", m)
	}
	return api.Config{
		ListenAddr:                *listen,
		DatabaseURL:               *dbURL,
		AuthMode:                  m,
		Issuer:                    *issuer,
		Audiences:                 envflag.List(*audience),
		JWKSURL:                   *jwksURL,
		Algorithms:                envflag.List(*algs),
		HMACSecret:                *hmac,
		ClockSkew:                 orNegative(*skew),
		RequireATJWT:              *atjwt,
		IntrospectionURL:          *iURL,
		IntrospectionClientID:     *iID,
		IntrospectionClientSecret: *iSecret,
		IntrospectionAuth:         *iAuth,
		IntrospectionCacheTTL:     *iTTL,
		IntrospectionCacheOff:     *iTTL == 0,
		IntrospectionTimeout:      *iTimeout,
		IntrospectionMaxInFlight:  *iInFlight,
		IntrospectionRateLimit:    *iRate,
		TokenCookies:              envflag.List(*cookies),
		CORSAllowedOrigins:        envflag.List(*origins),
		ReadScopes:                envflag.List(*readScopes),
		WriteScopes:               envflag.List(*writeScopes),
		BaseURL:                   *baseURL,
		MaxTodosPerOwner:          *maxTodos,
	}, level, nil
}

// orNegative maps a configured skew of 0 to the middleware's "none".
func orNegative(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}

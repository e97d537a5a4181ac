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

	"github.com/tollgate-dev/tollgate/api/todoapi"
	"github.com/tollgate-dev/tollgate/internal/envflag"
	"github.com/tollgate-dev/tollgate/internal/httpserve"
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
	cfg.Logger = logger
	srv, err := todoapi.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	return httpserve.Serve(ctx, ln, srv, httpserve.Options{Logger: logger, ShutdownTimeout: cfg.ShutdownTimeout, Ready: ready})
}

// parseConfig maps each setting to its field of todoapi.Config; the
// defaults and the checks are todoapi's.
func parseConfig(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (todoapi.Config, slog.Level, error) {
	d := todoapi.DefaultConfig()
	s := envflag.NewLookup("todo-api", lookupEnv, stderr)
	listen := s.String("LISTEN_ADDR", d.ListenAddr, "address to listen on")
	dbURL := s.String("DATABASE_URL", d.DatabaseURL, "sqlite:PATH or postgres://user@host/db")
	mode := s.String("AUTH_MODE", string(d.AuthMode), "jwt, introspection, or hybrid (JWT-shaped tokens locally, others by introspection)")
	issuer := s.Required("ISSUER", "expected iss, or a comma-separated list of trusted issuers (jwt mode); each one's discovery document supplies jwks_uri (and introspection_endpoint)")
	audience := s.String("AUDIENCE", "", "expected aud, a comma-separated list (any one matches); required in jwt and hybrid modes")
	audClaims := s.String("AUDIENCE_CLAIMS", "aud", "claims compared with AUDIENCE, in order: the first the token carries decides (client_id for servers that send no aud, e.g. Cognito)")
	scopeClaims := s.String("SCOPE_CLAIMS", strings.Join(middleware.DefaultScopeClaims(), ","), `claims read as scopes, comma-separated claim paths ("realm_access.roles"; a dot inside a name is \.)`)
	roleClaims := s.String("ROLE_CLAIMS", "", "claims read as roles, comma-separated claim paths (groups, realm_access.roles, resource_access.todo-api.roles, a final .* for the member names of an object); empty: none")
	allowedRoles := s.String("ALLOWED_ROLES", "", "roles of which a caller needs one for every todo route, comma-separated; needs ROLE_CLAIMS; empty: no role check")
	jwksURL := s.String("JWKS_URL", "", "JWKS URL (default: from discovery); only with a single ISSUER")
	algs := s.String("JWT_ALGORITHMS", strings.Join(d.Algorithms, ","), "accepted JWS algorithms; none is never accepted")
	hmac := s.String("JWT_HMAC_SECRET", "", "shared secret for servers that sign HS256; when set, only HS256 with it is accepted")
	skew := s.OffDuration("CLOCK_SKEW", d.ClockSkew, "leeway for exp, nbf and iat; 0 for none")
	atjwt := s.Bool("REQUIRE_AT_JWT", d.RequireATJWT, "require the header typ at+jwt (RFC 9068)")
	profile := s.String("TOKEN_PROFILE", string(d.TokenProfile), "how strictly JWT access tokens must follow RFC 9068: interoperable (what real servers issue) or rfc9068 (typ at+jwt, kid, and iss, exp, aud, sub, client_id, iat and jti required)")
	iURL := s.String("INTROSPECTION_URL", "", "introspection endpoint (default: from discovery)")
	iID := s.String("INTROSPECTION_CLIENT_ID", "", "client id for introspection")
	iSecret := s.String("INTROSPECTION_CLIENT_SECRET", "", "client secret for introspection")
	iAuth := s.String("INTROSPECTION_AUTH", d.IntrospectionAuth, "introspection client authentication: basic, post or none")
	iTTL := s.OffDuration("INTROSPECTION_CACHE_TTL", d.IntrospectionCacheTTL, "longest an active introspection answer is reused (never past exp); 0 disables the cache")
	iTimeout := s.Duration("INTROSPECTION_TIMEOUT", d.IntrospectionTimeout, "longest wait for one introspection answer")
	iInFlight := s.IntAtLeast("INTROSPECTION_MAX_IN_FLIGHT", d.IntrospectionMaxInFlight, 1, "most introspection requests in flight at once; a token that would need one more is answered 503 at once")
	iRate := s.IntAtLeast("INTROSPECTION_RATE_LIMIT", d.IntrospectionRateLimit, 0, "most new introspection requests per second (cache misses); more are answered 503 at once; 0 means no limit")
	cookies := s.String("TOKEN_COOKIE", strings.Join(d.TokenCookies, ","), "cookie names read when there is no Authorization header, first present wins")
	origins := s.String("CORS_ALLOWED_ORIGINS", "", "origins (scheme://host[:port]) allowed to call with credentials, comma-separated; empty: none")
	readScopes := s.String("REQUIRED_SCOPES_READ", strings.Join(d.ReadScopes, ","), "scopes the read routes need; empty disables the check")
	writeScopes := s.String("REQUIRED_SCOPES_WRITE", strings.Join(d.WriteScopes, ","), "scopes the write routes need; empty disables the check")
	acrDeleteAll := s.String("REQUIRE_ACR_FOR_DELETE_ALL", "", "acr values, comma-separated (any one matches), a token needs to delete every todo at once (DELETE /todos); empty: none (RFC 9470 step-up)")
	ageDeleteAll := s.Duration("MAX_AUTH_AGE_FOR_DELETE_ALL", 0, "longest time since the user signed in (auth_time) for deleting every todo at once, whole seconds; 0: no limit (RFC 9470 step-up)")
	resourceURL := s.String("RESOURCE_URL", "", "this API's resource identifier, an https URL (http for loopback hosts); when set, RFC 9728 metadata is served at /.well-known/oauth-protected-resource and challenges carry resource_metadata")
	dpopMode := s.String("DPOP_MODE", string(d.DPoP), "DPoP-bound tokens (RFC 9449): disabled (Bearer only), allowed (Bearer and DPoP) or required (DPoP only); a proof's htu must name BASE_URL when set")
	dpopSecret := s.String("DPOP_NONCE_SECRET", "", "at least 32 bytes, the same on every replica: DPoP proofs must carry a nonce this API issued (RFC 9449 §9); only with DPOP_MODE allowed or required; empty: no nonces")
	storeURL := s.String("STORE_URL", "", "redis://[user:password@]host:port/db or rediss://…: introspection answers and DPoP proof ids shared by every instance behind a load balancer (unset: in-process, per instance)")
	storeSecret := s.String("STORE_SECRET", "", "at least 32 bytes, the same on every instance; required with STORE_URL: authenticates the introspection answers kept in the store")
	baseURL := s.String("BASE_URL", "", "public URL of the API for todo urls and links, and the URL DPoP proofs name (default: from each request)")
	maxTodos := s.IntAtLeast("MAX_TODOS_PER_USER", d.MaxTodosPerOwner, 1, "most todos one user may keep")
	logLevel := s.String("LOG_LEVEL", "info", "debug, info, warn or error")
	if err := s.Parse(args); err != nil {
		return todoapi.Config{}, 0, err
	}
	m, err := middleware.ParseMode(*mode)
	if err != nil {
		return todoapi.Config{}, 0, fmt.Errorf("AUTH_MODE: want jwt, introspection or hybrid, got %q", *mode)
	}
	dpop, err := middleware.ParseDPoPMode(*dpopMode)
	if err != nil {
		return todoapi.Config{}, 0, fmt.Errorf("DPOP_MODE: want disabled, allowed or required, got %q", *dpopMode)
	}
	tokenProfile, err := middleware.ParseProfile(*profile)
	if err != nil {
		return todoapi.Config{}, 0, fmt.Errorf("TOKEN_PROFILE: want interoperable or rfc9068, got %q", *profile)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return todoapi.Config{}, 0, fmt.Errorf("LOG_LEVEL: want debug, info, warn or error, got %q", *logLevel)
	}
	return todoapi.Config{
		ListenAddr:                *listen,
		DatabaseURL:               *dbURL,
		AuthMode:                  m,
		Issuers:                   envflag.List(*issuer),
		Audiences:                 envflag.List(*audience),
		AudienceClaims:            envflag.List(*audClaims),
		ScopeClaims:               envflag.List(*scopeClaims),
		RoleClaims:                envflag.List(*roleClaims),
		AllowedRoles:              envflag.List(*allowedRoles),
		JWKSURL:                   *jwksURL,
		Algorithms:                envflag.List(*algs),
		HMACSecret:                *hmac,
		ClockSkew:                 *skew,
		RequireATJWT:              *atjwt,
		TokenProfile:              tokenProfile,
		IntrospectionURL:          *iURL,
		IntrospectionClientID:     *iID,
		IntrospectionClientSecret: *iSecret,
		IntrospectionAuth:         *iAuth,
		IntrospectionCacheTTL:     *iTTL,
		IntrospectionTimeout:      *iTimeout,
		IntrospectionMaxInFlight:  *iInFlight,
		IntrospectionRateLimit:    *iRate,
		TokenCookies:              envflag.List(*cookies),
		CORSAllowedOrigins:        envflag.List(*origins),
		ReadScopes:                envflag.List(*readScopes),
		WriteScopes:               envflag.List(*writeScopes),
		RequireACRForDeleteAll:    envflag.List(*acrDeleteAll),
		MaxAuthAgeForDeleteAll:    *ageDeleteAll,
		ResourceURL:               *resourceURL,
		DPoP:                      dpop,
		DPoPNonceSecret:           *dpopSecret,
		StoreURL:                  *storeURL,
		StoreSecret:               *storeSecret,
		BaseURL:                   *baseURL,
		MaxTodosPerOwner:          *maxTodos,
	}, level, nil
}

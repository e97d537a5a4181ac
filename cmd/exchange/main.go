// Command exchange is Tollgate's token exchange service (package
// api/exchange): it signs people in with the Authorization Code grant and
// PKCE, keeps their tokens in HttpOnly cookies, renews them at
// /refreshtoken, and serves the todo web page. Every setting is an
// environment variable and an equal flag; --help lists them.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tollgate-dev/tollgate/api/exchange"
	"github.com/tollgate-dev/tollgate/internal/envflag"
	"github.com/tollgate-dev/tollgate/internal/httpserve"
)

// discoveryPatience is how long run retries the issuer's discovery document
// at start.
const discoveryPatience = 20 * time.Second

func main() {
	if err := run(context.Background(), os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr, nil); err != nil {
		if errors.Is(err, envflag.ErrHelp) {
			return
		}
		// Errors from package exchange already say where they come from.
		msg := err.Error()
		if !strings.HasPrefix(msg, "exchange:") {
			msg = "exchange: " + msg
		}
		fmt.Fprintln(os.Stderr, msg)
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

	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	srv, err := newServer(ctx, cfg, logger)
	if err != nil {
		ln.Close()
		if ctx.Err() != nil {
			return nil // stopped while waiting for discovery
		}
		return err
	}
	defer srv.Close()
	return httpserve.Serve(ctx, ln, srv, httpserve.Options{Logger: logger, ShutdownTimeout: cfg.ShutdownTimeout, Ready: ready})
}

// newServer builds the exchange. The authorization server may still be
// starting (make run starts all three at once): it retries discovery for
// discoveryPatience before giving up, or until ctx ends.
func newServer(ctx context.Context, cfg exchange.Config, logger *slog.Logger) (*exchange.Server, error) {
	deadline := time.Now().Add(discoveryPatience)
	for attempt := 0; ; attempt++ {
		srv, err := exchange.New(ctx, cfg)
		if err == nil || time.Now().After(deadline) || !errors.Is(err, exchange.ErrDiscovery) {
			return srv, err
		}
		if attempt == 0 {
			logger.Warn("the issuer's discovery document is not answering yet; retrying", "issuer", cfg.Issuer, "for", discoveryPatience)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func parseConfig(args []string, lookupEnv func(string) (string, bool), stderr io.Writer) (exchange.Config, slog.Level, error) {
	s := envflag.NewLookup("exchange", lookupEnv, stderr)
	listen := s.String("LISTEN_ADDR", exchange.DefaultListenAddr, "address to listen on")
	issuer := s.Required("ISSUER", "the authorization server's issuer URL, compared exactly; its discovery document must answer")
	clientID := s.Required("CLIENT_ID", "this confidential client's ID at the authorization server")
	clientSecret := s.Required("CLIENT_SECRET", "this client's secret (never logged)")
	redirect := s.String("REDIRECT_URL", exchange.DefaultRedirectURL, "callback URL registered exactly at the server; its path must be /oauth-callback")
	scopes := s.String("SCOPES", exchange.DefaultScopes, "scopes requested at login, space-separated; must include openid")
	audience := s.String("AUDIENCE", "", "sent as audience (Auth0) and resource (RFC 8707) when set")
	clientAuth := s.String("CLIENT_AUTH", exchange.ClientAuthAuto, "client_secret_basic, client_secret_post, or auto (from the discovery document)")
	postLogout := s.String("POST_LOGOUT_REDIRECT_URL", "", "post_logout_redirect_uri for the end-session endpoint (default: REDIRECT_URL's origin + /)")
	cookieDomain := s.String("COOKIE_DOMAIN", "", "Domain of the access token cookie, e.g. example.com, so an API on a sibling host receives it (unset: host-only)")
	cookieSecure := s.Bool("COOKIE_SECURE", true, "Secure cookies with __Host-/__Secure- names; false only for plain-http deployments")
	secret := s.String("SESSION_SECRET", "", "at least 32 bytes keying the encrypted cookies (e.g. `openssl rand -base64 32`); required unless DEV_MODE")
	devMode := s.Bool("DEV_MODE", false, "development: make a random SESSION_SECRET when none is set (restarts sign everybody out)")
	todoAPI := s.String("TODO_API_URL", exchange.DefaultTodoAPIURL, "the todo API's URL, told to the web page")
	webDir := s.String("WEB_DIR", "", "serve the web page from this directory instead of the embedded copy")
	txTTL := s.Duration("TRANSACTION_TTL", exchange.DefaultTransactionTTL, "how long a login attempt may take")
	maxAccess := s.Duration("MAX_ACCESS_TOKEN_AGE", exchange.DefaultMaxAccessTokenAge, "cap on the access token cookie's Max-Age")
	refreshAge := s.Duration("REFRESH_COOKIE_MAX_AGE", exchange.DefaultRefreshCookieMaxAge, "refresh token cookie Max-Age (when the server sends no refresh_expires_in)")
	// A string, not a Duration: envflag refuses negative durations, and
	// here 0 must mean "off" rather than Config's "default".
	grace := s.String("REFRESH_GRACE", exchange.DefaultRefreshGrace.String(), "how long a refresh result is handed to late requests with the replaced refresh token; 0 disables")
	storeURL := s.String("STORE_URL", "", "redis://[user:password@]host:port/db or rediss://…: refresh coordination shared by every instance behind a load balancer (unset: in-process, one instance)")
	timeout := s.Duration("HTTP_TIMEOUT", exchange.DefaultHTTPTimeout, "timeout of each request to the authorization server")
	shutdown := s.Duration("SHUTDOWN_TIMEOUT", exchange.DefaultShutdownTimeout, "how long in-flight requests may take at shutdown")
	level := s.String("LOG_LEVEL", "info", "debug, info, warn or error")
	if err := s.Parse(args); err != nil {
		return exchange.Config{}, 0, err
	}
	var logLevel slog.Level
	if err := logLevel.UnmarshalText([]byte(*level)); err != nil {
		return exchange.Config{}, 0, fmt.Errorf("LOG_LEVEL: invalid value %q: want debug, info, warn or error", *level)
	}
	refreshGrace, err := parseGrace(*grace)
	if err != nil {
		return exchange.Config{}, 0, fmt.Errorf("REFRESH_GRACE: invalid value %q: want a duration such as \"20s\", or 0 to disable", *grace)
	}
	cfg := exchange.Config{
		ListenAddr:            *listen,
		Issuer:                *issuer,
		ClientID:              *clientID,
		ClientSecret:          *clientSecret,
		RedirectURL:           *redirect,
		Scopes:                strings.Fields(*scopes),
		Audience:              *audience,
		ClientAuth:            *clientAuth,
		PostLogoutRedirectURL: *postLogout,
		CookieDomain:          *cookieDomain,
		InsecureCookies:       !*cookieSecure,
		SessionSecret:         []byte(*secret),
		DevMode:               *devMode,
		TodoAPIURL:            *todoAPI,
		WebDir:                *webDir,
		TransactionTTL:        *txTTL,
		MaxAccessTokenAge:     *maxAccess,
		RefreshCookieMaxAge:   *refreshAge,
		RefreshGrace:          refreshGrace,
		StoreURL:              *storeURL,
		HTTPTimeout:           *timeout,
		ShutdownTimeout:       *shutdown,
	}
	if *secret == "" {
		cfg.SessionSecret = nil
	}
	// Config.validate reports the rest (each problem naming its setting)
	// when exchange.New runs.
	return cfg, logLevel, nil
}

// parseGrace reads REFRESH_GRACE, a duration or a number of seconds. Zero or
// less disables the grace window, which Config spells as a negative value
// (its zero means the default).
func parseGrace(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseInt(v, 10, 64)
		if nerr != nil {
			return 0, err
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 {
		return -1, nil
	}
	return d, nil
}

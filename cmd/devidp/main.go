// Command devidp runs Tollgate's development OAuth 2.0 / OpenID Connect
// server (package api/devidp) on loopback, with the demo users alice/alice
// and bob/bob and development clients for the exchange and the todo API.
// It prints those clients' secrets at start, by design. Never for production.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/internal/envflag"
	"github.com/tollgate-dev/tollgate/internal/httpserve"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "devidp:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, err := parseConfig(args, getenv, stdout)
	if errors.Is(err, envflag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	ln, err := devidp.Listen(ctx, cfg)
	if errors.Is(err, devidp.ErrNonLoopback) {
		return fmt.Errorf("LISTEN_ADDR %q is not a loopback address; this server's secrets are public, set ALLOW_NON_LOOPBACK=true to listen there anyway", cfg.ListenAddr)
	}
	if err != nil {
		return err
	}
	if cfg.Issuer == "" {
		cfg.Issuer = devidp.IssuerFor(ln.Addr())
	}
	if err := devidp.WriteBanner(stdout, cfg); err != nil {
		_ = ln.Close()
		return err
	}
	// The banner goes to stdout, logs (with New's DEVELOPMENT ONLY warning)
	// to stderr.
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	cfg.Logger = logger
	srv, err := devidp.New(ctx, cfg)
	if err != nil {
		_ = ln.Close()
		return err
	}
	defer srv.Close()
	return httpserve.Serve(ctx, ln, srv, httpserve.Options{Logger: logger, ShutdownTimeout: shutdownTimeout})
}

// shutdownTimeout is how long requests in flight may finish at shutdown;
// devidp's requests are short, and a developer waits for it at Ctrl-C.
const shutdownTimeout = 5 * time.Second

func parseConfig(args []string, getenv func(string) string, out io.Writer) (devidp.Config, error) {
	s := envflag.New("devidp", getenv, out)
	listen := s.String("LISTEN_ADDR", devidp.DefaultListenAddr, "address to listen on; loopback only unless ALLOW_NON_LOOPBACK")
	issuer := s.String("ISSUER", "", "issuer URL, the base of every endpoint (unset: http://localhost:PORT with LISTEN_ADDR's port, so "+devidp.DefaultIssuer+" by default)")
	allow := s.Bool("ALLOW_NON_LOOPBACK", false, "allow a LISTEN_ADDR other machines can reach (the secrets are public)")
	format := s.String("ACCESS_TOKEN_FORMAT", "jwt", "jwt (RS256, RFC 9068) or opaque (for resource servers that introspect)")
	audience := s.String("ACCESS_TOKEN_AUDIENCE", devidp.DefaultAudience, "aud of every access token")
	accessTTL := s.Duration("ACCESS_TOKEN_TTL", devidp.DefaultAccessTokenTTL, "access token lifetime")
	refreshTTL := s.Duration("REFRESH_TOKEN_TTL", devidp.DefaultRefreshTokenTTL, "refresh token lifetime, restarted at each rotation")
	exID := s.String("EXCHANGE_CLIENT_ID", devidp.DefaultExchangeClientID, "client ID of the exchange service")
	exSecret := s.String("EXCHANGE_CLIENT_SECRET", devidp.DefaultExchangeClientSecret, "client secret of the exchange service (printed at start)")
	exRedirects := s.String("EXCHANGE_REDIRECT_URLS", devidp.DefaultExchangeRedirectURL, "comma-separated redirect URIs registered for the exchange")
	exLogout := s.String("EXCHANGE_POST_LOGOUT_REDIRECT_URLS", devidp.DefaultExchangePostLogoutRedirect, "comma-separated post_logout_redirect_uri values registered for the exchange")
	inID := s.String("INTROSPECTION_CLIENT_ID", devidp.DefaultIntrospectionClientID, "client ID the todo API introspects with")
	inSecret := s.String("INTROSPECTION_CLIENT_SECRET", devidp.DefaultIntrospectionClientSecret, "client secret the todo API introspects with (printed at start)")
	if err := s.Parse(args); err != nil {
		return devidp.Config{}, err
	}

	cfg := devidp.Config{
		Issuer:           *issuer,
		ListenAddr:       *listen,
		AllowNonLoopback: *allow,
		Audience:         *audience,
		AccessTokenTTL:   *accessTTL,
		RefreshTokenTTL:  *refreshTTL,
		Users:            devidp.DemoUsers(),
		Clients: []devidp.Client{
			{ID: *exID, Secret: *exSecret, RedirectURIs: envflag.List(*exRedirects), PostLogoutRedirectURIs: envflag.List(*exLogout)},
			{ID: *inID, Secret: *inSecret},
			devidp.DefaultCLIClient(),
		},
	}
	switch *format {
	case "jwt":
	case "opaque":
		cfg.OpaqueAccessTokens = true
	default:
		return cfg, fmt.Errorf("ACCESS_TOKEN_FORMAT: invalid value %q: want jwt or opaque", *format)
	}
	if cfg.Issuer != "" {
		if u, err := url.Parse(cfg.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return cfg, fmt.Errorf("ISSUER: invalid value %q: want an http(s) URL without query or fragment", cfg.Issuer)
		}
	}
	for _, ttl := range []struct {
		env string
		d   time.Duration
	}{{"ACCESS_TOKEN_TTL", *accessTTL}, {"REFRESH_TOKEN_TTL", *refreshTTL}} {
		if ttl.d < time.Second {
			return cfg, fmt.Errorf("%s: invalid value %q: want at least 1s", ttl.env, ttl.d)
		}
	}
	required := []struct{ env, v string }{
		{"ACCESS_TOKEN_AUDIENCE", *audience}, {"EXCHANGE_CLIENT_ID", *exID}, {"EXCHANGE_CLIENT_SECRET", *exSecret},
		{"INTROSPECTION_CLIENT_ID", *inID}, {"INTROSPECTION_CLIENT_SECRET", *inSecret},
	}
	for _, r := range required {
		if r.v == "" {
			return cfg, fmt.Errorf("%s must not be empty", r.env)
		}
	}
	if *exID == *inID {
		return cfg, fmt.Errorf("EXCHANGE_CLIENT_ID and INTROSPECTION_CLIENT_ID are both %q; they must differ", *exID)
	}
	if len(cfg.Clients[0].RedirectURIs) == 0 {
		return cfg, errors.New("EXCHANGE_REDIRECT_URLS must name at least one URL")
	}
	for _, urls := range []struct {
		env  string
		list []string
	}{{"EXCHANGE_REDIRECT_URLS", cfg.Clients[0].RedirectURIs}, {"EXCHANGE_POST_LOGOUT_REDIRECT_URLS", cfg.Clients[0].PostLogoutRedirectURIs}} {
		for _, raw := range urls.list {
			if u, err := url.Parse(raw); err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
				return cfg, fmt.Errorf("%s: invalid value %q: want absolute URLs without fragment", urls.env, raw)
			}
		}
	}
	return cfg, nil
}

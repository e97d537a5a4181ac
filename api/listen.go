package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/tollgate-dev/tollgate/internal/gormdb"
	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/todos"
)

// Build makes the todo API's handler from cfg: it opens and migrates the
// database and sets up token verification (discovering the issuer's
// metadata when needed). The returned close function releases the database.
func Build(ctx context.Context, cfg Config, logger *slog.Logger) (http.Handler, func() error, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	m := newMetrics()
	authCfg := middleware.Config{
		Mode:           cfg.AuthMode,
		Issuer:         cfg.Issuer,
		Audiences:      cfg.Audiences,
		JWKSURL:        cfg.JWKSURL,
		Algorithms:     cfg.Algorithms,
		ClockSkew:      cfg.ClockSkew,
		RequireATJWT:   cfg.RequireATJWT,
		CookieNames:    cfg.TokenCookies,
		AllowedOrigins: cfg.CORSAllowedOrigins,
		Realm:          "todo-api",
		Logger:         logger,
		OnOutcome:      m.onOutcome,
		OnKeyRefresh:   m.onKeyRefresh,
	}
	if cfg.HMACSecret != "" {
		authCfg.HMACSecret = []byte(cfg.HMACSecret)
	}
	if cfg.AuthMode != middleware.ModeJWT {
		method, err := introspection.ParseAuthMethod(cfg.IntrospectionAuth)
		if err != nil {
			return nil, nil, fmt.Errorf("INTROSPECTION_AUTH: %w", err)
		}
		ic := &introspection.Client{
			Endpoint:     cfg.IntrospectionURL,
			ClientID:     cfg.IntrospectionClientID,
			ClientSecret: cfg.IntrospectionClientSecret,
			AuthMethod:   method,
			CacheTTL:     cfg.IntrospectionCacheTTL,
			Timeout:      cfg.IntrospectionTimeout,
			MaxInFlight:  cfg.IntrospectionMaxInFlight,
			RateLimit:    float64(cfg.IntrospectionRateLimit),
			Logger:       logger,
		}
		if cfg.IntrospectionCacheOff {
			ic.CacheTTL, ic.InactiveCacheTTL = -1, -1
		}
		authCfg.Introspector = ic
	}
	auth, err := middleware.New(ctx, authCfg)
	if err != nil {
		return nil, nil, err
	}
	db, err := gormdb.Open(ctx, cfg.DatabaseURL, logger)
	if err != nil {
		return nil, nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, nil, err
	}
	store, err := todos.NewStore(db, todos.StoreConfig{MaxTodosPerOwner: cfg.MaxTodosPerOwner})
	if err != nil {
		sqlDB.Close()
		return nil, nil, err
	}
	if err := store.Migrate(ctx); err != nil {
		sqlDB.Close()
		return nil, nil, fmt.Errorf("migrating the database: %w", err)
	}
	handlers, err := todos.NewHandlers(store, todos.Config{BaseURL: cfg.BaseURL, MaxBodyBytes: cfg.MaxBodyBytes, Logger: logger})
	if err != nil {
		sqlDB.Close()
		return nil, nil, err
	}
	h := NewServer(Deps{
		Auth:               auth,
		Todos:              handlers,
		ReadScopes:         cfg.ReadScopes,
		WriteScopes:        cfg.WriteScopes,
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		Ready: []Pinger{
			PingFunc(func(ctx context.Context) error {
				if err := sqlDB.PingContext(ctx); err != nil {
					return errors.New("database unreachable")
				}
				return nil
			}),
			auth,
		},
		Logger:  logger,
		metrics: m,
	})
	return h, sqlDB.Close, nil
}

// ListenAndServe runs the todo API until ctx ends, then shuts down
// gracefully: it stops accepting connections and lets requests in flight
// finish, for at most cfg.ShutdownTimeout. ready, when not nil, receives
// the bound address once the server accepts connections.
func ListenAndServe(ctx context.Context, cfg Config, logger *slog.Logger, ready func(net.Addr)) error {
	cfg.setDefaults()
	// The key refresh and other background work end with ctx.
	h, closeDB, err := Build(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeDB()
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("LISTEN_ADDR: %w", err)
	}
	return Serve(ctx, ln, h, cfg.ShutdownTimeout, logger, ready)
}

// Serve serves h on ln until ctx ends, then shuts down within timeout.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, timeout time.Duration, logger *slog.Logger, ready func(net.Addr)) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String())
	if ready != nil {
		ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

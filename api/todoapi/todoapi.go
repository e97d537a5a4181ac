package todoapi

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tollgate-dev/tollgate/internal/gormdb"
	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/principal"
	"github.com/tollgate-dev/tollgate/store"
	"github.com/tollgate-dev/tollgate/todos"
)

// Server is the todo API: every route of openapi.yaml (see routes.go)
// behind CORS, request logging and metrics.
type Server struct {
	handler http.Handler
	engine  *gin.Engine // for the test of the routes against openapi.yaml
	db      *sql.DB
	shared  store.Store // STORE_URL's store; nil without it
}

// New builds the todo API from cfg: it checks every setting, sets up token
// verification (discovering the issuer's metadata when needed), and opens
// and migrates the database, and opens STORE_URL's store. Background work
// (the key refresh) stops when ctx ends; Close releases the database and
// the store.
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	cfg.setDefaults()
	// Every problem at once: the settings' and STORE_URL's.
	problems := cfg.validate()
	shared, err := openShared(&cfg)
	if err = errors.Join(problems, err); err != nil {
		if shared != nil {
			shared.st.Close()
		}
		return nil, err
	}
	if shared != nil {
		defer func() {
			if err != nil {
				shared.st.Close()
			}
		}()
	}
	logger := cfg.Logger
	m := newMetrics()
	authCfg := middleware.Config{
		Mode:           cfg.AuthMode,
		Audiences:      cfg.Audiences,
		AudienceClaims: cfg.AudienceClaims,
		ScopeClaims:    cfg.ScopeClaims,
		RoleClaims:     cfg.RoleClaims,
		// Start without keys and let /readyz (auth is one of its checks)
		// keep traffic away until they load: the API may start in the
		// same moment as its authorization server (a compose file, a
		// pod), and a key server that is down a moment must not make it
		// exit. A wrong JWKS_URL shows as /readyz "signing keys not
		// loaded yet" and a "jwks refresh failed" warning naming the URL
		// at every retry. Discovery, when JWKS_URL is empty, still has to
		// answer at start.
		LazyKeys:         true,
		Algorithms:       cfg.Algorithms,
		ClockSkew:        cfg.ClockSkew,
		RequireATJWT:     cfg.RequireATJWT,
		Profile:          cfg.TokenProfile,
		CookieNames:      cfg.TokenCookies,
		AllowedOrigins:   cfg.CORSAllowedOrigins,
		Realm:            "todo-api",
		ResourceMetadata: cfg.resourceMetadata(),
		Logger:           logger,
		OnOutcome:        m.onOutcome,
		OnKeyRefresh:     m.onKeyRefresh,
	}
	if cfg.dpopOn() {
		authCfg.DPoP = cfg.DPoP
		// The URL clients call, which BASE_URL names already for todo
		// urls: without it a proof must name the request's own scheme and
		// Host, and forwarded headers are never trusted.
		authCfg.DPoPBaseURL = cfg.BaseURL
		if cfg.DPoPNonceSecret != "" {
			authCfg.DPoPNonceKeys = [][]byte{[]byte(cfg.DPoPNonceSecret)}
		}
		if shared != nil {
			// A proof used at any instance is refused at every other.
			authCfg.DPoPReplayStore = shared.st
		}
	}
	if len(cfg.Issuers) == 1 {
		authCfg.Issuer, authCfg.JWKSURL = cfg.Issuers[0], cfg.JWKSURL
		if cfg.HMACSecret != "" {
			authCfg.HMACSecret = []byte(cfg.HMACSecret)
		}
	} else {
		// Each discovered by middleware.New, trusted with its own keys;
		// AUDIENCE applies to them all.
		for _, iss := range cfg.Issuers {
			authCfg.Issuers = append(authCfg.Issuers, middleware.IssuerConfig{Issuer: iss})
		}
	}
	if cfg.AuthMode != middleware.ModeJWT {
		method, err := introspection.ParseAuthMethod(cfg.IntrospectionAuth)
		if err != nil {
			return nil, fmt.Errorf("INTROSPECTION_AUTH: %w", err)
		}
		endpoint := cfg.IntrospectionURL
		if endpoint == "" {
			// Discover once: middleware.New takes jwks_uri from the same
			// document instead of fetching it again.
			md, err := middleware.Discover(ctx, nil, cfg.Issuers[0])
			if err != nil {
				return nil, err
			}
			if endpoint, err = md.IntrospectionURL(); err != nil {
				return nil, err
			}
			authCfg.Metadata = md
		}
		ic := &introspection.Client{
			Endpoint:     endpoint,
			ClientID:     cfg.IntrospectionClientID,
			ClientSecret: cfg.IntrospectionClientSecret,
			AuthMethod:   method,
			CacheTTL:     cfg.IntrospectionCacheTTL,
			Timeout:      cfg.IntrospectionTimeout,
			MaxInFlight:  cfg.IntrospectionMaxInFlight,
			RateLimit:    float64(cfg.IntrospectionRateLimit),
			Logger:       logger,
		}
		if cfg.IntrospectionCacheTTL < 0 {
			ic.InactiveCacheTTL = -1
		}
		if shared != nil {
			// One instance's verdict (active or not) serves the others,
			// never past exp nor past the TTL its writer would keep it.
			ic.SharedCache, ic.SharedCacheKey = shared.st, shared.introspectionKey
		}
		// Refuse bad introspection settings at start, not at the first
		// request: middleware.New takes the client as it is.
		if err := ic.Validate(); err != nil {
			return nil, err
		}
		authCfg.Introspector = ic
	}
	auth, err := middleware.New(ctx, authCfg)
	if err != nil {
		return nil, err
	}
	db, err := gormdb.Open(ctx, cfg.DatabaseURL, logger)
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	todoStore, err := todos.NewStore(db, todos.StoreConfig{MaxTodosPerOwner: cfg.MaxTodosPerOwner})
	if err != nil {
		sqlDB.Close()
		return nil, err
	}
	if err := todoStore.Migrate(ctx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("migrating the database: %w", err)
	}
	// Todos are owned by issuer and subject whatever ISSUER lists, so that
	// adding or removing an issuer changes no owner. The todos written
	// when they were owned by the subject alone, with a single ISSUER,
	// are its users': they get its name once.
	recorded, changed, err := todoStore.PrefixOwners(ctx, cfg.Issuers[0]+" ")
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("migrating the database: %w", err)
	}
	if changed > 0 {
		logger.Info("todos written before owners named their issuer now belong to that issuer's users", "issuer", strings.TrimSuffix(recorded, " "), "todos", changed)
	}
	tcfg := todos.Config{BaseURL: cfg.BaseURL, MaxBodyBytes: cfg.MaxBodyBytes, Logger: logger, Owner: ownerByIssuer}
	if len(cfg.Issuers) == 1 {
		tcfg.Owner = ownerOfIssuer(cfg.Issuers[0])
	}
	if need := cfg.deleteAllStepUp(); len(need.ACRValues) > 0 || need.MaxAge > 0 {
		tcfg.AllowDeleteAll = stepUpCheck(auth, need)
		attrs := []any{}
		if len(need.ACRValues) > 0 {
			attrs = append(attrs, "acr_values", need.ACRValues)
		}
		if need.MaxAge > 0 {
			attrs = append(attrs, "max_age", need.MaxAge.String())
		}
		logger.Info("deleting every todo needs step-up (RFC 9470)", attrs...)
	}
	if cfg.dpopOn() {
		logger.Info("DPoP-bound tokens accepted (RFC 9449)", "dpop_mode", string(cfg.DPoP), "dpop_nonces", cfg.DPoPNonceSecret != "")
	}
	handlers, err := todos.NewHandlers(todoStore, tcfg)
	if err != nil {
		sqlDB.Close()
		return nil, err
	}
	h, engine := newHandler(deps{
		Auth:               auth,
		Todos:              handlers,
		ReadScopes:         cfg.ReadScopes,
		WriteScopes:        cfg.WriteScopes,
		AllowedRoles:       cfg.AllowedRoles,
		CORSAllowedOrigins: cfg.CORSAllowedOrigins,
		DPoP:               cfg.dpopOn(),
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
	srv := &Server{handler: h, engine: engine, db: sqlDB}
	if shared != nil {
		srv.shared = shared.st
		shared.log(logger, &cfg)
	}
	return srv, nil
}

// ownerByIssuer names the owner of a caller's todos when the API trusts
// several issuers: a subject is unique only at its issuer (OpenID Connect
// Core §2), so two issuers' "alice" are two owners. The owner is the
// verified iss, a space and sub; a configured issuer has no space, so no
// two callers share one.
func ownerByIssuer(p principal.Principal) string {
	iss, _ := p.Claims["iss"].(string)
	if iss == "" || strings.Contains(iss, " ") || p.Subject == "" {
		return "" // refused: cannot happen for a token the middleware accepted
	}
	return iss + " " + p.Subject
}

// ownerOfIssuer names owners as ownerByIssuer does, for an API that trusts
// one issuer: every caller is that issuer's (an introspection answer may
// carry no iss), so the name is the same as with a list that includes it.
func ownerOfIssuer(iss string) func(principal.Principal) string {
	return func(p principal.Principal) string {
		if p.Subject == "" {
			return ""
		}
		return iss + " " + p.Subject
	}
}

// stepUpCheck answers a request whose caller's sign-in does not meet need
// with the middleware's RFC 9470 challenge, and reports whether it may go
// on. It runs inside the handler, after authentication and the scope check,
// since only the handler knows that a DELETE /todos deletes every todo.
func stepUpCheck(auth *middleware.Authenticator, need middleware.StepUp) func(http.ResponseWriter, *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if err := auth.CheckStepUp(r.Context(), need); err != nil {
			auth.WriteError(w, r, err)
			return false
		}
		return true
	}
}

// ServeHTTP serves the todo API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Close releases the database and the store.
func (s *Server) Close() error {
	err := s.db.Close()
	if s.shared != nil {
		err = errors.Join(err, s.shared.Close())
	}
	return err
}

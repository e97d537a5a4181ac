package devidp

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/token/jwt"
	"golang.org/x/crypto/bcrypt"

	"github.com/tollgate-dev/tollgate/internal/httpserve"
)

// Server is the development authorization server. It is safe for concurrent use.
type Server struct {
	cfg     Config
	fosite  *fosite.Fosite
	signer  *jwt.DefaultSigner
	jwks    jose.JSONWebKeySet
	users   map[string]User // by username
	clients map[string]Client
	// stepKey signs the proof, carried from the password step to the
	// second step of a two-factor sign-in, that the password was right.
	stepKey []byte
	// steps counts the code attempts of each proof still in play, so that
	// a proof allows a few tries and one completion (see stepAttempt).
	steps stepAttempts
	// dpop checks the DPoP proofs of token requests (RFC 9449).
	dpop    *dpopVerifier
	logger  *slog.Logger
	handler http.Handler
}

// New builds a server from cfg, reporting every problem with cfg at once.
// Its Issuer must be the URL clients reach it at (cmd/devidp uses
// IssuerFor on its listener when none is set). The server has no background
// work; ctx bounds only the set-up. New logs the loud "DEVELOPMENT ONLY"
// warning to cfg.Logger, so every way of running it says so.
func New(ctx context.Context, cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	key := cfg.SigningKey
	if key == nil {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			return nil, fmt.Errorf("devidp: signing key: %w", err)
		}
	}
	public := jose.JSONWebKey{Key: &key.PublicKey, Algorithm: string(jose.RS256), Use: "sig"}
	thumb, err := public.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("devidp: key thumbprint: %w", err)
	}
	public.KeyID = base64.RawURLEncoding.EncodeToString(thumb)[:16]
	private := &jose.JSONWebKey{Key: key, KeyID: public.KeyID, Algorithm: string(jose.RS256), Use: "sig"}
	signer := &jwt.DefaultSigner{GetPrivateKey: func(context.Context) (any, error) { return private, nil }}

	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("devidp: HMAC secret: %w", err)
	}
	stepKey := make([]byte, 32)
	if _, err := rand.Read(stepKey); err != nil {
		return nil, fmt.Errorf("devidp: step key: %w", err)
	}

	dpop, err := newDPoPVerifier(cfg.Issuer, time.Now)
	if err != nil {
		return nil, fmt.Errorf("devidp: endpoint URLs for DPoP: %w", err)
	}

	fc := &fosite.Config{
		IDTokenIssuer:       cfg.Issuer,
		AccessTokenIssuer:   cfg.Issuer,
		AccessTokenLifespan: cfg.AccessTokenTTL,
		// fosite applies RefreshTokenLifespan to every refresh: the lifetime
		// restarts with each rotation.
		RefreshTokenLifespan:  cfg.RefreshTokenTTL,
		AuthorizeCodeLifespan: 10 * time.Minute,
		IDTokenLifespan:       time.Hour,
		TokenURL:              cfg.Issuer + "/token",
		GlobalSecret:          secret,
		// S256 is required of every client; plain is refused.
		EnforcePKCE:                    true,
		EnablePKCEPlainChallengeMethod: false,
		RefreshTokenScopes:             []string{"offline_access"},
		// fosite writes scopes as a "scp" array unless told otherwise.
		JWTScopeClaimKey: jwt.JWTScopeFieldString,
		// Default is 12, about 0.25s per client authentication; these secrets
		// are printed at start anyway.
		HashCost: bcrypt.MinCost,
		// Set explicitly: fosite's getters fill these lazily by writing to the
		// Config, which races when requests run concurrently.
		ScopeStrategy:            fosite.ExactScopeStrategy,
		AudienceMatchingStrategy: fosite.ExactAudienceMatchingStrategy,
		JWKSFetcherStrategy:      fosite.NewDefaultJWKSFetcherStrategy(),
		// fosite refuses http redirect URIs except on localhost and loopback
		// IPs; ours are registered by whoever runs this server, and matched
		// exactly, so any registered one is fine.
		RedirectSecureChecker: func(context.Context, *url.URL) bool { return true },
	}
	fc.ClientSecretsHasher = &fosite.BCrypt{Config: fc}

	s := &Server{
		cfg:     cfg,
		signer:  signer,
		jwks:    jose.JSONWebKeySet{Keys: []jose.JSONWebKey{public}},
		users:   map[string]User{},
		clients: map[string]Client{},
		stepKey: stepKey,
		dpop:    dpop,
		logger:  cfg.Logger,
	}
	for _, u := range cfg.Users {
		s.users[u.Username] = u
	}
	var fclients []fosite.Client
	for _, c := range cfg.Clients {
		dc := &fosite.DefaultClient{
			ID:       c.ID,
			Scopes:   slices.Clone(Scopes),
			Audience: []string{cfg.Audience},
			// fosite gotcha: a public DefaultClient (not an
			// OpenIDConnectClient, so no token_endpoint_auth_method) is
			// authenticated by client_id alone, at the token, revocation
			// and introspection endpoints alike; handleIntrospect
			// refuses public clients itself.
			Public: c.Public,
		}
		if !c.Public {
			hash, err := fc.ClientSecretsHasher.Hash(ctx, []byte(c.Secret))
			if err != nil {
				return nil, fmt.Errorf("devidp: hashing the secret of client %q: %w", c.ID, err)
			}
			dc.Secret = hash
		}
		if len(c.RedirectURIs) > 0 {
			dc.RedirectURIs = slices.Clone(c.RedirectURIs)
			dc.GrantTypes = []string{"authorization_code", "refresh_token"}
			dc.ResponseTypes = []string{"code"}
		}
		// fosite gotcha: a plain DefaultClient refuses every explicit
		// response_mode, even "query"; this one allows query alone.
		fclients = append(fclients, &fosite.DefaultResponseModeClient{
			DefaultClient: dc,
			ResponseModes: []fosite.ResponseModeType{fosite.ResponseModeQuery},
		})
		s.clients[c.ID] = c
	}

	var core compose.CommonStrategy
	hmac := compose.NewOAuth2HMACStrategy(fc)
	if cfg.OpaqueAccessTokens {
		core.CoreStrategy = &accessTokens{CoreStrategy: hmac, issuer: cfg.Issuer, ttl: cfg.AccessTokenTTL}
	} else {
		// Codes and refresh tokens stay HMAC tokens; only access tokens are JWTs.
		core.CoreStrategy = &accessTokens{CoreStrategy: compose.NewOAuth2JWTStrategy(signer.GetPrivateKey, hmac, fc), issuer: cfg.Issuer, ttl: cfg.AccessTokenTTL}
	}
	core.OpenIDConnectTokenStrategy = compose.NewOpenIDConnectStrategy(signer.GetPrivateKey, fc)
	core.Signer = signer

	// Order matters: the OpenID Connect and PKCE handlers need the code that
	// the authorization code handler issues first.
	// Compose returns the OAuth2Provider interface; AuthenticateClient, which
	// the introspection endpoint needs, exists only on *fosite.Fosite.
	s.fosite = compose.Compose(fc, newStore(fclients), &core,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2PKCEFactory,
		// Stateful introspection, so revoked JWTs answer active:false.
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
	).(*fosite.Fosite)
	s.handler = httpserve.Wrap(s.routes(), s.logger)
	s.logger.Warn("DEVELOPMENT ONLY: Tollgate development authorization server; never use it in production",
		"issuer", cfg.Issuer, "access_tokens", map[bool]string{false: "jwt", true: "opaque"}[cfg.OpaqueAccessTokens])
	return s, nil
}

// Issuer returns the issuer identifier.
func (s *Server) Issuer() string { return s.cfg.Issuer }

// ServeHTTP serves every endpoint, through httpserve.Wrap: a request id,
// panic recovery and one log line per request (never a query or body: they
// carry codes, tokens and secrets).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// Close returns nil: the server holds nothing that needs releasing (its
// sessions and tokens live in memory). It is there for the common server
// shape.
func (s *Server) Close() error { return nil }

package todoapi

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"log/slog"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/store"
)

// introspectionKeyPurpose names the key derived from STORE_SECRET for the
// introspection verdicts: one secret can key other shared values later,
// each under its own purpose, without one key serving two uses.
const introspectionKeyPurpose = "tollgate todo-api introspection shared cache v1"

// sharedStore is STORE_URL's store and what the todo API puts in it.
type sharedStore struct {
	st store.Store
	// introspectionKey authenticates the introspection verdicts (the
	// introspection client's SharedCacheKey).
	introspectionKey []byte
	// shares names what the instances share, for the start-up log.
	shares []string
}

// openShared opens STORE_URL's store, or returns nil without it or when
// nothing would use it (jwt mode without DPoP: a warning says so). Open
// does not contact the server, so a store that is down at start costs
// nothing here: the middleware falls back to its own caches until it
// answers. A malformed STORE_URL is an error naming it, never showing its
// password.
func openShared(cfg *Config) (*sharedStore, error) {
	if cfg.StoreURL == "" {
		return nil, nil
	}
	st, err := store.Open(cfg.StoreURL)
	if err != nil {
		return nil, err
	}
	s := &sharedStore{st: st}
	if cfg.AuthMode != middleware.ModeJWT {
		s.shares = append(s.shares, "introspection answers")
	}
	if cfg.dpopOn() {
		s.shares = append(s.shares, "DPoP proof ids")
	}
	if len(s.shares) == 0 {
		st.Close()
		cfg.Logger.Warn("STORE_URL is set but nothing is shared: JWTs are verified locally without a cache to share; the store is used with AUTH_MODE introspection or hybrid, or with DPOP_MODE allowed or required",
			"store", store.Redacted(cfg.StoreURL))
		return nil, nil
	}
	key, err := hkdf.Key(sha256.New, []byte(cfg.StoreSecret), nil, introspectionKeyPurpose, introspection.MinSharedCacheKeyBytes)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("STORE_SECRET: deriving the introspection key: %w", err)
	}
	s.introspectionKey = key
	return s, nil
}

// log says at start what the instances share and where (the URL without
// its password).
func (s *sharedStore) log(logger *slog.Logger, cfg *Config) {
	logger.Info("caches shared with the other instances", "store", store.Redacted(cfg.StoreURL), "shared", s.shares)
}

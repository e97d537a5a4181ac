package devidp

import (
	"context"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
)

// store keeps clients, codes and tokens in memory behind one mutex.
//
// It stands in for fosite's storage.MemoryStore, which marks refresh tokens
// revoked without the lock its readers take (a data race under concurrent
// requests) and remembers only the newest refresh token of a grant. This store
// implements exactly the interfaces the composed handlers use.
//
// Tokens of one grant share fosite's request ID: the authorization code, and
// every access and refresh token issued from it or from its refreshes. That ID
// is how revocation and replay detection reach the whole family.
type store struct {
	mu      sync.Mutex
	clients map[string]fosite.Client
	codes   map[string]*codeRecord      // by code signature
	oidc    map[string]fosite.Requester // by code (fosite keys this by the code itself)
	pkce    map[string]fosite.Requester // by code signature
	access  map[string]fosite.Requester // by access token signature
	refresh map[string]*refreshRecord   // by refresh token signature
	jtis    map[string]time.Time
}

type codeRecord struct {
	req  fosite.Requester
	used bool
}

type refreshRecord struct {
	req      fosite.Requester
	inactive bool // used (rotated) or revoked; kept to detect replay
}

var (
	_ fosite.Storage                     = (*store)(nil)
	_ oauth2.CoreStorage                 = (*store)(nil)
	_ oauth2.TokenRevocationStorage      = (*store)(nil)
	_ openid.OpenIDConnectRequestStorage = (*store)(nil)
	_ pkce.PKCERequestStorage            = (*store)(nil)
)

func newStore(clients []fosite.Client) *store {
	s := &store{
		clients: map[string]fosite.Client{},
		codes:   map[string]*codeRecord{},
		oidc:    map[string]fosite.Requester{},
		pkce:    map[string]fosite.Requester{},
		access:  map[string]fosite.Requester{},
		refresh: map[string]*refreshRecord{},
		jtis:    map[string]time.Time{},
	}
	for _, c := range clients {
		s.clients[c.GetID()] = c
	}
	return s
}

// fosite.ClientManager

func (s *store) GetClient(_ context.Context, id string) (fosite.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return c, nil
}

func (s *store) ClientAssertionJWTValid(_ context.Context, jti string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.jtis[jti]; ok && exp.After(time.Now()) {
		return fosite.ErrJTIKnown
	}
	return nil
}

func (s *store) SetClientAssertionJWT(_ context.Context, jti string, exp time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for j, e := range s.jtis {
		if e.Before(time.Now()) {
			delete(s.jtis, j)
		}
	}
	if _, ok := s.jtis[jti]; ok {
		return fosite.ErrJTIKnown
	}
	s.jtis[jti] = exp
	return nil
}

// oauth2.AuthorizeCodeStorage

func (s *store) CreateAuthorizeCodeSession(_ context.Context, sig string, req fosite.Requester) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[sig] = &codeRecord{req: req}
	return nil
}

// GetAuthorizeCodeSession returns the request with ErrInvalidatedAuthorizeCode
// for a used code, as fosite requires: it then revokes the grant's tokens.
func (s *store) GetAuthorizeCodeSession(_ context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.codes[sig]
	if !ok {
		return nil, fosite.ErrNotFound
	}
	if r.used {
		return r.req, fosite.ErrInvalidatedAuthorizeCode
	}
	return r.req, nil
}

func (s *store) InvalidateAuthorizeCodeSession(_ context.Context, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.codes[sig]
	if !ok {
		return fosite.ErrNotFound
	}
	r.used = true
	return nil
}

// openid.OpenIDConnectRequestStorage

func (s *store) CreateOpenIDConnectSession(_ context.Context, code string, req fosite.Requester) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.oidc[code] = req
	return nil
}

func (s *store) GetOpenIDConnectSession(_ context.Context, code string, _ fosite.Requester) (fosite.Requester, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.oidc[code]
	if !ok {
		return nil, openid.ErrNoSessionFound
	}
	return r, nil
}

func (s *store) DeleteOpenIDConnectSession(_ context.Context, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.oidc, code)
	return nil
}

// pkce.PKCERequestStorage

func (s *store) CreatePKCERequestSession(_ context.Context, sig string, req fosite.Requester) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pkce[sig] = req
	return nil
}

func (s *store) GetPKCERequestSession(_ context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.pkce[sig]
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return r, nil
}

func (s *store) DeletePKCERequestSession(_ context.Context, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pkce, sig)
	return nil
}

// oauth2.AccessTokenStorage

func (s *store) CreateAccessTokenSession(_ context.Context, sig string, req fosite.Requester) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.access[sig] = req
	return nil
}

func (s *store) GetAccessTokenSession(_ context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.access[sig]
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return r, nil
}

func (s *store) DeleteAccessTokenSession(_ context.Context, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.access, sig)
	return nil
}

// oauth2.RefreshTokenStorage

func (s *store) CreateRefreshTokenSession(_ context.Context, sig, _ string, req fosite.Requester) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh[sig] = &refreshRecord{req: req}
	return nil
}

// GetRefreshTokenSession returns the request with ErrInactiveToken for a used
// or revoked refresh token: fosite treats that as replay and revokes the family.
func (s *store) GetRefreshTokenSession(_ context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refresh[sig]
	if !ok {
		return nil, fosite.ErrNotFound
	}
	if r.inactive {
		return r.req, fosite.ErrInactiveToken
	}
	return r.req, nil
}

func (s *store) DeleteRefreshTokenSession(_ context.Context, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.refresh, sig)
	return nil
}

// RotateRefreshToken retires the refresh token just used and the access
// tokens issued before it, as fosite's MemoryStore and Hydra do; the new pair
// is stored right after.
func (s *store) RotateRefreshToken(_ context.Context, requestID, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.refresh[sig]; ok {
		r.inactive = true
	}
	s.deleteAccessLocked(requestID)
	return nil
}

// oauth2.TokenRevocationStorage

// RevokeRefreshToken retires every refresh token of the grant.
func (s *store) RevokeRefreshToken(_ context.Context, requestID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.refresh {
		if r.req.GetID() == requestID {
			r.inactive = true
		}
	}
	return nil
}

// RevokeAccessToken forgets every access token of the grant.
func (s *store) RevokeAccessToken(_ context.Context, requestID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteAccessLocked(requestID)
	return nil
}

func (s *store) deleteAccessLocked(requestID string) {
	for sig, r := range s.access {
		if r.GetID() == requestID {
			delete(s.access, sig)
		}
	}
}

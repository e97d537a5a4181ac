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
// requests), remembers only the newest refresh token of a grant, and never
// forgets anything. This store implements exactly the interfaces the composed
// handlers use, and drops records once they have expired.
//
// Tokens of one grant share fosite's request ID: the authorization code, and
// every access and refresh token issued from it or from its refreshes. That ID
// is how revocation and replay detection reach the whole family.
type store struct {
	mu        sync.Mutex
	clients   map[string]fosite.Client
	codes     map[string]*record // by code signature
	oidc      map[string]*record // by the code itself (fosite's choice)
	pkce      map[string]*record // by code signature
	access    map[string]*record // by access token signature
	refresh   map[string]*record // by refresh token signature
	jtis      map[string]time.Time
	lastSweep time.Time
}

// record is a stored request. exp is read when it is stored, by the
// goroutine that owns the session then: fosite goes on writing to stored
// sessions later, outside our lock.
type record struct {
	req      fosite.Requester
	exp      time.Time
	inactive bool // a used code, or a used (rotated) or revoked refresh token
}

// Records with no expiry of their own go after this long.
const fallbackLifetime = time.Hour

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
		codes:   map[string]*record{},
		oidc:    map[string]*record{},
		pkce:    map[string]*record{},
		access:  map[string]*record{},
		refresh: map[string]*record{},
		jtis:    map[string]time.Time{},
	}
	for _, c := range clients {
		s.clients[c.GetID()] = c
	}
	return s
}

func newRecord(req fosite.Requester, tt fosite.TokenType) *record {
	var exp time.Time
	if sess := req.GetSession(); sess != nil {
		exp = sess.GetExpiresAt(tt)
	}
	if exp.IsZero() {
		exp = time.Now().Add(fallbackLifetime)
	}
	return &record{req: req, exp: exp}
}

// put stores r and, at most once a minute, forgets expired records. A
// refresh token is kept until it expires even once used, so that its replay
// is recognised.
func (s *store) put(m map[string]*record, key string, r *record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m[key] = r
	now := time.Now()
	if now.Sub(s.lastSweep) < time.Minute {
		return
	}
	s.lastSweep = now
	for _, m := range []map[string]*record{s.codes, s.oidc, s.pkce, s.access, s.refresh} {
		for k, r := range m {
			if r.exp.Before(now) {
				delete(m, k)
			}
		}
	}
}

func (s *store) get(m map[string]*record, key string) (*record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := m[key]
	if !ok {
		return nil, false
	}
	copied := *r
	return &copied, true
}

func (s *store) del(m map[string]*record, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(m, key)
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
	s.put(s.codes, sig, newRecord(req, fosite.AuthorizeCode))
	return nil
}

// GetAuthorizeCodeSession returns the request with ErrInvalidatedAuthorizeCode
// for a used code, as fosite requires: it then revokes the grant's tokens.
func (s *store) GetAuthorizeCodeSession(_ context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	r, ok := s.get(s.codes, sig)
	if !ok {
		return nil, fosite.ErrNotFound
	}
	if r.inactive {
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
	r.inactive = true
	return nil
}

// openid.OpenIDConnectRequestStorage

func (s *store) CreateOpenIDConnectSession(_ context.Context, code string, req fosite.Requester) error {
	s.put(s.oidc, code, newRecord(req, fosite.AuthorizeCode))
	return nil
}

func (s *store) GetOpenIDConnectSession(_ context.Context, code string, _ fosite.Requester) (fosite.Requester, error) {
	r, ok := s.get(s.oidc, code)
	if !ok {
		return nil, openid.ErrNoSessionFound
	}
	return r.req, nil
}

func (s *store) DeleteOpenIDConnectSession(_ context.Context, code string) error {
	s.del(s.oidc, code)
	return nil
}

// pkce.PKCERequestStorage

func (s *store) CreatePKCERequestSession(_ context.Context, sig string, req fosite.Requester) error {
	s.put(s.pkce, sig, newRecord(req, fosite.AuthorizeCode))
	return nil
}

func (s *store) GetPKCERequestSession(_ context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	r, ok := s.get(s.pkce, sig)
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return r.req, nil
}

func (s *store) DeletePKCERequestSession(_ context.Context, sig string) error {
	s.del(s.pkce, sig)
	return nil
}

// oauth2.AccessTokenStorage

func (s *store) CreateAccessTokenSession(_ context.Context, sig string, req fosite.Requester) error {
	s.put(s.access, sig, newRecord(req, fosite.AccessToken))
	return nil
}

func (s *store) GetAccessTokenSession(_ context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	r, ok := s.get(s.access, sig)
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return r.req, nil
}

func (s *store) DeleteAccessTokenSession(_ context.Context, sig string) error {
	s.del(s.access, sig)
	return nil
}

// oauth2.RefreshTokenStorage

func (s *store) CreateRefreshTokenSession(_ context.Context, sig, _ string, req fosite.Requester) error {
	s.put(s.refresh, sig, newRecord(req, fosite.RefreshToken))
	return nil
}

// GetRefreshTokenSession returns the request with ErrInactiveToken for a used
// or revoked refresh token: fosite treats that as replay and revokes the family.
func (s *store) GetRefreshTokenSession(_ context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	r, ok := s.get(s.refresh, sig)
	if !ok {
		return nil, fosite.ErrNotFound
	}
	if r.inactive {
		return r.req, fosite.ErrInactiveToken
	}
	return r.req, nil
}

func (s *store) DeleteRefreshTokenSession(_ context.Context, sig string) error {
	s.del(s.refresh, sig)
	return nil
}

// RotateRefreshToken retires the refresh token just used and the access
// tokens issued before it, as fosite's MemoryStore and Hydra do; fosite stores
// the new pair right after.
//
// fosite checks that the token is active (GetRefreshTokenSession) and
// rotates it in two steps, so concurrent refreshes with one token can all
// pass the check. Only the first to rotate may go on: the others get
// fosite.ErrSerializationFailure, which fosite answers with
// invalid_request ("multiple concurrent requests using the same token"),
// as Hydra does when its database transaction fails to serialize. One
// refresh token never yields two token pairs.
func (s *store) RotateRefreshToken(_ context.Context, requestID, sig string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refresh[sig]
	if !ok || r.inactive {
		return fosite.ErrSerializationFailure
	}
	r.inactive = true
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
		if r.req.GetID() == requestID {
			delete(s.access, sig)
		}
	}
}

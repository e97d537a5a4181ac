package middleware

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"
)

// maxJWKSBytes bounds a JWKS document: a real one is a few KiB.
const maxJWKSBytes = 1 << 20

var (
	errUnknownKID = errors.New("no key with this kid, and the key set was refreshed too recently to try again")
	errNoKeys     = errors.New("no signing keys loaded")
)

// keySource keeps the issuer's JWKS in memory for keyfunc, and fetches it
// again periodically and on demand when a token names an unknown kid.
//
// It replaces the refresh logic of keyfunc.NewDefaultOverrideCtx (which
// keyfunc documents as one way among others to build a Keyfunc) for three
// reasons: jwkset drops the whole key set when one key in it fails to parse;
// its unknown-kid limiter makes requests wait for the next slot (up to a
// minute by default) instead of failing fast; and it reads a JWKS response
// of any size. keyfunc still does the kid lookup and the JWK alg check.
//
// When the URL came from the issuer's metadata (rediscover set), every
// refresh but the first reads the metadata again first and follows a
// changed jwks_uri (follow).
type keySource struct {
	url        atomic.Pointer[string]
	client     *http.Client
	timeout    time.Duration
	store      jwkset.Storage
	kf         keyfunc.Keyfunc
	limiter    *rate.Limiter
	group      singleflight.Group
	loaded     atomic.Bool
	fetches    atomic.Int64
	logger     *slog.Logger
	onRefresh  func(error)
	lastUpdate atomic.Int64 // unix nanoseconds of the last successful fetch

	// issuer and rediscover are set when the URL is the jwks_uri of
	// issuer's metadata: rediscover reads that metadata again and returns
	// its jwks_uri, checked (metadataJWKSURI).
	issuer     string
	rediscover func(context.Context) (string, error)
}

func newKeySource(url string, cfg *Config) (*keySource, error) {
	s := &keySource{
		client:    cfg.HTTPClient,
		timeout:   cfg.HTTPTimeout,
		store:     jwkset.NewMemoryStorage(),
		limiter:   rate.NewLimiter(rate.Every(cfg.JWKSMinRefreshInterval), 1),
		logger:    cfg.Logger,
		onRefresh: cfg.OnKeyRefresh,
	}
	s.url.Store(&url)
	kf, err := keyfunc.New(keyfunc.Options{Storage: refreshingStorage{Storage: s.store, src: s}})
	if err != nil {
		return nil, err
	}
	s.kf = kf
	return s, nil
}

// run fetches the keys now, unless New just did, and then every interval
// until ctx ends. While the key set has never loaded it retries sooner,
// backing off to interval.
func (s *keySource) run(ctx context.Context, interval time.Duration) {
	retry := time.Second
	skip := s.loaded.Load()
	for {
		wait := interval
		if skip {
			skip = false
		} else if err := s.refresh(ctx); err != nil && !s.loaded.Load() {
			wait = min(retry, interval)
			retry = min(retry*2, time.Minute)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// URL is the key set URL in use.
func (s *keySource) URL() string { return *s.url.Load() }

// refresh fetches the JWKS, merging concurrent calls into one request.
// A failed fetch keeps the keys already loaded. With rediscover, every
// refresh after the first reads the issuer's metadata first, inside the
// same merged call, so that metadata requests are never more than JWKS
// requests, whatever causes them.
func (s *keySource) refresh(ctx context.Context) error {
	ch := s.group.DoChan("jwks", func() (any, error) {
		// The fetch is shared: one caller giving up must not cancel it
		// for the others.
		base := context.WithoutCancel(ctx)
		if s.rediscover != nil && s.fetches.Load() > 0 {
			// The first fetch follows the discovery in New.
			s.follow(base)
		}
		fctx, cancel := context.WithTimeout(base, s.timeout)
		defer cancel()
		err := s.fetch(fctx)
		if s.onRefresh != nil {
			s.onRefresh(err)
		}
		if err != nil {
			s.logger.Warn("jwks refresh failed", "url", redactURL(s.URL()), "error", err, "keys_loaded", s.loaded.Load())
		}
		return nil, err
	})
	select {
	case res := <-ch:
		return res.Err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// follow reads the issuer's metadata again (the rules of Discover, each
// request bounded by the timeout) and fetches keys from its jwks_uri from
// now on when it changed. Metadata that cannot be read or used changes
// nothing: the old jwks_uri stays, with a warning.
func (s *keySource) follow(ctx context.Context) {
	old := s.URL()
	u, err := s.rediscover(ctx)
	if err != nil {
		s.logger.Warn("issuer metadata re-read failed; keeping jwks_uri", "issuer", s.issuer, "jwks_uri", redactURL(old), "error", err)
		return
	}
	if u != old {
		s.url.Store(&u)
		s.logger.Info("jwks_uri changed in the issuer's metadata; fetching keys from it", "issuer", s.issuer, "old", redactURL(old), "new", redactURL(u))
	}
}

func (s *keySource) fetch(ctx context.Context) error {
	s.fetches.Add(1)
	raw := s.URL()
	// url names the key set in errors and logs, without a password.
	url := redactURL(raw)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := checkNoDowngrade(req, resp); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("GET %s: key set larger than %d bytes", url, maxJWKSBytes)
	}
	keys, skipped, err := parseJWKS(body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	for _, e := range skipped {
		s.logger.Warn("jwks key skipped", "url", url, "error", e)
	}
	if err := s.store.KeyReplaceAll(ctx, keys); err != nil {
		return err
	}
	s.loaded.Store(true)
	s.lastUpdate.Store(time.Now().UnixNano())
	return nil
}

// parseJWKS reads a JWK Set (RFC 7517 §5), keeping every usable signature
// key and reporting the others, so that one odd key (an unsupported curve,
// an encryption key, a typo) does not take the whole set down.
func parseJWKS(body []byte) (keys []jwkset.JWK, skipped []error, err error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, nil, fmt.Errorf("not a JWK Set: %w", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New(`not a JWK Set: no "keys" member`)
	}
	for i, raw := range set.Keys {
		var m jwkset.JWKMarshal
		if err := json.Unmarshal(raw, &m); err != nil {
			skipped = append(skipped, fmt.Errorf("key %d: %w", i, err))
			continue
		}
		if m.USE != "" && m.USE != jwkset.UseSig {
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): use %q is not sig", i, m.KID, m.USE))
			continue
		}
		if m.KEYOPS != nil && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
			// RFC 7517 §4.3: key_ops names what the key is for; one
			// published without "verify" (a signing or encryption key's
			// description) must not verify tokens (RFC 8725 §3.1).
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): key_ops does not include verify", i, m.KID))
			continue
		}
		if m.KTY == jwkset.KtyOct {
			// Symmetric keys have no business in a public key set; trusting
			// one would let anyone who read the set sign tokens.
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): symmetric key refused", i, m.KID))
			continue
		}
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): %w", i, m.KID, err))
			continue
		}
		keys = append(keys, jwk)
	}
	return keys, skipped, nil
}

// refreshingStorage is the jwkset.Storage keyfunc reads: the in-memory keys,
// and on an unknown kid one refresh if the limiter has a slot free now.
type refreshingStorage struct {
	jwkset.Storage
	src *keySource
}

func (r refreshingStorage) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	jwk, err := r.Storage.KeyRead(ctx, kid)
	if !errors.Is(err, jwkset.ErrKeyNotFound) {
		return jwk, err
	}
	if !r.src.limiter.Allow() {
		if !r.src.loaded.Load() {
			return jwkset.JWK{}, errNoKeys
		}
		return jwkset.JWK{}, errUnknownKID
	}
	if err := r.src.refresh(ctx); err != nil {
		return jwkset.JWK{}, &unavailableError{err}
	}
	jwk, err = r.Storage.KeyRead(ctx, kid)
	if errors.Is(err, jwkset.ErrKeyNotFound) {
		return jwkset.JWK{}, errUnknownKID
	}
	return jwk, err
}

// unavailableError marks a key lookup that failed because the key server
// could not be reached: the token may be fine, so the answer is 503.
type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return "key set unavailable: " + e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// keyFits reports whether key can verify alg: the algorithm family must
// match the key type, and for ECDSA the curve (RFC 7518 §3.4), so that no
// key is ever used with an algorithm its owner did not sign with.
func keyFits(alg string, key any) bool {
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		k, ok := key.(*rsa.PublicKey)
		return ok && k.N.BitLen() >= 2048
	case "ES256":
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P256()
	case "ES384":
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P384()
	case "ES512":
		k, ok := key.(*ecdsa.PublicKey)
		return ok && k.Curve == elliptic.P521()
	case "EdDSA":
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

// redactURL is raw for a log line, with the password of any user info
// replaced (a key set behind HTTP Basic names its credentials in the URL).
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(not a URL)"
	}
	return u.Redacted()
}

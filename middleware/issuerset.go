package middleware

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// issuerVerifier verifies the tokens of one issuer: its jwtVerifier (with
// the issuer's own keys, iss, audiences and algorithms) and the claims it
// requires after the signature.
type issuerVerifier struct {
	jwt      *jwtVerifier
	keys     *keySource // nil with an HMAC secret
	required map[string]string
}

func (v *issuerVerifier) verify(ctx context.Context, token string, payload []byte) (principal.Principal, error) {
	p, err := v.jwt.verifyDecoded(ctx, token, payload)
	if err != nil {
		return p, err
	}
	for name, want := range v.required {
		if got, ok := p.Claims[name].(string); !ok || got != want {
			// The claims were signed by this issuer's key: its values name
			// no secret, and the operator needs them side by side.
			cause := fmt.Errorf("claim %s is %s, want %q", name, quoteClip(fmt.Sprint(p.Claims[name])), want)
			if !ok {
				cause = fmt.Errorf("claim %s is missing or not a string, want %q", name, want)
			}
			return principal.Principal{}, newErr(ErrInvalidToken, ReasonIssuer, "token issuer not accepted", cause)
		}
	}
	return p, nil
}

// issuerSet picks the verifier of a token's issuer. With one issuer and
// no resolver it hands every token to that issuer's verifier, which
// decodes the payload only after the signature. With more, it must read
// iss first: it decodes the payload's base64 and scans it for iss
// (issuerOf: one pass, no allocation, nothing else decoded), looks the
// value up, and hands the token and the decoded payload to that issuer's
// verifier, which checks the signature with that issuer's keys alone and
// then, on the verified claims, that iss equals that issuer. So the
// unverified iss only chooses whose keys and rules apply; a token that
// lies about it fails its signature, and a difference between the scan
// and the full decoding can only refuse a token, never accept one.
type issuerSet struct {
	cfg     *Config
	ctx     context.Context // the Authenticator's: key refreshes end with it
	only    *issuerVerifier // the one issuer when there is no choice to make
	static  map[string]*issuerVerifier
	first   *issuerVerifier // the first configured issuer, for JWKSURL
	resolve IssuerResolver
	slots   chan struct{} // resolver calls in flight
	// renewing are the slots of calls that renew the expired trust of an
	// issuer, so that a flood of invented issuers holding every slot
	// cannot make the trusted ones 503 when their answers expire.
	renewing chan struct{}
	group    singleflight.Group

	mu      sync.Mutex
	trusted map[string]resolved
	refused map[string]resolved
	keys    map[string]*keySource // by JWKS URL; by "metadata of " and issuer for one that follows its metadata
	dynamic map[string]context.CancelFunc
}

// resolved is a remembered answer of the resolver: a verifier, or the
// error to answer with, until expires.
type resolved struct {
	v       *issuerVerifier
	err     *authError
	expires time.Time
}

// newIssuerSet builds the verifiers of the configured issuers: it
// discovers the metadata of those that need it and, unless LazyKeys,
// loads their keys, one fetch per distinct JWKS URL. Key refreshes run
// until ctx ends.
func newIssuerSet(ctx context.Context, cfg *Config) (*issuerSet, error) {
	s := &issuerSet{
		cfg:     cfg,
		ctx:     ctx,
		static:  map[string]*issuerVerifier{},
		resolve: cfg.IssuerResolver,
		keys:    map[string]*keySource{},
	}
	entries := cfg.issuerEntries()
	for _, e := range entries {
		icfg := cfg.forIssuer(e)
		var ks *keySource
		if len(e.HMACSecret) == 0 {
			url, loc, fromMetadata, err := jwksURLOf(ctx, icfg)
			if err != nil {
				return nil, err
			}
			// A key set that follows its issuer's metadata is that
			// issuer's alone: another issuer's metadata may move elsewhere.
			key := url
			if fromMetadata {
				key = "metadata of " + e.Issuer
			}
			if ks = s.keys[key]; ks == nil {
				if ks, err = newKeySource(url, cfg); err != nil {
					return nil, err
				}
				if fromMetadata {
					ks.issuer, ks.rediscover = e.Issuer, metadataFollower(icfg, loc)
				}
				if !cfg.LazyKeys {
					// refresh bounds the fetch by HTTPTimeout.
					if err := ks.refresh(ctx); err != nil {
						return nil, fmt.Errorf("middleware: cannot load the signing keys from %s (set LazyKeys to start without them): %w", url, err)
					}
				}
				s.keys[key] = ks
			}
		}
		v := &issuerVerifier{jwt: newJWTVerifier(icfg, ks), keys: ks, required: maps.Clone(e.RequiredClaims)}
		s.static[e.Issuer] = v
		if s.first == nil {
			s.first = v
		}
	}
	// Started only once every issuer is set up, so that a failure above
	// leaves no goroutine behind.
	for _, ks := range s.keys {
		go ks.run(ctx, cfg.JWKSRefreshInterval)
	}
	if len(entries) == 1 && s.resolve == nil {
		s.only = s.first
	}
	if s.resolve != nil {
		s.trusted, s.refused = map[string]resolved{}, map[string]resolved{}
		s.dynamic = map[string]context.CancelFunc{}
		s.slots = make(chan struct{}, maxResolving)
		s.renewing = make(chan struct{}, maxResolving)
	}
	return s, nil
}

// jwksURLOf returns the key set URL of one issuer's Config: JWKSURL, else
// jwks_uri from its Metadata, else from its discovered metadata, then
// with loc, the location the metadata was found at. fromMetadata reports
// the last two.
func jwksURLOf(ctx context.Context, cfg *Config) (url, loc string, fromMetadata bool, err error) {
	if cfg.JWKSURL != "" {
		return cfg.JWKSURL, "", false, nil
	}
	md := cfg.Metadata
	if md == nil {
		if md, loc, err = discoverAt(ctx, cfg.HTTPClient, cfg.Issuer, cfg.HTTPTimeout, ""); err != nil {
			return "", "", false, err
		}
	}
	url, err = metadataJWKSURI(cfg.Issuer, md)
	return url, loc, true, err
}

// metadataFollower returns the rediscover of a key set whose URL is the
// jwks_uri of cfg.Issuer's metadata, found at loc ("" when the caller gave
// the metadata: the re-reads then try Discover's two locations in turn,
// one per re-read, until one answers). It reads that location again, and
// only that one, so that a key refresh costs one metadata request. It is
// called inside the key set's merged refresh only, one call at a time.
func metadataFollower(cfg *Config, loc string) func(context.Context) (string, error) {
	tried := 0 // with loc "": the re-reads so far, which pick the location
	return func(ctx context.Context) (string, error) {
		at := loc
		if at == "" {
			if locs, err := metadataLocations(cfg.Issuer); err == nil {
				at = locs[tried%len(locs)]
				tried++
			}
		}
		md, found, err := discoverAt(ctx, cfg.HTTPClient, cfg.Issuer, cfg.HTTPTimeout, at)
		if err != nil {
			return "", err
		}
		loc = found
		return metadataJWKSURI(cfg.Issuer, md)
	}
}

// ready reports whether the key set of every configured issuer has loaded.
func (s *issuerSet) ready() bool {
	for _, v := range s.static {
		if v.keys != nil && !v.keys.loaded.Load() {
			return false
		}
	}
	return true
}

// verify checks a token with the verifier of its issuer.
func (s *issuerSet) verify(ctx context.Context, token string) (principal.Principal, error) {
	if s.only != nil {
		return s.only.verify(ctx, token, nil)
	}
	var none principal.Principal
	_, payload64, _, err := splitChecked(token)
	if err != nil {
		return none, err
	}
	payload, err := b64.DecodeString(payload64)
	if err != nil {
		return none, malformed("payload is not base64url", err)
	}
	iss, ok := issuerOf(payload)
	if !ok {
		return none, unknownIssuer(errors.New("no iss of at most 512 bytes in the token"))
	}
	v, err := s.lookup(ctx, iss)
	if err != nil {
		return none, err
	}
	return v.verify(ctx, token, payload)
}

// unknownIssuer is the refusal of a token whose iss names no trusted
// issuer; cause, for the log, says why.
func unknownIssuer(cause error) *authError {
	return newErr(ErrInvalidToken, ReasonUnknownIssuer, "token issuer not accepted", fmt.Errorf("%w: %w", ErrUnknownIssuer, cause))
}

// lookup returns the verifier of iss: a configured issuer, or one the
// resolver trusts, asking it when its answer is not remembered.
func (s *issuerSet) lookup(ctx context.Context, iss string) (*issuerVerifier, error) {
	if v, ok := s.static[iss]; ok {
		return v, nil
	}
	// The iss is not verified: quoted and cut in the log, as every claim.
	if s.resolve == nil {
		return nil, unknownIssuer(fmt.Errorf("unverified iss %s is not one of the configured issuers", quoteClip(iss)))
	}
	if !resolvable(iss) {
		return nil, unknownIssuer(fmt.Errorf("unverified iss %s is not printable ASCII of at most %d bytes", quoteClip(iss), maxIssuerBytes))
	}
	now := s.cfg.Now()
	if r, ok, _ := s.remembered(iss, now); ok {
		if r.err != nil {
			return nil, r.err
		}
		return r.v, nil
	}
	ch := s.group.DoChan(iss, func() (any, error) {
		// Asked again inside the flight: a caller that found nothing may
		// arrive just after another flight for iss ended.
		r, ok, renewal := s.remembered(iss, now)
		if ok {
			return r, nil
		}
		return s.ask(ctx, iss, now, renewal), nil
	})
	// The resolver's context ends after HTTPTimeout, but a resolver may
	// not watch it: the request waits no longer than that either.
	wait := time.NewTimer(s.cfg.HTTPTimeout)
	defer wait.Stop()
	select {
	case res := <-ch:
		r := res.Val.(resolved)
		if r.err != nil {
			return nil, r.err
		}
		return r.v, nil
	case <-ctx.Done():
		return nil, newErr(ErrUnavailable, ReasonUnavailable, "issuer cannot be checked now", ctx.Err())
	case <-wait.C:
		return nil, newErr(ErrUnavailable, ReasonUnavailable, "issuer cannot be checked now", fmt.Errorf("IssuerResolver for iss %s did not answer within %s", quoteClip(iss), s.cfg.HTTPTimeout))
	}
}

// resolvable reports whether iss may be given to the resolver.
func resolvable(iss string) bool {
	if iss == "" || len(iss) > maxIssuerBytes {
		return false
	}
	for i := range len(iss) {
		if iss[i] < 0x21 || iss[i] > 0x7e {
			return false
		}
	}
	return true
}

// remembered returns the answer about iss that has not expired. renewal
// reports an expired trust, kept (never used to verify) so that asking
// again about iss may take a renewal slot.
func (s *issuerSet) remembered(iss string, now time.Time) (r resolved, ok, renewal bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.refused[iss]; ok {
		if now.Before(r.expires) {
			return r, true, false
		}
		delete(s.refused, iss)
	}
	if r, ok := s.trusted[iss]; ok {
		if now.Before(r.expires) {
			return r, true, false
		}
		return resolved{}, false, true
	}
	return resolved{}, false, false
}

// ask calls the resolver about iss and remembers its answer. renewal says
// that iss was trusted until its answer expired: it may then take a slot
// of its own when the flood of other issuers holds every common one.
func (s *issuerSet) ask(ctx context.Context, iss string, now time.Time, renewal bool) resolved {
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		var free bool
		if renewal {
			select {
			case s.renewing <- struct{}{}:
				defer func() { <-s.renewing }()
				free = true
			default:
			}
		}
		if !free {
			// Not remembered: the next token of iss may find a slot free.
			return resolved{err: newErr(ErrUnavailable, ReasonOverloaded, "issuer cannot be checked now", fmt.Errorf("%d issuers are being resolved already", maxResolving))}
		}
	}
	// The answer is shared by every request waiting for it: one giving up
	// must not cancel it for the others.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.HTTPTimeout)
	defer cancel()
	e, err := s.callResolver(rctx, iss)
	var r resolved
	switch {
	case errors.Is(err, ErrUnknownIssuer):
		r = resolved{err: unknownIssuer(fmt.Errorf("unverified iss %s refused by IssuerResolver: %w", quoteClip(iss), err)), expires: now.Add(resolvedTTL)}
	case err != nil:
		r = resolved{err: newErr(ErrUnavailable, ReasonUnavailable, "issuer cannot be checked now", fmt.Errorf("IssuerResolver for iss %s: %w", quoteClip(iss), err)), expires: now.Add(RetryAfter * time.Second)}
	default:
		v, err := s.verifierFor(iss, e)
		if err != nil {
			// A resolver's mistake: logged at error level with every
			// request it fails, until it is fixed.
			r = resolved{err: newErr(ErrUnavailable, ReasonUnavailable, "issuer cannot be checked now", err), expires: now.Add(RetryAfter * time.Second)}
		} else {
			r = resolved{v: v, expires: now.Add(resolvedTTL)}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case r.v != nil:
		putBounded(s.trusted, iss, r)
	case errors.Is(r.err, ErrUnknownIssuer):
		delete(s.trusted, iss) // no longer trusted: no renewal slot for it
		putBounded(s.refused, iss, r)
	default:
		putBounded(s.refused, iss, r)
	}
	return r
}

// callResolver asks the resolver, turning a panic into an error: the
// resolver runs inside singleflight.DoChan, which re-panics on a goroutine
// of its own that no recovery can reach, so a resolver's bug that one
// chosen iss sets off would end the process.
func (s *issuerSet) callResolver(ctx context.Context, iss string) (e IssuerConfig, err error) {
	defer func() {
		if p := recover(); p != nil {
			e, err = IssuerConfig{}, fmt.Errorf("IssuerResolver panicked: %s", quoteClip(fmt.Sprint(p)))
		}
	}()
	return s.resolve(ctx, iss)
}

// putBounded adds r to m, first removing an arbitrary entry when m is
// full: Go's map iteration starts at a random place, so an outsider cannot
// choose which.
func putBounded(m map[string]resolved, iss string, r resolved) {
	if _, ok := m[iss]; !ok && len(m) >= maxResolvedIssuers {
		for k := range m {
			delete(m, k)
			break
		}
	}
	m[iss] = r
}

// verifierFor checks a resolver's answer for iss and makes its verifier,
// sharing the key set of any issuer with the same JWKS URL.
func (s *issuerSet) verifierFor(iss string, e IssuerConfig) (*issuerVerifier, error) {
	if e.Issuer == "" {
		e.Issuer = iss
	}
	if e.Issuer != iss {
		return nil, fmt.Errorf("middleware: IssuerResolver answered for iss %s with Issuer %q", quoteClip(iss), e.Issuer)
	}
	icfg := s.cfg.forIssuer(e)
	errs := icfg.issuerProblems("IssuerResolver answer: ")
	errs = append(errs, requiredClaimsProblems("IssuerResolver answer: ", e.RequiredClaims)...)
	url := e.JWKSURL
	if url == "" && e.Metadata != nil {
		url = e.Metadata.JWKSURI
		if err := checkMetadataEndpoint(e.Issuer, url); err != nil {
			errs = append(errs, fmt.Errorf("middleware: IssuerResolver answer: Metadata jwks_uri: %w", err))
		}
	}
	if url == "" && len(e.HMACSecret) == 0 {
		errs = append(errs, errors.New("middleware: IssuerResolver answer names no keys (JWKSURL, Metadata or HMACSecret)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("for iss %s: %w", quoteClip(iss), err)
	}
	var ks *keySource
	if len(e.HMACSecret) == 0 {
		var err error
		if ks, err = s.keySourceFor(url); err != nil {
			return nil, err
		}
	}
	return &issuerVerifier{jwt: newJWTVerifier(icfg, ks), keys: ks, required: maps.Clone(e.RequiredClaims)}, nil
}

// keySourceFor returns the key set at url, opening it when no issuer uses
// it yet. A new set is loaded by the first token that needs it (the
// unknown-kid refresh, bounded by JWKSMinRefreshInterval) and refreshed in
// the background; at most maxResolvedIssuers are opened this way.
func (s *issuerSet) keySourceFor(url string) (*keySource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ks, ok := s.keys[url]; ok {
		return ks, nil
	}
	ks, err := newKeySource(url, s.cfg)
	if err != nil {
		return nil, err
	}
	if len(s.dynamic) >= maxResolvedIssuers {
		// Forget one opened set (never a configured issuer's): issuers
		// that still use it keep it; the next to resolve opens a new one.
		for u, stop := range s.dynamic {
			stop()
			delete(s.dynamic, u)
			delete(s.keys, u)
			break
		}
	}
	ctx, stop := context.WithCancel(s.ctx)
	s.keys[url], s.dynamic[url] = ks, stop
	go ks.run(ctx, s.cfg.JWKSRefreshInterval)
	return ks, nil
}

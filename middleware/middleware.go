package middleware

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// Authenticator verifies access tokens. It is safe for concurrent use.
type Authenticator struct {
	cfg   Config
	jwt   *issuerSet // nil in ModeIntrospection
	intro *introspectVerifier
	cache *verifiedCache
	meta  *resourceMeta // nil without Config.ResourceMetadata
	dpop  *dpopVerifier // nil with DPoP disabled
}

// New checks cfg and returns an Authenticator. For each configured issuer
// (Issuer, or each of Issuers) whose JWKSURL is empty it takes jwks_uri
// from its Metadata, or else discovers the issuer's metadata, which must
// answer now. It then fetches the signing keys once per key set and
// fails, with one line naming the URL, when it cannot, unless
// cfg.LazyKeys is set: then requests that need keys are answered 503
// until they arrive (see Ready). Each request is bounded by
// cfg.HTTPTimeout. The keys are refreshed in the background until ctx
// ends. A jwks_uri taken from metadata must be https when the issuer is
// (see Metadata), and is followed when the metadata changes it (see
// Config.JWKSURL).
//
// cfg.Introspector is used as given: New neither inspects nor changes it.
// A caller that takes the introspection endpoint from the issuer's metadata
// discovers once (Discover, then Metadata.IntrospectionURL) and passes the
// same Metadata here.
func New(ctx context.Context, cfg Config) (*Authenticator, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	a := &Authenticator{cfg: cfg, cache: newVerifiedCache(cfg.CacheSize, cfg.CacheMaxAge)}
	if cfg.dpopOn() {
		a.dpop = newDPoPVerifier(&a.cfg)
	}
	if cfg.ResourceMetadata != nil {
		var dm dpopMeta
		if cfg.dpopOn() {
			dm = dpopMeta{algs: cfg.DPoPAlgorithms, required: cfg.DPoP == DPoPRequired}
		}
		meta, err := cfg.ResourceMetadata.build(cfg.issuerNames(), dm)
		if err != nil {
			return nil, err
		}
		a.meta = meta
	}
	if cfg.Introspector != nil && cfg.Mode != ModeJWT {
		a.intro = &introspectVerifier{client: cfg.Introspector, cfg: &a.cfg}
	}
	if cfg.Mode != ModeIntrospection {
		var err error
		if a.jwt, err = newIssuerSet(ctx, &a.cfg); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// ClockSkew is the leeway in use for exp, nbf and iat (Config.ClockSkew
// with its default applied), for an adapter that checks a verified token's
// expiry again and must not be stricter than the Authenticator.
func (a *Authenticator) ClockSkew() time.Duration { return a.cfg.ClockSkew }

// JWKSURL is the key set URL in use, configured or discovered, of the
// issuer (the first of Issuers): with a jwks_uri from the issuer's
// metadata, the one the last key refresh followed. Empty with an HMAC
// secret, in ModeIntrospection, or with only an IssuerResolver.
func (a *Authenticator) JWKSURL() string {
	if a.jwt == nil || a.jwt.first == nil || a.jwt.first.keys == nil {
		return ""
	}
	return a.jwt.first.keys.URL()
}

// Ready reports nil once the Authenticator can verify tokens: the signing
// keys of every configured issuer have been loaded at least once. Without
// Config.LazyKeys that is already so when New returns. (The key sets of
// issuers an IssuerResolver trusts load with their first token.)
func (a *Authenticator) Ready(context.Context) error {
	if a.jwt != nil && !a.jwt.ready() {
		return errors.New("middleware: signing keys not loaded yet")
	}
	return nil
}

// Authenticate verifies the request's access token and returns the caller,
// after Config.ValidateClaims when set. Its errors wrap one of the
// package's sentinels; pass them to the Authenticator's WriteError. It
// calls Config.OnOutcome once, with the result.
func (a *Authenticator) Authenticate(r *http.Request) (principal.Principal, error) {
	p, err := a.authenticateShared(r)
	if p == nil {
		return principal.Principal{}, err
	}
	return *p, nil
}

// authenticateShared is Authenticate returning the Principal by pointer,
// nil with an error: on a cache hit it is the cache entry's, for
// principal.WithShared, so that Require copies nothing.
func (a *Authenticator) authenticateShared(r *http.Request) (*principal.Principal, error) {
	p, cached, src, dpop, err := a.authenticate(r)
	if err != nil {
		var ae *authError
		if errors.As(err, &ae) {
			copied := *ae
			a.stamp(&copied)
			copied.dpopScheme = dpop
			err = &copied
		}
	}
	if a.cfg.OnOutcome != nil {
		a.cfg.OnOutcome(Outcome{Reason: Reason(err), Cached: cached, Source: string(src), Err: err})
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// authenticate is authenticateShared without the outcome's report; p is
// nil when err is not.
func (a *Authenticator) authenticate(r *http.Request) (p *principal.Principal, cached bool, src principal.Source, dpop bool, err error) {
	token, src, dpop, err := a.extract(r)
	if err != nil {
		if !errors.Is(err, ErrNoToken) {
			a.cfg.Logger.LogAttrs(r.Context(), levelFor(err), "request refused", reasonAttr(err), sourceAttr(src))
		}
		return nil, false, src, dpop, err
	}
	now := a.cfg.Now()
	if p, ok := a.cached(token, src, now); ok {
		// A bearer token with DPoP off or allowed skips the binding check:
		// one comparison, nothing allocated.
		if p.JKT != "" || dpop || a.cfg.DPoP == DPoPRequired || hasProof(r) {
			if err := a.checkBinding(r, *p, token, dpop, now); err != nil {
				return nil, true, src, dpop, err
			}
		}
		if err := a.accept(r, *p); err != nil {
			return nil, true, src, dpop, err
		}
		return p, true, src, dpop, nil
	}
	if !isB64Token(token) {
		a.cfg.Logger.LogAttrs(r.Context(), levelFor(errSyntax), "request refused", reasonAttr(errSyntax), sourceAttr(src))
		return nil, false, src, dpop, errSyntax
	}
	// The token's SHA-256 names it in the logs of refusals only: a token
	// that passes is not hashed (Principal.TokenHash hashes it when asked).
	var fresh principal.Principal
	if a.useIntrospection(token) {
		var until time.Time
		fresh, until, err = a.intro.verify(r.Context(), token)
		if err != nil {
			a.cfg.Logger.LogAttrs(r.Context(), levelFor(err), "token refused", reasonAttr(err), sourceAttr(src), keyOf(token).LogAttr(), errAttr(err))
			return nil, false, src, dpop, err
		}
		var kept string
		fresh, kept = a.withToken(fresh, token)
		// Kept no longer than the introspection client keeps the answer,
		// so revocation takes effect as its CacheTTL says; meanwhile a
		// token seen again costs what a JWT does, one hash and a lookup.
		a.cache.putUntil(kept, true, fresh, now, until)
	} else {
		fresh, err = a.jwt.verify(r.Context(), token)
		if err != nil {
			a.cfg.Logger.LogAttrs(r.Context(), levelFor(err), "token refused", reasonAttr(err), sourceAttr(src), keyOf(token).LogAttr(), errAttr(err))
			return nil, false, src, dpop, err
		}
		var kept string
		fresh, kept = a.withToken(fresh, token)
		// The token's verification is cached, its binding with it; the
		// proof is checked on every request, by checkBinding.
		a.cache.put(kept, fresh, now)
	}
	if err := a.checkBinding(r, fresh, token, dpop, now); err != nil {
		return nil, false, src, dpop, err
	}
	fresh.Source = src
	if err := a.accept(r, fresh); err != nil {
		return nil, false, src, dpop, err
	}
	return &fresh, false, src, dpop, nil
}

// cached looks token up in the verified-token cache under the key it is
// stored with: its tail's when it was verified locally, all of it when it
// was introspected (see hashTail). In hybrid mode either may hold it.
func (a *Authenticator) cached(token string, src principal.Source, now time.Time) (*principal.Principal, bool) {
	if a.cfg.Mode != ModeIntrospection {
		if p, ok := a.cache.get(token, false, src, now); ok || a.cfg.Mode != ModeHybrid {
			return p, ok
		}
	}
	return a.cache.get(token, true, src, now)
}

// hasProof reports whether r carries a DPoP header. The header is looked
// up by its canonical key, without allocating: this runs on cache hits.
func hasProof(r *http.Request) bool {
	return len(r.Header[dpopHeaderKey]) > 0
}

// dpopHeaderKey is DPoPHeader in the canonical form net/http stores it in.
var dpopHeaderKey = http.CanonicalHeaderKey(DPoPHeader)

// checkBinding checks that the way the request presents p's token fits
// its binding: a DPoP-bound token only with the DPoP scheme and a valid
// proof made with its key (RFC 9449 §7.1), an unbound token never with the
// DPoP scheme or a DPoP proof, whatever the DPoP mode, nor at all when
// DPoP is required. The proof's jti is
// recorded last, once everything else has passed.
func (a *Authenticator) checkBinding(r *http.Request, p principal.Principal, token string, dpop bool, now time.Time) error {
	var err error
	switch {
	case p.JKT == "" && !dpop && a.cfg.DPoP != DPoPRequired && !hasProof(r):
		return nil
	case p.JKT == "" && dpop:
		err = errDPoPUnbound
	case p.JKT == "" && a.cfg.DPoP != DPoPRequired:
		err = errProofUnbound
	case p.JKT == "":
		err = errDPoPRequired
	case !dpop:
		err = errBoundAsBearer
	default:
		err = a.checkProof(r, p, token, now)
	}
	if err != nil {
		a.cfg.Logger.LogAttrs(r.Context(), levelFor(err), "token refused", reasonAttr(err), tokenHashAttr(p), subjectAttr(p), errAttr(err))
	}
	return err
}

func (a *Authenticator) checkProof(r *http.Request, p principal.Principal, token string, now time.Time) error {
	proofs := r.Header.Values(DPoPHeader)
	switch {
	case len(proofs) == 0:
		return errDPoPMissing
	case len(proofs) > 1:
		return errDPoPTwo
	}
	jkt, c, err := a.dpop.verifyProof(proofs[0], r.Method, a.dpop.expectedHTU(r), token, now)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(jkt), []byte(p.JKT)) != 1 {
		return errDPoPMismatch
	}
	// The window is inclusive (a proof exactly a window old passes) and
	// iat is a float: the jti is kept a second past the last instant its
	// proof could pass, so that neither the edge nor rounding leaves an
	// instant at which the proof is accepted and its jti forgotten.
	expires := time.Unix(0, int64(c.iat*1e9)).Add(a.dpop.window + time.Second)
	switch a.dpop.replay.add(jkt, c.jti, expires, now) {
	case replaySeen:
		return errDPoPReplay
	case replayFull:
		return errDPoPFull
	}
	// Fresh here; the fleet may have seen it. Local first, so that a
	// replay at this instance costs no round trip.
	if a.dpop.shared != nil {
		return a.dpop.shared.check(r.Context(), jkt, c.jti, expires.Sub(now))
	}
	return nil
}

// withToken gives a newly verified p its token, for RawToken and
// TokenHash. It is set once, before p is cached, so that a cache hit
// allocates nothing for it. With the cache on, the token is
// copied out of the request's header, whose whole string would otherwise
// stay in memory as long as the cache entry; the copy is returned too, for
// the entry. With it off, p lives no longer than the request: no copy.
func (a *Authenticator) withToken(p principal.Principal, token string) (principal.Principal, string) {
	if a.cache != nil {
		token = strings.Clone(token)
	}
	return p.WithToken(token), token
}

// Require is net/http middleware: it answers every request without a valid
// token with the Authenticator's WriteError, and passes the others on with
// the Principal in their context.
func (a *Authenticator) Require(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticateShared(r)
		if err != nil {
			a.WriteError(w, r, err)
			return
		}
		a.setNextDPoPNonce(w, p)
		next.ServeHTTP(w, r.WithContext(principal.WithShared(r.Context(), p)))
	})
}

// CheckScopes returns nil when the request's verified caller holds every
// one of scopes, and an ErrScope error naming them otherwise. It must run
// after Require. A refusal is logged; it does not call Config.OnOutcome,
// which Authenticate already called for this request.
func (a *Authenticator) CheckScopes(ctx context.Context, scopes ...string) error {
	return a.checkScopes(ctx, scopes, false)
}

// RequireScopes is net/http middleware, placed after Require, that answers
// 403 insufficient_scope naming the scopes unless the caller holds all of
// them. With no scopes it lets every authenticated request through.
func (a *Authenticator) RequireScopes(scopes ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := a.CheckScopes(r.Context(), scopes...); err != nil {
				a.WriteError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

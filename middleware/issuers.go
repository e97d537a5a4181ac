package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// IssuerConfig is one trusted issuer: an entry of Config.Issuers, or what
// an IssuerResolver answers for a token's iss. A token is verified only
// with its own issuer's keys and checked against its own issuer's
// audiences and algorithms.
type IssuerConfig struct {
	// Issuer is the expected iss claim, compared exactly as written.
	// Required in Config.Issuers; an IssuerResolver may leave it empty
	// (it is then the iss it was asked about) or repeat that iss.
	Issuer string
	// Audiences are the accepted aud values, any one matches; empty:
	// Config.Audiences.
	Audiences []string
	// JWKSURL is where this issuer publishes its keys. Issuers that share
	// a URL share one key set, fetched once. Empty: jwks_uri of Metadata,
	// or, in Config.Issuers only, of the issuer's discovered metadata,
	// which must be https unless Issuer is an http:// URL (see Metadata).
	// In Config.Issuers that key set is the issuer's own and follows its
	// metadata as Config.JWKSURL describes; a resolver's answer is not
	// re-read (the resolver is asked again when its answer expires) and
	// shares its key set with the answers that name the same URL.
	JWKSURL string
	// Metadata is the issuer's metadata when already discovered (see
	// Discover); its Issuer must equal Issuer.
	Metadata *Metadata
	// Algorithms is this issuer's allowlist of JWS algorithms; empty:
	// Config.Algorithms.
	Algorithms []string
	// HMACSecret, when set, makes this issuer's tokens HS256 with this
	// secret and nothing else (at least 32 bytes); no JWKS is fetched.
	HMACSecret []byte
	// RequiredClaims are claims a token of this issuer must carry as
	// strings with exactly these values, checked after its signature, on
	// the verified claims: Microsoft Entra ID's tid for the tenant named in
	// its iss, say (see Entra). Optional.
	RequiredClaims map[string]string
}

// IssuerResolver decides about an issuer that is not configured in
// Config.Issuers or Config.Issuer, for sets of issuers that are too many
// or too changeable to list: the tenants of a multi-tenant application
// (see Entra). It is asked with the iss of a token whose signature has
// not been checked yet (the answer says which keys to check it with), so
// iss is outside input: at most 512 bytes of printable ASCII, anything
// else is refused unasked.
//
// It answers with the issuer's settings to trust iss; with an error
// wrapping ErrUnknownIssuer to refuse it (401 invalid_token, reason
// unknown_issuer); with any other error when it cannot decide now (503,
// reason unavailable: a registry it consults is down). An answer must
// name its keys (JWKSURL, Metadata or HMACSecret): no discovery runs at
// request time, and a resolver must never derive a key URL from iss
// without checking it against a list of its own, or it lets any token
// name where its keys come from.
//
// Answers are remembered: a trust or a refusal for 5 minutes, a failure
// for RetryAfter seconds, in bounded tables (at most 1,000 trusted and
// 1,000 refused issuers; refusals never push out a trusted issuer). Each
// iss is asked about once at a time, at most 8 different ones at once:
// past that a token of an issuer not yet remembered is answered 503
// without asking. Renewing the trust of an issuer whose answer expired
// may take one of 8 further slots, so that a flood of invented issuers
// cannot make the trusted ones 503. A resolver that consults a network
// service is thus called at most once per 5 minutes for a given unknown
// iss, however many tokens name it. ctx carries the request's values but
// not its cancellation (the answer is shared), bounded by
// Config.HTTPTimeout; a request waits no longer than that for the answer,
// even from a resolver that does not watch ctx (503). A resolver that
// panics is an error (503, logged), not a crash. It must be safe for
// concurrent use.
type IssuerResolver func(ctx context.Context, iss string) (IssuerConfig, error)

// ErrUnknownIssuer is what an IssuerResolver returns (wrapped or not) to
// refuse an issuer. The middleware's own refusal of an issuer wraps it
// too, as the cause of an ErrInvalidToken error.
var ErrUnknownIssuer = errors.New("middleware: issuer not trusted")

// Bounds of the issuer tables, see IssuerResolver.
const (
	// maxIssuerBytes bounds an iss that is looked up or given to a
	// resolver; real ones are well under 200 bytes.
	maxIssuerBytes = 512
	// maxResolvedIssuers bounds each of the tables of trusted and of
	// refused issuers, and the key sets opened for resolved issuers.
	maxResolvedIssuers = 1000
	// resolvedTTL is how long a trust or a refusal is remembered.
	resolvedTTL = 5 * time.Minute
	// maxResolving bounds the resolver calls in flight at once.
	maxResolving = 8
)

// issuerEntries returns the configured issuers: the single-issuer fields
// as one entry, or Config.Issuers.
func (c *Config) issuerEntries() []IssuerConfig {
	if len(c.Issuers) > 0 {
		return c.Issuers
	}
	if c.Issuer == "" {
		return nil
	}
	return []IssuerConfig{{Issuer: c.Issuer, JWKSURL: c.JWKSURL, Metadata: c.Metadata, HMACSecret: c.HMACSecret}}
}

// issuerNames returns the Issuer of each configured issuer.
func (c *Config) issuerNames() []string {
	var names []string
	for _, e := range c.issuerEntries() {
		names = append(names, e.Issuer)
	}
	return names
}

// forIssuer is the Config that verifies e's tokens: c with e's issuer,
// keys, audiences and algorithms, the unset ones taken from c.
func (c *Config) forIssuer(e IssuerConfig) *Config {
	d := *c
	d.Issuers, d.IssuerResolver = nil, nil
	d.Issuer, d.JWKSURL, d.Metadata, d.HMACSecret = e.Issuer, e.JWKSURL, e.Metadata, e.HMACSecret
	if len(e.Audiences) > 0 {
		d.Audiences = e.Audiences
	}
	if len(e.Algorithms) > 0 {
		d.Algorithms = e.Algorithms
	}
	if len(e.HMACSecret) > 0 {
		d.Algorithms = []string{"HS256"}
	}
	return &d
}

// validateIssuers reports the problems of a Config with several issuers
// or a resolver.
func (c *Config) validateIssuers() []error {
	var errs []error
	if c.Mode != ModeJWT {
		errs = append(errs, fmt.Errorf("middleware: Issuers and IssuerResolver need Mode jwt: %s asks one authorization server, whose Issuer is the single Issuer", c.Mode))
	}
	if len(c.Issuers) > 0 && (c.Issuer != "" || c.JWKSURL != "" || c.Metadata != nil) {
		errs = append(errs, errors.New("middleware: set Issuer (with JWKSURL, Metadata) or Issuers, not both: each entry of Issuers has its own"))
	}
	if len(c.HMACSecret) > 0 {
		errs = append(errs, errors.New("middleware: with Issuers or IssuerResolver, HMACSecret belongs to the entry (IssuerConfig) of the issuer that uses it"))
	}
	if len(c.Issuers) == 0 && c.Issuer != "" {
		// The single fields and a resolver: they are the one static entry,
		// and their Audiences and Algorithms the defaults of the answers.
		errs = append(errs, c.issuerProblems("")...)
	} else if c.IssuerResolver != nil {
		errs = append(errs, c.forIssuer(IssuerConfig{}).issuerProblems("with IssuerResolver (Audiences and Algorithms are the defaults of its answers): ")...)
	}
	seen := map[string]bool{}
	for i, e := range c.Issuers {
		name := fmt.Sprintf("Issuers[%d]", i)
		if e.Issuer != "" {
			name += fmt.Sprintf(" (%s)", e.Issuer)
		}
		if e.Issuer == "" {
			errs = append(errs, fmt.Errorf("middleware: %s: Issuer is required", name))
		} else if seen[e.Issuer] {
			errs = append(errs, fmt.Errorf("middleware: %s: listed twice", name))
		}
		seen[e.Issuer] = true
		errs = append(errs, c.forIssuer(e).issuerProblems(name+": ")...)
		errs = append(errs, requiredClaimsProblems(name+": ", e.RequiredClaims)...)
	}
	return errs
}

func requiredClaimsProblems(prefix string, m map[string]string) []error {
	var errs []error
	for name, v := range m {
		if name == "" || v == "" {
			errs = append(errs, fmt.Errorf("middleware: %sRequiredClaims may not have an empty name or value", prefix))
		}
	}
	return errs
}

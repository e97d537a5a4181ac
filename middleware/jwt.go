package middleware

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// strictClaims is a JWT payload, decoded once into every claim, refusing
// registered claims of the wrong JSON type. golang-jwt's own claim types
// accept numeric dates written as strings ("exp": "1700000000"), which RFC
// 7519 §2 does not allow; here exp, nbf and iat must be JSON numbers, iss
// and sub strings, aud a string or an array of strings. It implements
// jwt.Claims, so that jwt.Validator checks it.
type strictClaims struct {
	all      map[string]any
	raw      []byte // the payload, for principal.DecodeClaims
	exp      *jwt.NumericDate
	nbf      *jwt.NumericDate
	iat      *jwt.NumericDate
	iss, sub string
	aud      jwt.ClaimStrings
}

var errClaimType = errors.New("registered claim of the wrong type")

// decode reads a payload into c. c keeps payload itself, not a copy, so
// the caller must not change it afterwards. A payload of JSON null decodes
// to no claims, as golang-jwt decoded it; it is refused later, for want of
// exp.
func (c *strictClaims) decode(payload []byte) error {
	// Numbers decode as float64, as in jwt.MapClaims: exact for every
	// NumericDate until the year 285,000,000.
	all, err := decodeObject(payload)
	if err != nil {
		return err
	}
	return c.set(all, payload)
}

// set takes a decoded payload, all, and its JSON, raw, as c's claims, and
// reads the registered claims, checking their types.
func (c *strictClaims) set(all map[string]any, raw []byte) error {
	c.all, c.raw = all, raw
	var err error
	if c.exp, err = numericDate(c.all, "exp"); err != nil {
		return err
	}
	if c.nbf, err = numericDate(c.all, "nbf"); err != nil {
		return err
	}
	if c.iat, err = numericDate(c.all, "iat"); err != nil {
		return err
	}
	if c.iss, err = stringClaim(c.all, "iss"); err != nil {
		return err
	}
	if c.sub, err = stringClaim(c.all, "sub"); err != nil {
		return err
	}
	switch v := c.all["aud"].(type) {
	case nil:
		if _, present := c.all["aud"]; present {
			return fmt.Errorf("%w: aud", errClaimType)
		}
	case string:
		c.aud = jwt.ClaimStrings{v}
	case []any:
		for _, a := range v {
			s, ok := a.(string)
			if !ok {
				return fmt.Errorf("%w: aud", errClaimType)
			}
			c.aud = append(c.aud, s)
		}
	default:
		return fmt.Errorf("%w: aud", errClaimType)
	}
	return nil
}

var errNotObject = errors.New("not a JSON object")

// decodeObject decodes a JSON object, or null (to a nil map), into what
// json.Unmarshal into a map[string]any makes of it, and refuses anything
// else. It decodes into an empty interface instead: encoding/json builds
// that map without reflection, in about three quarters of the time and
// with a fifth fewer allocations (BenchmarkDecodeObject).
// FuzzDecodeObject holds it to the map decoding.
func decodeObject(data []byte) (map[string]any, error) {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, err
	}
	switch m := v.(type) {
	case map[string]any:
		return m, nil
	case nil:
		return nil, nil
	}
	return nil, errNotObject
}

func numericDate(all map[string]any, name string) (*jwt.NumericDate, error) {
	v, present := all[name]
	if !present {
		return nil, nil
	}
	f, ok := v.(float64)
	if !ok || math.IsInf(f, 0) || math.IsNaN(f) || f < 0 || f > 1<<40 {
		return nil, fmt.Errorf("%w: %s", errClaimType, name)
	}
	sec, frac := math.Modf(f)
	return jwt.NewNumericDate(time.Unix(int64(sec), int64(frac*1e9))), nil
}

func stringClaim(all map[string]any, name string) (string, error) {
	v, present := all[name]
	if !present {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("%w: %s", errClaimType, name)
	}
	return s, nil
}

func (c *strictClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.exp, nil }
func (c *strictClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.iat, nil }
func (c *strictClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.nbf, nil }
func (c *strictClaims) GetIssuer() (string, error)                   { return c.iss, nil }
func (c *strictClaims) GetSubject() (string, error)                  { return c.sub, nil }
func (c *strictClaims) GetAudience() (jwt.ClaimStrings, error)       { return c.aud, nil }

// signedHeaders remembers the decoded JOSE headers of tokens whose
// signature a trusted key verified, by the header's base64url text. An
// issuer signs with a few headers, one or two per key, so nearly every
// token's header has been seen before and decoding it is skipped; every
// check of the header, and the key lookup, still runs on every token.
// Only signed headers enter, so no one without the issuer's key can fill
// it, and at most maxSignedHeaders. The maps are shared by concurrent
// requests and only ever read: nothing may write to a decoded header
// (TestVerifyConcurrent has the race detector watch for it).
type signedHeaders struct {
	m sync.Map // string → map[string]any
	n atomic.Int32
}

const maxSignedHeaders = 64

func (s *signedHeaders) get(header64 string) (map[string]any, bool) {
	h, ok := s.m.Load(header64)
	if !ok {
		return nil, false
	}
	return h.(map[string]any), true
}

func (s *signedHeaders) add(header64 string, header map[string]any) {
	// A place is taken first, so that concurrent adds cannot pass the bound.
	if s.n.Add(1) > maxSignedHeaders {
		s.n.Add(-1)
		return
	}
	// A copy of the text, so as not to keep the token it is part of.
	if _, loaded := s.m.LoadOrStore(strings.Clone(header64), header); loaded {
		s.n.Add(-1) // another request remembered it first
	}
}

// jwtVerifier checks signed JWT access tokens.
type jwtVerifier struct {
	headers   signedHeaders
	validator *jwt.Validator
	keys      *keySource // nil with an HMAC secret
	secret    []byte
	cfg       *Config
	// atJWT demands typ at+jwt: RequireATJWT or ProfileRFC9068. strict is
	// ProfileRFC9068, decided once here so that the default profile's
	// path pays one branch for it.
	atJWT, strict bool
}

func newJWTVerifier(cfg *Config, keys *keySource) *jwtVerifier {
	// golang-jwt's own claim checks, as its Parser runs them after the
	// signature: iss, aud, exp (required), nbf, iat, with leeway. aud is
	// its to check while AudienceClaims is the default, ["aud"]; any other
	// list is checked by claimMapping.checkAudience after it.
	opts := []jwt.ParserOption{
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.ClockSkew),
		jwt.WithTimeFunc(cfg.Now),
	}
	if cfg.claims().audienceIsAud {
		opts = append(opts, jwt.WithAudience(cfg.Audiences...))
	}
	return &jwtVerifier{
		keys:      keys,
		secret:    cfg.HMACSecret,
		cfg:       cfg,
		validator: jwt.NewValidator(opts...),
		atJWT:     cfg.RequireATJWT || cfg.Profile == ProfileRFC9068,
		strict:    cfg.Profile == ProfileRFC9068,
	}
}

// headerError is a refusal decided from the JOSE header alone.
type headerError struct {
	reason, desc string
}

func (e *headerError) Error() string { return e.desc }

// Header parameters that point at keys the token brings along. RFC 8725
// §3.10: never fetch or trust them; a token that carries them is refused so
// no later code can be tempted to.
var embeddedKeyParams = []string{"jku", "jwk", "x5u", "x5c"}

// key returns the key to check the token's signature with, after the
// header checks of RFC 8725 and RFC 9068 §4. method is the signing method
// of the header's alg, which golang-jwt knows.
func (v *jwtVerifier) key(ctx context.Context, header map[string]any, alg string, method jwt.SigningMethod) (any, error) {
	if !slices.Contains(v.cfg.Algorithms, alg) {
		return nil, &headerError{ReasonAlgorithm, "token algorithm not accepted"}
	}
	if _, ok := header["crit"]; ok {
		// RFC 7515 §4.1.11: we understand no extension, so any crit list
		// names one we must not ignore.
		return nil, &headerError{ReasonBadHeader, "token header has critical parameters that are not supported"}
	}
	for _, p := range embeddedKeyParams {
		if _, ok := header[p]; ok {
			return nil, &headerError{ReasonBadHeader, "token header carries its own key reference"}
		}
	}
	if err := v.checkType(header["typ"]); err != nil {
		return nil, err
	}
	if v.secret != nil {
		return v.secret, nil
	}
	var key any
	kidRaw, hasKID := header["kid"]
	if hasKID {
		kid, ok := kidRaw.(string)
		if !ok || kid == "" {
			return nil, &headerError{ReasonBadHeader, "token kid is malformed"}
		}
		// keyfunc reads kid and alg from the header: the kid lookup (with
		// an on-demand refresh, see refreshingStorage) and the check that
		// the JWK's alg, if any, is the token's stay keyfunc's.
		k, err := v.keys.kf.KeyfuncCtx(ctx)(&jwt.Token{Header: header, Method: method})
		if err != nil {
			if errors.Is(err, errUnknownKID) || errors.Is(err, errNoKeys) || errors.As(err, new(*unavailableError)) {
				return nil, err
			}
			// keyfunc refuses a token whose alg differs from its JWK's.
			return nil, &headerError{ReasonAlgorithm, "token algorithm does not fit its key"}
		}
		key = k
	} else {
		if v.strict {
			// The strict profile selects keys by kid alone, so that a
			// rotation never leaves a token to guess at; RFC 7515 §4.1.4
			// makes kid optional, which the default profile allows.
			return nil, &headerError{ReasonBadHeader, "token header has no kid"}
		}
		// keyfunc offers every key to a token without kid; we accept one
		// only when exactly one key in the set fits its algorithm.
		k, err := v.onlyKey(ctx, alg)
		if err != nil {
			return nil, err
		}
		key = k
	}
	if !keyFits(alg, key) {
		return nil, &headerError{ReasonAlgorithm, "token algorithm does not fit its key"}
	}
	return key, nil
}

func (v *jwtVerifier) onlyKey(ctx context.Context, alg string) (any, error) {
	all, err := v.keys.store.KeyReadAll(ctx)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 && !v.keys.loaded.Load() {
		return nil, errNoKeys
	}
	var found any
	n := 0
	for _, j := range all {
		k := publicOf(j.Key())
		if a := j.Marshal().ALG.String(); a != "" && a != alg {
			continue
		}
		if keyFits(alg, k) {
			found = k
			n++
		}
	}
	if n != 1 {
		return nil, &headerError{ReasonUnknownKey, "token has no kid and the key set has no single key for its algorithm"}
	}
	return found, nil
}

// publicOf returns the public half of a key that may be private: a JWKS
// that wrongly publishes private parameters must still verify, not sign.
func publicOf(k any) any {
	if pk, ok := k.(interface{ Public() crypto.PublicKey }); ok {
		return pk.Public()
	}
	return k
}

func (v *jwtVerifier) checkType(raw any) error {
	if raw == nil {
		if v.atJWT {
			return &headerError{ReasonBadHeader, `token type must be at+jwt`}
		}
		return nil
	}
	typ, ok := raw.(string)
	if !ok {
		return &headerError{ReasonBadHeader, "token type is malformed"}
	}
	// RFC 7515 §4.1.9: media types compare case-insensitively and may drop
	// the "application/" prefix.
	t := strings.TrimPrefix(strings.ToLower(typ), "application/")
	if t == "at+jwt" {
		return nil
	}
	if v.atJWT {
		return &headerError{ReasonBadHeader, `token type must be at+jwt`}
	}
	if t == "jwt" {
		return nil
	}
	// RFC 8725 §3.11: a JWT of another explicit type (a logout token, a
	// DPoP proof, an ID token typed as such) is not an access token.
	return &headerError{ReasonBadHeader, "token type is not an access token"}
}

// b64 decodes the segments of a compact JWS: base64url without padding
// (RFC 7515 §2), strictly, so that a token has one encoding only (the
// unused bits of the last character must be zero), as golang-jwt decodes
// with jwt.WithStrictDecoding.
var b64 = base64.RawURLEncoding.Strict()

// verify checks a token and returns its principal.
//
// It splits and decodes the token itself rather than through jwt.Parser,
// with which encoding/json read the payload four times (validating it and
// finding the value for strictClaims.UnmarshalJSON, which validated it
// again and decoded it) and which copies it and joins the signing input
// into a new string. The steps below are jwt.Parser's but for two: a
// character outside base64url or an oversized header is refused first,
// and the payload is decoded after the signature, not before, so that a
// forged token costs no JSON decoding. The signature and the registered
// claims are still checked by golang-jwt (SigningMethod.Verify,
// jwt.Validator). refVerify, in the tests, is the old way;
// TestVerifyMatchesParser and FuzzVerifyMatchesParser hold verify to it,
// allowing a token with several faults to be refused for another of them
// (see reordered).
func (v *jwtVerifier) verify(ctx context.Context, token string) (principal.Principal, error) {
	return v.verifyDecoded(ctx, token, nil)
}

// verifyDecoded is verify for a caller that has decoded the payload
// already (to read iss, see issuerSet): payload, when not nil, is the
// decoded payload of token, and is not decoded again.
func (v *jwtVerifier) verifyDecoded(ctx context.Context, token string, payload []byte) (principal.Principal, error) {
	var none principal.Principal
	// The structure, the alphabet and the header's size.
	header64, payload64, sig64, err := splitChecked(token)
	if err != nil {
		return none, err
	}

	// The header must decode to a JSON object. A header seen on a token a
	// trusted key signed is not decoded again.
	header, seen := v.headers.get(header64)
	if !seen {
		headerJSON, err := b64.DecodeString(header64)
		if err != nil {
			return none, malformed("header is not base64url", err)
		}
		if header, err = decodeObject(headerJSON); err != nil {
			return none, malformed("header is not a JSON object", err)
		}
	}
	// No alg, an alg that is not a string or one golang-jwt has no method
	// for: nothing can verify the token. Whether an alg is allowed is
	// checked with the key, below.
	alg, _ := header["alg"].(string)
	method := jwt.GetSigningMethod(alg)
	if method == nil {
		return none, newErr(ErrInvalidToken, ReasonAlgorithm, "token algorithm not accepted", errNoMethod)
	}
	sig, err := b64.DecodeString(sig64)
	if err != nil {
		return none, malformed("signature is not base64url", err)
	}

	// The header checks, and the key they allow.
	key, err := v.key(ctx, header, alg, method)
	if err != nil {
		return none, keyError(err)
	}

	// The signature, over the header and payload exactly as sent.
	signingInput := token[:len(header64)+1+len(payload64)]
	if err := method.Verify(signingInput, sig, key); err != nil {
		return none, newErr(ErrInvalidToken, ReasonSignature, "token signature is invalid", err)
	}
	if !seen {
		// Whatever the claims, a trusted key signed this header.
		v.headers.add(header64, header)
	}

	// The payload is decoded only now, after the signature: unlike
	// golang-jwt, which decodes it first, so that a forged token of nested
	// JSON costs its decoder nothing. (A token with several faults is
	// refused for its signature, which tells a prober less.)
	if payload == nil {
		if payload, err = b64.DecodeString(payload64); err != nil {
			return none, malformed("payload is not base64url", err)
		}
	}
	var claims strictClaims
	if err := claims.decode(payload); err != nil {
		return none, malformed("payload is not a JWT claims set", err)
	}

	// The claims, which a trusted key has signed.
	if v.strict {
		if err := claims.rfc9068Problem(); err != nil {
			return none, err
		}
	}
	if err := v.validator.Validate(&claims); err != nil {
		return none, v.claimsError(err, &claims)
	}
	return principalOf(&claims, v.cfg)
}

// principalOf makes the principal of a token whose signature and
// registered claims were checked, after the checks that are ours alone:
// the audience when AudienceClaims is not the default, and the claims
// cfg.ScopeClaims and cfg.RoleClaims name.
func principalOf(claims *strictClaims, cfg *Config) (principal.Principal, error) {
	if claims.all == nil {
		// A payload of JSON null; refused already for want of exp.
		return principal.Principal{}, newErr(ErrInvalidToken, ReasonBadToken, "token is malformed", nil)
	}
	m := cfg.claims()
	// Where golang-jwt would have checked aud: first among the claims.
	if !m.audienceIsAud {
		if err := m.checkAudience(claims.all, cfg.Audiences); err != nil {
			return principal.Principal{}, newErr(ErrInvalidToken, ReasonAudience, "token audience not accepted", err)
		}
	}
	var jkt string
	if isBound(claims.all) {
		// Checked before the caller caches the principal, so a bound token
		// is refused every time, unless DPoP is on and the binding is one
		// DPoP can check: then the principal carries the key's thumbprint
		// and every request must come with a proof made with that key.
		ok := false
		if cfg.dpopOn() {
			jkt, ok = dpopJKT(claims.all)
		}
		if !ok {
			return principal.Principal{}, errBoundToken
		}
	}
	if claims.sub == "" {
		return principal.Principal{}, newErr(ErrInvalidToken, ReasonMissingClaim, "token has no subject", nil)
	}
	scopes, roles, err := m.grants(claims.all)
	if err != nil {
		return principal.Principal{}, err
	}
	p := principal.Principal{
		Subject: claims.sub,
		Scopes:  scopes,
		Roles:   roles,
		Claims:  claims.all,
	}.WithClaimsJSON(claims.raw)
	if claims.exp != nil {
		p.ExpiresAt = claims.exp.Time
	}
	if jkt != "" {
		p.Binding, p.JKT = principal.BindingDPoP, jkt
	}
	return p, nil
}

// maxHeaderSegment bounds the base64url text of a JOSE header.
const maxHeaderSegment = 2048

// notB64URLOrDot reports a character that has no place in a compact JWS.
func notB64URLOrDot(r rune) bool {
	return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
}

// splitCompact splits a compact JWS (RFC 7515 §7.1) into its three
// segments; ok is false unless there are exactly three. A JWE has five and
// is refused here.
func splitCompact(token string) (header, payload, sig string, ok bool) {
	header, rest, ok1 := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") {
		return "", "", "", false
	}
	return header, payload, sig, true
}

var errNoMethod = errors.New("signing method (alg) is unavailable")

// malformed is the refusal of a token whose structure is broken. The
// cause, for the log, names the part and wraps the decoder's error, as
// golang-jwt's did: an offset, a character or a number of the token, never
// the token.
func malformed(part string, err error) *authError {
	// encoding/json quotes a number it cannot store whole in its error:
	// up to the token's length of the token's bytes, in the log.
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		err = fmt.Errorf("number out of range at offset %d", te.Offset)
	}
	return newErr(ErrInvalidToken, ReasonBadToken, "token is malformed", fmt.Errorf("%s: %w", part, err))
}

// keyError turns an error from key into an authError. A key set that
// cannot be had is a 503: the token may be fine.
func keyError(err error) *authError {
	var he *headerError
	var ue *unavailableError
	switch {
	case errors.As(err, &ue):
		return newErr(ErrUnavailable, ReasonUnavailable, "signing keys unavailable", err)
	case errors.Is(err, errNoKeys):
		return newErr(ErrUnavailable, ReasonUnavailable, "signing keys unavailable", err)
	case errors.As(err, &he):
		return newErr(ErrInvalidToken, he.reason, he.desc, nil)
	case errors.Is(err, errUnknownKID):
		return newErr(ErrInvalidToken, ReasonUnknownKey, "token signing key is unknown", err)
	}
	// Whatever else keyfunc or the key store reports leaves no key that
	// fits the token's alg.
	return newErr(ErrInvalidToken, ReasonAlgorithm, "token algorithm not accepted", err)
}

// claimsError turns an error from jwt.Validator, which joins every claim
// check that failed, into an authError for the first of them in this
// order.
func (v *jwtVerifier) claimsError(err error, claims *strictClaims) *authError {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return newErr(ErrInvalidToken, ReasonExpired, "token expired", nil)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return newErr(ErrInvalidToken, ReasonNotYetValid, "token not valid yet", nil)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return newErr(ErrInvalidToken, ReasonIssuedInFuture, "token issued in the future", nil)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		// The token's signature was checked, so these values come from a
		// token a trusted key signed. They name no secret, and put side
		// by side with the settings they are what an operator needs to fix
		// a misconfiguration.
		return newErr(ErrInvalidToken, ReasonIssuer, "token issuer not accepted", issuerMismatch(claims.iss, v.cfg.Issuer))
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return newErr(ErrInvalidToken, ReasonAudience, "token audience not accepted", audienceMismatch(claims.aud, v.cfg.Audiences))
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return newErr(ErrInvalidToken, ReasonMissingClaim, "token lacks a required claim", err)
	}
	return newErr(ErrInvalidToken, ReasonBadToken, "token is invalid", err)
}

// rfc9068Problem is the refusal, under ProfileRFC9068, of claims that
// lack one of the claims RFC 9068 §2.2 requires, or carry it with a value
// that says nothing (an empty string, an aud without a value), naming the
// first such claim in the description and the log; nil when all are
// there. The registered claims' types were checked by decode.
func (c *strictClaims) rfc9068Problem() *authError {
	var name string
	switch {
	case c.iss == "":
		name = "iss"
	case c.exp == nil:
		name = "exp"
	case !slices.ContainsFunc(c.aud, func(a string) bool { return a != "" }):
		name = "aud"
	case c.sub == "":
		name = "sub"
	case !nonEmptyString(c.all, "client_id"):
		name = "client_id"
	case c.iat == nil:
		name = "iat"
	case !nonEmptyString(c.all, "jti"):
		name = "jti"
	default:
		return nil
	}
	cause := fmt.Errorf("Profile rfc9068 requires %s (RFC 9068 §2.2): missing", name)
	if _, present := c.all[name]; present && name == "aud" {
		cause = errors.New("Profile rfc9068 requires aud (RFC 9068 §2.2): no non-empty value")
	} else if present {
		cause = fmt.Errorf("Profile rfc9068 requires %s (RFC 9068 §2.2): not a non-empty string", name)
	}
	return newErr(ErrInvalidToken, ReasonMissingClaim, "token lacks the required claim "+name, cause)
}

// nonEmptyString reports whether the claim name is a non-empty string.
func nonEmptyString(all map[string]any, name string) bool {
	s, ok := all[name].(string)
	return ok && s != ""
}

// maxLoggedClaim bounds each claim value quoted in a log line.
const maxLoggedClaim = 200

// issuerMismatch is the cause, for the log, of a refusal for iss.
func issuerMismatch(got, want string) error {
	return fmt.Errorf("iss %s, want %q", quoteClip(got), want)
}

// audienceMismatch is the cause, for the log, of a refusal for aud.
func audienceMismatch(got, want []string) error { return claimMismatch("aud", got, want) }

// claimMismatch is the cause, for the log, of a refusal for the audience
// claim name.
func claimMismatch(name string, got, want []string) error {
	const maxValues = 10
	q := make([]string, 0, min(len(got), maxValues)+1)
	for i, a := range got {
		if i == maxValues {
			q = append(q, fmt.Sprintf("… %d more", len(got)-maxValues))
			break
		}
		q = append(q, quoteClip(a))
	}
	return fmt.Errorf("%s [%s], want one of %q", name, strings.Join(q, " "), want)
}

// quoteClip quotes a claim value for a log line, cut to maxLoggedClaim
// bytes so that a token cannot fill the log.
func quoteClip(s string) string {
	if len(s) > maxLoggedClaim {
		return strconv.Quote(s[:maxLoggedClaim]) + "…"
	}
	return strconv.Quote(s)
}

package middleware

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// strictClaims decodes a JWT payload once, into every claim, and refuses
// registered claims of the wrong JSON type. golang-jwt's own claim types
// accept numeric dates written as strings ("exp": "1700000000"), which RFC
// 7519 §2 does not allow; here exp, nbf and iat must be JSON numbers, iss
// and sub strings, aud a string or an array of strings.
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

func (c *strictClaims) UnmarshalJSON(b []byte) error {
	// Numbers decode as float64, as in jwt.MapClaims: exact for every
	// NumericDate until the year 285,000,000.
	if err := json.Unmarshal(b, &c.all); err != nil {
		return err
	}
	// The decoder may reuse b once this returns.
	c.raw = bytes.Clone(b)
	if c.all == nil {
		return errors.New("claims are not a JSON object")
	}
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

// jwtVerifier checks signed JWT access tokens.
type jwtVerifier struct {
	parser *jwt.Parser
	keys   *keySource // nil with an HMAC secret
	secret []byte
	cfg    *Config
}

func newJWTVerifier(cfg *Config, keys *keySource) *jwtVerifier {
	return &jwtVerifier{
		keys:   keys,
		secret: cfg.HMACSecret,
		cfg:    cfg,
		parser: jwt.NewParser(
			// No WithValidMethods: the keyfunc is the one gate for the
			// algorithm, and golang-jwt always calls it before verifying.
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithAudience(cfg.Audiences...),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.ClockSkew),
			jwt.WithTimeFunc(cfg.Now),
			jwt.WithStrictDecoding(),
		),
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

// keyfunc returns the key to check the token's signature with, after the
// header checks of RFC 8725 and RFC 9068 §4.
func (v *jwtVerifier) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		alg, _ := t.Header["alg"].(string)
		if !slices.Contains(v.cfg.Algorithms, alg) {
			return nil, &headerError{ReasonAlgorithm, "token algorithm not accepted"}
		}
		if _, ok := t.Header["crit"]; ok {
			// RFC 7515 §4.1.11: we understand no extension, so any crit
			// list names one we must not ignore.
			return nil, &headerError{ReasonBadHeader, "token header has critical parameters that are not supported"}
		}
		for _, p := range embeddedKeyParams {
			if _, ok := t.Header[p]; ok {
				return nil, &headerError{ReasonBadHeader, "token header carries its own key reference"}
			}
		}
		if err := v.checkType(t.Header["typ"]); err != nil {
			return nil, err
		}
		if v.secret != nil {
			return v.secret, nil
		}
		var key any
		kidRaw, hasKID := t.Header["kid"]
		if hasKID {
			kid, ok := kidRaw.(string)
			if !ok || kid == "" {
				return nil, &headerError{ReasonBadHeader, "token kid is malformed"}
			}
			k, err := v.keys.kf.KeyfuncCtx(ctx)(t)
			if err != nil {
				if errors.Is(err, errUnknownKID) || errors.Is(err, errNoKeys) || errors.As(err, new(*unavailableError)) {
					return nil, err
				}
				// keyfunc refuses a token whose alg differs from its JWK's.
				return nil, &headerError{ReasonAlgorithm, "token algorithm does not fit its key"}
			}
			key = k
		} else {
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
		if v.cfg.RequireATJWT {
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
	if v.cfg.RequireATJWT {
		return &headerError{ReasonBadHeader, `token type must be at+jwt`}
	}
	if t == "jwt" {
		return nil
	}
	// RFC 8725 §3.11: a JWT of another explicit type (a logout token, a
	// DPoP proof, an ID token typed as such) is not an access token.
	return &headerError{ReasonBadHeader, "token type is not an access token"}
}

// verify checks a token and returns its principal.
func (v *jwtVerifier) verify(ctx context.Context, token string) (principal.Principal, error) {
	if strings.Count(token, ".") != 2 {
		return principal.Principal{}, newErr(ErrInvalidToken, ReasonBadToken, "token is not a signed JWT", nil)
	}
	var claims strictClaims
	_, err := v.parser.ParseWithClaims(token, &claims, v.keyfunc(ctx))
	if err != nil {
		ae := classify(err)
		// golang-jwt checks claims only after the signature, so these
		// values come from a token a trusted key signed. They name no
		// secret, and put side by side with the settings they are what
		// an operator needs to fix a misconfiguration.
		switch ae.reason {
		case ReasonIssuer:
			ae.cause = issuerMismatch(claims.iss, v.cfg.Issuer)
		case ReasonAudience:
			ae.cause = audienceMismatch(claims.aud, v.cfg.Audiences)
		}
		return principal.Principal{}, ae
	}
	if claims.all == nil {
		// A payload of JSON null never reaches UnmarshalJSON.
		return principal.Principal{}, newErr(ErrInvalidToken, ReasonBadToken, "token is malformed", nil)
	}
	if isBound(claims.all) {
		// Checked before the caller caches the principal, so a bound token
		// is refused every time.
		return principal.Principal{}, newErr(ErrInvalidToken, ReasonBoundToken, "token is bound to a key; sender-constrained tokens are not accepted", nil)
	}
	if claims.sub == "" {
		return principal.Principal{}, newErr(ErrInvalidToken, ReasonMissingClaim, "token has no subject", nil)
	}
	p := principal.Principal{
		Subject: claims.sub,
		Scopes:  scopesOf(claims.all),
		Claims:  claims.all,
	}.WithClaimsJSON(claims.raw)
	if claims.exp != nil {
		p.ExpiresAt = claims.exp.Time
	}
	return p, nil
}

// classify turns a golang-jwt error into an authError with a fixed
// description. The order matters: a keyfunc error is wrapped in
// ErrTokenUnverifiable, claim errors in ErrTokenInvalidClaims.
func classify(err error) *authError {
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
	case errors.Is(err, jwt.ErrTokenMalformed):
		return newErr(ErrInvalidToken, ReasonBadToken, "token is malformed", err)
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// Raised before the keyfunc runs: alg missing or unknown to golang-jwt.
		return newErr(ErrInvalidToken, ReasonAlgorithm, "token algorithm not accepted", err)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return newErr(ErrInvalidToken, ReasonSignature, "token signature is invalid", err)
	case errors.Is(err, jwt.ErrTokenExpired):
		return newErr(ErrInvalidToken, ReasonExpired, "token expired", nil)
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return newErr(ErrInvalidToken, ReasonNotYetValid, "token not valid yet", nil)
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return newErr(ErrInvalidToken, ReasonIssuedInFuture, "token issued in the future", nil)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return newErr(ErrInvalidToken, ReasonIssuer, "token issuer not accepted", nil)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return newErr(ErrInvalidToken, ReasonAudience, "token audience not accepted", nil)
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return newErr(ErrInvalidToken, ReasonMissingClaim, "token lacks a required claim", err)
	}
	return newErr(ErrInvalidToken, ReasonBadToken, "token is invalid", err)
}

// scopesOf reads scopes from scope (a space-delimited string, RFC 8693
// §4.2 and RFC 9068 §2.2.3) and scp (an array, or a string, as some servers
// send it), without duplicates.
func scopesOf(claims map[string]any) []string {
	var out []string
	add := func(s string) {
		if s != "" && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, name := range []string{"scope", "scp"} {
		switch v := claims[name].(type) {
		case string:
			for _, s := range strings.Fields(v) {
				add(s)
			}
		case []any:
			for _, item := range v {
				if s, ok := item.(string); ok {
					add(s)
				}
			}
		}
	}
	return out
}

// maxLoggedClaim bounds each claim value quoted in a log line.
const maxLoggedClaim = 200

// issuerMismatch is the cause, for the log, of a refusal for iss.
func issuerMismatch(got, want string) error {
	return fmt.Errorf("iss %s, want %q", quoteClip(got), want)
}

// audienceMismatch is the cause, for the log, of a refusal for aud.
func audienceMismatch(got, want []string) error {
	const maxValues = 10
	q := make([]string, 0, min(len(got), maxValues)+1)
	for i, a := range got {
		if i == maxValues {
			q = append(q, fmt.Sprintf("… %d more", len(got)-maxValues))
			break
		}
		q = append(q, quoteClip(a))
	}
	return fmt.Errorf("aud [%s], want one of %q", strings.Join(q, " "), want)
}

// quoteClip quotes a claim value for a log line, cut to maxLoggedClaim
// bytes so that a token cannot fill the log.
func quoteClip(s string) string {
	if len(s) > maxLoggedClaim {
		return strconv.Quote(s[:maxLoggedClaim]) + "…"
	}
	return strconv.Quote(s)
}

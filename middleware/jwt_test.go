package middleware

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// refVerify is verify as it was before it parsed tokens itself: golang-jwt's
// Parser.ParseWithClaims with the options verify had, v.key (the header
// checks and the key lookup, unchanged) as its Keyfunc, claims decoded by
// refClaims as strictClaims decoded them, and the error mapping verify had
// (refClassify). The tests below and FuzzVerifyMatchesParser hold verify to
// it: parsing by hand must change neither what is accepted nor the reason
// and description of any refusal.
func refVerify(ctx context.Context, v *jwtVerifier, token string) (principal.Principal, error) {
	if strings.Count(token, ".") != 2 {
		return principal.Principal{}, newErr(ErrInvalidToken, ReasonBadToken, "token is not a signed JWT", nil)
	}
	opts := []jwt.ParserOption{
		jwt.WithIssuer(v.cfg.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(v.cfg.ClockSkew),
		jwt.WithTimeFunc(v.cfg.Now),
		jwt.WithStrictDecoding(),
	}
	if v.cfg.claims().audienceIsAud {
		opts = append(opts, jwt.WithAudience(v.cfg.Audiences...))
	}
	parser := jwt.NewParser(opts...)
	var claims refClaims
	_, err := parser.ParseWithClaims(token, &claims, func(t *jwt.Token) (any, error) {
		alg, _ := t.Header["alg"].(string)
		return v.key(ctx, t.Header, alg, t.Method)
	})
	if err != nil {
		ae := refClassify(err)
		switch ae.reason {
		case ReasonIssuer:
			ae.cause = issuerMismatch(claims.iss, v.cfg.Issuer)
		case ReasonAudience:
			ae.cause = audienceMismatch(claims.aud, v.cfg.Audiences)
		}
		return principal.Principal{}, ae
	}
	return principalOf(&claims.strictClaims, v.cfg)
}

// refClaims decodes claims as strictClaims.UnmarshalJSON did: json.Unmarshal
// into a map, on a copy of the bytes golang-jwt hands it.
type refClaims struct{ strictClaims }

func (c *refClaims) UnmarshalJSON(b []byte) error {
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	if all == nil {
		return errors.New("claims are not a JSON object")
	}
	return c.set(all, bytes.Clone(b))
}

// refClassify is the error mapping verify had, from golang-jwt's errors.
func refClassify(err error) *authError {
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

// testNow is the clock of the verifiers below, fixed so that verify and
// refVerify judge a token at the same instant.
var testNow = time.Unix(1_900_000_000, 0)

// newTestVerifier returns a verifier for is with its key set loaded and no
// refresh allowed, so that an unknown kid is refused at once.
func newTestVerifier(tb testing.TB, is *authtest.Issuer, edit func(*Config)) *jwtVerifier {
	tb.Helper()
	cfg := &Config{Issuer: is.URL, Audiences: []string{authtest.Audience}, Now: func() time.Time { return testNow }}
	if edit != nil {
		edit(cfg)
	}
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		tb.Fatal(err)
	}
	if cfg.HMACSecret != nil {
		return newJWTVerifier(cfg, nil)
	}
	ks, err := newKeySource(is.URL+"/jwks", cfg)
	if err != nil {
		tb.Fatal(err)
	}
	keys, _, err := parseJWKS(is.JWKS())
	if err != nil {
		tb.Fatal(err)
	}
	if err := ks.store.KeyReplaceAll(context.Background(), keys); err != nil {
		tb.Fatal(err)
	}
	ks.loaded.Store(true)
	ks.limiter.SetBurst(0) // never fetch: the tests judge the set as loaded
	return newJWTVerifier(cfg, ks)
}

// sameVerdict fails unless verify and refVerify answer token alike: the
// same error kind, reason and description, or the same principal.
// reordered reports a refusal for which verify and golang-jwt may name
// different faults of one token, both refusing it: verify refuses a
// character outside base64url before anything else, and decodes the
// payload only after the signature, where golang-jwt decodes it first. So
// when golang-jwt refused a malformed payload, verify may have refused the
// same token for its header, key or signature; and when verify refused a
// stray character, golang-jwt may have refused for anything.
func reordered(got, want *authError) bool {
	if got.reason == ReasonBadToken && strings.Contains(fmt.Sprint(got.cause), "outside base64url") {
		return true
	}
	if want.reason != ReasonBadToken {
		return false
	}
	switch got.reason {
	case ReasonAlgorithm, ReasonBadHeader, ReasonUnknownKey, ReasonSignature:
		return true
	}
	return false
}

func sameVerdict(t *testing.T, v *jwtVerifier, token string) {
	t.Helper()
	ctx := context.Background()
	got, gotErr := v.verify(ctx, token)
	want, wantErr := refVerify(ctx, v, token)
	if h, _, _ := strings.Cut(token, "."); len(h) > maxHeaderSegment {
		// Refused by verify alone, whatever golang-jwt says.
		if Reason(gotErr) != ReasonBadToken {
			t.Fatalf("a header of %d characters: %v", len(h), gotErr)
		}
		return
	}
	if (gotErr == nil) != (wantErr == nil) {
		t.Fatalf("verify: %v; golang-jwt: %v", gotErr, wantErr)
	}
	if gotErr != nil {
		var g, w *authError
		if !errors.As(gotErr, &g) || !errors.As(wantErr, &w) {
			t.Fatalf("not authErrors: %v; %v", gotErr, wantErr)
		}
		if reordered(g, w) {
			return
		}
		if g.kind != w.kind || g.reason != w.reason || g.desc != w.desc {
			t.Fatalf("verify: %s %q (%v); golang-jwt: %s %q (%v)", g.reason, g.desc, g.cause, w.reason, w.desc, w.cause)
		}
		if (g.reason == ReasonIssuer || g.reason == ReasonAudience) && g.cause.Error() != w.cause.Error() {
			t.Fatalf("logged cause %q, golang-jwt's %q", g.cause, w.cause)
		}
		return
	}
	if got.Subject != want.Subject || !reflect.DeepEqual(got.Scopes, want.Scopes) ||
		!reflect.DeepEqual(got.Claims, want.Claims) || !got.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("verify: %+v; golang-jwt: %+v", got, want)
	}
	var gotTyped, wantTyped map[string]any
	gotDecErr, wantDecErr := principal.DecodeClaims(got, &gotTyped), principal.DecodeClaims(want, &wantTyped)
	if (gotDecErr == nil) != (wantDecErr == nil) || !reflect.DeepEqual(gotTyped, wantTyped) {
		t.Fatalf("DecodeClaims: %v %v; golang-jwt: %v %v", gotTyped, gotDecErr, wantTyped, wantDecErr)
	}
}

// enc is base64url without padding, as in a compact JWS.
var enc = base64.RawURLEncoding.EncodeToString

// signCompact signs header and payload, raw JSON or anything else, with k.
func signCompact(tb testing.TB, k *authtest.Key, header, payload string) string {
	tb.Helper()
	input := enc([]byte(header)) + "." + enc([]byte(payload))
	sig, err := jwt.GetSigningMethod(k.Alg).Sign(input, k.Private)
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + enc(sig)
}

// TestVerifyMatchesParser runs tokens of every kind the hostile-token
// table has, and combinations of faults that test the order of the
// checks, through verify and through golang-jwt's parser (refVerify).
func TestVerifyMatchesParser(t *testing.T) {
	is := authtest.NewIssuer(t)
	stranger := authtest.NewIssuer(t) // same kids, other keys
	v := newTestVerifier(t, is, nil)
	rsa := is.KeyFor("RS256")
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := is.Claims("alice")
		c["iat"], c["nbf"], c["exp"] = testNow.Unix(), testNow.Unix(), testNow.Add(5*time.Minute).Unix()
		if edit != nil {
			edit(c)
		}
		return c
	}
	sign := func(alg string, edit func(jwt.MapClaims), h map[string]any) string {
		return is.Sign(t, alg, claims(edit), h)
	}
	good := sign("RS256", nil, nil)
	parts := strings.Split(good, ".")
	goodHeader := `{"alg":"RS256","kid":"` + rsa.KID + `","typ":"at+jwt"}`
	goodPayload := mustMarshal(claims(nil))
	raw := func(header, payload, sig string) string {
		return enc([]byte(header)) + "." + enc([]byte(payload)) + "." + sig
	}
	signed := func(header, payload string) string { return signCompact(t, rsa, header, payload) }

	tokens := map[string]string{
		"valid RS256":       good,
		"valid PS256":       sign("PS256", nil, nil),
		"valid ES256":       sign("ES256", nil, nil),
		"valid EdDSA":       sign("EdDSA", nil, nil),
		"typ JWT":           sign("RS256", nil, map[string]any{"typ": "JWT"}),
		"typ media type":    sign("RS256", nil, map[string]any{"typ": "application/AT+JWT"}),
		"no typ":            sign("RS256", nil, map[string]any{"typ": nil}),
		"no kid, one key":   sign("ES256", nil, map[string]any{"kid": nil}),
		"aud array":         sign("RS256", func(c jwt.MapClaims) { c["aud"] = []string{"x", authtest.Audience} }, nil),
		"fractional exp":    sign("RS256", func(c jwt.MapClaims) { c["exp"] = float64(testNow.Unix()) + 30.5 }, nil),
		"exp within skew":   sign("RS256", func(c jwt.MapClaims) { c["exp"] = testNow.Add(-30 * time.Second).Unix() }, nil),
		"scp array":         sign("RS256", func(c jwt.MapClaims) { c["scp"] = []any{"a", "b", 1} }, nil),
		"nested claims":     sign("RS256", func(c jwt.MapClaims) { c["x"] = map[string]any{"y": []any{1.5, nil, true, "é"}} }, nil),
		"big number claim":  signed(goodHeader, strings.Replace(goodPayload, "{", `{"n":9007199254740993,`, 1)),
		"payload in spaces": signed(goodHeader, " \n"+goodPayload+"\t "),
		"header in spaces":  signed(" "+goodHeader+"\r\n", goodPayload),
		"duplicate sub":     signed(goodHeader, strings.Replace(goodPayload, "{", `{"sub":"mallory",`, 1)),
		"folded sub":        signed(goodHeader, strings.Replace(goodPayload, "{", `{"SUB":"mallory",`, 1)),
		"invalid UTF-8":     signed(goodHeader, strings.Replace(goodPayload, "{", "{\"x\":\"\xff\xfe\",", 1)),
		"escaped key":       signed(goodHeader, strings.Replace(goodPayload, `"sub"`, `"s\u0075b"`, 1)),

		// Algorithms.
		"alg none":             raw(`{"alg":"none","typ":"JWT"}`, goodPayload, ""),
		"alg None":             raw(`{"alg":"None","kid":"`+rsa.KID+`"}`, goodPayload, parts[2]),
		"alg missing":          signed(`{"kid":"`+rsa.KID+`"}`, goodPayload),
		"alg empty":            signed(`{"alg":"","kid":"`+rsa.KID+`"}`, goodPayload),
		"alg a number":         signed(`{"alg":256,"kid":"`+rsa.KID+`"}`, goodPayload),
		"alg twice, none last": signed(`{"alg":"RS256","alg":"none","kid":"`+rsa.KID+`"}`, goodPayload),
		"alg twice, RS last":   signed(`{"alg":"none","alg":"RS256","kid":"`+rsa.KID+`"}`, goodPayload),
		"alg ALG":              signed(`{"ALG":"none","alg":"RS256","kid":"`+rsa.KID+`"}`, goodPayload),
		"RS384 not allowed":    raw(`{"alg":"RS384","kid":"`+rsa.KID+`"}`, goodPayload, parts[2]),
		"PS256 for RS256 key":  raw(`{"alg":"PS256","kid":"`+rsa.KID+`"}`, goodPayload, parts[2]),
		"ES256 for RSA key":    raw(`{"alg":"ES256","kid":"`+rsa.KID+`"}`, goodPayload, parts[2]),
		"EdDSA for EC key":     raw(`{"alg":"EdDSA","kid":"`+is.KeyFor("ES256").KID+`"}`, goodPayload, parts[2]),
		"HS256 with RSA key":   raw(`{"alg":"HS256","kid":"`+rsa.KID+`"}`, goodPayload, parts[2]),
		"no kid, HS256":        raw(`{"alg":"HS256"}`, goodPayload, parts[2]),

		// Signatures.
		"stranger's key":        stranger.Sign(t, "RS256", claims(nil), nil),
		"stripped signature":    parts[0] + "." + parts[1] + ".",
		"payload altered":       parts[0] + "." + enc([]byte(mustMarshal(claims(func(c jwt.MapClaims) { c["sub"] = "admin" })))) + "." + parts[2],
		"kid of another key":    raw(`{"alg":"RS256","kid":"`+is.KeyFor("PS256").KID+`","typ":"at+jwt"}`, goodPayload, parts[2]),
		"signature flipped bit": parts[0] + "." + parts[1] + "." + flipChar(parts[2]),
		"signature truncated":   parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-4],

		// Headers.
		"embedded jwk":    sign("RS256", nil, map[string]any{"jwk": map[string]any{"kty": "RSA"}}),
		"jku":             sign("RS256", nil, map[string]any{"jku": "https://evil.example/jwks"}),
		"x5u":             sign("RS256", nil, map[string]any{"x5u": "https://evil.example/cert"}),
		"x5c":             sign("RS256", nil, map[string]any{"x5c": []string{"MIIB"}}),
		"crit":            sign("RS256", nil, map[string]any{"crit": []string{"exp"}, "exp": 1}),
		"crit null":       signed(`{"alg":"RS256","kid":"`+rsa.KID+`","crit":null}`, goodPayload),
		"typ dpop+jwt":    sign("RS256", nil, map[string]any{"typ": "dpop+jwt"}),
		"typ a number":    sign("RS256", nil, map[string]any{"typ": 7}),
		"typ null":        signed(`{"alg":"RS256","kid":"`+rsa.KID+`","typ":null}`, goodPayload),
		"kid a number":    sign("RS256", nil, map[string]any{"kid": 1}),
		"kid empty":       sign("RS256", nil, map[string]any{"kid": ""}),
		"kid null":        signed(`{"alg":"RS256","kid":null}`, goodPayload),
		"kid unknown":     sign("RS256", nil, map[string]any{"kid": "nope"}),
		"header null":     raw("null", goodPayload, parts[2]),
		"header array":    raw(`["RS256"]`, goodPayload, parts[2]),
		"header string":   raw(`"RS256"`, goodPayload, parts[2]),
		"header not JSON": raw("{alg", goodPayload, parts[2]),
		"header trailing": raw(goodHeader+"{}", goodPayload, parts[2]),

		// Claims.
		"wrong iss":           sign("RS256", func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }, nil),
		"iss a number":        sign("RS256", func(c jwt.MapClaims) { c["iss"] = 1 }, nil),
		"iss missing":         sign("RS256", func(c jwt.MapClaims) { delete(c, "iss") }, nil),
		"wrong aud":           sign("RS256", func(c jwt.MapClaims) { c["aud"] = "other" }, nil),
		"aud missing":         sign("RS256", func(c jwt.MapClaims) { delete(c, "aud") }, nil),
		"aud empty array":     sign("RS256", func(c jwt.MapClaims) { c["aud"] = []string{} }, nil),
		"aud empty string":    sign("RS256", func(c jwt.MapClaims) { c["aud"] = "" }, nil),
		"aud a number":        sign("RS256", func(c jwt.MapClaims) { c["aud"] = 42 }, nil),
		"aud null":            sign("RS256", func(c jwt.MapClaims) { c["aud"] = nil }, nil),
		"aud with a number":   sign("RS256", func(c jwt.MapClaims) { c["aud"] = []any{authtest.Audience, 1} }, nil),
		"exp missing":         sign("RS256", func(c jwt.MapClaims) { delete(c, "exp") }, nil),
		"exp a string":        sign("RS256", func(c jwt.MapClaims) { c["exp"] = "4102444800" }, nil),
		"exp past skew":       sign("RS256", func(c jwt.MapClaims) { c["exp"] = testNow.Add(-2 * time.Minute).Unix() }, nil),
		"exp negative":        sign("RS256", func(c jwt.MapClaims) { c["exp"] = -1 }, nil),
		"exp absurd":          sign("RS256", func(c jwt.MapClaims) { c["exp"] = 1e300 }, nil),
		"exp null":            sign("RS256", func(c jwt.MapClaims) { c["exp"] = nil }, nil),
		"number past float64": signed(goodHeader, strings.Replace(goodPayload, "{", `{"x":1e400,`, 1)),
		"nbf ahead":           sign("RS256", func(c jwt.MapClaims) { c["nbf"] = testNow.Add(time.Hour).Unix() }, nil),
		"nbf a string":        sign("RS256", func(c jwt.MapClaims) { c["nbf"] = "0" }, nil),
		"iat ahead":           sign("RS256", func(c jwt.MapClaims) { c["iat"] = testNow.Add(time.Hour).Unix() }, nil),
		"iat a bool":          sign("RS256", func(c jwt.MapClaims) { c["iat"] = true }, nil),
		"sub missing":         sign("RS256", func(c jwt.MapClaims) { delete(c, "sub") }, nil),
		"sub empty":           sign("RS256", func(c jwt.MapClaims) { c["sub"] = "" }, nil),
		"sub a number":        sign("RS256", func(c jwt.MapClaims) { c["sub"] = 7 }, nil),
		"cnf":                 sign("RS256", func(c jwt.MapClaims) { c["cnf"] = map[string]any{"jkt": "x"} }, nil),
		"cnf null":            sign("RS256", func(c jwt.MapClaims) { c["cnf"] = nil }, nil),
		"payload null":        signed(goodHeader, "null"),
		"payload null spaced": signed(goodHeader, " null "),
		"payload {}":          signed(goodHeader, "{}"),
		"payload array":       signed(goodHeader, "[1,2]"),
		"payload string":      signed(goodHeader, `"sub"`),
		"payload number":      signed(goodHeader, "1"),
		"payload trailing":    signed(goodHeader, goodPayload+"{}"),
		"payload empty":       signed(goodHeader, ""),
		"payload not JSON":    raw(goodHeader, "not json", parts[2]),

		// Structure and encoding.
		"two segments":         parts[0] + "." + parts[1],
		"four segments":        good + ".x",
		"five segments":        "eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d",
		"only dots":            "..",
		"empty":                "",
		"padding in header":    parts[0] + "=." + parts[1] + "." + parts[2],
		"padding in signature": good + "==",
		"standard alphabet":    strings.ReplaceAll(parts[0], "J", "+") + "." + parts[1] + "." + parts[2],
		"non-canonical last":   parts[0] + "." + parts[1][:len(parts[1])-1] + nonCanonical(parts[1]) + "." + parts[2],
		"space inside":         parts[0] + ". " + parts[1] + "." + parts[2],

		// Several faults: the first check in golang-jwt's order decides.
		"bad payload, unknown kid":   raw(`{"alg":"RS256","kid":"nope"}`, "[", parts[2]),
		"bad payload, alg none":      raw(`{"alg":"none"}`, "[", parts[2]),
		"bad payload b64, bad alg":   enc([]byte(`{"alg":"XX"}`)) + ".!." + parts[2],
		"bad alg, bad sig b64":       raw(`{"alg":"XX"}`, goodPayload, "!"),
		"bad sig b64, unknown kid":   raw(`{"alg":"RS256","kid":"nope"}`, goodPayload, "!"),
		"claim type, crit":           raw(`{"alg":"RS256","kid":"`+rsa.KID+`","crit":["x"]}`, `{"exp":"1"}`, parts[2]),
		"unknown kid, bad signature": raw(`{"alg":"RS256","kid":"nope"}`, goodPayload, parts[2]),
		"crit, bad signature":        raw(`{"alg":"RS256","kid":"`+rsa.KID+`","crit":["x"]}`, goodPayload, parts[2]),
		"expired, bad signature":     raw(goodHeader, mustMarshal(claims(func(c jwt.MapClaims) { c["exp"] = 1 })), parts[2]),
		"expired, wrong iss and aud": sign("RS256", func(c jwt.MapClaims) { c["exp"], c["iss"], c["aud"] = 1, "x", "y" }, nil),
		"ahead, wrong iss and aud":   sign("RS256", func(c jwt.MapClaims) { c["nbf"], c["iss"], c["aud"] = 4e9, "x", "y" }, nil),
		"wrong iss and aud":          sign("RS256", func(c jwt.MapClaims) { c["iss"], c["aud"] = "x", "y" }, nil),
		"no exp, wrong aud":          sign("RS256", func(c jwt.MapClaims) { delete(c, "exp"); c["aud"] = "y" }, nil),
		"wrong aud, bound, no sub":   sign("RS256", func(c jwt.MapClaims) { c["aud"] = "y"; c["cnf"] = 1; delete(c, "sub") }, nil),
		"bound, no sub":              sign("RS256", func(c jwt.MapClaims) { c["cnf"] = 1; delete(c, "sub") }, nil),
	}
	if len(tokens) < 110 {
		t.Fatalf("only %d tokens", len(tokens))
	}
	strict := newTestVerifier(t, is, func(c *Config) { c.RequireATJWT = true; c.ClockSkew = Off })
	for name, tok := range tokens {
		t.Run(name, func(t *testing.T) {
			sameVerdict(t, v, tok)
			sameVerdict(t, strict, tok)
		})
	}

	// The controls must pass, or the comparison above proves little.
	for _, name := range []string{"valid RS256", "valid PS256", "valid ES256", "valid EdDSA", "no kid, one key", "escaped key", "payload in spaces"} {
		if _, err := v.verify(context.Background(), tokens[name]); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestVerifyHMACMatchesParser compares verify with golang-jwt's parser for
// a verifier with an HMAC secret.
func TestVerifyHMACMatchesParser(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	is := authtest.NewIssuer(t, authtest.WithHS256(secret))
	v := newTestVerifier(t, is, func(c *Config) { c.HMACSecret = secret })
	claims := is.Claims("alice")
	claims["iat"], claims["nbf"], claims["exp"] = testNow.Unix(), testNow.Unix(), testNow.Add(time.Minute).Unix()
	hs := func(m jwt.SigningMethod, key []byte, h map[string]any) string {
		tok := jwt.NewWithClaims(m, claims)
		for k, val := range h {
			tok.Header[k] = val
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, tok := range map[string]string{
		"valid":          hs(jwt.SigningMethodHS256, secret, nil),
		"valid with kid": hs(jwt.SigningMethodHS256, secret, map[string]any{"kid": "any"}),
		"other secret":   hs(jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), nil),
		"HS512":          hs(jwt.SigningMethodHS512, secret, nil),
		"jku":            hs(jwt.SigningMethodHS256, secret, map[string]any{"jku": "https://evil.example"}),
		"RS256":          authtest.NewIssuer(t).Token(t, "alice", nil),
	} {
		t.Run(name, func(t *testing.T) { sameVerdict(t, v, tok) })
	}
	if _, err := v.verify(context.Background(), hs(jwt.SigningMethodHS256, secret, nil)); err != nil {
		t.Fatalf("valid HS256 token refused: %v", err)
	}
}

// mustMarshal is v as JSON.
func mustMarshal(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// TestSignedHeaders: a header is remembered once a trusted key has signed
// a token with it, never before, and no more than maxSignedHeaders of them;
// a token whose header is remembered gets the same verdicts.
func TestSignedHeaders(t *testing.T) {
	is := authtest.NewIssuer(t)
	v := newTestVerifier(t, is, func(c *Config) { c.Now = time.Now })
	ctx := context.Background()
	good := is.Sign(t, "EdDSA", is.Claims("alice"), nil)
	parts := strings.Split(good, ".")
	forged := parts[0] + "." + parts[1] + "." + flipChar(parts[2])
	if _, err := v.verify(ctx, forged); Reason(err) != ReasonSignature {
		t.Fatalf("forged: %v", err)
	}
	if _, seen := v.headers.get(parts[0]); seen || v.headers.n.Load() != 0 {
		t.Fatal("the header of a forged token was remembered")
	}
	for range 2 {
		if _, err := v.verify(ctx, good); err != nil {
			t.Fatal(err)
		}
	}
	if _, seen := v.headers.get(parts[0]); !seen || v.headers.n.Load() != 1 {
		t.Fatalf("signed header not remembered once: %d", v.headers.n.Load())
	}
	// Now from memory: the forged token is still refused for its
	// signature, an expired one with the same header for exp.
	if _, err := v.verify(ctx, forged); Reason(err) != ReasonSignature {
		t.Fatalf("forged, header remembered: %v", err)
	}
	c := is.Claims("alice")
	c["exp"] = 1
	expired := is.Sign(t, "EdDSA", c, nil)
	if !strings.HasPrefix(expired, parts[0]+".") {
		t.Fatal("test tokens differ in header")
	}
	sameVerdict(t, v, expired)
	if _, err := v.verify(ctx, expired); Reason(err) != ReasonExpired {
		t.Fatalf("expired, header remembered: %v", err)
	}
	for i := range maxSignedHeaders + 10 {
		v.headers.add(fmt.Sprintf("h%d", i), map[string]any{})
	}
	if n := v.headers.n.Load(); n != maxSignedHeaders {
		t.Fatalf("%d headers remembered, want at most %d", n, maxSignedHeaders)
	}
}

// TestVerifyConcurrent verifies tokens of one header from many goroutines
// at once, so that the race detector sees the shared header maps (and
// keyfunc, which reads them) used concurrently.
func TestVerifyConcurrent(t *testing.T) {
	is := authtest.NewIssuer(t)
	v := newTestVerifier(t, is, func(c *Config) { c.Now = time.Now })
	var tokens []string
	for _, alg := range []string{"ES256", "EdDSA"} {
		for range 4 {
			tokens = append(tokens, is.Sign(t, alg, is.Claims("alice"), nil))
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8*len(tokens))
	for g := range 8 {
		wg.Go(func() {
			for i := range tokens {
				if _, err := v.verify(context.Background(), tokens[(i+g)%len(tokens)]); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// flipChar changes the sixth character of s to another base64url one.
func flipChar(s string) string {
	b := []byte(s)
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	return string(b)
}

// nonCanonical returns the last character of s, a base64url segment whose
// length leaves unused bits, with one of those bits set: the same bytes in
// a second spelling, which strict decoding refuses.
func nonCanonical(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return string(alphabet[strings.IndexByte(alphabet, s[len(s)-1])|1])
}

// BenchmarkVerify is verify alone, without the Authenticator around it
// (extraction, hashing, the cache), with the tokens of BenchmarkCacheMiss:
// compared with BenchmarkBareParseKeyfunc it measures the parser, and with
// BenchmarkCacheMiss what the rest of a cache miss costs.
func BenchmarkVerify(b *testing.B) {
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			is := authtest.NewIssuer(b)
			v := newTestVerifier(b, is, func(c *Config) { c.Now = time.Now })
			pool := make([]string, 512)
			for i := range pool {
				pool[i] = is.Sign(b, alg, is.Claims("alice"), nil)
			}
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := v.verify(ctx, pool[i%len(pool)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkVerifyVsKeyfunc times verify and golang-jwt + keyfunc v3 with
// the same checks (as BenchmarkBareParseKeyfunc) in turn, in one loop, so
// that a loaded machine slows both alike, and reports each one's median
// time and their ratio: the parser's cost without the Authenticator's
// (the hash, the cache, the context).
func BenchmarkVerifyVsKeyfunc(b *testing.B) {
	for _, alg := range []string{"RS256", "PS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			is := authtest.NewIssuer(b)
			v := newTestVerifier(b, is, func(c *Config) { c.Now = time.Now })
			pool := make([]string, 512)
			for i := range pool {
				pool[i] = is.Sign(b, alg, is.Claims("alice"), nil)
			}
			kf, err := keyfunc.NewJWKSetJSON(is.JWKS())
			if err != nil {
				b.Fatal(err)
			}
			parser := jwt.NewParser(
				jwt.WithValidMethods([]string{alg}),
				jwt.WithIssuer(is.URL),
				jwt.WithAudience(authtest.Audience),
				jwt.WithExpirationRequired(),
				jwt.WithIssuedAt(),
				jwt.WithLeeway(DefaultClockSkew),
				jwt.WithStrictDecoding(),
			)
			ctx := context.Background()
			var mine, theirs []time.Duration
			i := 0
			for b.Loop() {
				// Each goes first in turn, and each parses its own token.
				for k := range 2 {
					start := time.Now()
					if (i+k)%2 == 0 {
						if _, err := v.verify(ctx, pool[i%len(pool)]); err != nil {
							b.Fatal(err)
						}
						mine = append(mine, time.Since(start))
					} else {
						if _, err := parser.Parse(pool[(i+100)%len(pool)], kf.Keyfunc); err != nil {
							b.Fatal(err)
						}
						theirs = append(theirs, time.Since(start))
					}
				}
				i++
			}
			slices.Sort(mine)
			slices.Sort(theirs)
			m, t := float64(mine[len(mine)/2]), float64(theirs[len(theirs)/2])
			b.ReportMetric(m, "verify-ns")
			b.ReportMetric(t, "keyfunc-ns")
			b.ReportMetric(m/t, "verify/keyfunc")
		})
	}
}

// BenchmarkDecodeObject compares decodeObject with json.Unmarshal into a
// map[string]any, on the payload of a typical access token.
func BenchmarkDecodeObject(b *testing.B) {
	is := authtest.NewIssuer(b)
	payload := []byte(mustMarshal(is.Claims("alice")))
	b.Run("interface", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodeObject(payload); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m map[string]any
			if err := json.Unmarshal(payload, &m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

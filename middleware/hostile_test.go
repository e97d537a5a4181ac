package middleware_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestHostileTokens sends tokens an attacker, a broken server or a bad clock
// would produce, and checks the status and RFC 6750 error code of each.
func TestHostileTokens(t *testing.T) {
	is := authtest.NewIssuer(t)
	stranger := authtest.NewIssuer(t) // same kids, other keys
	// A 1024-bit RSA key published in the set: too weak to trust.
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	weakKey := &authtest.Key{KID: "weak", Alg: "RS256", Private: weak}
	is.AddRawJWK(mustJSON(t, authtest.PublicJWK(weakKey)))
	// A symmetric key wrongly published in the set.
	octSecret := []byte("0123456789abcdef0123456789abcdef")
	is.AddRawJWK(`{"kty":"oct","kid":"oct","alg":"HS256","k":"` + base64.RawURLEncoding.EncodeToString(octSecret) + `"}`)
	a := mustAuthenticator(t, is, nil)
	// The same attacks on an Authenticator that trusts the stranger too:
	// it signs its own tokens with the same kids, so "stranger's key,
	// same kid" tests that keys stay bound to their issuer.
	both := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Issuer = ""
		c.Issuers = []middleware.IssuerConfig{{Issuer: is.URL}, {Issuer: stranger.URL}}
	})

	rsaKey := is.KeyFor("RS256")
	pubDER, err := x509.MarshalPKIXPublicKey(rsaKey.Private.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	now := time.Now()
	valid := func() jwt.MapClaims { return is.Claims("alice") }
	with := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := valid()
		edit(c)
		return c
	}
	sign := func(alg string, c jwt.MapClaims, h map[string]any) string { return is.Sign(t, alg, c, h) }
	hs256 := func(secret []byte, c jwt.MapClaims, h map[string]any) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		tok.Header["kid"] = rsaKey.KID
		for k, v := range h {
			tok.Header[k] = v
		}
		s, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := sign("RS256", valid(), nil)
	parts := strings.Split(good, ".")
	header := map[string]any{"alg": "RS256", "kid": rsaKey.KID, "typ": "at+jwt"}
	payload := func(edit func(jwt.MapClaims)) jwt.MapClaims { return with(edit) }

	const (
		ok     = ""
		invTok = "invalid_token"
		invReq = "invalid_request"
	)
	tests := []struct {
		name   string
		token  string
		status int
		code   string
	}{
		// Controls: what must pass.
		{"valid RS256", good, 200, ok},
		{"valid PS256", sign("PS256", valid(), nil), 200, ok},
		{"valid ES256", sign("ES256", valid(), nil), 200, ok},
		{"valid EdDSA", sign("EdDSA", valid(), nil), 200, ok},
		{"valid typ JWT", sign("RS256", valid(), map[string]any{"typ": "JWT"}), 200, ok},
		{"valid without typ", sign("RS256", valid(), map[string]any{"typ": nil}), 200, ok},
		{"valid aud array", sign("RS256", with(func(c jwt.MapClaims) { c["aud"] = []string{"other", authtest.Audience} }), nil), 200, ok},
		{"expired within skew", sign("RS256", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-30 * time.Second).Unix() }), nil), 200, ok},
		{"fractional exp", sign("RS256", with(func(c jwt.MapClaims) { c["exp"] = float64(now.Add(time.Minute).Unix()) + 0.5 }), nil), 200, ok},

		// Algorithm attacks.
		{"alg none unsigned", rawJWT(map[string]any{"alg": "none", "typ": "JWT"}, valid(), ""), 401, invTok},
		{"alg None with signature", rawJWT(map[string]any{"alg": "None", "kid": rsaKey.KID}, valid(), parts[2]), 401, invTok},
		{"HS256 keyed with RSA public key PEM", hs256(pubPEM, valid(), nil), 401, invTok},
		{"HS256 keyed with RSA public key DER", hs256(pubDER, valid(), nil), 401, invTok},
		{"HS256 with symmetric key from the JWKS", hs256(octSecret, valid(), map[string]any{"kid": "oct"}), 401, invTok},
		{"alg RS384 not allowed", rawJWT(map[string]any{"alg": "RS384", "kid": rsaKey.KID}, valid(), parts[2]), 401, invTok},
		{"PS256 claimed for RS256 key", rawJWT(map[string]any{"alg": "PS256", "kid": rsaKey.KID}, valid(), parts[2]), 401, invTok},
		{"ES256 claimed for RSA key", rawJWT(map[string]any{"alg": "ES256", "kid": rsaKey.KID}, valid(), parts[2]), 401, invTok},
		{"EdDSA claimed for EC key", rawJWT(map[string]any{"alg": "EdDSA", "kid": is.KeyFor("ES256").KID}, valid(), parts[2]), 401, invTok},
		{"1024-bit RSA key", authtest.SignWith(t, weakKey, valid(), nil), 401, invTok},

		// Signature attacks.
		{"stranger's key, same kid", stranger.Sign(t, "RS256", with(func(c jwt.MapClaims) { c["iss"] = is.URL }), nil), 401, invTok},
		{"stripped signature", parts[0] + "." + parts[1] + ".", 401, invTok},
		{"signature of another token", parts[0] + "." + strings.Split(sign("RS256", payload(func(c jwt.MapClaims) { c["sub"] = "mallory" }), nil), ".")[1] + "." + parts[2], 401, invTok},
		{"payload altered", rawJWT(header, payload(func(c jwt.MapClaims) { c["sub"] = "admin" }), parts[2]), 401, invTok},
		{"kid switched to another RSA key", rawJWT(map[string]any{"alg": "RS256", "kid": is.KeyFor("PS256").KID, "typ": "at+jwt"}, valid(), parts[2]), 401, invTok},
		{"signature flipped bit", parts[0] + "." + parts[1] + "." + flip(parts[2]), 401, invTok},

		// Header attacks.
		{"embedded jwk", sign("RS256", valid(), map[string]any{"jwk": authtest.PublicJWK(rsaKey)}), 401, invTok},
		{"jku to attacker", sign("RS256", valid(), map[string]any{"jku": "https://evil.example/jwks"}), 401, invTok},
		{"x5u to attacker", sign("RS256", valid(), map[string]any{"x5u": "https://evil.example/cert"}), 401, invTok},
		{"x5c chain", sign("RS256", valid(), map[string]any{"x5c": []string{"MIIB"}}), 401, invTok},
		{"crit exp", sign("RS256", valid(), map[string]any{"crit": []string{"exp"}, "exp": 1}), 401, invTok},
		{"crit b64 false", sign("RS256", valid(), map[string]any{"crit": []string{"b64"}, "b64": false}), 401, invTok},
		{"typ dpop+jwt", sign("RS256", valid(), map[string]any{"typ": "dpop+jwt"}), 401, invTok},
		{"typ logout+jwt", sign("RS256", valid(), map[string]any{"typ": "logout+jwt"}), 401, invTok},
		{"typ not a string", sign("RS256", valid(), map[string]any{"typ": 7}), 401, invTok},
		{"kid not a string", sign("RS256", valid(), map[string]any{"kid": 1}), 401, invTok},
		{"kid empty", sign("RS256", valid(), map[string]any{"kid": ""}), 401, invTok},
		{"kid unknown", sign("RS256", valid(), map[string]any{"kid": "nope"}), 401, invTok},
		{"header not JSON", base64.RawURLEncoding.EncodeToString([]byte("{alg")) + "." + parts[1] + "." + parts[2], 401, invTok},
		{"header a JSON array", rawJWT([]string{"RS256"}, valid(), parts[2]), 401, invTok},

		// Issuer and audience.
		{"wrong iss", sign("RS256", with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), nil), 401, invTok},
		{"iss with added trailing slash", sign("RS256", with(func(c jwt.MapClaims) { c["iss"] = is.URL + "/" }), nil), 401, invTok},
		{"iss missing", sign("RS256", with(func(c jwt.MapClaims) { delete(c, "iss") }), nil), 401, invTok},
		{"iss a number", sign("RS256", with(func(c jwt.MapClaims) { c["iss"] = 1 }), nil), 401, invTok},
		{"wrong aud", sign("RS256", with(func(c jwt.MapClaims) { c["aud"] = "other-api" }), nil), 401, invTok},
		{"aud array without ours", sign("RS256", with(func(c jwt.MapClaims) { c["aud"] = []string{"a", "b"} }), nil), 401, invTok},
		{"aud missing", sign("RS256", with(func(c jwt.MapClaims) { delete(c, "aud") }), nil), 401, invTok},
		{"aud a number", sign("RS256", with(func(c jwt.MapClaims) { c["aud"] = 42 }), nil), 401, invTok},
		{"aud array with a number", sign("RS256", with(func(c jwt.MapClaims) { c["aud"] = []any{authtest.Audience, 1} }), nil), 401, invTok},

		// Time claims.
		{"exp missing", sign("RS256", with(func(c jwt.MapClaims) { delete(c, "exp") }), nil), 401, invTok},
		{"exp as string", sign("RS256", with(func(c jwt.MapClaims) { c["exp"] = "4102444800" }), nil), 401, invTok},
		{"exp past skew", sign("RS256", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() }), nil), 401, invTok},
		{"exp negative", sign("RS256", with(func(c jwt.MapClaims) { c["exp"] = -1 }), nil), 401, invTok},
		{"exp absurdly far", sign("RS256", with(func(c jwt.MapClaims) { c["exp"] = 1e300 }), nil), 401, invTok},
		{"exp null", sign("RS256", with(func(c jwt.MapClaims) { c["exp"] = nil }), nil), 401, invTok},
		{"nbf an hour ahead", sign("RS256", with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), nil), 401, invTok},
		{"nbf as string", sign("RS256", with(func(c jwt.MapClaims) { c["nbf"] = "0" }), nil), 401, invTok},
		{"iat an hour ahead", sign("RS256", with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() }), nil), 401, invTok},
		{"iat as bool", sign("RS256", with(func(c jwt.MapClaims) { c["iat"] = true }), nil), 401, invTok},

		// Subject.
		{"sub missing", sign("RS256", with(func(c jwt.MapClaims) { delete(c, "sub") }), nil), 401, invTok},
		{"sub empty", sign("RS256", with(func(c jwt.MapClaims) { c["sub"] = "" }), nil), 401, invTok},
		{"sub a number", sign("RS256", with(func(c jwt.MapClaims) { c["sub"] = 7 }), nil), 401, invTok},

		// Sender-constrained tokens (RFC 7800 cnf): bound to a key this
		// server does not check, so not replayable here as bearer tokens.
		{"cnf with DPoP jkt", sign("RS256", with(func(c jwt.MapClaims) {
			c["cnf"] = map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
		}), nil), 401, invTok},
		{"cnf with mTLS x5t#S256", sign("RS256", with(func(c jwt.MapClaims) {
			c["cnf"] = map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}
		}), nil), 401, invTok},
		{"cnf with a jwk", sign("RS256", with(func(c jwt.MapClaims) { c["cnf"] = map[string]any{"jwk": authtest.PublicJWK(rsaKey)} }), nil), 401, invTok},
		{"cnf empty object", sign("RS256", with(func(c jwt.MapClaims) { c["cnf"] = map[string]any{} }), nil), 401, invTok},
		{"cnf a string", sign("RS256", with(func(c jwt.MapClaims) { c["cnf"] = "jkt" }), nil), 401, invTok},
		{"cnf an array", sign("RS256", with(func(c jwt.MapClaims) { c["cnf"] = []any{map[string]any{"jkt": "x"}} }), nil), 401, invTok},
		{"cnf null", sign("RS256", with(func(c jwt.MapClaims) { c["cnf"] = nil }), nil), 401, invTok},

		// Structure and encoding.
		{"payload not JSON", rawJWT(header, "not json", parts[2]), 401, invTok},
		{"payload a JSON array", rawJWT(header, "[1,2]", parts[2]), 401, invTok},
		{"payload JSON null", rawJWT(header, "null", parts[2]), 401, invTok},
		{"signed payload JSON null", signRaw(t, rsaKey, "null"), 401, invTok},
		{"signed payload empty object", signRaw(t, rsaKey, "{}"), 401, invTok},
		{"signed payload with trailing data", signRaw(t, rsaKey, rawJSON(valid())+"{}"), 401, invTok},
		{"two segments", parts[0] + "." + parts[1], 401, invTok},
		{"four segments", good + ".x", 401, invTok},
		{"five segments like JWE", "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d", 401, invTok},
		{"only dots", "..", 401, invTok},
		{"opaque string", "2YotnFZFEjr1zCsicMWpAA", 401, invTok},
		{"base64 padding inside", parts[0] + "=." + parts[1] + "." + parts[2], 400, invReq},
		{"standard base64 alphabet", strings.ReplaceAll(parts[0], "J", "+") + "/." + parts[1] + "." + parts[2], 401, invTok},
		{"oversized token", parts[0] + "." + strings.Repeat("A", 20<<10) + "." + parts[2], 401, invTok},
		{"space inside", parts[0] + ". " + parts[1] + "." + parts[2], 400, invReq},
		{"non-ASCII", parts[0] + "é." + parts[1] + "." + parts[2], 400, invReq},
		{"control character", parts[0] + "\x01." + parts[1] + "." + parts[2], 400, invReq},
	}
	if n := len(tests); n < 60 {
		t.Fatalf("only %d cases", n)
	}
	// reasons pins the reason code of the cases that have one of their own.
	reasons := map[string]string{
		"cnf with DPoP jkt":      middleware.ReasonBoundToken,
		"cnf with mTLS x5t#S256": middleware.ReasonBoundToken,
		"cnf with a jwk":         middleware.ReasonBoundToken,
		"cnf empty object":       middleware.ReasonBoundToken,
		"cnf a string":           middleware.ReasonBoundToken,
		"cnf an array":           middleware.ReasonBoundToken,
		"cnf null":               middleware.ReasonBoundToken,
	}
	for _, tt := range tests {
		for _, auth := range []struct {
			name string
			a    *middleware.Authenticator
		}{{"one issuer", a}, {"two issuers", both}} {
			t.Run(tt.name+"/"+auth.name, func(t *testing.T) {
				hostileCase(t, auth.a, tt.token, tt.status, tt.code, reasons[tt.name], "alice")
			})
		}
	}
}

// hostileCase sends token to a and checks the answer: the status, the
// RFC 6750 error code and, when wantReason is set, the reason; for an
// accepted token, its subject.
func hostileCase(t *testing.T, a *middleware.Authenticator, token string, status int, code, wantReason, wantSub string) {
	t.Helper()
	w := do(a, bearerRequest(token))
	if w.Code != status {
		t.Fatalf("status = %d, want %d (body %s)", w.Code, status, w.Body)
	}
	if status == http.StatusOK {
		if sub := w.Body.String(); sub != wantSub {
			t.Fatalf("subject = %q", sub)
		}
		return
	}
	challenge := w.Header().Get("WWW-Authenticate")
	if got := errorCode(challenge); got != code {
		t.Fatalf("error code = %q, want %q (challenge %q)", got, code, challenge)
	}
	p := problem(t, w)
	t.Logf("reason=%v detail=%v", p["reason"], p["detail"])
	if wantReason != "" && p["reason"] != wantReason {
		t.Fatalf("reason = %v, want %s", p["reason"], wantReason)
	}
	if d, _ := p["detail"].(string); d == "" || strings.Contains(w.Body.String(), token[:min(len(token), 20)]) {
		t.Fatalf("problem detail %q echoes the token or is empty", d)
	}
}

func flip(s string) string {
	b := []byte(s)
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	return string(b)
}

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	return rawJSON(v)
}

// TestSkewAndATJWT checks the settings that change what is accepted.
func TestSkewAndATJWT(t *testing.T) {
	is := authtest.NewIssuer(t)
	expired := is.Token(t, "alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-30 * time.Second).Unix() })
	noSkew := mustAuthenticator(t, is, func(c *middleware.Config) { c.ClockSkew = -1 })
	if w := do(noSkew, bearerRequest(expired)); w.Code != 401 || errorCode(w.Header().Get("WWW-Authenticate")) != "invalid_token" {
		t.Fatalf("expired token without skew: %d", w.Code)
	}
	strict := mustAuthenticator(t, is, func(c *middleware.Config) { c.RequireATJWT = true })
	for _, tc := range []struct {
		typ  any
		want int
	}{{"at+jwt", 200}, {"application/AT+JWT", 200}, {"JWT", 401}, {nil, 401}} {
		tok := is.Sign(t, "RS256", is.Claims("alice"), map[string]any{"typ": tc.typ})
		if w := do(strict, bearerRequest(tok)); w.Code != tc.want {
			t.Errorf("typ %v with RequireATJWT: %d, want %d", tc.typ, w.Code, tc.want)
		}
	}
}

// signRaw signs an arbitrary payload with k, as a broken server might.
func signRaw(tb testing.TB, k *authtest.Key, payload string) string {
	tb.Helper()
	signing := base64.RawURLEncoding.EncodeToString([]byte(rawJSON(map[string]any{"alg": k.Alg, "kid": k.KID}))) + "." +
		base64.RawURLEncoding.EncodeToString([]byte(payload))
	sig, err := jwt.GetSigningMethod(k.Alg).Sign(signing, k.Private)
	if err != nil {
		tb.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

package conformance

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// TestVerifier: the JWT access-token verifier cases (RFC 9068, RFC 8725,
// RFC 8707, RFC 6750 challenges), against the middleware in JWT mode with
// the strict RFC 9068 profile (typ at+jwt, kid and every claim of RFC 9068
// §2.2 required) and the realm set, as the catalog's verifier profile
// asks.
func TestVerifier(t *testing.T) {
	is := newIssuer(t)
	strict := func(c *middleware.Config) { c.Profile = middleware.ProfileRFC9068 }
	a := newAuthenticator(t, is, strict)

	runCase(t, "rfc9068-valid-at-jwt-must-verify", func(t *testing.T) {
		got := send(t, a, bearer(token(t, is, nil, nil)))
		mustAccept(t, got)
		if got.principal.Subject != "user-123" || got.principal.Claims["iss"] != fixtureIssuer {
			t.Errorf("principal %q from %v, want user-123 from %s", got.principal.Subject, got.principal.Claims["iss"], fixtureIssuer)
		}
	})

	runCase(t, "rfc9068-typ-must-be-at-jwt", func(t *testing.T) {
		for _, typ := range []any{"JWT", "jwt", "application/jwt", nil} {
			got := send(t, a, bearer(token(t, is, nil, map[string]any{"typ": typ})))
			mustReject(t, got, middleware.ReasonBadHeader, "Bearer", "invalid_token")
		}
		// The media type's full form and any case are the same type.
		for _, typ := range []string{"application/at+jwt", "AT+JWT"} {
			mustAccept(t, send(t, a, bearer(token(t, is, nil, map[string]any{"typ": typ}))))
		}
	}, noted("Profile rfc9068 set, as the catalog's verifier profile demands (RequireATJWT alone does the same); Tollgate's default also accepts typ JWT or none, which many servers send"))

	runCase(t, "rfc9068-issuer-must-match", func(t *testing.T) {
		for _, iss := range []string{"https://evil.example.com", fixtureIssuer + "/", "HTTPS://AUTH.EXAMPLE.COM"} {
			got := send(t, a, bearer(token(t, is, func(c jwt.MapClaims) { c["iss"] = iss }, nil)))
			mustReject(t, got, middleware.ReasonIssuer, "Bearer", "invalid_token")
		}
	})

	runCase(t, "rfc9068-audience-must-match-resource", func(t *testing.T) {
		for _, aud := range []any{"https://other.example.com", []string{"https://other.example.com"}, fixtureResource + "/"} {
			got := send(t, a, bearer(token(t, is, func(c jwt.MapClaims) { c["aud"] = aud }, nil)))
			mustReject(t, got, middleware.ReasonAudience, "Bearer", "invalid_token")
		}
	})

	runCase(t, "rfc9068-required-claims-must-be-enforced", func(t *testing.T) {
		// One permutation per claim: the complete token without it.
		for _, name := range []string{"iss", "exp", "aud", "sub", "client_id", "iat", "jti"} {
			t.Run(name, func(t *testing.T) {
				got := send(t, a, bearer(token(t, is, func(c jwt.MapClaims) { delete(c, name) }, nil)))
				mustReject(t, got, middleware.ReasonMissingClaim, "Bearer", "invalid_token")
				if !strings.Contains(got.challenge, "required claim "+name) {
					t.Errorf("WWW-Authenticate %q does not name %s", got.challenge, name)
				}
			})
		}
		// Present but of no use: client_id and jti must be non-empty strings.
		for name, v := range map[string]any{"client_id": 42, "jti": ""} {
			got := send(t, a, bearer(token(t, is, func(c jwt.MapClaims) { c[name] = v }, nil)))
			mustReject(t, got, middleware.ReasonMissingClaim, "Bearer", "invalid_token")
		}
		// What the note says of the default.
		def := newAuthenticator(t, is, nil)
		for _, name := range []string{"client_id", "iat", "jti"} {
			mustAccept(t, send(t, def, bearer(token(t, is, func(c jwt.MapClaims) { delete(c, name) }, nil))))
		}
	}, noted("run under Profile rfc9068; Tollgate's default (ProfileInteroperable) accepts tokens without client_id, jti or iat, which real servers omit"))

	runCase(t, "rfc9068-token-header-must-contain-kid", func(t *testing.T) {
		// The issuer has one ES256 key: without the profile the token
		// would verify.
		got := send(t, a, bearer(token(t, is, nil, map[string]any{"kid": nil})))
		mustReject(t, got, middleware.ReasonBadHeader, "Bearer", "invalid_token")
		if !strings.Contains(got.challenge, "kid") {
			t.Errorf("WWW-Authenticate %q does not name kid", got.challenge)
		}
		// What the note says of the default.
		mustAccept(t, send(t, newAuthenticator(t, is, nil), bearer(token(t, is, nil, map[string]any{"kid": nil}))))
	}, noted("run under Profile rfc9068; Tollgate's default (ProfileInteroperable) accepts a token without kid when exactly one key of the JWKS fits its alg (RFC 7515 makes kid optional)"))

	runCase(t, "rfc9068-iat-future-must-be-rejected-beyond-leeway", func(t *testing.T) {
		skew := a.ClockSkew()
		far := token(t, is, func(c jwt.MapClaims) { c["iat"] = time.Now().Add(skew + time.Minute).Unix() }, nil)
		mustReject(t, send(t, a, bearer(far)), middleware.ReasonIssuedInFuture, "Bearer", "invalid_token")
		near := token(t, is, func(c jwt.MapClaims) { c["iat"] = time.Now().Add(skew / 2).Unix() }, nil)
		mustAccept(t, send(t, a, bearer(near)))
	})

	runCase(t, "rfc9068-nbf-must-be-honored-when-present", func(t *testing.T) {
		later := token(t, is, func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(a.ClockSkew() + time.Minute).Unix() }, nil)
		mustReject(t, send(t, a, bearer(later)), middleware.ReasonNotYetValid, "Bearer", "invalid_token")
		past := token(t, is, func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(-time.Minute).Unix() }, nil)
		mustAccept(t, send(t, a, bearer(past)))
	})

	runCase(t, "rfc8725-allowed-jwt-algorithms-must-be-restricted", func(t *testing.T) {
		// At construction: neither none nor HS256 may be allowed for keys
		// from a JWKS.
		for _, alg := range []string{"none", "HS256"} {
			cfg := baseConfig(is)
			cfg.Algorithms = []string{alg}
			if _, err := middleware.New(t.Context(), cfg); err == nil {
				t.Errorf("New accepted Algorithms [%s]", alg)
			}
		}
		// At verification: a token signed with none or HS256 is refused.
		c := claims(is, nil)
		none, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		hs := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
		hs.Header["typ"] = "at+jwt"
		hs.Header["kid"] = is.KeyFor("ES256").KID
		hmac, err := hs.SignedString([]byte(strings.Repeat("k", 32)))
		if err != nil {
			t.Fatal(err)
		}
		for name, tok := range map[string]string{"none": none, "HS256": hmac} {
			got := send(t, a, bearer(tok))
			if got.status != http.StatusUnauthorized || got.reason != middleware.ReasonAlgorithm {
				t.Errorf("%s: %d %s, want 401 %s", name, got.status, got.reason, middleware.ReasonAlgorithm)
			}
		}
	}, partial("Config.HMACSecret deliberately enables HS256 (only) for servers that sign with a shared secret; with a JWKS, none and HS256 are refused at New and at verification"))

	runCase(t, "rfc8725-kid-must-resolve-through-jwks-with-single-refresh-on-miss", func(t *testing.T) {
		is := newIssuer(t)
		a := newAuthenticator(t, is, func(c *middleware.Config) {
			c.Profile = middleware.ProfileRFC9068
			// The catalog's scenario has one miss after another; the
			// default 10s rate limit would answer the second without a
			// fetch.
			c.JWKSMinRefreshInterval = time.Millisecond
		})
		// A key the verifier has not seen: one fetch, then accepted.
		k := is.AddKey(t, "ES256")
		before := is.JWKSFetches()
		mustAccept(t, send(t, a, bearer(authtest.SignWith(t, k, claims(is, nil), nil))))
		if n := is.JWKSFetches() - before; n != 1 {
			t.Errorf("%d JWKS fetches for a new kid, want 1", n)
		}
		// A kid the JWKS never has: one fetch, then refused.
		time.Sleep(5 * time.Millisecond)
		ghost := &authtest.Key{KID: "never-published", Alg: "ES256", Private: k.Private}
		before = is.JWKSFetches()
		mustReject(t, send(t, a, bearer(authtest.SignWith(t, ghost, claims(is, nil), nil))), middleware.ReasonUnknownKey, "Bearer", "invalid_token")
		if n := is.JWKSFetches() - before; n != 1 {
			t.Errorf("%d JWKS fetches for an unknown kid, want 1", n)
		}
	})

	runCase(t, "rfc8725-jwk-selection-must-honor-use-key-ops-and-alg", func(t *testing.T) {
		// Each key k1 alone: the one for encryption, the one for RS256 and
		// the one whose key_ops leaves out "verify" must not verify an
		// ES256 token.
		for _, extra := range []map[string]any{{"use": "enc"}, {"alg": "RS256"}, {"key_ops": []string{"sign"}}} {
			is := newIssuer(t)
			priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			jwk := ecJWK(t, &priv.PublicKey, "k1")
			for name, v := range extra {
				jwk[name] = v
			}
			raw, _ := json.Marshal(jwk)
			is.AddRawJWK(string(raw))
			a := newAuthenticator(t, is, strict)
			tok := authtest.SignWith(t, &authtest.Key{KID: "k1", Alg: "ES256", Private: priv}, claims(is, nil), nil)
			got := send(t, a, bearer(tok))
			if got.status != http.StatusUnauthorized || (got.reason != middleware.ReasonUnknownKey && got.reason != middleware.ReasonAlgorithm) {
				t.Errorf("key k1 with %v verified ES256: %d %s, want 401", extra, got.status, got.reason)
			}
		}
	})

	runCase(t, "rfc8707-verifier-must-accept-resource-when-present-in-aud-array", func(t *testing.T) {
		tok := token(t, is, func(c jwt.MapClaims) { c["aud"] = []string{"https://other.example.com", fixtureResource} }, nil)
		mustAccept(t, send(t, a, bearer(tok)))
	})

	runCase(t, "rfc9068-token-header-must-contain-alg", func(t *testing.T) {
		// Signed for real with RS256, then sent with a header that names
		// no algorithm.
		k := is.KeyFor("RS256")
		header := b64json(t, map[string]any{"typ": "at+jwt", "kid": k.KID})
		input := header + "." + b64json(t, claims(is, nil))
		sig, err := jwt.SigningMethodRS256.Sign(input, k.Private.(*rsa.PrivateKey))
		if err != nil {
			t.Fatal(err)
		}
		got := send(t, a, bearer(input+"."+base64.RawURLEncoding.EncodeToString(sig)))
		if got.status != http.StatusUnauthorized || challengeError(got.challenge, "Bearer") != "invalid_token" {
			t.Fatalf("%d %s %q, want 401 invalid_token", got.status, got.reason, got.challenge)
		}
		if got.reason != middleware.ReasonAlgorithm && got.reason != middleware.ReasonBadHeader && got.reason != middleware.ReasonBadToken {
			t.Errorf("reason %s, want one that names the header or the algorithm", got.reason)
		}
	})

	runCase(t, "rfc9068-signature-failure-must-reject-token", func(t *testing.T) {
		good := token(t, is, nil, nil)
		other := token(t, is, func(c jwt.MapClaims) { c["sub"] = "mallory" }, nil)
		gp, op := strings.Split(good, "."), strings.Split(other, ".")
		// other's claims under good's signature.
		mustReject(t, send(t, a, bearer(gp[0]+"."+op[1]+"."+gp[2])), middleware.ReasonSignature, "Bearer", "invalid_token")
	})

	runCase(t, "rfc9068-expiration-and-clock-skew-must-be-enforced", func(t *testing.T) {
		now := time.Now()
		a := newAuthenticator(t, is, func(c *middleware.Config) {
			c.Profile = middleware.ProfileRFC9068
			c.ClockSkew = 30 * time.Second
			c.Now = func() time.Time { return now }
		})
		at := func(exp, nbf time.Duration) string {
			return token(t, is, func(c jwt.MapClaims) {
				c["iat"] = now.Add(-time.Hour).Unix()
				c["exp"] = now.Add(exp).Unix()
				c["nbf"] = now.Add(nbf).Unix()
			}, nil)
		}
		mustReject(t, send(t, a, bearer(at(-45*time.Second, -time.Hour))), middleware.ReasonExpired, "Bearer", "invalid_token")
		mustAccept(t, send(t, a, bearer(at(-15*time.Second, -time.Hour))))
		mustReject(t, send(t, a, bearer(at(time.Hour, 45*time.Second))), middleware.ReasonNotYetValid, "Bearer", "invalid_token")
		mustAccept(t, send(t, a, bearer(at(time.Hour, 15*time.Second))))
	}, noted("ClockSkew set to the catalog's 30s; Tollgate's default is 60s"))

	// The AuthPlane typed fields: Tollgate's typed view of any claim is
	// principal.DecodeClaims into the caller's own struct, exact numbers
	// included; an absent claim leaves the field's zero value.
	type agentClaims struct {
		AgentID    string   `json:"agent_id"`
		AgentChain []string `json:"agent_chain"`
		NotBefore  int64    `json:"nbf"`
	}
	typed := func(t *testing.T, edit func(jwt.MapClaims)) agentClaims {
		t.Helper()
		got := send(t, a, bearer(token(t, is, edit, nil)))
		mustAccept(t, got)
		var c agentClaims
		if err := principal.DecodeClaims(got.principal, &c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	viaDecode := partial("typed through principal.DecodeClaims into the caller's struct (an AuthPlane extension claim; Principal has no built-in field for it)")

	runCase(t, "authplane-agent-id-must-be-exposed-as-first-class-field", func(t *testing.T) {
		if c := typed(t, func(c jwt.MapClaims) { c["agent_id"] = "research-agent" }); c.AgentID != "research-agent" {
			t.Errorf("agent_id %q", c.AgentID)
		}
		if c := typed(t, nil); c.AgentID != "" {
			t.Errorf("absent agent_id: %q, want empty", c.AgentID)
		}
	}, viaDecode)

	runCase(t, "authplane-agent-chain-must-be-exposed-as-first-class-field", func(t *testing.T) {
		chain := []string{"orchestrator", "research-agent", "summarizer"}
		if c := typed(t, func(c jwt.MapClaims) { c["agent_chain"] = chain }); !slices.Equal(c.AgentChain, chain) {
			t.Errorf("agent_chain %q, want %q", c.AgentChain, chain)
		}
		if c := typed(t, nil); len(c.AgentChain) != 0 {
			t.Errorf("absent agent_chain: %q, want empty", c.AgentChain)
		}
	}, viaDecode)

	runCase(t, "authplane-nbf-must-be-exposed-as-typed-field-on-verified-claims", func(t *testing.T) {
		nbf := time.Now().Add(-time.Minute).Unix()
		if c := typed(t, func(c jwt.MapClaims) { c["nbf"] = nbf }); c.NotBefore != nbf {
			t.Errorf("nbf %d, want %d", c.NotBefore, nbf)
		}
		if c := typed(t, func(c jwt.MapClaims) { delete(c, "nbf") }); c.NotBefore != 0 {
			t.Errorf("absent nbf: %d, want 0", c.NotBefore)
		}
	}, partial("typed through principal.DecodeClaims (exact integers); Principal has ExpiresAt but no built-in not-before field"))

	runCase(t, "rfc6750-error-response-realm-should-be-included", func(t *testing.T) {
		a := newAuthenticator(t, is, func(c *middleware.Config) { c.Profile = middleware.ProfileRFC9068; c.DPoP = middleware.DPoPAllowed })
		realm := `realm="` + fixtureResource + `"`
		expired := send(t, a, bearer(token(t, is, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }, nil)))
		if expired.status != http.StatusUnauthorized || !strings.HasPrefix(expired.challenge, "Bearer "+realm) {
			t.Errorf("expired token: %d %q, want a Bearer challenge with %s", expired.status, expired.challenge, realm)
		}
		k := authtest.NewDPoPKey(t, "ES256")
		tok := token(t, is, boundTo(k), nil)
		bad := send(t, a, request("GET", "/resource", "DPoP", tok, k.Proof(t, "POST", fixtureURL, tok)))
		if bad.status != http.StatusUnauthorized || !strings.HasPrefix(bad.challenge, "DPoP "+realm) {
			t.Errorf("bad proof: %d %q, want a DPoP challenge with %s", bad.status, bad.challenge, realm)
		}
	})

	runCase(t, "rfc6750-error-response-must-map-error-codes", func(t *testing.T) {
		a := newAuthenticator(t, is, func(c *middleware.Config) { c.Profile = middleware.ProfileRFC9068; c.DPoP = middleware.DPoPAllowed })
		k := authtest.NewDPoPKey(t, "ES256")
		other := authtest.NewDPoPKey(t, "ES256")
		bound := token(t, is, boundTo(k), nil)
		good := token(t, is, nil, nil)
		gp, op := strings.Split(good, "."), strings.Split(token(t, is, func(c jwt.MapClaims) { c["sub"] = "x" }, nil), ".")
		check := func(name string, got answer, scheme, code string) {
			t.Helper()
			i := strings.Index(got.challenge, scheme+" ")
			if got.status/100 != 4 || challengeError(got.challenge, scheme) != code || i < 0 ||
				!strings.Contains(got.challenge[i:], `error="`+code+`", error_description="`) {
				t.Errorf("%s: %d %q, want %s error=%q with an error_description", name, got.status, got.challenge, scheme, code)
			}
		}
		check("expired token", send(t, a, bearer(token(t, is, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }, nil))), "Bearer", "invalid_token")
		check("invalid signature", send(t, a, bearer(gp[0]+"."+op[1]+"."+gp[2])), "Bearer", "invalid_token")
		w := newRecorder()
		r := bearer(good)
		a.Require(a.RequireScopes("admin:everything")(okHandler)).ServeHTTP(w, r)
		check("insufficient scope", answer{status: w.Code, challenge: w.Header().Get("WWW-Authenticate")}, "Bearer", "insufficient_scope")
		// A DPoP failure that is about the token (its key binding) is
		// invalid_token on the DPoP challenge; several DPoP headers are an
		// invalid proof.
		check("DPoP binding", send(t, a, request("GET", "/resource", "DPoP", bound, other.Proof(t, "GET", fixtureURL, bound))), "DPoP", "invalid_token")
		p := k.Proof(t, "GET", fixtureURL, bound)
		check("several DPoP headers", send(t, a, request("GET", "/resource", "DPoP", bound, p, p)), "DPoP", "invalid_dpop_proof")
		// DPoP-bound token where DPoP is not supported: Bearer invalid_token.
		off := newAuthenticator(t, is, strict)
		check("DPoP not supported", send(t, off, bearer(bound)), "Bearer", "invalid_token")
	}, partial("the catalog's generic dpop_error row is checked with a key-binding failure (DPoP invalid_token); other invalid proofs are invalid_dpop_proof in Tollgate, as RFC 9449 §7.1 says"))

	// introspecting is an Authenticator in introspection mode at a fresh
	// issuer's endpoint, found by discovery, without caches.
	introspecting := func(t *testing.T) (*authtest.Issuer, *middleware.Authenticator) {
		t.Helper()
		is := newIssuer(t)
		is.EnableIntrospection()
		md, err := middleware.Discover(t.Context(), nil, is.URL)
		if err != nil {
			t.Fatal(err)
		}
		endpoint, err := md.IntrospectionURL()
		if err != nil {
			t.Fatal(err)
		}
		return is, newAuthenticator(t, is, func(c *middleware.Config) {
			c.Issuer, c.JWKSURL, c.Metadata = is.URL, "", md
			c.Audiences = []string{authtest.Audience}
			c.Mode = middleware.ModeIntrospection
			c.Introspector = &introspection.Client{
				Endpoint: endpoint, ClientID: authtest.IntrospectionClientID, ClientSecret: authtest.IntrospectionClientSecret,
				CacheTTL: -1, InactiveCacheTTL: -1,
			}
		})
	}

	runCase(t, "rfc7662-verifier-active-false-must-reject-token", func(t *testing.T) {
		is, a := introspecting(t)
		tok := is.OpaqueToken("user-123", nil)
		mustAccept(t, send(t, a, bearer(tok)))
		is.Revoke(tok)
		mustReject(t, send(t, a, bearer(tok)), middleware.ReasonInactive, "Bearer", "invalid_token")
	})

	runCase(t, "rfc7662-introspection-fail-open-policy-must-be-explicitly-tested", func(t *testing.T) {
		// Fail closed: a token the endpoint cannot answer for is refused,
		// never let through.
		is, a := introspecting(t)
		tok := is.OpaqueToken("user-123", nil)
		for _, b := range []authtest.Behaviour{authtest.Fail, authtest.Garbage} {
			is.SetIntrospection(b)
			if got := send(t, a, bearer(tok)); got.status != http.StatusServiceUnavailable || got.reason != middleware.ReasonUnavailable {
				t.Errorf("endpoint behaviour %d: %d %s, want 503 %s", b, got.status, got.reason, middleware.ReasonUnavailable)
			}
		}
	}, partial("Tollgate always fails closed (503 when the introspection endpoint fails) and offers no fail-open option to opt into"))
}

// ecJWK is the public JWK of pub with kid.
func ecJWK(t *testing.T, pub *ecdsa.PublicKey, kid string) map[string]any {
	t.Helper()
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"kty": "EC", "crv": "P-256", "kid": kid,
		"x": base64.RawURLEncoding.EncodeToString(raw[1:33]),
		"y": base64.RawURLEncoding.EncodeToString(raw[33:]),
	}
}

// b64json is v as base64url-encoded JSON, a JWS segment.
func b64json(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(data)
}

package conformance

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// TestDPoPInbound: the resource-server side of RFC 9449, against the
// middleware with DPoP allowed (bearer and DPoP-bound tokens) unless the
// case names another mode. Requests go to /resource of the fixture's
// resource (DPoPBaseURL), whose htu is fixtureURL.
func TestDPoPInbound(t *testing.T) {
	is := newIssuer(t)
	allowed := func(c *middleware.Config) { c.DPoP = middleware.DPoPAllowed }
	a := newAuthenticator(t, is, allowed)
	k := authtest.NewDPoPKey(t, "ES256")
	edit := authtest.WithProofEdit
	// dpop sends tok with the DPoP scheme and the proofs to a.
	dpop := func(t *testing.T, a *middleware.Authenticator, target, tok string, proofs ...string) answer {
		t.Helper()
		return send(t, a, request("GET", target, "DPoP", tok, proofs...))
	}
	// badProof sends a bound token with a proof changed by opts and wants
	// it refused as an invalid proof.
	badProof := func(t *testing.T, opts ...authtest.ProofOption) {
		t.Helper()
		tok := token(t, is, boundTo(k), nil)
		got := dpop(t, a, "/resource", tok, k.Proof(t, "GET", fixtureURL, tok, opts...))
		mustReject(t, got, middleware.ReasonDPoPProof, "DPoP", "invalid_dpop_proof")
	}

	runCase(t, "rfc9449-dpop-proof-header-typ-must-be-dpop-jwt", func(t *testing.T) {
		badProof(t, edit(func(h, _ map[string]any) { h["typ"] = "JWT" }))
	})

	runCase(t, "rfc9449-inbound-dpop-proof-must-validate-method-url-and-binding", func(t *testing.T) {
		tok := token(t, is, boundTo(k), nil)
		got := dpop(t, a, "/resource", tok, k.Proof(t, "GET", fixtureURL, tok))
		mustAccept(t, got)
		if got.principal.Binding != principal.BindingDPoP || got.principal.JKT != k.Thumbprint() || got.principal.Subject != "user-123" {
			t.Errorf("principal %+v, want user-123 bound to %s", got.principal, k.Thumbprint())
		}
	})

	runCase(t, "rfc9449-bearer-token-with-request-context-and-no-proof-must-still-verify-as-bearer", func(t *testing.T) {
		got := send(t, a, bearer(token(t, is, nil, nil)))
		mustAccept(t, got)
		if got.principal.Binding != principal.BindingNone || got.principal.JKT != "" {
			t.Errorf("a bearer token came out bound: %+v", got.principal)
		}
	})

	runCase(t, "rfc9449-dpop-bound-token-with-request-context-and-no-proof-must-be-rejected-via-main-verify-path", func(t *testing.T) {
		tok := token(t, is, boundTo(k), nil)
		// Without a proof, under either scheme.
		mustReject(t, dpop(t, a, "/resource", tok), middleware.ReasonDPoPProof, "DPoP", "invalid_dpop_proof")
		mustReject(t, send(t, a, bearer(tok)), middleware.ReasonBoundToken, "Bearer", "invalid_token")
	})

	runCase(t, "rfc9449-dpop-replay-must-be-detected", func(t *testing.T) {
		tok := token(t, is, boundTo(k), nil)
		p := k.Proof(t, "GET", fixtureURL, tok)
		mustAccept(t, dpop(t, a, "/resource", tok, p))
		mustReject(t, dpop(t, a, "/resource", tok, p), middleware.ReasonDPoPReplay, "DPoP", "invalid_dpop_proof")
	})

	runCase(t, "rfc9449-dpop-method-mismatch-must-be-rejected", func(t *testing.T) {
		tok := token(t, is, boundTo(k), nil)
		mustReject(t, dpop(t, a, "/resource", tok, k.Proof(t, "POST", fixtureURL, tok)), middleware.ReasonDPoPProof, "DPoP", "invalid_dpop_proof")
	})

	runCase(t, "rfc9449-dpop-url-mismatch-must-be-rejected", func(t *testing.T) {
		tok := token(t, is, boundTo(k), nil)
		got := dpop(t, a, "/resource?query=ignored", tok, k.Proof(t, "GET", fixtureResource+"/other", tok))
		mustReject(t, got, middleware.ReasonDPoPProof, "DPoP", "invalid_dpop_proof")
	})

	runCase(t, "rfc9449-dpop-proof-htu-must-be-normalized-before-comparison", func(t *testing.T) {
		tok := token(t, is, boundTo(k), nil)
		p := k.Proof(t, "GET", fixtureURL, tok, edit(func(_, c map[string]any) { c["htu"] = "HTTPS://API.EXAMPLE.COM:443/resource" }))
		mustAccept(t, dpop(t, a, "/resource?query=ignored", tok, p))
	})

	runCase(t, "rfc9449-dpop-proof-htm-must-be-case-sensitive", func(t *testing.T) {
		tok := token(t, is, boundTo(k), nil)
		mustReject(t, dpop(t, a, "/resource", tok, k.Proof(t, "get", fixtureURL, tok)), middleware.ReasonDPoPProof, "DPoP", "invalid_dpop_proof")
	})

	runCase(t, "rfc9449-dpop-replay-store-must-evict-expired-entries", func(t *testing.T) {
		// The smallest replay cache, on a clock the test moves: fill it
		// until it refuses new proofs for want of room, then let the
		// proofs expire; a new proof must find room again.
		now := time.Now()
		a := newAuthenticator(t, is, func(c *middleware.Config) {
			c.DPoP = middleware.DPoPRequired
			c.DPoPReplaySlots = 1
			c.Now = func() time.Time { return now }
		})
		tok := token(t, is, func(c jwt.MapClaims) {
			boundTo(k)(c)
			c["exp"] = now.Add(time.Hour).Unix()
		}, nil)
		proof := func() string { return k.Proof(t, "GET", fixtureURL, tok, authtest.WithProofTime(now)) }
		full := false
		for i := 0; i < 1000 && !full; i++ {
			got := dpop(t, a, "/resource", tok, proof())
			switch {
			case got.status == http.StatusServiceUnavailable && got.reason == middleware.ReasonDPoPReplayFull:
				full = true
			case got.status != http.StatusNoContent:
				t.Fatalf("proof %d: %d %s", i, got.status, got.reason)
			}
		}
		if !full {
			t.Fatal("the replay cache never filled: it is not bounded")
		}
		now = now.Add(10 * time.Minute)
		for range 3 {
			mustAccept(t, dpop(t, a, "/resource", tok, proof()))
		}
	}, partial("checked on the in-process replay cache (DPoPReplaySlots); the fleet-wide DPoPReplayStore expires entries by the store's TTL"))

	runCase(t, "rfc9449-dpop-inbound-nonce-must-be-validated-when-required", func(t *testing.T) {
		withNonces := newAuthenticator(t, is, func(c *middleware.Config) {
			c.DPoP = middleware.DPoPAllowed
			c.DPoPNonceKeys = [][]byte{[]byte("conformance-nonce-key-of-32-bytes!")}
		})
		tok := token(t, is, boundTo(k), nil)
		// ask sends a proof with the nonce options and returns the
		// DPoP-Nonce of the answer and the refusal (nil when accepted).
		ask := func(opts ...authtest.ProofOption) (string, error) {
			r := request("GET", "/resource", "DPoP", tok, k.Proof(t, "GET", fixtureURL, tok, opts...))
			_, err := withNonces.Authenticate(r)
			w := httptest.NewRecorder()
			withNonces.Require(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})).ServeHTTP(w, request("GET", "/resource", "DPoP", tok, k.Proof(t, "GET", fixtureURL, tok, opts...)))
			return w.Header().Get("DPoP-Nonce"), err
		}
		var issued string
		for name, opts := range map[string][]authtest.ProofOption{
			"wrong nonce": {authtest.WithProofNonce("wrong-nonce")},
			"no nonce":    nil,
		} {
			next, err := ask(opts...)
			// The catalog's category: an invalid DPoP proof, naming the
			// nonce. On the wire RFC 9449 §9's use_dpop_nonce, which
			// tells the client to retry with the nonce sent beside it.
			if !errors.Is(err, middleware.ErrDPoPProof) || middleware.Reason(err) != middleware.ReasonDPoPNonce {
				t.Errorf("%s: %v (%s), want an invalid DPoP proof for want of the nonce", name, err, middleware.Reason(err))
			}
			if next == "" {
				t.Errorf("%s: no DPoP-Nonce to retry with", name)
			}
			issued = next
		}
		got := send(t, withNonces, request("GET", "/resource", "DPoP", tok, k.Proof(t, "GET", fixtureURL, tok, authtest.WithProofNonce("wrong-nonce"))))
		mustReject(t, got, middleware.ReasonDPoPNonce, "DPoP", "use_dpop_nonce")
		// The server's own nonce passes.
		mustAccept(t, send(t, withNonces, request("GET", "/resource", "DPoP", tok, k.Proof(t, "GET", fixtureURL, tok, authtest.WithProofNonce(issued)))))
	}, noted(`refused as an invalid DPoP proof (errors.Is ErrDPoPProof, reason use_dpop_nonce); the challenge's error code is use_dpop_nonce with a fresh DPoP-Nonce, as RFC 9449 §9 prescribes for a missing or wrong resource-server nonce`))

	runCase(t, "rfc9449-dpop-proof-exp-must-be-enforced-when-present", func(t *testing.T) {
		skew := a.ClockSkew()
		tok := token(t, is, boundTo(k), nil)
		expired := k.Proof(t, "GET", fixtureURL, tok, edit(func(_, c map[string]any) { c["exp"] = time.Now().Add(-skew - time.Minute).Unix() }))
		mustReject(t, dpop(t, a, "/resource", tok, expired), middleware.ReasonDPoPProof, "DPoP", "invalid_dpop_proof")
		// Recent iat, exp within the skew: accepted.
		within := k.Proof(t, "GET", fixtureURL, tok, edit(func(_, c map[string]any) { c["exp"] = time.Now().Add(-skew / 2).Unix() }))
		mustAccept(t, dpop(t, a, "/resource", tok, within))
	})

	runCase(t, "rfc9449-dpop-proof-must-carry-public-jwk", func(t *testing.T) {
		badProof(t, edit(func(h, _ map[string]any) { delete(h, "jwk") }))
	})

	runCase(t, "rfc9449-dpop-proof-jwk-must-not-include-private-key-material", func(t *testing.T) {
		badProof(t, edit(func(h, _ map[string]any) {
			jwk := map[string]any{}
			for name, v := range k.PublicJWK() {
				jwk[name] = v
			}
			jwk["d"] = "c2VjcmV0LXNjYWxhci1vZi10aGUta2V5LTMyLWJ5dGVz"
			h["jwk"] = jwk
		}))
	})

	runCase(t, "rfc9449-dpop-proof-alg-must-be-supported-asymmetric", func(t *testing.T) {
		for _, alg := range []string{"HS256", "none"} {
			badProof(t, edit(func(h, _ map[string]any) { h["alg"] = alg }))
		}
	})

	runCase(t, "rfc9449-dpop-proof-iat-must-not-be-in-the-future-beyond-leeway", func(t *testing.T) {
		badProof(t, authtest.WithProofTime(time.Now().Add(middleware.DefaultDPoPProofWindow+time.Minute)))
	})

	runCase(t, "rfc9449-dpop-proof-must-not-be-too-old", func(t *testing.T) {
		badProof(t, authtest.WithProofTime(time.Now().Add(-middleware.DefaultDPoPProofWindow-time.Minute)))
	})

	runCase(t, "rfc9449-dpop-proof-required-when-validating-dpop-bound-token", func(t *testing.T) {
		for _, mode := range []middleware.DPoPMode{middleware.DPoPAllowed, middleware.DPoPRequired} {
			a := newAuthenticator(t, is, func(c *middleware.Config) { c.DPoP = mode })
			tok := token(t, is, boundTo(k), nil)
			mustReject(t, dpop(t, a, "/resource", tok), middleware.ReasonDPoPProof, "DPoP", "invalid_dpop_proof")
		}
	})

	runCase(t, "rfc9449-dpop-binding-mismatch-must-be-rejected", func(t *testing.T) {
		other := authtest.NewDPoPKey(t, "ES256")
		tok := token(t, is, boundTo(k), nil)
		mustReject(t, dpop(t, a, "/resource", tok, other.Proof(t, "GET", fixtureURL, tok)), middleware.ReasonDPoPKeyBinding, "DPoP", "invalid_token")
	})

	runCase(t, "rfc9449-dpop-ath-mismatch-must-be-rejected", func(t *testing.T) {
		tokA := token(t, is, boundTo(k), nil)
		tokB := token(t, is, boundTo(k), nil)
		mustReject(t, dpop(t, a, "/resource", tokA, k.Proof(t, "GET", fixtureURL, tokB)), middleware.ReasonDPoPProof, "DPoP", "invalid_dpop_proof")
	})

	runCase(t, "rfc9449-dpop-bound-token-must-contain-cnf-jkt", func(t *testing.T) {
		for _, cnf := range []any{map[string]any{}, map[string]any{"jkt": ""}} {
			tok := token(t, is, func(c jwt.MapClaims) { c["cnf"] = cnf }, nil)
			got := dpop(t, a, "/resource", tok, k.Proof(t, "GET", fixtureURL, tok))
			if got.status != http.StatusUnauthorized || challengeError(got.challenge, "DPoP") != "invalid_token" {
				t.Errorf("cnf %v: %d %s %q, want 401 invalid_token", cnf, got.status, got.reason, got.challenge)
			}
		}
	})

	runCase(t, "rfc9449-dpop-proof-validation-must-not-skip-binding-when-access-token-is-provided", func(t *testing.T) {
		// The middleware takes the expected key from the token itself: a
		// token with no cnf.jkt cannot be used with a proof of any key.
		tok := token(t, is, nil, nil)
		mustReject(t, dpop(t, a, "/resource", tok, k.Proof(t, "GET", fixtureURL, tok)), middleware.ReasonDPoPUnbound, "DPoP", "invalid_token")
	}, partial("Tollgate has no standalone proof-validation API that could be called without the expected thumbprint; the middleware always takes it from the token's cnf.jkt"))

	runCase(t, "rfc9449-verifier-must-reject-bearer-only-token-when-resource-requires-dpop", func(t *testing.T) {
		req := newAuthenticator(t, is, func(c *middleware.Config) { c.DPoP = middleware.DPoPRequired })
		mustReject(t, send(t, req, bearer(token(t, is, nil, nil))), middleware.ReasonDPoPRequired, "DPoP", "invalid_token")
	})

	runCase(t, "rfc9449-verifier-must-reject-dpop-bound-token-when-resource-does-not-support-dpop", func(t *testing.T) {
		off := newAuthenticator(t, is, nil) // DPoPDisabled, the default
		tok := token(t, is, boundTo(k), nil)
		mustReject(t, send(t, off, bearer(tok)), middleware.ReasonBoundToken, "Bearer", "invalid_token")
		// With the DPoP scheme, unknown where DPoP is off: refused too,
		// as a malformed request.
		got := dpop(t, off, "/resource", tok, k.Proof(t, "GET", fixtureURL, tok))
		if got.status != http.StatusBadRequest || challengeError(got.challenge, "Bearer") != "invalid_request" {
			t.Errorf("DPoP scheme where DPoP is off: %d %s %q", got.status, got.reason, got.challenge)
		}
	}, partial(`a bound token sent as Bearer gets 401 Bearer error="invalid_token" as the catalog expects; sent with the DPoP scheme, which a resource without DPoP does not know, it gets 400 Bearer error="invalid_request"`))

	runCase(t, "rfc9449-verifier-must-reject-dpop-proof-when-access-token-is-not-dpop-bound", func(t *testing.T) {
		for _, mode := range []middleware.DPoPMode{middleware.DPoPDisabled, middleware.DPoPAllowed} {
			m := newAuthenticator(t, is, func(c *middleware.Config) { c.DPoP = mode })
			tok := token(t, is, nil, nil)
			// Under the Bearer scheme with a proof beside it, twice: the
			// second finds the token in the cache.
			for range 2 {
				mustReject(t, send(t, m, request("GET", "/resource", "Bearer", tok, k.Proof(t, "GET", fixtureURL, tok))), middleware.ReasonDPoPUnbound, "Bearer", "invalid_token")
			}
			if mode == middleware.DPoPAllowed {
				mustReject(t, dpop(t, m, "/resource", tok, k.Proof(t, "GET", fixtureURL, tok)), middleware.ReasonDPoPUnbound, "DPoP", "invalid_token")
			}
			mustAccept(t, send(t, m, bearer(tok)))
		}
	}, noted("in every DPoP mode: reason dpop_unbound_token (the catalog's binding mismatch), 401 invalid_token on the challenge of the scheme the request used"))
}

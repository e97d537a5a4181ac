package dpopinterop

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestDifferences pins where Tollgate and go-jwt-middleware v3.1.0 answer
// the same proof differently, each with the rule that decides it; the
// README's DPoP section lists them. A change on either side (an upgrade
// of go-jwt-middleware included) fails here and must be looked at.
func TestDifferences(t *testing.T) {
	is := authtest.NewIssuer(t)
	tg := tollgateServer(t, is, nil)
	tg384 := tollgateServer(t, is, func(c *middleware.Config) {
		c.DPoPAlgorithms = append(middleware.DefaultDPoPAlgorithms(), "ES384")
	})
	tg384.name = "tollgate+ES384"
	a0 := auth0Server(t, is)

	k := newJWXKey(t, "ES256")
	tok := mintBound(t, is, k.thumbprint(t))
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k384 := jwxKeyOf(t, "ES384", p384)
	tok384 := mintBound(t, is, k384.thumbprint(t))
	r1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	k1024 := jwxKeyOf(t, "RS256", r1024)
	tok1024 := mintBound(t, is, k1024.thumbprint(t))
	ak := authtest.NewDPoPKey(t, "ES256")
	atok := is.MintDPoP(t, "alice", ak)
	iat := func(d time.Duration) func(map[string]any) {
		return func(c map[string]any) { c["iat"] = time.Now().Add(d).Unix() }
	}
	root := func(u string) string { return strings.TrimSuffix(u, "/todos") }

	cases := []struct {
		name string
		why  string
		send func(srv server) answer
		want map[string]int // status by server name
	}{
		{
			"replayed proof",
			"RFC 9449 §11.1: Tollgate remembers jti for the window; go-jwt-middleware keeps no jti",
			func(srv server) answer {
				p := k.proof(t, "GET", srv.url, tok, nil, nil)
				if a := send(t, "GET", srv.url, tok, p); a.status != 200 {
					t.Fatalf("%s: first use %d", srv.name, a.status)
				}
				return send(t, "GET", srv.url, tok, p)
			},
			map[string]int{"tollgate": 401, "go-jwt-middleware": 200},
		},
		{
			"request with a query, htu without (jwx proof)",
			"RFC 9449 §4.2, §4.3 check 9: htu has no query; go-jwt-middleware compares with the query",
			func(srv server) answer {
				return send(t, "GET", srv.url+"?page=2", tok, k.proof(t, "GET", srv.url, tok, nil, nil))
			},
			map[string]int{"tollgate": 200, "go-jwt-middleware": 400},
		},
		{
			"request with a query, htu without (authtest proof)",
			"the same through authtest, which leaves the query out of htu as §4.2 says",
			func(srv server) answer {
				return send(t, "GET", srv.url+"?page=2", atok, ak.Proof(t, "GET", srv.url+"?page=2", atok))
			},
			map[string]int{"tollgate": 200, "go-jwt-middleware": 400},
		},
		{
			"request with a query, htu with it",
			"§4.3 check 9 ignores the query on both sides; go-jwt-middleware needs it equal",
			func(srv server) answer {
				return send(t, "GET", srv.url+"?page=2", tok, k.proof(t, "GET", srv.url+"?page=2", tok, nil, nil))
			},
			map[string]int{"tollgate": 200, "go-jwt-middleware": 200},
		},
		{
			"htu with a fragment",
			"§4.3 check 9 ignores the fragment; go-jwt-middleware compares strings",
			func(srv server) answer {
				return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url+"#top", tok, nil, nil))
			},
			map[string]int{"tollgate": 200, "go-jwt-middleware": 400},
		},
		{
			"htu scheme in capitals",
			"§4.3 check 9 compares after RFC 3986 §6.2.2 normalisation; go-jwt-middleware compares strings",
			func(srv server) answer {
				return send(t, "GET", srv.url, tok, k.proof(t, "GET", "HTTP"+strings.TrimPrefix(srv.url, "http"), tok, nil, nil))
			},
			map[string]int{"tollgate": 200, "go-jwt-middleware": 400},
		},
		{
			"htu with an encoded unreserved character",
			"the same: /%74odos is /todos (RFC 3986 §6.2.2.2)",
			func(srv server) answer {
				return send(t, "GET", srv.url, tok, k.proof(t, "GET", root(srv.url)+"/%74odos", tok, nil, nil))
			},
			map[string]int{"tollgate": 200, "go-jwt-middleware": 400},
		},
		{
			"iat 90 s old",
			"windows differ: Tollgate ±60 s (DPoPProofWindow), go-jwt-middleware 300 s back, 30 s ahead",
			func(srv server) answer {
				return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, tok, iat(-90*time.Second), nil))
			},
			map[string]int{"tollgate": 401, "go-jwt-middleware": 200},
		},
		{
			"iat 45 s ahead",
			"the same windows",
			func(srv server) answer {
				return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, tok, iat(45*time.Second), nil))
			},
			map[string]int{"tollgate": 200, "go-jwt-middleware": 400},
		},
		{
			"iat with a fraction of a second",
			"iat is a NumericDate (RFC 7519 §2), which may have a fraction; go-jwt-middleware reads it as an int64",
			func(srv server) answer {
				return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, tok, func(c map[string]any) {
					c["iat"] = float64(time.Now().Unix()) + 0.5
				}, nil))
			},
			map[string]int{"tollgate": 200, "go-jwt-middleware": 400},
		},
		{
			"private key in the jwk header",
			"RFC 9449 §4.3 check 7: the jwk must not contain a private key",
			func(srv server) answer {
				return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, tok, nil, k.priv))
			},
			map[string]int{"tollgate": 401, "go-jwt-middleware": 200},
		},
		{
			"unknown crit extension",
			"RFC 7515 §4.1.11: a crit extension the recipient does not understand makes the JWS invalid",
			func(srv server) answer {
				return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, tok, nil, nil, func(h jws.Headers) error {
					if err := h.Set("exp-ext", true); err != nil {
						return err
					}
					return h.Set(jws.CriticalKey, []string{"exp-ext"})
				}))
			},
			map[string]int{"tollgate": 401, "go-jwt-middleware": 200},
		},
		{
			"RSA key of 1024 bits",
			"RFC 7518 §3.3: RS256 keys must have 2048 bits or more",
			func(srv server) answer {
				return send(t, "GET", srv.url, tok1024, k1024.proof(t, "GET", srv.url, tok1024, nil, nil))
			},
			map[string]int{"tollgate": 401, "go-jwt-middleware": 200},
		},
		{
			"jti of 300 bytes",
			"Tollgate bounds jti at 256 bytes (its replay cache); RFC 9449 sets no bound",
			func(srv server) answer {
				return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, tok, func(c map[string]any) {
					c["jti"] = strings.Repeat("j", 300)
				}, nil))
			},
			map[string]int{"tollgate": 401, "go-jwt-middleware": 200},
		},
		{
			"ES384 proof",
			"allowlists differ: Tollgate's default is ES256 EdDSA RS256 PS256, ES384 when configured",
			func(srv server) answer {
				return send(t, "GET", srv.url, tok384, k384.proof(t, "GET", srv.url, tok384, nil, nil))
			},
			map[string]int{"tollgate": 401, "tollgate+ES384": 200, "go-jwt-middleware": 200},
		},
		{
			"htm mismatch: the status",
			"both refuse with error=\"invalid_dpop_proof\": Tollgate with 401, as RFC 9449's resource-server examples (§7.1, §9), go-jwt-middleware with 400",
			func(srv server) answer {
				return send(t, "GET", srv.url, tok, k.proof(t, "GET"+"X", srv.url, tok, nil, nil))
			},
			map[string]int{"tollgate": 401, "go-jwt-middleware": 400},
		},
		{
			"DPoP-bound token with the Bearer scheme and a proof",
			"both refuse (RFC 9449 §7.2); with DPoP required, go-jwt-middleware refuses the Bearer scheme first, 400 invalid_request",
			func(srv server) answer {
				return sendScheme(t, "Bearer", "GET", srv.url, tok, k.proof(t, "GET", srv.url, tok, nil, nil))
			},
			map[string]int{"tollgate": 401, "go-jwt-middleware": 400},
		},
		{
			"bearer token with the DPoP scheme and a proof",
			"agree: RFC 9449 §7.1 (the DPoP scheme needs a bound token)",
			func(srv server) answer {
				bearer := is.Mint(t, "alice")
				return send(t, "GET", srv.url, bearer, k.proof(t, "GET", srv.url, bearer, nil, nil))
			},
			map[string]int{"tollgate": 401, "go-jwt-middleware": 401},
		},
	}
	for _, c := range cases {
		for _, srv := range []server{tg, tg384, a0} {
			want, ok := c.want[srv.name]
			if !ok {
				continue
			}
			t.Run(c.name+"/"+srv.name, func(t *testing.T) {
				got := c.send(srv)
				if got.status != want {
					t.Errorf("%s: %d (%s), want %d: %s", srv.name, got.status, got.challenge, want, c.why)
				}
				if got.status != 200 && srv.name != "go-jwt-middleware" && !strings.HasPrefix(got.challenge, "DPoP ") {
					t.Errorf("%s: refusal without a DPoP challenge: %q", srv.name, got.challenge)
				}
			})
		}
	}
}

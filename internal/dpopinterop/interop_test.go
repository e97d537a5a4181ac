package dpopinterop

import (
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// checkAnswer fails t unless got is what a server should say: 200 with
// the thumbprint jkt when ok, a refusal otherwise. Tollgate refuses with
// 401 and a DPoP challenge (RFC 9449 §7.1); go-jwt-middleware answers
// some proof errors 400 (see TestDifferences), so any 4xx counts there.
func checkAnswer(t *testing.T, srv server, got answer, ok bool, jkt string) {
	t.Helper()
	switch {
	case ok && (got.status != 200 || got.body != jkt):
		t.Fatalf("%s: %d %q (%s), want 200 %q", srv.name, got.status, got.body, got.challenge, jkt)
	case !ok && srv.name == "tollgate" && (got.status != 401 || !strings.HasPrefix(got.challenge, "DPoP ")):
		t.Fatalf("%s: %d %q, want 401 with a DPoP challenge", srv.name, got.status, got.challenge)
	case !ok && (got.status < 400 || got.status > 499):
		t.Fatalf("%s: %d %q, want a refusal", srv.name, got.status, got.body)
	}
}

// TestJWXProofs: proofs that jwx signs, for a key jwx holds and a token
// bound to jwx's thumbprint of it, are accepted by Tollgate (and by
// go-jwt-middleware), and the same proofs made wrong are refused.
func TestJWXProofs(t *testing.T) {
	is := authtest.NewIssuer(t)
	servers := []server{tollgateServer(t, is, nil), auth0Server(t, is)}
	for _, alg := range algs {
		k := newJWXKey(t, alg)
		jkt := k.thumbprint(t)
		tok := mintBound(t, is, jkt)
		other := newJWXKey(t, alg)
		otherTok := mintBound(t, is, other.thumbprint(t))
		for _, srv := range servers {
			cases := []struct {
				name string
				send func() answer
				ok   bool
			}{
				{"valid", func() answer { return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, tok, nil, nil)) }, true},
				{"htm POST for a GET", func() answer { return send(t, "GET", srv.url, tok, k.proof(t, "POST", srv.url, tok, nil, nil)) }, false},
				{"htm lower-case", func() answer { return send(t, "GET", srv.url, tok, k.proof(t, "get", srv.url, tok, nil, nil)) }, false},
				{"htu another path", func() answer {
					return send(t, "GET", srv.url, tok, k.proof(t, "GET", strings.TrimSuffix(srv.url, "/todos")+"/admin", tok, nil, nil))
				}, false},
				{"htu another host", func() answer {
					return send(t, "GET", srv.url, tok, k.proof(t, "GET", "http://evil.example/todos", tok, nil, nil))
				}, false},
				{"htu https for http", func() answer {
					return send(t, "GET", srv.url, tok, k.proof(t, "GET", "https"+strings.TrimPrefix(srv.url, "http"), tok, nil, nil))
				}, false},
				{"thumbprint mismatch: token bound to another key", func() answer {
					return send(t, "GET", srv.url, otherTok, k.proof(t, "GET", srv.url, otherTok, nil, nil))
				}, false},
				{"proof of another key", func() answer {
					return send(t, "GET", srv.url, tok, other.proof(t, "GET", srv.url, tok, nil, nil))
				}, false},
				{"ath of another token", func() answer {
					return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, otherTok, nil, nil))
				}, false},
				{"no ath", func() answer { return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, "", nil, nil)) }, false},
				{"iat ten minutes old", func() answer {
					return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, tok, func(c map[string]any) {
						c["iat"] = time.Now().Add(-10 * time.Minute).Unix()
					}, nil))
				}, false},
				{"iat ten minutes ahead", func() answer {
					return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, tok, func(c map[string]any) {
						c["iat"] = time.Now().Add(10 * time.Minute).Unix()
					}, nil))
				}, false},
				{"no jti", func() answer {
					return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, tok, func(c map[string]any) { delete(c, "jti") }, nil))
				}, false},
				{"two DPoP headers", func() answer {
					return send(t, "GET", srv.url, tok, k.proof(t, "GET", srv.url, tok, nil, nil), k.proof(t, "GET", srv.url, tok, nil, nil))
				}, false},
				{"no proof", func() answer { return send(t, "GET", srv.url, tok) }, false},
				{"jwk of another key than the signature's", func() answer {
					return send(t, "GET", srv.url, otherTok, k.proof(t, "GET", srv.url, otherTok, nil, other.pub))
				}, false},
			}
			for _, c := range cases {
				t.Run(alg+"/"+srv.name+"/"+c.name, func(t *testing.T) {
					checkAnswer(t, srv, c.send(), c.ok, jkt)
				})
			}
		}
		// Replay: go-jwt-middleware keeps no jti cache (TestDifferences).
		t.Run(alg+"/tollgate/replay", func(t *testing.T) {
			srv := servers[0]
			p := k.proof(t, "GET", srv.url, tok, nil, nil)
			checkAnswer(t, srv, send(t, "GET", srv.url, tok, p), true, jkt)
			got := send(t, "GET", srv.url, tok, p)
			checkAnswer(t, srv, got, false, jkt)
		})
	}
}

// TestAuthtestProofs: authtest's keys, DPoP-bound tokens and proofs, as
// Tollgate's users put them in their tests, are accepted by
// go-jwt-middleware (and Tollgate), and refused there when wrong.
func TestAuthtestProofs(t *testing.T) {
	is := authtest.NewIssuer(t)
	servers := []server{tollgateServer(t, is, nil), auth0Server(t, is)}
	for _, alg := range algs {
		k := authtest.NewDPoPKey(t, alg)
		tok := is.MintDPoP(t, "alice", k)
		other := authtest.NewDPoPKey(t, alg)
		otherTok := is.MintDPoP(t, "alice", other)
		for _, srv := range servers {
			edit := func(f func(h, c map[string]any)) authtest.ProofOption { return authtest.WithProofEdit(f) }
			cases := []struct {
				name string
				send func() answer
				ok   bool
			}{
				{"valid", func() answer { return send(t, "GET", srv.url, tok, k.Proof(t, "GET", srv.url, tok)) }, true},
				{"valid DELETE", func() answer { return send(t, "DELETE", srv.url, tok, k.Proof(t, "DELETE", srv.url, tok)) }, true},
				{"htm POST for a GET", func() answer { return send(t, "GET", srv.url, tok, k.Proof(t, "POST", srv.url, tok)) }, false},
				{"htu another path", func() answer {
					return send(t, "GET", srv.url, tok, k.Proof(t, "GET", strings.TrimSuffix(srv.url, "/todos")+"/admin", tok))
				}, false},
				{"thumbprint mismatch: token bound to another key", func() answer {
					return send(t, "GET", srv.url, otherTok, k.Proof(t, "GET", srv.url, otherTok))
				}, false},
				{"ath of another token", func() answer { return send(t, "GET", srv.url, tok, k.Proof(t, "GET", srv.url, otherTok)) }, false},
				{"iat ten minutes old", func() answer {
					return send(t, "GET", srv.url, tok, k.Proof(t, "GET", srv.url, tok, authtest.WithProofTime(time.Now().Add(-10*time.Minute))))
				}, false},
				{"typ JWT", func() answer {
					return send(t, "GET", srv.url, tok, k.Proof(t, "GET", srv.url, tok, edit(func(h, _ map[string]any) { h["typ"] = "JWT" })))
				}, false},
				{"signature over other claims", func() answer {
					good := k.Proof(t, "GET", srv.url, tok)
					bad := k.Proof(t, "GET", srv.url, tok, edit(func(_, c map[string]any) { c["htm"] = "POST" }))
					g, b := strings.Split(good, "."), strings.Split(bad, ".")
					return send(t, "GET", srv.url, tok, g[0]+"."+g[1]+"."+b[2])
				}, false},
				{"jwk of another key than the signature's", func() answer {
					return send(t, "GET", srv.url, otherTok, k.Proof(t, "GET", srv.url, otherTok, edit(func(h, _ map[string]any) { h["jwk"] = other.PublicJWK() })))
				}, false},
			}
			for _, c := range cases {
				t.Run(alg+"/"+srv.name+"/"+c.name, func(t *testing.T) {
					checkAnswer(t, srv, c.send(), c.ok, k.Thumbprint())
				})
			}
		}
	}
}

// TestJWXVerifiesAuthtestProofs: jwx reads an authtest proof as RFC 9449
// §4.2 describes it, verifies its signature with the jwk of its header,
// and computes the same thumbprint as authtest.
func TestJWXVerifiesAuthtestProofs(t *testing.T) {
	for _, alg := range algs {
		t.Run(alg, func(t *testing.T) {
			k := authtest.NewDPoPKey(t, alg)
			proof := k.Proof(t, "GET", "https://api.example.com/todos?page=2", "the-token")
			msg, err := jws.Parse([]byte(proof))
			if err != nil {
				t.Fatal(err)
			}
			if n := len(msg.Signatures()); n != 1 {
				t.Fatalf("%d signatures", n)
			}
			h := msg.Signatures()[0].ProtectedHeaders()
			if typ, _ := h.Type(); typ != "dpop+jwt" {
				t.Fatalf("typ %q", typ)
			}
			a, _ := h.Algorithm()
			if a.String() != alg {
				t.Fatalf("alg %q, want %s", a, alg)
			}
			key, ok := h.JWK()
			if !ok {
				t.Fatal("no jwk in the header")
			}
			if private, err := jwk.IsPrivateKey(key); err != nil || private {
				t.Fatalf("jwk is private (%v)", err)
			}
			want, _ := jwa.LookupSignatureAlgorithm(alg)
			payload, err := jws.Verify([]byte(proof), jws.WithKey(want, key))
			if err != nil {
				t.Fatalf("jwx refuses the signature: %v", err)
			}
			if !strings.Contains(string(payload), `"htu":"https://api.example.com/todos"`) {
				t.Fatalf("claims %s: htu should have no query", payload)
			}
			if got := jwxThumbprint(t, key); got != k.Thumbprint() {
				t.Fatalf("jwx thumbprint %s, authtest %s", got, k.Thumbprint())
			}
			// The same check must fail for a tampered proof.
			parts := strings.Split(proof, ".")
			other := strings.Split(k.Proof(t, "POST", "https://api.example.com/todos", "the-token"), ".")
			if _, err := jws.Verify([]byte(parts[0]+"."+other[1]+"."+parts[2]), jws.WithKey(want, key)); err == nil {
				t.Fatal("jwx accepts a signature over other claims")
			}
		})
	}
}

package dpopinterop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// publicOnly lets authtest compute the thumbprint of a key whose private
// half nobody has (the RFCs' examples); it cannot sign.
type publicOnly struct{ pub crypto.PublicKey }

func (p publicOnly) Public() crypto.PublicKey { return p.pub }

func (publicOnly) Sign(io.Reader, []byte, crypto.SignerOpts) ([]byte, error) {
	return nil, errors.New("public key only")
}

func b64Int(tb testing.TB, s string) *big.Int {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return new(big.Int).SetBytes(b)
}

// ecKeyWith makes P-256 keys until one's x (coordinate 0) or y (1)
// starts with a zero byte: its JWK member must keep the zero (RFC 7518
// §6.2.1.2, full-length coordinates), or the thumbprint is another.
func ecKeyWith(tb testing.TB, coordinate int) *ecdsa.PrivateKey {
	tb.Helper()
	for range 100_000 {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		pub, err := k.PublicKey.Bytes() // 0x04 || X || Y
		if err != nil {
			tb.Fatal(err)
		}
		if pub[1+32*coordinate] == 0 {
			return k
		}
	}
	tb.Fatal("no key with a leading zero byte")
	return nil
}

// TestThumbprints: for each key type, authtest's Thumbprint (the cnf.jkt
// of the tokens it mints), the thumbprint Tollgate's middleware binds a
// request to (Principal.JKT), jwx's and go-jose v4's RFC 7638 thumbprints
// are one value, and the RFCs' own examples give their published values.
func TestThumbprints(t *testing.T) {
	is := authtest.NewIssuer(t)
	tg := tollgateServer(t, is, nil)
	ed := func() crypto.Signer { _, k, _ := ed25519.GenerateKey(rand.Reader); return k }
	rsaKey := func(bits int) crypto.Signer {
		k, err := rsa.GenerateKey(rand.Reader, bits)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	ecKey := func() crypto.Signer { k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader); return k }
	cases := []struct {
		name, alg string
		key       crypto.Signer
		want      string // published value, or "" for a fresh key
	}{
		{"EC P-256", "ES256", ecKey(), ""},
		{"EC P-256, x with a leading zero byte", "ES256", ecKeyWith(t, 0), ""},
		{"EC P-256, y with a leading zero byte", "ES256", ecKeyWith(t, 1), ""},
		{"Ed25519", "EdDSA", ed(), ""},
		{"RSA 2048", "RS256", rsaKey(2048), ""},
		{"RSA 3072 (PS256)", "PS256", rsaKey(3072), ""},
		{
			// RFC 7638 §3.1.
			"RFC 7638 §3.1 RSA example", "RS256",
			publicOnly{&rsa.PublicKey{E: 65537, N: b64Int(t, "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")}},
			"NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
		},
		{
			// RFC 8037 Appendix A.3.
			"RFC 8037 A.3 Ed25519 example", "EdDSA",
			publicOnly{ed25519.PublicKey(b64Int(t, "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").FillBytes(make([]byte, 32)))},
			"kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pub := c.key.Public()
			ours := (&authtest.DPoPKey{Alg: c.alg, Private: c.key}).Thumbprint()
			jk, err := jwk.Import(pub)
			if err != nil {
				t.Fatal(err)
			}
			theirs := jwxThumbprint(t, jk)
			sum, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			joses := base64.RawURLEncoding.EncodeToString(sum)
			if ours != theirs || ours != joses {
				t.Fatalf("authtest %s, jwx %s, go-jose %s", ours, theirs, joses)
			}
			if c.want != "" && ours != c.want {
				t.Fatalf("thumbprint %s, the RFC says %s", ours, c.want)
			}
			if _, ok := c.key.(publicOnly); ok {
				return
			}
			// The middleware: a jwx proof for a token bound to jwx's
			// thumbprint passes only if Tollgate computes the same, and
			// Principal.JKT says which.
			k := jwxKeyOf(t, c.alg, c.key)
			tok := mintBound(t, is, theirs)
			got := send(t, "GET", tg.url, tok, k.proof(t, "GET", tg.url, tok, nil, nil))
			if got.status != 200 || got.body != theirs {
				t.Fatalf("Tollgate: %d %q (%s), want 200 %q", got.status, got.body, got.challenge, theirs)
			}
		})
	}
}

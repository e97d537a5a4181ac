package middleware_test

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// rawNumber marshals as the JSON number it holds, digit for digit.
type rawNumber string

func (n rawNumber) MarshalJSON() ([]byte, error) { return []byte(n), nil }

var _ json.Marshaler = rawNumber("")

// signedClaims signs header64 and the claims text with k (ES256), so that
// a test can send claims no map would marshal to.
func signedClaims(tb testing.TB, k *authtest.DPoPKey, header64, claims string) string {
	tb.Helper()
	input := header64 + "." + base64.RawURLEncoding.EncodeToString([]byte(claims))
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k.Private.(*ecdsa.PrivateKey), sum[:])
	if err != nil {
		tb.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

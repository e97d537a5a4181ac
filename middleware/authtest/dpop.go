package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DPoPKey is a client's DPoP key (RFC 9449): the key a DPoP-bound token is
// bound to and every proof is signed with.
type DPoPKey struct {
	Alg     string
	Private crypto.Signer
}

// NewDPoPKey makes a DPoP key for alg: ES256, EdDSA, RS256 or PS256.
func NewDPoPKey(tb TB, alg string) *DPoPKey {
	tb.Helper()
	var signer crypto.Signer
	var err error
	switch alg {
	case "ES256":
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	case "RS256", "PS256":
		signer, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		tb.Fatalf("authtest: no DPoP key type for %s", alg)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return &DPoPKey{Alg: alg, Private: signer}
}

// PublicJWK is the key's public JWK, with the members RFC 7638 names and
// nothing else, as a proof's jwk header carries it.
func (k *DPoPKey) PublicJWK() map[string]any {
	m := PublicJWK(&Key{Alg: k.Alg, Private: k.Private})
	delete(m, "kid")
	delete(m, "alg")
	delete(m, "use")
	return m
}

// Thumbprint is the key's RFC 7638 SHA-256 thumbprint, base64url: the
// cnf.jkt of tokens bound to it.
func (k *DPoPKey) Thumbprint() string {
	m := k.PublicJWK()
	var names []string
	switch m["kty"] {
	case "EC":
		names = []string{"crv", "kty", "x", "y"}
	case "OKP":
		names = []string{"crv", "kty", "x"}
	default:
		names = []string{"e", "kty", "n"}
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(n)
		v, _ := json.Marshal(m[n])
		b.Write(name)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	sum := sha256.Sum256([]byte(b.String()))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// MintDPoP signs a valid access token for sub bound to k: Claims with
// cnf.jkt set to k's thumbprint, changed by opts.
func (is *Issuer) MintDPoP(tb TB, sub string, k *DPoPKey, opts ...Option) string {
	tb.Helper()
	bind := WithClaims(func(c map[string]any) { c["cnf"] = map[string]any{"jkt": k.Thumbprint()} })
	return is.Mint(tb, sub, append([]Option{bind}, opts...)...)
}

// ProofOption changes a proof before it is signed.
type ProofOption func(header, claims map[string]any)

// WithProofEdit lets a test change a proof's header and claims, to make a
// bad one (a nil value in either deletes nothing: use delete).
func WithProofEdit(edit func(header, claims map[string]any)) ProofOption {
	return ProofOption(edit)
}

// WithProofTime sets the proof's iat.
func WithProofTime(t time.Time) ProofOption {
	return func(_, c map[string]any) { c["iat"] = t.Unix() }
}

// Proof signs a DPoP proof (RFC 9449 §4.2) with k for a request of method
// to url (its query and fragment are left out of htu), carrying token
// (ath; none when token is ""): typ dpop+jwt, k's public jwk, a random
// jti, iat now. Send it in the DPoP header, with
// "Authorization: DPoP <token>".
func (k *DPoPKey) Proof(tb TB, method, url, token string, opts ...ProofOption) string {
	tb.Helper()
	htu, _, _ := strings.Cut(url, "#")
	htu, _, _ = strings.Cut(htu, "?")
	header := map[string]any{"typ": "dpop+jwt", "alg": k.Alg, "jwk": k.PublicJWK()}
	claims := map[string]any{"jti": rand.Text(), "htm": method, "htu": htu, "iat": time.Now().Unix()}
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	for _, o := range opts {
		o(header, claims)
	}
	// Signed with k's algorithm whatever the header's alg says, so that
	// a test can name another (none, HS256) in a proof the server must
	// refuse for its alg alone.
	method2 := jwt.GetSigningMethod(k.Alg)
	t := jwt.NewWithClaims(method2, jwt.MapClaims(claims))
	t.Header = header
	s, err := t.SignedString(k.Private)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// WithProofNonce sets the proof's nonce, one the server sent in its
// DPoP-Nonce header (RFC 9449 §8).
func WithProofNonce(nonce string) ProofOption {
	return func(_, c map[string]any) { c["nonce"] = nonce }
}

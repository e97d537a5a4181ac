package exchange

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// sealVersion is the first byte of every sealed value, so that the format
// can change without misreading old cookies.
const sealVersion = 1

// maxSealedLen bounds what open will even try to decode: no cookie we write
// is longer.
const maxSealedLen = 8 << 10

// errSealed is every reason a sealed value is refused; callers treat them
// alike (the cookie is absent).
var errSealed = errors.New("exchange: cookie value is not one of ours")

// sealer encrypts and authenticates cookie values with AES-256-GCM under a
// key derived from SESSION_SECRET by HKDF-SHA256. The cookie's name is the
// additional authenticated data, so a value cannot be moved from one cookie
// to another (a transaction into the session, one attempt's transaction
// into another's). Each value gets a fresh random 96-bit nonce.
type sealer struct {
	aead cipher.AEAD
	max  int // the longest sealed value open accepts
}

func newSealer(secret []byte) (*sealer, error) {
	return newSealerFor(secret, "tollgate exchange cookies v1", maxSealedLen)
}

// newSealerFor is a sealer whose key HKDF derives for purpose: values sealed
// for one purpose (cookies, the shared store) never open for another.
func newSealerFor(secret []byte, purpose string, maxLen int) (*sealer, error) {
	if len(secret) < MinSessionSecretBytes {
		return nil, fmt.Errorf("exchange: session secret shorter than %d bytes", MinSessionSecretBytes)
	}
	key, err := hkdf.Key(sha256.New, secret, nil, purpose, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, max: maxLen}, nil
}

func sealAAD(name string) []byte {
	return []byte("tollgate-exchange/v1/" + name)
}

// seal returns base64url(version || nonce || ciphertext || tag), a valid
// cookie value.
func (s *sealer) seal(name string, plaintext []byte) string {
	out := make([]byte, 1, 1+s.aead.Overhead()+len(plaintext))
	out[0] = sealVersion
	out = s.aead.Seal(out, nil, plaintext, sealAAD(name))
	return base64.RawURLEncoding.EncodeToString(out)
}

// open reverses seal for the cookie name; any change to the value or the
// name makes it fail.
func (s *sealer) open(name, value string) ([]byte, error) {
	if len(value) == 0 || len(value) > s.max {
		return nil, errSealed
	}
	// Strict: a value whose last character has stray low bits decodes to
	// the same bytes, so without it one sealed value has several spellings.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(value)
	if err != nil || len(raw) < 1+s.aead.Overhead() || raw[0] != sealVersion {
		return nil, errSealed
	}
	plain, err := s.aead.Open(nil, nil, raw[1:], sealAAD(name))
	if err != nil {
		return nil, errSealed
	}
	return plain, nil
}

func (s *sealer) sealJSON(name string, v any) (string, error) {
	// Without HTML escaping: json.Marshal writes '<', '>' and '&' as six
	// bytes each, and a returnTo or acr_values made of them (both allowed)
	// would swell a transaction cookie past the 4 KB browsers keep. The
	// value is sealed, never put in HTML.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return s.seal(name, bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}

func (s *sealer) openJSON(name, value string, v any) error {
	b, err := s.open(name, value)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return errSealed
	}
	return nil
}

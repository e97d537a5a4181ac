package middleware

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"time"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// Server-provided DPoP nonces (RFC 9449 §8, §9). With Config.DPoPNonceKeys
// set, every proof must carry a nonce this server (or a replica sharing
// the keys) issued within DPoPNonceLifetime; otherwise the answer is 401
// DPoP error="use_dpop_nonce" with a fresh nonce in the DPoP-Nonce header.
// Nonces are stateless: the issue time and a MAC of it under the first
// key, so replicas with the same keys accept each other's and nothing is
// stored per client. Listing a new key first and the old one second
// rotates keys without refusing nonces already handed out.

// DPoPNonceHeader is the response header that carries a new nonce.
const DPoPNonceHeader = "DPoP-Nonce"

// DefaultDPoPNonceLifetime is how long a nonce is accepted.
const DefaultDPoPNonceLifetime = 5 * time.Minute

const (
	nonceTimeBytes = 8
	nonceMACBytes  = 16
)

type nonceSource struct {
	keys     [][]byte
	lifetime time.Duration
}

// slot is the issue time of the nonce handed out at now: a new nonce every
// half lifetime, so that a client always holds one with half its life left.
func (n *nonceSource) slot(now time.Time) int64 {
	half := int64(n.lifetime / 2 / time.Second)
	if half < 1 {
		half = 1
	}
	t := now.Unix()
	return t - t%half
}

func (n *nonceSource) mac(key []byte, t int64) []byte {
	var b [nonceTimeBytes]byte
	binary.BigEndian.PutUint64(b[:], uint64(t))
	m := hmac.New(sha256.New, key)
	m.Write(b[:])
	return append(b[:], m.Sum(nil)[:nonceMACBytes]...)
}

// current is the nonce to hand out at now.
func (n *nonceSource) current(now time.Time) string {
	return base64.RawURLEncoding.EncodeToString(n.mac(n.keys[0], n.slot(now)))
}

// valid reports whether nonce was issued by one of the keys no longer than
// the lifetime ago. A nonce up to half a lifetime in the future passes, so
// that a replica whose clock is a little behind accepts another's.
func (n *nonceSource) valid(nonce string, now time.Time) bool {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(nonce)
	if err != nil || len(raw) != nonceTimeBytes+nonceMACBytes {
		return false
	}
	t := int64(binary.BigEndian.Uint64(raw[:nonceTimeBytes]))
	life := int64(n.lifetime / time.Second)
	if t > now.Unix()+life/2 || now.Unix()-t > life {
		return false
	}
	for _, k := range n.keys {
		if hmac.Equal(n.mac(k, t), raw) {
			return true
		}
	}
	return false
}

// DPoPNonce returns the nonce to send in the DPoP-Nonce header now, or ""
// when nonces are off. Require sends it on every answer to a DPoP request;
// Optional and the Gin adapter too; an adapter that calls
// Authenticate itself may do the same.
func (a *Authenticator) DPoPNonce() string {
	if a.dpop == nil || a.dpop.nonces == nil {
		return ""
	}
	return a.dpop.nonces.current(a.cfg.Now())
}

// setNextDPoPNonce gives an accepted DPoP request the nonce for its next
// proof (RFC 9449 §8.2), when nonces are on.
func (a *Authenticator) setNextDPoPNonce(w http.ResponseWriter, p *principal.Principal) {
	if p.Binding == principal.BindingDPoP && a.dpop != nil && a.dpop.nonces != nil {
		w.Header().Set(DPoPNonceHeader, a.DPoPNonce())
	}
}

package devidp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// DPoP (RFC 9449) at the token endpoint.
//
// The proof check here is written against github.com/go-jose/go-jose/v4
// on purpose, apart from the middleware's own (golang-jwt and hand-written
// JWK parsing): the end-to-end tests then cross-check two implementations,
// proofs made by middleware/authtest must verify here, and the cnf.jkt this
// server writes (go-jose's RFC 7638 thumbprint) must be the one the
// middleware computes from the proofs it checks.

// DPoPAlgorithms are the proof signature algorithms the token endpoint
// accepts, advertised as dpop_signing_alg_values_supported (RFC 9449 §5.1).
// Asymmetric only (§4.3): none and the HMAC algorithms are never accepted.
// They are the middleware's defaults, so a proof key that devidp accepts the
// todo API accepts too.
var DPoPAlgorithms = []string{"ES256", "EdDSA", "RS256", "PS256"}

const (
	// dpopWindow is how far a proof's iat may be from now, either way.
	dpopWindow = 60 * time.Second
	// maxProofBytes bounds the DPoP header before anything is parsed: an
	// RSA-8192 jwk and the claims fit with room to spare.
	maxProofBytes = 8 << 10
	// maxJTIBytes bounds a proof's jti; RFC 9449 §11.1 asks for 96 random
	// bits, about 16 characters.
	maxJTIBytes = 256
	// RSA proof keys: at least 2048 bits (RFC 7518 §3.3), at most 8192,
	// which bounds the work one proof can cause.
	minRSABits = 2048
	maxRSABits = 8192
	// DPoPReplayLimit bounds each replay set (the token endpoint's and
	// userinfo's): at most this many proof jtis are remembered, each
	// until its proof is too old to be accepted (iat + 60 s), about 100
	// bytes apiece, so under 7 MiB a set. When a set is full of live
	// entries its endpoint refuses DPoP requests with 503 rather than
	// forget a jti (fail closed); a development server does not see
	// 65,536 token requests a minute.
	DPoPReplayLimit = 1 << 16
)

var (
	errDPoPProof      = errors.New("devidp: invalid DPoP proof")
	errDPoPReplayFull = errors.New("devidp: DPoP replay set full")
)

// proofError says why a proof was refused, for the log only: the answer
// to the client is a bare invalid_dpop_proof, and neither carries the
// proof itself.
type proofError struct{ reason string }

func (e *proofError) Error() string        { return "devidp: invalid DPoP proof: " + e.reason }
func (e *proofError) Is(target error) bool { return target == errDPoPProof }

func badProof(reason string) error { return &proofError{reason: reason} }

// dpopVerifier checks proofs (RFC 9449 §4.3) sent to the token endpoint
// and to userinfo, with a replay set for each: a proof for one can never
// pass at the other (htu, ath), and the holder of one access token, who
// may send userinfo all the valid proofs he likes, must not fill the set
// that every token request needs.
type dpopVerifier struct {
	tokenHTU    string // the normalised URLs a proof's htu must name
	userinfoHTU string
	now         func() time.Time
	// tokenReplay and userinfoReplay are the endpoints' replay sets.
	tokenReplay, userinfoReplay *jtiSet
}

func newDPoPVerifier(issuer string, now func() time.Time) (*dpopVerifier, error) {
	token, err := normalizeHTU(issuer + "/token")
	if err != nil {
		return nil, err
	}
	userinfo, err := normalizeHTU(issuer + "/userinfo")
	if err != nil {
		return nil, err
	}
	return &dpopVerifier{tokenHTU: token, userinfoHTU: userinfo, now: now,
		tokenReplay: newJTISet(DPoPReplayLimit), userinfoReplay: newJTISet(DPoPReplayLimit)}, nil
}

// proofHeader returns the request's one DPoP header: present is false when
// there is none, and a request with more than one (§4.3 check 1) is an
// error.
func proofHeader(r *http.Request) (proof string, present bool, err error) {
	values := r.Header.Values("DPoP")
	switch len(values) {
	case 0:
		return "", false, nil
	case 1:
		return values[0], true, nil
	default:
		return "", true, badProof("more than one DPoP header")
	}
}

// checkedProof is a proof that verify accepted, waiting for record.
type checkedProof struct {
	// jkt is the RFC 7638 SHA-256 thumbprint, base64url, of the proof's
	// key: the cnf.jkt of the tokens to bind.
	jkt   string
	jti   string
	until time.Time // when the proof's iat falls out of the window
}

// verify checks proof for a request of method to the endpoint whose
// normalised URL is htu, carrying accessToken ("" at the token endpoint,
// where ath must be absent), everything but replay: the caller records
// the jti with record once the rest of the request holds, so that a
// refused request takes no room in the replay set.
func (v *dpopVerifier) verify(proof, method, htu, accessToken string) (*checkedProof, error) {
	if proof == "" || len(proof) > maxProofBytes {
		return nil, badProof("empty or longer than 8 KiB")
	}
	algs := make([]jose.SignatureAlgorithm, len(DPoPAlgorithms))
	for i, a := range DPoPAlgorithms {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	// go-jose refuses an alg outside algs (none, HS256, …) here, and an
	// embedded jwk with private members.
	jws, err := jose.ParseSignedCompact(proof, algs)
	if err != nil {
		if strings.Contains(err.Error(), "must be public key") {
			return nil, badProof("jwk in the header is not a public key")
		}
		return nil, badProof("not a compact JWS with an allowed alg")
	}
	if len(jws.Signatures) != 1 {
		return nil, badProof("not exactly one signature")
	}
	h := jws.Signatures[0].Protected
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return nil, badProof(`typ is not "dpop+jwt"`)
	}
	jwk := h.JSONWebKey
	if jwk == nil || !jwk.Valid() || !jwk.IsPublic() {
		return nil, badProof("no public jwk in the header")
	}
	if err := keySuits(jwk.Key, h.Algorithm); err != nil {
		return nil, err
	}
	payload, err := jws.Verify(jwk)
	if err != nil {
		return nil, badProof("signature does not verify with the header's jwk")
	}
	var c struct {
		JTI *string         `json:"jti"`
		HTM *string         `json:"htm"`
		HTU *string         `json:"htu"`
		IAT *float64        `json:"iat"`
		ATH json.RawMessage `json:"ath"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, badProof("claims are not a JSON object of the right types")
	}
	switch {
	case c.JTI == nil || *c.JTI == "" || len(*c.JTI) > maxJTIBytes:
		return nil, badProof("jti missing, empty or too long")
	case c.HTM == nil || *c.HTM != method:
		return nil, badProof("htm is not the request method")
	case c.HTU == nil:
		return nil, badProof("htu missing")
	case c.IAT == nil || math.IsNaN(*c.IAT) || math.IsInf(*c.IAT, 0):
		return nil, badProof("iat missing")
	case accessToken == "" && len(c.ATH) > 0:
		// §4.3 check 11 applies to protected resources; a token request
		// carries no access token for ath to hash.
		return nil, badProof("ath at the token endpoint")
	case accessToken != "" && !athMatches(c.ATH, accessToken):
		return nil, badProof("ath is not the hash of the access token")
	}
	if got, err := normalizeHTU(*c.HTU); err != nil || got != htu {
		return nil, badProof("htu is not the URL of this endpoint")
	}
	now := v.now()
	// In float seconds, so a huge or fractional iat needs no conversion
	// that could overflow.
	if math.Abs(*c.IAT-float64(now.UnixNano())/1e9) > dpopWindow.Seconds() {
		return nil, badProof("iat is more than 60s from now")
	}
	iat := time.Unix(int64(*c.IAT), 0)
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, badProof("jwk has no thumbprint")
	}
	jkt := base64.RawURLEncoding.EncodeToString(thumb)
	return &checkedProof{jkt: jkt, jti: *c.JTI, until: iat.Add(dpopWindow + time.Second)}, nil
}

// record remembers p's jti in set, the replay set of the endpoint p was
// checked for, refusing a replay (RFC 9449 §11.1: a jti is unique per key,
// so the set remembers the pair).
func (v *dpopVerifier) record(set *jtiSet, p *checkedProof) error {
	return set.add(p.jkt+" "+p.jti, p.until, v.now())
}

// athMatches reports whether raw is the JSON string of the base64url
// SHA-256 of accessToken (RFC 9449 §4.2).
func athMatches(raw json.RawMessage, accessToken string) bool {
	var ath string
	if json.Unmarshal(raw, &ath) != nil {
		return false
	}
	sum := sha256.Sum256([]byte(accessToken))
	return subtle.ConstantTimeCompare([]byte(ath), []byte(base64.RawURLEncoding.EncodeToString(sum[:]))) == 1
}

// keySuits checks that a proof's key is of the kind its alg names, and of
// a size worth trusting and cheap to check.
func keySuits(key any, alg string) error {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		if alg == "ES256" && k.Curve == elliptic.P256() {
			return nil
		}
	case ed25519.PublicKey:
		if alg == "EdDSA" {
			return nil
		}
	case *rsa.PublicKey:
		if alg != "RS256" && alg != "PS256" {
			break
		}
		if bits := k.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return badProof("RSA key shorter than 2048 or longer than 8192 bits")
		}
		return nil
	}
	return badProof("jwk does not suit alg " + alg)
}

// normalizeHTU reduces an http(s) URL to what RFC 9449 §4.3 compares: the
// scheme and host in lower case, the default port dropped, an empty path
// as "/", percent-encodings in upper case and those of unreserved
// characters decoded (RFC 3986 §6.2.2, §6.2.3); query and fragment left
// out. Userinfo, and an encoded slash, are refused rather than guessed at.
func normalizeHTU(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	scheme := strings.ToLower(u.Scheme)
	if (scheme != "http" && scheme != "https") || u.Opaque != "" || u.User != nil || u.Host == "" {
		return "", errors.New("devidp: htu is not an http(s) URL with a host and no userinfo")
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" && !(scheme == "http" && port == "80") && !(scheme == "https" && port == "443") {
		host += ":" + port
	}
	path := u.EscapedPath()
	if strings.Contains(strings.ToLower(path), "%2f") {
		return "", errors.New("devidp: htu path has an encoded slash")
	}
	// Re-encode from the decoded path: unreserved characters come out
	// plain and every other encoding upper case.
	path = (&url.URL{Path: u.Path}).EscapedPath()
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// jtiSet remembers proof jtis until their proofs expire, at most limit of
// them (see DPoPReplayLimit).
type jtiSet struct {
	mu        sync.Mutex
	limit     int
	seen      map[[sha256.Size]byte]time.Time // hash of jkt and jti → forget after
	lastSweep time.Time
}

func newJTISet(limit int) *jtiSet {
	return &jtiSet{limit: limit, seen: map[[sha256.Size]byte]time.Time{}}
}

// add records id until until, refusing one already there (a replay) and,
// when the set is full of live ids, every new one.
func (s *jtiSet) add(id string, until, now time.Time) error {
	key := sha256.Sum256([]byte(id))
	s.mu.Lock()
	defer s.mu.Unlock()
	if exp, ok := s.seen[key]; ok && !exp.Before(now) {
		return badProof("jti replayed")
	}
	if len(s.seen) >= s.limit || now.Sub(s.lastSweep) > dpopWindow {
		s.lastSweep = now
		for k, exp := range s.seen {
			if exp.Before(now) {
				delete(s.seen, k)
			}
		}
		if len(s.seen) >= s.limit {
			return errDPoPReplayFull
		}
	}
	s.seen[key] = until
	return nil
}

package middleware

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// DPoP (RFC 9449): a token bound to a key the client keeps (its cnf.jkt is
// the key's RFC 7638 thumbprint) is accepted only with the DPoP scheme and
// a proof JWT, signed with that key, for this very request. The token's
// verification may be cached (its binding is a property of the token); the
// proof is checked on every request.

// DPoPMode says whether DPoP-bound tokens are accepted.
type DPoPMode string

// The DPoP modes.
const (
	// DPoPDisabled (the default) accepts bearer tokens only and refuses
	// every token bound to a key (one with cnf), DPoP-bound ones included.
	DPoPDisabled DPoPMode = "disabled"
	// DPoPAllowed accepts bearer tokens with the Bearer scheme and
	// DPoP-bound tokens with the DPoP scheme and a proof.
	DPoPAllowed DPoPMode = "allowed"
	// DPoPRequired accepts DPoP-bound tokens with a proof only.
	DPoPRequired DPoPMode = "required"
)

// ParseDPoPMode reads a DPoP mode as written in settings; "" is
// DPoPDisabled.
func ParseDPoPMode(s string) (DPoPMode, error) {
	return parseName(s, "DPoP mode", DPoPDisabled, DPoPAllowed, DPoPRequired)
}

// Defaults of the DPoP settings.
const (
	// DefaultDPoPProofWindow: a proof's iat may be this far in the past or
	// the future (RFC 9449 §11.1 leaves the window to the server).
	DefaultDPoPProofWindow = 60 * time.Second
	// DefaultDPoPReplaySlots is the number of jti the replay cache holds:
	// 16 bytes each, 4 MiB in all.
	DefaultDPoPReplaySlots = 1 << 18
	// DefaultDPoPReplayStoreTimeout bounds one call to a DPoPReplayStore:
	// it is made on every DPoP request, so a store that does not answer in
	// a few milliseconds must cost little.
	DefaultDPoPReplayStoreTimeout = 100 * time.Millisecond
	// maxDPoPProofWindow and maxDPoPReplaySlots bound the settings (see
	// Config.dpopProblems).
	maxDPoPProofWindow = time.Hour
	maxDPoPReplaySlots = 1 << 26
	// maxProofBytes bounds the DPoP header: an RSA-4096 jwk and the claims
	// fit in well under half of it.
	maxProofBytes = 8 << 10
	// maxJTIBytes bounds the jti; RFC 9449 §11.1 suggests 96 bits of
	// randomness, about 16 characters.
	maxJTIBytes = 256
	// minRSABits: smaller RSA keys are refused (RFC 7518 §3.3); maxRSABits
	// bounds the work a proof's key can cause.
	minRSABits = 2048
	maxRSABits = 8192
)

var defaultDPoPAlgorithms = []string{"ES256", "EdDSA", "RS256", "PS256"}

// DefaultDPoPAlgorithms returns the proof algorithms accepted when
// Config.DPoPAlgorithms is empty. Each call returns a new slice.
func DefaultDPoPAlgorithms() []string { return slices.Clone(defaultDPoPAlgorithms) }

// DPoPHeader is the request header that carries the proof.
const DPoPHeader = "DPoP"

var (
	errDPoPMissing = dpopErr("request has no DPoP proof", nil)
	errDPoPTwo     = dpopErr("request has more than one DPoP proof", nil)
	errDPoPNonce   = newErr(ErrDPoPProof, ReasonDPoPNonce, "DPoP proof needs a nonce from this server", nil)
	errDPoPUnbound = newErr(ErrInvalidToken, ReasonDPoPUnbound, "token is not DPoP-bound; send it with the Bearer scheme", nil)
	// errProofUnbound: a DPoP proof came beside a token that is not
	// DPoP-bound, under the Bearer scheme. The proof binds nothing, and
	// accepting it would hide a client that believes its token is
	// sender-constrained, or a server that meant to bind it.
	errProofUnbound = newErr(ErrInvalidToken, ReasonDPoPUnbound, "token is not DPoP-bound; send it without a DPoP proof", nil)
	errDPoPRequired = newErr(ErrInvalidToken, ReasonDPoPRequired, "a DPoP-bound token and proof are required", nil)
	// RFC 9449 §7.1's own example answers a failed key binding with
	// invalid_token: the token is not this key's.
	errDPoPMismatch = newErr(ErrInvalidToken, ReasonDPoPKeyBinding, "invalid DPoP key binding", nil)
	errDPoPReplay   = newErr(ErrDPoPProof, ReasonDPoPReplay, "DPoP proof was used before", nil)
	errDPoPFull     = newErr(ErrUnavailable, ReasonDPoPReplayFull, "too many DPoP proofs at once; retry", nil)
	errBoundToken   = newErr(ErrInvalidToken, ReasonBoundToken, "token is bound to a key; sender-constrained tokens are not accepted", nil)
	// errBoundAsBearer: DPoP is on and the token is bound to a DPoP key,
	// but came as a bearer token (RFC 9449 §7.1); the same reason as any
	// bound token, a description that says what to do.
	errBoundAsBearer = newErr(ErrInvalidToken, ReasonBoundToken, "token is bound to a DPoP key: send it with the DPoP scheme and a proof", nil)
)

func dpopErr(desc string, cause error) *authError {
	return newErr(ErrDPoPProof, ReasonDPoPProof, desc, cause)
}

// dpopJKT returns the cnf.jkt of claims when cnf binds the token by DPoP
// and nothing else: an object whose one member is jkt, a base64url SHA-256.
// Any other cnf (mTLS x5t#S256, jwk, several members) is a binding this
// middleware cannot check, and ok is false.
func dpopJKT(claims map[string]any) (string, bool) {
	cnf, ok := claims["cnf"].(map[string]any)
	if !ok || len(cnf) != 1 {
		return "", false
	}
	jkt, ok := cnf["jkt"].(string)
	if !ok || len(jkt) != 43 || strings.IndexFunc(jkt, notB64URLOrDot) >= 0 || strings.Contains(jkt, ".") {
		return "", false
	}
	return jkt, true
}

// dpopVerifier checks proofs. Its settings come from a validated Config.
type dpopVerifier struct {
	algs    []string
	algsStr string // for the challenge's algs parameter
	window  time.Duration
	skew    time.Duration // for a proof's exp, as for a token's
	base    *baseURL      // nil: the request's own scheme and Host
	replay  *replayCache
	shared  *sharedReplay // nil: no DPoPReplayStore
	nonces  *nonceSource  // nil: no server nonces
}

type baseURL struct {
	origin string // normalised scheme://host[:port]
	prefix string // path prefix without a trailing slash
}

func newDPoPVerifier(cfg *Config) *dpopVerifier {
	v := &dpopVerifier{
		algs:    cfg.DPoPAlgorithms,
		algsStr: strings.Join(cfg.DPoPAlgorithms, " "),
		window:  cfg.DPoPProofWindow,
		skew:    cfg.ClockSkew,
		replay:  newReplayCache(cfg.DPoPReplaySlots),
	}
	if cfg.DPoPReplayStore != nil {
		v.shared = &sharedReplay{store: cfg.DPoPReplayStore, timeout: cfg.DPoPReplayStoreTimeout, log: cfg.Logger, now: cfg.Now}
	}
	if cfg.DPoPBaseURL != "" {
		v.base, _ = parseBaseURL(cfg.DPoPBaseURL) // validated
	}
	if len(cfg.DPoPNonceKeys) > 0 {
		v.nonces = &nonceSource{keys: cfg.DPoPNonceKeys, lifetime: cfg.DPoPNonceLifetime}
	}
	return v
}

func parseBaseURL(raw string) (*baseURL, error) {
	if strings.ContainsAny(raw, "?#") {
		return nil, fmt.Errorf("%q has a query or fragment", raw)
	}
	n, err := normalizeHTU(raw)
	if err != nil {
		return nil, err
	}
	start := strings.Index(n, "://") + 3
	i := start + strings.IndexByte(n[start:], '/') // n always has a path
	return &baseURL{origin: n[:i], prefix: strings.TrimSuffix(n[i:], "/")}, nil
}

// expectedHTU is the URL the request's proof must name: the configured
// external base URL, or the request's scheme (TLS or not) and Host, and
// the request's path (under the base URL's path, which it cannot leave).
// Forwarded headers are not trusted.
func (v *dpopVerifier) expectedHTU(r *http.Request) string {
	path := "/"
	if r.URL != nil {
		if p := r.URL.EscapedPath(); p != "" {
			path = p
		}
	}
	if v.base != nil {
		// The request's path is normalised on its own first: its dot
		// segments ("/../admin", "/%2e%2e/admin") must not climb out of
		// the prefix to name a URL outside this server's part of the
		// origin, where another service's proofs are made.
		p, err := normalizePercent(path)
		if err != nil {
			return "" // not a URL: every proof fails to match
		}
		return v.base.origin + v.base.prefix + removeDotSegments(p)
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	// net/http refuses a Host header with "/", "?", "#" or "@", but r.Host
	// may come from elsewhere (another server, proxy-header middleware):
	// any of them would move the request's path into the host, a query or
	// a fragment, and a proof for "/" would pass for every path.
	if strings.IndexFunc(r.Host, notHostChar) >= 0 {
		return "" // not a URL: every proof fails to match
	}
	return scheme + "://" + r.Host + path
}

// notHostChar reports a character that has no place in an authority's
// host and port (RFC 3986 §3.2.2: reg-name, IP literal, port).
func notHostChar(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~!$&'()*+,;=:[]", r))
}

// proofClaims are the claims of a verified proof.
type proofClaims struct {
	jti string
	iat float64
}

// verifyProof checks proof per RFC 9449 §4.3 for a request with method and
// target URL htu (normalised here), carrying token, at now, and returns the
// thumbprint of its key. It does not consult the replay cache: the caller
// records the jti once every other check, the token's binding included,
// has passed, so that only holders of a bound token can fill the cache.
func (v *dpopVerifier) verifyProof(proof, method, htu, token string, now time.Time) (string, proofClaims, error) {
	var none proofClaims
	if len(proof) > maxProofBytes {
		return "", none, dpopErr("DPoP proof too large", nil)
	}
	h64, p64, s64, ok := splitCompact(proof)
	if !ok {
		return "", none, dpopErr("DPoP proof is not a compact JWS", nil)
	}
	hb, err := base64.RawURLEncoding.Strict().DecodeString(h64)
	if err != nil {
		return "", none, dpopErr("DPoP proof header is malformed", err)
	}
	hdr, err := exactMembers(hb)
	if err != nil {
		return "", none, dpopErr("DPoP proof header is malformed", err)
	}
	if typ, ok := hdr.str("typ"); !ok || typ != "dpop+jwt" {
		return "", none, dpopErr(`DPoP proof typ is not "dpop+jwt"`, nil)
	}
	alg, ok := hdr.str("alg")
	if !ok || !slices.Contains(v.algs, alg) {
		return "", none, dpopErr("DPoP proof algorithm not accepted", nil)
	}
	if _, ok := hdr["crit"]; ok {
		// RFC 7515 §4.1.11: extensions we do not understand are fatal.
		return "", none, dpopErr("DPoP proof has crit extensions", nil)
	}
	key, jkt, err := parseProofJWK(hdr["jwk"], alg)
	if err != nil {
		return "", none, dpopErr("DPoP proof jwk is not an accepted public key", err)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(s64)
	if err != nil {
		return "", none, dpopErr("DPoP proof signature is malformed", err)
	}
	method2 := jwt.GetSigningMethod(alg)
	if method2 == nil {
		return "", none, dpopErr("DPoP proof algorithm not accepted", nil)
	}
	if err := method2.Verify(proof[:len(h64)+1+len(p64)], sig, key); err != nil {
		return "", none, dpopErr("DPoP proof signature is invalid", err)
	}
	pb, err := base64.RawURLEncoding.Strict().DecodeString(p64)
	if err != nil {
		return "", none, dpopErr("DPoP proof claims are malformed", err)
	}
	c, err := exactMembers(pb)
	if err != nil {
		return "", none, dpopErr("DPoP proof claims are malformed", err)
	}
	jti, ok := c.str("jti")
	if !ok || jti == "" || len(jti) > maxJTIBytes {
		return "", none, dpopErr("DPoP proof jti is missing or too long", nil)
	}
	if htm, ok := c.str("htm"); !ok || htm != method {
		return "", none, dpopErr("DPoP proof htm does not match the request method", nil)
	}
	htuClaim, ok := c.str("htu")
	if !ok {
		return "", none, dpopErr("DPoP proof htu does not match the request URL", nil)
	}
	got, err := normalizeHTU(htuClaim)
	if err != nil {
		return "", none, dpopErr("DPoP proof htu does not match the request URL", err)
	}
	want, err := normalizeHTU(htu)
	if err != nil || got != want {
		return "", none, dpopErr("DPoP proof htu does not match the request URL", err)
	}
	iat, ok := c.num("iat")
	if !ok || math.IsNaN(iat) {
		return "", none, dpopErr("DPoP proof has no iat", nil)
	}
	nowS := float64(now.UnixNano()) / 1e9
	if w := v.window.Seconds(); iat < nowS-w || iat > nowS+w {
		return "", none, dpopErr("DPoP proof iat is outside the accepted window", nil)
	}
	// RFC 9449 defines no exp for a proof; one that carries it has
	// declared its own end (RFC 7519 §4.1.4), which iat and the window do
	// not override.
	if _, ok := c["exp"]; ok {
		exp, ok := c.num("exp")
		if !ok || math.IsNaN(exp) {
			return "", none, dpopErr("DPoP proof exp is not a number", nil)
		}
		if exp < nowS-v.skew.Seconds() {
			return "", none, dpopErr("DPoP proof has expired", nil)
		}
	}
	// The middleware always has a token; "" is a token request's proof
	// (RFC 9449 §4.2), for the RFC's own example.
	if token != "" {
		sum := sha256.Sum256([]byte(token))
		ath := base64.RawURLEncoding.EncodeToString(sum[:])
		if got, ok := c.str("ath"); !ok || subtle.ConstantTimeCompare([]byte(got), []byte(ath)) != 1 {
			return "", none, dpopErr("DPoP proof ath does not match the access token", nil)
		}
	}
	// The nonce last: a client told to use one learns nothing else is
	// wrong with its proof (RFC 9449 §9).
	if v.nonces != nil {
		if nonce, ok := c.str("nonce"); !ok || !v.nonces.valid(nonce, now) {
			return "", none, errDPoPNonce
		}
	}
	return jkt, proofClaims{jti: jti, iat: iat}, nil
}

// jsonMembers are the members of a JSON object by their exact names.
// JOSE header parameter and claim names are case-sensitive (RFC 7515 §4,
// RFC 7519 §4), where encoding/json matches struct fields to names in any
// case: decoded into a struct, a proof with "TYP" and no typ, or "HTU"
// and no htu, would pass. Of duplicate names the last counts (RFC 7515
// §4 allows that), as everywhere in encoding/json.
type jsonMembers map[string]json.RawMessage

func exactMembers(b []byte) (jsonMembers, error) {
	var m jsonMembers
	if err := json.Unmarshal(b, &m); err != nil {
		// The decoder's own text may quote the proof (a number it could
		// not store, digit for digit): the log gets the offset alone.
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("not JSON (offset %d)", se.Offset)
		case errors.As(err, &te):
			return nil, fmt.Errorf("not a JSON object (offset %d)", te.Offset)
		}
		return nil, errors.New("not a JSON object")
	}
	return m, nil // nil for JSON null: every member is missing
}

// str is the member name when it is a JSON string (not null).
func (m jsonMembers) str(name string) (string, bool) {
	raw, ok := m[name]
	if !ok || len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// num is the member name when it is a JSON number (not null).
func (m jsonMembers) num(name string) (float64, bool) {
	raw, ok := m[name]
	if !ok || len(raw) == 0 || raw[0] == 'n' {
		return 0, false
	}
	var f float64
	if json.Unmarshal(raw, &f) != nil {
		return 0, false
	}
	return f, true
}

// privateJWKMembers are the JWK members of private and symmetric keys
// (RFC 7518 §6.2.2, §6.3.2, §6.4, RFC 8037 §2).
var privateJWKMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseProofJWK reads the proof's public key, refusing private members and
// keys that do not suit alg, and returns it with its RFC 7638 thumbprint.
// Only the members the key type needs reach jwkset: no x5u is fetched and
// no x5c parsed.
func parseProofJWK(raw json.RawMessage, alg string) (any, string, error) {
	var m map[string]json.RawMessage
	if len(raw) == 0 {
		return nil, "", errors.New("no jwk")
	}
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, "", errors.New("jwk is not an object")
	}
	for _, name := range privateJWKMembers {
		if _, ok := m[name]; ok {
			return nil, "", fmt.Errorf("jwk has the private member %q", name)
		}
	}
	str := func(name string) string {
		var s string
		if json.Unmarshal(m[name], &s) != nil {
			return ""
		}
		return s
	}
	// kty and crv are checked against the accepted names here, before
	// jwkset sees them, so that no error (this package's or jwkset's)
	// quotes a value of the proof into the log.
	kty, crv := str("kty"), str("crv")
	var mar jwkset.JWKMarshal
	var members []string // RFC 7638 §3.2: required members, sorted
	switch kty {
	case "EC":
		if crv != "P-256" && crv != "P-384" && crv != "P-521" {
			return nil, "", errors.New("jwk crv not accepted for kty EC")
		}
		mar = jwkset.JWKMarshal{KTY: jwkset.KtyEC, CRV: jwkset.CRV(crv), X: str("x"), Y: str("y")}
		members = []string{"crv", crv, "kty", "EC", "x", mar.X, "y", mar.Y}
	case "OKP":
		if crv != "Ed25519" {
			return nil, "", errors.New("jwk crv not accepted for kty OKP")
		}
		mar = jwkset.JWKMarshal{KTY: jwkset.KtyOKP, CRV: jwkset.CRV(crv), X: str("x")}
		members = []string{"crv", crv, "kty", "OKP", "x", mar.X}
	case "RSA":
		mar = jwkset.JWKMarshal{KTY: jwkset.KtyRSA, E: str("e"), N: str("n")}
		members = []string{"e", mar.E, "kty", "RSA", "n", mar.N}
	default:
		return nil, "", errors.New("jwk kty not accepted")
	}
	j, err := jwkset.NewJWKFromMarshal(mar, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return nil, "", err
	}
	key := j.Key()
	if !keySuitsAlg(key, alg) {
		return nil, "", fmt.Errorf("jwk of type %s does not suit alg %s", kty, alg)
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < len(members); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Quote(members[i]))
		b.WriteByte(':')
		v, _ := json.Marshal(members[i+1])
		b.Write(v)
	}
	b.WriteByte('}')
	sum := sha256.Sum256([]byte(b.String()))
	return key, base64.RawURLEncoding.EncodeToString(sum[:]), nil
}

func keySuitsAlg(key any, alg string) bool {
	switch k := key.(type) {
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return k.Curve == elliptic.P256()
		case "ES384":
			return k.Curve == elliptic.P384()
		case "ES512":
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	case *rsa.PublicKey:
		return (strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")) && k.N.BitLen() >= minRSABits && k.N.BitLen() <= maxRSABits
	}
	return false
}

// normalizeHTU puts an http(s) URL in the form RFC 9449 §4.3 compares:
// without query and fragment, after RFC 3986 §6.2.2 syntax-based
// normalisation (case of scheme and host, upper-case percent-encodings,
// unreserved characters decoded, dot segments removed) and §6.2.3
// scheme-based normalisation (default or empty port dropped, empty path
// is "/"). URLs with userinfo are refused.
func normalizeHTU(s string) (string, error) {
	s, _, _ = strings.Cut(s, "#")
	s, _, _ = strings.Cut(s, "?")
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "", errors.New("htu is not an absolute URL")
	}
	scheme = strings.ToLower(scheme)
	if scheme != "http" && scheme != "https" {
		return "", errors.New("htu is not an http(s) URL")
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if authority == "" || strings.ContainsAny(authority, "@%") {
		return "", errors.New("htu has no host, or userinfo")
	}
	host, port := authority, ""
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.Contains(authority[i:], "]") {
		host, port = authority[:i], authority[i+1:]
	}
	if host == "" || strings.IndexFunc(host, notHostChar) >= 0 {
		return "", errors.New("htu has no host, or a malformed one")
	}
	if bracketed := host[0] == '['; bracketed != (host[len(host)-1] == ']') ||
		strings.ContainsAny(strings.Trim(host, "[]"), "[]") || !bracketed && strings.Contains(host, ":") {
		// A colon belongs in an IP literal, in brackets, or before the
		// port: anything else is no host.
		return "", errors.New("htu host is malformed")
	}
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return "", errors.New("htu port is not a number")
		}
		port = strconv.FormatUint(n, 10)
		if scheme == "http" && n == 80 || scheme == "https" && n == 443 {
			port = ""
		}
	}
	path, err := normalizePercent(path)
	if err != nil {
		return "", err
	}
	path = removeDotSegments(path)
	if path == "" {
		path = "/"
	}
	out := scheme + "://" + strings.ToLower(host)
	if port != "" {
		out += ":" + port
	}
	return out + path, nil
}

func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// normalizePercent upper-cases the hex digits of percent-encodings and
// decodes those of unreserved characters (RFC 3986 §6.2.2.1, §6.2.2.2).
func normalizePercent(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("htu has a broken percent-encoding")
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", errors.New("htu has a broken percent-encoding")
		}
		if c := hi<<4 | lo; isUnreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteString(strings.ToUpper(s[i : i+3]))
		}
		i += 2
	}
	return b.String(), nil
}

// removeDotSegments is RFC 3986 §5.2.4.
func removeDotSegments(in string) string {
	var out []string // output segments, each starting with "/"
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"):
			in = in[3:]
		case strings.HasPrefix(in, "./"):
			in = in[2:]
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = in[3:]
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case in == "/..":
			in = "/"
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case in == "." || in == "..":
			in = ""
		default:
			i := strings.IndexByte(in[1:], '/')
			if i < 0 {
				out = append(out, in)
				in = ""
			} else {
				out = append(out, in[:i+1])
				in = in[i+1:]
			}
		}
	}
	return strings.Join(out, "")
}

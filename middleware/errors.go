package middleware

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

// Sentinel errors returned (wrapped) by Authenticate; test them with errors.Is.
var (
	ErrNoToken      = errors.New("middleware: no access token")
	ErrMalformed    = errors.New("middleware: malformed authorization")
	ErrInvalidToken = errors.New("middleware: invalid token")
	ErrScope        = errors.New("middleware: insufficient scope")
	// ErrRole: the token is valid, but the user lacks a role the route
	// requires (RequireRoles). Answered 403 like ErrScope, but with no
	// scope in the challenge: a new token with more scopes would not help.
	ErrRole        = errors.New("middleware: insufficient role")
	ErrUnavailable = errors.New("middleware: authorization server unavailable")
	// ErrStepUp: the token is valid, but the user's authentication behind
	// it is not the kind or not as recent as the route requires (RFC 9470).
	ErrStepUp = errors.New("middleware: insufficient user authentication")
	// ErrDPoPProof: the request's DPoP proof (RFC 9449) is missing,
	// malformed, or does not fit the request, the token or the key the
	// token is bound to. Answered 401 with the DPoP challenge's error
	// invalid_dpop_proof.
	ErrDPoPProof = errors.New("middleware: invalid DPoP proof")
)

// Reasons name why a request was refused. They are a small fixed set, fit
// for metric labels.
const (
	ReasonOK             = "ok"
	ReasonNoToken        = "no_token"
	ReasonMalformed      = "malformed_request"
	ReasonCSRF           = "csrf"
	ReasonBadToken       = "malformed_token"
	ReasonTooLarge       = "token_too_large"
	ReasonBadHeader      = "bad_header"
	ReasonAlgorithm      = "bad_algorithm"
	ReasonUnknownKey     = "unknown_key"
	ReasonSignature      = "bad_signature"
	ReasonExpired        = "expired"
	ReasonNotYetValid    = "not_yet_valid"
	ReasonIssuedInFuture = "issued_in_future"
	ReasonIssuer         = "bad_issuer"
	// ReasonUnknownIssuer: the token's iss names no issuer the
	// Authenticator trusts; it was refused before its signature.
	ReasonUnknownIssuer = "unknown_issuer"
	ReasonAudience      = "bad_audience"
	ReasonMissingClaim  = "missing_claim"
	ReasonInactive      = "inactive"
	ReasonScope         = "insufficient_scope"
	// ReasonRole: the caller lacks a role the route requires.
	ReasonRole           = "insufficient_role"
	ReasonUnavailable    = "unavailable"
	ReasonNotAccessToken = "not_access_token"
	ReasonBoundToken     = "bound_token"
	// ReasonOverloaded: the introspection client refused to ask the
	// authorization server, to protect it (introspection.ErrOverloaded).
	ReasonOverloaded = "overloaded"
	// ReasonClaims: Config.ValidateClaims refused the caller.
	ReasonClaims = "claims_rejected"
	// ReasonStepUp: the user's authentication behind the token does not
	// meet the route's StepUp (acr or auth_time).
	ReasonStepUp = "insufficient_user_authentication"
	// ReasonDPoPProof: the DPoP proof failed a check of RFC 9449 §4.3.
	ReasonDPoPProof = "invalid_dpop_proof"
	// ReasonDPoPNonce: the DPoP proof lacks a valid server nonce (401
	// use_dpop_nonce, with a new one in the DPoP-Nonce header).
	ReasonDPoPNonce = "use_dpop_nonce"
	// ReasonDPoPReplay: the DPoP proof's jti was seen before.
	ReasonDPoPReplay = "dpop_replay"
	// ReasonDPoPReplayFull: the replay cache was full of live entries, so
	// the proof could not be recorded and was refused (503).
	ReasonDPoPReplayFull = "dpop_replay_cache_full"
	// ReasonDPoPKeyBinding: the DPoP proof is valid, but made with another
	// key than the token's cnf.jkt names (401 invalid_token, as RFC 9449
	// §7.1's example answers it).
	ReasonDPoPKeyBinding = "dpop_key_binding"
	// ReasonDPoPUnbound: a token without cnf.jkt came with the DPoP scheme
	// or, under the Bearer scheme, with a DPoP proof.
	ReasonDPoPUnbound = "dpop_unbound_token"
	// ReasonDPoPRequired: with Config.DPoP DPoPRequired, the request
	// came without the DPoP scheme.
	ReasonDPoPRequired = "dpop_required"
)

// authError is what Authenticate returns: a sentinel kind, a reason for
// metrics, a fixed description that is safe to send to the client, and the
// underlying cause for logs.
type authError struct {
	kind   error
	reason string
	desc   string
	cause  error
	realm  string
	// resourceMetadata is the URL of the resource's RFC 9728 metadata,
	// sent as resource_metadata in every challenge; "" for none.
	resourceMetadata string
	// dpopMode and dpopAlgs are the Authenticator's DPoP settings, for
	// the challenges; dpopScheme is set when the request used the DPoP
	// scheme, whose challenge then carries the error.
	dpopMode   DPoPMode
	dpopAlgs   string
	dpopScheme bool
	// dpopNonce, when set, goes in the DPoP-Nonce header of the answer.
	dpopNonce string
	scopes    []string // for ErrScope: the scopes the route needs
	stepUp    *StepUp  // for ErrStepUp: what the route requires
}

func (e *authError) Error() string {
	s := e.kind.Error() + ": " + e.desc
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

func (e *authError) Is(target error) bool { return target == e.kind }
func (e *authError) Unwrap() error        { return e.cause }

func newErr(kind error, reason, desc string, cause error) *authError {
	return &authError{kind: kind, reason: reason, desc: desc, cause: cause}
}

// Reason returns the reason code of an error from Authenticate, or
// ReasonOK for nil.
func Reason(err error) string {
	if err == nil {
		return ReasonOK
	}
	var ae *authError
	if errors.As(err, &ae) {
		return ae.reason
	}
	switch {
	case errors.Is(err, ErrNoToken):
		return ReasonNoToken
	case errors.Is(err, ErrMalformed):
		return ReasonMalformed
	case errors.Is(err, ErrScope):
		return ReasonScope
	case errors.Is(err, ErrRole):
		return ReasonRole
	case errors.Is(err, ErrStepUp):
		return ReasonStepUp
	case errors.Is(err, ErrUnavailable):
		return ReasonUnavailable
	case errors.Is(err, ErrDPoPProof):
		return ReasonDPoPProof
	}
	return ReasonBadToken
}

// RetryAfter is the Retry-After value, in seconds, sent with 503 answers.
const RetryAfter = 5

// WriteError writes the RFC 6750 §3 answer for an error from Authenticate,
// a scope check or a step-up check (RFC 9470 §3): the status, the WWW-Authenticate challenge and an RFC
// 9457 problem+json body with a reason (see Reason). The description is
// fixed text chosen by this package, never the wrapped cause, so nothing of
// the token is echoed. An error that wraps none of the sentinels is
// answered as an invalid token.
//
// The realm and resource_metadata (RFC 9728 §5.1) are the ones the error
// carries: errors from an Authenticator carry its own, the bare sentinels
// none. (*Authenticator).WriteError answers any error with the
// Authenticator's.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	if err == nil {
		// A caller's mistake; still a refusal, never an answer saying "ok".
		err = errors.New("middleware: WriteError called without an error")
	}
	writeAuthError(w, asAuthError(err))
}

// Challenge returns the status and the WWW-Authenticate value ("" for
// none) that WriteError would send for err, for an ErrorHandler that
// writes a body of its own. A 503 also needs Retry-After (RetryAfter).
// With Config.DPoP DPoPAllowed the value holds two challenges, Bearer
// and DPoP, separated by a comma (RFC 9110 §11.6.1).
func Challenge(err error) (status int, wwwAuthenticate string) {
	return challengeOf(asAuthError(err))
}

// asAuthError returns err's authError, or one made from its sentinel.
func asAuthError(err error) *authError {
	var ae *authError
	if errors.As(err, &ae) {
		return ae
	}
	// Reason maps the sentinels, and anything else to malformed_token: the
	// body always carries a reason.
	ae = &authError{kind: ErrInvalidToken, desc: "invalid token", reason: Reason(err)}
	switch {
	case errors.Is(err, ErrNoToken):
		ae.kind, ae.desc = ErrNoToken, "no access token"
	case errors.Is(err, ErrMalformed):
		ae.kind, ae.desc = ErrMalformed, "malformed authorization"
	case errors.Is(err, ErrScope):
		ae.kind, ae.desc = ErrScope, "insufficient scope"
	case errors.Is(err, ErrRole):
		ae.kind, ae.desc = ErrRole, "insufficient role"
	case errors.Is(err, ErrStepUp):
		ae.kind, ae.desc = ErrStepUp, "insufficient user authentication"
	case errors.Is(err, ErrUnavailable):
		ae.kind, ae.desc = ErrUnavailable, "authorization server unavailable"
	case errors.Is(err, ErrDPoPProof):
		ae.kind, ae.desc = ErrDPoPProof, "invalid DPoP proof"
	}
	return ae
}

func challengeOf(ae *authError) (int, string) {
	switch ae.kind {
	case ErrNoToken:
		return http.StatusUnauthorized, bearer(ae)
	case ErrMalformed:
		return http.StatusBadRequest, bearer(ae, "error", "invalid_request", "error_description", ae.desc)
	case ErrScope:
		kv := []string{"error", "insufficient_scope", "error_description", ae.desc}
		if len(ae.scopes) > 0 {
			// Only what the route asked for: a refusal by ValidateClaims
			// names no scope a new token could bring.
			kv = append(kv, "scope", strings.Join(ae.scopes, " "))
		}
		return http.StatusForbidden, bearer(ae, kv...)
	case ErrRole:
		// RFC 6750 §3.1 defines insufficient_scope as "the request
		// requires higher privileges than provided by the access token",
		// which a missing role is; its scope attribute is optional, and is
		// left out because no scope a client could ask for brings a role.
		// The roles are not named either: the log has them.
		return http.StatusForbidden, bearer(ae, "error", "insufficient_scope", "error_description", ae.desc)
	case ErrStepUp:
		return http.StatusUnauthorized, stepUpChallenge(ae)
	case ErrUnavailable:
		return http.StatusServiceUnavailable, ""
	case ErrDPoPProof:
		code := "invalid_dpop_proof"
		if ae.reason == ReasonDPoPNonce {
			code = "use_dpop_nonce"
		}
		return http.StatusUnauthorized, bearer(ae, "error", code, "error_description", ae.desc)
	}
	return http.StatusUnauthorized, bearer(ae, "error", "invalid_token", "error_description", ae.desc)
}

// stamp gives ae what every answer of the Authenticator carries: its realm
// and the URL of its resource metadata.
func (a *Authenticator) stamp(ae *authError) {
	ae.realm = a.cfg.Realm
	ae.resourceMetadata = a.ResourceMetadataURL()
	if a.dpop != nil {
		ae.dpopMode, ae.dpopAlgs = a.cfg.DPoP, a.dpop.algsStr
		if ae.reason == ReasonDPoPNonce {
			ae.dpopNonce = a.DPoPNonce()
		}
	}
}

func writeAuthError(w http.ResponseWriter, ae *authError) {
	status, challenge := challengeOf(ae)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfter))
	}
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	if ae.dpopNonce != "" {
		w.Header().Set(DPoPNonceHeader, ae.dpopNonce)
	}
	// Authentication answers depend on credentials: never cache them.
	w.Header().Set("Cache-Control", "no-store")
	writeProblem(w, status, ae.desc, ae.reason)
}

// bearer builds the challenges for ae with the attribute pairs. Without
// DPoP, one Bearer challenge. With DPoP (RFC 9449 §7.1), the pairs go on
// the challenge of the scheme the request used, DPoP when DPoP is
// required, and the DPoP challenge carries algs; with DPoP allowed, the
// other scheme's challenge follows, bare.
func bearer(ae *authError, kv ...string) string {
	switch ae.dpopMode {
	case DPoPAllowed:
		if ae.dpopScheme {
			return challenge("DPoP", ae, true, kv...) + ", " + challenge("Bearer", ae, false)
		}
		return challenge("Bearer", ae, false, kv...) + ", " + challenge("DPoP", ae, true)
	case DPoPRequired:
		return challenge("DPoP", ae, true, kv...)
	}
	if ae.kind == ErrDPoPProof {
		// Not from an Authenticator with DPoP on (a bare sentinel).
		return challenge("DPoP", ae, false, kv...)
	}
	return challenge("Bearer", ae, false, kv...)
}

// challenge builds a challenge of scheme from ae's realm, the attribute
// pairs, algs when asked, and ae's resource_metadata (RFC 9728 §5.1),
// last, as in the RFC's examples. Values are fixed text of this package or
// checked configuration, but are escaped all the same.
func challenge(scheme string, ae *authError, algs bool, kv ...string) string {
	var parts []string
	if ae.realm != "" {
		parts = append(parts, `realm=`+quote(ae.realm))
	}
	for i := 0; i+1 < len(kv); i += 2 {
		parts = append(parts, kv[i]+"="+quote(kv[i+1]))
	}
	if algs && ae.dpopAlgs != "" {
		parts = append(parts, `algs=`+quote(ae.dpopAlgs))
	}
	if ae.resourceMetadata != "" {
		parts = append(parts, `resource_metadata=`+quote(ae.resourceMetadata))
	}
	if len(parts) == 0 {
		return scheme
	}
	return scheme + " " + strings.Join(parts, ", ")
}

func quote(s string) string {
	// RFC 6750 §3 limits these values to printable ASCII other than '"'
	// and '\'; drop anything else rather than emit a broken header.
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range []byte(s) {
		if c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func writeProblem(w http.ResponseWriter, status int, detail, reason string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	body := map[string]any{
		"type":   "about:blank",
		"title":  http.StatusText(status),
		"status": status,
		"detail": detail,
	}
	if reason != "" {
		body["reason"] = reason
	}
	_ = json.NewEncoder(w).Encode(body)
}

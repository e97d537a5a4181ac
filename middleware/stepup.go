package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// StepUp is what a route requires of the user authentication behind an
// access token (RFC 9470): how it was done (the token's acr claim) and how
// long ago (its auth_time claim). A token that falls short is answered 401
// with error="insufficient_user_authentication" and the requirement in the
// challenge's acr_values and max_age, so that the client can ask the
// authorization server for a new authentication that meets it and retry.
// The zero StepUp requires nothing.
//
// The authorization server must put acr and auth_time in its access tokens,
// or in its introspection answers (RFC 9470 §6); a token without them
// fails any requirement on them.
type StepUp struct {
	// ACRValues are the acceptable authentication context class
	// references, in order of preference: the token's acr claim must equal
	// one of them exactly. Each is a non-empty string of printable ASCII
	// without spaces, '"' or '\' (they travel in a quoted, space-separated
	// challenge parameter). Empty: any acr, or none.
	ACRValues []string
	// MaxAge is the longest time since the user last actively
	// authenticated: the token's auth_time must be no older than MaxAge
	// plus Config.ClockSkew, and a token without auth_time fails. A whole
	// number of seconds, since the challenge's max_age counts seconds, up
	// to MaxStepUpMaxAge. 0: no limit.
	MaxAge time.Duration
}

// MaxStepUpMaxAge bounds StepUp.MaxAge: the largest max_age (2^31-1
// seconds, 68 years) that authorization servers and clients commonly take
// as an OpenID Connect max_age, and far enough from the largest
// time.Duration that adding ClockSkew cannot overflow.
const MaxStepUpMaxAge = (1<<31 - 1) * time.Second

// maxACRValueLen bounds each of StepUp.ACRValues; real ones are short URNs
// or numbers.
const maxACRValueLen = 256

// Validate reports what is wrong with s, if anything: a negative or
// fractional MaxAge, one over MaxStepUpMaxAge, or an acr value that cannot
// be sent in a challenge.
func (s StepUp) Validate() error {
	var errs []error
	if s.MaxAge < 0 || s.MaxAge > MaxStepUpMaxAge || s.MaxAge%time.Second != 0 {
		errs = append(errs, fmt.Errorf("middleware: StepUp.MaxAge %v: want 0 or a whole number of seconds up to %d", s.MaxAge, MaxStepUpMaxAge/time.Second))
	}
	for _, v := range s.ACRValues {
		if !isACRValue(v) {
			errs = append(errs, fmt.Errorf("middleware: StepUp.ACRValues: %q is not an acr value (1 to %d printable ASCII characters, no space, '\"' or '\\')", v, maxACRValueLen))
		}
	}
	return errors.Join(errs...)
}

// isACRValue reports whether v can be one of the space-separated values of
// a quoted acr_values parameter (RFC 6750 §3 allows %x20-21 / %x23-5B /
// %x5D-7E in such values; the space separates them).
func isACRValue(v string) bool {
	if v == "" || len(v) > maxACRValueLen {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// CheckStepUp returns nil when the request's verified caller meets s, and
// otherwise an ErrStepUp error that WriteError answers with the RFC 9470
// challenge (ErrNoToken when there is no caller). It must run after
// Require. auth_time is judged with the Authenticator's clock and
// ClockSkew. A refusal is logged; it does not call Config.OnOutcome, which
// Authenticate already called for this request.
//
// An invalid s (see StepUp.Validate) refuses every caller, with a challenge
// that names no requirement, and logs the mistake as an error:
// RequireStepUp finds it at start instead.
func (a *Authenticator) CheckStepUp(ctx context.Context, s StepUp) error {
	p, _ := principal.From(ctx)
	ae, why := stepUpError(p, s, a.cfg.Now(), a.cfg.ClockSkew)
	if ae == nil {
		return nil
	}
	a.stamp(ae)
	if ae.kind == ErrStepUp {
		level := slog.LevelInfo
		if why == "invalid_requirement" {
			level = slog.LevelError
		}
		attrs := []slog.Attr{reasonAttr(ae), subjectAttr(p), slog.String("step_up", why)}
		if acr, ok := p.Claims["acr"].(string); ok {
			// The token's own value, no secret, clipped: what an operator
			// compares with the route's ACRValues.
			attrs = append(attrs, slog.String("acr", quoteClip(acr)))
		}
		a.cfg.Logger.LogAttrs(ctx, level, "request refused", attrs...)
	}
	return ae
}

// RequireStepUp is net/http middleware, placed after Require, that answers
// 401 insufficient_user_authentication with the acr_values and max_age of
// s unless the caller's token meets s (see CheckStepUp). It panics when s
// is invalid (see StepUp.Validate), so the mistake shows at start.
func (a *Authenticator) RequireStepUp(s StepUp) func(http.Handler) http.Handler {
	if err := s.Validate(); err != nil {
		panic(err.Error())
	}
	s.ACRValues = slices.Clone(s.ACRValues) // the caller's slice may change later
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := a.CheckStepUp(r.Context(), s); err != nil {
				a.WriteError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Fixed descriptions of a step-up refusal: RFC 9470 §3's own examples.
const (
	descACR    = "A different authentication level is required"
	descRecent = "More recent authentication is required"
)

// stepUpError judges p against s at now, with leeway skew for auth_time.
// It returns nil, or the refusal and a short word for the log saying why.
func stepUpError(p principal.Principal, s StepUp, now time.Time, skew time.Duration) (*authError, string) {
	if p.Subject == "" {
		return &authError{kind: ErrNoToken, reason: ReasonNoToken, desc: "no access token"}, ""
	}
	if s.Validate() != nil {
		// Fail closed, naming nothing: a challenge built from a broken
		// requirement could only mislead the client.
		return stepUpRefusal(StepUp{}, descACR, "invalid_requirement")
	}
	if len(s.ACRValues) > 0 {
		acr, _ := p.Claims["acr"].(string)
		if !slices.Contains(s.ACRValues, acr) {
			return stepUpRefusal(s, descACR, "acr")
		}
	}
	if s.MaxAge > 0 {
		at, ok := authTime(p.Claims["auth_time"])
		switch {
		case !ok:
			return stepUpRefusal(s, descRecent, "auth_time_missing")
		case at.After(now.Add(skew)):
			// An authentication in the future is no evidence of a recent
			// one; a new authentication brings a sane value.
			return stepUpRefusal(s, descRecent, "auth_time_in_future")
		case now.Sub(at)-skew > s.MaxAge:
			// Not MaxAge+skew, which could overflow; at is at most skew
			// ahead of now here, so this side cannot.
			return stepUpRefusal(s, descRecent, "auth_time_too_old")
		}
	}
	return nil, ""
}

// stepUpRefusal is the ErrStepUp error naming the requirement s.
func stepUpRefusal(s StepUp, desc, why string) (*authError, string) {
	return &authError{kind: ErrStepUp, reason: ReasonStepUp, desc: desc, stepUp: &s}, why
}

// maxAuthTime bounds auth_time as numericDate bounds exp: later values
// are nonsense.
const maxAuthTime = 1 << 40

// authTime reads an auth_time claim (a NumericDate, RFC 7519 §2): a JSON
// number of seconds, decoded as float64 from a JWT or an introspection
// answer, or as json.Number or an integer in a Principal built by hand.
func authTime(v any) (time.Time, bool) {
	var f float64
	switch n := v.(type) {
	case float64:
		f = n
	case json.Number:
		var err error
		if f, err = strconv.ParseFloat(string(n), 64); err != nil {
			return time.Time{}, false
		}
	case int64:
		f = float64(n)
	case int:
		f = float64(n)
	default:
		return time.Time{}, false
	}
	if math.IsNaN(f) || f < 0 || f > maxAuthTime {
		return time.Time{}, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true
}

// stepUpChallenge is the RFC 9470 §3 challenge for a step-up refusal: the
// error, its description, and the requirement of the route, all of it, so
// that the new authentication meets every part at once.
func stepUpChallenge(ae *authError) string {
	kv := []string{"error", "insufficient_user_authentication", "error_description", ae.desc}
	if s := ae.stepUp; s != nil {
		if len(s.ACRValues) > 0 {
			kv = append(kv, "acr_values", strings.Join(s.ACRValues, " "))
		}
		if s.MaxAge > 0 {
			kv = append(kv, "max_age", strconv.FormatInt(int64(s.MaxAge/time.Second), 10))
		}
	}
	return bearer(ae, kv...)
}

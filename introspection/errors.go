package introspection

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Sentinel errors returned (wrapped) by Introspect; test them with errors.Is.
var (
	// ErrInactive means the authorization server says the token is not
	// active: expired, revoked, unknown, or not for us to know about.
	ErrInactive = errors.New("introspection: token is not active")
	// ErrUnavailable means the authorization server gave no verdict: it was
	// unreachable, too slow, or answered with a non-200 status (see Error).
	ErrUnavailable = errors.New("introspection: authorization server unavailable")
	// ErrMalformedResponse means a 200 answer could not be trusted: not
	// JSON, not an object, oversized, or a known member of the wrong type.
	ErrMalformedResponse = errors.New("introspection: malformed response")
	// ErrNotAccessToken means the server says the token is active but its
	// answer says it is not an access token: a refresh token, an ID token,
	// or another kind (see Response.CheckAccessToken). RFC 7662 servers
	// answer for refresh tokens too, and one of those must not pass as a
	// bearer token. Every such error also matches ErrInactive, so callers
	// that only know ErrInactive refuse the token as well.
	ErrNotAccessToken = errors.New("introspection: token is not an access token")
	// ErrOverloaded means the Client did not ask the authorization server,
	// because MaxInFlight requests were already in flight or RateLimit was
	// reached: there is no verdict, try again later. It also matches
	// ErrUnavailable, so code written for that answers it the same way
	// (503 in a resource server).
	ErrOverloaded = errors.New("introspection: too many requests to the authorization server")
)

// notAccessToken is the ErrNotAccessToken error: it names the member of the
// answer that gave the token away.
type notAccessToken struct {
	member, value string
}

func (e *notAccessToken) Error() string {
	return fmt.Sprintf("%v: %s is %s", ErrNotAccessToken, e.member, e.value)
}

// Is reports whether target is ErrNotAccessToken or ErrInactive.
func (e *notAccessToken) Is(target error) bool {
	return target == ErrNotAccessToken || target == ErrInactive
}

// Error is a non-200 answer from the introspection endpoint. Every Error
// matches ErrUnavailable under errors.Is: RFC 7662 answers an invalid token
// with 200 and "active": false, so an error status is a fault of the server
// or of our own configuration (401 and 403: our client credentials were
// refused), never a verdict on the caller's token.
type Error struct {
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Code, Description and URI are the RFC 6749 §5.2 members "error",
	// "error_description" and "error_uri", when the body is a JSON object
	// that has them.
	Code        string
	Description string
	URI         string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("introspection: server answered ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if t := http.StatusText(e.StatusCode); t != "" {
		b.WriteString(" " + t)
	}
	if e.Code != "" {
		b.WriteString(": " + e.Code)
	}
	if e.Description != "" {
		b.WriteString(": " + e.Description)
	}
	return b.String()
}

// Is reports whether target is ErrUnavailable, which every Error is.
func (e *Error) Is(target error) bool { return target == ErrUnavailable }

// CredentialsRejected reports whether the server refused our own client
// authentication (401 or 403): an operator must fix the client id, secret
// or AuthMethod.
func (e *Error) CredentialsRejected() bool {
	return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
}

// maxDescription bounds server-chosen text kept in an Error.
const maxDescription = 200

// clean makes server-chosen text fit for an error message: the token
// replaced, if the server echoed it, and the length bounded.
func clean(s, token string) string {
	if token != "" {
		s = strings.ReplaceAll(s, token, "[token]")
	}
	if len(s) > maxDescription {
		cut := maxDescription
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func unavailable(err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedResponse}, args...)...)
}

// overloadError is ErrOverloaded with the reason, matching ErrUnavailable
// too.
type overloadError struct{ reason string }

func (e *overloadError) Error() string { return ErrOverloaded.Error() + ": " + e.reason }

// Is reports whether target is ErrOverloaded or ErrUnavailable.
func (e *overloadError) Is(target error) bool {
	return target == ErrOverloaded || target == ErrUnavailable
}

func overloaded(reason string) error { return &overloadError{reason: reason} }

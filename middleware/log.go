package middleware

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

func levelFor(err error) slog.Level {
	switch {
	case errors.Is(err, introspection.ErrOverloaded):
		// The bound doing its job, typically against a flood of garbage
		// tokens: worth a warning, not an alert per refused request.
		return slog.LevelWarn
	case errors.Is(err, ErrUnavailable):
		return slog.LevelError
	}
	return slog.LevelInfo
}

func reasonAttr(err error) slog.Attr { return slog.String("reason", Reason(err)) }

func sourceAttr(src principal.Source) slog.Attr { return slog.String("source", string(src)) }

func subjectAttr(p principal.Principal) slog.Attr { return slog.String("sub", p.Subject) }

// errAttr logs the cause of a refusal. Causes come from golang-jwt, keyfunc,
// net/http and the token decoders (see malformed), none of which quote the
// token (malformed rewrites encoding/json's one error that quotes a whole
// number). Cut to maxLoggedError bytes all the same, so that no cause can
// fill the log.
func errAttr(err error) slog.Attr {
	s := err.Error()
	if len(s) > maxLoggedError {
		s = strings.ToValidUTF8(s[:maxLoggedError], "") + "…"
	}
	return slog.String("error", s)
}

const maxLoggedError = 512

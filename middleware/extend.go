package middleware

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// accept runs Config.ValidateClaims on a caller that passed the built-in
// checks, fresh or from the cache, its Source already the request's.
func (a *Authenticator) accept(r *http.Request, p principal.Principal) error {
	if a.cfg.ValidateClaims == nil {
		return nil
	}
	verr := a.cfg.ValidateClaims(r.Context(), p)
	if verr == nil {
		return nil
	}
	var err *authError
	switch {
	case errors.Is(verr, ErrUnavailable):
		err = newErr(ErrUnavailable, ReasonUnavailable, "authorization data unavailable", verr)
	case errors.Is(verr, ErrScope):
		err = newErr(ErrScope, ReasonClaims, "token is not permitted here", verr)
	case errors.Is(verr, ErrRole):
		err = newErr(ErrRole, ReasonClaims, "token is not permitted here", verr)
	default:
		err = newErr(ErrInvalidToken, ReasonClaims, "token claims not accepted", verr)
	}
	// The function's own text goes to the log only: it may say more about
	// the application's rules than a client should learn.
	a.cfg.Logger.LogAttrs(r.Context(), levelFor(err), "token refused", reasonAttr(err), sourceAttr(p.Source), tokenHashAttr(p), subjectAttr(p), errAttr(verr))
	return err
}

// tokenHashAttr names p's token in a log line by its short hash, computed
// here: only a request that logs pays for it.
func tokenHashAttr(p principal.Principal) slog.Attr {
	return slog.String(introspection.TokenHashLogKey, p.TokenHash())
}

// IsNoToken reports whether err from Authenticate means that the request
// carried no token at all, the one refusal Optional lets through. It judges
// by the refusal's own kind, not by errors.Is on the causes it wraps: a
// ValidateClaims error that wraps ErrNoToken is still a refused token.
func IsNoToken(err error) bool {
	var ae *authError
	if errors.As(err, &ae) {
		return ae.kind == ErrNoToken
	}
	return errors.Is(err, ErrNoToken)
}

// WriteError answers a refused request as the Authenticator's routes do:
// with Config.ErrorHandler when set, else the package-level WriteError.
// Any error gets the Authenticator's realm and resource_metadata first, so
// a handler's own refusal (a bare ErrScope, CheckAnyScope's error) keeps
// them too.
func (a *Authenticator) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	ae := *asAuthError(err)
	a.stamp(&ae)
	if a.dpop != nil && r != nil {
		// A refusal after authentication (scope, role, step-up) goes on
		// the challenge of the scheme the request used.
		if _, dpop := splitDPoP(r.Header.Get("Authorization")); dpop {
			ae.dpopScheme = true
		}
	}
	if ae.cause == nil && err != nil && !errors.As(err, new(*authError)) {
		ae.cause = err // keep errors.Is working on the caller's own error
	}
	if a.cfg.ErrorHandler != nil {
		a.cfg.ErrorHandler(w, r, &ae)
		return
	}
	writeAuthError(w, &ae)
}

// Optional is net/http middleware for routes that serve anonymous callers
// too: a request without a token goes on with no Principal (principal.From
// reports false); one with a token goes on only if the token is valid, and
// is refused as Require refuses it otherwise. A bad token is never treated
// as none, so a client learns its token is bad.
func (a *Authenticator) Optional(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.authenticateShared(r)
		switch {
		case IsNoToken(err):
			next.ServeHTTP(w, r)
		case err != nil:
			a.WriteError(w, r, err)
		default:
			a.setNextDPoPNonce(w, p)
			next.ServeHTTP(w, r.WithContext(principal.WithShared(r.Context(), p)))
		}
	})
}

// CheckAnyScope returns nil when the request's verified caller holds at
// least one of scopes, and an ErrScope error naming them otherwise. It
// must run after Require.
func (a *Authenticator) CheckAnyScope(ctx context.Context, scopes ...string) error {
	return a.checkScopes(ctx, scopes, true)
}

// RequireAnyScope is net/http middleware, placed after Require, that
// answers 403 insufficient_scope naming the scopes unless the caller holds
// at least one of them. It panics when given no scope, a route no one
// could reach, so the mistake shows at start.
func (a *Authenticator) RequireAnyScope(scopes ...string) func(http.Handler) http.Handler {
	if len(scopes) == 0 {
		panic("middleware: RequireAnyScope needs at least one scope")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := a.CheckAnyScope(r.Context(), scopes...); err != nil {
				a.WriteError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (a *Authenticator) checkScopes(ctx context.Context, scopes []string, anyOf bool) error {
	p, _ := principal.From(ctx)
	err := scopeError(p, scopes, anyOf)
	if err == nil {
		return nil
	}
	a.stamp(err)
	if err.kind == ErrScope {
		// No OnOutcome: Authenticate already reported this request.
		a.cfg.Logger.LogAttrs(ctx, levelFor(err), "request refused", reasonAttr(err), subjectAttr(p), slog.Bool("any_of", anyOf))
	}
	return err
}

// CheckScopes returns nil when p holds every one of scopes, and otherwise
// the ErrScope error that RequireScopes answers with (ErrNoToken when p has
// no subject). It needs no Authenticator, so a handler can check a scope of
// its own and its unit test can inject the principal; answer the error
// with (*Authenticator).WriteError, which adds the realm.
func CheckScopes(p principal.Principal, scopes ...string) error {
	if err := scopeError(p, scopes, false); err != nil {
		return err
	}
	return nil
}

// CheckAnyScope is CheckScopes for any one of scopes; with no scopes it
// refuses.
func CheckAnyScope(p principal.Principal, scopes ...string) error {
	if err := scopeError(p, scopes, true); err != nil {
		return err
	}
	return nil
}

func scopeError(p principal.Principal, scopes []string, anyOf bool) *authError {
	switch {
	case p.Subject == "":
		return &authError{kind: ErrNoToken, reason: ReasonNoToken, desc: "no access token"}
	case anyOf && p.HasAnyScope(scopes...), !anyOf && p.HasScopes(scopes...):
		return nil
	case anyOf:
		return &authError{kind: ErrScope, reason: ReasonScope, desc: "token lacks every accepted scope", scopes: scopes}
	}
	return &authError{kind: ErrScope, reason: ReasonScope, desc: "token lacks a required scope", scopes: scopes}
}

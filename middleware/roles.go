package middleware

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// Roles are what the user is, read from the claims Config.RoleClaims
// names; scopes are what the client may do on the user's behalf. The
// checks below look at Principal.Roles only, never at Scopes, so that a
// role and a scope of the same name can never stand in for each other.
// A refusal is 403 with error="insufficient_scope" and no scope attribute
// (see ErrRole), reason insufficient_role.

// CheckRoles returns nil when the request's verified caller holds every
// one of roles, and an ErrRole error otherwise. It must run after Require.
// A refusal is logged, with the roles the route needs; it does not call
// Config.OnOutcome, which Authenticate already called for this request.
func (a *Authenticator) CheckRoles(ctx context.Context, roles ...string) error {
	return a.checkRoles(ctx, roles, false)
}

// CheckAnyRole returns nil when the request's verified caller holds at
// least one of roles, and an ErrRole error otherwise. It must run after
// Require.
func (a *Authenticator) CheckAnyRole(ctx context.Context, roles ...string) error {
	return a.checkRoles(ctx, roles, true)
}

// RequireRoles is net/http middleware, placed after Require, that answers
// 403 unless the caller holds every one of roles. With no roles it lets
// every authenticated request through.
func (a *Authenticator) RequireRoles(roles ...string) func(http.Handler) http.Handler {
	return a.requireRoles(roles, false)
}

// RequireAnyRole is net/http middleware, placed after Require, that
// answers 403 unless the caller holds at least one of roles. It panics
// when given no role, a route no one could reach, so the mistake shows at
// start.
func (a *Authenticator) RequireAnyRole(roles ...string) func(http.Handler) http.Handler {
	if len(roles) == 0 {
		panic("middleware: RequireAnyRole needs at least one role")
	}
	return a.requireRoles(roles, true)
}

func (a *Authenticator) requireRoles(roles []string, anyOf bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := a.checkRoles(r.Context(), roles, anyOf); err != nil {
				a.WriteError(w, r, err)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func (a *Authenticator) checkRoles(ctx context.Context, roles []string, anyOf bool) error {
	p, _ := principal.From(ctx)
	err := roleError(p, roles, anyOf)
	if err == nil {
		return nil
	}
	err.realm = a.cfg.Realm
	if err.kind == ErrRole {
		// The roles the route needs go to the log, never to the client.
		a.cfg.Logger.LogAttrs(ctx, levelFor(err), "request refused", reasonAttr(err), subjectAttr(p), slog.Any("roles", roles), slog.Bool("any_of", anyOf))
	}
	return err
}

// CheckRoles returns nil when p holds every one of roles, and otherwise the
// ErrRole error that RequireRoles answers with (ErrNoToken when p has no
// subject). It needs no Authenticator, so a handler can check a role of its
// own and its unit test can inject the principal; answer the error with
// (*Authenticator).WriteError, which adds the realm.
func CheckRoles(p principal.Principal, roles ...string) error {
	if err := roleError(p, roles, false); err != nil {
		return err
	}
	return nil
}

// CheckAnyRole is CheckRoles for any one of roles; with no roles it
// refuses.
func CheckAnyRole(p principal.Principal, roles ...string) error {
	if err := roleError(p, roles, true); err != nil {
		return err
	}
	return nil
}

func roleError(p principal.Principal, roles []string, anyOf bool) *authError {
	switch {
	case p.Subject == "":
		return &authError{kind: ErrNoToken, reason: ReasonNoToken, desc: "no access token"}
	case anyOf && p.HasAnyRole(roles...), !anyOf && p.HasRoles(roles...):
		return nil
	case anyOf:
		return &authError{kind: ErrRole, reason: ReasonRole, desc: "token lacks every accepted role"}
	}
	return &authError{kind: ErrRole, reason: ReasonRole, desc: "token lacks a required role"}
}

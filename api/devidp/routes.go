package devidp

import (
	"log/slog"
	"net/http"

	"github.com/ory/fosite"

	"github.com/tollgate-dev/tollgate/internal/httpserve"
)

// routes is the whole HTTP surface.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// handle names the matched pattern for the request log line.
	handle := func(pattern string, h http.Handler) {
		mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			httpserve.SetRoute(r, pattern)
			h.ServeHTTP(w, r)
		}))
	}
	handle("GET /{$}", http.HandlerFunc(s.handleIndex))
	handle("GET /healthz", http.HandlerFunc(handleHealthz))
	handle("GET /.well-known/openid-configuration", http.HandlerFunc(s.handleDiscovery))
	handle("GET /.well-known/oauth-authorization-server", http.HandlerFunc(s.handleDiscovery))
	handle("GET /jwks", http.HandlerFunc(s.handleJWKS))
	handle("GET /authorize", http.HandlerFunc(s.handleAuthorizeForm))
	// The login form posts back here; cross-site posts are refused (login CSRF).
	handle("POST /authorize", http.NewCrossOriginProtection().Handler(http.HandlerFunc(s.handleAuthorizeLogin)))
	handle("POST /token", http.HandlerFunc(s.handleToken))
	handle("POST /introspect", http.HandlerFunc(s.handleIntrospect))
	handle("POST /revoke", http.HandlerFunc(s.handleRevoke))
	handle("GET /userinfo", http.HandlerFunc(s.handleUserinfo))
	handle("POST /userinfo", http.HandlerFunc(s.handleUserinfo))
	handle("GET /logout", http.HandlerFunc(s.handleLogout))
	handle("POST /logout", http.HandlerFunc(s.handleLogout))
	return mux
}

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// logOAuthError logs why fosite refused a request: the RFC 6749 error code and
// fosite's hint and debug text, which name the rule broken, never a token.
func (s *Server) logOAuthError(r *http.Request, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	s.logger.LogAttrs(r.Context(), slog.LevelWarn, "oauth error",
		slog.String("path", r.URL.Path), slog.String("error", rfc.ErrorField),
		slog.String("hint", rfc.HintField), slog.String("debug", rfc.DebugField))
}

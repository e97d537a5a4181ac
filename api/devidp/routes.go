package devidp

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/ory/fosite"
)

// routes is the whole HTTP surface.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.handleIndex)
	mux.HandleFunc("GET /healthz", handleHealthz)
	mux.HandleFunc("GET /.well-known/openid-configuration", s.handleDiscovery)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.handleDiscovery)
	mux.HandleFunc("GET /jwks", s.handleJWKS)
	mux.HandleFunc("GET /authorize", s.handleAuthorizeForm)
	// The login form posts back here; cross-site posts are refused (login CSRF).
	mux.Handle("POST /authorize", http.NewCrossOriginProtection().Handler(http.HandlerFunc(s.handleAuthorizeLogin)))
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("POST /introspect", s.handleIntrospect)
	mux.HandleFunc("POST /revoke", s.handleRevoke)
	mux.HandleFunc("GET /userinfo", s.handleUserinfo)
	mux.HandleFunc("POST /userinfo", s.handleUserinfo)
	mux.HandleFunc("GET /logout", s.handleLogout)
	mux.HandleFunc("POST /logout", s.handleLogout)
	return s.logRequests(mux)
}

// logRequests logs method, path, status and duration. Never the query or
// body: they carry codes, tokens and secrets.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		level := slog.LevelInfo
		if rec.status >= 500 {
			level = slog.LevelError
		}
		s.logger.LogAttrs(r.Context(), level, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

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

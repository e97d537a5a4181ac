package exchange

import (
	"embed"
	"net/http"
	"strings"
)

// embeddedWeb is the todo web page; Config.WebDir replaces it for
// development.
//
//go:embed web
var embeddedWeb embed.FS

// handleWeb serves the web page's static files, with a Content-Security-
// Policy that lets its scripts talk to this server and the todo API only.
func (s *Server) handleWeb(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeProblem(w, http.StatusMethodNotAllowed, "method not allowed")
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", s.pageCSP())
	h.Set("Cache-Control", "no-cache")
	http.FileServerFS(s.web).ServeHTTP(w, r)
}

func (s *Server) pageCSP() string {
	connect := []string{"'self'"}
	if o := origin(s.cfg.TodoAPIURL); o != "" && o != s.origin {
		connect = append(connect, o)
	}
	// form-action also covers the redirects after a form post: a page may
	// post to /login, which redirects to the authorization server.
	forms := []string{"'self'"}
	if o := origin(s.cfg.Issuer); o != "" && o != s.origin {
		forms = append(forms, o)
	}
	return "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src " + strings.Join(connect, " ") + "; form-action " + strings.Join(forms, " ") +
		"; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
}

package exchange

import (
	"net/http"
	"path"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tollgate-dev/tollgate/internal/httpserve"
)

// staticRoute is the route name, in the request log line and the metrics,
// of the web page and of every answer that matched no route and method:
// unknown paths and 405s.
const staticRoute = "static"

// routes is the whole HTTP surface:
//
//	GET    /login[?returnTo=/path]  start a login (302 to the authorization server),
//	       [&acr_values=…&max_age=…] asking it for a stronger or fresher sign-in (RFC 9470)
//	GET    /oauth-callback           finish it (303 to returnTo, or an error page)
//	POST   /refreshtoken             refresh the access token (X-CSRF: 1)
//	DELETE /refreshtoken             sign out (X-CSRF: 1)
//	GET    /me                       who is signed in
//	GET    /config.json              what the web page needs to know
//	GET    /healthz, /metrics
//	GET    /*                        the web page
//
// It is net/http's ServeMux, not a web framework: every handler works on
// the plain http.ResponseWriter and *http.Request, the routes are fixed
// paths, and a framework would add nothing here but a dependency to the
// exchange binary. The patterns carry no method: ServeMux lets HEAD into a
// GET pattern and answers a wrong method with a text/plain 405, so each
// path dispatches its methods itself (methods) to answer a problem+json 405
// with Allow, HEAD included, as this server always has.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.handle(mux, loginPath, methods{http.MethodGet: s.handleLogin})
	s.handle(mux, callbackPath, methods{http.MethodGet: s.handleCallback})
	s.handle(mux, refreshPath, methods{
		http.MethodPost:   s.requireCSRF(s.handleRefresh),
		http.MethodDelete: s.requireCSRF(s.handleLogout),
	})
	s.handle(mux, mePath, methods{http.MethodGet: s.handleMe})
	s.handle(mux, configPath, methods{http.MethodGet: s.handleConfig})
	s.handle(mux, "/healthz", methods{http.MethodGet: handleHealthz})
	s.handle(mux, "/metrics", methods{http.MethodGet: promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}).ServeHTTP})
	// "/" matches every other path: the web page, which answers 405 itself
	// to methods other than GET and HEAD.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, staticRoute, s.handleWeb)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// ServeMux answers an unclean path (//login, /a/../login) with a
		// redirect to the clean one; no route here is such a path, so it
		// goes to the web page, whose file server cleans it.
		if !isCleanPath(r.URL.EscapedPath()) {
			s.serve(w, r, staticRoute, s.handleWeb)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// methods serves one path: the handler of the request's method, or a 405
// problem with an Allow header.
type methods map[string]http.HandlerFunc

// allowOrder is the order of the methods in Allow headers.
var allowOrder = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// handle routes the path pattern to the handlers of m. A 405 is named
// staticRoute, not pattern, in the log line and the metrics, as the
// answers that match no route are.
func (s *Server) handle(mux *http.ServeMux, pattern string, m methods) {
	var allowed []string
	for _, method := range allowOrder {
		if m[method] != nil {
			allowed = append(allowed, method)
		}
	}
	allow := strings.Join(allowed, ", ")
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if h, ok := m[r.Method]; ok {
			s.serve(w, r, pattern, h)
			return
		}
		w.Header().Set("Allow", allow)
		s.serve(w, r, staticRoute, methodNotAllowed)
	})
}

// serve runs h for the route: it names the route to the request log line,
// sets the security headers and counts the answer.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, route string, h http.HandlerFunc) {
	httpserve.SetRoute(r, route)
	securityHeaders(w)
	s.metrics.observe(route, h, w, r)
}

func methodNotAllowed(w http.ResponseWriter, _ *http.Request) {
	writeProblem(w, http.StatusMethodNotAllowed, "method not allowed")
}

// isCleanPath reports whether ServeMux would serve p as it is, rather than
// redirect to a cleaned path (the test of net/http's cleanPath).
func isCleanPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np == p
}

// securityHeaders go on every answer. Referrer-Policy is same-origin, not
// no-referrer, because under no-referrer browsers send "Origin: null" on
// same-origin POST and DELETE; /oauth-callback, whose URL carries the
// authorization code, sets no-referrer itself.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// requireCSRF admits a request to /refreshtoken only with the header
// X-CSRF: 1, which a cross-site page cannot send without a CORS preflight
// that this server never answers. When the browser names an Origin, it must
// be ours; "null" (sent by privacy settings and sandboxed frames) is let
// through to the header check, which alone already stops cross-site calls.
func (s *Server) requireCSRF(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-CSRF") != "1" {
			writeProblem(w, http.StatusForbidden, "the X-CSRF: 1 header is required")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "null" && o != s.origin {
			writeProblem(w, http.StatusForbidden, "cross-origin request refused")
			return
		}
		next(w, r)
	}
}

func handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write([]byte(`{"status":"ok"}`))
}

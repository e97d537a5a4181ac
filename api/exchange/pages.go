package exchange

import (
	"encoding/json"
	"html/template"
	"net/http"
)

// writeProblem writes an RFC 9457 problem+json body.
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "about:blank", "title": http.StatusText(status),
		"status": status, "detail": detail,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// errorPage is what a person sees when a login cannot finish. Code is an
// OAuth error code or our own short reason, shown so that support can be
// told; it never holds a token or the authorization code.
type errorPage struct {
	Title    string
	Message  string
	Code     string
	Detail   string // the server's error_description, when it gave one
	RetryURL string // "Sign in again" link, a local path
}

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Tollgate</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#18181b}
h1{font-size:1.5rem}code{background:#f4f4f5;padding:0 .25rem}.detail{color:#52525b}a.button{display:inline-block;margin-top:1rem;padding:.5rem 1rem;background:#18181b;color:#fff;border-radius:.375rem;text-decoration:none}</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{if .Detail}}<p class="detail">The sign-in server said: {{.Detail}}</p>{{end}}
{{if .Code}}<p class="detail">Error code: <code>{{.Code}}</code></p>{{end}}
<p><a class="button" href="{{.RetryURL}}">Sign in again</a> <a href="/">Home</a></p>
</main>
</body>
</html>
`))

func renderError(w http.ResponseWriter, status int, p errorPage) {
	if p.RetryURL == "" {
		p.RetryURL = loginPath
	}
	if len(p.Detail) > 300 {
		p.Detail = p.Detail[:300] + "…"
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = errorTemplate.Execute(w, p)
}

// loginURL is /login for the same attempt as tx (its returnTo and step-up
// parameters), for "Sign in again" links.
func loginURL(tx transaction) string {
	q := loginQuery(tx)
	if len(q) == 0 {
		return loginPath
	}
	return loginPath + "?" + q.Encode()
}

package middleware_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// redirectIdP is an https issuer whose metadata location and key set can
// be made to redirect to plain http, where a network attacker answers: with
// metadata naming the attacker's own https key set (any URL with a valid
// certificate), or with the attacker's key set itself.
type redirectIdP struct {
	idp, attackerTLS, plain *httptest.Server
	legit, attacker         *authtest.Key
	metaToHTTP, jwksToHTTP  atomic.Bool
}

func newRedirectIdP(t *testing.T) *redirectIdP {
	t.Helper()
	p := &redirectIdP{legit: newECKey(t, "legit"), attacker: newECKey(t, "attacker")}
	jwks := func(k *authtest.Key) []byte {
		b, _ := json.Marshal(map[string]any{"keys": []any{authtest.PublicJWK(k)}})
		return b
	}
	p.attackerTLS = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(jwks(p.attacker))
	}))
	t.Cleanup(p.attackerTLS.Close)
	p.plain = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/jwks" {
			_, _ = w.Write(jwks(p.attacker))
			return
		}
		b, _ := json.Marshal(map[string]any{"issuer": p.idp.URL, "jwks_uri": p.attackerTLS.URL + "/jwks"})
		_, _ = w.Write(b)
	}))
	t.Cleanup(p.plain.Close)
	p.idp = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == metadataPath && p.metaToHTTP.Load(),
			r.URL.Path == "/jwks" && p.jwksToHTTP.Load():
			http.Redirect(w, r, p.plain.URL+r.URL.Path, http.StatusFound)
		case r.URL.Path == metadataPath:
			b, _ := json.Marshal(map[string]any{"issuer": p.idp.URL, "jwks_uri": p.idp.URL + "/jwks"})
			_, _ = w.Write(b)
		case r.URL.Path == "/jwks":
			_, _ = w.Write(jwks(p.legit))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(p.idp.Close)
	return p
}

func (p *redirectIdP) config(logs *syncBuffer) middleware.Config {
	// The httptest servers share one certificate: this client trusts the
	// issuer and the attacker's https server alike, as a real client
	// trusts any server with a valid certificate.
	return middleware.Config{
		Issuer: p.idp.URL, Audiences: []string{"api"}, HTTPClient: p.idp.Client(),
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}
}

// TestReview17RedirectToHTTPAtStart: an https issuer's metadata and keys
// are never read from plain http, even when an https URL redirects there
// (the default http.Client follows such redirects): the answer could be
// anyone's on the network path.
func TestReview17RedirectToHTTPAtStart(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*redirectIdP, *middleware.Config)
	}{
		{"metadata redirected to http", func(p *redirectIdP, _ *middleware.Config) { p.metaToHTTP.Store(true) }},
		{"discovered jwks_uri redirected to http", func(p *redirectIdP, _ *middleware.Config) { p.jwksToHTTP.Store(true) }},
		{"configured https JWKSURL redirected to http", func(p *redirectIdP, c *middleware.Config) {
			p.jwksToHTTP.Store(true)
			c.JWKSURL = p.idp.URL + "/jwks"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRedirectIdP(t)
			var logs syncBuffer
			cfg := p.config(&logs)
			tc.set(p, &cfg)
			auth, err := middleware.New(t.Context(), cfg)
			if err == nil {
				w := do(auth, bearerRequest(signFor(t, p.attacker, p.idp.URL)))
				t.Fatalf("New succeeded through an https-to-http redirect (JWKSURL %s); the attacker's token: %d", auth.JWKSURL(), w.Code)
			}
			if !strings.Contains(err.Error(), "plain http") {
				t.Errorf("error %q does not say that the redirect went to plain http", err)
			}
		})
	}
}

// TestReview17RedirectToHTTPAtRefresh: the same at a key refresh, which a
// token with an unknown kid causes: metadata re-read through a redirect to
// plain http must not move jwks_uri, nor keys fetched so replace the
// issuer's; the old keys keep working.
func TestReview17RedirectToHTTPAtRefresh(t *testing.T) {
	for _, which := range []string{"metadata", "jwks"} {
		t.Run(which, func(t *testing.T) {
			p := newRedirectIdP(t)
			var logs syncBuffer
			auth, err := middleware.New(t.Context(), p.config(&logs))
			if err != nil {
				t.Fatal(err)
			}
			if which == "metadata" {
				p.metaToHTTP.Store(true)
			} else {
				p.jwksToHTTP.Store(true)
			}
			if w := do(auth, bearerRequest(signFor(t, p.attacker, p.idp.URL))); w.Code == http.StatusOK {
				t.Fatalf("the attacker's token accepted after a refresh through an https-to-http redirect (JWKSURL now %s)", auth.JWKSURL())
			}
			if got := auth.JWKSURL(); got != p.idp.URL+"/jwks" {
				t.Errorf("JWKSURL() = %q, want the issuer's own", got)
			}
			if w := do(auth, bearerRequest(signFor(t, p.legit, p.idp.URL))); w.Code != http.StatusOK {
				t.Errorf("the issuer's key after the refused refresh: %d %s", w.Code, w.Body)
			}
			if !strings.Contains(logs.String(), "plain http") {
				t.Errorf("log %s: want a warning about plain http", logs.String())
			}
		})
	}
}

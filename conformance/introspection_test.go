package conformance

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/introspection"
)

// introspectionEndpoint is a real RFC 7662 endpoint that answers body (a
// JSON object) to every request and remembers the last request's form and
// Authorization header.
type introspectionEndpoint struct {
	URL  string
	mu   sync.Mutex
	form url.Values
	auth string
	body string
}

func newIntrospectionEndpoint(t *testing.T, body string) *introspectionEndpoint {
	t.Helper()
	e := &introspectionEndpoint{body: body}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		form, _ := url.ParseQuery(string(data))
		e.mu.Lock()
		e.form, e.auth = form, r.Header.Get("Authorization")
		e.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "want a form POST", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, e.body)
	}))
	t.Cleanup(srv.Close)
	e.URL = srv.URL
	return e
}

// last returns the last request's form and Authorization header.
func (e *introspectionEndpoint) last() (url.Values, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.form, e.auth
}

// TestIntrospectionClient: the RFC 7662 client cases, against
// introspection.Client and a real endpoint.
func TestIntrospectionClient(t *testing.T) {
	const activeBody = `{"active":true,"sub":"user-123","scope":"read"}`
	introspect := func(t *testing.T, c *introspection.Client, token string) (*introspection.Response, error) {
		t.Helper()
		c.CacheTTL, c.InactiveCacheTTL = -1, -1
		return c.Introspect(t.Context(), token)
	}

	runCase(t, "rfc6749-basic-auth-credentials-must-be-form-urlencoded-before-base64", func(t *testing.T) {
		e := newIntrospectionEndpoint(t, activeBody)
		if _, err := introspect(t, &introspection.Client{Endpoint: e.URL, ClientID: "http://localhost:8080/mcp", ClientSecret: "s3cret"}, "tok"); err != nil {
			t.Fatal(err)
		}
		want := "Basic " + base64.StdEncoding.EncodeToString([]byte("http%3A%2F%2Flocalhost%3A8080%2Fmcp:s3cret"))
		if _, auth := e.last(); auth != want {
			t.Errorf("Authorization %q, want %q", auth, want)
		}
	}, noted("checked on the introspection client; the exchange authenticates to the token endpoint through golang.org/x/oauth2, which encodes the same way"))

	runCase(t, "rfc7662-introspection-request-must-post-token-and-access-token-hint", func(t *testing.T) {
		e := newIntrospectionEndpoint(t, activeBody)
		if _, err := introspect(t, &introspection.Client{Endpoint: e.URL, ClientID: "rs", ClientSecret: "secret"}, "my.raw.token"); err != nil {
			t.Fatal(err)
		}
		form, _ := e.last()
		if form.Get("token") != "my.raw.token" || form.Get("token_type_hint") != "access_token" {
			t.Errorf("form %v, want token and token_type_hint=access_token", form)
		}
	})

	runCase(t, "rfc7662-introspection-without-credentials-must-not-send-authorization-header", func(t *testing.T) {
		e := newIntrospectionEndpoint(t, activeBody)
		if _, err := introspect(t, &introspection.Client{Endpoint: e.URL, AuthMethod: introspection.AuthNone}, "tok"); err != nil {
			t.Fatal(err)
		}
		form, auth := e.last()
		if auth != "" || form.Has("client_secret") {
			t.Errorf("Authorization %q, form %v: credentials sent", auth, form)
		}
	})

	runCase(t, "rfc7662-introspection-basic-auth-must-be-supported", func(t *testing.T) {
		e := newIntrospectionEndpoint(t, activeBody)
		if _, err := introspect(t, &introspection.Client{Endpoint: e.URL, ClientID: "resource-server", ClientSecret: "secret"}, "tok"); err != nil {
			t.Fatal(err)
		}
		form, auth := e.last()
		if want := "Basic " + base64.StdEncoding.EncodeToString([]byte("resource-server:secret")); auth != want || form.Has("client_secret") {
			t.Errorf("Authorization %q (form %v), want %q", auth, form, want)
		}
	})

	inactive := partial("Tollgate returns an inactive answer as the error introspection.ErrInactive, not as a Response with Active false")
	runCase(t, "rfc7662-introspection-active-false-must-parse-as-inactive", func(t *testing.T) {
		e := newIntrospectionEndpoint(t, `{"active":false}`)
		resp, err := introspect(t, &introspection.Client{Endpoint: e.URL, ClientID: "rs", ClientSecret: "secret"}, "tok")
		if !errors.Is(err, introspection.ErrInactive) || resp != nil {
			t.Errorf("%v %v, want ErrInactive", resp, err)
		}
	}, inactive)

	runCase(t, "rfc7662-introspection-missing-active-must-default-to-inactive", func(t *testing.T) {
		e := newIntrospectionEndpoint(t, `{"sub":"user-123","scope":"read"}`)
		resp, err := introspect(t, &introspection.Client{Endpoint: e.URL, ClientID: "rs", ClientSecret: "secret"}, "tok")
		if !errors.Is(err, introspection.ErrInactive) || resp != nil {
			t.Errorf("%v %v, want ErrInactive", resp, err)
		}
	}, inactive)

	runCase(t, "rfc7662-introspection-standard-fields-must-round-trip", func(t *testing.T) {
		e := newIntrospectionEndpoint(t, `{"active":true,"scope":"read write","client_id":"client-1","username":"alice",
			"token_type":"Bearer","exp":1234567890,"iat":1234560000,"nbf":1234560000,"sub":"user-123",
			"aud":"https://api.example.com","iss":"https://auth.example.com","jti":"jti-1"}`)
		// The fixture's exp is in 2009; the client's clock is set before it.
		c := &introspection.Client{Endpoint: e.URL, ClientID: "rs", ClientSecret: "secret", Now: func() time.Time { return time.Unix(1234560000, 0) }}
		r, err := introspect(t, c, "tok")
		if err != nil {
			t.Fatal(err)
		}
		if !r.Active || r.Scope != "read write" || r.ClientID != "client-1" || r.Username != "alice" || r.TokenType != "Bearer" ||
			r.Sub != "user-123" || r.Iss != fixtureIssuer || r.Jti != "jti-1" || !slices.Equal(r.Aud, []string{fixtureResource}) {
			t.Errorf("fields lost: %+v", r)
		}
		if r.Exp == nil || r.Exp.Unix() != 1234567890 || r.Iat == nil || r.Iat.Unix() != 1234560000 || r.Nbf == nil || r.Nbf.Unix() != 1234560000 {
			t.Errorf("times lost: exp %v iat %v nbf %v", r.Exp, r.Iat, r.Nbf)
		}
	})

	runCase(t, "rfc7662-introspection-audience-must-parse-string-or-array", func(t *testing.T) {
		for body, want := range map[string][]string{
			`{"active":true,"aud":"https://api.example.com"}`:                               []string{fixtureResource},
			`{"active":true,"aud":["https://api.example.com","https://other.example.com"]}`: []string{fixtureResource, "https://other.example.com"},
		} {
			e := newIntrospectionEndpoint(t, body)
			r, err := introspect(t, &introspection.Client{Endpoint: e.URL, ClientID: "rs", ClientSecret: "secret"}, "tok")
			if err != nil || !slices.Equal(r.Aud, want) {
				t.Errorf("%s: %v %v, want aud %v", body, r, err, want)
			}
		}
	})
}

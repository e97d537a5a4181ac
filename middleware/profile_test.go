package middleware_test

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestProfileRFC9068: under ProfileRFC9068 a JWT access token must carry
// typ at+jwt, a kid and every claim RFC 9068 §2.2 requires, each with a
// usable value; the default profile accepts the same tokens, as real
// authorization servers issue them.
func TestProfileRFC9068(t *testing.T) {
	is := authtest.NewIssuer(t)
	var logs bytes.Buffer
	strict := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Profile = middleware.ProfileRFC9068
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	def := mustAuthenticator(t, is, nil)

	without := func(name string) func(jwt.MapClaims) {
		return func(c jwt.MapClaims) { delete(c, name) }
	}
	set := func(name string, v any) func(jwt.MapClaims) {
		return func(c jwt.MapClaims) { c[name] = v }
	}
	tests := []struct {
		name   string
		edit   func(jwt.MapClaims)
		header map[string]any
		// reason and the word the description and the log must name
		// under the profile; "" when the profile accepts the token.
		reason, names string
		// defStatus is the default profile's answer.
		defStatus int
	}{
		{"complete at+jwt", nil, nil, "", "", 200},
		{"typ application/at+jwt", nil, map[string]any{"typ": "application/at+jwt"}, "", "", 200},
		{"no client_id", without("client_id"), nil, middleware.ReasonMissingClaim, "client_id", 200},
		{"no jti", without("jti"), nil, middleware.ReasonMissingClaim, "jti", 200},
		{"no iat", without("iat"), nil, middleware.ReasonMissingClaim, "iat", 200},
		{"no sub", without("sub"), nil, middleware.ReasonMissingClaim, "sub", 401},
		{"no iss", without("iss"), nil, middleware.ReasonMissingClaim, "iss", 401},
		{"no exp", without("exp"), nil, middleware.ReasonMissingClaim, "exp", 401},
		{"no aud", without("aud"), nil, middleware.ReasonMissingClaim, "aud", 401},
		{"aud empty array", set("aud", []string{}), nil, middleware.ReasonMissingClaim, "aud", 401},
		{"client_id a number", set("client_id", 42), nil, middleware.ReasonMissingClaim, "client_id", 200},
		{"client_id empty", set("client_id", ""), nil, middleware.ReasonMissingClaim, "client_id", 200},
		{"client_id null", set("client_id", nil), nil, middleware.ReasonMissingClaim, "client_id", 200},
		{"jti empty", set("jti", ""), nil, middleware.ReasonMissingClaim, "jti", 200},
		{"jti an array", set("jti", []string{"a"}), nil, middleware.ReasonMissingClaim, "jti", 200},
		{"no kid", nil, map[string]any{"kid": nil}, middleware.ReasonBadHeader, "kid", 200},
		{"typ JWT", nil, map[string]any{"typ": "JWT"}, middleware.ReasonBadHeader, "at+jwt", 200},
		{"no typ", nil, map[string]any{"typ": nil}, middleware.ReasonBadHeader, "at+jwt", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := is.Claims("alice")
			if tc.edit != nil {
				tc.edit(c)
			}
			// ES256: the issuer has one ES256 key, so the default profile
			// finds it for a token without kid.
			tok := is.Sign(t, "ES256", c, tc.header)

			if w := do(def, bearerRequest(tok)); w.Code != tc.defStatus {
				t.Errorf("default profile: %d %v, want %d", w.Code, problem(t, w)["reason"], tc.defStatus)
			}

			logs.Reset()
			w := do(strict, bearerRequest(tok))
			if tc.reason == "" {
				if w.Code != 200 || w.Body.String() != "alice" {
					t.Fatalf("ProfileRFC9068: %d %q, want 200 alice", w.Code, w.Body)
				}
				return
			}
			if w.Code != 401 {
				t.Fatalf("ProfileRFC9068: %d, want 401", w.Code)
			}
			ch := w.Header().Get("WWW-Authenticate")
			if !strings.HasPrefix(ch, `Bearer realm="todo-api", error="invalid_token"`) {
				t.Errorf("WWW-Authenticate %q, want Bearer error=invalid_token", ch)
			}
			if got := problem(t, w)["reason"]; got != tc.reason {
				t.Errorf("reason %v, want %s", got, tc.reason)
			}
			if !strings.Contains(ch, tc.names) {
				t.Errorf("WWW-Authenticate %q does not name %s", ch, tc.names)
			}
			if !strings.Contains(logs.String(), tc.names) {
				t.Errorf("log %q does not name %s", logs.String(), tc.names)
			}
		})
	}
}

// TestProfileRFC9068Issuers: the profile is global, so it holds for every
// entry of Issuers.
func TestProfileRFC9068Issuers(t *testing.T) {
	a := authtest.NewIssuer(t)
	b := authtest.NewIssuer(t)
	auth := mustAuthenticator(t, a, func(c *middleware.Config) {
		c.Issuer = ""
		c.Issuers = []middleware.IssuerConfig{{Issuer: a.URL}, {Issuer: b.URL}}
		c.Profile = middleware.ProfileRFC9068
	})
	for _, is := range []*authtest.Issuer{a, b} {
		if w := do(auth, bearerRequest(is.Token(t, "alice", nil))); w.Code != 200 {
			t.Errorf("%s: complete token: %d, want 200", is.URL, w.Code)
		}
		tok := is.Token(t, "alice", func(c jwt.MapClaims) { delete(c, "jti") })
		if w := do(auth, bearerRequest(tok)); w.Code != 401 || problem(t, w)["reason"] != middleware.ReasonMissingClaim {
			t.Errorf("%s: token without jti: %d, want 401 %s", is.URL, w.Code, middleware.ReasonMissingClaim)
		}
	}
}

// TestProfileRFC9068HMAC: with HMACSecret there is one key, so a token
// without kid passes the profile; its claims are still checked.
func TestProfileRFC9068HMAC(t *testing.T) {
	is := authtest.NewIssuer(t, authtest.WithHS256(nil))
	auth := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.HMACSecret = is.HMACSecret()
		c.Profile = middleware.ProfileRFC9068
	})
	if w := do(auth, bearerRequest(is.Sign(t, "HS256", is.Claims("alice"), map[string]any{"kid": nil}))); w.Code != 200 {
		t.Errorf("HS256 token without kid: %d %v, want 200", w.Code, problem(t, w)["reason"])
	}
	c := is.Claims("alice")
	delete(c, "client_id")
	if w := do(auth, bearerRequest(is.Sign(t, "HS256", c, nil))); w.Code != 401 {
		t.Errorf("HS256 token without client_id: %d, want 401", w.Code)
	}
}

// TestProfileConfig: New refuses an unknown profile, and the strict one
// in introspection mode, where it could check nothing; ParseProfile reads
// the settings' names.
func TestProfileConfig(t *testing.T) {
	is := authtest.NewIssuer(t)
	base := func() middleware.Config {
		return middleware.Config{
			Issuer:    is.URL,
			Audiences: []string{authtest.Audience},
			Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		}
	}
	cfg := base()
	cfg.Profile = "strict"
	if _, err := middleware.New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), `unknown Profile "strict"`) {
		t.Errorf("Profile strict: %v, want unknown Profile", err)
	}
	cfg = base()
	cfg.Profile = middleware.ProfileRFC9068
	cfg.Mode = middleware.ModeIntrospection
	if _, err := middleware.New(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "Profile rfc9068 applies to JWTs") {
		t.Errorf("Profile rfc9068 in introspection mode: %v, want a refusal", err)
	}
	for in, want := range map[string]middleware.Profile{
		"": middleware.ProfileInteroperable, "interoperable": middleware.ProfileInteroperable,
		" RFC9068 ": middleware.ProfileRFC9068, "rfc9068": middleware.ProfileRFC9068,
	} {
		if got, err := middleware.ParseProfile(in); err != nil || got != want {
			t.Errorf("ParseProfile(%q) = %q, %v, want %q", in, got, err, want)
		}
	}
	if _, err := middleware.ParseProfile("strict"); err == nil {
		t.Error(`ParseProfile("strict") accepted`)
	}
}

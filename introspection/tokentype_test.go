package introspection

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestOnlyAccessTokens sends the answers real servers give for access
// tokens, refresh tokens and other kinds of token, and checks that only
// access tokens come back active. RFC 7662 servers answer "active": true for
// refresh tokens too, and a refresh token lives for weeks.
func TestOnlyAccessTokens(t *testing.T) {
	tests := []struct {
		name   string
		answer string // members after "active":true
		refuse bool
	}{
		// Accepted: access tokens, and answers that do not say.
		{name: "plain RFC 7662 answer names no kind", answer: `"scope":"todos:read"`},
		{name: "Hydra access token", answer: `"token_type":"bearer","token_use":"access_token"`},
		{name: "Hydra access token, Bearer capitalised", answer: `"token_type":"Bearer","token_use":"access_token"`},
		{name: "Keycloak access token", answer: `"token_type":"Bearer","typ":"Bearer"`},
		{name: "Okta, Zitadel, Spring access token", answer: `"token_type":"Bearer"`},
		{name: "Duende access token", answer: `"token_type":"access_token"`},
		{name: "RFC 8693 access token type", answer: `"token_type":"urn:ietf:params:oauth:token-type:access_token"`},
		{name: "token type in upper case", answer: `"token_type":"BEARER","token_use":"ACCESS_TOKEN"`},
		{name: "DPoP is an access token type", answer: `"token_type":"DPoP"`},
		{name: "PoP is an access token type", answer: `"token_type":"PoP"`},
		{name: "null members name nothing", answer: `"token_type":null,"token_use":null,"typ":null`},
		{name: "empty members name nothing", answer: `"token_type":"","token_use":""`},
		{name: "typ of no known kind", answer: `"typ":"at+jwt"`},
		{name: "typ that is not a string", answer: `"typ":7`},

		// Refused: the answer says it is something else.
		{name: "Hydra refresh token", answer: `"token_type":"Bearer","token_use":"refresh_token"`, refuse: true},
		{name: "Hydra refresh token without token_type", answer: `"token_use":"refresh_token"`, refuse: true},
		{name: "token_use of another kind", answer: `"token_use":"id_token"`, refuse: true},
		{name: "token_use not a string", answer: `"token_use":1`, refuse: true},
		{name: "token_use an object", answer: `"token_use":{"kind":"access_token"}`, refuse: true},
		{name: "token_type refresh_token (Duende, old Hydra)", answer: `"token_type":"refresh_token"`, refuse: true},
		{name: "token_type Refresh_Token in mixed case", answer: `"token_type":"Refresh_Token"`, refuse: true},
		{name: "RFC 8693 refresh token type", answer: `"token_type":"urn:ietf:params:oauth:token-type:refresh_token"`, refuse: true},
		{name: "RFC 8693 ID token type", answer: `"token_type":"urn:ietf:params:oauth:token-type:id_token"`, refuse: true},
		{name: "RFC 8693 JWT of unknown use", answer: `"token_type":"urn:ietf:params:oauth:token-type:jwt"`, refuse: true},
		{name: "RFC 8693 SAML assertion", answer: `"token_type":"urn:ietf:params:oauth:token-type:saml2"`, refuse: true},
		{name: "RFC 8693 N_A: not an access token", answer: `"token_type":"N_A"`, refuse: true},
		{name: "Keycloak refresh token", answer: `"token_type":"Refresh","typ":"Refresh"`, refuse: true},
		{name: "Keycloak offline token", answer: `"token_type":"Offline","typ":"Offline"`, refuse: true},
		{name: "Keycloak ID token", answer: `"token_type":"ID","typ":"ID"`, refuse: true},
		{name: "older Keycloak refresh token: typ only", answer: `"typ":"Refresh"`, refuse: true},
		{name: "older Keycloak offline token: typ only", answer: `"typ":"offline"`, refuse: true},
		{name: "older Keycloak logout token: typ only", answer: `"typ":"Logout"`, refuse: true},
		{name: "typ refresh despite Bearer token_type", answer: `"token_type":"Bearer","typ":"Refresh"`, refuse: true},
		{name: "typ refresh despite access_token token_use", answer: `"token_type":"Bearer","token_use":"access_token","typ":"Refresh"`, refuse: true},
		{name: "token_type unknown", answer: `"token_type":"mac"`, refuse: true},
		{name: "token_type with spaces", answer: `"token_type":" Bearer "`, refuse: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newIntroServer(t, answerJSON(200, `{"active":true,"sub":"alice",`+tt.answer+`}`))
			c := newTestClient(t, srv.endpoint(), nil)
			resp, err := c.Introspect(context.Background(), "tok")
			if !tt.refuse {
				if err != nil || resp == nil || !resp.Active {
					t.Fatalf("Introspect = %+v, %v; want active", resp, err)
				}
				return
			}
			if resp != nil || !errors.Is(err, ErrNotAccessToken) {
				t.Fatalf("Introspect = %+v, %v; want ErrNotAccessToken", resp, err)
			}
			// Callers that know only ErrInactive refuse it too.
			if !errors.Is(err, ErrInactive) || errors.Is(err, ErrMalformedResponse) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("error %v: want it to match ErrInactive only", err)
			}
			if !strings.HasPrefix(err.Error(), "introspection: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			// The verdict is cached like an inactive answer, reason and all.
			calls := srv.calls.Load()
			if _, err := c.Introspect(context.Background(), "tok"); !errors.Is(err, ErrNotAccessToken) {
				t.Fatalf("second Introspect = %v; want ErrNotAccessToken again", err)
			}
			if srv.calls.Load() != calls {
				t.Fatal("the refusal was not cached")
			}
		})
	}
}

// TestCheckAccessToken checks the method on answers built by hand, as an
// Introspector other than Client might return them.
func TestCheckAccessToken(t *testing.T) {
	tests := []struct {
		name   string
		resp   *Response
		refuse bool
	}{
		{name: "nil", resp: nil},
		{name: "nothing said", resp: &Response{Active: true}},
		{name: "bearer", resp: &Response{Active: true, TokenType: "Bearer"}},
		{name: "refresh token type", resp: &Response{Active: true, TokenType: "refresh_token"}, refuse: true},
		{name: "refresh token use in Claims", resp: &Response{Active: true, TokenType: "Bearer", Claims: map[string]any{"token_use": "refresh_token"}}, refuse: true},
		{name: "Keycloak typ in Claims", resp: &Response{Active: true, Claims: map[string]any{"typ": "Refresh"}}, refuse: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.resp.CheckAccessToken()
			if tt.refuse != (err != nil) || (err != nil && !errors.Is(err, ErrNotAccessToken)) {
				t.Fatalf("CheckAccessToken = %v, want refused %v", err, tt.refuse)
			}
		})
	}
}

package devidp_test

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
)

// stepUpGrant signs alice in for an authorization request with extra
// parameters, through the second step when code is set, and exchanges
// the code.
func stepUpGrant(t *testing.T, ts *devidptest.Server, conf *oauth2.Config, code string, params ...string) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-0123456789")}
	for i := 0; i+1 < len(params); i += 2 {
		opts = append(opts, oauth2.SetAuthURLParam(params[i], params[i+1]))
	}
	resp, err := devidptest.LoginTwoFactor(t.Context(), devidptest.Browser(redirectURL), conf.AuthCodeURL("state-0123456789", opts...), "alice", "alice", code)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	tok, err := conf.Exchange(t.Context(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

// idTokenClaims verifies tok's ID token and returns its claims.
func idTokenClaims(t *testing.T, ts *devidptest.Server, tok *oauth2.Token) map[string]any {
	t.Helper()
	provider, err := oidc.NewProvider(t.Context(), ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("id token: %v", err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// wantAuthentication checks acr and a fresh auth_time in claims, an access
// token's, an ID token's or an introspection answer's.
func wantAuthentication(t *testing.T, what string, claims map[string]any, acr string, since time.Time) {
	t.Helper()
	if claims["acr"] != acr {
		t.Errorf("%s: acr = %v, want %s", what, claims["acr"], acr)
	}
	at := time.Unix(num(claims["auth_time"]), 0)
	if at.Before(since.Truncate(time.Second)) || at.After(time.Now()) {
		t.Errorf("%s: auth_time %v, want between %v and now", what, at, since)
	}
}

// TestStepUpSignIn: devidp honours acr_values as RFC 9470 §4 asks: a
// request that prefers ACRTwoFactor takes the password and then the code,
// and every token of the grant says so with acr and auth_time (RFC 9470
// §6), refreshed ones too; a plain sign-in is ACRPassword.
func TestStepUpSignIn(t *testing.T) {
	for _, opaque := range []bool{false, true} {
		name := map[bool]string{false: "jwt", true: "opaque"}[opaque]
		t.Run(name, func(t *testing.T) {
			ts := mustStart(t, func(c *devidp.Config) { c.OpaqueAccessTokens = opaque })
			conf := oauthConfig(ts)
			accessClaims := func(tok string) map[string]any {
				if opaque {
					status, got := introspect(t, ts, tok, authBasic(apiID, apiSecret))
					if status != http.StatusOK || got["active"] != true {
						t.Fatalf("introspect: %d %v", status, got)
					}
					return got
				}
				_, claims := mustParseAccessToken(t, ts, tok)
				return claims
			}

			start := time.Now()
			plain := stepUpGrant(t, ts, conf, "")
			wantAuthentication(t, "plain access token", accessClaims(plain.AccessToken), devidp.ACRPassword, start)
			idc := idTokenClaims(t, ts, plain)
			wantAuthentication(t, "plain ID token", idc, devidp.ACRPassword, start)
			if got := strs(idc["amr"]); !slices.Equal(got, []string{"pwd"}) {
				t.Errorf("plain amr = %v", got)
			}

			strong := stepUpGrant(t, ts, conf, devidp.DefaultSecondFactor, "acr_values", "urn:other:acr "+devidp.ACRTwoFactor+" "+devidp.ACRPassword, "max_age", "0")
			wantAuthentication(t, "stepped-up access token", accessClaims(strong.AccessToken), devidp.ACRTwoFactor, start)
			idc = idTokenClaims(t, ts, strong)
			wantAuthentication(t, "stepped-up ID token", idc, devidp.ACRTwoFactor, start)
			if got := strs(idc["amr"]); !slices.Equal(got, []string{"pwd", "otp"}) {
				t.Errorf("stepped-up amr = %v", got)
			}

			// A refresh authenticates nobody: it keeps the sign-in's acr
			// and auth_time.
			first := accessClaims(strong.AccessToken)
			refreshed, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: strong.RefreshToken}).Token()
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			again := accessClaims(refreshed.AccessToken)
			if again["acr"] != devidp.ACRTwoFactor || num(again["auth_time"]) != num(first["auth_time"]) {
				t.Errorf("refreshed: acr %v auth_time %v, want %s %v", again["acr"], again["auth_time"], devidp.ACRTwoFactor, first["auth_time"])
			}
		})
	}
}

// TestStepUpSecondStep: the second step cannot be skipped, reused for
// another request or user, or passed with a wrong code; an acr_values the
// server does not know asks for no second step.
func TestStepUpSecondStep(t *testing.T) {
	ts := mustStart(t, nil)
	conf := oauthConfig(ts)
	authURL := func(state string) string {
		return conf.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("acr_values", devidp.ACRTwoFactor))
	}

	t.Run("the helper without a code stops at the second step", func(t *testing.T) {
		_, err := devidptest.Login(t.Context(), devidptest.Browser(redirectURL), authURL("state-0123456789"), "alice", "alice")
		if !errors.Is(err, devidptest.ErrSecondStep) {
			t.Fatalf("err = %v, want ErrSecondStep", err)
		}
	})
	t.Run("wrong code", func(t *testing.T) {
		_, err := devidptest.LoginTwoFactor(t.Context(), devidptest.Browser(redirectURL), authURL("state-0123456789"), "alice", "alice", "000000")
		if !errors.Is(err, devidptest.ErrLoginRefused) {
			t.Fatalf("err = %v, want ErrLoginRefused", err)
		}
	})
	t.Run("wrong password never reaches the second step", func(t *testing.T) {
		_, err := devidptest.LoginTwoFactor(t.Context(), devidptest.Browser(redirectURL), authURL("state-0123456789"), "alice", "bob", devidp.DefaultSecondFactor)
		if !errors.Is(err, devidptest.ErrLoginRefused) {
			t.Fatalf("err = %v, want ErrLoginRefused", err)
		}
	})
	t.Run("unknown acr_values: one step, acr password", func(t *testing.T) {
		tok := stepUpGrant(t, ts, conf, "", "acr_values", "urn:other:acr:loa3")
		_, claims := mustParseAccessToken(t, ts, tok.AccessToken)
		if claims["acr"] != devidp.ACRPassword {
			t.Fatalf("acr = %v", claims["acr"])
		}
	})

	// A proof from a real first step, then misused.
	browser := devidptest.Browser(redirectURL)
	target := authURL("state-0123456789")
	resp := mustDo(t, browser, mustRequest(t, http.MethodPost, target, url.Values{"username": {"alice"}, "password": {"alice"}}))
	page := readAll(t, resp)
	m := regexp.MustCompile(`name="proof" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil || !strings.Contains(page, `name="code"`) || !strings.Contains(page, devidp.ACRTwoFactor) {
		t.Fatalf("no second-step form: %s", page)
	}
	proof := m[1]
	refused := func(t *testing.T, target string, form url.Values) {
		t.Helper()
		resp := mustDo(t, browser, mustRequest(t, http.MethodPost, target, form))
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" || !strings.Contains(body, "took too long") {
			t.Fatalf("status %d, Location %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
	}
	t.Run("no proof of the password", func(t *testing.T) {
		refused(t, target, url.Values{"username": {"alice"}, "proof": {"9999999999.AAAA"}, "code": {devidp.DefaultSecondFactor}})
	})
	t.Run("another user's proof", func(t *testing.T) {
		refused(t, target, url.Values{"username": {"bob"}, "proof": {proof}, "code": {devidp.DefaultSecondFactor}})
	})
	t.Run("proof for another request", func(t *testing.T) {
		refused(t, authURL("state-9876543210"), url.Values{"username": {"alice"}, "proof": {proof}, "code": {devidp.DefaultSecondFactor}})
	})
	t.Run("proof with its expiry changed", func(t *testing.T) {
		_, mac, _ := strings.Cut(proof, ".")
		refused(t, target, url.Values{"username": {"alice"}, "proof": {"9999999999." + mac}, "code": {devidp.DefaultSecondFactor}})
	})
	t.Run("the right proof and code", func(t *testing.T) {
		resp := mustDo(t, browser, mustRequest(t, http.MethodPost, target, url.Values{"username": {"alice"}, "proof": {proof}, "code": {devidp.DefaultSecondFactor}}))
		readAll(t, resp)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("code") == "" {
			t.Fatalf("status %d, Location %v", resp.StatusCode, loc)
		}
	})
}

// TestStepUpMaxAge: max_age is met by every sign-in (there is no session
// to reuse); a malformed one is refused as OpenID Connect Core §3.1.2.1
// defines it, and the discovery document lists the acr values.
func TestStepUpMaxAge(t *testing.T) {
	ts := mustStart(t, nil)
	conf := oauthConfig(ts)
	start := time.Now()
	tok := stepUpGrant(t, ts, conf, "", "max_age", "60")
	wantAuthentication(t, "ID token", idTokenClaims(t, ts, tok), devidp.ACRPassword, start)

	for _, bad := range []string{"-1", "soon", "1.5", "", "99999999999"} {
		t.Run("max_age="+bad, func(t *testing.T) {
			u := conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("max_age", bad))
			resp := mustDo(t, devidptest.Browser(redirectURL), mustRequest(t, http.MethodGet, u, nil))
			readAll(t, resp)
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("error") != "invalid_request" {
				t.Fatalf("status %d, Location %v", resp.StatusCode, loc)
			}
		})
	}

	var doc map[string]any
	mustGetJSON(t, ts.URL+"/.well-known/openid-configuration", &doc)
	if got := strs(doc["acr_values_supported"]); !slices.Equal(got, []string{devidp.ACRPassword, devidp.ACRTwoFactor}) {
		t.Errorf("acr_values_supported = %v", got)
	}
	if got := strs(doc["claims_supported"]); !slices.Contains(got, "acr") || !slices.Contains(got, "auth_time") {
		t.Errorf("claims_supported = %v", got)
	}
}

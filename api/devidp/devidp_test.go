package devidp_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
	"github.com/tollgate-dev/tollgate/internal/httpserve"
)

const (
	redirectURL   = "http://client.test/oauth-callback"
	postLogoutURL = "http://client.test/"
	clientID      = "exchange"
	clientSecret  = "exchange-secret"
	apiID         = "todo-api-introspection"
	apiSecret     = "api-secret"
	ttl           = 90 * time.Second
)

var allScopes = []string{"openid", "profile", "email", "offline_access", "todos:read", "todos:write"}

// testKey is shared so that each test does not spend a second on RSA.
var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

func mustStart(tb testing.TB, edit func(*devidp.Config)) *devidptest.Server {
	tb.Helper()
	cfg := devidp.Config{
		AccessTokenTTL: ttl,
		SigningKey:     testKey(),
		Clients: []devidp.Client{
			{ID: clientID, Secret: clientSecret, RedirectURIs: []string{redirectURL}, PostLogoutRedirectURIs: []string{postLogoutURL}},
			{ID: apiID, Secret: apiSecret},
		},
	}
	if edit != nil {
		edit(&cfg)
	}
	return devidptest.Start(tb, cfg)
}

func oauthConfig(ts *devidptest.Server, scopes ...string) *oauth2.Config {
	if scopes == nil {
		scopes = allScopes
	}
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		RedirectURL:  redirectURL,
		Scopes:       scopes,
		Endpoint: oauth2.Endpoint{
			AuthURL:   ts.URL + "/authorize",
			TokenURL:  ts.URL + "/token",
			AuthStyle: oauth2.AuthStyleInHeader, // client_secret_basic
		},
	}
}

// login runs the front channel: the authorization request with PKCE, state
// and nonce, the login form, and the redirect to the client. It returns the
// redirect's query.
func login(t *testing.T, ts *devidptest.Server, conf *oauth2.Config, username, password string, opts ...oauth2.AuthCodeOption) url.Values {
	t.Helper()
	authURL := conf.AuthCodeURL("state-0123456789", opts...)
	resp, err := devidptest.Login(t.Context(), devidptest.Browser(redirectURL), authURL, username, password)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != redirectURL {
		t.Fatalf("redirected to %s, want %s", got, redirectURL)
	}
	q := loc.Query()
	if q.Get("state") != "state-0123456789" {
		t.Fatalf("state = %q", q.Get("state"))
	}
	if q.Get("iss") != ts.URL {
		t.Fatalf("iss = %q, want %q (RFC 9207)", q.Get("iss"), ts.URL)
	}
	return q
}

type grant struct {
	token    *oauth2.Token
	verifier string
	nonce    string
}

// mustGrant signs alice in and exchanges the code with client_secret_basic.
func mustGrant(t *testing.T, ts *devidptest.Server, conf *oauth2.Config) grant {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	nonce := "nonce-" + oauth2.GenerateVerifier()[:16]
	q := login(t, ts, conf, "alice", "alice", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce))
	if q.Get("code") == "" {
		t.Fatalf("no code in redirect: %v", q)
	}
	tok, err := conf.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return grant{token: tok, verifier: verifier, nonce: nonce}
}

func TestDiscovery(t *testing.T) {
	ts := mustStart(t, nil)
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		t.Run(path, func(t *testing.T) {
			var doc map[string]any
			mustGetJSON(t, ts.URL+path, &doc)
			want := map[string]any{
				"issuer":                 ts.URL,
				"authorization_endpoint": ts.URL + "/authorize",
				"token_endpoint":         ts.URL + "/token",
				"jwks_uri":               ts.URL + "/jwks",
				"introspection_endpoint": ts.URL + "/introspect",
				"revocation_endpoint":    ts.URL + "/revoke",
				"userinfo_endpoint":      ts.URL + "/userinfo",
				"end_session_endpoint":   ts.URL + "/logout",
				"authorization_response_iss_parameter_supported": true,
			}
			for k, v := range want {
				if doc[k] != v {
					t.Errorf("%s = %v, want %v", k, doc[k], v)
				}
			}
			lists := map[string][]string{
				"token_endpoint_auth_methods_supported": {"client_secret_basic", "client_secret_post"},
				"code_challenge_methods_supported":      {"S256"},
				"response_types_supported":              {"code"},
				"grant_types_supported":                 {"authorization_code", "refresh_token"},
				"scopes_supported":                      allScopes,
				"id_token_signing_alg_values_supported": {"RS256"},
			}
			for k, v := range lists {
				if got := strs(doc[k]); !slices.Equal(got, v) {
					t.Errorf("%s = %v, want %v", k, got, v)
				}
			}
		})
	}
	// go-oidc checks that the document's issuer is the URL it was fetched from.
	if _, err := oidc.NewProvider(t.Context(), ts.URL); err != nil {
		t.Fatal(err)
	}
}

func TestJWKS(t *testing.T) {
	ts := mustStart(t, nil)
	var set jose.JSONWebKeySet
	mustGetJSON(t, ts.URL+"/jwks", &set)
	if len(set.Keys) != 1 {
		t.Fatalf("%d keys, want 1", len(set.Keys))
	}
	k := set.Keys[0]
	if k.KeyID == "" || k.Use != "sig" || k.Algorithm != "RS256" || !k.IsPublic() {
		t.Fatalf("key = kid %q use %q alg %q public %v", k.KeyID, k.Use, k.Algorithm, k.IsPublic())
	}
	pub, ok := k.Key.(*rsa.PublicKey)
	if !ok || !pub.Equal(&testKey().PublicKey) {
		t.Fatalf("JWKS key is not the signing key")
	}
}

func TestAuthorizationCodeFlow(t *testing.T) {
	ts := mustStart(t, nil)
	conf := oauthConfig(ts)
	g := mustGrant(t, ts, conf)
	ctx := t.Context()

	t.Run("id token", func(t *testing.T) {
		provider, err := oidc.NewProvider(ctx, ts.URL)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := g.token.Extra("id_token").(string)
		idt, err := provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(ctx, raw)
		if err != nil {
			t.Fatalf("verify id token: %v", err)
		}
		if idt.Nonce != g.nonce {
			t.Fatalf("nonce = %q, want %q", idt.Nonce, g.nonce)
		}
		var claims struct {
			Sub   string `json:"sub"`
			Name  string `json:"name"`
			Email string `json:"email"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		if claims.Sub != "alice" || claims.Name != "Alice Example" || claims.Email != "alice@example.com" {
			t.Fatalf("claims = %+v", claims)
		}
		ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(g.token))
		if err != nil {
			t.Fatalf("userinfo: %v", err)
		}
		if ui.Subject != "alice" || ui.Email != "alice@example.com" {
			t.Fatalf("userinfo = %+v", ui)
		}
	})

	t.Run("access token", func(t *testing.T) {
		tok, claims := mustParseAccessToken(t, ts, g.token.AccessToken)
		if tok.Header["typ"] != "at+jwt" {
			t.Errorf("typ = %v, want at+jwt", tok.Header["typ"])
		}
		if kid, _ := tok.Header["kid"].(string); kid == "" {
			t.Errorf("no kid")
		}
		if claims["sub"] != "alice" || claims["client_id"] != clientID || claims["iss"] != ts.URL {
			t.Errorf("sub, client_id, iss = %v, %v, %v", claims["sub"], claims["client_id"], claims["iss"])
		}
		if got := strs(claims["aud"]); !slices.Equal(got, []string{"todo-api"}) {
			t.Errorf("aud = %v", claims["aud"])
		}
		if claims["scope"] != strings.Join(allScopes, " ") {
			t.Errorf("scope = %#v, want a space-delimited string", claims["scope"])
		}
		if _, ok := claims["scp"]; ok {
			t.Errorf("unexpected scp claim")
		}
		if jti, _ := claims["jti"].(string); jti == "" {
			t.Errorf("no jti")
		}
		iat, nbf, exp := num(claims["iat"]), num(claims["nbf"]), num(claims["exp"])
		if exp-iat != int64(ttl/time.Second) || nbf != iat {
			t.Errorf("iat %d nbf %d exp %d: want exp-iat = %v and nbf = iat", iat, nbf, exp, ttl)
		}
		if d := time.Until(g.token.Expiry); d <= ttl-5*time.Second || d > ttl {
			t.Errorf("expires_in gives %v, want about %v", d, ttl)
		}
	})

	t.Run("refresh token", func(t *testing.T) {
		if g.token.RefreshToken == "" {
			t.Fatal("no refresh token despite offline_access")
		}
	})
}

func TestNoRefreshTokenWithoutOfflineAccess(t *testing.T) {
	ts := mustStart(t, nil)
	g := mustGrant(t, ts, oauthConfig(ts, "openid", "todos:read"))
	if g.token.RefreshToken != "" {
		t.Fatal("refresh token issued without offline_access")
	}
	_, claims := mustParseAccessToken(t, ts, g.token.AccessToken)
	if claims["scope"] != "openid todos:read" {
		t.Fatalf("scope = %v", claims["scope"])
	}
}

func TestPKCE(t *testing.T) {
	ts := mustStart(t, nil)
	conf := oauthConfig(ts)

	t.Run("missing challenge", func(t *testing.T) {
		q := login(t, ts, conf, "alice", "alice")
		if q.Get("error") != "invalid_request" || q.Get("code") != "" {
			t.Fatalf("redirect = %v, want error=invalid_request and no code", q)
		}
	})
	t.Run("plain method", func(t *testing.T) {
		q := login(t, ts, conf, "alice", "alice",
			oauth2.SetAuthURLParam("code_challenge", oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("code_challenge_method", "plain"))
		if q.Get("error") != "invalid_request" || q.Get("code") != "" {
			t.Fatalf("redirect = %v, want error=invalid_request and no code", q)
		}
	})
	t.Run("wrong verifier", func(t *testing.T) {
		q := login(t, ts, conf, "alice", "alice", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		_, err := conf.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier()))
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	})
	t.Run("no verifier", func(t *testing.T) {
		q := login(t, ts, conf, "alice", "alice", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
		_, err := conf.Exchange(t.Context(), q.Get("code"))
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	})
}

func TestLoginForm(t *testing.T) {
	ts := mustStart(t, nil)
	conf := oauthConfig(ts)
	authURL := conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	browser := devidptest.Browser(redirectURL)

	t.Run("shows the form", func(t *testing.T) {
		resp := mustDo(t, browser, mustRequest(t, http.MethodGet, authURL, nil))
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="password"`) || !strings.Contains(body, "DEVELOPMENT ONLY") {
			t.Fatalf("status %d, body %s", resp.StatusCode, body)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		form := url.Values{"username": {"alice"}, "password": {"bob"}}
		resp := mustDo(t, browser, mustRequest(t, http.MethodPost, authURL, form))
		body := readAll(t, resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Wrong username or password") {
			t.Fatalf("status %d, body %s", resp.StatusCode, body)
		}
		if loc := resp.Header.Get("Location"); loc != "" || strings.Contains(body, "code=") {
			t.Fatalf("a code leaked: Location %q", loc)
		}
	})
	t.Run("helper reports refusal", func(t *testing.T) {
		_, err := devidptest.Login(t.Context(), browser, authURL, "mallory", "mallory")
		if !errors.Is(err, devidptest.ErrLoginRefused) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cross-site post refused", func(t *testing.T) {
		req := mustRequest(t, http.MethodPost, authURL, url.Values{"username": {"alice"}, "password": {"alice"}})
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		resp := mustDo(t, browser, req)
		readAll(t, resp)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("status %d, want 403", resp.StatusCode)
		}
	})
	t.Run("prompt=none", func(t *testing.T) {
		u := conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none"))
		resp := mustDo(t, browser, mustRequest(t, http.MethodGet, u, nil))
		readAll(t, resp)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || loc.Query().Get("error") != "login_required" || loc.Query().Get("iss") != ts.URL {
			t.Fatalf("status %d, Location %v", resp.StatusCode, loc)
		}
	})
	t.Run("unregistered redirect_uri is not followed", func(t *testing.T) {
		bad := *conf
		bad.RedirectURL = "http://evil.test/cb"
		resp := mustDo(t, browser, mustRequest(t, http.MethodGet, bad.AuthCodeURL("state-0123456789"), nil))
		readAll(t, resp)
		if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("Location") != "" {
			t.Fatalf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	})
}

func TestTokenEndpointClientAuth(t *testing.T) {
	ts := mustStart(t, nil)
	conf := oauthConfig(ts)

	t.Run("bad secret", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		q := login(t, ts, conf, "alice", "alice", oauth2.S256ChallengeOption(verifier))
		bad := *conf
		bad.ClientSecret = "wrong"
		_, err := bad.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
		wantRetrieveError(t, err, http.StatusUnauthorized, "invalid_client")
	})
	t.Run("client_secret_post", func(t *testing.T) {
		post := *conf
		post.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		g := mustGrant(t, ts, &post)
		if g.token.AccessToken == "" {
			t.Fatal("no access token")
		}
	})
	t.Run("code replay", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		q := login(t, ts, conf, "alice", "alice", oauth2.S256ChallengeOption(verifier))
		tok, err := conf.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		_, err = conf.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
		wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
		// RFC 6749 §4.1.2: tokens issued from a replayed code are revoked.
		if active(t, ts, tok.AccessToken) {
			t.Fatal("access token still active after code replay")
		}
	})
}

func TestRefreshRotation(t *testing.T) {
	ts := mustStart(t, nil)
	conf := oauthConfig(ts)
	first := mustGrant(t, ts, conf).token

	second, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh token not rotated")
	}
	if second.AccessToken == first.AccessToken {
		t.Fatalf("same access token")
	}
	if _, claims := mustParseAccessToken(t, ts, second.AccessToken); claims["sub"] != "alice" || claims["scope"] != strings.Join(allScopes, " ") {
		t.Fatalf("refreshed claims = %v", claims)
	}
	if !active(t, ts, second.AccessToken) {
		t.Fatal("new access token inactive")
	}
	// Rotation retires the previous access token too (as fosite's own store and Hydra do).
	if active(t, ts, first.AccessToken) {
		t.Fatal("previous access token still active after rotation")
	}

	// Replaying the used refresh token fails, and revokes the whole family.
	_, err = conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	_, err = conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: second.RefreshToken}).Token()
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	if active(t, ts, second.AccessToken) {
		t.Fatal("access token still active after refresh token replay")
	}
}

func TestIntrospection(t *testing.T) {
	for _, opaque := range []bool{false, true} {
		name := map[bool]string{false: "jwt", true: "opaque"}[opaque]
		t.Run(name, func(t *testing.T) {
			ts := mustStart(t, func(c *devidp.Config) { c.OpaqueAccessTokens = opaque })
			tok := mustGrant(t, ts, oauthConfig(ts)).token
			if isJWT := strings.Count(tok.AccessToken, ".") == 2; isJWT == opaque {
				t.Fatalf("access token JWT-shaped: %v, opaque mode: %v", isJWT, opaque)
			}

			check := func(t *testing.T, got map[string]any) {
				t.Helper()
				if got["active"] != true || got["sub"] != "alice" || got["client_id"] != clientID || got["iss"] != ts.URL ||
					got["scope"] != strings.Join(allScopes, " ") || !slices.Equal(strs(got["aud"]), []string{"todo-api"}) {
					t.Fatalf("introspection = %v", got)
				}
				if exp := num(got["exp"]); time.Until(time.Unix(exp, 0)) <= 0 || time.Until(time.Unix(exp, 0)) > ttl {
					t.Fatalf("exp = %d", exp)
				}
			}
			t.Run("basic", func(t *testing.T) {
				status, got := introspect(t, ts, tok.AccessToken, authBasic(apiID, apiSecret))
				if status != http.StatusOK {
					t.Fatalf("status %d", status)
				}
				check(t, got)
			})
			t.Run("post", func(t *testing.T) {
				status, got := introspect(t, ts, tok.AccessToken, authPost(apiID, apiSecret))
				if status != http.StatusOK {
					t.Fatalf("status %d", status)
				}
				check(t, got)
			})
			// Only access tokens are active: RFC 7662 lets a server answer
			// for refresh tokens too, but a resource server that trusts the
			// answer would then take a refresh token for a bearer token.
			idToken, _ := tok.Extra("id_token").(string)
			for _, tc := range []struct {
				name, token, hint string
				active            bool
			}{
				{name: "refresh token", token: tok.RefreshToken},
				{name: "refresh token, hinted access_token", token: tok.RefreshToken, hint: "access_token"},
				{name: "refresh token, hinted refresh_token", token: tok.RefreshToken, hint: "refresh_token"},
				{name: "ID token", token: idToken},
				{name: "access token, hinted refresh_token", token: tok.AccessToken, hint: "refresh_token", active: true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if tc.token == "" {
						t.Fatal("the grant has no such token")
					}
					status, got := introspect(t, ts, tc.token, func(r *http.Request, f url.Values) {
						authBasic(apiID, apiSecret)(r, f)
						if tc.hint != "" {
							f.Set("token_type_hint", tc.hint)
						}
					})
					if tc.active {
						if status != http.StatusOK {
							t.Fatalf("status %d", status)
						}
						check(t, got)
						return
					}
					if status != http.StatusOK || got["active"] != false || len(got) != 1 {
						t.Fatalf("status %d, introspection = %v; want only active false", status, got)
					}
				})
			}
			t.Run("unknown token", func(t *testing.T) {
				status, got := introspect(t, ts, "not-a-token", authBasic(apiID, apiSecret))
				if status != http.StatusOK || got["active"] != false || len(got) != 1 {
					t.Fatalf("status %d, %v", status, got)
				}
			})
			for name, auth := range map[string]func(*http.Request, url.Values){
				"no client auth":     func(*http.Request, url.Values) {},
				"wrong secret":       authBasic(apiID, "wrong"),
				"bearer token":       func(r *http.Request, _ url.Values) { r.Header.Set("Authorization", "Bearer "+tok.AccessToken) },
				"access_token field": func(_ *http.Request, f url.Values) { f.Set("access_token", tok.AccessToken) },
			} {
				t.Run(name, func(t *testing.T) {
					status, got := introspect(t, ts, tok.AccessToken, auth)
					if status != http.StatusUnauthorized || got["error"] != "invalid_client" {
						t.Fatalf("status %d, %v", status, got)
					}
				})
			}
		})
	}
}

func TestRevocation(t *testing.T) {
	ts := mustStart(t, nil)
	conf := oauthConfig(ts)
	tok := mustGrant(t, ts, conf).token

	form := url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}
	req := mustRequest(t, http.MethodPost, ts.URL+"/revoke", form)
	req.SetBasicAuth(clientID, clientSecret)
	resp := mustDo(t, http.DefaultClient, req)
	readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: status %d", resp.StatusCode)
	}
	_, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	if active(t, ts, tok.AccessToken) {
		t.Fatal("access token of the revoked grant still active")
	}

	t.Run("client auth required", func(t *testing.T) {
		resp := mustDo(t, http.DefaultClient, mustRequest(t, http.MethodPost, ts.URL+"/revoke", form))
		readAll(t, resp)
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d", resp.StatusCode)
		}
	})
}

func TestUserinfo(t *testing.T) {
	ts := mustStart(t, nil)
	tok := mustGrant(t, ts, oauthConfig(ts)).token
	for name, tc := range map[string]struct {
		auth   string
		status int
	}{
		"access token":  {"Bearer " + tok.AccessToken, http.StatusOK},
		"no token":      {"", http.StatusUnauthorized},
		"refresh token": {"Bearer " + tok.RefreshToken, http.StatusUnauthorized},
		"garbage":       {"Bearer x.y.z", http.StatusUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			req := mustRequest(t, http.MethodGet, ts.URL+"/userinfo", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp := mustDo(t, http.DefaultClient, req)
			body := readAll(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != http.StatusOK && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

func TestEndSession(t *testing.T) {
	ts := mustStart(t, nil)
	tok := mustGrant(t, ts, oauthConfig(ts)).token
	idToken, _ := tok.Extra("id_token").(string)
	noFollow := devidptest.Browser(postLogoutURL)

	tests := []struct {
		name     string
		params   url.Values
		status   int
		location string
		body     string
	}{
		{name: "registered via id_token_hint", params: url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {postLogoutURL}, "state": {"xyz"}},
			status: http.StatusSeeOther, location: postLogoutURL + "?state=xyz"},
		{name: "registered via client_id", params: url.Values{"client_id": {clientID}, "post_logout_redirect_uri": {postLogoutURL}},
			status: http.StatusSeeOther, location: postLogoutURL},
		{name: "unregistered", params: url.Values{"id_token_hint": {idToken}, "post_logout_redirect_uri": {"http://evil.test/"}},
			status: http.StatusBadRequest, body: "not registered"},
		{name: "no client named", params: url.Values{"post_logout_redirect_uri": {postLogoutURL}},
			status: http.StatusBadRequest, body: "not registered"},
		{name: "forged hint", params: url.Values{"id_token_hint": {tok.AccessToken + "x"}, "post_logout_redirect_uri": {postLogoutURL}},
			status: http.StatusBadRequest, body: "id_token_hint"},
		{name: "no redirect", params: url.Values{"id_token_hint": {idToken}}, status: http.StatusOK, body: "Signed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := mustDo(t, noFollow, mustRequest(t, http.MethodGet, ts.URL+"/logout?"+tt.params.Encode(), nil))
			body := readAll(t, resp)
			if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location || !strings.Contains(body, tt.body) {
				t.Fatalf("status %d, Location %q, body %s", resp.StatusCode, resp.Header.Get("Location"), body)
			}
		})
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	_, err := devidp.New(t.Context(), devidp.Config{
		Issuer:  "ftp://x",
		Clients: []devidp.Client{{ID: "a"}, {ID: "b", Secret: "s", RedirectURIs: []string{"/relative"}}},
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"Issuer", `client "a" has no secret`, `"/relative"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for addr, wantErr := range map[string]bool{
		":0":          true,
		"0.0.0.0:0":   true,
		"[::]:0":      true,
		"127.0.0.1:0": false,
		"localhost:0": false,
	} {
		t.Run(addr, func(t *testing.T) {
			ln, err := devidp.Listen(t.Context(), devidp.Config{ListenAddr: addr})
			if ln != nil {
				ln.Close()
			}
			if wantErr != errors.Is(err, devidp.ErrNonLoopback) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestServeShutsDown(t *testing.T) {
	ln, err := devidp.Listen(t.Context(), devidp.Config{ListenAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	issuer := devidp.IssuerFor(ln.Addr())
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	srv, err := devidp.New(ctx, devidp.Config{Issuer: issuer, SigningKey: testKey()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	go func() {
		done <- httpserve.Serve(ctx, ln, srv, httpserve.Options{Logger: slog.New(slog.DiscardHandler)})
	}()
	var doc map[string]any
	for i := 0; ; i++ {
		resp, err := http.Get(issuer + "/.well-known/openid-configuration")
		if err == nil {
			err = json.NewDecoder(resp.Body).Decode(&doc)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		if i > 100 {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if doc["issuer"] != issuer {
		t.Fatalf("issuer = %v, want %s", doc["issuer"], issuer)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
}

// helpers

func mustParseAccessToken(t *testing.T, ts *devidptest.Server, raw string) (*jwt.Token, jwt.MapClaims) {
	t.Helper()
	var set jose.JSONWebKeySet
	mustGetJSON(t, ts.URL+"/jwks", &set)
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(raw, claims, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		keys := set.Key(kid)
		if len(keys) != 1 {
			return nil, errors.New("unknown kid")
		}
		return keys[0].Key, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuer(ts.URL), jwt.WithAudience("todo-api"),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("access token: %v", err)
	}
	return tok, claims
}

func active(t *testing.T, ts *devidptest.Server, token string) bool {
	t.Helper()
	status, got := introspect(t, ts, token, authBasic(apiID, apiSecret))
	if status != http.StatusOK {
		t.Fatalf("introspect: status %d", status)
	}
	return got["active"] == true
}

func authBasic(id, secret string) func(*http.Request, url.Values) {
	return func(r *http.Request, _ url.Values) { r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret)) }
}

func authPost(id, secret string) func(*http.Request, url.Values) {
	return func(_ *http.Request, f url.Values) { f.Set("client_id", id); f.Set("client_secret", secret) }
}

func introspect(t *testing.T, ts *devidptest.Server, token string, auth func(*http.Request, url.Values)) (int, map[string]any) {
	t.Helper()
	form := url.Values{"token": {token}}
	req := mustRequest(t, http.MethodPost, ts.URL+"/introspect", nil)
	auth(req, form)
	req.Body = io.NopCloser(strings.NewReader(form.Encode()))
	req.ContentLength = int64(len(form.Encode()))
	resp := mustDo(t, http.DefaultClient, req)
	defer resp.Body.Close()
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, got
}

func wantRetrieveError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *oauth2.RetrieveError", err)
	}
	if re.Response.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("status %d error %q, want %d %q (%s)", re.Response.StatusCode, re.ErrorCode, status, code, re.ErrorDescription)
	}
}

func mustRequest(t *testing.T, method, target string, form url.Values) *http.Request {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(t.Context(), method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return req
}

func mustDo(t *testing.T, c *http.Client, req *http.Request) *http.Response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustGetJSON(t *testing.T, target string, v any) {
	t.Helper()
	resp := mustDo(t, http.DefaultClient, mustRequest(t, http.MethodGet, target, nil))
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", target, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}

func strs(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, s := range v {
			str, _ := s.(string)
			out = append(out, str)
		}
		return out
	}
	return nil
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

func TestAccessTokenExpires(t *testing.T) {
	// Long enough that a loaded machine (the race detector, parallel
	// packages) still asks while the token is fresh.
	const ttl = 3 * time.Second
	ts := mustStart(t, func(c *devidp.Config) { c.AccessTokenTTL = ttl; c.OpaqueAccessTokens = true })
	conf := oauthConfig(ts)
	issued := time.Now()
	tok := mustGrant(t, ts, conf).token
	if !active(t, ts, tok.AccessToken) {
		t.Fatalf("fresh token inactive (%v after the grant began)", time.Since(issued))
	}
	time.Sleep(time.Until(issued.Add(ttl + 1100*time.Millisecond)))
	if active(t, ts, tok.AccessToken) {
		t.Fatal("expired token active")
	}
	// The refresh token outlives it.
	if _, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentGrants is for the race detector: fosite's Config and our
// store under parallel logins, refreshes and introspections.
func TestConcurrentGrants(t *testing.T) {
	ts := mustStart(t, nil)
	conf := oauthConfig(ts)
	for i := range 4 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			tok := mustGrant(t, ts, conf).token
			next, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
			if err != nil {
				t.Fatal(err)
			}
			if !active(t, ts, next.AccessToken) {
				t.Fatal("inactive")
			}
		})
	}
}

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestTokenRequestLog: every token request ends with one "token request"
// line naming its grant type, client and outcome, which the end-to-end
// tests count (e2e/cluster_test.go: one refresh grant across several
// exchange instances); an unknown grant_type is logged as "other", and no
// code or token reaches the log.
func TestTokenRequestLog(t *testing.T) {
	var buf syncBuffer
	ts := mustStart(t, func(c *devidp.Config) { c.Logger = slog.New(slog.NewJSONHandler(&buf, nil)) })
	conf := oauthConfig(ts)
	first := mustGrant(t, ts, conf).token
	second, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	_, err = conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
	wantRetrieveError(t, err, http.StatusBadRequest, "invalid_grant")
	req := mustRequest(t, http.MethodPost, ts.URL+"/token", url.Values{"grant_type": {"password\n{\"x\":1}"}, "username": {"alice"}, "password": {"alice"}})
	req.SetBasicAuth(clientID, clientSecret)
	readAll(t, mustDo(t, http.DefaultClient, req))

	type line struct {
		Msg       string `json:"msg"`
		GrantType string `json:"grant_type"`
		ClientID  string `json:"client_id"`
		Issued    bool   `json:"issued"`
	}
	var got []line
	for l := range strings.Lines(buf.String()) {
		var e line
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if e.Msg == "token request" {
			got = append(got, e)
		}
	}
	want := []line{
		{"token request", "authorization_code", clientID, true},
		{"token request", "refresh_token", clientID, true},
		{"token request", "refresh_token", clientID, false},
		{"token request", "other", "", false}, // fosite drops the request it has no handler for
	}
	if !slices.Equal(got, want) {
		t.Fatalf("token request lines:\n got %+v\nwant %+v", got, want)
	}
	for _, secret := range []string{first.AccessToken, first.RefreshToken, second.AccessToken, second.RefreshToken, clientSecret} {
		if strings.Contains(buf.String(), secret) {
			t.Fatal("the log holds a token or the client secret")
		}
	}
}

// TestConcurrentRefreshSpendsOnce: a refresh token sent by several clients
// at once is rotated once; the others get no tokens. Checking the token
// and retiring it used to be two steps, so two concurrent refreshes could
// both pass the check and both get a new pair from one refresh token.
func TestConcurrentRefreshSpendsOnce(t *testing.T) {
	ts := mustStart(t, nil)
	conf := oauthConfig(ts)
	for range 5 {
		tok := mustGrant(t, ts, conf).token
		var ok atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 20 {
			wg.Go(func() {
				<-start
				if _, err := conf.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token(); err == nil {
					ok.Add(1)
				} else if re := (*oauth2.RetrieveError)(nil); !errors.As(err, &re) || re.Response.StatusCode != http.StatusBadRequest {
					t.Errorf("a refused refresh: %v, want a 400", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := ok.Load(); n != 1 {
			t.Fatalf("%d of 20 concurrent refreshes with one refresh token got tokens, want 1", n)
		}
	}
}

package main

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
)

// TestOnlyAccessTokensWithDevidp runs the todo API in introspection mode
// against a real devidp and signs alice in: her access token works, while
// her refresh token (which lives for a day) and her ID token, sent as bearer
// tokens, are refused. devidp's introspection, through fosite, used to
// answer "active": true for the refresh token.
func TestOnlyAccessTokensWithDevidp(t *testing.T) {
	const (
		redirect  = "http://client.test/oauth-callback"
		apiID     = "todo-api-introspection"
		apiSecret = "api-secret"
	)
	idp := devidptest.Start(t, devidp.Config{
		OpaqueAccessTokens: true,
		Clients: []devidp.Client{
			{ID: "exchange", Secret: "exchange-secret", RedirectURIs: []string{redirect}},
			{ID: apiID, Secret: apiSecret},
		},
	})
	conf := &oauth2.Config{
		ClientID: "exchange", ClientSecret: "exchange-secret", RedirectURL: redirect,
		Scopes:   []string{"openid", "offline_access", "todos:read", "todos:write"},
		Endpoint: oauth2.Endpoint{AuthURL: idp.URL + "/authorize", TokenURL: idp.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
	verifier := oauth2.GenerateVerifier()
	resp, err := devidptest.Login(t.Context(), devidptest.Browser(redirect),
		conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)), "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code in the redirect (%v): status %d", err, resp.StatusCode)
	}
	tok, err := conf.Exchange(t.Context(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idToken, _ := tok.Extra("id_token").(string)
	if tok.RefreshToken == "" || idToken == "" || strings.Count(tok.AccessToken, ".") == 2 {
		t.Fatalf("want an opaque access token, a refresh token and an ID token; got refresh %v, ID %v",
			tok.RefreshToken != "", idToken != "")
	}

	s := startServer(t, map[string]string{
		"ISSUER":                      idp.URL,
		"AUDIENCE":                    devidp.DefaultAudience,
		"AUTH_MODE":                   "introspection",
		"INTROSPECTION_CLIENT_ID":     apiID,
		"INTROSPECTION_CLIENT_SECRET": apiSecret,
		"DATABASE_URL":                "sqlite:" + filepath.Join(t.TempDir(), "todos.db"),
		"CORS_ALLOWED_ORIGINS":        "http://app.test",
	})
	tests := []struct {
		name   string
		token  string
		status int
	}{
		{"access token", tok.AccessToken, http.StatusOK},
		{"refresh token", tok.RefreshToken, http.StatusUnauthorized},
		{"ID token", idToken, http.StatusUnauthorized},
		{"access token again", tok.AccessToken, http.StatusOK},
		{"refresh token again", tok.RefreshToken, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newCaller(t, s.URL, tt.token).do("GET", "/todos", nil)
			expect(t, r, tt.status)
			if tt.status == http.StatusUnauthorized && !strings.Contains(r.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("challenge %q, want invalid_token", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
}

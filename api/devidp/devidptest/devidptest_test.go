package devidptest_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
)

// TestLoginThroughAClient plays a relying party on its own httptest server:
// /login redirects to devidp, /cb swaps the code for tokens. A Browser that
// follows every redirect signs in the way a person would.
func TestLoginThroughAClient(t *testing.T) {
	app := httptest.NewUnstartedServer(nil)
	callback := "http://" + app.Listener.Addr().String() + "/cb"

	idp := devidptest.Start(t, devidp.Config{Clients: []devidp.Client{
		{ID: "app", Secret: "app-secret", RedirectURIs: []string{callback}},
	}})
	conf := &oauth2.Config{
		ClientID: "app", ClientSecret: "app-secret", RedirectURL: callback,
		Scopes:   []string{"openid", "todos:read"},
		Endpoint: oauth2.Endpoint{AuthURL: idp.URL + "/authorize", TokenURL: idp.URL + "/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
	verifier := oauth2.GenerateVerifier() // one login at a time in this test
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)), http.StatusFound)
	})
	mux.HandleFunc("GET /cb", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("iss") != idp.URL || r.URL.Query().Get("state") != "state-0123456789" {
			http.Error(w, "bad iss or state", http.StatusBadRequest)
			return
		}
		tok, err := conf.Exchange(r.Context(), r.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "signed in, scope %v", tok.Extra("scope"))
	})
	app.Config.Handler = mux
	app.Start()
	t.Cleanup(app.Close)

	resp, err := devidptest.Login(t.Context(), devidptest.Browser(""), app.URL+"/login", "bob", "bob")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "signed in, scope openid todos:read") {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
}

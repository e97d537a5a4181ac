package main

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
	"github.com/tollgate-dev/tollgate/todos/todostest"
)

// TestMCPClientDiscoversTheAuthorizationServer: a client nobody here
// wrote, the official MCP Go SDK, finds devidp from a 401 of the todo API
// (RFC 9728): oauthex reads resource_metadata from the challenge, fetches
// and validates the metadata (§3.3: its resource is RESOURCE_URL), and then
// the authorization server's metadata. The SDK's whole authorization-code
// handler then signs alice in on its own and its token reads her todos.
// On PostgreSQL, as the deployed API runs.
func TestMCPClientDiscoversTheAuthorizationServer(t *testing.T) {
	const redirect = "http://client.test/callback"
	idp := devidptest.Start(t, devidp.Config{
		Clients: []devidp.Client{{ID: "mcp-client", Secret: "mcp-secret", RedirectURIs: []string{redirect}}},
	})
	addr := freeLoopbackAddr(t)
	resource := "http://" + addr // the URL clients call: the resource identifier
	s := startServer(t, map[string]string{
		"LISTEN_ADDR":  addr,
		"RESOURCE_URL": resource,
		"ISSUER":       idp.URL,
		"AUDIENCE":     devidp.DefaultAudience,
		"DATABASE_URL": todostest.PostgresURL(t),
	})
	if s.URL != resource {
		t.Fatalf("listening on %s, not %s", s.URL, resource)
	}
	ctx := t.Context()

	req, resp := unauthenticated(t, s.URL+"/todos")
	challenges, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	if err != nil || len(challenges) != 1 || challenges[0].Scheme != "bearer" {
		t.Fatalf("challenges %v (%v) in %q", challenges, err, resp.Header.Values("WWW-Authenticate"))
	}
	metaURL := challenges[0].Params["resource_metadata"]
	if metaURL != resource+"/.well-known/oauth-protected-resource" {
		t.Fatalf("resource_metadata = %q", metaURL)
	}
	prm, err := oauthex.GetProtectedResourceMetadata(ctx, metaURL, resource, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(prm.AuthorizationServers, []string{idp.URL}) ||
		!slices.Equal(prm.ScopesSupported, []string{"todos:read", "todos:write"}) ||
		!slices.Equal(prm.BearerMethodsSupported, []string{"header"}) {
		t.Fatalf("metadata %+v", prm)
	}
	// A document fetched for another resource identifier is refused by
	// the client (§3.3): the check has teeth.
	if _, err := oauthex.GetProtectedResourceMetadata(ctx, metaURL, resource+"/other", nil); err == nil {
		t.Fatal("metadata accepted for another resource")
	}
	asm, err := auth.GetAuthServerMetadata(ctx, prm.AuthorizationServers[0], nil)
	if err != nil || asm == nil {
		t.Fatalf("authorization server metadata: %v, %v", asm, err)
	}
	if asm.Issuer != idp.URL || asm.TokenEndpoint == "" || asm.AuthorizationEndpoint == "" {
		t.Fatalf("authorization server metadata %+v", asm)
	}

	// The SDK's own flow, from the same 401: discovery, PKCE, sign-in (the
	// browser step played by devidptest), token.
	h, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		PreregisteredClient: &oauthex.ClientCredentials{
			ClientID: "mcp-client", ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: "mcp-secret"},
		},
		RedirectURL:           redirect,
		AcceptUnadvertisedIss: true,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			r, err := devidptest.Login(ctx, devidptest.Browser(redirect), args.URL, "alice", "alice")
			if err != nil {
				return nil, err
			}
			r.Body.Close()
			loc, err := url.Parse(r.Header.Get("Location"))
			if err != nil {
				return nil, err
			}
			q := loc.Query()
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, resp = unauthenticated(t, s.URL+"/todos")
	if err := h.Authorize(ctx, req, resp); err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	ts, err := h.TokenSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	expect(t, newCaller(t, s.URL, tok.AccessToken).do("GET", "/todos", nil), http.StatusOK)
}

// unauthenticated sends GET target with no token and returns the request
// and its answer, which must be 401.
func unauthenticated(t *testing.T, target string) (*http.Request, *http.Response) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET %s without a token: %d", target, resp.StatusCode)
	}
	return req, resp
}

// freeLoopbackAddr returns a loopback address with a port free a moment
// ago, for a server whose URL must be known before it starts (its
// RESOURCE_URL).
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

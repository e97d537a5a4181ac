package mcpauth_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/mcpauth"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}`

// post sends one JSON-RPC message to endpoint as an MCP client would, with
// token ("" for none) and the session id ("" for none).
func post(t *testing.T, endpoint, token, session, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, endpoint, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if session != "" {
		req.Header.Set("Mcp-Session-Id", session)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestMCPEndToEnd: an MCP client of the official SDK, over its streamable
// HTTP transport, with a token from authtest, lists the tools and calls one
// that answers with the verified caller; without a token it gets 401 with
// resource_metadata, from which the SDK's oauthex finds the document for
// the endpoint; without the scope, 403 insufficient_scope.
func TestMCPEndToEnd(t *testing.T) {
	is := authtest.NewIssuer(t, authtest.WithScopes("mcp:tools"))
	endpoint, a := startMCP(t, is, "mcp:tools")
	ctx := t.Context()

	t.Run("with a token", func(t *testing.T) {
		cs, err := connect(ctx, endpoint, is.Token(t, "alice", nil))
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		tools, err := cs.ListTools(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(tools.Tools) != 1 || tools.Tools[0].Name != "whoami" {
			t.Fatalf("tools %v", tools.Tools)
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		if res.IsError || len(res.Content) != 1 || res.Content[0].(*mcp.TextContent).Text != "alice" {
			t.Fatalf("whoami answered %+v", res)
		}
		if sc, _ := res.StructuredContent.(map[string]any); sc["subject"] != "alice" {
			t.Errorf("structured content %v", res.StructuredContent)
		}
	})

	t.Run("without a token", func(t *testing.T) {
		if _, err := connect(ctx, endpoint, ""); err == nil {
			t.Fatal("connected without a token")
		}
		resp := post(t, endpoint, "", "", initialize)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d", resp.StatusCode)
		}
		challenges, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
		if err != nil || len(challenges) != 1 {
			t.Fatalf("challenges %v, %v", challenges, err)
		}
		metaURL := challenges[0].Params["resource_metadata"]
		if metaURL == "" || metaURL != a.ResourceMetadataURL() {
			t.Fatalf("resource_metadata %q, want %q", metaURL, a.ResourceMetadataURL())
		}
		prm, err := oauthex.GetProtectedResourceMetadata(ctx, metaURL, endpoint, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(prm.AuthorizationServers, []string{is.URL}) || !slices.Equal(prm.ScopesSupported, []string{"mcp:tools"}) {
			t.Errorf("metadata %+v", prm)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("Content-Type %q: not Tollgate's answer", ct)
		}
	})

	t.Run("without the scope", func(t *testing.T) {
		token := is.Token(t, "bob", func(c jwt.MapClaims) { c["scope"] = "profile" })
		if _, err := connect(ctx, endpoint, token); err == nil {
			t.Fatal("connected without the scope")
		}
		resp := post(t, endpoint, token, "", initialize)
		ch := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(ch, `error="insufficient_scope"`) ||
			!strings.Contains(ch, `scope="mcp:tools"`) || !strings.Contains(ch, `resource_metadata="`+a.ResourceMetadataURL()+`"`) {
			t.Fatalf("%d %q", resp.StatusCode, ch)
		}
	})

	t.Run("expired token", func(t *testing.T) {
		token := is.Token(t, "alice", func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })
		resp := post(t, endpoint, token, "", initialize)
		if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, "resource_metadata=") {
			t.Fatalf("%d %q", resp.StatusCode, ch)
		}
	})

	t.Run("a session stays with its user", func(t *testing.T) {
		cs, err := connect(ctx, endpoint, is.Token(t, "alice", nil))
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		list := `{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}}`
		if resp := post(t, endpoint, is.Token(t, "alice", nil), cs.ID(), list); resp.StatusCode != http.StatusOK {
			t.Fatalf("alice in her own session: %d", resp.StatusCode)
		}
		// bob's token is valid, but the session is alice's: the SDK
		// refuses, by the UserID that TokenInfo gave it.
		if resp := post(t, endpoint, is.Token(t, "bob", nil), cs.ID(), list); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("bob in alice's session: %d", resp.StatusCode)
		}
	})

	t.Run("metadata served at the endpoint's well-known URL", func(t *testing.T) {
		resp, err := http.Get(a.ResourceMetadataURL())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasSuffix(a.ResourceMetadataURL(), "/.well-known/oauth-protected-resource/mcp") {
			t.Fatalf("%s: %d", a.ResourceMetadataURL(), resp.StatusCode)
		}
		// The root form names another resource: 404, not the MCP side's 401.
		root := strings.TrimSuffix(a.ResourceMetadataURL(), "/mcp")
		resp, err = http.Get(root)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", root, resp.StatusCode)
		}
	})
}

// TestVerifierAlone: given to the SDK's own auth.RequireBearerToken,
// Verifier verifies the token, maps it, and refuses with fixed text that
// wraps the SDK's sentinel and Tollgate's error, never the cause.
func TestVerifierAlone(t *testing.T) {
	is := authtest.NewIssuer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, err := middleware.New(ctx, middleware.Config{Issuer: is.URL, Audiences: []string{authtest.Audience}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	for a.Ready(ctx) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	v := mcpauth.Verifier(a)
	h := auth.RequireBearerToken(v, nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ti := auth.TokenInfoFromContext(r.Context())
		p, ok := mcpauth.PrincipalOf(ti)
		if !ok {
			http.Error(w, "no principal", 500)
			return
		}
		_, _ = io.WriteString(w, p.Subject+" "+ti.UserID)
	}))
	tests := []struct {
		name, token string
		status      int
		body        string
	}{
		{"valid", is.Token(t, "alice", nil), 200, "alice " + is.URL + " alice"},
		{"stranger's audience", is.Token(t, "alice", func(c jwt.MapClaims) { c["aud"] = "other" }), 401, "invalid token\n"},
		{"garbage", "x.y.z", 401, "invalid token\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/mcp", nil)
			r.Header.Set("Authorization", "Bearer "+tt.token)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.status || w.Body.String() != tt.body {
				t.Fatalf("%d %q, want %d %q", w.Code, w.Body, tt.status, tt.body)
			}
		})
	}
	r := httptest.NewRequest("GET", "/mcp", nil)
	r.Header.Set("Authorization", "Bearer x.y.z")
	_, err = v(r.Context(), "x.y.z", r)
	if !errors.Is(err, auth.ErrInvalidToken) || !errors.Is(err, middleware.ErrInvalidToken) || err.Error() != "invalid token" {
		t.Errorf("err %v", err)
	}
}

// TestTokenInfo: the mapping into the SDK's TokenInfo.
func TestTokenInfo(t *testing.T) {
	exp := time.Unix(1_900_000_000, 0)
	p := principal.Principal{Subject: "alice", Scopes: []string{"a", "b"}, ExpiresAt: exp, Claims: map[string]any{"iss": "https://as.example.com"}}
	ti := mcpauth.TokenInfo(p)
	if !slices.Equal(ti.Scopes, []string{"a", "b"}) || !ti.Expiration.Equal(exp) || ti.UserID != "https://as.example.com alice" {
		t.Errorf("TokenInfo %+v", ti)
	}
	if got, ok := mcpauth.PrincipalOf(ti); !ok || got.Subject != "alice" {
		t.Errorf("PrincipalOf %v %v", got, ok)
	}
	p.Scopes[0] = "changed"
	if ti.Scopes[0] != "a" {
		t.Error("TokenInfo shares the Principal's scopes")
	}
	if ti := mcpauth.TokenInfo(principal.Principal{Subject: "bob"}); ti.UserID != "bob" || !ti.Expiration.IsZero() {
		t.Errorf("no iss, no exp: %+v", ti)
	}
	if _, ok := mcpauth.PrincipalOf(nil); ok {
		t.Error("PrincipalOf(nil) reports a caller")
	}
	if _, ok := mcpauth.PrincipalOf(&auth.TokenInfo{UserID: "x"}); ok {
		t.Error("a TokenInfo from another verifier reports a caller")
	}
	if _, ok := mcpauth.From(nil); ok {
		t.Error("From(nil) reports a caller")
	}
}

// TestHandlerNeedsMetadata: Handler refuses at start an Authenticator
// without ResourceMetadata.
func TestHandlerNeedsMetadata(t *testing.T) {
	is := authtest.NewIssuer(t)
	a, err := middleware.New(t.Context(), middleware.Config{Issuer: is.URL, Audiences: []string{authtest.Audience}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Handler accepted an Authenticator without ResourceMetadata")
		}
	}()
	mcpauth.Handler(a, http.NotFoundHandler())
}

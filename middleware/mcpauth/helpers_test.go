package mcpauth_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/mcpauth"
)

// logTB lets examples drive an authtest.Issuer: failures panic, cleanups
// are left to the process's end.
type logTB struct{}

func (logTB) Helper()                      {}
func (logTB) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (logTB) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (logTB) Cleanup(func())               {}

// whoamiIn is the whoami tool's input: none.
type whoamiIn struct{}

// whoamiOut is what the whoami tool answers: the verified caller.
type whoamiOut struct {
	Subject string   `json:"subject"`
	Scopes  []string `json:"scopes"`
}

// newMCPServer is an MCP server with one tool, whoami, which answers with
// the verified caller that mcpauth put in the request.
func newMCPServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "todo-mcp", Version: "1.0.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "whoami", Description: "Who the access token says you are"},
		func(_ context.Context, req *mcp.CallToolRequest, _ whoamiIn) (*mcp.CallToolResult, whoamiOut, error) {
			p, ok := mcpauth.From(req.Extra)
			if !ok {
				return nil, whoamiOut{}, fmt.Errorf("no verified caller")
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: p.Subject}}},
				whoamiOut{Subject: p.Subject, Scopes: p.Scopes}, nil
		})
	return s
}

// startMCP starts, on a test server, the MCP server of newMCPServer behind
// an Authenticator for is whose resource identifier is the server's /mcp
// endpoint, needing scopes. It returns the endpoint's URL and the
// Authenticator.
func startMCP(tb authtest.TB, is *authtest.Issuer, scopes ...string) (string, *middleware.Authenticator) {
	tb.Helper()
	srv := httptest.NewUnstartedServer(nil)
	endpoint := "http://" + srv.Listener.Addr().String() + "/mcp"
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(cancel)
	a, err := middleware.New(ctx, middleware.Config{
		Issuer:           is.URL,
		Audiences:        []string{authtest.Audience},
		Logger:           slog.New(slog.DiscardHandler),
		ResourceMetadata: &middleware.ResourceMetadata{Resource: endpoint, ScopesSupported: scopes},
	})
	if err != nil {
		tb.Fatal(err)
	}
	for a.Ready(ctx) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return newMCPServer() }, nil)
	srv.Config.Handler = mcpauth.Handler(a, mcpHandler, scopes...)
	srv.Start()
	tb.Cleanup(srv.Close)
	return endpoint, a
}

// bearerTransport sends token in the Authorization header of every request.
type bearerTransport struct{ token string }

func (t bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if t.token != "" {
		r.Header.Set("Authorization", "Bearer "+t.token)
	}
	return http.DefaultTransport.RoundTrip(r)
}

// connect opens an MCP client session to endpoint with token, over the
// SDK's streamable HTTP transport.
func connect(ctx context.Context, endpoint, token string) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, nil)
	return c.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:             endpoint,
		HTTPClient:           &http.Client{Transport: bearerTransport{token}},
		MaxRetries:           -1,
		DisableStandaloneSSE: true,
	}, nil)
}

package mcpauth_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/mcpauth"
)

// An MCP server whose tool sees the verified caller. In a real server the
// Issuer is your authorization server, Resource the endpoint's public
// https URL, and there is no authtest; the MCP client brings its own token.
func Example() {
	is := authtest.NewIssuer(logTB{}, authtest.WithScopes("notes:read"))
	srv := httptest.NewUnstartedServer(nil)
	endpoint := "http://" + srv.Listener.Addr().String() + "/mcp"

	auth, err := middleware.New(context.Background(), middleware.Config{
		Issuer:    is.URL,
		Audiences: []string{authtest.Audience},
		Logger:    slog.New(slog.DiscardHandler),
		ResourceMetadata: &middleware.ResourceMetadata{
			Resource:        endpoint, // what MCP clients call and request tokens for
			ScopesSupported: []string{"notes:read"},
		},
	})
	if err != nil {
		log.Fatal(err)
	}

	server := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	type in struct{}
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "The caller's subject"},
		func(_ context.Context, req *mcp.CallToolRequest, _ in) (*mcp.CallToolResult, any, error) {
			p, _ := mcpauth.From(req.Extra) // always there behind mcpauth.Handler
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello " + p.Subject}}}, nil, nil
		})
	streamable := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	srv.Config.Handler = mcpauth.Handler(auth, streamable, "notes:read")
	srv.Start()
	defer srv.Close()
	for auth.Ready(context.Background()) != nil {
		time.Sleep(5 * time.Millisecond)
	}

	// A client of the same SDK, with alice's token.
	ctx := context.Background()
	cs, err := connect(ctx, endpoint, is.Mint(logTB{}, "alice"))
	if err != nil {
		log.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)

	// Without a token: 401, naming the metadata for discovery.
	resp, err := http.Post(endpoint, "application/json", nil)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate") == `Bearer resource_metadata="`+auth.ResourceMetadataURL()+`"`)
	// Output:
	// hello alice
	// 401 true
}

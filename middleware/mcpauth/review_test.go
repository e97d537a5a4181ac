package mcpauth_test

// Review of the prm merge: failing proofs for mcpauth (see
// /work/wt/review-prm-REPORT.md).

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/mcpauth"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// newAuth is a ready Authenticator for is, accepting tokens for audience,
// whose resource identifier is resource ("" for none).
func newAuth(t *testing.T, is *authtest.Issuer, audience, resource string, skew time.Duration) *middleware.Authenticator {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := middleware.Config{Issuer: is.URL, Audiences: []string{audience}, ClockSkew: skew, Logger: slog.New(slog.DiscardHandler)}
	if resource != "" {
		cfg.ResourceMetadata = &middleware.ResourceMetadata{Resource: resource}
	}
	a, err := middleware.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for a.Ready(ctx) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	return a
}

// TestReviewVerifierTrustsOnlyItsOwnAuthenticator: an application that
// protects its REST API with one Authenticator (audience "api") in front of
// every route, and its MCP endpoint with the SDK's RequireBearerToken and
// Verifier of another (audience "mcp", the MCP resource), must not let a
// token for the API into the MCP server: Verifier may take the Principal
// from the context only when its own Authenticator verified it.
func TestReviewVerifierTrustsOnlyItsOwnAuthenticator(t *testing.T) {
	is := authtest.NewIssuer(t)
	api := newAuth(t, is, "https://api.example.com", "", 0)
	mcpA := newAuth(t, is, "https://api.example.com/mcp", "", 0)

	var reached atomic.Bool
	mcpRoute := auth.RequireBearerToken(mcpauth.Verifier(mcpA), nil)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Store(true)
	}))
	// The careless integrator's router: the API's Require around everything.
	h := api.Require(mcpRoute)

	apiToken := is.Token(t, "alice", func(c jwt.MapClaims) { c["aud"] = "https://api.example.com" })
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.Header.Set("Authorization", "Bearer "+apiToken)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if reached.Load() || w.Code != http.StatusUnauthorized {
		t.Fatalf("a token for the API (aud https://api.example.com) reached the MCP server, whose Authenticator wants aud https://api.example.com/mcp: status %d", w.Code)
	}

	// The same token straight to the MCP route is refused: the check that
	// the outer Authenticator made Verifier skip.
	w = httptest.NewRecorder()
	mcpRoute.ServeHTTP(w, r)
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("alone: %d", w.Code)
	}
}

// mutableBearer sends whatever token is current.
type mutableBearer struct{ token atomic.Value }

func (m *mutableBearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+m.token.Load().(string))
	return http.DefaultTransport.RoundTrip(r)
}

// TestReviewToolContextIsNotTheInitializersCaller: the SDK runs every tool
// handler of a session in a context made from the session's first request
// (initialize). principal.From(ctx), Tollgate's way to read the caller,
// must not answer there with the caller of that first request: a later
// call on the session comes with another token (fewer scopes, or after the
// first expired), and a tool that checks principal.From(ctx) would grant
// what the current token does not.
func TestReviewToolContextIsNotTheInitializersCaller(t *testing.T) {
	is := authtest.NewIssuer(t)
	srv := httptest.NewUnstartedServer(nil)
	endpoint := "http://" + srv.Listener.Addr().String() + "/mcp"
	a := newAuth(t, is, authtest.Audience, endpoint, 0)

	type seen struct{ ctxScopes, extraScopes []string }
	var mu sync.Mutex
	var got []seen
	s := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "admin"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, struct{}, error) {
		var sn seen
		if p, ok := principal.From(ctx); ok {
			sn.ctxScopes = p.Scopes
		}
		if p, ok := mcpauth.From(req.Extra); ok {
			sn.extraScopes = p.Scopes
		}
		mu.Lock()
		got = append(got, sn)
		mu.Unlock()
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, struct{}{}, nil
	})
	srv.Config.Handler = mcpauth.Handler(a, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil), "mcp:tools")
	srv.Start()
	defer srv.Close()

	tr := &mutableBearer{}
	tr.token.Store(is.Token(t, "alice", func(c jwt.MapClaims) { c["scope"] = "mcp:tools admin" }))
	c := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil)
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: tr}, MaxRetries: -1, DisableStandaloneSSE: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	// alice's next token has no admin scope.
	tr.token.Store(is.Token(t, "alice", func(c jwt.MapClaims) { c["scope"] = "mcp:tools" }))
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "admin", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("tool ran %d times", len(got))
	}
	if strings.Join(got[0].extraScopes, " ") != "mcp:tools" {
		t.Fatalf("From(req.Extra) scopes %v", got[0].extraScopes)
	}
	if got[0].ctxScopes != nil {
		t.Fatalf("principal.From(ctx) in the tool answered the initialize request's caller, scopes %v, while the call's token has %v", got[0].ctxScopes, got[0].extraScopes)
	}
}

// TestReviewSSEStreamEndsWithTheToken: the standalone SSE stream (GET) is
// one request that lasts as long as the client keeps it; the server's
// notifications must stop reaching a holder whose token has expired.
func TestReviewSSEStreamEndsWithTheToken(t *testing.T) {
	is := authtest.NewIssuer(t)
	srv := httptest.NewUnstartedServer(nil)
	endpoint := "http://" + srv.Listener.Addr().String() + "/mcp"
	a := newAuth(t, is, authtest.Audience, endpoint, middleware.Off)
	s := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "one"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, struct{}, error) {
		return &mcp.CallToolResult{}, struct{}{}, nil
	})
	srv.Config.Handler = mcpauth.Handler(a, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	srv.Start()
	defer srv.Close()

	exp := time.Now().Add(2 * time.Second).Truncate(time.Second)
	token := is.Token(t, "alice", func(c jwt.MapClaims) { c["exp"] = exp.Unix() })
	changed := make(chan struct{}, 10)
	c := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
	})
	cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearerTransport{token}}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()

	// While the token lives, the stream carries notifications.
	time.Sleep(200 * time.Millisecond) // the client opens its GET stream
	mcp.AddTool(s, &mcp.Tool{Name: "two"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, struct{}, error) {
		return &mcp.CallToolResult{}, struct{}{}, nil
	})
	select {
	case <-changed:
	case <-time.After(2 * time.Second):
		t.Fatal("no notification on the stream while the token is valid")
	}

	time.Sleep(time.Until(exp) + 500*time.Millisecond)
	mcp.AddTool(s, &mcp.Tool{Name: "three"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, struct{}, error) {
		return &mcp.CallToolResult{}, struct{}{}, nil
	})
	select {
	case <-changed:
		t.Fatal("a notification reached the client on the stream its token opened, after the token expired")
	case <-time.After(time.Second):
	}
}

// TestReviewToolsNeverSeeTheToken: Tollgate never prints a token (a
// Principal hides it from fmt, slog and JSON), but the SDK hands every
// tool the request's headers in req.Extra.Header; a tool that logs its
// request, as tools do, wrote the bearer token into the log.
func TestReviewToolsNeverSeeTheToken(t *testing.T) {
	is := authtest.NewIssuer(t)
	srv := httptest.NewUnstartedServer(nil)
	endpoint := "http://" + srv.Listener.Addr().String() + "/mcp"
	a := newAuth(t, is, authtest.Audience, endpoint, 0)
	var logged strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{mu: &mu, w: &logged}, nil))
	s := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, struct{}, error) {
		logger.InfoContext(ctx, "tool called", "tool", req.Params.Name, "extra", req.Extra)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, struct{}{}, nil
	})
	srv.Config.Handler = mcpauth.Handler(a, mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	srv.Start()
	defer srv.Close()

	token := is.Token(t, "alice", nil)
	cs, err := connect(t.Context(), endpoint, token)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), "tool called") {
		t.Fatalf("nothing logged: %s", logged.String())
	}
	if strings.Contains(logged.String(), token[len(token)-20:]) {
		t.Fatalf("the tool's log holds the bearer token: %s", logged.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *strings.Builder
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestReviewEveryMethodNeedsAToken (held up on main): the SDK's GET (SSE
// stream) and DELETE (end a session) go through Require as POST does: no
// token is 401 with resource_metadata, another user's token on a session
// is 403, and the session survives both.
func TestReviewEveryMethodNeedsAToken(t *testing.T) {
	is := authtest.NewIssuer(t, authtest.WithScopes("mcp:tools"))
	endpoint, a := startMCP(t, is, "mcp:tools")
	cs, err := connect(t.Context(), endpoint, is.Token(t, "alice", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for _, method := range []string{http.MethodGet, http.MethodDelete} {
		for _, tc := range []struct {
			token  string
			status int
		}{{"", 401}, {is.Token(t, "bob", nil), 403}, {"x.y.z", 401}} {
			req, _ := http.NewRequestWithContext(t.Context(), method, endpoint, nil)
			req.Header.Set("Accept", "text/event-stream")
			req.Header.Set("Mcp-Session-Id", cs.ID())
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("%s token %.8q: %d, want %d", method, tc.token, resp.StatusCode, tc.status)
			}
			if tc.status == 401 && !strings.Contains(resp.Header.Get("WWW-Authenticate"), a.ResourceMetadataURL()) {
				t.Errorf("%s: challenge %q", method, resp.Header.Get("WWW-Authenticate"))
			}
		}
	}
	if _, err := cs.ListTools(t.Context(), nil); err != nil {
		t.Fatalf("alice's session after the refusals: %v", err)
	}
}

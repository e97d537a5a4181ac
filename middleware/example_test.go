package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// newExampleAuth starts a test issuer and an Authenticator for it, after
// edit (which may be nil) has changed the config. In a real service the
// Issuer is your authorization server's URL and there is no authtest.
func newExampleAuth(edit func(*middleware.Config)) (*authtest.Issuer, *middleware.Authenticator) {
	is := authtest.NewIssuer(logTB{})
	cfg := middleware.Config{
		Issuer:    is.URL,
		Audiences: []string{authtest.Audience},
		Realm:     "example",
		Logger:    slog.New(slog.DiscardHandler),
	}
	if edit != nil {
		edit(&cfg)
	}
	auth, err := middleware.New(context.Background(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	for auth.Ready(context.Background()) != nil {
		time.Sleep(5 * time.Millisecond)
	}
	return is, auth
}

// get sends GET path with token (none when "") to srv and prints the
// status, then the challenge of a refusal or the body of an answer.
func get(srv *httptest.Server, path, token string) {
	req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 400 {
		fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		return
	}
	fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
}

// Protect net/http routes (Go 1.22 patterns): Require verifies the token,
// RequireScopes checks a scope, and the handler reads the verified caller.
func ExampleAuthenticator_Require() {
	is, auth := newExampleAuth(nil)
	defer is.Server.Close()

	mux := http.NewServeMux()
	items := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principal.From(r.Context())
		fmt.Fprintf(w, "items of %s", p.Subject)
	})
	mux.Handle("GET /items", auth.Require(auth.RequireScopes("items:read")(items)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get(srv, "/items", is.Mint(logTB{}, "alice", authtest.WithScopes("items:read")))
	get(srv, "/items", "")
	get(srv, "/items", is.Mint(logTB{}, "bob", authtest.WithScopes("profile")))
	get(srv, "/items", is.Mint(logTB{}, "carol", authtest.WithAudience("another-api")))
	// Output:
	// 200 items of alice
	// 401 Bearer realm="example"
	// 403 Bearer realm="example", error="insufficient_scope", error_description="token lacks a required scope", scope="items:read"
	// 401 Bearer realm="example", error="invalid_token", error_description="token audience not accepted"
}

// Routers in the style of chi take plain func(http.Handler) http.Handler
// middleware: Require and RequireAnyScope are such values, so they go into
// r.Use or r.With as they are. Here a tiny chain stands in for the router.
func Example_chiStyle() {
	is, auth := newExampleAuth(nil)
	defer is.Server.Close()

	// What chi's r.Use(mw...) does: wrap the handler, first one outermost.
	chain := func(h http.Handler, mws ...func(http.Handler) http.Handler) http.Handler {
		for _, mw := range slices.Backward(mws) {
			h = mw(h)
		}
		return h
	}
	admin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "admin page for %s", principal.Subject(r.Context()))
	})
	srv := httptest.NewServer(chain(admin, auth.Require, auth.RequireAnyScope("admin", "support")))
	defer srv.Close()

	get(srv, "/", is.Mint(logTB{}, "alice", authtest.WithScopes("support")))
	get(srv, "/", is.Mint(logTB{}, "bob", authtest.WithScopes("read")))
	// Output:
	// 200 admin page for alice
	// 403 Bearer realm="example", error="insufficient_scope", error_description="token lacks every accepted scope", scope="admin support"
}

// Read the claims into a struct of your own. Numbers are exact: no
// float64 round trip, so a 64-bit account number survives.
func Example_typedClaims() {
	is, auth := newExampleAuth(nil)
	defer is.Server.Close()

	type claims struct {
		Account  int64    `json:"account"`
		Tenant   string   `json:"tenant"`
		Roles    []string `json:"roles"`
		ClientID string   `json:"client_id"`
	}
	srv := httptest.NewServer(auth.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principal.From(r.Context())
		var c claims
		if err := principal.DecodeClaims(p, &c); err != nil {
			http.Error(w, "bad claims", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%+v", c)
	})))
	defer srv.Close()

	get(srv, "/", is.Mint(logTB{}, "alice", authtest.WithClaims(func(c map[string]any) {
		c["account"] = int64(9007199254740993) // 2^53 + 1: not a float64
		c["tenant"] = "acme"
		c["roles"] = []string{"editor"}
	})))
	// Output:
	// 200 {Account:9007199254740993 Tenant:acme Roles:[editor] ClientID:test-client}
}

// Add checks of your own with ValidateClaims: here the token's tenant
// must be the one the request is for, and only editors may write. An error
// wrapping ErrScope answers 403, any other 401; the realm and a fixed
// description are kept, and the error's text is only logged.
func ExampleConfig_validateClaims() {
	is, auth := newExampleAuth(func(c *middleware.Config) {
		c.ValidateClaims = func(ctx context.Context, p principal.Principal) error {
			var claims struct {
				Tenant string   `json:"tenant"`
				Roles  []string `json:"roles"`
			}
			if err := principal.DecodeClaims(p, &claims); err != nil {
				return err
			}
			if claims.Tenant != "acme" {
				return fmt.Errorf("tenant %q is not served here", claims.Tenant)
			}
			if !slices.Contains(claims.Roles, "editor") {
				return fmt.Errorf("%w: not an editor", middleware.ErrScope)
			}
			return nil
		}
	})
	defer is.Server.Close()
	srv := httptest.NewServer(auth.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "saved")
	})))
	defer srv.Close()

	token := func(tenant string, roles ...string) string {
		return is.Mint(logTB{}, "alice", authtest.WithClaims(func(c map[string]any) {
			c["tenant"], c["roles"] = tenant, roles
		}))
	}
	get(srv, "/", token("acme", "editor"))
	get(srv, "/", token("globex", "editor"))
	get(srv, "/", token("acme", "viewer"))
	// Output:
	// 200 saved
	// 401 Bearer realm="example", error="invalid_token", error_description="token claims not accepted"
	// 403 Bearer realm="example", error="insufficient_scope", error_description="token is not permitted here"
}

// Optional serves anonymous callers too, but never mistakes a bad token for
// none.
func ExampleAuthenticator_Optional() {
	is, auth := newExampleAuth(nil)
	defer is.Server.Close()
	srv := httptest.NewServer(auth.Optional(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := principal.From(r.Context()); ok {
			fmt.Fprintf(w, "hello %s", p.Subject)
			return
		}
		fmt.Fprint(w, "hello stranger")
	})))
	defer srv.Close()

	get(srv, "/", is.Mint(logTB{}, "alice"))
	get(srv, "/", "")
	get(srv, "/", "not-a-token")
	// Output:
	// 200 hello alice
	// 200 hello stranger
	// 401 Bearer realm="example", error="invalid_token", error_description="token is not a signed JWT"
}

// An ErrorHandler writes refusals its own way and keeps the status, the
// challenge (with the realm) and the reason of the default answer; it can
// hand any error back to the default with the package-level WriteError.
func ExampleConfig_errorHandler() {
	is, auth := newExampleAuth(func(c *middleware.Config) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, middleware.ErrUnavailable) {
				middleware.WriteError(w, r, err) // the default answer
				return
			}
			status, challenge := middleware.Challenge(err)
			w.Header().Set("WWW-Authenticate", challenge)
			w.WriteHeader(status)
			fmt.Fprintf(w, `{"code":%q}`, middleware.Reason(err))
		}
	})
	defer is.Server.Close()
	srv := httptest.NewServer(auth.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})))
	defer srv.Close()

	resp, err := http.Get(srv.URL)
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"), string(body))
	// Output:
	// 401 Bearer realm="example" {"code":"no_token"}
}

// A handler that checks a finer scope itself uses CheckAnyScope, and its
// unit test injects the principal: no token and no Authenticator needed.
func ExampleCheckAnyScope() {
	handler := func(w http.ResponseWriter, r *http.Request) {
		p, _ := principal.From(r.Context())
		if err := middleware.CheckAnyScope(p, "reports:read", "admin"); err != nil {
			// In the service: auth.WriteError(w, r, err), to keep the realm.
			middleware.WriteError(w, r, err)
			return
		}
		fmt.Fprint(w, "report")
	}
	for _, scopes := range [][]string{{"admin"}, {"profile"}} {
		r := httptest.NewRequest(http.MethodGet, "/report", nil)
		r = r.WithContext(principal.With(r.Context(), principal.Principal{Subject: "alice", Scopes: scopes}))
		w := httptest.NewRecorder()
		handler(w, r)
		fmt.Println(scopes, w.Code)
	}
	// Output:
	// [admin] 200
	// [profile] 403
}

// logTB lets an example use authtest outside a test: failures are fatal.
type logTB struct{}

func (logTB) Helper()                           {}
func (logTB) Fatal(args ...any)                 { log.Fatal(args...) }
func (logTB) Fatalf(format string, args ...any) { log.Fatalf(format, args...) }
func (logTB) Cleanup(func())                    {}

// Ask for a stronger or fresher sign-in on the routes that need it (RFC
// 9470 step-up): RequireStepUp, after Require, checks the token's acr and
// auth_time, and a refusal's challenge tells the client what to ask its
// authorization server for (acr_values and max_age in a new authorization
// request). A handler can call CheckStepUp instead, e.g. only for the
// bulk form of a request.
func ExampleAuthenticator_RequireStepUp() {
	is, auth := newExampleAuth(nil)
	defer is.Server.Close()

	strong := middleware.StepUp{ACRValues: []string{"urn:example:acr:mfa"}, MaxAge: 10 * time.Minute}
	mux := http.NewServeMux()
	mux.Handle("GET /payouts", auth.Require(auth.RequireStepUp(strong)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "payouts of %s", principal.Subject(r.Context()))
	}))))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	signedIn := func(acr string, ago time.Duration) authtest.Option {
		return authtest.WithClaims(func(c map[string]any) {
			c["acr"] = acr
			c["auth_time"] = time.Now().Add(-ago).Unix()
		})
	}
	get(srv, "/payouts", is.Mint(logTB{}, "alice", signedIn("urn:example:acr:mfa", time.Minute)))
	get(srv, "/payouts", is.Mint(logTB{}, "bob", signedIn("urn:example:acr:password", time.Minute)))
	get(srv, "/payouts", is.Mint(logTB{}, "carol", signedIn("urn:example:acr:mfa", 2*time.Hour)))
	// Output:
	// 200 payouts of alice
	// 401 Bearer realm="example", error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:example:acr:mfa", max_age="600"
	// 401 Bearer realm="example", error="insufficient_user_authentication", error_description="More recent authentication is required", acr_values="urn:example:acr:mfa", max_age="600"
}

// Publish RFC 9728 protected-resource metadata: the document at the
// well-known URL derived from the resource identifier, public, and its URL
// in every challenge, so that a client finds the authorization server from
// a 401.
func ExampleAuthenticator_ResourceMetadataHandler() {
	_, auth := newExampleAuth(func(c *middleware.Config) {
		c.ResourceMetadata = &middleware.ResourceMetadata{
			Resource:             "https://api.example.com/notes",
			AuthorizationServers: []string{"https://auth.example.com"}, // default: the Issuer
			ScopesSupported:      []string{"notes:read"},
		}
	})
	mux := http.NewServeMux()
	mux.Handle(auth.ResourceMetadataPath(), auth.ResourceMetadataHandler())
	mux.Handle("/notes", auth.Require(http.NotFoundHandler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	fmt.Println(auth.ResourceMetadataPath())
	resp, err := srv.Client().Get(srv.URL + auth.ResourceMetadataPath())
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Print(resp.Header.Get("Content-Type"), "\n", string(body))
	get(srv, "/notes", "")
	// Output:
	// /.well-known/oauth-protected-resource/notes
	// application/json
	// {
	//   "resource": "https://api.example.com/notes",
	//   "authorization_servers": [
	//     "https://auth.example.com"
	//   ],
	//   "scopes_supported": [
	//     "notes:read"
	//   ],
	//   "bearer_methods_supported": [
	//     "header"
	//   ]
	// }
	// 401 Bearer realm="example", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/notes"
}

// Keycloak puts the user's roles in realm_access.roles: RoleClaims reads
// them into Principal.Roles, and RequireAnyRole lets a route through for
// any one of them. Roles never satisfy a scope check, nor scopes a role
// check; a missing role is 403 insufficient_scope without a scope to ask
// for.
func ExampleAuthenticator_RequireAnyRole() {
	is, auth := newExampleAuth(func(c *middleware.Config) {
		c.RoleClaims = []string{"realm_access.roles"}
	})
	defer is.Server.Close()

	mux := http.NewServeMux()
	mux.Handle("GET /reports", auth.Require(auth.RequireAnyRole("auditor", "admin")(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principal.From(r.Context())
		fmt.Fprintf(w, "reports for %s, roles %v", p.Subject, p.Roles)
	}))))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	withRoles := func(roles ...any) authtest.Option {
		return authtest.WithClaims(func(c map[string]any) { c["realm_access"] = map[string]any{"roles": roles} })
	}
	get(srv, "/reports", is.Mint(logTB{}, "alice", withRoles("auditor")))
	get(srv, "/reports", is.Mint(logTB{}, "bob", withRoles("user")))
	// Output:
	// 200 reports for alice, roles [auditor]
	// 403 Bearer realm="example", error="insufficient_scope", error_description="token lacks every accepted role"
}

// Trust two issuers at once, each with its own audience: a token is
// checked with the keys of the issuer its iss names, and a token of an
// issuer neither of them is, is refused before any request is made.
func ExampleConfig_issuers() {
	tenant1 := authtest.NewIssuer(logTB{})
	tenant2 := authtest.NewIssuer(logTB{}, authtest.WithAudience("api-2"))
	stranger := authtest.NewIssuer(logTB{})
	auth, err := middleware.New(context.Background(), middleware.Config{
		Audiences: []string{authtest.Audience}, // tenant1's, by default
		Issuers: []middleware.IssuerConfig{
			{Issuer: tenant1.URL},
			{Issuer: tenant2.URL, Audiences: []string{"api-2"}},
		},
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(auth.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principal.From(r.Context())
		fmt.Fprintln(w, "hello", p.Subject)
	})))
	defer srv.Close()
	get(srv, "/", tenant1.Mint(logTB{}, "alice"))
	get(srv, "/", tenant2.Mint(logTB{}, "bob"))
	get(srv, "/", stranger.Mint(logTB{}, "mallory"))
	// Output:
	// 200 hello alice
	// 200 hello bob
	// 401 Bearer error="invalid_token", error_description="token issuer not accepted"
}

// Trust the listed tenants of a Microsoft Entra ID multi-tenant
// application: tokens whose iss is
// https://login.microsoftonline.com/{tid}/v2.0 (or, v1.0 tokens,
// https://sts.windows.net/{tid}/) for an allowed tenant are verified with
// Microsoft's common keys, then their tid must be that tenant. A token of
// another tenant is refused without fetching anything.
func ExampleEntraTenants() {
	tenants, err := middleware.EntraTenants("72f988bf-86f1-41af-91ab-2d7cd011db47")
	if err != nil {
		log.Fatal(err)
	}
	auth, err := middleware.New(context.Background(), middleware.Config{
		Audiences:      []string{"6e74172b-be56-4843-9ff4-e66a39bb12e3"}, // the API's client ID
		IssuerResolver: tenants,
		Logger:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		log.Fatal(err)
	}
	other := authtest.NewIssuer(logTB{}).Token(logTB{}, "mallory", func(c jwt.MapClaims) {
		c["iss"] = "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0"
		c["tid"] = "9188040d-6c67-4c5b-b112-36a304b66dad"
	})
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.Header.Set("Authorization", "Bearer "+other)
	_, err = auth.Authenticate(req)
	fmt.Println(middleware.Reason(err), errors.Is(err, middleware.ErrInvalidToken))
	// Output:
	// unknown_issuer true
}

// Accept DPoP-bound tokens (RFC 9449) beside bearer tokens: the client
// sends "Authorization: DPoP <token>" and, on every request, a new proof
// signed with the key the token is bound to. authtest makes both.
func ExampleConfig_dpop() {
	is, auth := newExampleAuth(func(c *middleware.Config) { c.DPoP = middleware.DPoPAllowed })
	defer is.Server.Close()
	srv := httptest.NewServer(auth.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := principal.From(r.Context())
		fmt.Fprintf(w, "%s, bound by %s", p.Subject, p.Binding)
	})))
	defer srv.Close()

	key := authtest.NewDPoPKey(logTB{}, "ES256")
	token := is.MintDPoP(logTB{}, "alice", key)
	proof := key.Proof(logTB{}, "GET", srv.URL+"/items", token)
	send := func(proof string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/items", nil)
		req.Header.Set("Authorization", "DPoP "+token)
		req.Header.Set("DPoP", proof)
		resp, err := srv.Client().Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, resp.Header.Get("WWW-Authenticate"), strings.TrimSpace(string(body)))
	}
	send(proof)
	send(proof)               // a replay
	get(srv, "/items", token) // the bound token as a bearer token
	// Output:
	// 200  alice, bound by dpop
	// 401 DPoP realm="example", error="invalid_dpop_proof", error_description="DPoP proof was used before", algs="ES256 EdDSA RS256 PS256", Bearer realm="example" {"detail":"DPoP proof was used before","reason":"dpop_replay","status":401,"title":"Unauthorized","type":"about:blank"}
	// 401 Bearer realm="example", error="invalid_token", error_description="token is bound to a DPoP key: send it with the DPoP scheme and a proof", DPoP realm="example", algs="ES256 EdDSA RS256 PS256"
}

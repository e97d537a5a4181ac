package middleware_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// dpopURL is the URL httptest.NewRequest gives "/todos": plain HTTP to
// example.com.
const dpopURL = "http://example.com/todos"

func dpopAuthenticator(tb testing.TB, is *authtest.Issuer, mode middleware.DPoPMode, edit func(*middleware.Config)) *middleware.Authenticator {
	tb.Helper()
	return mustAuthenticator(tb, is, func(c *middleware.Config) {
		c.DPoP = mode
		if edit != nil {
			edit(c)
		}
	})
}

// dpopRequest is a GET of target with "Authorization: <scheme> <token>"
// and one DPoP header per proof.
func dpopRequest(method, target, scheme, token string, proofs ...string) *http.Request {
	r := httptest.NewRequest(method, target, nil)
	r.Header.Set("Authorization", scheme+" "+token)
	for _, p := range proofs {
		r.Header.Add("DPoP", p)
	}
	return r
}

// bindingOf answers with the principal's binding and thumbprint.
var bindingOf = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	p, _ := principal.From(r.Context())
	_, _ = io.WriteString(w, string(p.Binding)+" "+p.JKT)
})

func TestDPoPAccepts(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, nil)
	for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256"} {
		t.Run(alg, func(t *testing.T) {
			k := authtest.NewDPoPKey(t, alg)
			tok := is.MintDPoP(t, "alice", k)
			// Twice: the second request finds the token in the cache and
			// must still bring a fresh, valid proof.
			for i := range 2 {
				w := httptest.NewRecorder()
				a.Require(bindingOf).ServeHTTP(w, dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", dpopURL, tok)))
				if want := "dpop " + k.Thumbprint(); w.Code != 200 || w.Body.String() != want {
					t.Fatalf("request %d: %d %q, want 200 %q", i, w.Code, w.Body.String(), want)
				}
			}
		})
	}
}

func TestDPoPRefusals(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, nil)
	k := authtest.NewDPoPKey(t, "ES256")
	other := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	bearerTok := is.Mint(t, "bob")
	now := time.Now()
	edit := func(f func(h, c map[string]any)) authtest.ProofOption { return authtest.WithProofEdit(f) }
	proof := func(opts ...authtest.ProofOption) string { return k.Proof(t, "GET", dpopURL, tok, opts...) }
	// A proof whose signature was made over other claims.
	good, swap := proof(), proof(edit(func(_, c map[string]any) { c["htm"] = "POST" }))
	gp, sp := strings.Split(good, "."), strings.Split(swap, ".")
	spliced := gp[0] + "." + sp[1] + "." + gp[2]

	for _, tc := range []struct {
		name   string
		r      *http.Request
		status int
		reason string
	}{
		{"typ JWT", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(h, _ map[string]any) { h["typ"] = "JWT" }))), 401, middleware.ReasonDPoPProof},
		{"typ missing", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(h, _ map[string]any) { delete(h, "typ") }))), 401, middleware.ReasonDPoPProof},
		{"alg none", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(h, _ map[string]any) { h["alg"] = "none" }))), 401, middleware.ReasonDPoPProof},
		{"alg HS256", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(h, _ map[string]any) { h["alg"] = "HS256" }))), 401, middleware.ReasonDPoPProof},
		{"alg not allowed", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(h, _ map[string]any) { h["alg"] = "ES384" }))), 401, middleware.ReasonDPoPProof},
		{"private key in jwk", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(h, _ map[string]any) {
			h["jwk"].(map[string]any)["d"] = "AAAA"
		}))), 401, middleware.ReasonDPoPProof},
		{"no jwk", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(h, _ map[string]any) { delete(h, "jwk") }))), 401, middleware.ReasonDPoPProof},
		{"jwk of another key", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(h, _ map[string]any) { h["jwk"] = other.PublicJWK() }))), 401, middleware.ReasonDPoPProof},
		{"bad signature", dpopRequest("GET", "/todos", "DPoP", tok, spliced), 401, middleware.ReasonDPoPProof},
		{"crit", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(h, _ map[string]any) { h["crit"] = []string{"x"} }))), 401, middleware.ReasonDPoPProof},
		{"htm POST on GET", dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "POST", dpopURL, tok)), 401, middleware.ReasonDPoPProof},
		{"htm lower case", dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "get", dpopURL, tok)), 401, middleware.ReasonDPoPProof},
		{"htu other path", dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", "http://example.com/todos/1", tok)), 401, middleware.ReasonDPoPProof},
		{"htu other host", dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", "http://evil.example/todos", tok)), 401, middleware.ReasonDPoPProof},
		{"htu https for http", dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", "https://example.com/todos", tok)), 401, middleware.ReasonDPoPProof},
		{"htu other port", dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", "http://example.com:8080/todos", tok)), 401, middleware.ReasonDPoPProof},
		{"htu with userinfo", dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", "http://u@example.com/todos", tok)), 401, middleware.ReasonDPoPProof},
		{"htu relative", dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", "/todos", tok)), 401, middleware.ReasonDPoPProof},
		{"htu missing", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(_, c map[string]any) { delete(c, "htu") }))), 401, middleware.ReasonDPoPProof},
		{"iat too old", dpopRequest("GET", "/todos", "DPoP", tok, proof(authtest.WithProofTime(now.Add(-2*time.Minute)))), 401, middleware.ReasonDPoPProof},
		{"iat too new", dpopRequest("GET", "/todos", "DPoP", tok, proof(authtest.WithProofTime(now.Add(2*time.Minute)))), 401, middleware.ReasonDPoPProof},
		{"iat missing", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(_, c map[string]any) { delete(c, "iat") }))), 401, middleware.ReasonDPoPProof},
		{"exp passed beyond the clock skew", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(_, c map[string]any) { c["exp"] = now.Add(-2 * time.Minute).Unix() }))), 401, middleware.ReasonDPoPProof},
		{"exp a string", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(_, c map[string]any) { c["exp"] = "later" }))), 401, middleware.ReasonDPoPProof},
		{"exp null", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(_, c map[string]any) { c["exp"] = nil }))), 401, middleware.ReasonDPoPProof},
		{"iat a string", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(_, c map[string]any) { c["iat"] = "now" }))), 401, middleware.ReasonDPoPProof},
		{"jti missing", dpopRequest("GET", "/todos", "DPoP", tok, proof(edit(func(_, c map[string]any) { delete(c, "jti") }))), 401, middleware.ReasonDPoPProof},
		{"ath of another token", dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", dpopURL, bearerTok)), 401, middleware.ReasonDPoPProof},
		{"ath missing", dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", dpopURL, "")), 401, middleware.ReasonDPoPProof},
		{"jkt mismatch", dpopRequest("GET", "/todos", "DPoP", tok, other.Proof(t, "GET", dpopURL, tok)), 401, middleware.ReasonDPoPKeyBinding},
		{"two DPoP headers", dpopRequest("GET", "/todos", "DPoP", tok, proof(), proof()), 401, middleware.ReasonDPoPProof},
		{"no DPoP header", dpopRequest("GET", "/todos", "DPoP", tok), 401, middleware.ReasonDPoPProof},
		{"not a JWS", dpopRequest("GET", "/todos", "DPoP", tok, "a.b"), 401, middleware.ReasonDPoPProof},
		{"bound token as Bearer", dpopRequest("GET", "/todos", "Bearer", tok, proof()), 401, middleware.ReasonBoundToken},
		{"unbound token as DPoP", dpopRequest("GET", "/todos", "DPoP", bearerTok, k.Proof(t, "GET", dpopURL, bearerTok)), 401, middleware.ReasonDPoPUnbound},
		{"unbound token as Bearer with a proof", dpopRequest("GET", "/todos", "Bearer", bearerTok, k.Proof(t, "GET", dpopURL, bearerTok)), 401, middleware.ReasonDPoPUnbound},
		{"DPoP scheme without token", dpopRequest("GET", "/todos", "DPoP", ""), 400, middleware.ReasonMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := do(a, tc.r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d (%s)", w.Code, tc.status, w.Body)
			}
			if got := problem(t, w)["reason"]; got != tc.reason {
				t.Errorf("reason %v, want %s", got, tc.reason)
			}
			ch := w.Header().Get("WWW-Authenticate")
			// Allowed mode: both schemes are offered, and DPoP names its
			// algorithms (RFC 9449 §7.1).
			if !strings.Contains(ch, "Bearer") || !strings.Contains(ch, `DPoP `) || !strings.Contains(ch, `algs="ES256 EdDSA RS256 PS256"`) {
				t.Errorf("WWW-Authenticate %q lacks a challenge", ch)
			}
			switch tc.reason {
			case middleware.ReasonDPoPProof:
				if !strings.HasPrefix(ch, `DPoP realm="todo-api", error="invalid_dpop_proof"`) {
					t.Errorf("WWW-Authenticate %q, want the DPoP challenge first with invalid_dpop_proof", ch)
				}
			case middleware.ReasonDPoPKeyBinding, middleware.ReasonDPoPUnbound:
				// RFC 9449 §7.1's example: a failed key binding is an
				// invalid token, on the challenge of the scheme the
				// request used.
				scheme, _, _ := strings.Cut(tc.r.Header.Get("Authorization"), " ")
				if !strings.HasPrefix(ch, scheme+` realm="todo-api", error="invalid_token"`) {
					t.Errorf("WWW-Authenticate %q, want the %s challenge first with invalid_token", ch, scheme)
				}
			}
		})
	}
}

// TestDPoPHTUNormalised: htu is compared after RFC 3986 normalisation,
// without query or fragment (RFC 9449 §4.3).
func TestDPoPHTUNormalised(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, nil)
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	for _, tc := range []struct{ target, htu string }{
		{"/todos", "HTTP://EXAMPLE.COM/todos"},
		{"/todos", "http://example.com:80/todos"},
		{"/todos", "http://example.com:/todos"},
		{"/todos", "http://example.com/a/../todos"},
		{"/todos", "http://example.com/./todos"},
		{"/todos", "http://example.com/%74odos"},
		{"/todos", "http://example.com/todos#frag"},
		{"/todos?page=2", "http://example.com/todos"},
		{"/todos", "http://example.com/todos?page=2"},
		{"/a%2fb", "http://example.com/a%2Fb"},
		{"/", "http://example.com"},
	} {
		w := do(a, dpopRequest("GET", tc.target, "DPoP", tok, k.Proof(t, "GET", tc.htu, tok, authtest.WithProofEdit(func(_, c map[string]any) {
			c["htu"] = tc.htu // as written, query and fragment included
		}))))
		if w.Code != 200 {
			t.Errorf("htu %q for %s: %d %s", tc.htu, tc.target, w.Code, w.Body)
		}
	}
	// %2F is not "/": the paths differ.
	w := do(a, dpopRequest("GET", "/a/b", "DPoP", tok, k.Proof(t, "GET", "http://example.com/a%2Fb", tok)))
	if w.Code != 401 {
		t.Errorf("htu /a%%2Fb for /a/b: %d", w.Code)
	}
}

func TestDPoPReplay(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := dpopAuthenticator(t, is, middleware.DPoPRequired, nil)
	k := authtest.NewDPoPKey(t, "EdDSA")
	tok := is.MintDPoP(t, "alice", k)
	p := k.Proof(t, "GET", dpopURL, tok)
	if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, p)); w.Code != 200 {
		t.Fatalf("first use: %d %s", w.Code, w.Body)
	}
	w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, p))
	if w.Code != 401 || problem(t, w)["reason"] != middleware.ReasonDPoPReplay || errorCode(w.Header().Get("WWW-Authenticate")) != "invalid_dpop_proof" {
		t.Fatalf("replay: %d %s %q", w.Code, w.Body, w.Header().Get("WWW-Authenticate"))
	}
}

func TestDPoPModes(t *testing.T) {
	is := authtest.NewIssuer(t)
	k := authtest.NewDPoPKey(t, "ES256")
	bound := is.MintDPoP(t, "alice", k)
	bearerTok := is.Mint(t, "bob")
	type want struct {
		status int
		reason string
	}
	for _, tc := range []struct {
		mode                           middleware.DPoPMode
		bearer, boundBearer, boundDPoP want
		challenge                      string // of a request without a token
	}{
		// Today's behaviour: a bound token is refused, the DPoP scheme is
		// an unknown scheme.
		{middleware.DPoPDisabled, want{200, ""}, want{401, middleware.ReasonBoundToken}, want{400, middleware.ReasonMalformed}, `Bearer realm="todo-api"`},
		{"", want{200, ""}, want{401, middleware.ReasonBoundToken}, want{400, middleware.ReasonMalformed}, `Bearer realm="todo-api"`},
		{middleware.DPoPAllowed, want{200, ""}, want{401, middleware.ReasonBoundToken}, want{200, ""}, `Bearer realm="todo-api", DPoP realm="todo-api", algs="ES256 EdDSA RS256 PS256"`},
		{middleware.DPoPRequired, want{401, middleware.ReasonDPoPRequired}, want{401, middleware.ReasonBoundToken}, want{200, ""}, `DPoP realm="todo-api", algs="ES256 EdDSA RS256 PS256"`},
	} {
		t.Run(string(tc.mode), func(t *testing.T) {
			a := dpopAuthenticator(t, is, tc.mode, nil)
			check := func(name string, r *http.Request, w want) {
				t.Helper()
				got := do(a, r)
				if got.Code != w.status {
					t.Errorf("%s: %d, want %d (%s)", name, got.Code, w.status, got.Body)
				} else if w.reason != "" && problem(t, got)["reason"] != w.reason {
					t.Errorf("%s: %s, want reason %s", name, got.Body, w.reason)
				}
			}
			check("bearer token", bearerRequest(bearerTok), tc.bearer)
			check("bound token as Bearer", bearerRequest(bound), tc.boundBearer)
			check("bound token with DPoP", dpopRequest("GET", "/todos", "DPoP", bound, k.Proof(t, "GET", dpopURL, bound)), tc.boundDPoP)
			w := do(a, httptest.NewRequest("GET", "/todos", nil))
			if ch := w.Header().Get("WWW-Authenticate"); w.Code != 401 || ch != tc.challenge {
				t.Errorf("no token: %d %q, want 401 %q", w.Code, ch, tc.challenge)
			}
		})
	}
	// Required: a bearer token's refusal is an invalid_token on the DPoP
	// challenge.
	a := dpopAuthenticator(t, is, middleware.DPoPRequired, nil)
	w := do(a, bearerRequest(bearerTok))
	if ch := w.Header().Get("WWW-Authenticate"); !strings.HasPrefix(ch, `DPoP realm="todo-api", error="invalid_token"`) || strings.Contains(ch, "Bearer") {
		t.Errorf("required, bearer token: %q", ch)
	}
}

// TestDPoPBaseURL: behind a proxy, htu names the external URL.
func TestDPoPBaseURL(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, func(c *middleware.Config) { c.DPoPBaseURL = "https://API.example.com:443/v1/" })
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", "https://api.example.com/v1/todos", tok))); w.Code != 200 {
		t.Errorf("external URL: %d %s", w.Code, w.Body)
	}
	if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", dpopURL, tok))); w.Code != 401 {
		t.Errorf("internal URL: %d, want 401", w.Code)
	}
}

func TestDPoPConfig(t *testing.T) {
	is := authtest.NewIssuer(t)
	for name, edit := range map[string]func(*middleware.Config){
		"unknown mode":      func(c *middleware.Config) { c.DPoP = "sometimes" },
		"HS256 proofs":      func(c *middleware.Config) { c.DPoP, c.DPoPAlgorithms = middleware.DPoPAllowed, []string{"HS256"} },
		"none proofs":       func(c *middleware.Config) { c.DPoP, c.DPoPAlgorithms = middleware.DPoPAllowed, []string{"none"} },
		"negative window":   func(c *middleware.Config) { c.DPoP, c.DPoPProofWindow = middleware.DPoPAllowed, -time.Second },
		"negative slots":    func(c *middleware.Config) { c.DPoP, c.DPoPReplaySlots = middleware.DPoPAllowed, -1 },
		"base URL not http": func(c *middleware.Config) { c.DPoP, c.DPoPBaseURL = middleware.DPoPAllowed, "ftp://x.example" },
		"base URL w/ query": func(c *middleware.Config) { c.DPoP, c.DPoPBaseURL = middleware.DPoPAllowed, "https://x.example/?a" },
		"base URL userinfo": func(c *middleware.Config) { c.DPoP, c.DPoPBaseURL = middleware.DPoPAllowed, "https://u@x.example/" },
	} {
		cfg := middleware.Config{Issuer: is.URL, Audiences: []string{authtest.Audience}}
		edit(&cfg)
		if _, err := middleware.New(t.Context(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, s := range []string{"", "disabled", "Allowed", " required "} {
		if _, err := middleware.ParseDPoPMode(s); err != nil {
			t.Errorf("ParseDPoPMode(%q): %v", s, err)
		}
	}
	if _, err := middleware.ParseDPoPMode("on"); err == nil {
		t.Error(`ParseDPoPMode("on") accepted`)
	}
}

// TestDPoPCacheHitAllocations: with DPoP allowed, a bearer token's cache
// hit allocates no more than with DPoP off.
func TestDPoPCacheHitAllocations(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, nil)
	h := a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	r := bearerRequest(is.Mint(t, "alice"))
	w := &discardWriter{h: http.Header{}}
	h.ServeHTTP(w, r)
	if w.status != http.StatusNoContent {
		t.Fatalf("priming request: %d", w.status)
	}
	if allocs := testing.AllocsPerRun(100, func() { h.ServeHTTP(w, r) }); allocs > 2 {
		t.Errorf("a bearer cache hit with DPoP allowed allocates %v times, want at most 2", allocs)
	}
}

// TestDPoPScopeChallenge: a 403 to a DPoP request is on the DPoP challenge.
func TestDPoPScopeChallenge(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, nil)
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	w := httptest.NewRecorder()
	a.Require(a.RequireScopes("admin")(echoSubject)).ServeHTTP(w, dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", dpopURL, tok)))
	ch := w.Header().Get("WWW-Authenticate")
	if w.Code != 403 || !strings.HasPrefix(ch, `DPoP realm="todo-api", error="insufficient_scope"`) || !strings.HasSuffix(ch, `, Bearer realm="todo-api"`) {
		t.Fatalf("%d %q", w.Code, ch)
	}
}

// TestDPoPChallengeResourceMetadata: both challenges keep resource_metadata
// (RFC 9728 §5.1).
func TestDPoPChallengeResourceMetadata(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, func(c *middleware.Config) {
		c.ResourceMetadata = &middleware.ResourceMetadata{Resource: "https://api.example.com"}
	})
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "POST", dpopURL, tok)))
	const rm = `resource_metadata="https://api.example.com/.well-known/oauth-protected-resource"`
	want := `DPoP realm="todo-api", error="invalid_dpop_proof", error_description="DPoP proof htm does not match the request method", algs="ES256 EdDSA RS256 PS256", ` + rm + `, Bearer realm="todo-api", ` + rm
	if ch := w.Header().Get("WWW-Authenticate"); w.Code != 401 || ch != want {
		t.Fatalf("%d\n got %s\nwant %s", w.Code, ch, want)
	}
}

// TestDPoPIntrospected: an introspection answer with cnf.jkt (RFC 9449
// §6.2) is a DPoP-bound token; any other cnf is still refused.
func TestDPoPIntrospected(t *testing.T) {
	is := authtest.NewIssuer(t)
	is.EnableIntrospection()
	md, endpoint := discoverIntrospection(t, is)
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Mode = middleware.ModeIntrospection
		c.Introspector = &introspection.Client{Endpoint: endpoint, ClientID: authtest.IntrospectionClientID,
			ClientSecret: authtest.IntrospectionClientSecret, Timeout: time.Second, Logger: quiet()}
		c.Metadata = md
		c.DPoP = middleware.DPoPAllowed
	})
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.OpaqueToken("alice", func(c jwt.MapClaims) {
		c["cnf"] = map[string]any{"jkt": k.Thumbprint()}
		c["token_type"] = "DPoP"
	})
	for i := range 2 { // verified, then from the cache
		w := httptest.NewRecorder()
		a.Require(bindingOf).ServeHTTP(w, dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", dpopURL, tok)))
		if w.Code != 200 || w.Body.String() != "dpop "+k.Thumbprint() {
			t.Fatalf("request %d: %d %s", i, w.Code, w.Body)
		}
	}
	if w := do(a, bearerRequest(tok)); w.Code != 401 || problem(t, w)["reason"] != middleware.ReasonBoundToken {
		t.Errorf("bound opaque token as Bearer: %d %s", w.Code, w.Body)
	}
	// cnf.jkt with token_type Bearer: the server contradicts itself.
	odd := is.OpaqueToken("carol", func(c jwt.MapClaims) { c["cnf"] = map[string]any{"jkt": k.Thumbprint()} })
	if w := do(a, dpopRequest("GET", "/todos", "DPoP", odd, k.Proof(t, "GET", dpopURL, odd))); w.Code != 401 || problem(t, w)["reason"] != middleware.ReasonBoundToken {
		t.Errorf("cnf.jkt with token_type Bearer: %d %s", w.Code, w.Body)
	}
	mtls := is.OpaqueToken("bob", func(c jwt.MapClaims) { c["cnf"] = map[string]any{"x5t#S256": "abc"} })
	if w := do(a, dpopRequest("GET", "/todos", "DPoP", mtls, k.Proof(t, "GET", dpopURL, mtls))); w.Code != 401 || problem(t, w)["reason"] != middleware.ReasonBoundToken {
		t.Errorf("mTLS-bound token: %d %s", w.Code, w.Body)
	}
}

// TestDPoPNonce: with DPoPNonceKeys, a proof without a valid server nonce
// is answered use_dpop_nonce with one in DPoP-Nonce (RFC 9449 §9); nonces
// expire, cannot be forged, and survive a key rotation across replicas.
func TestDPoPNonce(t *testing.T) {
	is := authtest.NewIssuer(t)
	k1, k2 := []byte(strings.Repeat("1", 32)), []byte(strings.Repeat("2", 32))
	now := time.Now()
	clock := func() time.Time { return now }
	withKeys := func(keys ...[]byte) func(*middleware.Config) {
		return func(c *middleware.Config) { c.DPoPNonceKeys, c.DPoPNonceLifetime, c.Now = keys, time.Minute, clock }
	}
	a := dpopAuthenticator(t, is, middleware.DPoPRequired, withKeys(k1))
	key := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", key)
	send := func(a *middleware.Authenticator, opts ...authtest.ProofOption) *httptest.ResponseRecorder {
		opts = append([]authtest.ProofOption{authtest.WithProofTime(now)}, opts...)
		return do(a, dpopRequest("GET", "/todos", "DPoP", tok, key.Proof(t, "GET", dpopURL, tok, opts...)))
	}
	useNonce := func(name string, w *httptest.ResponseRecorder) {
		t.Helper()
		if w.Code != 401 || errorCode(w.Header().Get("WWW-Authenticate")) != "use_dpop_nonce" || w.Header().Get("DPoP-Nonce") == "" ||
			problem(t, w)["reason"] != middleware.ReasonDPoPNonce {
			t.Errorf("%s: %d %q nonce %q", name, w.Code, w.Header().Get("WWW-Authenticate"), w.Header().Get("DPoP-Nonce"))
		}
	}
	w := send(a)
	useNonce("no nonce", w)
	nonce := w.Header().Get("DPoP-Nonce")
	if nonce != a.DPoPNonce() {
		t.Errorf("DPoP-Nonce %q, DPoPNonce() %q", nonce, a.DPoPNonce())
	}
	if w := send(a, authtest.WithProofNonce(nonce)); w.Code != 200 || w.Header().Get("DPoP-Nonce") == "" {
		t.Fatalf("with the nonce: %d %s, DPoP-Nonce %q", w.Code, w.Body, w.Header().Get("DPoP-Nonce"))
	}
	// Optional gives the next nonce to an accepted DPoP request too.
	ow := httptest.NewRecorder()
	a.Optional(echoSubject).ServeHTTP(ow, dpopRequest("GET", "/todos", "DPoP", tok, key.Proof(t, "GET", dpopURL, tok, authtest.WithProofTime(now), authtest.WithProofNonce(nonce))))
	if ow.Code != 200 || ow.Header().Get("DPoP-Nonce") == "" {
		t.Errorf("Optional with the nonce: %d, DPoP-Nonce %q", ow.Code, ow.Header().Get("DPoP-Nonce"))
	}
	forged := []byte(nonce)
	forged[len(forged)-2] ^= 1
	useNonce("forged nonce", send(a, authtest.WithProofNonce(string(forged))))
	useNonce("not a nonce", send(a, authtest.WithProofNonce("abc")))
	// A replica with a new key first and the old one second accepts it;
	// one with the new key alone does not.
	useNonce("other key", send(dpopAuthenticator(t, is, middleware.DPoPRequired, withKeys(k2)), authtest.WithProofNonce(nonce)))
	if w := send(dpopAuthenticator(t, is, middleware.DPoPRequired, withKeys(k2, k1)), authtest.WithProofNonce(nonce)); w.Code != 200 {
		t.Errorf("rotated replica: %d %s", w.Code, w.Body)
	}
	// Past its lifetime the nonce is refused.
	now = now.Add(90 * time.Second)
	useNonce("expired nonce", send(a, authtest.WithProofNonce(nonce)))
	for name, edit := range map[string]func(*middleware.Config){
		"short key":      func(c *middleware.Config) { c.DPoPNonceKeys = [][]byte{[]byte("short")} },
		"short lifetime": func(c *middleware.Config) { c.DPoPNonceKeys, c.DPoPNonceLifetime = [][]byte{k1}, time.Second },
	} {
		cfg := middleware.Config{Issuer: is.URL, Audiences: []string{authtest.Audience}, DPoP: middleware.DPoPAllowed}
		edit(&cfg)
		if _, err := middleware.New(t.Context(), cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestDPoPProofExp: RFC 9449 defines no exp for a proof, but a proof that
// carries one is refused once it has passed (RFC 7519 §4.1.4), with the
// token's clock skew; one still within it passes.
func TestDPoPProofExp(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, nil)
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	for _, tc := range []struct {
		name string
		exp  time.Duration
		want int
	}{
		{"in the future", time.Minute, 200},
		{"passed within the skew", -30 * time.Second, 200},
		{"passed beyond the skew", -middleware.DefaultClockSkew - 5*time.Second, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := k.Proof(t, "GET", dpopURL, tok, authtest.WithProofEdit(func(_, c map[string]any) {
				c["exp"] = time.Now().Add(tc.exp).Unix()
			}))
			if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, p)); w.Code != tc.want {
				t.Errorf("%d, want %d (%s)", w.Code, tc.want, w.Body)
			}
		})
	}
}

// TestDPoPProofWithUnboundBearer: a DPoP proof beside a token that is not
// DPoP-bound is a malformed request whatever the DPoP mode (the proof
// binds nothing; accepting it hides a client or server that meant to bind
// the token), on a cache miss and on a hit alike. Without a proof the
// token is fine.
func TestDPoPProofWithUnboundBearer(t *testing.T) {
	is := authtest.NewIssuer(t)
	k := authtest.NewDPoPKey(t, "ES256")
	for _, mode := range []middleware.DPoPMode{middleware.DPoPDisabled, middleware.DPoPAllowed} {
		t.Run(string(mode), func(t *testing.T) {
			a := dpopAuthenticator(t, is, mode, nil)
			tok := is.Mint(t, "bob")
			for i := range 2 {
				w := do(a, dpopRequest("GET", "/todos", "Bearer", tok, k.Proof(t, "GET", dpopURL, tok)))
				if w.Code != 401 || problem(t, w)["reason"] != middleware.ReasonDPoPUnbound {
					t.Fatalf("request %d with a proof: %d %s, want 401 %s", i, w.Code, w.Body, middleware.ReasonDPoPUnbound)
				}
				if ch := w.Header().Get("WWW-Authenticate"); !strings.Contains(ch, `error="invalid_token"`) {
					t.Errorf("WWW-Authenticate %q, want invalid_token", ch)
				}
				if w := do(a, bearerRequest(tok)); w.Code != 200 {
					t.Fatalf("request %d without a proof: %d %s", i, w.Code, w.Body)
				}
			}
		})
	}
}

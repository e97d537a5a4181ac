package todoapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/openapitest"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// dpopClient calls the todo API as a client holding a DPoP key would: each
// request with "Authorization: DPoP <token>" and a fresh proof for the
// method and the URL the client calls (external + path), each exchange
// checked against openapi.yaml.
type dpopClient struct {
	t        *testing.T
	h        http.Handler
	v        *openapitest.Validator
	key      *authtest.DPoPKey
	token    string
	external string // scheme://host[/prefix] the client calls
}

// do sends method path (relative to the API, as the proxy forwards it)
// with a proof made by proof, or a fresh one when proof is nil.
func (c *dpopClient) do(method, path, body string, proof func(method, htu string) string) *httptest.ResponseRecorder {
	c.t.Helper()
	if proof == nil {
		proof = func(m, htu string) string { return c.key.Proof(c.t, m, htu, c.token) }
	}
	req := newJSONRequest(method, path, body)
	req.Header.Set("Authorization", "DPoP "+c.token)
	if p := proof(method, c.external+path); p != "" {
		req.Header.Set("DPoP", p)
	}
	return c.v.Serve(c.t, c.h, req)
}

func newJSONRequest(method, path, body string) *http.Request {
	if body == "" {
		return httptest.NewRequest(method, path, nil)
	}
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	return req
}

// dpopConfig is testConfig with DPOP_MODE mode and BASE_URL base.
func dpopConfig(t *testing.T, is *authtest.Issuer, mode middleware.DPoPMode, base string) Config {
	cfg := testConfig(t, is)
	cfg.DPoP, cfg.BaseURL = mode, base
	if base == "" {
		// httptest's requests name http://example.com; DPoP needs
		// BASE_URL (see TestDPoPNeedsBaseURL).
		cfg.BaseURL = "http://example.com"
	}
	return cfg
}

// problemReason is the middleware's reason in a refusal's problem body.
func problemReason(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var p struct{ Reason string }
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatalf("not a problem document: %s", rec.Body)
	}
	return p.Reason
}

// TestDPoPCRUD: a client with a DPoP-bound token and a fresh proof per
// request creates, lists, reads, updates and deletes a todo, in both modes
// that accept DPoP, with each proof algorithm, and behind a proxy that
// strips a path prefix, where every htu names the external URL (BASE_URL)
// and the todo's own url is what the client calls next.
func TestDPoPCRUD(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	v := openapitest.New(t)
	tests := []struct {
		name     string
		mode     middleware.DPoPMode
		alg      string
		baseURL  string
		external string // what the client calls
	}{
		{"allowed, ES256, the request's own URL", middleware.DPoPAllowed, "ES256", "", "http://example.com"},
		{"allowed, EdDSA", middleware.DPoPAllowed, "EdDSA", "", "http://example.com"},
		{"required, RS256", middleware.DPoPRequired, "RS256", "", "http://example.com"},
		{"required, PS256, behind a proxy with a path prefix", middleware.DPoPRequired, "PS256", "https://api.example.com/todo-api/", "https://api.example.com/todo-api"},
		{"allowed, ES256, behind a proxy at the root", middleware.DPoPAllowed, "ES256", "https://todo.example.com", "https://todo.example.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := mustBuild(t, dpopConfig(t, is, tt.mode, tt.baseURL), true)
			key := authtest.NewDPoPKey(t, tt.alg)
			c := &dpopClient{t: t, h: h, v: v, key: key, token: is.MintDPoP(t, "alice", key), external: tt.external}

			rec := c.do("POST", "/todos", `{"title":"bound to a key"}`, nil)
			if rec.Code != http.StatusCreated {
				t.Fatalf("POST /todos: %d %s", rec.Code, rec.Body)
			}
			var todo struct{ ID, URL, Title string }
			_ = json.Unmarshal(rec.Body.Bytes(), &todo)
			if want := tt.external + "/todos/" + todo.ID; todo.URL != want || rec.Header().Get("Location") != want {
				t.Fatalf("url %q, Location %q, want %q", todo.URL, rec.Header().Get("Location"), want)
			}
			// The client calls the todo's url as it is: its htu is that url.
			path := strings.TrimPrefix(todo.URL, tt.external)

			if rec := c.do("GET", "/todos?limit=10", "", nil); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), todo.ID) {
				t.Fatalf("GET /todos: %d %s", rec.Code, rec.Body)
			}
			if rec := c.do("PATCH", path, `{"completed":true}`, nil); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"completed":true`) {
				t.Fatalf("PATCH %s: %d %s", path, rec.Code, rec.Body)
			}
			if rec := c.do("GET", path, "", nil); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"completed":true`) {
				t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
			}
			if rec := c.do("DELETE", path, "", nil); rec.Code != http.StatusNoContent {
				t.Fatalf("DELETE %s: %d %s", path, rec.Code, rec.Body)
			}
			if rec := c.do("GET", "/todos", "", nil); rec.Code != http.StatusOK || strings.TrimSpace(rec.Body.String()) != "[]" {
				t.Fatalf("GET /todos after the delete: %d %s", rec.Code, rec.Body)
			}
			if rec := c.do("DELETE", "/todos", "", nil); rec.Code != http.StatusNoContent {
				t.Fatalf("DELETE /todos: %d %s", rec.Code, rec.Body)
			}
		})
	}
}

// TestDPoPBearerBesideDPoP: with DPOP_MODE=allowed a bearer token works as
// before and the same user's DPoP-bound token sees the same todos; a
// DPoP-bound token sent as Bearer is refused, since that would make it a
// bearer token again. With the default, disabled, the DPoP scheme is not
// taken at all and a bound token is refused whichever way it comes.
func TestDPoPBearerBesideDPoP(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	v := openapitest.New(t)
	h := mustBuild(t, dpopConfig(t, is, middleware.DPoPAllowed, ""), true)
	bearer := "Bearer " + is.Token(t, "alice", nil)
	req := newJSONRequest("POST", "/todos", `{"title":"with a bearer token"}`)
	req.Header.Set("Authorization", bearer)
	if rec := v.Serve(t, h, req); rec.Code != http.StatusCreated {
		t.Fatalf("bearer POST: %d %s", rec.Code, rec.Body)
	}
	key := authtest.NewDPoPKey(t, "ES256")
	c := &dpopClient{t: t, h: h, v: v, key: key, token: is.MintDPoP(t, "alice", key), external: "http://example.com"}
	if rec := c.do("GET", "/todos", "", nil); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "with a bearer token") {
		t.Fatalf("DPoP GET of the bearer's todos: %d %s", rec.Code, rec.Body)
	}

	req = newJSONRequest("GET", "/todos", "")
	req.Header.Set("Authorization", "Bearer "+c.token)
	rec := v.Serve(t, h, req)
	if rec.Code != http.StatusUnauthorized || problemReason(t, rec) != middleware.ReasonBoundToken ||
		!strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer realm="todo-api", error="invalid_token"`) {
		t.Errorf("DPoP-bound token as Bearer: %d %q %s", rec.Code, rec.Header().Get("WWW-Authenticate"), rec.Body)
	}

	off := mustBuild(t, testConfig(t, is), true) // DPOP_MODE unset: disabled
	c.h = off
	if rec := c.do("GET", "/todos", "", nil); rec.Code != http.StatusBadRequest || strings.Contains(rec.Header().Get("WWW-Authenticate"), "DPoP") {
		t.Errorf("DPoP scheme with DPoP disabled: %d %q, want 400 and no DPoP challenge", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
	if rec := serve(off, "GET", "/todos", "", "Authorization", "Bearer "+c.token); rec.Code != http.StatusUnauthorized || problemReason(t, rec) != middleware.ReasonBoundToken {
		t.Errorf("DPoP-bound token with DPoP disabled: %d %s", rec.Code, rec.Body)
	}
}

// TestDPoPRequiredRefusesBearer: with DPOP_MODE=required a bearer token,
// from the header or the exchange's cookie, is refused with the DPoP
// challenge alone, which names the proof algorithms and, with
// RESOURCE_URL, the metadata; the answer is the one openapi.yaml
// describes.
func TestDPoPRequiredRefusesBearer(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	v := openapitest.New(t)
	cfg := dpopConfig(t, is, middleware.DPoPRequired, "")
	cfg.ResourceURL = "https://todo.example.com"
	h := mustBuild(t, cfg, true)
	const meta = `resource_metadata="https://todo.example.com/.well-known/oauth-protected-resource"`
	const algs = `algs="ES256 EdDSA RS256 PS256"`
	tok := is.Token(t, "alice", nil)
	tests := []struct {
		name, reason, challenge string
		req                     func() *http.Request
	}{
		{"bearer header", middleware.ReasonDPoPRequired, `DPoP realm="todo-api", error="invalid_token", error_description="a DPoP-bound token and proof are required", ` + algs + ", " + meta,
			func() *http.Request {
				r := newJSONRequest("GET", "/todos", "")
				r.Header.Set("Authorization", "Bearer "+tok)
				return r
			}},
		{"bearer cookie", middleware.ReasonDPoPRequired, `DPoP realm="todo-api", error="invalid_token", error_description="a DPoP-bound token and proof are required", ` + algs + ", " + meta,
			func() *http.Request {
				r := newJSONRequest("POST", "/todos", `{"title":"x"}`)
				r.AddCookie(&http.Cookie{Name: "__Host-access_token", Value: tok})
				r.Header.Set("X-CSRF", "1")
				r.Header.Set("Origin", testOrigin)
				return r
			}},
		{"no token", middleware.ReasonNoToken, `DPoP realm="todo-api", ` + algs + ", " + meta,
			func() *http.Request {
				return openapitest.ExpectInvalid(newJSONRequest("GET", "/todos", ""))
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := v.Serve(t, h, tt.req())
			if rec.Code != http.StatusUnauthorized || problemReason(t, rec) != tt.reason || rec.Header().Get("WWW-Authenticate") != tt.challenge {
				t.Errorf("%d reason %q\nWWW-Authenticate %q\nwant            %q", rec.Code, problemReason(t, rec), rec.Header().Get("WWW-Authenticate"), tt.challenge)
			}
		})
	}
}

// TestDPoPProofRefused: each way a proof can fail is a 401 with the
// middleware's error and reason, and the request has no effect. The
// stripped and doubled proofs are requests openapi.yaml refuses too.
func TestDPoPProofRefused(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	v := openapitest.New(t)
	const proxied = "https://api.example.com/todo-api"
	key, other := authtest.NewDPoPKey(t, "ES256"), authtest.NewDPoPKey(t, "EdDSA")
	tok := is.MintDPoP(t, "alice", key)
	used := map[string]string{} // a proof already accepted once, per server
	tests := []struct {
		name     string
		mode     middleware.DPoPMode
		baseURL  string
		external string
		proof    func(t *testing.T, method, htu string) string
		invalid  bool   // the document refuses the request as well
		error    string // the challenge's error
		reason   string
		desc     string // part of error_description
	}{
		{"replayed", middleware.DPoPAllowed, "", "http://example.com",
			func(_ *testing.T, _, _ string) string { return used["allowed"] }, false,
			"invalid_dpop_proof", middleware.ReasonDPoPReplay, "used before"},
		{"replayed, required", middleware.DPoPRequired, "", "http://example.com",
			func(_ *testing.T, _, _ string) string { return used["required"] }, false,
			"invalid_dpop_proof", middleware.ReasonDPoPReplay, "used before"},
		{"made for another method", middleware.DPoPAllowed, "", "http://example.com",
			func(t *testing.T, _, htu string) string { return key.Proof(t, "DELETE", htu, tok) }, false,
			"invalid_dpop_proof", middleware.ReasonDPoPProof, "htm does not match"},
		{"made for another URL", middleware.DPoPAllowed, "", "http://example.com",
			func(t *testing.T, m, _ string) string { return key.Proof(t, m, "http://example.com/todos/other", tok) }, false,
			"invalid_dpop_proof", middleware.ReasonDPoPProof, "htu does not match"},
		{"made for another host", middleware.DPoPRequired, "", "http://example.com",
			func(t *testing.T, m, _ string) string { return key.Proof(t, m, "http://evil.example/todos", tok) }, false,
			"invalid_dpop_proof", middleware.ReasonDPoPProof, "htu does not match"},
		{"behind a proxy, naming the internal URL", middleware.DPoPRequired, proxied, proxied,
			func(t *testing.T, m, _ string) string { return key.Proof(t, m, "http://example.com/todos", tok) }, false,
			"invalid_dpop_proof", middleware.ReasonDPoPProof, "htu does not match"},
		{"behind a proxy, without the prefix", middleware.DPoPAllowed, proxied, proxied,
			func(t *testing.T, m, _ string) string { return key.Proof(t, m, "https://api.example.com/todos", tok) }, false,
			"invalid_dpop_proof", middleware.ReasonDPoPProof, "htu does not match"},
		{"made with another key", middleware.DPoPAllowed, "", "http://example.com",
			func(t *testing.T, m, htu string) string { return other.Proof(t, m, htu, tok) }, false,
			"invalid_token", middleware.ReasonDPoPKeyBinding, "invalid DPoP key binding"},
		{"made for another token", middleware.DPoPRequired, "", "http://example.com",
			func(t *testing.T, m, htu string) string { return key.Proof(t, m, htu, is.MintDPoP(t, "alice", key)) }, false,
			"invalid_dpop_proof", middleware.ReasonDPoPProof, "ath does not match"},
		{"too old", middleware.DPoPAllowed, "", "http://example.com",
			func(t *testing.T, m, htu string) string {
				return key.Proof(t, m, htu, tok, authtest.WithProofTime(time.Now().Add(-5*time.Minute)))
			}, false,
			"invalid_dpop_proof", middleware.ReasonDPoPProof, "iat is outside"},
		{"stripped", middleware.DPoPAllowed, "", "http://example.com",
			func(_ *testing.T, _, _ string) string { return "" }, true,
			"invalid_dpop_proof", middleware.ReasonDPoPProof, "no DPoP proof"},
		{"stripped, required", middleware.DPoPRequired, "", "http://example.com",
			func(_ *testing.T, _, _ string) string { return "" }, true,
			"invalid_dpop_proof", middleware.ReasonDPoPProof, "no DPoP proof"},
	}
	servers := map[string]http.Handler{}
	for _, tt := range tests {
		if servers[string(tt.mode)+tt.baseURL] != nil {
			continue
		}
		h := mustBuild(t, dpopConfig(t, is, tt.mode, tt.baseURL), true)
		servers[string(tt.mode)+tt.baseURL] = h
		if tt.baseURL == "" {
			// One proof accepted, to replay.
			c := &dpopClient{t: t, h: h, v: v, key: key, token: tok, external: tt.external}
			proof := key.Proof(t, "POST", tt.external+"/todos", tok)
			used[string(tt.mode)] = proof
			if rec := c.do("POST", "/todos", `{"title":"x"}`, func(_, _ string) string { return proof }); rec.Code != http.StatusCreated {
				t.Fatalf("first use of the proof: %d %s", rec.Code, rec.Body)
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := servers[string(tt.mode)+tt.baseURL]
			c := &dpopClient{t: t, h: h, v: v, key: key, token: tok, external: tt.external}
			req := newJSONRequest("POST", "/todos", `{"title":"must not be written"}`)
			req.Header.Set("Authorization", "DPoP "+tok)
			if p := tt.proof(t, "POST", tt.external+"/todos"); p != "" {
				req.Header.Set("DPoP", p)
			}
			if tt.invalid {
				req = openapitest.ExpectInvalid(req)
			}
			rec := v.Serve(t, h, req)
			ch := rec.Header().Get("WWW-Authenticate")
			if rec.Code != http.StatusUnauthorized || problemReason(t, rec) != tt.reason ||
				!strings.HasPrefix(ch, `DPoP realm="todo-api", error="`+tt.error+`", error_description="`) ||
				!strings.Contains(ch, tt.desc) || !strings.Contains(ch, `algs="ES256 EdDSA RS256 PS256"`) {
				t.Fatalf("%d reason %q, WWW-Authenticate %q; want 401 %s, %s, %q", rec.Code, problemReason(t, rec), ch, tt.error, tt.reason, tt.desc)
			}
			if bearer := strings.Contains(ch, "Bearer"); bearer != (tt.mode == middleware.DPoPAllowed) {
				t.Errorf("WWW-Authenticate %q: a Bearer challenge beside DPoP is for allowed mode only", ch)
			}
			if rec := c.do("GET", "/todos", "", nil); strings.Contains(rec.Body.String(), "must not be written") {
				t.Errorf("the refused POST wrote a todo: %s", rec.Body)
			}
		})
	}
}

// TestDPoPNonces: with DPOP_NONCE_SECRET a proof without this API's nonce
// is answered 401 use_dpop_nonce with one in DPoP-Nonce; the proof made
// with it passes, and every answer to a DPoP request hands out the nonce
// for the next proof, so a client need not be refused again while it is
// fresh. Two replicas sharing the secret accept each other's nonces.
func TestDPoPNonces(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	v := openapitest.New(t)
	cfg := dpopConfig(t, is, middleware.DPoPRequired, "")
	cfg.DPoPNonceSecret = strings.Repeat("n", 32)
	a := mustBuild(t, cfg, true)
	cfg.DatabaseURL = testConfig(t, is).DatabaseURL
	b := mustBuild(t, cfg, true)
	key := authtest.NewDPoPKey(t, "ES256")
	c := &dpopClient{t: t, h: a, v: v, key: key, token: is.MintDPoP(t, "alice", key), external: "http://example.com"}

	rec := c.do("GET", "/todos", "", nil)
	nonce := rec.Header().Get("DPoP-Nonce")
	if rec.Code != http.StatusUnauthorized || problemReason(t, rec) != middleware.ReasonDPoPNonce || nonce == "" ||
		!strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `DPoP realm="todo-api", error="use_dpop_nonce"`) {
		t.Fatalf("proof without a nonce: %d %q nonce %q %s", rec.Code, rec.Header().Get("WWW-Authenticate"), nonce, rec.Body)
	}
	withNonce := func(n string) func(m, htu string) string {
		return func(m, htu string) string { return key.Proof(t, m, htu, c.token, authtest.WithProofNonce(n)) }
	}
	if rec := c.do("GET", "/todos", "", withNonce("forged")); rec.Code != http.StatusUnauthorized || problemReason(t, rec) != middleware.ReasonDPoPNonce {
		t.Fatalf("forged nonce: %d %s", rec.Code, rec.Body)
	}
	for _, h := range []http.Handler{a, b} {
		c.h = h
		rec := c.do("POST", "/todos", `{"title":"with a nonce"}`, withNonce(nonce))
		if rec.Code != http.StatusCreated {
			t.Fatalf("proof with the nonce: %d %s", rec.Code, rec.Body)
		}
		if next := rec.Header().Get("DPoP-Nonce"); next == "" {
			t.Errorf("an accepted DPoP request got no DPoP-Nonce for its next proof")
		} else {
			nonce = next
		}
	}
	// A replica with another secret refuses the nonce.
	cfg.DPoPNonceSecret = strings.Repeat("m", 32)
	cfg.DatabaseURL = testConfig(t, is).DatabaseURL
	c.h = mustBuild(t, cfg, true)
	if rec := c.do("GET", "/todos", "", withNonce(nonce)); rec.Code != http.StatusUnauthorized || problemReason(t, rec) != middleware.ReasonDPoPNonce {
		t.Fatalf("nonce of another secret: %d %s", rec.Code, rec.Body)
	}
}

// TestDPoPSettingsRefused: a bad DPoP setting stops the server at start
// with one line naming it, and never repeats the secret.
func TestDPoPSettingsRefused(t *testing.T) {
	t.Parallel()
	is := authtest.NewIssuer(t, todoScopes)
	short := "too-short-" + strings.Repeat("s", 10)
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"unknown mode", func(c *Config) { c.DPoP = "sometimes" }, `DPOP_MODE: want disabled, allowed or required, got "sometimes"`},
		{"short nonce secret", func(c *Config) { c.DPoP, c.DPoPNonceSecret = middleware.DPoPAllowed, short }, "DPOP_NONCE_SECRET: must be at least 32 bytes, got 20"},
		{"nonce secret without DPoP", func(c *Config) { c.DPoPNonceSecret = strings.Repeat("s", 32) }, "DPOP_NONCE_SECRET: only with DPOP_MODE=allowed or required"},
		{"base URL with a query", func(c *Config) { c.DPoP, c.BaseURL = middleware.DPoPRequired, "https://api.example.com/?x=1" }, "BASE_URL: "},
		{"base URL with a fragment", func(c *Config) { c.DPoP, c.BaseURL = middleware.DPoPRequired, "https://api.example.com/#x" }, "BASE_URL: "},
		{"base URL without a host", func(c *Config) { c.DPoP, c.BaseURL = middleware.DPoPAllowed, "/todo-api" }, "BASE_URL: "},
		{"base URL with user info", func(c *Config) { c.BaseURL = "https://u:" + short + "@api.example.com" }, "BASE_URL: must have no user info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, is)
			cfg.BaseURL = "http://example.com"
			tt.edit(&cfg)
			srv, err := New(t.Context(), cfg)
			if err == nil {
				_ = srv.Close()
				t.Fatal("New accepted it")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, tt.want) || strings.Contains(msg, "\n") || strings.Contains(msg, short) {
				t.Errorf("error %q, want one line starting %q", msg, tt.want)
			}
		})
	}
	// Written as people write it.
	cfg := testConfig(t, is)
	cfg.DPoP, cfg.BaseURL = " Required ", "http://example.com"
	mustBuild(t, cfg, false)
}

package devidp_test

import (
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

const (
	cliID = "cli"
	// cliRedirect is registered without a port; the requests name one,
	// which a loopback redirect may (RFC 8252 §7.3).
	cliRedirect   = "http://127.0.0.1/callback"
	cliRedirectAt = "http://127.0.0.1:8123/callback"
)

// mustStartDPoP starts devidp with the test's confidential client, the
// introspection client and a public client.
func mustStartDPoP(tb testing.TB, edit func(*devidp.Config)) *devidptest.Server {
	tb.Helper()
	return mustStart(tb, func(c *devidp.Config) {
		c.Clients = append(c.Clients, devidp.Client{ID: cliID, Public: true, RedirectURIs: []string{cliRedirect}})
		if edit != nil {
			edit(c)
		}
	})
}

// tokenAnswer is a token endpoint answer, raw and decoded.
type tokenAnswer struct {
	status int
	raw    string
	body   map[string]any
	header http.Header
}

func (a tokenAnswer) str(name string) string { s, _ := a.body[name].(string); return s }

// postToken posts form to the token endpoint with one DPoP header per
// proof, authenticating as the confidential client when confidential.
func postToken(t *testing.T, ts *devidptest.Server, form url.Values, confidential bool, proofs ...string) tokenAnswer {
	t.Helper()
	req := mustRequest(t, http.MethodPost, ts.URL+"/token", form)
	if confidential {
		req.SetBasicAuth(clientID, clientSecret)
	}
	for _, p := range proofs {
		req.Header.Add("DPoP", p)
	}
	resp := mustDo(t, http.DefaultClient, req)
	raw := readAll(t, resp)
	a := tokenAnswer{status: resp.StatusCode, raw: raw, header: resp.Header}
	if err := json.Unmarshal([]byte(raw), &a.body); err != nil {
		t.Fatalf("token answer %d is not JSON: %v", resp.StatusCode, err)
	}
	return a
}

// codeForm signs alice in for client (the confidential one, or cliID) and
// returns the form that redeems the code.
func codeForm(t *testing.T, ts *devidptest.Server, client string) url.Values {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	if client == clientID {
		q := login(t, ts, oauthConfig(ts), "alice", "alice", oauth2.S256ChallengeOption(verifier))
		return url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirectURL}, "code_verifier": {verifier}}
	}
	conf := &oauth2.Config{ClientID: client, RedirectURL: cliRedirectAt, Scopes: allScopes, Endpoint: oauth2.Endpoint{AuthURL: ts.URL + "/authorize"}}
	resp, err := devidptest.Login(t.Context(), devidptest.Browser(cliRedirectAt), conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)), "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc.String(), cliRedirectAt) || loc.Query().Get("code") == "" {
		t.Fatalf("login: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, "redirect_uri": {cliRedirectAt},
		"code_verifier": {verifier}, "client_id": {client}}
}

func refreshForm(a tokenAnswer, client string) url.Values {
	f := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.str("refresh_token")}}
	if client != clientID {
		f.Set("client_id", client)
	}
	return f
}

func proof(t *testing.T, ts *devidptest.Server, k *authtest.DPoPKey, opts ...authtest.ProofOption) string {
	t.Helper()
	return k.Proof(t, http.MethodPost, ts.URL+"/token", "", opts...)
}

// wantTokens checks a 200 answer with an access and a refresh token,
// bound to k (token_type DPoP, cnf.jkt k's thumbprint) or, for a nil k,
// a Bearer token without cnf.
func wantTokens(t *testing.T, ts *devidptest.Server, a tokenAnswer, k *authtest.DPoPKey) {
	t.Helper()
	if a.status != http.StatusOK || a.str("access_token") == "" || a.str("refresh_token") == "" {
		t.Fatalf("token answer: status %d, error %q (%s)", a.status, a.str("error"), a.str("error_description"))
	}
	_, claims := mustParseAccessToken(t, ts, a.str("access_token"))
	cnf, _ := claims["cnf"].(map[string]any)
	if k == nil {
		if !strings.EqualFold(a.str("token_type"), "bearer") || claims["cnf"] != nil {
			t.Fatalf("token_type %q, cnf %v: want a Bearer token", a.str("token_type"), claims["cnf"])
		}
		return
	}
	if a.str("token_type") != "DPoP" {
		t.Fatalf("token_type = %q, want DPoP", a.str("token_type"))
	}
	if len(cnf) != 1 || cnf["jkt"] != k.Thumbprint() {
		t.Fatalf("cnf = %v, want jkt %s", claims["cnf"], k.Thumbprint())
	}
}

func wantProofRefused(t *testing.T, a tokenAnswer, proofs ...string) {
	t.Helper()
	if a.status != http.StatusBadRequest || a.str("error") != "invalid_dpop_proof" {
		t.Fatalf("status %d error %q (%s), want 400 invalid_dpop_proof", a.status, a.str("error"), a.str("error_description"))
	}
	if a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q", a.header.Get("Cache-Control"))
	}
	for _, p := range proofs {
		for _, part := range strings.Split(p, ".") {
			if len(part) > 8 && strings.Contains(a.raw, part) {
				t.Fatalf("the answer echoes the proof: %s", a.raw)
			}
		}
	}
}

func TestDPoPDiscovery(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	var doc map[string]any
	mustGetJSON(t, ts.URL+"/.well-known/oauth-authorization-server", &doc)
	if got := strs(doc["dpop_signing_alg_values_supported"]); !slices.Equal(got, []string{"ES256", "EdDSA", "RS256", "PS256"}) {
		t.Errorf("dpop_signing_alg_values_supported = %v", got)
	}
	if got := strs(doc["token_endpoint_auth_methods_supported"]); !slices.Equal(got, []string{"client_secret_basic", "client_secret_post", "none"}) {
		t.Errorf("token_endpoint_auth_methods_supported = %v, want none too (a public client is registered)", got)
	}
	if got := strs(doc["introspection_endpoint_auth_methods_supported"]); slices.Contains(got, "none") {
		t.Errorf("introspection_endpoint_auth_methods_supported = %v", got)
	}
}

// TestDPoPProofRefused sends each bad proof with a good refresh token of
// the confidential client, then the same refresh token with a good proof:
// no refusal used it up.
func TestDPoPProofRefused(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	first := postToken(t, ts, codeForm(t, ts, clientID), true)
	wantTokens(t, ts, first, nil)
	refresh := refreshForm(first, clientID)

	es := authtest.NewDPoPKey(t, "ES256")
	ed := authtest.NewDPoPKey(t, "EdDSA")
	edit := func(f func(h, c map[string]any)) authtest.ProofOption { return authtest.WithProofEdit(f) }
	esPriv, err := es.Private.(*ecdsa.PrivateKey).Bytes()
	if err != nil {
		t.Fatal(err)
	}
	tamper := func(p string) string {
		i := strings.LastIndexByte(p, '.') + 5
		c := byte('A')
		if p[i] == 'A' {
			c = 'B'
		}
		return p[:i] + string(c) + p[i+1:]
	}
	now := time.Now()

	cases := []struct {
		name   string
		why    string // in error_description
		proofs func() []string
	}{
		{"empty header", "empty", func() []string { return []string{""} }},
		{"not a JWS", "not a compact JWS", func() []string { return []string{"not.a.jws"} }},
		{"missing typ", "typ", func() []string {
			return []string{proof(t, ts, es, edit(func(h, _ map[string]any) { delete(h, "typ") }))}
		}},
		{"wrong typ", "typ", func() []string {
			return []string{proof(t, ts, es, edit(func(h, _ map[string]any) { h["typ"] = "JWT" }))}
		}},
		{"at+jwt typ", "typ", func() []string {
			return []string{proof(t, ts, es, edit(func(h, _ map[string]any) { h["typ"] = "at+jwt" }))}
		}},
		{"alg none", "allowed alg", func() []string {
			return []string{proof(t, ts, es, edit(func(h, _ map[string]any) { h["alg"] = "none" }))}
		}},
		{"alg HS256", "allowed alg", func() []string {
			return []string{proof(t, ts, es, edit(func(h, _ map[string]any) { h["alg"] = "HS256" }))}
		}},
		{"alg ES384 not allowed", "allowed alg", func() []string {
			return []string{proof(t, ts, es, edit(func(h, _ map[string]any) { h["alg"] = "ES384" }))}
		}},
		{"alg not the key's", "does not suit", func() []string {
			return []string{proof(t, ts, ed, edit(func(h, _ map[string]any) { h["alg"] = "ES256" }))}
		}},
		{"no jwk", "no public jwk", func() []string {
			return []string{proof(t, ts, es, edit(func(h, _ map[string]any) { delete(h, "jwk") }))}
		}},
		{"private key in jwk", "not a public key", func() []string {
			return []string{proof(t, ts, es, edit(func(h, _ map[string]any) {
				jwk := es.PublicJWK()
				jwk["d"] = base64.RawURLEncoding.EncodeToString(esPriv)
				h["jwk"] = jwk
			}))}
		}},
		{"bad signature", "signature", func() []string { return []string{tamper(proof(t, ts, es))} }},
		{"another key's jwk", "signature", func() []string {
			other := authtest.NewDPoPKey(t, "ES256")
			return []string{proof(t, ts, es, edit(func(h, _ map[string]any) { h["jwk"] = other.PublicJWK() }))}
		}},
		{"htm GET", "htm", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { c["htm"] = "GET" }))}
		}},
		{"htm post", "htm", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { c["htm"] = "post" }))}
		}},
		{"no htm", "htm", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { delete(c, "htm") }))}
		}},
		{"htu another endpoint", "htu", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { c["htu"] = ts.URL + "/introspect" }))}
		}},
		{"htu another host", "htu", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { c["htu"] = "http://evil.test/token" }))}
		}},
		{"htu https", "htu", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { c["htu"] = strings.Replace(ts.URL, "http:", "https:", 1) + "/token" }))}
		}},
		{"htu with userinfo", "htu", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { c["htu"] = strings.Replace(ts.URL, "//", "//u@", 1) + "/token" }))}
		}},
		{"no htu", "htu", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { delete(c, "htu") }))}
		}},
		{"htu not a string", "claims", func() []string { return []string{proof(t, ts, es, edit(func(_, c map[string]any) { c["htu"] = 7 }))} }},
		{"iat 2 minutes old", "iat", func() []string { return []string{proof(t, ts, es, authtest.WithProofTime(now.Add(-2*time.Minute)))} }},
		{"iat 2 minutes ahead", "iat", func() []string { return []string{proof(t, ts, es, authtest.WithProofTime(now.Add(2*time.Minute)))} }},
		{"iat huge", "iat", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { c["iat"] = 1e300 }))}
		}},
		{"no iat", "iat", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { delete(c, "iat") }))}
		}},
		{"no jti", "jti", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { delete(c, "jti") }))}
		}},
		{"empty jti", "jti", func() []string { return []string{proof(t, ts, es, edit(func(_, c map[string]any) { c["jti"] = "" }))} }},
		{"long jti", "jti", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { c["jti"] = strings.Repeat("j", 300) }))}
		}},
		{"ath at the token endpoint", "ath", func() []string { return []string{es.Proof(t, http.MethodPost, ts.URL+"/token", "some-token")} }},
		{"two DPoP headers", "more than one", func() []string { return []string{proof(t, ts, es), proof(t, ts, es)} }},
		{"too long", "8 KiB", func() []string {
			return []string{proof(t, ts, es, edit(func(_, c map[string]any) { c["pad"] = strings.Repeat("x", 9<<10) }))}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			proofs := tc.proofs()
			a := postToken(t, ts, refresh, true, proofs...)
			wantProofRefused(t, a, proofs...)
			if !strings.Contains(a.str("error_description"), tc.why) {
				t.Errorf("error_description %q, want it to say %q", a.str("error_description"), tc.why)
			}
		})
	}

	// The refresh token is still good, and the query of htu is ignored.
	good := es.Proof(t, http.MethodPost, ts.URL+"/token?q=1#f", "")
	wantTokens(t, ts, postToken(t, ts, refresh, true, good), es)
}

func TestDPoPProofReplay(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	k := authtest.NewDPoPKey(t, "ES256")
	p := proof(t, ts, k)
	first := postToken(t, ts, codeForm(t, ts, clientID), true, p)
	wantTokens(t, ts, first, k)
	// The same proof with another grant: replayed.
	wantProofRefused(t, postToken(t, ts, refreshForm(first, clientID), true, p), p)
	wantProofRefused(t, postToken(t, ts, codeForm(t, ts, clientID), true, p), p)
	// A fresh proof of the same key passes; the refused ones did not use
	// the refresh token up.
	wantTokens(t, ts, postToken(t, ts, refreshForm(first, clientID), true, proof(t, ts, k)), k)
}

// TestDPoPProofNotRecordedForBadGrant: a proof sent with a request that
// fails for another reason is not spent.
func TestDPoPProofNotRecordedForBadGrant(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	k := authtest.NewDPoPKey(t, "EdDSA")
	p := proof(t, ts, k)
	bad := postToken(t, ts, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"nope"}}, true, p)
	if bad.status != http.StatusBadRequest || bad.str("error") != "invalid_grant" {
		t.Fatalf("status %d error %q, want 400 invalid_grant", bad.status, bad.str("error"))
	}
	wantTokens(t, ts, postToken(t, ts, codeForm(t, ts, clientID), true, p), k)
}

// TestDPoPBoundTokens: the code grant with a proof gives a DPoP token whose
// cnf.jkt, computed here with go-jose, is authtest's thumbprint of the key
// (the one Tollgate's middleware computes), for every key type.
func TestDPoPBoundTokens(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	for _, alg := range []string{"ES256", "EdDSA", "RS256", "PS256"} {
		t.Run(alg, func(t *testing.T) {
			k := authtest.NewDPoPKey(t, alg)
			a := postToken(t, ts, codeForm(t, ts, clientID), true, proof(t, ts, k))
			wantTokens(t, ts, a, k)
			tok, _ := mustParseAccessToken(t, ts, a.str("access_token"))
			if tok.Header["typ"] != "at+jwt" {
				t.Errorf("typ = %v", tok.Header["typ"])
			}
			status, got := introspect(t, ts, a.str("access_token"), authBasic(apiID, apiSecret))
			cnf, _ := got["cnf"].(map[string]any)
			if status != http.StatusOK || got["active"] != true || got["token_type"] != "DPoP" || cnf["jkt"] != k.Thumbprint() {
				t.Fatalf("introspection: %d %v", status, got)
			}
		})
	}
}

func TestDPoPPublicClientRefreshBound(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	k := authtest.NewDPoPKey(t, "ES256")
	other := authtest.NewDPoPKey(t, "ES256")
	first := postToken(t, ts, codeForm(t, ts, cliID), false, proof(t, ts, k))
	wantTokens(t, ts, first, k)

	rf := refreshForm(first, cliID)
	wantProofRefused(t, postToken(t, ts, rf, false))
	wantProofRefused(t, postToken(t, ts, rf, false, proof(t, ts, other)))
	second := postToken(t, ts, rf, false, proof(t, ts, k))
	wantTokens(t, ts, second, k)

	// The new refresh token is bound too.
	rf = refreshForm(second, cliID)
	wantProofRefused(t, postToken(t, ts, rf, false))
	wantProofRefused(t, postToken(t, ts, rf, false, proof(t, ts, other)))
	wantTokens(t, ts, postToken(t, ts, rf, false, proof(t, ts, k)), k)
}

func TestDPoPPublicClientWithoutProof(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	first := postToken(t, ts, codeForm(t, ts, cliID), false)
	wantTokens(t, ts, first, nil)
	// Unbound, so a refresh without proof works; the first one with a
	// proof binds the grant from then on.
	second := postToken(t, ts, refreshForm(first, cliID), false)
	wantTokens(t, ts, second, nil)
	k := authtest.NewDPoPKey(t, "EdDSA")
	third := postToken(t, ts, refreshForm(second, cliID), false, proof(t, ts, k))
	wantTokens(t, ts, third, k)
	wantProofRefused(t, postToken(t, ts, refreshForm(third, cliID), false))
}

// TestDPoPConfidentialRefreshNotBound: RFC 9449 §5, a confidential client's
// refresh token is not bound; each access token is bound to the key of
// its own request's proof.
func TestDPoPConfidentialRefreshNotBound(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	k := authtest.NewDPoPKey(t, "ES256")
	other := authtest.NewDPoPKey(t, "RS256")
	first := postToken(t, ts, codeForm(t, ts, clientID), true, proof(t, ts, k))
	wantTokens(t, ts, first, k)
	second := postToken(t, ts, refreshForm(first, clientID), true)
	wantTokens(t, ts, second, nil)
	third := postToken(t, ts, refreshForm(second, clientID), true, proof(t, ts, other))
	wantTokens(t, ts, third, other)
}

func TestDPoPOpaqueIntrospection(t *testing.T) {
	ts := mustStartDPoP(t, func(c *devidp.Config) { c.OpaqueAccessTokens = true })
	k := authtest.NewDPoPKey(t, "EdDSA")
	bound := postToken(t, ts, codeForm(t, ts, clientID), true, proof(t, ts, k))
	if bound.status != http.StatusOK || bound.str("token_type") != "DPoP" || strings.Count(bound.str("access_token"), ".") == 2 {
		t.Fatalf("token answer: %d, token_type %q", bound.status, bound.str("token_type"))
	}
	status, got := introspect(t, ts, bound.str("access_token"), authBasic(apiID, apiSecret))
	cnf, _ := got["cnf"].(map[string]any)
	if status != http.StatusOK || got["active"] != true || got["token_type"] != "DPoP" || len(cnf) != 1 || cnf["jkt"] != k.Thumbprint() {
		t.Fatalf("introspection of a bound token: %d %v", status, got)
	}

	// A refresh without proof: the new token is a Bearer token, and its
	// introspection answer says nothing of DPoP.
	plain := postToken(t, ts, refreshForm(bound, clientID), true)
	if plain.status != http.StatusOK || !strings.EqualFold(plain.str("token_type"), "bearer") {
		t.Fatalf("refresh: %d, token_type %q", plain.status, plain.str("token_type"))
	}
	status, got = introspect(t, ts, plain.str("access_token"), authBasic(apiID, apiSecret))
	if status != http.StatusOK || got["active"] != true || got["cnf"] != nil || got["token_type"] == "DPoP" {
		t.Fatalf("introspection of a Bearer token: %d %v", status, got)
	}
}

// TestPublicClientCannotIntrospect: fosite authenticates a public client
// by its client_id alone, which must not open introspection.
func TestPublicClientCannotIntrospect(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	a := postToken(t, ts, codeForm(t, ts, cliID), false)
	for name, auth := range map[string]func(*http.Request, url.Values){
		"post":  func(_ *http.Request, f url.Values) { f.Set("client_id", cliID) },
		"basic": authBasic(cliID, ""),
	} {
		t.Run(name, func(t *testing.T) {
			if status, got := introspect(t, ts, a.str("access_token"), auth); status != http.StatusUnauthorized || got["error"] != "invalid_client" {
				t.Fatalf("introspection by a public client: %d %v", status, got)
			}
		})
	}
}

func TestPublicClientConfig(t *testing.T) {
	for name, c := range map[string]devidp.Client{
		"secret":      {ID: "p", Public: true, Secret: "s", RedirectURIs: []string{cliRedirect}},
		"no redirect": {ID: "p", Public: true},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := devidp.New(t.Context(), devidp.Config{Issuer: "http://127.0.0.1:1", SigningKey: testKey(), Clients: []devidp.Client{c}}); err == nil {
				t.Fatal("New accepted the client")
			}
		})
	}
	if !slices.ContainsFunc(devidp.DefaultClients(), func(c devidp.Client) bool { return c.ID == devidp.DefaultCLIClientID && c.Public }) {
		t.Fatal("no public client among the defaults")
	}
}

// TestDefaultCLIClient runs the public default client through the code
// grant with a loopback redirect on some port.
func TestDefaultCLIClient(t *testing.T) {
	ts := devidptest.Start(t, devidp.Config{SigningKey: testKey()})
	verifier := oauth2.GenerateVerifier()
	redirect := "http://127.0.0.1:49152/callback"
	conf := &oauth2.Config{ClientID: devidp.DefaultCLIClientID, RedirectURL: redirect, Scopes: allScopes,
		Endpoint: oauth2.Endpoint{AuthURL: ts.URL + "/authorize", TokenURL: ts.URL + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	resp, err := devidptest.Login(t.Context(), devidptest.Browser(redirect), conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier)), "bob", "bob")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	tok, err := conf.Exchange(t.Context(), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: %v", err)
	}
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(tok.AccessToken, claims); err != nil || claims["client_id"] != devidp.DefaultCLIClientID || claims["sub"] != "bob" {
		t.Fatalf("access token claims %v, %v", claims, err)
	}
	// Without the verifier (PKCE), no token.
	resp, err = devidptest.Login(t.Context(), devidptest.Browser(redirect), conf.AuthCodeURL("state-0123456789"), "bob", "bob")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc, _ := url.Parse(resp.Header.Get("Location")); loc == nil || loc.Query().Get("error") == "" {
		t.Fatalf("authorization without PKCE: %q", resp.Header.Get("Location"))
	}
}

// TestDPoPTokenAtTollgateMiddleware cross-checks the two implementations:
// a token devidp bound (go-jose's thumbprint) passes Tollgate's middleware
// with a proof of the same key (the middleware's own thumbprint), and
// fails with another key's proof or as a Bearer token.
func TestDPoPTokenAtTollgateMiddleware(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	a, err := middleware.New(t.Context(), middleware.Config{
		Issuer: ts.URL, Audiences: []string{"todo-api"}, JWKSURL: ts.URL + "/jwks",
		DPoP: middleware.DPoPRequired, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); a.Ready(t.Context()) != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("middleware never loaded devidp's keys")
		}
	}
	const target = "http://api.test/todos"
	request := func(scheme, token string, proofs ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		r.Header.Set("Authorization", scheme+" "+token)
		for _, p := range proofs {
			r.Header.Add("DPoP", p)
		}
		return r
	}
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		t.Run(alg, func(t *testing.T) {
			k := authtest.NewDPoPKey(t, alg)
			tok := postToken(t, ts, codeForm(t, ts, cliID), false, proof(t, ts, k)).str("access_token")
			p, err := a.Authenticate(request("DPoP", tok, k.Proof(t, http.MethodGet, target, tok)))
			if err != nil || p.Binding != principal.BindingDPoP || p.JKT != k.Thumbprint() || p.Subject != "alice" {
				t.Fatalf("middleware: %+v, %v", p, err)
			}
			other := authtest.NewDPoPKey(t, "ES256")
			if _, err := a.Authenticate(request("DPoP", tok, other.Proof(t, http.MethodGet, target, tok))); err == nil {
				t.Fatal("middleware accepted another key's proof")
			}
			if _, err := a.Authenticate(request("Bearer", tok)); err == nil {
				t.Fatal("middleware accepted the bound token as a Bearer token")
			}
		})
	}
}

// TestDPoPUserinfo: userinfo is a protected resource, so a bound token
// works there only with the DPoP scheme and a proof of its key (RFC 9449
// §7).
func TestDPoPUserinfo(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	k := authtest.NewDPoPKey(t, "ES256")
	other := authtest.NewDPoPKey(t, "EdDSA")
	bound := postToken(t, ts, codeForm(t, ts, clientID), true, proof(t, ts, k)).str("access_token")
	plain := postToken(t, ts, codeForm(t, ts, clientID), true).str("access_token")
	userinfo := ts.URL + "/userinfo"
	replayed := k.Proof(t, http.MethodGet, userinfo, bound)

	cases := []struct {
		name          string
		method        string
		auth          string
		proofs        []string
		status        int
		error, scheme string
	}{
		{"bound, DPoP, proof", http.MethodGet, "DPoP " + bound, []string{replayed}, 200, "", ""},
		{"bound, DPoP, POST proof", http.MethodPost, "DPoP " + bound, []string{k.Proof(t, http.MethodPost, userinfo, bound)}, 200, "", ""},
		{"replayed proof", http.MethodGet, "DPoP " + bound, []string{replayed}, 401, "invalid_dpop_proof", "DPoP"},
		{"bound as Bearer", http.MethodGet, "Bearer " + bound, nil, 401, "invalid_token", "Bearer"},
		{"bound as Bearer with proof", http.MethodGet, "Bearer " + bound, []string{k.Proof(t, http.MethodGet, userinfo, bound)}, 401, "invalid_token", "Bearer"},
		{"DPoP without proof", http.MethodGet, "DPoP " + bound, nil, 401, "invalid_dpop_proof", "DPoP"},
		{"two proofs", http.MethodGet, "DPoP " + bound, []string{k.Proof(t, http.MethodGet, userinfo, bound), k.Proof(t, http.MethodGet, userinfo, bound)}, 401, "invalid_dpop_proof", "DPoP"},
		{"another key", http.MethodGet, "DPoP " + bound, []string{other.Proof(t, http.MethodGet, userinfo, bound)}, 401, "invalid_token", "DPoP"},
		{"no ath", http.MethodGet, "DPoP " + bound, []string{k.Proof(t, http.MethodGet, userinfo, "")}, 401, "invalid_dpop_proof", "DPoP"},
		{"ath of another token", http.MethodGet, "DPoP " + bound, []string{k.Proof(t, http.MethodGet, userinfo, plain)}, 401, "invalid_dpop_proof", "DPoP"},
		{"htu of the token endpoint", http.MethodGet, "DPoP " + bound, []string{k.Proof(t, http.MethodGet, ts.URL+"/token", bound)}, 401, "invalid_dpop_proof", "DPoP"},
		{"htm POST for GET", http.MethodGet, "DPoP " + bound, []string{k.Proof(t, http.MethodPost, userinfo, bound)}, 401, "invalid_dpop_proof", "DPoP"},
		{"Bearer token", http.MethodGet, "Bearer " + plain, nil, 200, "", ""},
		{"Bearer token with the DPoP scheme and a proof", http.MethodGet, "DPoP " + plain, []string{other.Proof(t, http.MethodGet, userinfo, plain)}, 401, "invalid_token", "DPoP"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := mustRequest(t, tc.method, userinfo, nil)
			req.Header.Set("Authorization", tc.auth)
			for _, p := range tc.proofs {
				req.Header.Add("DPoP", p)
			}
			resp := mustDo(t, http.DefaultClient, req)
			var body map[string]any
			if err := json.Unmarshal([]byte(readAll(t, resp)), &body); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status || (tc.status == 200 && body["sub"] != "alice") || (tc.error != "" && body["error"] != tc.error) {
				t.Fatalf("status %d %v, want %d %q", resp.StatusCode, body, tc.status, tc.error)
			}
			if ch := resp.Header.Get("WWW-Authenticate"); tc.scheme != "" && (!strings.HasPrefix(ch, tc.scheme+" ") || !strings.Contains(ch, tc.error)) {
				t.Fatalf("WWW-Authenticate = %q, want %s error %s", ch, tc.scheme, tc.error)
			}
		})
	}
}

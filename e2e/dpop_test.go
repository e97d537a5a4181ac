package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
	"github.com/tollgate-dev/tollgate/internal/devstack"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// dpopClient is what a command-line tool holding a DPoP key does (RFC 9449):
// every request it sends carries a fresh proof for its method and URL, and
// with an access token, the token's hash (ath) too.
type dpopClient struct {
	t     *testing.T
	key   *authtest.DPoPKey
	token string // the DPoP-bound access token, once it has one
}

// send makes one request with a fresh proof; edit, if not nil, may change
// the request after the proof is made (what an attacker replaying or
// redirecting a proof does).
func (c *dpopClient) send(method, target string, body any, edit func(r *http.Request)) (*http.Response, []byte) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = strings.NewReader(string(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	r.Header.Set("Authorization", "DPoP "+c.token)
	r.Header.Set("DPoP", c.key.Proof(c.t, method, target, c.token))
	if edit != nil {
		edit(r)
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		c.t.Fatal(err)
	}
	return resp, b
}

// dpopTokens signs alice in at devidp as the public client tollgate-cli
// (authorization code with PKCE, RFC 7636) and redeems the code with a DPoP
// proof of key: devidp answers with DPoP-bound tokens.
func dpopTokens(t *testing.T, st *devstack.Stack, key *authtest.DPoPKey) *oauth2.Token {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	redirect := strings.Replace(devidp.DefaultCLIRedirectURL, "127.0.0.1", "127.0.0.1:9", 1)
	conf := &oauth2.Config{
		ClientID:    devidp.DefaultCLIClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: st.IssuerURL + "/authorize", TokenURL: st.IssuerURL + "/token", AuthStyle: oauth2.AuthStyleInParams},
		RedirectURL: redirect,
		Scopes:      []string{"openid", "offline_access", "todos:read", "todos:write"},
	}
	verifier := oauth2.GenerateVerifier()
	resp, err := devidptest.Login(ctx, devidptest.Browser(redirect), conf.AuthCodeURL(oauth2.GenerateVerifier(), oauth2.S256ChallengeOption(verifier)), "alice", "alice")
	if err != nil {
		t.Fatalf("signing in: %v", err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code in the redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	hc := &http.Client{Transport: proofTransport{t: t, key: key}}
	tok, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, hc), loc.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("redeeming the code with a DPoP proof: %v", err)
	}
	return tok
}

// proofTransport adds a DPoP proof, without ath, to every request: the token
// endpoint's kind (RFC 9449 §5).
type proofTransport struct {
	t   *testing.T
	key *authtest.DPoPKey
}

func (p proofTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("DPoP", p.key.Proof(p.t, r.Method, r.URL.String(), ""))
	return http.DefaultTransport.RoundTrip(r)
}

// jwtClaims decodes a JWT's payload without verifying it: the test reads
// what devidp put there; the todo API does the verifying.
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestDPoPClient: a client with a DPoP key gets DPoP-bound tokens from the
// devidp binary and does CRUD on the todo API binary (DPOP_MODE=required,
// TOKEN_PROFILE=rfc9068)
// with a fresh proof per request; a replayed proof, a proof for another
// method or URL, a proof of another key, a stripped proof and the token
// sent as a bearer token are each refused with the error RFC 9449 §7.1
// names, and change nothing. The refresh token is bound to the key too.
func TestDPoPClient(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real programs: not in -short")
	}
	// TOKEN_PROFILE=rfc9068 too: devidp's tokens carry everything the
	// strict profile asks (typ at+jwt, kid, every RFC 9068 §2.2 claim).
	st := startStackEnv(t, "jwt", 0, []string{"DPOP_MODE=required", "TOKEN_PROFILE=rfc9068"})
	key := authtest.NewDPoPKey(t, "ES256")
	tok := dpopTokens(t, st, key)

	if tok.TokenType != "DPoP" {
		t.Fatalf("token_type %q, want DPoP", tok.TokenType)
	}
	cnf, _ := jwtClaims(t, tok.AccessToken)["cnf"].(map[string]any)
	if cnf["jkt"] != key.Thumbprint() {
		t.Fatalf("cnf %v, want jkt %s (devidp's thumbprint, made with go-jose, must match ours)", cnf, key.Thumbprint())
	}
	c := &dpopClient{t: t, key: key, token: tok.AccessToken}
	todos := st.APIURL + "/todos"

	// Create, read, update, list, delete, each with its own proof.
	resp, body := c.send("POST", todos, map[string]any{"title": "bound"}, nil)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var todo struct {
		URL       string `json:"url"`
		Title     string `json:"title"`
		Completed bool   `json:"completed"`
	}
	if err := json.Unmarshal(body, &todo); err != nil || todo.URL == "" {
		t.Fatalf("create answered %s (%v)", body, err)
	}
	if resp, body := c.send("GET", todo.URL, nil, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("read: %d %s", resp.StatusCode, body)
	}
	if resp, body := c.send("PATCH", todo.URL, map[string]any{"completed": true}, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("update: %d %s", resp.StatusCode, body)
	}

	// A proof the API accepted once, for a read of the todo.
	used := key.Proof(t, "GET", todo.URL, c.token)
	if resp, body := c.send("GET", todo.URL, nil, func(r *http.Request) { r.Header.Set("DPoP", used) }); resp.StatusCode != http.StatusOK {
		t.Fatalf("read with a proof made beforehand: %d %s", resp.StatusCode, body)
	}

	// Each attack is a request that would succeed (a read, or deleting the
	// todo) but for its proof: refused, and the todo is still there.
	other := authtest.NewDPoPKey(t, "EdDSA")
	attacks := []struct {
		name, method  string
		edit          func(r *http.Request)
		error, reason string
	}{
		{"replayed proof", "GET", func(r *http.Request) { r.Header.Set("DPoP", used) }, "invalid_dpop_proof", middleware.ReasonDPoPReplay},
		{"proof for GET used to DELETE", "DELETE", func(r *http.Request) { r.Header.Set("DPoP", key.Proof(t, "GET", todo.URL, c.token)) }, "invalid_dpop_proof", middleware.ReasonDPoPProof},
		{"proof for another URL", "DELETE", func(r *http.Request) { r.Header.Set("DPoP", key.Proof(t, "DELETE", todos, c.token)) }, "invalid_dpop_proof", middleware.ReasonDPoPProof},
		{"proof of another key", "DELETE", func(r *http.Request) { r.Header.Set("DPoP", other.Proof(t, "DELETE", todo.URL, c.token)) }, "invalid_token", middleware.ReasonDPoPKeyBinding},
		{"proof stripped", "DELETE", func(r *http.Request) { r.Header.Del("DPoP") }, "invalid_dpop_proof", middleware.ReasonDPoPProof},
		{"token sent as Bearer", "DELETE", func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+c.token)
			r.Header.Del("DPoP")
		}, "invalid_token", middleware.ReasonBoundToken},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			resp, body := c.send(a.method, todo.URL, nil, a.edit)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d %s, want 401", resp.StatusCode, body)
			}
			if ch := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `error="`+a.error+`"`) {
				t.Errorf("WWW-Authenticate %q, want DPoP error=%q", ch, a.error)
			}
			var problem map[string]any
			if err := json.Unmarshal(body, &problem); err != nil || problem["reason"] != a.reason {
				t.Errorf("reason %v, want %s (%s)", problem["reason"], a.reason, body)
			}
			if strings.Contains(string(body), c.token) {
				t.Error("the answer echoes the token")
			}
			if resp, body := c.send("GET", todo.URL, nil, nil); resp.StatusCode != http.StatusOK {
				t.Fatalf("the todo is gone after the refused request: %d %s", resp.StatusCode, body)
			}
		})
	}

	// The refresh token of a public client is bound to the key too: a
	// refresh with another key's proof, or with none, is refused with
	// invalid_dpop_proof (any other error would not show the binding: a
	// thief without the key must get neither a token bound to his key nor
	// an unbound one), and leaves the refresh token usable; with this
	// key's proof it gives a new token bound to the same key.
	for _, k := range []*authtest.DPoPKey{other, nil} {
		_, err := refreshWith(t, st, k, tok.RefreshToken)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.Response.StatusCode != http.StatusBadRequest || re.ErrorCode != "invalid_dpop_proof" {
			t.Fatalf("a refresh with %s: %v, want 400 invalid_dpop_proof", map[bool]string{true: "no proof", false: "another key's proof"}[k == nil], err)
		}
	}
	fresh, err := refreshWith(t, st, key, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh with the key's proof: %v", err)
	}
	if cnf, _ := jwtClaims(t, fresh.AccessToken)["cnf"].(map[string]any); fresh.TokenType != "DPoP" || cnf["jkt"] != key.Thumbprint() {
		t.Fatalf("refreshed token: token_type %q, cnf %v", fresh.TokenType, cnf)
	}
	c.token = fresh.AccessToken

	if resp, body := c.send("DELETE", todo.URL, nil, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
}

// refreshWith runs the refresh grant as tollgate-cli with a proof of key,
// or without a proof for a nil key.
func refreshWith(t *testing.T, st *devstack.Stack, key *authtest.DPoPKey, refreshToken string) (*oauth2.Token, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	conf := &oauth2.Config{
		ClientID: devidp.DefaultCLIClientID,
		Endpoint: oauth2.Endpoint{TokenURL: st.IssuerURL + "/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	hc := &http.Client{Transport: http.DefaultTransport}
	if key != nil {
		hc.Transport = proofTransport{t: t, key: key}
	}
	return conf.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc), &oauth2.Token{RefreshToken: refreshToken}).Token()
}

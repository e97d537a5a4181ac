package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/devstack"
	"github.com/tollgate-dev/tollgate/internal/openapitest"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestDPoPMode: the todo-api program reads DPOP_MODE (in any case) and
// DPOP_NONCE_SECRET: with required, over real HTTP, a client with a
// DPoP-bound token and a proof per request for the URL it calls writes
// and reads its todos, and a bearer token is refused with the DPoP
// challenge. Every exchange is checked against openapi.yaml.
func TestDPoPMode(t *testing.T) {
	is := authtest.NewIssuer(t, todoScopes)
	env := jwtEnv(t, is)
	env["DPOP_MODE"] = "Required"
	// DPoP needs BASE_URL: the address the server will listen on.
	ports, err := devstack.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	env["LISTEN_ADDR"] = fmt.Sprintf("127.0.0.1:%d", ports[0])
	env["BASE_URL"] = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	env["DPOP_NONCE_SECRET"] = strings.Repeat("k", 32)
	s := startServer(t, env)
	client := openapitest.New(t).Client(t)
	key := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", key)
	send := func(method, path, body, auth, nonce string) *http.Response {
		t.Helper()
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, s.URL+path, rd)
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", auth)
		if strings.HasPrefix(auth, "DPoP ") {
			req.Header.Set("DPoP", key.Proof(t, method, s.URL+path, tok, authtest.WithProofNonce(nonce)))
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	// The first proof has no nonce: the answer hands one out.
	resp := send("POST", "/todos", `{"title":"sent with DPoP"}`, "DPoP "+tok, "")
	nonce := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != 401 || nonce == "" || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		t.Fatalf("first proof: %d %q nonce %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), nonce)
	}
	if resp := send("POST", "/todos", `{"title":"sent with DPoP"}`, "DPoP "+tok, nonce); resp.StatusCode != 201 {
		t.Fatalf("DPoP POST: %d", resp.StatusCode)
	}
	resp = send("GET", "/todos", "", "DPoP "+tok, nonce)
	var list []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 || len(list) != 1 || list[0]["title"] != "sent with DPoP" {
		t.Fatalf("DPoP GET: %d %v %v", resp.StatusCode, list, err)
	}
	resp = send("GET", "/todos", "", "Bearer "+is.Token(t, "alice", nil), "")
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.HasPrefix(ch, `DPoP realm="todo-api", error="invalid_token"`) || !strings.Contains(ch, `algs="`) {
		t.Fatalf("bearer with DPOP_MODE=required: %d %q", resp.StatusCode, ch)
	}
	if !strings.Contains(s.log.String(), `"dpop_mode":"required"`) {
		t.Errorf("the start log does not say DPoP is required:\n%s", s.log)
	}
	if strings.Contains(s.log.String(), env["DPOP_NONCE_SECRET"]) {
		t.Errorf("the log holds DPOP_NONCE_SECRET")
	}
}

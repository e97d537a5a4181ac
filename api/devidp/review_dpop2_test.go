package devidp_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestReviewDPoP2TokenHTUTricks: a proof names the token endpoint's URL
// as the issuer says it; other paths, trailing slashes, case in the path,
// another port or host, dot segments and encoded slashes are refused.
// Case in scheme and host, a default port, a query and a fragment are
// what RFC 9449 §4.3 lets normalisation ignore.
func TestReviewDPoP2TokenHTUTricks(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	host := strings.TrimPrefix(ts.URL, "http://")
	refused := []string{
		ts.URL + "/token/",
		ts.URL + "/TOKEN",
		ts.URL + "//token",
		ts.URL + "/./token",
		ts.URL + "/x/../token",
		ts.URL + "/%2Ftoken",
		ts.URL + "/token%2F",
		ts.URL + "/userinfo",
		ts.URL,
		"http://localhost:" + host[strings.LastIndex(host, ":")+1:] + "/token",
		"http://" + host[:strings.LastIndex(host, ":")] + ":1/token",
		"https://" + host + "/token",
		"http://user@" + host + "/token",
		"/token",
		"token",
	}
	for _, htu := range refused {
		k := authtest.NewDPoPKey(t, "ES256")
		p := k.Proof(t, http.MethodPost, htu, "")
		a := postToken(t, ts, codeForm(t, ts, clientID), true, p)
		if a.status != http.StatusBadRequest || a.str("error") != "invalid_dpop_proof" {
			t.Errorf("htu %q: status %d error %q, want 400 invalid_dpop_proof", htu, a.status, a.str("error"))
		}
	}
	accepted := []string{
		strings.ToUpper("http://"+host) + "/token",
		ts.URL + "/token?x=1",
		ts.URL + "/token#f",
		ts.URL + "/tok%65n",
	}
	for _, htu := range accepted {
		k := authtest.NewDPoPKey(t, "ES256")
		a := postToken(t, ts, codeForm(t, ts, clientID), true, k.Proof(t, http.MethodPost, htu, ""))
		wantTokens(t, ts, a, k)
	}
}

// TestReviewDPoP2MalformedHeaders: garbage in the DPoP header is a 400
// invalid_dpop_proof that neither the answer nor the log repeats.
func TestReviewDPoP2MalformedHeaders(t *testing.T) {
	var logs bytes.Buffer
	ts := mustStartDPoP(t, func(c *devidp.Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	secret := "SECRETPROOFPART"
	for _, h := range []string{
		secret,
		secret + "." + secret + "." + secret,
		"eyJ" + secret + ".eyJ" + secret + ".sig",
		strings.Repeat("A", 8<<10) + secret,
		"e30." + secret + ".",
	} {
		a := postToken(t, ts, codeForm(t, ts, clientID), true, h)
		if a.status != http.StatusBadRequest || a.str("error") != "invalid_dpop_proof" {
			t.Errorf("header %.20q: status %d error %q", h, a.status, a.str("error"))
		}
		if strings.Contains(a.raw, secret) {
			t.Errorf("the answer repeats the proof: %s", a.raw)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the log repeats the proof:\n%s", logs.String())
	}
}

// TestReviewDPoP2IssuerWithEmptyQueryOrFragment: an Issuer with an empty
// query ("?") or fragment ("#") passes the "no query or fragment" check,
// and then the token and userinfo endpoints' htu both normalise to the
// issuer's root: the two endpoints, and "/", cannot be told apart.
func TestReviewDPoP2IssuerWithEmptyQueryOrFragment(t *testing.T) {
	for _, iss := range []string{"http://127.0.0.1:9/?", "http://127.0.0.1:9#", "http://127.0.0.1:9/#"} {
		_, err := devidp.New(context.Background(), devidp.Config{Issuer: iss, SigningKey: testKey(), AccessTokenTTL: ttl,
			Logger: slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))})
		if err == nil || !strings.Contains(err.Error(), "Issuer") {
			t.Errorf("Issuer %q: New answered %v, want the Issuer refused", iss, err)
		}
	}
}

// TestReviewDPoP2UserinfoScopeChallenge: a DPoP request to userinfo with a
// bound token that lacks openid is refused 403 insufficient_scope with a
// DPoP challenge (RFC 9449 §7.1): the scheme the client used, and the one
// whose algs it needs; a Bearer challenge tells it to drop the proof.
func TestReviewDPoP2UserinfoScopeChallenge(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	k := authtest.NewDPoPKey(t, "ES256")
	verifier := oauth2.GenerateVerifier()
	q := login(t, ts, oauthConfig(ts, "todos:read"), "alice", "alice", oauth2.S256ChallengeOption(verifier))
	form := url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {redirectURL}, "code_verifier": {verifier}}
	a := postToken(t, ts, form, true, proof(t, ts, k))
	tok := a.str("access_token")
	if a.status != http.StatusOK || tok == "" {
		t.Fatalf("token: %d %s", a.status, a.raw)
	}
	userinfo := ts.URL + "/userinfo"
	req := mustRequest(t, http.MethodGet, userinfo, nil)
	req.Header.Set("Authorization", "DPoP "+tok)
	req.Header.Set("DPoP", k.Proof(t, http.MethodGet, userinfo, tok))
	resp := mustDo(t, http.DefaultClient, req)
	body := readAll(t, resp)
	ch := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "insufficient_scope") {
		t.Fatalf("status %d %s, want 403 insufficient_scope", resp.StatusCode, body)
	}
	if !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `error="insufficient_scope"`) || !strings.Contains(ch, `algs="`) {
		t.Fatalf("WWW-Authenticate %q, want a DPoP insufficient_scope challenge with algs", ch)
	}
}

// TestReviewDPoP2WrongKeyRefreshTakesNoRoom: a refresh refused because
// its proof is not of the refresh token's key leaves the refresh token as
// it was, so one refresh token (any user's, of the public client) could
// be sent again and again with proofs of fresh keys; each took a place in
// the replay set, and a full set answers every DPoP token request 503.
// A refused refresh, like any refused request, must take no room.
func TestReviewDPoP2WrongKeyRefreshTakesNoRoom(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	const limit = 4
	devidp.SetDPoPReplayLimit(ts.IDP, limit)
	k := authtest.NewDPoPKey(t, "ES256")
	first := postToken(t, ts, codeForm(t, ts, cliID), false, proof(t, ts, k))
	wantTokens(t, ts, first, k)
	rf := refreshForm(first, cliID)
	for range limit {
		wantProofRefused(t, postToken(t, ts, rf, false, proof(t, ts, authtest.NewDPoPKey(t, "ES256"))))
	}
	// Someone else's code redemption, and the rightful refresh, still pass.
	k2 := authtest.NewDPoPKey(t, "EdDSA")
	wantTokens(t, ts, postToken(t, ts, codeForm(t, ts, cliID), false, proof(t, ts, k2)), k2)
	wantTokens(t, ts, postToken(t, ts, rf, false, proof(t, ts, k)), k)
}

// TestReviewDPoP2UserinfoCannotFillTokenReplaySet: the holder of one bound
// access token may send userinfo as many fresh proofs as he likes, each a
// valid request whose jti is kept a minute; with one replay set for both
// endpoints that filled it, and every DPoP token request, anyone's, was
// answered 503. A userinfo proof can never pass at the token endpoint
// (htu, ath), so the endpoints keep apart sets.
func TestReviewDPoP2UserinfoCannotFillTokenReplaySet(t *testing.T) {
	ts := mustStartDPoP(t, nil)
	const limit = 3
	devidp.SetDPoPReplayLimit(ts.IDP, limit)
	k := authtest.NewDPoPKey(t, "ES256")
	tok := postToken(t, ts, codeForm(t, ts, clientID), true, proof(t, ts, k)).str("access_token")
	userinfo := ts.URL + "/userinfo"
	for range limit + 1 {
		req := mustRequest(t, http.MethodGet, userinfo, nil)
		req.Header.Set("Authorization", "DPoP "+tok)
		req.Header.Set("DPoP", k.Proof(t, http.MethodGet, userinfo, tok))
		resp := mustDo(t, http.DefaultClient, req)
		readAll(t, resp)
	}
	k2 := authtest.NewDPoPKey(t, "EdDSA")
	wantTokens(t, ts, postToken(t, ts, codeForm(t, ts, cliID), false, proof(t, ts, k2)), k2)
}

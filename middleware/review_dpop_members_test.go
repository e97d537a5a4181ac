package middleware_test

import (
	"testing"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestReviewDPoPMemberNamesExact: JOSE header parameter and claim names
// are case-sensitive (RFC 7515 §4, RFC 7519 §4). encoding/json matches
// struct fields case-insensitively, so a proof whose only type was "TYP"
// (not typ, the explicit typing RFC 9449 §4.3 and RFC 8725 §3.11 rely
// on), or whose claims were "HTM", "HTU", "JTI", "IAT", "ATH", passed.
func TestReviewDPoPMemberNamesExact(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, nil)
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	rename := func(m map[string]any, from, to string) {
		m[to] = m[from]
		delete(m, from)
	}
	for _, tc := range []struct {
		name string
		edit func(h, c map[string]any)
	}{
		{"TYP", func(h, _ map[string]any) { rename(h, "typ", "TYP") }},
		{"Typ beside typ JWT", func(h, _ map[string]any) { h["typ"], h["Typ"] = "JWT", "dpop+jwt" }},
		{"ALG", func(h, _ map[string]any) { rename(h, "alg", "ALG") }},
		{"JWK", func(h, _ map[string]any) { rename(h, "jwk", "JWK") }},
		{"JTI", func(_, c map[string]any) { rename(c, "jti", "JTI") }},
		{"HTM", func(_, c map[string]any) { rename(c, "htm", "HTM") }},
		{"HTU", func(_, c map[string]any) { rename(c, "htu", "HTU") }},
		{"Htu beside htu of another host", func(_, c map[string]any) { c["htu"], c["Htu"] = "http://evil.example/todos", c["htu"] }},
		{"IAT", func(_, c map[string]any) { rename(c, "iat", "IAT") }},
		{"ATH", func(_, c map[string]any) { rename(c, "ath", "ATH") }},
	} {
		p := k.Proof(t, "GET", dpopURL, tok, authtest.WithProofEdit(tc.edit))
		if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, p)); w.Code != 401 || problem(t, w)["reason"] != middleware.ReasonDPoPProof {
			t.Errorf("%s: %d %s, want 401 %s", tc.name, w.Code, w.Body, middleware.ReasonDPoPProof)
		}
	}
	// The real names still pass, null ones do not.
	if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, k.Proof(t, "GET", dpopURL, tok))); w.Code != 200 {
		t.Errorf("a good proof: %d %s", w.Code, w.Body)
	}
	for _, name := range []string{"jti", "htm", "htu", "iat", "ath"} {
		p := k.Proof(t, "GET", dpopURL, tok, authtest.WithProofEdit(func(_, c map[string]any) { c[name] = nil }))
		if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, p)); w.Code != 401 {
			t.Errorf("%s null: %d %s", name, w.Code, w.Body)
		}
	}
}

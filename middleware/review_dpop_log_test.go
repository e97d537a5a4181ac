package middleware_test

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// TestReviewDPoPLogsNoProofValues: a refused proof's parts stay out of the
// log and of Outcome.Err. encoding/json quotes, in an UnmarshalTypeError,
// a number it cannot store, digit for digit: a proof whose header or
// claims were such a number, or whose iat was, was copied into the log.
func TestReviewDPoPLogsNoProofValues(t *testing.T) {
	is := authtest.NewIssuer(t)
	var logs bytes.Buffer
	var outcomes []string
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, func(c *middleware.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.OnOutcome = func(o middleware.Outcome) {
			if o.Err != nil {
				outcomes = append(outcomes, o.Err.Error())
			}
		}
	})
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	const secret = "31415926535897932384626433832795028841971693993751"
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	good := strings.Split(k.Proof(t, "GET", dpopURL, tok), ".")
	for name, proof := range map[string]string{
		"header a number":       b64(secret) + "." + good[1] + "." + good[2],
		"header an array of it": b64("["+secret+"]") + "." + good[1] + "." + good[2],
		// Signed: the claims are read after the signature.
		"claims a number": signedClaims(t, k, good[0], secret),
		"iat a huge number": k.Proof(t, "GET", dpopURL, tok, authtest.WithProofEdit(func(_, c map[string]any) {
			c["iat"] = rawNumber(secret + "e999")
		})),
		"jti a number": k.Proof(t, "GET", dpopURL, tok, authtest.WithProofEdit(func(_, c map[string]any) {
			c["jti"] = rawNumber(secret)
		})),
	} {
		logs.Reset()
		outcomes = outcomes[:0]
		w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, proof))
		if w.Code != 401 {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
		if strings.Contains(logs.String(), secret[:20]) || strings.Contains(strings.Join(outcomes, "\n"), secret[:20]) {
			t.Errorf("%s: the proof's value is in the log or the outcome:\n%s%s", name, logs.String(), outcomes)
		}
	}
}

// TestReviewDPoPLogsNoJWKValues: the proof's jwk members kty and crv were
// quoted in the log (by this package and by jwkset) when not accepted.
func TestReviewDPoPLogsNoJWKValues(t *testing.T) {
	is := authtest.NewIssuer(t)
	var logs bytes.Buffer
	a := dpopAuthenticator(t, is, middleware.DPoPAllowed, func(c *middleware.Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	k := authtest.NewDPoPKey(t, "ES256")
	tok := is.MintDPoP(t, "alice", k)
	const marker = "c2VjcmV0LXZhbHVlLWZyb20tdGhlLXByb29m"
	for name, edit := range map[string]func(jwk map[string]any){
		"kty":    func(jwk map[string]any) { jwk["kty"] = marker },
		"EC crv": func(jwk map[string]any) { jwk["crv"] = marker },
		"OKP crv": func(jwk map[string]any) {
			jwk["kty"], jwk["crv"] = "OKP", marker
			delete(jwk, "y")
		},
	} {
		logs.Reset()
		p := k.Proof(t, "GET", dpopURL, tok, authtest.WithProofEdit(func(h, _ map[string]any) { edit(h["jwk"].(map[string]any)) }))
		if w := do(a, dpopRequest("GET", "/todos", "DPoP", tok, p)); w.Code != 401 {
			t.Errorf("%s: %d %s", name, w.Code, w.Body)
		}
		if strings.Contains(logs.String(), marker) {
			t.Errorf("%s: the jwk's value is in the log:\n%s", name, logs.String())
		}
	}
}

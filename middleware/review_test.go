package middleware

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

// Findings of the attacker review of the single-pass verifier, each a
// test that failed before its fix.

// TestForgedPayloadNotDecoded: the payload of a token is decoded only
// after its signature verified, so a forged token of deeply nested JSON
// (refused tokens are never cached, and decoding 16 KiB of it costs tens
// of times a valid verification) is refused for its signature without
// being read.
func TestForgedPayloadNotDecoded(t *testing.T) {
	is := authtest.NewIssuer(t)
	v := newTestVerifier(t, is, nil)
	k := is.KeyFor("RS256")
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"` + k.KID + `"}`))
	for name, payload := range map[string]string{
		"deep arrays":  `{"x":` + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + `}`,
		"not JSON":     `{"x":`,
		"claim type":   `{"exp":"1"}`,
		"many numbers": `{"x":[` + strings.Repeat("1.5e300,", 1000) + `0]}`,
	} {
		tok := header + "." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".AAAA"
		if _, err := v.verify(context.Background(), tok); Reason(err) != ReasonSignature {
			t.Errorf("%s: %v, want a refusal for the signature", name, err)
		}
	}
	long := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","x":"` + strings.Repeat("a", 2000) + `"}`))
	if _, err := v.verify(context.Background(), long+".e30.AAAA"); Reason(err) != ReasonBadToken || !strings.Contains(err.Error(), "header") {
		t.Errorf("a %d-character header: %v, want it refused as malformed", len(long), err)
	}
}

// TestVerifyOneSpelling: encoding/base64 skips CR and LF even in strict
// mode; verify refuses them itself, so a signed token has one spelling
// whichever caller hands it over.
func TestVerifyOneSpelling(t *testing.T) {
	is := authtest.NewIssuer(t)
	v := newTestVerifier(t, is, nil)
	good := signCompact(t, is.KeyFor("RS256"), `{"alg":"RS256","kid":"`+is.KeyFor("RS256").KID+`"}`, mustMarshal(fuzzClaims(is)))
	if _, err := v.verify(context.Background(), good); err != nil {
		t.Fatalf("control: %v", err)
	}
	i := strings.LastIndexByte(good, '.') + 10
	for _, ins := range []string{"\n", "\r", "\r\n", " "} {
		for _, tok := range []string{good[:i] + ins + good[i:], good + ins} {
			if _, err := v.verify(context.Background(), tok); Reason(err) != ReasonBadToken {
				t.Errorf("the token with %q in its signature: %v", ins, err)
			}
		}
	}
}

// TestMalformedCauseQuotesNoToken: encoding/json's error for a number too
// big for float64 quotes the whole number, which came from the token; the
// logged cause must give its offset instead.
func TestMalformedCauseQuotesNoToken(t *testing.T) {
	is := authtest.NewIssuer(t)
	var logs bytes.Buffer
	v := newTestVerifier(t, is, func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(&logs, nil)) })
	k := is.KeyFor("RS256")
	digits := "1" + strings.Repeat("9", 4000)
	tok := signCompact(t, k, `{"alg":"RS256","kid":"`+k.KID+`"}`, strings.Replace(mustMarshal(fuzzClaims(is)), "{", `{"x":`+digits+`,`, 1))
	_, err := v.verify(context.Background(), tok)
	if Reason(err) != ReasonBadToken {
		t.Fatalf("got %v, want malformed_token", err)
	}
	if msg := err.Error(); strings.Contains(msg, digits[:64]) || len(msg) > 300 {
		t.Errorf("the cause quotes the token's number (%d bytes): %.200s", len(msg), msg)
	}
}

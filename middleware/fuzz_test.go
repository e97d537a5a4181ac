package middleware

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
)

func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer a.b.c", "bearer x", "Basic x", "Bearer a b", "Bearer", "Bearer ", "Bearer  x==", "Bearer =", "", strings.Repeat(".", 1<<12), "Bearer\tx", "Bearer é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := parseBearer(h)
		if err != nil {
			if tok != "" {
				t.Fatalf("error with token %q", tok)
			}
			return
		}
		if tok == "" || strings.ContainsAny(tok, " \t\r\n,;\"") || !isB64Token(tok) {
			t.Fatalf("accepted %q as %q", h, tok)
		}
		if !strings.HasSuffix(h, tok) || !strings.EqualFold(h[:6], "bearer") {
			t.Fatalf("token %q is not the tail of %q", tok, h)
		}
	})
}

// FuzzVerify feeds arbitrary strings to the JWT verifier with a real key
// set: it must never panic and never accept anything, since the fuzzer
// cannot forge an Ed25519 signature.
func FuzzVerify(f *testing.F) {
	seeds := []string{
		"eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIn0.eyJzdWIiOiJhIn0.c2ln",
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.",
		"a.b.c", "..", "eyJ.eyJ.", "e30.e30.e30",
		"eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwiY3JpdCI6WyJ4Il19.eyJleHAiOiIxIn0.AA",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	cfg := &Config{Issuer: "https://issuer.example", Audiences: []string{"api"}}
	cfg.setDefaults()
	ks, err := newKeySource("https://issuer.example/jwks", cfg)
	if err != nil {
		f.Fatal(err)
	}
	keys, _, err := parseJWKS([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","kid":"k1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	if err != nil || len(keys) != 1 {
		f.Fatal(err)
	}
	_ = ks.store.KeyReplaceAll(context.Background(), keys)
	ks.loaded.Store(true)
	ks.limiter.SetBurst(0) // never fetch while fuzzing
	v := newJWTVerifier(cfg, ks)
	f.Fuzz(func(t *testing.T, token string) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if p, err := v.verify(ctx, token); err == nil {
			t.Fatalf("accepted %q as %+v", token, p)
		}
	})
}

// FuzzParseJWKS: a key set from the network never panics the parser, and
// every key it keeps is usable for signatures.
func FuzzParseJWKS(f *testing.F) {
	for _, s := range []string{
		`{"keys":[]}`, `{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`, `{"keys":[{"kty":"oct","k":"AAAA"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","use":"enc"}]}`, `{}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, _, err := parseJWKS(b)
		if err != nil {
			return
		}
		for _, k := range keys {
			m := k.Marshal()
			if m.KTY == jwkset.KtyOct || (m.USE != "" && m.USE != jwkset.UseSig) {
				t.Fatalf("kept unusable key %+v", m)
			}
		}
	})
}

// FuzzLooksLikeJWS: the hybrid-mode router never panics, and only sends
// three-segment tokens to the local verifier.
func FuzzLooksLikeJWS(f *testing.F) {
	for _, s := range []string{"eyJhbGciOiJSUzI1NiJ9.e30.sig", "a.b.c.d.e", "opaque", "e30.e30.e30", "..", "eyJhbGciOm51bGx9.x.y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		if looksLikeJWS(token) && strings.Count(token, ".") != 2 {
			t.Fatalf("%q routed to the JWT verifier", token)
		}
	})
}

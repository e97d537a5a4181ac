package middleware

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/middleware/authtest"
)

func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer a.b.c", "bearer x", "Basic x", "Bearer a b", "Bearer", "Bearer ", "Bearer  x==", "Bearer =", "", strings.Repeat(".", 1<<12), "Bearer\tx", "Bearer é", "Bearer  ", "Bearer x y", "BEARER x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		// splitBearer's shortcut for "Bearer " answers as the general path.
		fast, ferr := splitBearer(h)
		slow, serr := splitScheme(h)
		if fast != slow || ferr != serr {
			t.Fatalf("splitBearer(%q) = %q, %v; the general path says %q, %v", h, fast, ferr, slow, serr)
		}
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

// FuzzVerifyMatchesParser feeds arbitrary tokens to verify and to
// golang-jwt's parser (refVerify) with the same key set and settings: their
// verdicts, reasons and descriptions must agree. The fuzzer cannot forge a
// signature, so this explores structure, encoding and header checks;
// FuzzVerifySignedMatchesParser reaches the claims.
func FuzzVerifyMatchesParser(f *testing.F) {
	is := authtest.NewIssuer(f)
	v := newTestVerifier(f, is, nil)
	valid := is.Sign(f, "EdDSA", fuzzClaims(is), nil)
	parts := strings.Split(valid, ".")
	for _, s := range []string{
		valid, parts[0] + "." + parts[1] + ".", parts[0] + ".bnVsbA." + parts[2],
		is.Sign(f, "ES256", fuzzClaims(is), map[string]any{"kid": nil, "crit": []string{"x"}}),
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", "e30.e30.e30", "bnVsbA.bnVsbA.", "..", "a.b.c.d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		sameVerdict(t, v, token)
	})
}

// FuzzVerifySignedMatchesParser signs an arbitrary header and payload with
// the issuer's Ed25519 key, so that tokens whose header names that key
// pass the signature check, and compares verify with golang-jwt's parser
// on them, claims checks included.
func FuzzVerifySignedMatchesParser(f *testing.F) {
	is := authtest.NewIssuer(f)
	v := newTestVerifier(f, is, nil)
	key := is.KeyFor("EdDSA")
	header := `{"alg":"EdDSA","kid":"` + key.KID + `","typ":"at+jwt"}`
	payload := mustMarshal(fuzzClaims(is))
	for _, s := range [][2]string{
		{header, payload},
		{`{"alg":"EdDSA"}`, payload},
		{header, strings.Replace(payload, `"sub"`, `"cnf":{},"sub"`, 1)},
		{header, strings.Replace(payload, `"exp":`, `"exp":"1",`+`"x":`, 1)},
		{header, `{"sub":"a","aud":["` + authtest.Audience + `",1],"exp":1e300}`},
		{header, " null "},
		{`{"alg":"EdDSA","kid":"` + key.KID + `","typ":"JWT","crit":null}`, `[]`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, header, payload string) {
		sameVerdict(t, v, signCompact(t, key, header, payload))
	})
}

// fuzzClaims are valid claims at testNow, the fixed clock of the
// verifiers under fuzzing.
func fuzzClaims(is *authtest.Issuer) jwt.MapClaims {
	c := is.Claims("alice")
	c["iat"], c["nbf"], c["exp"] = testNow.Unix(), testNow.Unix(), testNow.Add(time.Minute).Unix()
	return c
}

// FuzzDecodeObject: decodeObject, which decodes into an empty interface,
// makes of every input what json.Unmarshal into a map[string]any makes of
// it, error or map, save that it refuses any JSON value other than an
// object or null, which the map decoding refuses too.
func FuzzDecodeObject(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":[true,null,"x",{"c":1.5e3}],"a":"dup","A":2}`, `null`, ` null `, `{}`, `[]`, `"s"`, `1`, `true`,
		`{"n":1e400}`, "{\"s\":\"\\ud800\u00e9\xff\"}", `{"a":1}{}`, `{"a":1} `, `{"a":`, ``, `{"a":[[[[[]]]]]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, gotErr := decodeObject(data)
		var want map[string]any
		wantErr := json.Unmarshal(data, &want)
		if (gotErr == nil) != (wantErr == nil) {
			t.Fatalf("decodeObject: %v; json.Unmarshal into a map: %v", gotErr, wantErr)
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("decodeObject: %#v; json.Unmarshal into a map: %#v", got, want)
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

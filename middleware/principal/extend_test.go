package principal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/middleware/principal"
)

// secretToken stands for a real access token: it must never be printed.
const secretToken = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJl"

func TestRawTokenNeverPrinted(t *testing.T) {
	p := principal.Principal{Subject: "alice", Scopes: []string{"read"}, Claims: map[string]any{"tenant": "claim-value-kept-private"}}.WithToken(secretToken)
	if got := p.RawToken(); got != secretToken {
		t.Fatalf("RawToken = %q, want the token", got)
	}
	var logs bytes.Buffer
	slog.New(slog.NewTextHandler(&logs, nil)).Info("x", "p", p, "ptr", &p)
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "p", p, "ptr", &p)
	outputs := map[string]string{"slog": logs.String()}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d", "%T", "%p"} {
		outputs[verb] = fmt.Sprintf(verb, p)
		outputs[verb+" ptr"] = fmt.Sprintf(verb, &p)
		outputs[verb+" slice"] = fmt.Sprintf(verb, []principal.Principal{p})
		outputs[verb+" in struct"] = fmt.Sprintf(verb, struct{ P principal.Principal }{p})
		outputs[verb+" in unexported field"] = fmt.Sprintf(verb, struct{ p principal.Principal }{p})
		ctx := principal.With(context.Background(), p)
		outputs[verb+" context"] = fmt.Sprintf(verb, ctx)
		outputs[verb+" derived context"] = fmt.Sprintf(verb, context.WithValue(ctx, otherKey{}, 1))
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	outputs["json"] = string(b)
	for name, out := range outputs {
		// A Principal's claims may be printed (they are in its JSON); a
		// context's fields may not.
		if strings.Contains(name, "context") && strings.Contains(out, "claim-value-kept-private") {
			t.Errorf("%s output contains a claim: %s", name, out)
		}
		for _, part := range strings.Split(secretToken, ".") {
			if strings.Contains(out, part) {
				t.Errorf("%s output contains the token: %s", name, out)
			}
		}
	}
	if !strings.Contains(outputs["%v"], "sub=alice") || !strings.Contains(logs.String(), "alice") {
		t.Errorf("outputs lost the subject: %q / %q", outputs["%v"], logs.String())
	}
}

func TestDecodeClaims(t *testing.T) {
	type custom struct {
		Tenant  string   `json:"tenant"`
		Big     int64    `json:"big"`
		Roles   []string `json:"roles"`
		Any     any      `json:"any"`
		Missing string   `json:"missing"`
	}
	raw := []byte(`{"sub":"alice","tenant":"acme","big":9007199254740993,"roles":["a","b"],"any":9007199254740995}`)
	tests := []struct {
		name    string
		p       principal.Principal
		want    custom
		wantErr bool
	}{
		{
			name: "raw JSON from the middleware",
			p:    principal.Principal{Subject: "alice", Claims: map[string]any{"big": float64(9007199254740993)}}.WithClaimsJSON(raw),
			want: custom{Tenant: "acme", Big: 9007199254740993, Roles: []string{"a", "b"}, Any: json.Number("9007199254740995")},
		},
		{
			name: "hand-built principal, as handler tests inject",
			p:    principal.Principal{Subject: "alice", Claims: map[string]any{"tenant": "acme", "big": int64(9007199254740993)}},
			want: custom{Tenant: "acme", Big: 9007199254740993},
		},
		{name: "no claims", p: principal.Principal{Subject: "alice"}, wantErr: true},
		{name: "wrong type", p: principal.Principal{Subject: "alice"}.WithClaimsJSON([]byte(`{"big":"x"}`)), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got custom
			err := principal.DecodeClaims(tt.p, &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("DecodeClaims error = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", tt.want) {
				t.Fatalf("got %#v\nwant %#v", got, tt.want)
			}
		})
	}
	// The decoded value is the caller's own: changing it changes no claim.
	p := principal.Principal{Subject: "alice"}.WithClaimsJSON(raw)
	var m map[string]any
	if err := principal.DecodeClaims(p, &m); err != nil {
		t.Fatal(err)
	}
	m["tenant"] = "evil"
	var again custom
	_ = principal.DecodeClaims(p, &again)
	if again.Tenant != "acme" {
		t.Fatalf("tenant changed to %q through a decoded map", again.Tenant)
	}
	if n, ok := m["big"].(json.Number); !ok || n.String() != "9007199254740993" {
		t.Fatalf("big decoded into a map as %#v, want json.Number 9007199254740993", m["big"])
	}
}

func TestHasAnyScope(t *testing.T) {
	p := principal.Principal{Subject: "a", Scopes: []string{"read", "openid"}}
	tests := []struct {
		scopes []string
		want   bool
	}{
		{[]string{"read"}, true},
		{[]string{"write", "read"}, true},
		{[]string{"write", "admin"}, false},
		{[]string{"rea"}, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := p.HasAnyScope(tt.scopes...); got != tt.want {
			t.Errorf("HasAnyScope(%q) = %v, want %v", tt.scopes, got, tt.want)
		}
	}
}

// TestDecodeClaimsRefusesFoldedDuplicates: encoding/json matches member
// names ignoring case, last one winning, so a payload naming "sub" and
// "SUB" would hand a handler another subject than the verified one.
// DecodeClaims refuses such claims instead.
func TestDecodeClaimsRefusesFoldedDuplicates(t *testing.T) {
	type claims struct {
		Sub    string `json:"sub"`
		Tenant string `json:"tenant"`
		Realm  struct {
			Roles []string `json:"roles"`
		} `json:"realm_access"`
	}
	tests := []struct {
		name, raw string
		ok        bool
	}{
		{"plain", `{"sub":"alice","tenant":"acme","realm_access":{"roles":["a"]}}`, true},
		{"distinct names", `{"sub":"alice","subject":"x","Tenant2":"y"}`, true},
		{"SUB after sub", `{"sub":"alice","SUB":"admin"}`, false},
		{"Tenant after tenant", `{"sub":"alice","tenant":"acme","Tenant":"evil"}`, false},
		{"exact duplicate", `{"sub":"alice","sub":"admin"}`, false},
		{"long s folds to s", `{"sub":"alice","ſub":"admin"}`, false},
		{"Kelvin sign folds to k", `{"sub":"alice","k":"1","\u212a":"2"}`, false},
		{"nested duplicate", `{"sub":"alice","realm_access":{"roles":["a"],"ROLES":["admin"]}}`, false},
		{"duplicate inside an array", `{"sub":"alice","list":[{"a":1,"A":2}]}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := principal.Principal{Subject: "alice"}.WithClaimsJSON([]byte(tt.raw))
			var c claims
			err := principal.DecodeClaims(p, &c)
			if tt.ok && err != nil {
				t.Fatalf("DecodeClaims: %v", err)
			}
			if !tt.ok && err == nil {
				t.Fatalf("DecodeClaims accepted %s, decoding sub %q tenant %q", tt.raw, c.Sub, c.Tenant)
			}
		})
	}
}

// otherKey is a context key of the tests' own.
type otherKey struct{}

package introspection

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		`{"active":true}`,
		`{"active":false}`,
		`{"active":"true"}`,
		`{"active":1}`,
		`{"active":null}`,
		`{"ACTIVE":true}`,
		`{"active":false,"active":true}`,
		`{"active":true,"active":false}`,
		`{"\u0061ctive":true}`,
		`{"active":true,"aud":"todo-api"}`,
		`{"active":true,"aud":["todo-api","other"]}`,
		`{"active":true,"aud":[1,2]}`,
		`{"active":true,"aud":{"a":1}}`,
		`{"active":true,"exp":"1700000000"}`,
		`{"active":true,"exp":1.7e9,"iat":1e400,"nbf":-0}`,
		`{"active":true,"exp":99999999999999999999999}`,
		`{"active":true,"scope":"a b c","sub":"alice","iss":"x","jti":"j","client_id":"c","username":"u","token_type":"Bearer"}`,
		`{"active":true,"sub":null,"scope":7}`,
		`[true]`, `null`, `true`, `"active"`, ``, `{`, `{"active":tru}`,
		"{\"active\":true,\"sub\":\"\xff\"}",
		`{"active":true,"x":` + strings.Repeat("[", 10001) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := parseResponse(body)
		if err != nil {
			if resp != nil || !errors.Is(err, ErrMalformedResponse) {
				t.Fatalf("parseResponse = %+v, %v", resp, err)
			}
			return
		}
		if resp == nil {
			t.Fatal("parseResponse = nil, nil")
		}
		// Independent check: active only if the object's "active" member
		// is the JSON boolean true.
		var m map[string]any
		isTrue := json.Unmarshal(body, &m) == nil && m["active"] == true
		if resp.Active != isTrue {
			t.Fatalf("Active = %v for %q", resp.Active, body)
		}
		if !resp.Active && (resp.Sub != "" || resp.Claims != nil || resp.Exp != nil || resp.Aud != nil) {
			t.Fatalf("inactive answer trusted: %+v", resp)
		}
		if resp.Active && len(resp.Claims) != len(m) {
			t.Fatalf("Claims = %v, want every member of %v", resp.Claims, m)
		}
	})
}

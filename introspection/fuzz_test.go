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
		`{"active":true,"token_type":"Bearer","token_use":"refresh_token"}`,
		`{"active":true,"token_type":"refresh_token"}`,
		`{"active":true,"token_use":7,"typ":"Refresh"}`,
		`[true]`, `null`, `true`, `"active"`, ``, `{`, `{"active":tru}`,
		"{\"active\":true,\"sub\":\"\xff\"}",
		`{"active":true,"x":` + strings.Repeat("[", 10001) + `}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := parseResponse(body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		if err != nil {
			if resp != nil || (!errors.Is(err, ErrMalformedResponse) && !errors.Is(err, ErrNotAccessToken)) {
				t.Fatalf("parseResponse = %+v, %v", resp, err)
			}
			if errors.Is(err, ErrNotAccessToken) && m["active"] != true {
				t.Fatalf("inactive answer judged for its kind: %v", err)
			}
			return
		}
		if resp == nil {
			t.Fatal("parseResponse = nil, nil")
		}
		// Independent check: active only if the object's "active" member
		// is the JSON boolean true.
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
		// Independent check: an active answer whose token_use is a string
		// other than access_token is never accepted.
		if use, ok := m["token_use"].(string); resp.Active && ok && use != "" && !strings.EqualFold(use, "access_token") {
			t.Fatalf("token_use %q accepted", use)
		}
	})
}

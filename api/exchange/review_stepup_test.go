package exchange

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestReviewStepUpLoginNever500: /login answers any query 302 (a sign-in
// starts) or 400 (malformed), never 500. acr_values made of characters
// that encoding/json escapes (<, >, &: six bytes each in the sealed
// transaction) pass stepUpParams, but the transaction cookie then exceeds
// 4 KB and /login answers 500 "internal error".
func TestReviewStepUpLoginNever500(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	lt256 := strings.Repeat("<", 256)
	amp := strings.Repeat("&", 255)
	cases := map[string]url.Values{
		"acr_values of < alone":                      {"acr_values": {lt256 + " " + strings.Repeat("<", 255)}},
		"acr_values of & alone":                      {"acr_values": {strings.Repeat("&", 256) + " " + amp}},
		"returnTo of & and a short acr":              {"returnTo": {"/?" + strings.Repeat("a=1&", 200)}, "acr_values": {"urn:tollgate:acr:2fa"}},
		"returnTo of & alone (before step-up too)":   {"returnTo": {"/?" + strings.Repeat("&", 1022)}},
		"returnTo of & and acr_values of <, longest": {"returnTo": {"/?" + strings.Repeat("&", 1022)}, "acr_values": {lt256 + " " + strings.Repeat("<", 255)}, "max_age": {"2147483647"}},
		"returnTo and acr_values, plain":             {"returnTo": {"/" + strings.Repeat("a", 1023)}, "acr_values": {strings.Repeat("b", 256) + " " + strings.Repeat("c", 255)}},
	}
	for name, q := range cases {
		t.Run(name, func(t *testing.T) {
			r := e.newBrowser().get(loginPath + "?" + q.Encode())
			if r.status != http.StatusFound && r.status != http.StatusBadRequest {
				t.Errorf("GET /login?%.80s...: %d %.200s", q.Encode(), r.status, r.body)
			}
		})
	}
}

package devidp_test

import (
	"net/http"
	"net/url"
	"regexp"
	"testing"

	"golang.org/x/oauth2"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
)

// TestReviewStepUpProofIsSingleUseAndBounded: the second step's proof
// ("the password was right") should let one person try a few codes and
// finish once, as a real second factor would. Today it is good for any
// number of wrong codes for five minutes (a six-digit code falls to a
// brute force well within that) and for any number of successful
// completions, each minting a new authorization code.
func TestReviewStepUpProofIsSingleUseAndBounded(t *testing.T) {
	ts := mustStart(t, nil)
	conf := oauthConfig(ts)
	target := conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("acr_values", devidp.ACRTwoFactor))
	browser := devidptest.Browser(redirectURL)
	page := readAll(t, mustDo(t, browser, mustRequest(t, http.MethodPost, target, url.Values{"username": {"alice"}, "password": {"alice"}})))
	m := regexp.MustCompile(`name="proof" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no second-step form: %s", page)
	}
	proof := m[1]
	post := func(code string) (*http.Response, string) {
		resp := mustDo(t, browser, mustRequest(t, http.MethodPost, target, url.Values{"username": {"alice"}, "proof": {proof}, "code": {code}}))
		return resp, readAll(t, resp)
	}

	const tries = 50
	for i := range tries {
		post("00" + string(rune('0'+i/10)) + "00" + string(rune('0'+i%10)))
	}
	if resp, _ := post(devidp.DefaultSecondFactor); resp.StatusCode == http.StatusSeeOther {
		t.Errorf("after %d wrong codes under one proof, the right code still completes the sign-in: the second step has no attempt limit", tries)
	}

	// A fresh proof, used twice.
	page = readAll(t, mustDo(t, browser, mustRequest(t, http.MethodPost, target, url.Values{"username": {"alice"}, "password": {"alice"}})))
	proof = regexp.MustCompile(`name="proof" value="([^"]*)"`).FindStringSubmatch(page)[1]
	codes := 0
	for range 2 {
		if resp, _ := post(devidp.DefaultSecondFactor); resp.StatusCode == http.StatusSeeOther {
			loc, _ := url.Parse(resp.Header.Get("Location"))
			if loc.Query().Get("code") != "" {
				codes++
			}
		}
	}
	if codes > 1 {
		t.Errorf("one second-step proof completed the sign-in %d times (one authorization code each)", codes)
	}
}

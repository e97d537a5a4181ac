package e2e

import (
	"fmt"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/internal/devstack"
)

// TestReviewStepUpResumesForAnotherUser: alice confirms "Delete all" (two
// clicks, "delete all 1") for her own list; the step-up sends her to
// devidp, where the account that signs in is bob (a shared machine, a
// second account, a password manager's first suggestion). Back on the
// page the remembered action is finished for whoever is signed in now:
// bob's list is deleted without bob ever asking. The exchange accepts a
// step-up sign-in (acr_values given) as another subject, and the page
// resumes the action without checking that the person is the one who
// asked.
func TestReviewStepUpResumesForAnotherUser(t *testing.T) {
	requireChromium(t)
	st := startStackEnv(t, devstack.ModeJWT, 0, []string{"REQUIRE_ACR_FOR_DELETE_ALL=" + devidp.ACRTwoFactor})
	b := newBrowser(t, st)
	b.open()
	b.signIn("bob", "bob")
	b.add("Bob's precious todo")
	eval[bool](b, "mark the old document", `window.__e2eOld = true`)
	b.do("bob signs out", click("#sign-out"))
	b.waitFor("signed out", `location.href === `+jsString(st.ExchangeURL+"/")+` && `+idleJS+` && !document.getElementById('signed-out').hidden`)

	b.signIn("alice", "alice")
	b.add("Alice's todo")
	step := "alice deletes all her todos"
	b.deleteAllTwice(step, true)
	b.waitFor(step+": devidp's form", fmt.Sprintf(`location.origin === %q && document.querySelector('input[name=password]')`, st.IssuerURL))
	b.do(step+": bob's account signs in",
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "bob"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "bob"+kb.Enter),
	)
	b.waitFor(step+": the second step", `document.querySelector('input[name=code]')`)
	b.do(step+": the code", chromedp.SendKeys(chromedp.CSS(`input[name=code]`), devidp.DefaultSecondFactor+kb.Enter))
	b.waitFor(step+": back on the page", fmt.Sprintf(`location.href === %q && %s && !document.getElementById('app').hidden`, st.ExchangeURL+"/", idleJS))
	b.reload()
	s := b.state("bob's list")
	t.Logf("after alice's step-up the page shows %+v", s)
	if s.User != "Bob Example" || len(s.Titles) != 1 {
		t.Errorf("want bob signed in with his one todo intact: alice's \"Delete all\" must not be finished for bob, who signed in at the step-up")
	}
}

package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/internal/devstack"
)

// deleteAllTwice clicks "Delete all" twice: the first click arms it. With
// leaves, the page is expected to go elsewhere: the document is marked so
// that its idle state is not taken for the next one's.
func (b *browser) deleteAllTwice(step string, leaves bool) {
	b.t.Helper()
	b.do(step+": arm Delete all", click("#delete-all"))
	b.waitFor(step+": Delete all is armed", `document.getElementById('delete-all').dataset.armed === '1'`)
	if leaves {
		eval[bool](b, step+": mark the document", `window.__e2eOld = true`)
	}
	b.do(step+": click Delete all again", click("#delete-all"))
}

// TestStepUp is RFC 9470 in the browser: with REQUIRE_ACR_FOR_DELETE_ALL,
// alice, signed in with her password alone, deletes all her todos; the
// todo API answers 401 insufficient_user_authentication; the page sends
// her through devidp's second sign-in step and back to where she was, and
// the deletion goes through. Her stepped-up sign-in then serves the next
// "Delete all" without another detour, and clearing the completed todos
// never needed one.
func TestStepUp(t *testing.T) {
	requireChromium(t)
	st := startStackEnv(t, devstack.ModeJWT, 0, []string{
		"REQUIRE_ACR_FOR_DELETE_ALL=" + devidp.ACRTwoFactor,
		"MAX_AUTH_AGE_FOR_DELETE_ALL=300",
	})
	b := newBrowser(t, st)
	b.open()
	b.signIn("alice", "alice")
	b.add("Keep the receipts")
	b.add("File the taxes")
	b.add("Done already")
	b.toggle("Done already")

	// Not deleting everything: no step-up.
	b.do("clear completed", click("#clear-completed"))
	b.waitFor("clear completed", idleJS+` && document.querySelectorAll('#todo-list .todo').length === 2`)
	if loc := eval[string](b, "still on the page", `location.href`); loc != st.ExchangeURL+"/" {
		t.Fatalf("clearing the completed todos left the page for %s", loc)
	}

	// The filter in the URL is part of "where she was".
	b.do("show the active todos", click(`a[data-filter="active"]`))
	b.waitFor("the active filter", `location.hash === '#/active'`)

	step := "delete all, signed in with a password"
	b.deleteAllTwice(step, true)
	b.waitFor(step+": devidp asks for a stronger sign-in", fmt.Sprintf(
		`location.origin === %q && document.querySelector('input[name=password]') && document.querySelector('.step')`, st.IssuerURL))
	authURL := eval[string](b, step, `location.href`)
	for _, want := range []string{"acr_values=urn%3Atollgate%3Aacr%3A2fa", "max_age=300"} {
		if !strings.Contains(authURL, want) {
			t.Errorf("the authorization request %s lacks %s", authURL, want)
		}
	}
	b.do(step+": the password",
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "alice"+kb.Enter),
	)
	b.waitFor(step+": the second step", `document.querySelector('input[name=code]')`)
	b.do(step+": the code", chromedp.SendKeys(chromedp.CSS(`input[name=code]`), devidp.DefaultSecondFactor+kb.Enter))
	b.waitFor(step+": back where she was, all deleted", fmt.Sprintf(
		`location.href === %q && %s && !document.getElementById('app').hidden && document.querySelectorAll('#todo-list .todo').length === 0`,
		st.ExchangeURL+"/#/active", idleJS))
	got := b.state(step)
	if got.Error != "" || got.User != "Alice Example" {
		t.Fatalf("%s: the page shows %+v", step, got)
	}
	if notice := eval[string](b, step, `document.getElementById('notice').textContent`); !strings.Contains(notice, "every todo was deleted") {
		t.Errorf("%s: the notice reads %q", step, notice)
	}
	b.reload()
	b.wantState("after the step-up, reloaded", nil, nil, "")

	// The stepped-up sign-in is good for a while: no second detour.
	b.add("Start over")
	step = "delete all, stepped up"
	b.deleteAllTwice(step, false)
	b.waitFor(step, idleJS+` && document.querySelectorAll('#todo-list .todo').length === 0`)
	if loc := eval[string](b, step, `location.href`); !strings.HasPrefix(loc, st.ExchangeURL+"/") {
		t.Fatalf("%s: the page left for %s", step, loc)
	}
	if s := b.state(step); s.Error != "" {
		t.Fatalf("%s: error %q", step, s.Error)
	}
}

// TestStepUpUnmet: when signing in again cannot give what the todo API
// asks for (an acr devidp never issues), the page goes to sign in once,
// then says so, instead of sending the person round in circles; nothing
// is deleted.
func TestStepUpUnmet(t *testing.T) {
	requireChromium(t)
	st := startStackEnv(t, devstack.ModeJWT, 0, []string{"REQUIRE_ACR_FOR_DELETE_ALL=urn:example:acr:hardware-key"})
	b := newBrowser(t, st)
	b.open()
	b.signIn("alice", "alice")
	b.add("Precious")

	step := "delete all"
	b.deleteAllTwice(step, true)
	b.waitFor(step+": devidp's form", fmt.Sprintf(`location.origin === %q && document.querySelector('input[name=password]')`, st.IssuerURL))
	b.do(step+": sign in",
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "alice"+kb.Enter),
	)
	b.waitFor(step+": back, with an explanation", fmt.Sprintf(
		`location.href === %q && %s && !document.getElementById('error').hidden`, st.ExchangeURL+"/", idleJS))
	s := b.state(step)
	if !strings.Contains(s.Error, "not enough") || len(s.Titles) != 1 {
		t.Fatalf("%s: the page shows %+v", step, s)
	}
	// Nothing waits to be resumed: a reload deletes nothing.
	b.reload()
	b.wantState("reloaded", []string{"Precious"}, nil, "1 item left")
}

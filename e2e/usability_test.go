package e2e

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tollgate-dev/tollgate/internal/devstack"
)

// focusedJS describes the focused element, e.g. "INPUT#new-todo" or
// "BUTTON.edit in “Title”".
const focusedJS = `(() => {
	const e = document.activeElement;
	if (!e || e === document.body) return 'nothing';
	let s = e.tagName + (e.id ? '#' + e.id : '') + (e.classList.length ? '.' + [...e.classList].join('.') : '');
	const li = e.closest('.todo');
	if (li) s += ' in “' + li.querySelector('.todo-title').textContent + '”';
	return s;
})()`

// focusRingJS is true when the focused element shows that it has the
// focus: an outline, or a ring drawn by its form (the new-todo field).
const focusRingJS = `(() => {
	const e = document.activeElement;
	const ring = (el) => { const s = getComputedStyle(el); return (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none'; };
	return ring(e) || (e.form ? ring(e.form) : false);
})()`

// unnamedJS lists the visible controls without an accessible name: what a
// screen reader would announce as just "button" or "checkbox".
const unnamedJS = `[...document.querySelectorAll('a[href], button, input, select, textarea')]
	.filter((e) => e.offsetParent !== null || getComputedStyle(e).position === 'fixed')
	.filter((e) => {
		const labelled = (e.getAttribute('aria-labelledby') || '').split(/\s+/).filter(Boolean).map((id) => document.getElementById(id)).some((l) => l && l.textContent.trim());
		return !(e.getAttribute('aria-label') || '').trim() && !labelled && !(e.labels && [...e.labels].some((l) => l.textContent.trim())) && !e.textContent.trim() && !(e.getAttribute('title') || '').trim();
	})
	.map((e) => e.outerHTML.slice(0, 120))`

// press sends keys to whatever has the focus, as a person at a keyboard
// would.
func (b *browser) press(step, keys string) {
	b.t.Helper()
	b.do(step, chromedp.KeyEvent(keys))
}

func (b *browser) wantFocus(step, want string) {
	b.t.Helper()
	b.waitFor(step+": focus on "+want, fmt.Sprintf(`(%s) === %s`, focusedJS, jsString(want)))
	if !eval[bool](b, step, focusRingJS) {
		b.t.Errorf("%s: %s has the focus but shows no focus ring", step, want)
	}
}

// TestKeyboard manages todos with the keyboard alone, and checks that every
// control has a name and shows its focus. It also ends the session under
// the page (the refresh token cookie goes) and expects "Signed out" with a
// way to sign in again.
func TestKeyboard(t *testing.T) {
	requireChromium(t)
	st := startStack(t, devstack.ModeJWT, tokenTTL)
	b := newBrowser(t, st)
	b.do("desktop window", chromedp.EmulateViewport(1100, 800))
	b.open()
	if unnamed := eval[[]string](b, "names, signed out", unnamedJS); len(unnamed) > 0 {
		t.Errorf("controls without an accessible name: %q", unnamed)
	}
	b.signIn("alice", "alice")

	b.wantFocus("after sign-in", "INPUT#new-todo.new-todo")
	b.press("type and press Enter", "First"+kb.Enter)
	b.waitFor("Enter adds", idleJS+` && document.querySelectorAll('#todo-list .todo').length === 1`)
	b.press("type and press Enter", "Second"+kb.Enter)
	b.waitFor("Enter adds", idleJS+` && document.querySelectorAll('#todo-list .todo').length === 2`)
	b.wantFocus("after adding", "INPUT#new-todo.new-todo")
	if v := eval[string](b, "the field is emptied", `document.getElementById('new-todo').value`); v != "" {
		t.Errorf("after adding, the new-todo field holds %q", v)
	}
	if unnamed := eval[[]string](b, "names, signed in", unnamedJS); len(unnamed) > 0 {
		t.Errorf("controls without an accessible name: %q", unnamed)
	}

	b.press("Tab to the first todo", kb.Tab)
	b.wantFocus("Tab", "INPUT.toggle in “First”")
	b.press("Space toggles", " ")
	b.waitFor("Space toggles", idleJS+` && document.querySelector('#todo-list .todo .toggle').checked`)

	b.press("Tab to the edit button", kb.Tab)
	b.wantFocus("Tab", "BUTTON.icon-button.edit in “First”")
	b.press("Enter edits", kb.Enter)
	b.wantFocus("Enter edits", "INPUT.edit-input in “First”")
	b.press("Escape cancels", "zzz"+kb.Escape)
	b.waitFor("Escape cancels", idleJS+` && !document.querySelector('.edit-input')`)
	b.wantFocus("after Escape", "BUTTON.icon-button.edit in “First”")
	b.wantState("Escape changed nothing", []string{"First", "Second"}, []string{"First"}, "1 item left")

	b.press("Enter edits again", kb.Enter)
	b.wantFocus("Enter edits again", "INPUT.edit-input in “First”")
	b.press("Enter saves", " thing"+kb.Enter)
	b.waitFor("Enter saves", idleJS+` && !document.querySelector('.edit-input')`)
	b.wantState("Enter saved", []string{"First thing", "Second"}, []string{"First thing"}, "1 item left")

	b.press("Tab to delete", kb.Tab)
	b.wantFocus("Tab", "BUTTON.icon-button.destroy in “First thing”")
	b.press("Enter deletes", kb.Enter)
	b.waitFor("Enter deletes", idleJS+` && document.querySelectorAll('#todo-list .todo').length === 1`)
	b.wantFocus("after deleting", "BUTTON.icon-button.destroy in “Second”")
	b.reload()
	b.wantState("after a reload", []string{"Second"}, nil, "1 item left")

	// The session ends behind the page's back (here: the refresh token
	// cookie is gone, as when it expires). The next call gets a 401, the
	// refresh is refused, and the page says so and offers to sign in.
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, network.DeleteCookies, network.DeleteCookiesParams{Name: "refresh_token", URL: st.ExchangeURL + "/refreshtoken"}); err != nil {
		t.Fatal(err)
	}
	waitPastExpiry(t, b)
	refused := metric(t, st, "exchange_refreshes_total", `outcome="no_cookie"`)
	b.do("add after the session ended", chromedp.SendKeys(chromedp.CSS("#new-todo"), "Too late"+kb.Enter))
	b.waitFor("the page says signed out", idleJS+` && !document.getElementById('signed-out').hidden && document.getElementById('app').hidden`)
	// Once: a refused refresh is not retried.
	if got := metric(t, st, "exchange_refreshes_total", `outcome="no_cookie"`); got != refused+1 {
		t.Errorf("the page asked for a refresh %v times after the session ended; want once", got-refused)
	}
	if text := eval[string](b, "the message", `document.getElementById('signed-out').innerText`); !strings.Contains(text, "Sign in") {
		t.Errorf("the signed-out card reads %q; want a way to sign in", text)
	}
	b.signIn("alice", "alice")
	b.wantState("signed in again", []string{"Second"}, nil, "1 item left")
}

// TestPhone renders the page at the width of a phone, with touch and a long
// unbroken title, and checks nothing scrolls sideways or hides a control.
func TestPhone(t *testing.T) {
	requireChromium(t)
	st := startStack(t, devstack.ModeJWT, 0)
	b := newBrowser(t, st)
	b.do("phone viewport", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch))
	b.open()
	wantNoSidewaysScroll(b, "signed out")
	b.signIn("alice", "alice")
	if f := eval[string](b, "nothing focused", focusedJS); f != "nothing" {
		t.Errorf("on a touch screen %s has the focus after sign-in; its keyboard would cover the list", f)
	}
	b.add("Buy milk")
	b.add(strings.Repeat("Supercalifragilistic", 4))
	b.add("A title long enough to wrap onto a second line on a narrow phone screen")
	b.toggle("Buy milk")
	wantNoSidewaysScroll(b, "signed in with todos")
	// Touch screens have no hover: the buttons must show without it.
	hidden := eval[[]string](b, "buttons shown", `[...document.querySelectorAll('#todo-list button')].filter((e) => getComputedStyle(e).opacity === '0').map((e) => e.getAttribute('aria-label'))`)
	if len(hidden) > 0 {
		t.Errorf("buttons invisible without hover on a touch screen: %q", hidden)
	}
	b.do("tap delete", chromedp.Tap(row("Buy milk", "destroy")))
	b.waitFor("tap delete", idleJS+` && document.querySelectorAll('#todo-list .todo').length === 2`)
	b.edit("A title long enough to wrap onto a second line on a narrow phone screen", "Shorter")
	wantNoSidewaysScroll(b, "after editing")
}

func wantNoSidewaysScroll(b *browser, step string) {
	b.t.Helper()
	type box struct {
		ViewportWidth float64  `json:"viewportWidth"`
		ScrollWidth   float64  `json:"scrollWidth"`
		Outside       []string `json:"outside"`
		FontSize      float64  `json:"fontSize"`
	}
	got := eval[box](b, step, `(() => {
		const w = document.documentElement.clientWidth;
		const outside = [...document.querySelectorAll('body *')]
			.filter((e) => e.offsetParent !== null && !e.closest('.visually-hidden'))
			.filter((e) => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.left < -0.5 || r.right > w + 0.5); })
			.map((e) => e.tagName + (e.id ? '#' + e.id : '') + '.' + [...e.classList].join('.'));
		return {viewportWidth: w, scrollWidth: document.documentElement.scrollWidth, outside, fontSize: parseFloat(getComputedStyle(document.body).fontSize)};
	})()`)
	if got.ScrollWidth > got.ViewportWidth || len(got.Outside) > 0 {
		b.t.Errorf("%s: the page is %vpx wide in a %vpx viewport; elements past the edge: %q", step, got.ScrollWidth, got.ViewportWidth, got.Outside)
	}
	if got.FontSize < 16 {
		b.t.Errorf("%s: body text is %vpx; want at least 16px on a phone", step, got.FontSize)
	}
}

// TestSignInErrors checks that a failed or stale sign-in lands somewhere
// readable with a way forward, not a blank page or a console error.
func TestSignInErrors(t *testing.T) {
	requireChromium(t)
	st := startStack(t, devstack.ModeJWT, 0)
	b := newBrowser(t, st)

	// An error sent back to the page itself.
	q := url.Values{"error": {"access_denied"}, "error_description": {"<b>The user said no</b>"}}
	b.do("open /?error=…", chromedp.Navigate(st.ExchangeURL+"/?"+q.Encode()))
	b.waitFor("the error shows", idleJS+` && !document.getElementById('error').hidden`)
	s := b.state("the error shows")
	if !s.SignedOut || !strings.Contains(s.Error, "Sign-in was cancelled") || strings.Contains(s.Error, "The user said no") {
		t.Errorf("after /?error=…: %+v; want the signed-out card and our own wording, never the description from the URL", s)
	}
	if s.URL != st.ExchangeURL+"/" {
		t.Errorf("the address bar still reads %s; want the query dropped", s.URL)
	}

	// A callback whose sign-in attempt this browser never started, as when
	// the login took too long: the exchange's error page, then sign in again.
	b.do("open a stale callback", chromedp.Navigate(st.ExchangeURL+"/oauth-callback?code=stale&state=unknown"))
	b.waitFor("the error page", `document.querySelector('h1') && document.querySelector('a[href^="/login"]')`)
	if h1 := eval[string](b, "the error page", `document.querySelector('h1').textContent`); !strings.Contains(h1, "no longer valid") {
		t.Errorf("the stale callback's page says %q", h1)
	}
	b.do("sign in again", chromedp.Click(chromedp.CSS(`a[href^="/login"]`)))
	b.waitFor("devidp's login form", fmt.Sprintf(`location.origin === %s && document.querySelector('input[name=password]')`, jsString(st.IssuerURL)))
	b.do("fill in the form",
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "bob"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "bob"+kb.Enter),
	)
	b.waitFor("signed in", fmt.Sprintf(`location.href === %s && %s && !document.getElementById('app').hidden`, jsString(st.ExchangeURL+"/"), idleJS))

	// A wrong password stays on devidp's form with a message.
	eval[bool](b, "mark", `window.__e2eOld = true`)
	b.do("sign out", click("#sign-out"))
	b.waitFor("signed out", idleJS+` && !document.getElementById('signed-out').hidden`)
	b.do("click Sign in", click("#sign-in"))
	b.waitFor("devidp's login form", fmt.Sprintf(`location.origin === %s && document.querySelector('input[name=password]')`, jsString(st.IssuerURL)))
	b.do("wrong password",
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "alice"),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), "bob"+kb.Enter),
	)
	b.waitFor("devidp says no", `document.querySelector('[role=alert]')`)
}

package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// What the page looks like to a person, read in one evaluation.
type pageState struct {
	URL       string   `json:"url"`
	SignedIn  bool     `json:"signedIn"`  // the list is shown
	SignedOut bool     `json:"signedOut"` // the "Signed out" card is shown
	User      string   `json:"user"`
	Titles    []string `json:"titles"`
	Completed []string `json:"completed"`
	Count     string   `json:"count"` // "2 items left"
	Error     string   `json:"error"`
}

const stateJS = `(() => {
	const $ = (id) => document.getElementById(id);
	const rows = [...document.querySelectorAll('#todo-list .todo')];
	return {
		url: location.href,
		signedIn: !$('app').hidden,
		signedOut: !$('signed-out').hidden,
		user: $('account').hidden ? '' : $('user-name').textContent,
		titles: rows.map((li) => li.querySelector('.todo-title').textContent),
		completed: rows.filter((li) => li.querySelector('.toggle').checked).map((li) => li.querySelector('.todo-title').textContent),
		count: $('footer').hidden ? '' : $('todo-count').textContent,
		error: $('error').hidden ? '' : $('error').textContent,
	};
})()`

func (b *browser) state(step string) pageState {
	b.t.Helper()
	return eval[pageState](b, step, stateJS)
}

// idleJS is true once the page has finished starting and no operation is
// under way (app.js mirrors its count in <html data-busy>), on a document
// the test has not marked as old (see reload).
const idleJS = `(document.documentElement.dataset.busy === '0' && !window.__e2eOld)`

// open loads the web page.
func (b *browser) open() {
	b.t.Helper()
	b.do("open the page", chromedp.Navigate(b.st.ExchangeURL+"/"))
	b.waitFor("the page starts", idleJS)
}

// reload reloads the page and waits until it has loaded the todos again.
// The old document is marked first, so that its idle state is not taken
// for the new one's.
func (b *browser) reload() {
	b.t.Helper()
	eval[bool](b, "mark the old document", `window.__e2eOld = true`)
	b.do("reload", chromedp.Reload())
	b.waitFor("the reloaded page starts", idleJS)
}

// signIn goes from the signed-out page through devidp's login form and
// back, signed in.
func (b *browser) signIn(user, password string) {
	b.t.Helper()
	step := "sign in as " + user
	b.waitFor(step+": the page offers to sign in", `!document.getElementById('signed-out').hidden`)
	eval[bool](b, step, `window.__e2eOld = true`)
	b.do(step+": click Sign in", chromedp.Click(chromedp.CSS("#sign-in")))
	b.waitFor(step+": devidp's login form", fmt.Sprintf(`location.origin === %q && document.querySelector('input[name=password]')`, b.st.IssuerURL))
	b.do(step+": fill in the form",
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), user),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password+kb.Enter),
	)
	b.waitFor(step+": back on the page, signed in", fmt.Sprintf(`location.href === %q && %s && !document.getElementById('app').hidden`, b.st.ExchangeURL+"/", idleJS))
}

// add types a title into the new-todo field and presses Enter.
func (b *browser) add(title string) {
	b.t.Helper()
	step := "add " + title
	b.do(step, chromedp.SendKeys(chromedp.CSS("#new-todo"), title+kb.Enter))
	b.waitFor(step, fmt.Sprintf(`%s && [...document.querySelectorAll('#todo-list .todo-title')].some((e) => e.textContent === %q)`, idleJS, title))
}

// row selects a part of the todo with this title by XPath, e.g. the
// ".toggle" input or the ".destroy" button.
func row(title, class string) string {
	return fmt.Sprintf(`//li[contains(concat(' ', @class, ' '), ' todo ')][.//span[contains(@class, 'todo-title')][. = %q]]//*[contains(concat(' ', @class, ' '), ' %s ')]`, title, class)
}

func (b *browser) toggle(title string) {
	b.t.Helper()
	step := "toggle " + title
	before := b.state(step)
	b.do(step, chromedp.Click(row(title, "toggle")))
	want := !slices.Contains(before.Completed, title)
	b.waitFor(step, fmt.Sprintf(`%s && [...document.querySelectorAll('#todo-list .todo')].some((li) => li.querySelector('.todo-title').textContent === %q && li.querySelector('.toggle').checked === %t && !li.classList.contains('busy'))`, idleJS, title, want))
}

// edit changes a title through the row's edit button, saving with Enter.
func (b *browser) edit(from, to string) {
	b.t.Helper()
	step := fmt.Sprintf("edit %q to %q", from, to)
	b.do(step+": start",
		chromedp.Click(row(from, "edit")),
		chromedp.WaitVisible(chromedp.CSS(".edit-input")),
	)
	b.waitFor(step+": the field has the focus", `document.activeElement === document.querySelector('.edit-input')`)
	// Select the old title, as a double-click would, and type over it.
	eval[bool](b, step+": select", `(document.querySelector('.edit-input').select(), true)`)
	b.do(step+": type", chromedp.KeyEvent(to+kb.Enter))
	b.waitFor(step, fmt.Sprintf(`%s && !document.querySelector('.edit-input') && [...document.querySelectorAll('#todo-list .todo-title')].some((e) => e.textContent === %q)`, idleJS, to))
}

func (b *browser) remove(title string) {
	b.t.Helper()
	step := "delete " + title
	b.do(step, chromedp.Click(row(title, "destroy")))
	b.waitFor(step, fmt.Sprintf(`%s && ![...document.querySelectorAll('#todo-list .todo-title')].some((e) => e.textContent === %q)`, idleJS, title))
}

// wantState compares what the page shows with what the test expects.
func (b *browser) wantState(step string, titles, completed []string, count string) {
	b.t.Helper()
	got := b.state(step)
	if !slices.Equal(got.Titles, titles) || !slices.Equal(got.Completed, completed) || got.Count != count || got.Error != "" {
		b.t.Fatalf("%s: the page shows todos %q, completed %q, count %q, error %q; want %q, %q, %q and no error",
			step, got.Titles, got.Completed, got.Count, got.Error, titles, completed, count)
	}
}

// checkNoTokenInScript checks that the page's script cannot read a token
// (document.cookie), while the browser does hold the access token, as an
// HttpOnly cookie: the check is not passing because nobody is signed in.
// It returns the access token, read through DevTools.
func (b *browser) checkNoTokenInScript() (accessToken string) {
	b.t.Helper()
	step := "tokens are out of the page's reach"
	jar := eval[string](b, step, `document.cookie`)
	if strings.Contains(jar, "access_token") || strings.Contains(jar, "refresh_token") || strings.Contains(jar, "eyJ") {
		b.t.Errorf("%s: document.cookie = %q", step, jar)
	}
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	res, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{b.st.ExchangeURL + "/", b.st.APIURL + "/", b.st.ExchangeURL + "/refreshtoken"}})
	if err != nil {
		b.t.Fatalf("%s: reading the cookie jar: %v", step, err)
	}
	found := map[string]bool{}
	for _, c := range res.Cookies {
		if c.Name == "access_token" {
			accessToken = c.Value
		}
		if strings.Contains(c.Name, "access_token") || strings.Contains(c.Name, "refresh_token") {
			found[c.Name] = true
			if !c.HTTPOnly {
				b.t.Errorf("%s: cookie %s is not HttpOnly", step, c.Name)
			}
		}
	}
	if !found["access_token"] || !found["refresh_token"] {
		b.t.Errorf("%s: the browser holds cookies %v; want access_token and refresh_token (COOKIE_SECURE=false names)", step, found)
	}
	return accessToken
}

// isJWT reports whether token has the shape of a JWS compact
// serialization: three base64url parts, the first a JSON object.
func isJWT(token string) bool {
	parts := strings.Split(token, ".")
	return len(parts) == 3 && strings.HasPrefix(parts[0], "eyJ")
}

// accessTokenExpiry asks the exchange when the current access token cookie
// ends, as the page could.
func (b *browser) accessTokenExpiry() time.Time {
	b.t.Helper()
	raw := eval[string](b, "read /me", `fetch('/me', {credentials: 'same-origin'}).then((r) => r.json()).then((me) => me.access_token_expires_at)`)
	exp, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		b.t.Fatalf("/me access_token_expires_at %q: %v", raw, err)
	}
	return exp
}

// apiStatus fetches GET /todos from the page, as the page does, and returns
// the status.
func (b *browser) apiStatus() int {
	b.t.Helper()
	return eval[int](b, "fetch the todos from the page", fmt.Sprintf(`fetch(%q, {credentials: 'include', headers: {'X-CSRF': '1'}, cache: 'no-store'}).then((r) => r.status)`, b.st.APIURL+"/todos"))
}

// click clicks the element the CSS selector finds, with the mouse.
func click(css string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(css))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	return strconv.Quote(s)
}

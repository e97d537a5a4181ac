// Package e2e holds Tollgate's browser tests: they build and start the real
// devidp, exchange and todo-api (package internal/devstack) on free ports
// and drive Chromium headless through the todo web page with
// github.com/chromedp/chromedp, as a person would: devidp's login form,
// the keyboard, a phone-sized screen, an access token that expires.
//
// Without Chromium they skip, saying so, unless the variable CI is set:
// then they fail. CHROMIUM names the browser when it is not chromium,
// chromium-browser or google-chrome on PATH. A failing test leaves a
// screenshot in testdata/failures and logs the programs' last lines and the
// browser console. TOLLGATE_SCREENSHOT=path renews the README's picture
// (TestScreenshot).
package e2e

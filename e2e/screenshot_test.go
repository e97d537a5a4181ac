package e2e

import (
	"os"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/tollgate-dev/tollgate/internal/devstack"
)

// TestScreenshot renews the README's picture of the page: alice signed in
// with a few todos, at desktop size. It runs only when asked:
//
//	TOLLGATE_SCREENSHOT=$PWD/docs/screenshot.png go test -run TestScreenshot ./e2e
func TestScreenshot(t *testing.T) {
	path := os.Getenv("TOLLGATE_SCREENSHOT")
	if path == "" {
		t.Skip("set TOLLGATE_SCREENSHOT to the PNG file to write")
	}
	requireChromium(t)
	st := startStack(t, devstack.ModeJWT, 0)
	b := newBrowser(t, st)
	b.do("desktop window", chromedp.EmulateViewport(1100, 700))
	b.open()
	b.signIn("alice", "alice")
	for _, title := range []string{"Read the OAuth 2.0 security BCP", "Try make run", "Rotate the refresh tokens", "Write the browser tests"} {
		b.add(title)
	}
	b.toggle("Try make run")
	b.toggle("Write the browser tests")
	// No focus ring or caret in the picture.
	eval[bool](b, "blur", `(document.activeElement.blur(), true)`)
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}

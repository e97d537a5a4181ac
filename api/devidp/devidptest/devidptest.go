// Package devidptest runs the development authorization server on httptest
// with an issuer that matches the listener, and signs in through its login
// form the way a browser would. For tests only.
package devidptest

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/api/devidp"
)

// Server is a devidp.Server listening on an httptest.Server whose URL is the
// issuer.
type Server struct {
	*httptest.Server
	IDP *devidp.Server
}

// Start runs a devidp.Server for cfg, with cfg.Issuer set to the listener's
// URL, and closes it when the test ends. Zero fields of cfg take devidp's
// defaults: the demo users and the development clients.
func Start(tb testing.TB, cfg devidp.Config) *Server {
	tb.Helper()
	ts := httptest.NewUnstartedServer(nil)
	cfg.Issuer = "http://" + ts.Listener.Addr().String()
	idp, err := devidp.New(tb.Context(), cfg)
	if err != nil {
		ts.Close()
		tb.Fatal(err)
	}
	ts.Config.Handler = idp
	ts.Start()
	tb.Cleanup(ts.Close)
	return &Server{Server: ts, IDP: idp}
}

// Browser returns an HTTP client with a cookie jar that follows redirects
// until one leads to a URL starting with stopAt (typically the client's
// redirect URI), and returns that redirect response instead, so its Location
// can be read. An empty stopAt follows every redirect.
func Browser(stopAt string) *http.Client {
	jar, _ := cookiejar.New(nil) // never fails with nil options
	return &http.Client{
		Jar: jar,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if stopAt != "" && strings.HasPrefix(req.URL.String(), stopAt) {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("devidptest: stopped after 10 redirects")
			}
			return nil
		},
	}
}

// ErrNoLoginForm is returned by Login when authURL does not lead to the login
// form, ErrLoginRefused when the form comes back after the post (wrong
// username, password or code), and ErrSecondStep by Login when the
// request asks for two-factor sign-in (use LoginTwoFactor).
var (
	ErrNoLoginForm  = errors.New("devidptest: no login form")
	ErrLoginRefused = errors.New("devidptest: login refused")
	ErrSecondStep   = errors.New("devidptest: the sign-in asks for a second step")
)

// Login GETs authURL (an authorization request to devidp, or a URL that
// redirects there), posts username and password to the login form it leads
// to, and returns the response to that post, redirects followed as c's
// CheckRedirect allows. With Browser(redirectURI) it is the 303 to the
// client's redirect URI: Location carries code, state and iss, or error.
// The caller closes the response body.
func Login(ctx context.Context, c *http.Client, authURL, username, password string) (*http.Response, error) {
	return login(ctx, c, authURL, username, password, "")
}

// LoginTwoFactor is Login for a request whose acr_values asks for
// devidp.ACRTwoFactor: after the password it posts code to the second-step
// form. When no second step comes, it returns the response as Login does.
func LoginTwoFactor(ctx context.Context, c *http.Client, authURL, username, password, code string) (*http.Response, error) {
	return login(ctx, c, authURL, username, password, code)
}

// proofField finds the second-step form's signed proof.
var proofField = regexp.MustCompile(`name="proof" value="([^"]*)"`)

func login(ctx context.Context, c *http.Client, authURL, username, password, code string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `name="password"`) {
		return nil, fmt.Errorf("%w at %s: status %d, Location %q", ErrNoLoginForm, resp.Request.URL.Redacted(), resp.StatusCode, resp.Header.Get("Location"))
	}
	// The form posts back to the URL it was shown at.
	formURL := resp.Request.URL
	out, err := postForm(ctx, c, formURL.String(), url.Values{"username": {username}, "password": {password}})
	if err != nil {
		return nil, err
	}
	if !shownAgain(out, formURL) {
		return out, nil
	}
	page, err := io.ReadAll(io.LimitReader(out.Body, 1<<20))
	out.Body.Close()
	if err != nil {
		return nil, err
	}
	m := proofField.FindSubmatch(page)
	switch {
	case m == nil:
		return nil, ErrLoginRefused
	case code == "":
		return nil, ErrSecondStep
	}
	out, err = postForm(ctx, c, formURL.String(), url.Values{"username": {username}, "proof": {html.UnescapeString(string(m[1]))}, "code": {code}})
	if err != nil {
		return nil, err
	}
	if shownAgain(out, formURL) {
		out.Body.Close()
		return nil, ErrLoginRefused
	}
	return out, nil
}

func postForm(ctx context.Context, c *http.Client, target string, form url.Values) (*http.Response, error) {
	post, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.Do(post)
}

// shownAgain reports whether a post's answer is a page of devidp's at the
// form's own URL (an error, or the second step), not a redirect onwards.
func shownAgain(resp *http.Response, formURL *url.URL) bool {
	return resp.StatusCode == http.StatusOK && resp.Request.URL.Path == formURL.Path && resp.Request.URL.Host == formURL.Host
}

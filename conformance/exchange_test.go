package conformance

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/api/devidp"
	"github.com/tollgate-dev/tollgate/api/devidp/devidptest"
	"github.com/tollgate-dev/tollgate/api/exchange"
)

// The exchange's client at devidp.
const (
	exClientID     = "exchange-under-test"
	exClientSecret = "exchange-client-secret-0123456789"
)

// devidpKey is shared by every devidp of the run: a 2048-bit RSA key takes
// a while to make.
var devidpKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// answerEdit changes an answer of the authorization server on its way to
// the exchange: its status and its JSON object.
type answerEdit func(status int, body map[string]any) (int, map[string]any)

// asTap sits between the exchange and a real authorization server
// (devidp): it records the form of every request and lets a case change
// the answers of one endpoint, as a server that answers so would.
type asTap struct {
	next  http.RoundTripper
	mu    sync.Mutex
	edits map[string]answerEdit // by URL path
	forms map[string]url.Values // the last form posted to each path
}

func (a *asTap) edit(path string, e answerEdit) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.edits[path] = e
}

func (a *asTap) form(path string) url.Values {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.forms[path]
}

func (a *asTap) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		data, err := io.ReadAll(r.Body)
		if err != nil {
			return nil, err
		}
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(data))
		if form, err := url.ParseQuery(string(data)); err == nil {
			a.mu.Lock()
			a.forms[r.URL.Path] = form
			a.mu.Unlock()
		}
	}
	resp, err := a.next.RoundTrip(r)
	a.mu.Lock()
	e := a.edits[r.URL.Path]
	a.mu.Unlock()
	if err != nil || e == nil {
		return resp, err
	}
	data, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body := map[string]any{}
	_ = json.Unmarshal(data, &body)
	status, body := e(resp.StatusCode, body)
	data, _ = json.Marshal(body)
	resp.StatusCode, resp.Status = status, strconv.Itoa(status)+" "+http.StatusText(status)
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Del("Content-Length")
	resp.ContentLength = int64(len(data))
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp, nil
}

// exchangeEnv is a real devidp and a real exchange in front of it, the
// exchange's traffic to devidp through an asTap.
type exchangeEnv struct {
	URL string // the exchange
	idp *devidptest.Server
	tap *asTap
	cfg exchange.Config
}

// newExchangeEnv starts devidp and, after setup has changed the tap (to
// edit the discovery document, say), builds the exchange; it returns New's
// error instead of failing when New fails.
func newExchangeEnv(t *testing.T, setup func(*asTap)) (*exchangeEnv, error) {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	base := "http://" + ts.Listener.Addr().String()
	redirect := base + "/oauth-callback"
	idp := devidptest.Start(t, devidp.Config{
		SigningKey: devidpKey(),
		Clients:    []devidp.Client{{ID: exClientID, Secret: exClientSecret, RedirectURIs: []string{redirect}, PostLogoutRedirectURIs: []string{base + "/"}}},
	})
	tap := &asTap{next: http.DefaultTransport, edits: map[string]answerEdit{}, forms: map[string]url.Values{}}
	if setup != nil {
		setup(tap)
	}
	cfg := exchange.Config{
		Issuer:          idp.URL,
		ClientID:        exClientID,
		ClientSecret:    exClientSecret,
		RedirectURL:     redirect,
		SessionSecret:   []byte("conformance-session-secret-0123456789abcdef"),
		TodoAPIURL:      "http://127.0.0.1:1",
		InsecureCookies: true,
		HTTPClient:      &http.Client{Transport: tap, Timeout: 10 * time.Second},
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	ex, err := exchange.New(t.Context(), cfg)
	if err != nil {
		ts.Close()
		return nil, err
	}
	ts.Config.Handler = ex
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(func() { _ = ex.Close() })
	return &exchangeEnv{URL: base, idp: idp, tap: tap, cfg: cfg}, nil
}

// signIn signs alice in and returns the callback's answer: its status,
// its cookies and its body.
func (e *exchangeEnv) signIn(t *testing.T) (int, []*http.Cookie, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	login, err := c.Get(e.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	login.Body.Close()
	if login.StatusCode != http.StatusFound {
		t.Fatalf("GET /login: %d", login.StatusCode)
	}
	resp, err := devidptest.Login(t.Context(), devidptest.Browser(e.cfg.RedirectURL), login.Header.Get("Location"), "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(cb, e.cfg.RedirectURL+"?") {
		t.Fatalf("devidp answered %d, Location %q", resp.StatusCode, cb)
	}
	req, _ := http.NewRequest(http.MethodGet, cb, nil)
	for _, ck := range login.Cookies() {
		req.AddCookie(ck)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, res.Cookies(), string(body)
}

// signOut sends the sign-out request with cookies and returns its JSON
// answer.
func (e *exchangeEnv) signOut(t *testing.T, cookies []*http.Cookie) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodDelete, e.URL+"/refreshtoken", nil)
	req.Header.Set("X-CSRF", "1")
	for _, ck := range cookies {
		req.AddCookie(ck)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	if res.StatusCode != http.StatusOK || json.NewDecoder(res.Body).Decode(&out) != nil {
		t.Fatalf("sign-out: %d", res.StatusCode)
	}
	return out
}

// cookie returns the value of the cookie name, "" when absent.
func cookie(cookies []*http.Cookie, name string) string {
	for _, c := range cookies {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// TestExchangeClient: the token-endpoint and revocation cases, against the
// exchange (the confidential client of the authorization-code grant) and a
// real devidp whose answers a case changes.
func TestExchangeClient(t *testing.T) {
	const meta = "/.well-known/openid-configuration"
	// tokenAnswer makes devidp's token answers carry edit's changes.
	tokenAnswer := func(edit func(map[string]any)) func(*asTap) {
		return func(tap *asTap) {
			tap.edit("/token", func(status int, body map[string]any) (int, map[string]any) {
				if status == http.StatusOK {
					edit(body)
				}
				return status, body
			})
		}
	}
	// refused fails unless the sign-in failed at the token step.
	refused := func(t *testing.T, status int, cookies []*http.Cookie, body, code string) {
		t.Helper()
		if status != http.StatusBadGateway || cookie(cookies, "access_token") != "" {
			t.Fatalf("callback: %d, access cookie %t; want 502 without tokens", status, cookie(cookies, "access_token") != "")
		}
		if code != "" && !strings.Contains(body, code) {
			t.Errorf("the error page does not name %s", code)
		}
	}

	runCase(t, "rfc8414-token-endpoint-required-when-token-operation-is-used", func(t *testing.T) {
		_, err := newExchangeEnv(t, func(tap *asTap) {
			tap.edit(meta, func(status int, body map[string]any) (int, map[string]any) {
				delete(body, "token_endpoint")
				return status, body
			})
		})
		if err == nil || !strings.Contains(err.Error(), "token_endpoint") {
			t.Fatalf("New: %v, want an error naming token_endpoint", err)
		}
	}, partial("the catalog drives it with client_credentials or token exchange; the exchange refuses metadata without token_endpoint when it starts"))

	runCase(t, "rfc6749-client-credentials-success-response", func(t *testing.T) {
		e, err := newExchangeEnv(t, tokenAnswer(func(b map[string]any) {
			b["access_token"], b["token_type"], b["expires_in"], b["scope"] = "new_token", "Bearer", 3600, "read"
		}))
		if err != nil {
			t.Fatal(err)
		}
		status, cookies, _ := e.signIn(t)
		if status != http.StatusSeeOther || cookie(cookies, "access_token") != "new_token" {
			t.Fatalf("callback: %d, access cookie %q; want the token of the answer", status, cookie(cookies, "access_token"))
		}
	}, partial("Tollgate has no client_credentials grant; the same success answer is parsed through the exchange's authorization-code redemption"))

	runCase(t, "rfc6749-token-response-must-contain-access-token", func(t *testing.T) {
		e, err := newExchangeEnv(t, tokenAnswer(func(b map[string]any) { delete(b, "access_token") }))
		if err != nil {
			t.Fatal(err)
		}
		status, cookies, body := e.signIn(t)
		refused(t, status, cookies, body, "")
	}, noted("checked through the exchange's authorization-code redemption"))

	runCase(t, "rfc6749-invalid-client-must-map-to-authentication-failure", func(t *testing.T) {
		e, err := newExchangeEnv(t, func(tap *asTap) {
			tap.edit("/token", func(int, map[string]any) (int, map[string]any) {
				return http.StatusUnauthorized, map[string]any{"error": "invalid_client", "error_description": "bad creds"}
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		status, cookies, body := e.signIn(t)
		refused(t, status, cookies, body, "invalid_client")
	}, partial("the catalog drives it with client_credentials; checked through code redemption, where invalid_client is named on the error page and in the token metric"))

	runCase(t, "rfc7009-revocation-200-is-success-even-for-already-invalid-token", func(t *testing.T) {
		e, err := newExchangeEnv(t, func(tap *asTap) {
			tap.edit("/revoke", func(int, map[string]any) (int, map[string]any) { return http.StatusOK, map[string]any{} })
		})
		if err != nil {
			t.Fatal(err)
		}
		_, cookies, _ := e.signIn(t)
		if out := e.signOut(t, cookies); out["revoked"] != true {
			t.Errorf("sign-out %v, want revoked", out)
		}
	})

	runCase(t, "rfc7009-revocation-server-errors-must-surface", func(t *testing.T) {
		e, err := newExchangeEnv(t, func(tap *asTap) {
			tap.edit("/revoke", func(int, map[string]any) (int, map[string]any) {
				return http.StatusInternalServerError, map[string]any{"error": "server_error"}
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		_, cookies, _ := e.signIn(t)
		if out := e.signOut(t, cookies); out["revoked"] != false || out["revocation"] != "failed" {
			t.Errorf("sign-out %v, want revoked false, revocation failed", out)
		}
		if e.tap.form("/revoke").Get("token") == "" {
			t.Error("no revocation request was made")
		}
	}, partial("the failure is reported (revoked: false, revocation: failed, and logged) while the local sign-out still goes ahead, as the person asked"))

	// downgraded starts the exchange against an https issuer whose
	// discovery document names field with plain http, and returns New's
	// error; with field "" nothing is downgraded.
	downgraded := func(t *testing.T, field string) error {
		t.Helper()
		return newExchangeAtTLS(t, func(doc map[string]any) {
			if field != "" {
				doc[field] = strings.Replace(doc[field].(string), "https://", "http://", 1)
			}
		})
	}

	runCase(t, "rfc8414-token-endpoint-must-be-absolute-https-url", func(t *testing.T) {
		if err := downgraded(t, ""); err != nil {
			t.Fatalf("New with https endpoints: %v", err)
		}
		err := downgraded(t, "token_endpoint")
		if err == nil || !strings.Contains(err.Error(), "token_endpoint") || !strings.Contains(err.Error(), "https") {
			t.Fatalf("New: %v, want an error naming token_endpoint", err)
		}
	}, noted("with an https ISSUER every endpoint of the discovery document must be https; only an http ISSUER (an operator's explicit choice, such as devidp on loopback) may name http endpoints"))

	runCase(t, "rfc8414-revocation-endpoint-must-be-absolute-https-url", func(t *testing.T) {
		if err := downgraded(t, ""); err != nil {
			t.Fatalf("New with https endpoints: %v", err)
		}
		err := downgraded(t, "revocation_endpoint")
		if err == nil || !strings.Contains(err.Error(), "revocation_endpoint") || !strings.Contains(err.Error(), "https") {
			t.Fatalf("New: %v, want an error naming revocation_endpoint", err)
		}
	}, noted("with an https ISSUER every endpoint of the discovery document must be https; only an http ISSUER (an operator's explicit choice, such as devidp on loopback) may name http endpoints"))

	runCase(t, "rfc6749-token-response-token-type-must-be-supported", func(t *testing.T) {
		e, err := newExchangeEnv(t, tokenAnswer(func(b map[string]any) { b["token_type"] = "N_A" }))
		if err != nil {
			t.Fatal(err)
		}
		status, cookies, body := e.signIn(t)
		refused(t, status, cookies, body, "unsupported_token_type")
	}, noted("checked through the exchange's authorization-code redemption; refresh answers are checked the same way. Only Bearer (any case) is used: the exchange sends no DPoP proofs, and an absent token_type is refused too (RFC 6749 §5.1 makes it REQUIRED)"))

	runCase(t, "rfc6749-token-response-expires-in-must-be-non-negative-integer", func(t *testing.T) {
		e, err := newExchangeEnv(t, tokenAnswer(func(b map[string]any) { b["expires_in"] = -1 }))
		if err != nil {
			t.Fatal(err)
		}
		status, cookies, body := e.signIn(t)
		refused(t, status, cookies, body, "invalid_expires_in")
	}, noted("checked through the exchange's authorization-code redemption; refresh answers are checked the same way. 0 or an absent expires_in keep their meaning (the cookie lives an hour, or until the JWT's exp)"))

	runCase(t, "rfc7009-revocation-request-must-post-token-and-token-type-hint", func(t *testing.T) {
		e, err := newExchangeEnv(t, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, cookies, _ := e.signIn(t)
		out := e.signOut(t, cookies)
		if out["revoked"] != true || out["revocation"] != "ok" {
			t.Errorf("sign-out %v, want revoked", out)
		}
		// The refresh token goes first; the last request is the access
		// token's.
		form := e.tap.form("/revoke")
		if form.Get("token") != cookie(cookies, "access_token") || form.Get("token_type_hint") != "access_token" {
			t.Errorf("last revocation request: hint %q, the access token %t; want the access token with token_type_hint=access_token",
				form.Get("token_type_hint"), form.Get("token") == cookie(cookies, "access_token"))
		}
	}, noted("sign-out revokes the refresh token (token_type_hint=refresh_token), then the access token (token_type_hint=access_token), since RFC 7009 §2.1 only says a server SHOULD end a grant's access tokens with its refresh token"))

	runCase(t, "rfc8414-revocation-endpoint-required-when-revocation-is-used", func(t *testing.T) {
		e, err := newExchangeEnv(t, func(tap *asTap) {
			tap.edit(meta, func(status int, body map[string]any) (int, map[string]any) {
				delete(body, "revocation_endpoint")
				return status, body
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		_, cookies, _ := e.signIn(t)
		out := e.signOut(t, cookies)
		if out["revocation"] != "no_revocation_endpoint" || out["revoked"] != false {
			t.Errorf("sign-out %v, want revocation no_revocation_endpoint", out)
		}
		if e.tap.form("/revoke") != nil {
			t.Error("a revocation request was sent")
		}
	}, partial("the missing endpoint is an error reported to the caller (revocation: no_revocation_endpoint in the sign-out answer, the metric, and a warning when the exchange starts); the local sign-out still goes ahead, as the person asked"))
}

// newExchangeAtTLS starts devidp and builds the exchange against an https
// issuer: an httptest TLS server that serves devidp's discovery document as
// its own (issuer and endpoints on its https URL), after edit. It returns
// New's error.
func newExchangeAtTLS(t *testing.T, edit func(doc map[string]any)) error {
	t.Helper()
	idp := devidptest.Start(t, devidp.Config{SigningKey: devidpKey()})
	res, err := http.Get(idp.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("devidp's discovery document: %d %v", res.StatusCode, err)
	}
	var ts *httptest.Server
	ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		doc := map[string]any{}
		if err := json.Unmarshal([]byte(strings.ReplaceAll(string(raw), idp.URL, ts.URL)), &doc); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		edit(doc)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(ts.Close)
	client := ts.Client()
	client.Timeout = 10 * time.Second
	ex, err := exchange.New(t.Context(), exchange.Config{
		Issuer:          ts.URL,
		ClientID:        exClientID,
		ClientSecret:    exClientSecret,
		RedirectURL:     "http://127.0.0.1:1/oauth-callback",
		SessionSecret:   []byte("conformance-session-secret-0123456789abcdef"),
		TodoAPIURL:      "http://127.0.0.1:1",
		InsecureCookies: true,
		HTTPClient:      client,
		Logger:          slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err == nil {
		_ = ex.Close()
	}
	return err
}

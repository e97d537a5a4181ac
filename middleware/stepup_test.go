package middleware_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tollgate-dev/tollgate/introspection"
	"github.com/tollgate-dev/tollgate/middleware"
	"github.com/tollgate-dev/tollgate/middleware/authtest"
	"github.com/tollgate-dev/tollgate/middleware/principal"
)

const (
	acr2FA = "urn:example:acr:2fa"
	acrHWK = "urn:example:acr:hwk"
	acrPwd = "urn:example:acr:password"
)

// stepUpClock is a clock the test moves; Authenticators read it through
// Config.Now.
type stepUpClock struct{ unix atomic.Int64 }

func (c *stepUpClock) now() time.Time      { return time.Unix(c.unix.Load(), 0) }
func (c *stepUpClock) set(t time.Time)     { c.unix.Store(t.Unix()) }
func (c *stepUpClock) add(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

// stepUpAuthenticators returns a JWT and an introspecting Authenticator for
// is, both on clock with ClockSkew 30s, so that every case runs against a
// token's claims and an introspection answer's members alike.
func stepUpAuthenticators(t *testing.T, is *authtest.Issuer, clock *stepUpClock, logger *slog.Logger) map[string]*middleware.Authenticator {
	t.Helper()
	edit := func(c *middleware.Config) {
		c.ClockSkew = 30 * time.Second
		c.Now = clock.now
		if logger != nil {
			c.Logger = logger
		}
	}
	is.EnableIntrospection()
	md, endpoint := discoverIntrospection(t, is)
	return map[string]*middleware.Authenticator{
		"jwt": mustAuthenticator(t, is, edit),
		"introspection": mustAuthenticator(t, is, func(c *middleware.Config) {
			edit(c)
			c.Mode = middleware.ModeIntrospection
			c.Metadata = md
			c.Introspector = &introspection.Client{
				Endpoint: endpoint, ClientID: authtest.IntrospectionClientID, ClientSecret: authtest.IntrospectionClientSecret,
				CacheTTL: -1, InactiveCacheTTL: -1, Logger: quiet(),
			}
		}),
	}
}

// tokenFor makes the mode's kind of token for claims edited by edit, with
// iat and nbf at now and exp an hour later (the clock is the test's).
func tokenFor(t *testing.T, is *authtest.Issuer, mode string, now time.Time, edit func(jwt.MapClaims)) string {
	t.Helper()
	full := func(c jwt.MapClaims) {
		c["iat"], c["nbf"], c["exp"] = now.Unix(), now.Unix(), now.Add(time.Hour).Unix()
		if edit != nil {
			edit(c)
		}
	}
	if mode == "introspection" {
		return is.OpaqueToken("alice", full)
	}
	return is.Token(t, "alice", full)
}

// stepUpServe sends the token through Require, then RequireStepUp(s), to a
// handler that writes "ok".
func stepUpServe(a *middleware.Authenticator, s middleware.StepUp, token string) *httptest.ResponseRecorder {
	h := a.Require(a.RequireStepUp(s)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok"))
	})))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, bearerRequest(token))
	return w
}

// TestStepUp: what RFC 9470 asks of a resource server, for JWTs and
// introspected tokens alike: the acr must be one of the route's, auth_time
// no older than max_age (plus the clock skew), and a refusal is a 401 whose
// challenge names the whole requirement, exactly in §3's form.
func TestStepUp(t *testing.T) {
	is := authtest.NewIssuer(t)
	clock := &stepUpClock{}
	now := time.Now().Truncate(time.Second)
	clock.set(now)
	auths := stepUpAuthenticators(t, is, clock, nil)

	both := middleware.StepUp{ACRValues: []string{acr2FA, acrHWK}, MaxAge: 5 * time.Minute}
	const (
		challengeACR    = `Bearer realm="todo-api", error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:example:acr:2fa urn:example:acr:hwk", max_age="300"`
		challengeRecent = `Bearer realm="todo-api", error="insufficient_user_authentication", error_description="More recent authentication is required", acr_values="urn:example:acr:2fa urn:example:acr:hwk", max_age="300"`
	)
	authAt := func(acr any, at any) func(jwt.MapClaims) {
		return func(c jwt.MapClaims) {
			if acr != nil {
				c["acr"] = acr
			}
			if at != nil {
				c["auth_time"] = at
			}
		}
	}
	ago := func(d time.Duration) int64 { return now.Add(-d).Unix() }

	tests := []struct {
		name      string
		need      middleware.StepUp
		edit      func(jwt.MapClaims)
		challenge string // "" means accepted
	}{
		{name: "first acr, recent", need: both, edit: authAt(acr2FA, ago(time.Minute))},
		{name: "second acr, recent", need: both, edit: authAt(acrHWK, ago(time.Minute))},
		{name: "weaker acr", need: both, edit: authAt(acrPwd, ago(time.Minute)), challenge: challengeACR},
		{name: "no acr", need: both, edit: authAt(nil, ago(time.Minute)), challenge: challengeACR},
		{name: "acr of another case", need: both, edit: authAt(strings.ToUpper(acr2FA), ago(time.Minute)), challenge: challengeACR},
		{name: "acr not a string", need: both, edit: authAt([]string{acr2FA}, ago(time.Minute)), challenge: challengeACR},
		{name: "acr a number", need: middleware.StepUp{ACRValues: []string{"2"}}, edit: authAt(2, nil),
			challenge: `Bearer realm="todo-api", error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="2"`},
		{name: "no auth_time", need: both, edit: authAt(acr2FA, nil), challenge: challengeRecent},
		{name: "auth_time just within max_age and skew", need: both, edit: authAt(acr2FA, ago(5*time.Minute+30*time.Second))},
		{name: "auth_time a second too old", need: both, edit: authAt(acr2FA, ago(5*time.Minute+31*time.Second)), challenge: challengeRecent},
		{name: "auth_time a day old", need: both, edit: authAt(acr2FA, ago(24*time.Hour)), challenge: challengeRecent},
		{name: "auth_time ahead within skew", need: both, edit: authAt(acr2FA, now.Add(30*time.Second).Unix())},
		{name: "auth_time ahead beyond skew", need: both, edit: authAt(acr2FA, now.Add(31*time.Second).Unix()), challenge: challengeRecent},
		{name: "auth_time fractional", need: both, edit: authAt(acr2FA, float64(ago(time.Minute))+0.25)},
		{name: "auth_time a string", need: both, edit: authAt(acr2FA, "1700000000"), challenge: challengeRecent},
		{name: "auth_time negative", need: both, edit: authAt(acr2FA, -1), challenge: challengeRecent},
		{name: "auth_time absurd", need: both, edit: authAt(acr2FA, 1e300), challenge: challengeRecent},
		{name: "acr only: auth_time not needed", need: middleware.StepUp{ACRValues: []string{acr2FA}}, edit: authAt(acr2FA, nil)},
		{name: "acr only: refused without max_age", need: middleware.StepUp{ACRValues: []string{acr2FA}}, edit: authAt(acrPwd, nil),
			challenge: `Bearer realm="todo-api", error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:example:acr:2fa"`},
		{name: "max_age only: any acr", need: middleware.StepUp{MaxAge: 5 * time.Second}, edit: authAt(nil, ago(time.Second))},
		{name: "max_age only: refused without acr_values", need: middleware.StepUp{MaxAge: 5 * time.Second}, edit: authAt(acr2FA, ago(time.Hour)),
			challenge: `Bearer realm="todo-api", error="insufficient_user_authentication", error_description="More recent authentication is required", max_age="5"`},
		{name: "nothing required", need: middleware.StepUp{}, edit: nil},
	}
	for _, mode := range []string{"jwt", "introspection"} {
		a := auths[mode]
		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				w := stepUpServe(a, tt.need, tokenFor(t, is, mode, now, tt.edit))
				if tt.challenge == "" {
					if w.Code != http.StatusOK || w.Body.String() != "ok" {
						t.Fatalf("status %d %s, want 200", w.Code, w.Body)
					}
					return
				}
				if w.Code != http.StatusUnauthorized {
					t.Fatalf("status %d %s, want 401", w.Code, w.Body)
				}
				if got := w.Header().Get("WWW-Authenticate"); got != tt.challenge {
					t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, tt.challenge)
				}
				if got := problem(t, w)["reason"]; got != middleware.ReasonStepUp {
					t.Errorf("reason %v, want %s", got, middleware.ReasonStepUp)
				}
				if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q, want no-store", cc)
				}
			})
		}
	}
}

// TestStepUpCachedTokenAges: the verified-token cache keeps the claims,
// not the verdict: a token that met max_age a moment ago is refused once
// its authentication has grown too old, though it is still valid and
// cached.
func TestStepUpCachedTokenAges(t *testing.T) {
	is := authtest.NewIssuer(t)
	clock := &stepUpClock{}
	now := time.Now().Truncate(time.Second)
	clock.set(now)
	a := stepUpAuthenticators(t, is, clock, nil)["jwt"]
	need := middleware.StepUp{MaxAge: 2 * time.Minute}
	tok := tokenFor(t, is, "jwt", now, func(c jwt.MapClaims) { c["auth_time"] = now.Unix() })
	if w := stepUpServe(a, need, tok); w.Code != http.StatusOK {
		t.Fatalf("fresh: status %d %s", w.Code, w.Body)
	}
	clock.add(2*time.Minute + 31*time.Second) // past max_age plus the 30s skew
	if w := stepUpServe(a, need, tok); w.Code != http.StatusUnauthorized || errorCode(w.Header().Get("WWW-Authenticate")) != "insufficient_user_authentication" {
		t.Fatalf("aged: status %d %q, want 401 insufficient_user_authentication", w.Code, w.Header().Get("WWW-Authenticate"))
	}
	// The token itself is still good for routes without a step-up.
	if w := do(a, bearerRequest(tok)); w.Code != http.StatusOK {
		t.Fatalf("plain route: status %d", w.Code)
	}
}

// TestStepUpNoCaller: without Require before it, RequireStepUp has no
// caller to judge and answers as for a request without a token.
func TestStepUpNoCaller(t *testing.T) {
	is := authtest.NewIssuer(t)
	a := mustAuthenticator(t, is, nil)
	ran := false
	h := a.RequireStepUp(middleware.StepUp{ACRValues: []string{acr2FA}})(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true }))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodDelete, "/todos", nil))
	if ran || w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != `Bearer realm="todo-api"` {
		t.Fatalf("ran %v, status %d, challenge %q", ran, w.Code, w.Header().Get("WWW-Authenticate"))
	}
}

// TestStepUpValidate: requirements that could not be put in a challenge,
// or that make no sense, are refused at start by RequireStepUp, and refuse
// every caller when given to CheckStepUp.
func TestStepUpValidate(t *testing.T) {
	bad := []middleware.StepUp{
		{MaxAge: -time.Second},
		{MaxAge: 1500 * time.Millisecond},
		{ACRValues: []string{""}},
		{ACRValues: []string{"two words"}},
		{ACRValues: []string{`quo"te`}},
		{ACRValues: []string{`back\slash`}},
		{ACRValues: []string{"tab\there"}},
		{ACRValues: []string{"é"}},
		{ACRValues: []string{strings.Repeat("a", 257)}},
	}
	is := authtest.NewIssuer(t)
	var buf strings.Builder
	var mu sync.Mutex
	a := mustAuthenticator(t, is, func(c *middleware.Config) {
		c.Logger = slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil))
	})
	p := principal.Principal{Subject: "alice", Claims: map[string]any{"acr": "", "auth_time": float64(time.Now().Unix())}}
	ctx := principal.With(context.Background(), p)
	for _, s := range bad {
		if s.Validate() == nil {
			t.Errorf("%+v: Validate accepted it", s)
		}
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%+v: RequireStepUp did not panic", s)
				}
			}()
			a.RequireStepUp(s)
		}()
		err := a.CheckStepUp(ctx, s)
		if !errors.Is(err, middleware.ErrStepUp) {
			t.Errorf("%+v: CheckStepUp = %v, want ErrStepUp", s, err)
			continue
		}
		// The challenge names nothing of a broken requirement.
		if _, ch := middleware.Challenge(err); strings.Contains(ch, "acr_values") || strings.Contains(ch, "max_age") {
			t.Errorf("%+v: challenge %q names the broken requirement", s, ch)
		}
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, `"level":"ERROR"`) || !strings.Contains(out, `"step_up":"invalid_requirement"`) {
		t.Errorf("an invalid requirement is not logged as an error: %s", out)
	}
	good := []middleware.StepUp{{}, {MaxAge: time.Second}, {ACRValues: []string{"0", "urn:mace:incommon:iap:silver", "http://schemas.openid.net/pape/policies/2007/06/multi-factor"}}}
	for _, s := range good {
		if err := s.Validate(); err != nil {
			t.Errorf("%+v: %v", s, err)
		}
	}
}

// TestStepUpErrorSurface: a step-up refusal is told apart with errors.Is
// and Reason, answered by Challenge and WriteError as RFC 9470 §3 shows,
// and logged with why, never with the token.
func TestStepUpErrorSurface(t *testing.T) {
	is := authtest.NewIssuer(t)
	var buf strings.Builder
	var mu sync.Mutex
	clock := &stepUpClock{}
	now := time.Now().Truncate(time.Second)
	clock.set(now)
	a := stepUpAuthenticators(t, is, clock, slog.New(slog.NewJSONHandler(lockedWriter{&mu, &buf}, nil)))["jwt"]
	tok := tokenFor(t, is, "jwt", now, func(c jwt.MapClaims) { c["acr"] = acrPwd })

	var checkErr error
	h := a.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checkErr = a.CheckStepUp(r.Context(), middleware.StepUp{ACRValues: []string{acr2FA}})
		if checkErr != nil {
			a.WriteError(w, r, checkErr)
		}
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, bearerRequest(tok))
	if !errors.Is(checkErr, middleware.ErrStepUp) || errors.Is(checkErr, middleware.ErrInvalidToken) || middleware.Reason(checkErr) != middleware.ReasonStepUp {
		t.Fatalf("error %v: want ErrStepUp alone, reason %s", checkErr, middleware.ReasonStepUp)
	}
	status, challenge := middleware.Challenge(checkErr)
	want := `Bearer realm="todo-api", error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="urn:example:acr:2fa"`
	if status != http.StatusUnauthorized || challenge != want || w.Header().Get("WWW-Authenticate") != want {
		t.Fatalf("Challenge = %d %q, header %q; want 401 %q", status, challenge, w.Header().Get("WWW-Authenticate"), want)
	}
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body["status"] != float64(401) || body["detail"] != "A different authentication level is required" {
		t.Fatalf("body %s (%v)", w.Body, err)
	}

	// A bare ErrStepUp (an application's own) is still a step-up answer.
	w = httptest.NewRecorder()
	middleware.WriteError(w, httptest.NewRequest(http.MethodGet, "/", nil), middleware.ErrStepUp)
	if w.Code != http.StatusUnauthorized || errorCode(w.Header().Get("WWW-Authenticate")) != "insufficient_user_authentication" || problem(t, w)["reason"] != middleware.ReasonStepUp {
		t.Fatalf("bare ErrStepUp: %d %q %s", w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
	}

	mu.Lock()
	out := buf.String()
	mu.Unlock()
	for _, s := range []string{`"reason":"insufficient_user_authentication"`, `"step_up":"acr"`, `"sub":"alice"`, acrPwd} {
		if !strings.Contains(out, s) {
			t.Errorf("log lacks %s: %s", s, out)
		}
	}
	if strings.Contains(out, tok) || strings.Contains(out, strings.Split(tok, ".")[2]) {
		t.Errorf("log holds the token: %s", out)
	}
}

// TestStepUpKeepsRequirement: RequireStepUp copies the acr values, so a
// caller that reuses its slice does not change a route's requirement.
func TestStepUpKeepsRequirement(t *testing.T) {
	is := authtest.NewIssuer(t)
	clock := &stepUpClock{}
	now := time.Now().Truncate(time.Second)
	clock.set(now)
	a := stepUpAuthenticators(t, is, clock, nil)["jwt"]
	values := []string{acr2FA}
	mw := a.RequireStepUp(middleware.StepUp{ACRValues: values})
	values[0] = acrPwd
	h := a.Require(mw(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, bearerRequest(tokenFor(t, is, "jwt", now, func(c jwt.MapClaims) { c["acr"] = acrPwd })))
	if w.Code != http.StatusUnauthorized {
		t.Fatalf("status %d: the route's requirement changed with the caller's slice", w.Code)
	}
}

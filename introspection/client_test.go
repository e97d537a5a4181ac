package introspection

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		client *Client
		want   []string // substrings of the error; none: valid
	}{
		{name: "defaults with endpoint and client id are valid",
			client: &Client{Endpoint: "https://as.example/introspect", ClientID: "rs"}},
		{name: "auth none needs no client id",
			client: &Client{Endpoint: "http://localhost:4445/admin/oauth2/introspect", AuthMethod: AuthNone}},
		{name: "empty endpoint",
			client: &Client{ClientID: "rs"}, want: []string{"Endpoint is required"}},
		{name: "bad scheme",
			client: &Client{Endpoint: "ftp://as.example/introspect", ClientID: "rs"}, want: []string{`scheme must be https or http, not "ftp"`}},
		{name: "relative endpoint",
			client: &Client{Endpoint: "/introspect", ClientID: "rs"}, want: []string{"scheme"}},
		{name: "no host",
			client: &Client{Endpoint: "https:///introspect", ClientID: "rs"}, want: []string{"no host"}},
		{name: "basic without client id",
			client: &Client{Endpoint: "https://as.example/introspect"}, want: []string{"ClientID is required with AuthMethod basic"}},
		{name: "post without client id",
			client: &Client{Endpoint: "https://as.example/introspect", AuthMethod: AuthPost}, want: []string{"ClientID is required with AuthMethod post"}},
		{name: "unknown auth method",
			client: &Client{Endpoint: "https://as.example/introspect", AuthMethod: 9}, want: []string{"unknown AuthMethod(9)"}},
		{name: "rate limit not a number",
			client: &Client{Endpoint: "https://as.example/introspect", ClientID: "rs", RateLimit: math.NaN()}, want: []string{"RateLimit"}},
		{name: "rate limit infinite",
			client: &Client{Endpoint: "https://as.example/introspect", ClientID: "rs", RateLimit: math.Inf(1)}, want: []string{"RateLimit"}},
		{name: "every problem reported at once",
			client: &Client{Timeout: -1, MaxResponseBytes: -1, CacheSize: -1, MaxInFlight: -1, RateLimit: -1, RateBurst: -1},
			want:   []string{"Endpoint is required", "ClientID is required", "Timeout", "MaxResponseBytes", "CacheSize", "MaxInFlight", "RateLimit", "RateBurst"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.client
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate = nil, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to mention %q", err, w)
				}
				if !strings.HasPrefix(err.Error(), "introspection: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
			}
			// Introspect reports the same error, without a request.
			if _, ierr := c.Introspect(context.Background(), "tok"); ierr == nil || ierr.Error() != err.Error() {
				t.Errorf("Introspect = %v, want the config error", ierr)
			}
		})
	}
}

func TestParseAuthMethod(t *testing.T) {
	for in, want := range map[string]AuthMethod{"": AuthBasic, "basic": AuthBasic, "client_secret_basic": AuthBasic,
		"POST": AuthPost, "client_secret_post": AuthPost, "none": AuthNone} {
		if got, err := ParseAuthMethod(in); err != nil || got != want {
			t.Errorf("ParseAuthMethod(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseAuthMethod("private_key_jwt"); err == nil {
		t.Error("ParseAuthMethod accepted private_key_jwt")
	}
}

func TestIntrospectSendsRFC7662Request(t *testing.T) {
	const id, secret = "todo api:1", "s3cr&t/é+%"
	tests := []struct {
		name      string
		method    AuthMethod
		wantBasic bool
		wantForm  map[string]string // beyond token and token_type_hint
	}{
		{name: "basic auth form-urlencodes id and secret", method: AuthBasic, wantBasic: true},
		{name: "post auth sends credentials in the body", method: AuthPost,
			wantForm: map[string]string{"client_id": id, "client_secret": secret}},
		{name: "none sends no credentials", method: AuthNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newIntroServer(t, answerJSON(200, `{"active":true}`))
			c := newTestClient(t, srv.endpoint(), func(c *Client) {
				c.ClientID, c.ClientSecret, c.AuthMethod = id, secret, tt.method
			})
			const token = "tok en+/=&?"
			if _, err := c.Introspect(context.Background(), token); err != nil {
				t.Fatal(err)
			}
			got := srv.lastRequest()
			if got.Method != http.MethodPost {
				t.Errorf("method = %s, want POST", got.Method)
			}
			if got.ContentType != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type = %q", got.ContentType)
			}
			if got.Accept != "application/json" {
				t.Errorf("Accept = %q", got.Accept)
			}
			if v := got.Form.Get("token"); v != token {
				t.Errorf("token = %q, want %q", v, token)
			}
			if v := got.Form.Get("token_type_hint"); v != "access_token" {
				t.Errorf("token_type_hint = %q", v)
			}
			if got.HasBasic != tt.wantBasic {
				t.Errorf("Basic auth sent = %v, want %v (Authorization %q)", got.HasBasic, tt.wantBasic, got.Authorization)
			}
			if tt.wantBasic && (got.BasicUser != id || got.BasicPass != secret) {
				t.Errorf("Basic credentials = %q:%q, want %q:%q", got.BasicUser, got.BasicPass, id, secret)
			}
			if !tt.wantBasic && got.Authorization != "" {
				t.Errorf("Authorization = %q, want none", got.Authorization)
			}
			want := map[string]string{"token": token, "token_type_hint": "access_token"}
			for k, v := range tt.wantForm {
				want[k] = v
			}
			if len(got.Form) != len(want) {
				t.Errorf("form = %v, want exactly %v", got.Form, want)
			}
			for k, v := range want {
				if got.Form.Get(k) != v {
					t.Errorf("form %s = %q, want %q", k, got.Form.Get(k), v)
				}
			}
		})
	}
}

func TestIntrospectAnswers(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second).UTC()
	huge := `{"active":true,"pad":"` + strings.Repeat("a", 2<<20) + `"}`
	tests := []struct {
		name     string
		answer   http.HandlerFunc
		wantErr  error
		wantCode int // for *Error
		check    func(*testing.T, *Response, error)
	}{
		{name: "active answer fills every field", answer: answerJSON(200, fmt.Sprintf(
			`{"active":true,"scope":"todos:read  todos:write","client_id":"web","username":"alice@example.com",
			 "token_type":"Bearer","exp":%d,"iat":1700000000,"nbf":1700000000.0,"sub":"alice",
			 "aud":["todo-api","other"],"iss":"https://as.example","jti":"j-1","tenant":"acme"}`, exp.Unix())),
			check: func(t *testing.T, r *Response, _ error) {
				if !r.Active || r.Sub != "alice" || r.ClientID != "web" || r.Username != "alice@example.com" ||
					r.TokenType != "Bearer" || r.Iss != "https://as.example" || r.Jti != "j-1" {
					t.Errorf("response = %+v", r)
				}
				if got := strings.Join(r.Scopes(), ","); got != "todos:read,todos:write" {
					t.Errorf("Scopes = %q", got)
				}
				if r.Exp == nil || !r.Exp.Equal(exp) {
					t.Errorf("Exp = %v, want %v", r.Exp, exp)
				}
				if r.Iat == nil || r.Iat.Unix() != 1700000000 || r.Nbf == nil || r.Nbf.Unix() != 1700000000 {
					t.Errorf("Iat, Nbf = %v, %v", r.Iat, r.Nbf)
				}
				if strings.Join(r.Aud, ",") != "todo-api,other" {
					t.Errorf("Aud = %q", r.Aud)
				}
				if r.Claims["tenant"] != "acme" || r.Claims["active"] != true || r.Claims["exp"] != float64(exp.Unix()) {
					t.Errorf("Claims = %v", r.Claims)
				}
			}},
		{name: "aud as a string", answer: answerJSON(200, `{"active":true,"aud":"todo-api"}`),
			check: func(t *testing.T, r *Response, _ error) {
				if len(r.Aud) != 1 || r.Aud[0] != "todo-api" {
					t.Errorf("Aud = %q", r.Aud)
				}
			}},
		{name: "null members count as absent", answer: answerJSON(200, `{"active":true,"exp":null,"aud":null,"scope":null}`),
			check: func(t *testing.T, r *Response, _ error) {
				if r.Exp != nil || r.Aud != nil || r.Scope != "" {
					t.Errorf("response = %+v", r)
				}
			}},
		{name: "charset in content type is fine", answer: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			io.WriteString(w, `{"active":true}`)
		}},
		{name: "inactive", answer: answerJSON(200, `{"active":false}`), wantErr: ErrInactive},
		{name: "inactive ignores malformed members", answer: answerJSON(200, `{"active":false,"exp":"soon","aud":7}`), wantErr: ErrInactive},
		{name: "active as string is inactive", answer: answerJSON(200, `{"active":"true","sub":"alice"}`), wantErr: ErrInactive},
		{name: "active as 1 is inactive", answer: answerJSON(200, `{"active":1,"sub":"alice"}`), wantErr: ErrInactive},
		{name: "active missing is inactive", answer: answerJSON(200, `{"sub":"alice"}`), wantErr: ErrInactive},
		{name: "active in other case is inactive", answer: answerJSON(200, `{"Active":true,"ACTIVE":true}`), wantErr: ErrInactive},
		{name: "exp as string is malformed", answer: answerJSON(200, `{"active":true,"exp":"1700000000"}`), wantErr: ErrMalformedResponse},
		{name: "fractional exp is malformed", answer: answerJSON(200, `{"active":true,"exp":1700000000.5}`), wantErr: ErrMalformedResponse},
		{name: "negative iat is malformed", answer: answerJSON(200, `{"active":true,"iat":-1}`), wantErr: ErrMalformedResponse},
		{name: "aud as number is malformed", answer: answerJSON(200, `{"active":true,"aud":42}`), wantErr: ErrMalformedResponse},
		{name: "aud array with a number is malformed", answer: answerJSON(200, `{"active":true,"aud":["a",1]}`), wantErr: ErrMalformedResponse},
		{name: "aud array with null is malformed", answer: answerJSON(200, `{"active":true,"aud":["a",null]}`), wantErr: ErrMalformedResponse},
		{name: "sub as number is malformed", answer: answerJSON(200, `{"active":true,"sub":7}`), wantErr: ErrMalformedResponse},
		{name: "scope as array is malformed", answer: answerJSON(200, `{"active":true,"scope":["a"]}`), wantErr: ErrMalformedResponse},
		{name: "non-JSON body is malformed", answer: answerJSON(200, `<html>login</html>`), wantErr: ErrMalformedResponse},
		{name: "JSON array is malformed", answer: answerJSON(200, `[{"active":true}]`), wantErr: ErrMalformedResponse},
		{name: "JSON null is malformed", answer: answerJSON(200, `null`), wantErr: ErrMalformedResponse},
		{name: "trailing garbage is malformed", answer: answerJSON(200, `{"active":true} x`), wantErr: ErrMalformedResponse},
		{name: "wrong content type is malformed", answer: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, `{"active":true}`)
		}, wantErr: ErrMalformedResponse},
		{name: "huge body is malformed", answer: answerJSON(200, huge), wantErr: ErrMalformedResponse},
		{name: "huge body without content length is malformed", answer: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			for i := 0; i < 2<<10; i++ {
				io.WriteString(w, strings.Repeat(" ", 1<<10))
				w.(http.Flusher).Flush()
			}
		}, wantErr: ErrMalformedResponse},
		{name: "500 is unavailable", answer: answerJSON(500, `oops`), wantErr: ErrUnavailable, wantCode: 500},
		{name: "503 is unavailable", answer: answerJSON(503, `{}`), wantErr: ErrUnavailable, wantCode: 503},
		{name: "429 is unavailable", answer: answerJSON(429, ``), wantErr: ErrUnavailable, wantCode: 429},
		{name: "401 means our credentials are wrong: unavailable", answer: answerJSON(401,
			`{"error":"invalid_client","error_description":"client authentication failed","error_uri":"https://as.example/e"}`),
			wantErr: ErrUnavailable, wantCode: 401, check: func(t *testing.T, _ *Response, err error) {
				var e *Error
				errors.As(err, &e)
				if e.Code != "invalid_client" || e.Description != "client authentication failed" ||
					e.URI != "https://as.example/e" || !e.CredentialsRejected() {
					t.Errorf("Error = %+v", e)
				}
				if want := "introspection: server answered 401 Unauthorized: invalid_client: client authentication failed"; err.Error() != want {
					t.Errorf("message = %q, want %q", err, want)
				}
			}},
		{name: "403 is unavailable", answer: answerJSON(403, `{"error":"access_denied"}`), wantErr: ErrUnavailable, wantCode: 403},
		{name: "400 is unavailable", answer: answerJSON(400, `{"error":"invalid_request"}`), wantErr: ErrUnavailable, wantCode: 400},
		{name: "redirect is not followed", answer: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere", http.StatusTemporaryRedirect)
		}, wantErr: ErrUnavailable, wantCode: 307},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newIntroServer(t, tt.answer)
			c := newTestClient(t, srv.endpoint(), nil)
			resp, err := c.Introspect(context.Background(), "tok")
			if tt.wantErr == nil {
				if err != nil || resp == nil || !resp.Active {
					t.Fatalf("Introspect = %+v, %v; want active", resp, err)
				}
			} else {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Introspect = %+v, %v; want %v", resp, err, tt.wantErr)
				}
				if resp != nil {
					t.Errorf("Introspect returned %+v with error %v", resp, err)
				}
			}
			var e *Error
			if got := errors.As(err, &e); got != (tt.wantCode != 0) || (got && e.StatusCode != tt.wantCode) {
				t.Errorf("Introspect error %v: *Error %v, want status %d", err, e, tt.wantCode)
			}
			if srv.calls.Load() != 1 {
				t.Errorf("server calls = %d, want 1", srv.calls.Load())
			}
			if tt.check != nil {
				tt.check(t, resp, err)
			}
		})
	}
}

func TestIntrospectEmptyTokenIsInactiveWithoutACall(t *testing.T) {
	srv := newIntroServer(t, answerJSON(200, `{"active":true}`))
	c := newTestClient(t, srv.endpoint(), nil)
	if _, err := c.Introspect(context.Background(), ""); !errors.Is(err, ErrInactive) {
		t.Fatalf("err = %v, want ErrInactive", err)
	}
	if n := srv.calls.Load(); n != 0 {
		t.Errorf("server calls = %d, want 0", n)
	}
}

func TestIntrospectUnavailable(t *testing.T) {
	const timeout = 150 * time.Millisecond
	tests := []struct {
		name   string
		answer http.HandlerFunc
	}{
		{name: "slow answer times out", answer: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}},
		{name: "slow body times out", answer: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"active":`)
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newIntroServer(t, tt.answer)
			c := newTestClient(t, srv.endpoint(), func(c *Client) { c.Timeout = timeout })
			start := time.Now()
			_, err := c.Introspect(context.Background(), "tok")
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want ErrUnavailable and DeadlineExceeded", err)
			}
			if took := time.Since(start); took > timeout+time.Second {
				t.Errorf("took %v, want about %v", took, timeout)
			}
		})
	}
	t.Run("server down", func(t *testing.T) {
		srv := newIntroServer(t, answerJSON(200, `{"active":true}`))
		srv.Close()
		c := newTestClient(t, srv.endpoint(), nil)
		if _, err := c.Introspect(context.Background(), "tok"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if s := c.Stats(); s.Failures != 1 || s.Calls != 1 {
			t.Errorf("Stats = %+v", s)
		}
	})
}

func TestErrorsAndLogsNeverContainTheToken(t *testing.T) {
	const token = "SECRET-TOKEN-d41d8cd98f00b204"
	echo := func(status int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			t := r.PostForm.Get("token")
			answerJSON(status, `{"error":"`+t+`","error_description":"bad token `+t+`","error_uri":"`+t+`"}`)(w, r)
		}
	}
	answers := map[string]http.HandlerFunc{
		"401 echoing the token": echo(401),
		"500 echoing the token": echo(500),
		"200 that is not JSON":  answerJSON(200, token),
		"200 with bad exp":      answerJSON(200, `{"active":true,"exp":"`+token+`"}`),
		"content type echoing": func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/"+token)
			io.WriteString(w, `{"active":true}`)
		},
		"inactive": answerJSON(200, `{"active":false}`),
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			srv := newIntroServer(t, answer)
			var logs bytes.Buffer
			c := newTestClient(t, srv.endpoint(), func(c *Client) {
				c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			})
			_, err := c.Introspect(context.Background(), token)
			if err == nil {
				t.Fatal("Introspect succeeded")
			}
			if strings.Contains(err.Error(), token) {
				t.Errorf("error contains the token: %v", err)
			}
			if strings.Contains(logs.String(), token) {
				t.Errorf("log contains the token: %s", logs.String())
			}
			if !strings.Contains(logs.String(), TokenHashLogKey+"="+HashToken(token).Short()) {
				t.Errorf("log does not name the token by hash: %s", logs.String())
			}
		})
	}
}

func TestCache(t *testing.T) {
	base := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)

	// clock is an injectable Now.
	type clock struct {
		mu  sync.Mutex
		now time.Time
	}
	newClock := func() *clock { return &clock{now: base} }
	nowFunc := func(c *clock) func() time.Time {
		return func() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
	}
	set := func(c *clock, d time.Duration) { c.mu.Lock(); c.now = base.Add(d); c.mu.Unlock() }

	type step struct {
		at        time.Duration // clock offset from base
		token     string
		wantErr   error
		wantCalls int64 // total server calls after this step
	}
	tests := []struct {
		name   string
		answer http.HandlerFunc
		edit   func(*Client)
		steps  []step
	}{
		{name: "second call hits the cache", answer: answerActive(base.Add(time.Hour)),
			steps: []step{{token: "good", wantCalls: 1}, {at: time.Second, token: "good", wantCalls: 1}}},
		{name: "active entry expires at exp", answer: answerActive(base.Add(30 * time.Second)),
			steps: []step{{token: "good", wantCalls: 1}, {at: 29 * time.Second, token: "good", wantCalls: 1},
				{at: 30 * time.Second, token: "good", wantCalls: 2}}},
		{name: "active entry expires at CacheTTL before exp", answer: answerActive(base.Add(time.Hour)),
			edit: func(c *Client) { c.CacheTTL = 10 * time.Second },
			steps: []step{{token: "good", wantCalls: 1}, {at: 9 * time.Second, token: "good", wantCalls: 1},
				{at: 10 * time.Second, token: "good", wantCalls: 2}}},
		{name: "active answer past its exp is not cached", answer: answerActive(base.Add(-time.Second)),
			steps: []step{{token: "good", wantCalls: 1}, {token: "good", wantCalls: 2}}},
		{name: "negative CacheTTL disables caching", answer: answerActive(base.Add(time.Hour)),
			edit:  func(c *Client) { c.CacheTTL = -1 },
			steps: []step{{token: "good", wantCalls: 1}, {token: "good", wantCalls: 2}}},
		{name: "inactive answer is cached briefly", answer: answerJSON(200, `{"active":false}`),
			steps: []step{{token: "bad", wantErr: ErrInactive, wantCalls: 1},
				{at: 4 * time.Second, token: "bad", wantErr: ErrInactive, wantCalls: 1},
				{at: 5 * time.Second, token: "bad", wantErr: ErrInactive, wantCalls: 2}}},
		{name: "negative InactiveCacheTTL disables caching inactive answers", answer: answerJSON(200, `{"active":false}`),
			edit: func(c *Client) { c.InactiveCacheTTL = -1 },
			steps: []step{{token: "bad", wantErr: ErrInactive, wantCalls: 1},
				{token: "bad", wantErr: ErrInactive, wantCalls: 2}}},
		{name: "errors are not cached", answer: answerJSON(500, ``),
			steps: []step{{token: "good", wantErr: ErrUnavailable, wantCalls: 1},
				{token: "good", wantErr: ErrUnavailable, wantCalls: 2}}},
		{name: "malformed answers are not cached", answer: answerJSON(200, `{"active":true,"exp":"x"}`),
			steps: []step{{token: "good", wantErr: ErrMalformedResponse, wantCalls: 1},
				{token: "good", wantErr: ErrMalformedResponse, wantCalls: 2}}},
		{name: "tokens are cached separately", answer: answerByToken(base.Add(time.Hour)),
			steps: []step{{token: "good-1", wantCalls: 1}, {token: "bad", wantErr: ErrInactive, wantCalls: 2},
				{token: "good-2", wantCalls: 3}, {token: "good-1", wantCalls: 3}, {token: "bad", wantErr: ErrInactive, wantCalls: 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newIntroServer(t, tt.answer)
			clk := newClock()
			c := newTestClient(t, srv.endpoint(), func(c *Client) {
				c.Now = nowFunc(clk)
				if tt.edit != nil {
					tt.edit(c)
				}
			})
			for i, s := range tt.steps {
				set(clk, s.at)
				resp, err := c.Introspect(context.Background(), s.token)
				if !errors.Is(err, s.wantErr) || (s.wantErr == nil && (resp == nil || !resp.Active)) {
					t.Fatalf("step %d: Introspect = %+v, %v; want %v", i, resp, err, s.wantErr)
				}
				if n := srv.calls.Load(); n != s.wantCalls {
					t.Fatalf("step %d: server calls = %d, want %d", i, n, s.wantCalls)
				}
			}
			st := c.Stats()
			if want := uint64(len(tt.steps)); st.Requests != want || st.Calls+st.CacheHits != want {
				t.Errorf("Stats = %+v, want %d requests, each a call or a hit", st, want)
			}
		})
	}

	t.Run("size bound holds", func(t *testing.T) {
		srv := newIntroServer(t, answerByToken(base.Add(time.Hour)))
		clk := newClock()
		c := newTestClient(t, srv.endpoint(), func(c *Client) { c.CacheSize = 10; c.Now = nowFunc(clk) })
		for i := range 100 {
			if _, err := c.Introspect(context.Background(), fmt.Sprint("good-", i)); err != nil {
				t.Fatal(err)
			}
			if n := c.state.cache.len(); n > 10 {
				t.Fatalf("after %d tokens the cache holds %d entries, want at most 10", i+1, n)
			}
		}
		// The latest token always survives its own insertion.
		if _, err := c.Introspect(context.Background(), "good-99"); err != nil || srv.calls.Load() != 100 {
			t.Errorf("latest token was not cached: %v, %d calls", err, srv.calls.Load())
		}
	})

	t.Run("eviction drops expired entries first", func(t *testing.T) {
		ch := newCache(4)
		now := base
		for i := range 3 {
			ch.put(key{byte(i)}, entry{expires: now.Add(time.Hour)}, now)
		}
		ch.put(key{9}, entry{expires: now.Add(time.Second)}, now)
		ch.put(key{10}, entry{expires: now.Add(time.Hour)}, now.Add(2*time.Second)) // key 9 has expired
		for i := range 3 {
			if _, ok := ch.get(key{byte(i)}, now); !ok {
				t.Errorf("live entry %d was evicted", i)
			}
		}
		if _, ok := ch.m[key{9}]; ok {
			t.Error("expired entry survived eviction")
		}
	})

	t.Run("eviction drops the soonest to expire", func(t *testing.T) {
		ch := newCache(4)
		now := base
		for i := range 4 {
			ch.put(key{byte(i)}, entry{expires: now.Add(time.Duration(i+1) * time.Hour)}, now)
		}
		ch.put(key{10}, entry{expires: now.Add(time.Hour)}, now) // samples all 4 (< evictionSample)
		if _, ok := ch.m[key{0}]; ok || ch.len() != 4 {
			t.Errorf("entry expiring soonest survived; len %d", ch.len())
		}
	})
}

func TestIntrospectCoalescesConcurrentLookups(t *testing.T) {
	const n = 1000
	release := make(chan struct{})
	srv := newIntroServer(t, answerBlocked(nil, release, time.Now().Add(time.Hour)))
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	c := newTestClient(t, srv.endpoint(), func(c *Client) { c.Timeout = 10 * time.Second })

	var started, done sync.WaitGroup
	started.Add(n)
	errs := make(chan error, n)
	for range n {
		done.Add(1)
		go func() {
			defer done.Done()
			started.Done()
			resp, err := c.Introspect(context.Background(), "good-shared")
			if err == nil && (resp == nil || resp.Sub != "alice") {
				err = fmt.Errorf("response %+v", resp)
			}
			errs <- err
		}()
	}
	started.Wait()
	time.Sleep(50 * time.Millisecond) // let the last goroutines join the flight
	release <- struct{}{}             // answer the one request
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := srv.calls.Load(); got != 1 {
		t.Errorf("server calls = %d, want 1", got)
	}
	if s := c.Stats(); s.Requests != n || s.Calls != 1 {
		t.Errorf("Stats = %+v", s)
	}
}

func TestIntrospectCallerCancelDoesNotCancelSharedCall(t *testing.T) {
	started, release := make(chan struct{}, 2), make(chan struct{})
	serverCtxErr := make(chan error, 1)
	srv := newIntroServer(t, func(w http.ResponseWriter, r *http.Request) {
		answerBlocked(started, release, time.Now().Add(time.Hour))(w, r)
		serverCtxErr <- r.Context().Err()
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	c := newTestClient(t, srv.endpoint(), func(c *Client) { c.Timeout = 10 * time.Second })

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := c.Introspect(ctx, "good-shared")
		first <- err
	}()
	<-started // the shared request is at the server

	second := make(chan error, 1)
	go func() {
		resp, err := c.Introspect(context.Background(), "good-shared")
		if err == nil && resp.Sub != "alice" {
			err = fmt.Errorf("response %+v", resp)
		}
		second <- err
	}()
	if !waitFor(time.Second, func() bool { return waiters(c, "good-shared") == 2 }) {
		t.Fatal("second caller did not join the shared request")
	}

	cancel()
	select {
	case err := <-first:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller got %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("cancelled caller still waiting after 1s")
	}

	time.Sleep(20 * time.Millisecond) // the shared request must survive the cancel
	close(release)
	if err := <-second; err != nil {
		t.Fatalf("other caller: %v", err)
	}
	if err := <-serverCtxErr; err != nil {
		t.Errorf("shared request was cancelled at the server: %v", err)
	}
	if n := srv.calls.Load(); n != 1 {
		t.Errorf("server calls = %d, want 1", n)
	}
	// The shared answer was cached for later callers too.
	if _, err := c.Introspect(context.Background(), "good-shared"); err != nil || srv.calls.Load() != 1 {
		t.Errorf("later caller: %v, %d calls", err, srv.calls.Load())
	}
}

func TestIntrospectReturnsAtOnceForADoneContext(t *testing.T) {
	srv := newIntroServer(t, answerJSON(200, `{"active":true}`))
	c := newTestClient(t, srv.endpoint(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Introspect(ctx, "tok"); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := srv.calls.Load(); n != 0 {
		t.Errorf("server calls = %d, want 0", n)
	}
}

func TestScopes(t *testing.T) {
	for scope, want := range map[string]string{"": "", "a": "a", "a b": "a|b", " a  b ": "a|b"} {
		if got := strings.Join((&Response{Scope: scope}).Scopes(), "|"); got != want {
			t.Errorf("Scopes(%q) = %q, want %q", scope, got, want)
		}
	}
	if (*Response)(nil).Scopes() != nil {
		t.Error("nil Response has scopes")
	}
}

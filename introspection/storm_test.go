package introspection

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stormServer is a slow introspection endpoint: it answers inactive after
// delay unless the request's context ends first, and records how many
// requests it had in flight at most.
type stormServer struct {
	*httptest.Server
	calls, inFlight, maxInFlight atomic.Int64
	tokens                       sync.Map // every token asked about
}

// saw reports whether the server was asked about token.
func (s *stormServer) saw(token string) bool {
	_, ok := s.tokens.Load(token)
	return ok
}

func newStormServer(tb testing.TB, delay time.Duration) *stormServer {
	tb.Helper()
	s := &stormServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		// Read the form, as a real server does; only then does net/http
		// watch the connection and cancel r.Context() when it closes.
		if r.ParseForm() == nil {
			s.tokens.Store(r.PostForm.Get("token"), true)
		}
		n := s.inFlight.Add(1)
		defer s.inFlight.Add(-1)
		for m := s.maxInFlight.Load(); n > m && !s.maxInFlight.CompareAndSwap(m, n); m = s.maxInFlight.Load() {
		}
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
			answerJSON(http.StatusOK, `{"active":false}`)(w, r)
		case <-r.Context().Done():
		}
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *stormServer) endpoint() string { return s.URL + "/introspect" }

// stormResult counts how the callers of a storm ended.
type stormResult struct {
	overloaded, hungUp int64
	other              []error
}

// storm sends n distinct random tokens at once, each from a caller that
// hangs up after hangUp, and waits for every caller to return.
func storm(c *Client, n int, hangUp time.Duration) stormResult {
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		res stormResult
	)
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := rand.Text()
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), hangUp)
			defer cancel()
			_, err := c.Introspect(ctx, token)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case errors.Is(err, ErrOverloaded):
				res.overloaded++
			case errors.Is(err, context.DeadlineExceeded):
				res.hungUp++
			default:
				res.other = append(res.other, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	return res
}

// waitFor polls cond until it holds or d has passed, and reports whether
// it held.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestIntrospectionStorm sends 300 distinct garbage tokens at a slow
// authorization server, each from a caller that hangs up after 20ms: the
// server never sees more requests at once than the bound, the callers over
// the bound (as many as the scheduler lets overlap) are refused at once
// with ErrOverloaded, and once every caller has gone the abandoned
// requests are cancelled, at the server too, and the goroutines are back
// to where they were, long before the server's 2s answer or the Client's
// 5s Timeout. TestIntrospectFullBound checks the refusal step by step.
func TestIntrospectionStorm(t *testing.T) {
	const (
		callers = 300
		hangUp  = 20 * time.Millisecond
		answer  = 2 * time.Second
		settle  = 500 * time.Millisecond // well within answer and Timeout
	)
	tests := []struct {
		name        string
		maxInFlight int // the Client's setting
		bound       int // the most requests the server may see at once
	}{
		{name: "default bound", maxInFlight: 0, bound: DefaultMaxInFlight},
		{name: "bound of 8", maxInFlight: 8, bound: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newStormServer(t, answer)
			c := newTestClient(t, srv.endpoint(), func(c *Client) {
				c.Timeout = 5 * time.Second
				c.MaxInFlight = tt.maxInFlight
			})
			baseline := runtime.NumGoroutine()

			res := storm(c, callers, hangUp)

			if len(res.other) > 0 {
				t.Errorf("%d callers got other errors, first: %v", len(res.other), res.other[0])
			}
			if !waitFor(settle, func() bool { return srv.inFlight.Load() == 0 }) {
				t.Errorf("%d abandoned requests still running at the server %v after every caller hung up", srv.inFlight.Load(), settle)
			}
			// Dials that a hang-up overtook still finish, and their
			// connections wait in the pool (at most MaxInFlight) for the
			// next burst: not a leak, but goroutines, so close them. A
			// few goroutines of the HTTP machinery may come and go; a
			// leak is one or more per request.
			var now int
			if !waitFor(settle, func() bool {
				c.state.http.CloseIdleConnections()
				now = runtime.NumGoroutine()
				return now <= baseline+4
			}) {
				t.Errorf("%d goroutines %v after every caller hung up, %d before the storm", now, settle, baseline)
			}
			// Checked last: abandoned requests may still be on their way.
			if got := srv.maxInFlight.Load(); got > int64(tt.bound) {
				t.Errorf("server saw %d requests in flight at once, want at most %d", got, tt.bound)
			}
			t.Logf("server calls %d, most in flight %d; callers refused %d, hung up %d",
				srv.calls.Load(), srv.maxInFlight.Load(), res.overloaded, res.hungUp)

			// The slots are free again: a new lookup reaches the server.
			token := rand.Text()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := c.Introspect(ctx, token)
				done <- err
			}()
			if !waitFor(time.Second, func() bool { return srv.saw(token) }) {
				t.Errorf("lookup after the storm did not reach the server")
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("lookup after the storm: %v, want the caller's cancellation", err)
			}
		})
	}
}

// waiters reports how many callers wait for the request in flight for
// token.
func waiters(c *Client, token string) int {
	s := c.state
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.flights[HashToken(token)]; ok {
		return f.waiters
	}
	return 0
}

// TestIntrospectLastCallerLeavingCancelsTheRequest: a shared request that
// no caller waits for any more is cancelled, at the server too; it is not
// a failure of the server, and the next caller of the same token starts a
// request of its own.
func TestIntrospectLastCallerLeavingCancelsTheRequest(t *testing.T) {
	started, release := make(chan struct{}, 2), make(chan struct{})
	serverCtxErr := make(chan error, 2)
	srv := newIntroServer(t, func(w http.ResponseWriter, r *http.Request) {
		answerBlocked(started, release, time.Now().Add(time.Hour))(w, r)
		serverCtxErr <- r.Context().Err()
	})
	t.Cleanup(func() { close(release) })
	c := newTestClient(t, srv.endpoint(), func(c *Client) { c.Timeout = 10 * time.Second })

	var callers sync.WaitGroup
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	for range 2 {
		callers.Add(1)
		go func() {
			defer callers.Done()
			_, err := c.Introspect(ctx, "good-abandoned")
			errs <- err
		}()
	}
	<-started // the shared request is at the server
	if !waitFor(time.Second, func() bool { return waiters(c, "good-abandoned") == 2 }) {
		t.Fatal("the callers did not share the request")
	}
	cancel()
	callers.Wait()
	for range 2 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Fatalf("caller got %v, want context.Canceled", err)
		}
	}
	select {
	case err := <-serverCtxErr:
		if err == nil {
			t.Fatal("the server answered a request no one waited for")
		}
	case <-time.After(time.Second): // the Timeout is 10s
		t.Fatal("the abandoned request still runs at the server 1s after its callers left")
	}
	if s := c.Stats(); s.Failures != 0 {
		t.Errorf("an abandoned request counted as a failure: %+v", s)
	}

	// A new caller does not join the cancelled request.
	answered := make(chan error, 1)
	go func() {
		_, err := c.Introspect(context.Background(), "good-abandoned")
		answered <- err
	}()
	<-started
	release <- struct{}{}
	if err := <-answered; err != nil {
		t.Fatalf("next caller: %v", err)
	}
	if n := srv.calls.Load(); n != 2 {
		t.Errorf("server calls = %d, want 2", n)
	}
}

// TestIntrospectFullBound: with MaxInFlight requests in flight, a lookup
// that needs a new request is refused at once with ErrOverloaded (which is
// also ErrUnavailable), while a lookup of a token already in flight joins
// its request; once the request is done the slot is free again.
func TestIntrospectFullBound(t *testing.T) {
	started, release := make(chan struct{}, 4), make(chan struct{})
	srv := newIntroServer(t, answerBlocked(started, release, time.Now().Add(time.Hour)))
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	c := newTestClient(t, srv.endpoint(), func(c *Client) { c.MaxInFlight = 1; c.Timeout = 10 * time.Second })

	answers := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Introspect(context.Background(), "good-held")
			answers <- err
		}()
	}
	<-started
	if !waitFor(time.Second, func() bool { return waiters(c, "good-held") == 2 }) {
		t.Fatal("the second caller of the token in flight did not join it")
	}

	_, err := c.Introspect(context.Background(), "good-other")
	if !errors.Is(err, ErrOverloaded) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("lookup over the bound: %v, want ErrOverloaded and ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "MaxInFlight (1)") {
		t.Errorf("error %q does not name the bound", err)
	}
	if n := srv.calls.Load(); n != 1 {
		t.Errorf("server calls = %d, want 1", n)
	}

	once.Do(func() { close(release) })
	for range 2 {
		if err := <-answers; err != nil {
			t.Fatalf("caller of the request in flight: %v", err)
		}
	}
	if _, err := c.Introspect(context.Background(), "good-other"); err != nil {
		t.Fatalf("lookup once the slot is free: %v", err)
	}
	if s := c.Stats(); s.Refused != 1 || s.Calls != 2 || s.Failures != 0 {
		t.Errorf("Stats = %+v", s)
	}
}

// TestIntrospectRateLimit: RateLimit counts only lookups that need a
// request; past it they are refused at once with ErrOverloaded.
func TestIntrospectRateLimit(t *testing.T) {
	tests := []struct {
		name    string
		limit   float64
		burst   int
		allowed int // misses let through at once
	}{
		{name: "off", limit: 0, allowed: 20},
		{name: "burst defaults to one second's worth", limit: 1.5, allowed: 2},
		{name: "explicit burst", limit: 0.001, burst: 2, allowed: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newIntroServer(t, answerByToken(time.Now().Add(time.Hour)))
			c := newTestClient(t, srv.endpoint(), func(c *Client) { c.RateLimit, c.RateBurst = tt.limit, tt.burst })
			ok, refused := 0, 0
			for i := range 20 {
				_, err := c.Introspect(context.Background(), fmt.Sprintf("good-%d", i))
				switch {
				case err == nil:
					ok++
				case errors.Is(err, ErrOverloaded):
					refused++
					if !strings.Contains(err.Error(), "RateLimit") {
						t.Errorf("error %q does not name RateLimit", err)
					}
				default:
					t.Fatalf("lookup %d: %v", i, err)
				}
			}
			if ok != tt.allowed || refused != 20-tt.allowed {
				t.Fatalf("%d answered, %d refused; want %d answered", ok, refused, tt.allowed)
			}
			// Cache hits cost no request, so the limit does not apply.
			if _, err := c.Introspect(context.Background(), "good-0"); err != nil {
				t.Fatalf("cached lookup: %v", err)
			}
			if n := srv.calls.Load(); n != int64(tt.allowed) {
				t.Errorf("server calls = %d, want %d", n, tt.allowed)
			}
		})
	}
}

// TestTransportBoundsConnections: the Client's own transport opens at most
// MaxInFlight connections per host and keeps as many idle; a caller's
// HTTPClient keeps its Transport as it is.
func TestTransportBoundsConnections(t *testing.T) {
	mine := &http.Transport{MaxConnsPerHost: 3}
	tests := []struct {
		name        string
		maxInFlight int
		client      *http.Client
		want        int // MaxConnsPerHost
		wantIdle    int // MaxIdleConnsPerHost
	}{
		{name: "default", want: DefaultMaxInFlight, wantIdle: DefaultMaxInFlight},
		{name: "MaxInFlight 8", maxInFlight: 8, want: 8, wantIdle: 8},
		{name: "caller's client", maxInFlight: 8, client: &http.Client{Transport: mine}, want: 3, wantIdle: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newTestClient(t, "https://as.example/introspect", func(c *Client) {
				c.MaxInFlight, c.HTTPClient = tt.maxInFlight, tt.client
			})
			tr, ok := c.state.http.Transport.(*http.Transport)
			if !ok {
				t.Fatalf("transport %T", c.state.http.Transport)
			}
			if tt.client != nil && tr != mine {
				t.Fatal("the caller's transport was replaced")
			}
			if tt.client == nil && tr == http.DefaultTransport {
				t.Fatal("http.DefaultTransport used, whose connections are unbounded")
			}
			if tr.MaxConnsPerHost != tt.want || tr.MaxIdleConnsPerHost != tt.wantIdle {
				t.Fatalf("MaxConnsPerHost %d, MaxIdleConnsPerHost %d; want %d, %d",
					tr.MaxConnsPerHost, tr.MaxIdleConnsPerHost, tt.want, tt.wantIdle)
			}
		})
	}
}

// BenchmarkIntrospectionStorm measures a storm of 300 distinct garbage
// tokens, each from a caller that hangs up after 20ms, against a server
// that takes 2s: the requests it costs and the most in flight at once.
func BenchmarkIntrospectionStorm(b *testing.B) {
	srv := newStormServer(b, 2*time.Second)
	c := newTestClient(b, srv.endpoint(), func(c *Client) { c.Timeout = 5 * time.Second })
	b.ResetTimer()
	for range b.N {
		storm(c, 300, 20*time.Millisecond)
		if !waitFor(time.Second, func() bool { return srv.inFlight.Load() == 0 }) {
			b.Fatalf("%d abandoned requests still at the server", srv.inFlight.Load())
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(srv.calls.Load())/float64(b.N), "calls/op")
	b.ReportMetric(float64(srv.maxInFlight.Load()), "max-in-flight")
}

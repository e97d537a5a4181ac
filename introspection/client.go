package introspection

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// AuthMethod is how the Client authenticates to the introspection endpoint.
type AuthMethod int

// The client authentication methods. The zero value is AuthBasic.
const (
	// AuthBasic sends ClientID and ClientSecret by HTTP Basic, each
	// form-urlencoded first (RFC 6749 §2.3.1): client_secret_basic.
	AuthBasic AuthMethod = iota
	// AuthPost sends client_id and client_secret in the form body:
	// client_secret_post.
	AuthPost
	// AuthNone sends no client authentication, for endpoints that take none
	// (Hydra's admin port, Dex).
	AuthNone
)

// String returns "basic", "post" or "none".
func (m AuthMethod) String() string {
	switch m {
	case AuthBasic:
		return "basic"
	case AuthPost:
		return "post"
	case AuthNone:
		return "none"
	}
	return fmt.Sprintf("AuthMethod(%d)", int(m))
}

// ParseAuthMethod reads "basic", "post" or "none" (case-insensitive), or
// the equivalent "client_secret_basic" and "client_secret_post"; "" is
// AuthBasic.
func ParseAuthMethod(s string) (AuthMethod, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "basic", "client_secret_basic":
		return AuthBasic, nil
	case "post", "client_secret_post":
		return AuthPost, nil
	case "none":
		return AuthNone, nil
	}
	return 0, fmt.Errorf("introspection: unknown auth method %q (want basic, post or none)", s)
}

// Defaults for the zero fields of Client.
const (
	DefaultTimeout          = 5 * time.Second
	DefaultMaxResponseBytes = 1 << 20
	DefaultCacheTTL         = 60 * time.Second
	DefaultInactiveCacheTTL = 5 * time.Second
	DefaultCacheSize        = 10000
	DefaultMaxInFlight      = 64
)

// Client asks an RFC 7662 introspection endpoint about access tokens. It is
// a plain configuration struct: zero fields mean the documented defaults.
// The first call to Validate, Introspect or Stats fixes the configuration;
// later changes to the fields have no effect. A Client must not be copied
// after first use; it is safe for concurrent use.
type Client struct {
	// Endpoint is the introspection endpoint's URL, http or https.
	// Required.
	Endpoint string
	// ClientID and ClientSecret authenticate this client to the endpoint.
	// ClientID is required unless AuthMethod is AuthNone.
	ClientID     string
	ClientSecret string
	// AuthMethod says how to send them; the zero value is AuthBasic.
	AuthMethod AuthMethod
	// HTTPClient makes the requests; nil means a client of the Client's
	// own, on a clone of http.DefaultTransport whose MaxConnsPerHost and
	// MaxIdleConnsPerHost are MaxInFlight, so that it opens no more
	// connections than it may have requests and keeps them for reuse. A
	// caller's HTTPClient is used as it is: MaxInFlight still bounds the
	// requests, and through them the connections that are busy at once,
	// but its Transport's own limits (idle connections, HTTP/2) apply; so
	// do those of http.DefaultTransport when it is not an *http.Transport.
	// Redirects are never followed, whatever its CheckRedirect says.
	HTTPClient *http.Client
	// Timeout bounds one introspection call, reading the answer included.
	// Zero means DefaultTimeout (5s).
	Timeout time.Duration
	// MaxResponseBytes bounds the answer's body; a larger one is
	// ErrMalformedResponse. Zero means DefaultMaxResponseBytes (1 MiB).
	MaxResponseBytes int64
	// CacheTTL is the longest an active answer is reused; it is never
	// reused past the token's exp either. Zero means DefaultCacheTTL (60s);
	// negative disables caching active answers.
	CacheTTL time.Duration
	// InactiveCacheTTL is how long an inactive answer is reused. Zero means
	// DefaultInactiveCacheTTL (5s); negative disables caching them.
	InactiveCacheTTL time.Duration
	// CacheSize bounds the number of cached answers. Zero means
	// DefaultCacheSize (10000).
	CacheSize int
	// MaxInFlight bounds the requests to the endpoint in flight at once,
	// so that a flood of distinct tokens (every one a cache miss) cannot
	// turn into a flood of requests. When the bound is reached, a lookup
	// that would need a new request fails at once with ErrOverloaded;
	// nothing queues. A lookup of a token whose request is already in
	// flight joins it, as it costs no request. Zero means
	// DefaultMaxInFlight (64); it must not be negative.
	MaxInFlight int
	// RateLimit, when positive, bounds the new requests to the endpoint
	// per second (a token bucket of RateBurst): a lookup that would need
	// a request beyond it fails at once with ErrOverloaded. Cache hits
	// and lookups that join a request in flight do not count. Zero means
	// no rate limit, the default; it must not be negative.
	RateLimit float64
	// RateBurst is how many requests RateLimit lets through at once after
	// a quiet spell. Zero means RateLimit rounded up (one second's worth),
	// at least 1.
	RateBurst int
	// Now tells the time, for cache expiry; nil means time.Now.
	Now func() time.Time
	// Logger, if set, receives a record per introspection call (Debug),
	// failure (Warn) and refused client credentials (Error), and one when
	// SharedCache fails (Warn) and recovers (Info). Tokens appear only as
	// the first 12 hex digits of their SHA-256, under "token_sha256".
	Logger *slog.Logger

	// SharedCache, when set, is a second cache, shared by the instances of
	// a fleet (Redis, for one): a lookup that misses the local cache looks
	// there before it asks the server, and every verdict the server gives
	// is stored there too, under the same rules as locally (active ones
	// never past exp nor CacheTTL, inactive ones for InactiveCacheTTL).
	// When it fails or is slow, the Client carries on with its local cache
	// and the server, logs once per outage, and tries again a second later.
	// Whoever can write to it can make this Client accept any token, unless
	// SharedCacheKey is set: trust it like the connection to the server.
	// Nil, the default: no shared cache. It has no effect when both
	// CacheTTL and InactiveCacheTTL are negative. See the package
	// documentation, "Cache shared by a fleet".
	SharedCache SharedCache
	// SharedCacheKey, when set (at least 32 random bytes, the same on every
	// instance), authenticates every value in SharedCache with HMAC-SHA256
	// bound to its key name: a value that fails is ignored, so that write
	// access to the cache is not enough to forge a verdict, nor to move one
	// from one token to another. Recommended whenever SharedCache is set.
	SharedCacheKey []byte
	// SharedCacheTimeout bounds each call to SharedCache. Zero means
	// DefaultSharedCacheTimeout (100ms); it must not be negative.
	SharedCacheTimeout time.Duration

	once  sync.Once
	state *state
	err   error
}

// Stats counts what a Client has done since it was created.
type Stats struct {
	Requests  uint64 // Introspect calls
	CacheHits uint64 // answered from the cache
	Calls     uint64 // HTTP requests sent to the endpoint
	Failures  uint64 // calls that ended unavailable or malformed
	Refused   uint64 // lookups refused with ErrOverloaded

	SharedHits   uint64 // answered from SharedCache (each also a Requests)
	SharedErrors uint64 // calls to SharedCache that failed or timed out
}

// state is a Client's validated configuration and working parts.
type state struct {
	endpoint    string
	authMethod  AuthMethod
	clientID    string
	secret      string
	basic       string // the Authorization header for AuthBasic
	http        *http.Client
	timeout     time.Duration
	maxBytes    int64
	activeTTL   time.Duration // <= 0: not cached
	inactiveTTL time.Duration // <= 0: not cached
	cache       *cache        // nil when both TTLs disable caching
	now         func() time.Time
	log         *slog.Logger // nil: no logging
	shared      *sharedCache // nil: no SharedCache

	// slots holds a value per request in flight; its capacity is
	// MaxInFlight.
	slots   chan struct{}
	limiter *rate.Limiter // nil: no RateLimit

	mu      sync.Mutex
	flights map[key]*flight // the requests in flight, by token hash

	requests, hits, calls, failures, refused atomic.Uint64
}

// flight is one request to the endpoint, shared by every caller that
// looked up the same token while it ran (request coalescing, as
// singleflight does, but counting its callers so that the last one to
// leave can cancel it).
type flight struct {
	done    chan struct{} // closed once resp and err are set
	resp    *Response
	err     error
	waiters int                     // callers waiting; guarded by state.mu
	cancel  context.CancelCauseFunc // ends the request
}

// errAbandoned is the cause given to a request that no caller waits for
// any more.
var errAbandoned = errors.New("introspection: every caller stopped waiting")

// Validate checks the configuration and reports every problem at once.
// Call it at start-up; Introspect returns the same error otherwise.
func (c *Client) Validate() error {
	_, err := c.init()
	return err
}

func (c *Client) init() (*state, error) {
	c.once.Do(func() { c.state, c.err = c.newState() })
	return c.state, c.err
}

func (c *Client) newState() (*state, error) {
	var errs []error
	if c.Endpoint == "" {
		errs = append(errs, errors.New("introspection: Endpoint is required"))
	} else if u, err := url.Parse(c.Endpoint); err != nil {
		errs = append(errs, errors.New("introspection: Endpoint is not a URL"))
	} else if u.Scheme != "https" && u.Scheme != "http" {
		errs = append(errs, fmt.Errorf("introspection: Endpoint scheme must be https or http, not %q", u.Scheme))
	} else if u.Host == "" {
		errs = append(errs, errors.New("introspection: Endpoint has no host"))
	}
	switch c.AuthMethod {
	case AuthBasic, AuthPost:
		if c.ClientID == "" {
			errs = append(errs, fmt.Errorf("introspection: ClientID is required with AuthMethod %s (use AuthNone for an endpoint without client authentication)", c.AuthMethod))
		}
	case AuthNone:
	default:
		errs = append(errs, fmt.Errorf("introspection: unknown %v", c.AuthMethod))
	}
	if c.Timeout < 0 {
		errs = append(errs, errors.New("introspection: Timeout must not be negative"))
	}
	if c.MaxResponseBytes < 0 {
		errs = append(errs, errors.New("introspection: MaxResponseBytes must not be negative"))
	}
	if c.CacheSize < 0 {
		errs = append(errs, errors.New("introspection: CacheSize must not be negative"))
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, errors.New("introspection: MaxInFlight must not be negative"))
	}
	if !(c.RateLimit >= 0) || math.IsInf(c.RateLimit, 0) { // NaN too
		errs = append(errs, errors.New("introspection: RateLimit must be a number of requests per second, 0 or more"))
	}
	if c.RateBurst < 0 {
		errs = append(errs, errors.New("introspection: RateBurst must not be negative"))
	}
	if c.SharedCacheTimeout < 0 {
		errs = append(errs, errors.New("introspection: SharedCacheTimeout must not be negative"))
	}
	if n := len(c.SharedCacheKey); n > 0 && n < MinSharedCacheKeyBytes {
		errs = append(errs, fmt.Errorf("introspection: SharedCacheKey must be at least %d bytes, not %d", MinSharedCacheKeyBytes, n))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	s := &state{
		endpoint:    c.Endpoint,
		authMethod:  c.AuthMethod,
		clientID:    c.ClientID,
		secret:      c.ClientSecret,
		timeout:     orDefault(c.Timeout, DefaultTimeout),
		maxBytes:    orDefault(c.MaxResponseBytes, DefaultMaxResponseBytes),
		activeTTL:   orDefault(c.CacheTTL, DefaultCacheTTL),
		inactiveTTL: orDefault(c.InactiveCacheTTL, DefaultInactiveCacheTTL),
		now:         c.Now,
		log:         c.Logger,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if c.AuthMethod == AuthBasic {
		s.basic = "Basic " + base64.StdEncoding.EncodeToString(
			[]byte(url.QueryEscape(c.ClientID)+":"+url.QueryEscape(c.ClientSecret)))
	}
	maxInFlight := orDefault(c.MaxInFlight, DefaultMaxInFlight)
	s.slots = make(chan struct{}, maxInFlight)
	s.flights = make(map[key]*flight)
	if c.RateLimit > 0 {
		burst := c.RateBurst
		if burst == 0 {
			burst = int(min(math.Ceil(c.RateLimit), math.MaxInt32))
		}
		s.limiter = rate.NewLimiter(rate.Limit(c.RateLimit), burst)
	}
	// A copy, so that our CheckRedirect does not change the caller's
	// client: a redirect would turn the POST into a GET or send the token
	// and credentials somewhere else.
	hc := http.Client{}
	if c.HTTPClient != nil {
		hc = *c.HTTPClient
	} else if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		// Our own transport: at most one connection per request we may
		// have in flight, and as many kept idle, so that bursts reuse
		// them rather than dialling anew each time.
		t := dt.Clone()
		t.MaxConnsPerHost = maxInFlight
		t.MaxIdleConnsPerHost = maxInFlight
		hc.Transport = t
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s.http = &hc
	if s.activeTTL > 0 || s.inactiveTTL > 0 {
		s.cache = newCache(orDefault(c.CacheSize, DefaultCacheSize))
		if c.SharedCache != nil {
			s.shared = newSharedCache(c, s.maxBytes)
		}
	}
	return s, nil
}

func orDefault[T int | int64 | time.Duration](v, def T) T {
	if v == 0 {
		return def
	}
	return v
}

// Stats reports the Client's counters.
func (c *Client) Stats() Stats {
	s, _ := c.init()
	if s == nil {
		return Stats{}
	}
	st := Stats{
		Requests:  s.requests.Load(),
		CacheHits: s.hits.Load(),
		Calls:     s.calls.Load(),
		Failures:  s.failures.Load(),
		Refused:   s.refused.Load(),
	}
	if s.shared != nil {
		st.SharedHits = s.shared.hits.Load()
		st.SharedErrors = s.shared.errs.Load()
	}
	return st
}

// Introspect asks the authorization server whether token is active, or
// answers from the cache. It returns the server's answer for an active
// token, and otherwise an error: ErrInactive, ErrUnavailable (possibly a
// *Error), ErrMalformedResponse, ErrOverloaded (which also matches
// ErrUnavailable) when MaxInFlight or RateLimit leaves no room for the
// request, the configuration error, or ctx.Err() when ctx ends first. The
// request then goes on for the other callers of the same token, if any;
// when the last one leaves, it is cancelled.
// The Response may be shared: do not modify it.
func (c *Client) Introspect(ctx context.Context, token string) (*Response, error) {
	s, err := c.init()
	if err != nil {
		return nil, err
	}
	s.requests.Add(1)
	if token == "" {
		return nil, fmt.Errorf("%w: empty token", ErrInactive)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("introspection: %w", err)
	}
	k := HashToken(token)
	if e, ok := s.lookup(k); ok {
		return e.result()
	}
	return s.wait(ctx, k, token)
}

// wait joins or starts the shared lookup of token and waits for it or for
// ctx, whichever ends first.
func (s *state) wait(ctx context.Context, k key, token string) (*Response, error) {
	s.mu.Lock()
	f, ok := s.flights[k]
	if ok {
		// Joining costs no request, so it is never refused.
		f.waiters++
		s.mu.Unlock()
		return s.await(ctx, k, f)
	}
	// A flight for this token may have finished between our cache miss
	// and now; it stores its answer before it leaves s.flights.
	if e, ok := s.lookup(k); ok {
		s.mu.Unlock()
		return e.result()
	}
	if err := s.admit(); err != nil {
		s.mu.Unlock()
		s.refused.Add(1)
		return nil, err
	}
	// The request keeps the first caller's ctx values, for logging, but
	// not its cancellation: it ends when its last caller leaves.
	fctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	f = &flight{done: make(chan struct{}), waiters: 1, cancel: cancel}
	s.flights[k] = f
	s.mu.Unlock()
	go s.run(fctx, k, token, f)
	return s.await(ctx, k, f)
}

// admit takes a slot for a new request, or says why there is none. It
// never waits: a queue of lookups would grow as fast as the tokens come.
func (s *state) admit() error {
	select {
	case s.slots <- struct{}{}:
	default:
		return overloaded(fmt.Sprintf("MaxInFlight (%d) requests in flight", cap(s.slots)))
	}
	// With a shared cache the rate is checked in the flight, after the
	// shared cache missed: RateLimit bounds requests to the server, and a
	// verdict another instance already has costs the server nothing.
	if s.limiter != nil && s.shared == nil && !s.limiter.Allow() {
		<-s.slots
		return overloaded(fmt.Sprintf("RateLimit (%g/s) reached", float64(s.limiter.Limit())))
	}
	return nil
}

// run makes the request of flight f and hands its outcome to the callers.
func (s *state) run(ctx context.Context, k key, token string, f *flight) {
	resp, err := s.fetchAndStore(ctx, k, token)
	f.cancel(nil)
	// The request is over: free its slot before the callers hear of it,
	// so that their next lookup finds it free.
	<-s.slots
	s.mu.Lock()
	if s.flights[k] == f {
		delete(s.flights, k)
	}
	s.mu.Unlock()
	f.resp, f.err = resp, err
	close(f.done)
}

// await waits for flight f or for ctx. A caller that stops waiting leaves
// the flight; the last one to leave cancels its request, which no one
// would read.
func (s *state) await(ctx context.Context, k key, f *flight) (*Response, error) {
	select {
	case <-f.done:
		return f.resp, f.err
	case <-ctx.Done():
	}
	s.mu.Lock()
	f.waiters--
	if f.waiters == 0 && s.flights[k] == f {
		// Out of s.flights first, so that no one joins a cancelled
		// request; a later caller starts a new one.
		delete(s.flights, k)
		f.cancel(errAbandoned)
	}
	s.mu.Unlock()
	return nil, fmt.Errorf("introspection: %w", ctx.Err())
}

// lookup answers from the cache, if it can.
func (s *state) lookup(k key) (entry, bool) {
	if s.cache == nil {
		return entry{}, false
	}
	e, ok := s.cache.get(k, s.now())
	if ok {
		s.hits.Add(1)
	}
	return e, ok
}

// fetchAndStore is the shared work of one coalesced lookup: the shared
// cache, if any, then the server. Calls to the shared cache are made here,
// in the flight, so that concurrent lookups of one token make one call,
// and no goroutine outlives the flight.
func (s *state) fetchAndStore(ctx context.Context, k key, token string) (*Response, error) {
	if s.shared != nil {
		if e, ok := s.sharedGet(ctx, k, token); ok {
			s.shared.hits.Add(1)
			s.cache.put(k, e, s.now())
			s.debug(ctx, "verdict from the shared cache", k.LogAttr())
			return e.result()
		}
		if s.limiter != nil && !s.limiter.Allow() {
			s.refused.Add(1)
			return nil, overloaded(fmt.Sprintf("RateLimit (%g/s) reached", float64(s.limiter.Limit())))
		}
	}
	fctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	start := time.Now()
	resp, err := s.fetch(fctx, token)
	now := s.now()
	hash := k.LogAttr()

	switch {
	case err == nil:
		s.debug(ctx, "token active", hash, slog.Duration("took", time.Since(start)))
		if s.cache != nil && s.activeTTL > 0 {
			until := now.Add(s.activeTTL)
			if resp.Exp != nil && resp.Exp.Before(until) {
				until = *resp.Exp
			}
			if now.Before(until) { // never keep an answer past exp
				resp.CacheUntil = until
				e := entry{resp: resp, expires: until}
				s.cache.put(k, e, now)
				if s.shared != nil {
					s.sharedPut(ctx, k, e, token, now)
				}
			}
		}
		return resp, nil
	case errors.Is(err, ErrInactive):
		s.debug(ctx, "token inactive", hash, slog.Duration("took", time.Since(start)))
		if s.cache != nil && s.inactiveTTL > 0 {
			e := entry{err: err, expires: now.Add(s.inactiveTTL)}
			s.cache.put(k, e, now)
			if s.shared != nil {
				s.sharedPut(ctx, k, e, token, now)
			}
		}
		return nil, err
	}
	ctx = fctx

	if errors.Is(context.Cause(ctx), errAbandoned) {
		// Not a failure of the server: no one wanted the answer any more.
		s.debug(ctx, "introspection abandoned by every caller", hash, slog.Duration("took", time.Since(start)))
		return nil, err
	}
	s.failures.Add(1)
	if s.log != nil {
		level, msg := slog.LevelWarn, "introspection failed"
		var e *Error
		if errors.As(err, &e) && e.CredentialsRejected() {
			level, msg = slog.LevelError, "introspection endpoint refused our client credentials"
		}
		s.log.LogAttrs(ctx, level, msg, hash, slog.String("endpoint", s.endpoint),
			slog.String("error", err.Error()), slog.Duration("took", time.Since(start)))
	}
	return nil, err
}

func (s *state) debug(ctx context.Context, msg string, attrs ...slog.Attr) {
	if s.log != nil {
		s.log.LogAttrs(ctx, slog.LevelDebug, msg, attrs...)
	}
}

// fetch makes one introspection request (RFC 7662 §2.1) and reads its
// answer (§2.2, §2.3). It returns ErrInactive for an inactive token.
func (s *state) fetch(ctx context.Context, token string) (*Response, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	if s.authMethod == AuthPost {
		form.Set("client_id", s.clientID)
		form.Set("client_secret", s.secret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, unavailable(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if s.basic != "" {
		req.Header.Set("Authorization", s.basic)
	}

	s.calls.Add(1)
	res, err := s.http.Do(req)
	if err != nil {
		return nil, unavailable(err)
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK && res.ContentLength > s.maxBytes {
		return nil, malformed("answer of %d bytes exceeds MaxResponseBytes (%d)", res.ContentLength, s.maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, s.maxBytes+1))
	if err != nil {
		return nil, unavailable(err)
	}

	if res.StatusCode != http.StatusOK {
		return nil, errorAnswer(res.StatusCode, body, token)
	}
	if int64(len(body)) > s.maxBytes {
		return nil, malformed("answer exceeds MaxResponseBytes (%d)", s.maxBytes)
	}
	ct := res.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
		return nil, malformed("answer is %q, not application/json", clean(ct, token))
	}
	resp, err := parseResponse(body)
	if err != nil {
		return nil, err
	}
	if !resp.Active {
		return nil, ErrInactive
	}
	return resp, nil
}

// errorAnswer makes an *Error of a non-200 answer, with its RFC 6749 §5.2
// members when the body is a JSON object that has them.
func errorAnswer(status int, body []byte, token string) *Error {
	e := &Error{StatusCode: status}
	var fields struct {
		Code        string `json:"error"`
		Description string `json:"error_description"`
		URI         string `json:"error_uri"`
	}
	if json.Unmarshal(body, &fields) == nil {
		e.Code = clean(fields.Code, token)
		e.Description = clean(fields.Description, token)
		e.URI = clean(fields.URI, token)
	}
	return e
}

package introspection

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// seenRequest is what the test server received, for assertions.
type seenRequest struct {
	Method, ContentType, Accept string
	Form                        url.Values
	BasicUser, BasicPass        string // form-unescaped, as RFC 6749 §2.3.1 asks
	HasBasic                    bool
	Authorization               string
}

// introServer is an httptest introspection endpoint that counts calls,
// records the last request and answers with answer.
type introServer struct {
	*httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	last   seenRequest
	answer http.HandlerFunc
}

// newIntroServer starts a server answering with answer; its URL plus
// "/introspect" is the endpoint.
func newIntroServer(tb testing.TB, answer http.HandlerFunc) *introServer {
	tb.Helper()
	s := &introServer{answer: answer}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		seen := seenRequest{
			Method:        r.Method,
			ContentType:   r.Header.Get("Content-Type"),
			Accept:        r.Header.Get("Accept"),
			Authorization: r.Header.Get("Authorization"),
		}
		if err := r.ParseForm(); err == nil {
			seen.Form = r.PostForm
		}
		if u, p, ok := r.BasicAuth(); ok {
			seen.HasBasic = true
			seen.BasicUser, _ = url.QueryUnescape(u)
			seen.BasicPass, _ = url.QueryUnescape(p)
		}
		s.mu.Lock()
		s.last = seen
		s.mu.Unlock()
		s.answer(w, r)
	}))
	tb.Cleanup(s.Close)
	return s
}

func (s *introServer) endpoint() string { return s.URL + "/introspect" }

func (s *introServer) lastRequest() seenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// answerJSON answers status with body as application/json.
func answerJSON(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// answerActive answers active with sub alice, expiring at exp.
func answerActive(exp time.Time) http.HandlerFunc {
	return answerJSON(http.StatusOK, fmt.Sprintf(
		`{"active":true,"sub":"alice","scope":"todos:read todos:write","exp":%d}`, exp.Unix()))
}

// answerByToken answers active for tokens starting with "good" and
// inactive for the rest.
func answerByToken(exp time.Time) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.PostForm.Get("token"), "good") {
			answerActive(exp)(w, r)
			return
		}
		answerJSON(http.StatusOK, `{"active":false}`)(w, r)
	}
}

// answerBlocked answers active once release is closed, or gives up when
// the request's context ends. started receives one value per request.
func answerBlocked(started chan<- struct{}, release <-chan struct{}, exp time.Time) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if started != nil {
			started <- struct{}{}
		}
		select {
		case <-release:
			answerActive(exp)(w, r)
		case <-r.Context().Done():
		}
	}
}

// newTestClient returns a Client for endpoint with basic credentials and
// short timeouts; edit changes it before use.
func newTestClient(tb testing.TB, endpoint string, edit func(*Client)) *Client {
	tb.Helper()
	c := &Client{
		Endpoint:     endpoint,
		ClientID:     "todo-api",
		ClientSecret: "s3cret",
		Timeout:      2 * time.Second,
	}
	if edit != nil {
		edit(c)
	}
	if err := c.Validate(); err != nil {
		tb.Fatalf("Validate: %v", err)
	}
	return c
}

package httpserve

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testbuf"
)

func TestWrap(t *testing.T) {
	tests := []struct {
		name       string
		path       string
		reqID      string
		handler    http.HandlerFunc
		wantStatus int
		wantID     string // "" = any generated id
		wantLog    []string
		notLog     []string
	}{
		{
			name: "ok with a caller's id", path: "/todos/7?access_token=SECRET", reqID: "abc-123",
			handler: func(w http.ResponseWriter, r *http.Request) {
				SetRoute(r, "/todos/:id")
				if RequestID(r.Context()) != "abc-123" {
					t.Errorf("RequestID = %q", RequestID(r.Context()))
				}
				w.WriteHeader(http.StatusCreated)
			},
			wantStatus: http.StatusCreated, wantID: "abc-123",
			wantLog: []string{`"route":"/todos/:id"`, `"status":201`, `"request_id":"abc-123"`, `"path":"/todos/7"`},
			notLog:  []string{"SECRET"},
		},
		{
			name: "insane id replaced", path: "/", reqID: "bad id\x00with spaces",
			handler:    func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hi") },
			wantStatus: http.StatusOK,
			wantLog:    []string{`"status":200`},
			notLog:     []string{"bad id"},
		},
		{
			name: "panic becomes a 500 problem", path: "/boom",
			handler:    func(w http.ResponseWriter, r *http.Request) { panic("kaboom") },
			wantStatus: http.StatusInternalServerError,
			wantLog:    []string{"panic in handler", `"status":500`, `"level":"ERROR"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf testbuf.Buffer
			logger := slog.New(slog.NewJSONHandler(&buf, nil))
			h := Wrap(tt.handler, logger)
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if tt.reqID != "" {
				req.Header.Set("X-Request-Id", tt.reqID)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			id := rec.Header().Get("X-Request-Id")
			if tt.wantID != "" && id != tt.wantID || !requestIDPattern.MatchString(id) {
				t.Errorf("X-Request-Id = %q", id)
			}
			if tt.wantStatus == http.StatusInternalServerError {
				var p map[string]any
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p["status"] != float64(500) {
					t.Errorf("body %q is not a 500 problem", rec.Body.String())
				}
			}
			out := buf.String()
			for _, s := range tt.wantLog {
				if !strings.Contains(out, s) {
					t.Errorf("log lacks %s:\n%s", s, out)
				}
			}
			for _, s := range tt.notLog {
				if strings.Contains(out, s) {
					t.Errorf("log holds %q:\n%s", s, out)
				}
			}
		})
	}
}

// TestServeGracefulShutdown: a request in flight when the context ends
// finishes; Serve then returns nil.
func TestServeGracefulShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		_, _ = io.WriteString(w, "done")
	})
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	go func() {
		errc <- Serve(ctx, ln, h, Options{Logger: slog.New(slog.DiscardHandler), ShutdownTimeout: 5 * time.Second, Ready: func(a net.Addr) { ready <- a }})
	}()
	addr := <-ready
	body := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr.String() + "/")
		if err != nil {
			body <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body <- string(b)
	}()
	<-started
	cancel()
	if got := <-body; got != "done" {
		t.Errorf("in-flight request got %q", got)
	}
	if err := <-errc; err != nil {
		t.Errorf("Serve = %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr.String(), time.Second); err == nil {
		t.Error("still accepting connections after shutdown")
	}
}

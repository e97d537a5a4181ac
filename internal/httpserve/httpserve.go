// Package httpserve serves Tollgate's three programs (the todo API, the
// exchange and devidp) the same way: one set of server timeouts, graceful
// shutdown when the process context ends, and one request wrapper that gives
// each request an id, recovers from panics and logs one line per request.
//
// The request line never holds the query string, a header other than the
// request id, a cookie or a body: those carry tokens, codes and secrets.
package httpserve

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"time"
)

// DefaultShutdownTimeout is how long Serve lets requests in flight finish
// when Options.ShutdownTimeout is zero.
const DefaultShutdownTimeout = 20 * time.Second

// Options are what Serve needs besides the listener and the handler.
type Options struct {
	// Logger receives the listening and shutdown lines and the server's own
	// errors (bad TLS handshakes, header parse errors). Default slog.Default().
	Logger *slog.Logger
	// ShutdownTimeout bounds graceful shutdown. Default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Ready, when not nil, is called with the bound address once the server
	// accepts connections (tests and the development launcher use it).
	Ready func(net.Addr)
}

// Serve serves h on ln until ctx ends, then shuts down gracefully: it stops
// accepting connections and lets requests in flight finish, for at most
// opts.ShutdownTimeout. It closes ln.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, opts Options) error {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	timeout := opts.ShutdownTimeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String())
	if opts.Ready != nil {
		opts.Ready(ln.Addr())
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

type ctxKey struct{}

// requestInfo is what the wrapper shares with the handlers below it.
type requestInfo struct {
	id    string
	route string
}

// RequestID returns the id Wrap gave the request, or "" outside Wrap.
func RequestID(ctx context.Context) string {
	if ri, ok := ctx.Value(ctxKey{}).(*requestInfo); ok {
		return ri.id
	}
	return ""
}

// SetRoute names the route that matched r (a pattern such as
// "/todos/:id", never the raw path), for the request line and panic logs.
// Routers call it once they have matched; without it the line says the
// path.
func SetRoute(r *http.Request, route string) {
	if ri, ok := r.Context().Value(ctxKey{}).(*requestInfo); ok {
		ri.route = route
	}
}

// Wrap gives each request an id (the caller's X-Request-Id when it is
// sane, echoed in the answer), turns a panic in h into a 500 problem logged
// without request data, and logs one line when the request ends: id,
// method, path, route, status and duration.
func Wrap(h http.Handler, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.Default()
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-Id")
		if !requestIDPattern.MatchString(id) {
			id = rand.Text()[:16]
		}
		w.Header().Set("X-Request-Id", id)
		ri := &requestInfo{id: id}
		r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, ri))
		rec := &statusRecorder{ResponseWriter: w}
		defer func() {
			if v := recover(); v != nil {
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				logger.LogAttrs(r.Context(), slog.LevelError, "panic in handler",
					slog.String("request_id", id), slog.String("route", ri.route), slog.Any("panic", v))
				if !rec.wrote {
					WriteProblem(rec, http.StatusInternalServerError, "internal error")
				}
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			level := slog.LevelInfo
			if status >= 500 {
				level = slog.LevelError
			}
			logger.LogAttrs(r.Context(), level, "request",
				slog.String("request_id", id),
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.String("route", ri.route),
				slog.Int("status", status),
				slog.Duration("duration", time.Since(start)),
			)
		}()
		h.ServeHTTP(rec, r)
	})
}

// WriteProblem writes an RFC 9457 problem with fixed detail text.
func WriteProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail,
	})
}

// statusRecorder remembers the status written through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushing,
// deadlines).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

package exchange

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tollgate-dev/tollgate/internal/metriclabel"
)

// metrics are the exchange's Prometheus series, on a registry of its own so
// that tests can run several servers in one process.
type metrics struct {
	registry  *prometheus.Registry
	requests  *prometheus.CounterVec
	logins    prometheus.Counter
	callbacks *prometheus.CounterVec
	refreshes *prometheus.CounterVec
	logouts   *prometheus.CounterVec
	tokenCall *prometheus.HistogramVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exchange_http_requests_total",
			Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		logins: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "exchange_logins_total",
			Help: "Login attempts started (GET /login).",
		}),
		callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exchange_callbacks_total",
			Help: "Callbacks by outcome: ok, bad_state, iss_mismatch, access_denied, authorization_error, expired_code, token_error, unavailable, id_token_invalid, too_large.",
		}, []string{"outcome"}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exchange_refreshes_total",
			Help: "POST /refreshtoken by outcome: ok, shared (joined a refresh in flight or reused one within the grace window), no_cookie, ambiguous_cookie (two different refresh or session cookies), subject_mismatch (the refresh cookie, session or refreshed ID token name different subjects), invalid_grant, unavailable, store_unavailable (STORE_URL's store did not answer: 503), error, too_large.",
		}, []string{"outcome"}),
		logouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "exchange_logouts_total",
			Help: "DELETE /refreshtoken by revocation result (the answer's revocation field): ok (the refresh token, then the access token, each revoked with 200), failed (a revocation attempted did not answer 200), none (nothing to revoke), no_revocation_endpoint (tokens to revoke, but the issuer names no revocation_endpoint), ambiguous_cookie (two different refresh or access cookies: no token of that kind revoked, the other kind still).",
		}, []string{"revocation"}),
		tokenCall: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "exchange_token_endpoint_duration_seconds",
			Help:    "Token endpoint latency by grant type and result (ok, oauth_error, unavailable).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"grant", "result"}),
	}
	m.registry.MustRegister(m.requests, m.logins, m.callbacks, m.refreshes, m.logouts, m.tokenCall,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// observe runs h and counts the request by its route pattern. A handler
// that panics is not counted.
func (m *metrics) observe(route string, h http.HandlerFunc, w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w}
	h(rec, r)
	m.requests.WithLabelValues(route, metriclabel.Method(r.Method), strconv.Itoa(rec.status())).Inc()
}

// statusRecorder remembers the status written through it.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// status is the status written, or 200 when nothing was, as net/http then
// answers.
func (r *statusRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}

// Unwrap lets http.ResponseController reach the connection.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (m *metrics) observeToken(grant, result string, start time.Time) {
	m.tokenCall.WithLabelValues(grant, result).Observe(time.Since(start).Seconds())
}

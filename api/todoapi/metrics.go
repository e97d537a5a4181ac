package todoapi

import (
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tollgate-dev/tollgate/internal/metriclabel"
	"github.com/tollgate-dev/tollgate/middleware"
)

// metrics are the todo API's Prometheus series, on a registry of their own
// so that tests can run several servers in one process.
type metrics struct {
	registry   *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	auth       *prometheus.CounterVec
	keyRefresh *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "todo_api_http_requests_total",
			Help: "HTTP requests by route, method and status.",
		}, []string{"route", "method", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "todo_api_http_request_duration_seconds",
			Help:    "HTTP request latency by route and method.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "todo_api_auth_outcomes_total",
			Help: "Authentication outcomes by reason (ok or why the request was refused), cache use and token source.",
		}, []string{"reason", "cached", "source"}),
		keyRefresh: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "todo_api_jwks_refreshes_total",
			Help: "JWKS fetches by result.",
		}, []string{"result"}),
	}
	m.registry.MustRegister(m.requests, m.latency, m.auth, m.keyRefresh,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) onOutcome(o middleware.Outcome) {
	m.auth.WithLabelValues(o.Reason, strconv.FormatBool(o.Cached), o.Source).Inc()
}

func (m *metrics) onKeyRefresh(err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.keyRefresh.WithLabelValues(result).Inc()
}

// observe counts every request by its route pattern (never the raw path,
// which would make a series per todo id).
func (m *metrics) observe() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		method := metriclabel.Method(c.Request.Method)
		m.requests.WithLabelValues(route, method, strconv.Itoa(c.Writer.Status())).Inc()
		m.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	}
}

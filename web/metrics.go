package web

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are updraft's Prometheus metrics. The web server serves them at
// /metrics; the other components feed the histograms through the Observe
// functions cmd wires into them. Gauges of state (DAGs, runs and task
// instances by state, the queue, the alert outbox, the git sync) are read
// when Prometheus scrapes.
type Metrics struct {
	reg          *prometheus.Registry
	http         *prometheus.HistogramVec
	step         prometheus.Histogram
	tryDuration  *prometheus.HistogramVec
	podStartWait prometheus.Histogram
}

// NewMetrics creates the registry with the Go runtime's and the process's
// collectors.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.http = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "updraft_http_request_duration_seconds",
		Help: "HTTP request latency by route.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 10)}, []string{"route", "method", "code"})
	m.step = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "updraft_scheduler_loop_duration_seconds",
		Help: "Time of one scheduling step.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 10)})
	m.tryDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "updraft_task_try_duration_seconds",
		Help: "Duration of finished tries by outcome.", Buckets: prometheus.ExponentialBuckets(0.5, 3, 10)}, []string{"state"})
	m.podStartWait = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "updraft_pod_start_latency_seconds",
		Help: "Time from creating a try's pod to its container running.", Buckets: prometheus.ExponentialBuckets(0.25, 2, 10)})
	m.reg.MustRegister(m.http, m.step, m.tryDuration, m.podStartWait)
	return m
}

// ObserveStep records one scheduling step.
func (m *Metrics) ObserveStep(d time.Duration) { m.step.Observe(d.Seconds()) }

// ObserveTry records a finished try.
func (m *Metrics) ObserveTry(state string, d time.Duration) {
	m.tryDuration.WithLabelValues(state).Observe(d.Seconds())
}

// ObservePodStart records how long a pod took to start.
func (m *Metrics) ObservePodStart(d time.Duration) { m.podStartWait.Observe(d.Seconds()) }

// instrument times every request by its route pattern (not its path, which
// would make a series per run id).
func (m *Metrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rw, r)
		route := "unmatched"
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			route = rc.RoutePattern()
		}
		m.http.WithLabelValues(route, r.Method, strconv.Itoa(rw.code)).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// stateCollector reads the state gauges at scrape time.
type stateCollector struct{ s *Server }

var (
	descDAGs        = prometheus.NewDesc("updraft_dags", "DAGs loaded.", nil, nil)
	descImportErrs  = prometheus.NewDesc("updraft_dag_import_errors", "DAG import errors in the latest load.", nil, nil)
	descKept        = prometheus.NewDesc("updraft_dags_kept_last_good", "DAGs serving their last good version because their file has errors.", nil, nil)
	descLoaded      = prometheus.NewDesc("updraft_dag_load_timestamp_seconds", "When the DAGs were last loaded.", nil, nil)
	descRuns        = prometheus.NewDesc("updraft_dag_runs", "DAG runs by state.", []string{"state"}, nil)
	descTIs         = prometheus.NewDesc("updraft_task_instances", "Task instances by state.", []string{"state"}, nil)
	descQueue       = prometheus.NewDesc("updraft_queue_depth", "Task instances scheduled or queued, waiting for an executor slot.", nil, nil)
	descAlerts      = prometheus.NewDesc("updraft_alerts", "Alerts in the outbox by state.", []string{"state"}, nil)
	descAlertsPend  = prometheus.NewDesc("updraft_alerts_pending", "Alerts waiting for the webhook (the outbox depth).", nil, nil)
	descGitAttempts = prometheus.NewDesc("updraft_git_sync_attempts_total", "Git sync attempts.", nil, nil)
	descGitChanges  = prometheus.NewDesc("updraft_git_sync_revisions_total", "New revisions published.", nil, nil)
	descGitFailures = prometheus.NewDesc("updraft_git_sync_consecutive_failures", "Failed git syncs since the last success.", nil, nil)
	descGitSuccess  = prometheus.NewDesc("updraft_git_sync_last_success_timestamp_seconds", "When a git sync last succeeded.", nil, nil)
	descGitRevision = prometheus.NewDesc("updraft_git_sync_revision_timestamp_seconds", "When the serving revision was published.", nil, nil)
	descHeartbeat   = prometheus.NewDesc("updraft_scheduler_heartbeat_timestamp_seconds", "When the scheduling loop last beat.", nil, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDAGs, descImportErrs, descKept, descLoaded, descRuns, descTIs, descQueue, descAlerts,
		descAlertsPend, descGitAttempts, descGitChanges, descGitFailures, descGitSuccess, descGitRevision, descHeartbeat} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	res, at := s.bag.Current()
	gauge(descDAGs, float64(len(res.DAGs)))
	gauge(descImportErrs, float64(len(res.Problems().Errors())))
	kept := 0
	for _, f := range res.Files {
		kept += len(f.Kept)
	}
	gauge(descKept, float64(kept))
	if !at.IsZero() {
		gauge(descLoaded, float64(at.Unix()))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if runs, tis, err := s.st.StateCounts(ctx); err == nil {
		for st, n := range runs {
			gauge(descRuns, float64(n), st)
		}
		for st, n := range tis {
			gauge(descTIs, float64(n), st)
		}
		gauge(descQueue, float64(tis["scheduled"]+tis["queued"]))
	} else {
		s.log.Error("metrics: read state counts", "err", err)
	}
	if counts, err := s.st.CountAlerts(ctx); err == nil {
		for st, n := range counts {
			gauge(descAlerts, float64(n), st)
		}
		gauge(descAlertsPend, float64(counts["pending"]))
	}
	if hb := s.opt.Heartbeat(); !hb.IsZero() {
		gauge(descHeartbeat, float64(hb.Unix()))
	}
	if s.git != nil {
		st := s.git.Status()
		counter(descGitAttempts, float64(st.Syncs))
		counter(descGitChanges, float64(st.Changes))
		gauge(descGitFailures, float64(st.ConsecutiveFailures))
		if !st.LastSuccess.IsZero() {
			gauge(descGitSuccess, float64(st.LastSuccess.Unix()))
		}
		if !st.Current.At.IsZero() {
			gauge(descGitRevision, float64(st.Current.At.Unix()))
		}
	}
}

// metricsHandler serves /metrics from the server's registry.
func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{ErrorLog: nil})
}

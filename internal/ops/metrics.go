package ops

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every metric of the service.
const Namespace = "authz_consumer"

// Outcomes of an event, as migrator.Outcome spells them; their series are
// created at zero so rate() and absence alerts work from the first scrape.
var Outcomes = []string{"ran", "noop", "ignored", "disabled", "parked", "waiting", "duplicate"}

// RunTypes and RunStatuses (final ones) are created at zero for the same reason.
var (
	RunTypes    = []string{"forward", "rollback"}
	RunStatuses = []string{"completed", "partial_success", "failed", "skipped"}
)

// Metrics holds the service's Prometheus metrics. A nil *Metrics is valid
// and records nothing, for commands and tests that do not serve /metrics.
// All methods are safe for concurrent use.
type Metrics struct {
	events        *prometheus.CounterVec
	runs          *prometheus.CounterVec
	runDuration   *prometheus.HistogramVec
	lockWait      prometheus.Histogram
	lag           *prometheus.GaugeVec
	parkedTotal   prometheus.Counter
	parkedPending prometheus.Gauge
	retries       *prometheus.CounterVec
	sweepScopes   prometheus.Counter
	sweepDrift    prometheus.Counter
	globalFlips   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them, with the Go runtime
// and process collectors, on reg (nil: not registered). Give each Metrics
// its own registry (prometheus.NewRegistry()); registering the service
// metrics twice on one registry panics. Go and process collectors already
// on reg (as on prometheus.DefaultRegisterer) are left as they are.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "events_total",
			Help: "Events handled, by outcome (ran, noop, ignored, disabled, parked, waiting, duplicate).",
		}, []string{"outcome"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "runs_total",
			Help: "Migration runs finished, by type (forward, rollback) and final status.",
		}, []string{"type", "status"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "run_duration_seconds",
			Help:    "Wall time of a migration run, lock wait excluded, by type.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}, []string{"type"}),
		lockWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "lock_wait_seconds",
			Help:    "Time spent waiting for the per-org advisory lock before a run.",
			Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300},
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "lag",
			Help: "Messages between the partition's high watermark and the next offset this replica will handle.",
		}, []string{"partition"}),
		parkedTotal: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "parked_total",
			Help: "Events parked (malformed, unknown, or never visible) since the process started.",
		}),
		parkedPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "parked_pending",
			Help: "Parked events not yet re-driven, as last counted in the parked table.",
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "retries_total",
			Help: "Transient failures retried with backoff, by reason (database, broker, not_visible, registry).",
		}, []string{"reason"}),
		sweepScopes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "sweep_scopes_total",
			Help: "Scopes the sweep reconciled (their override rows changed since the last sweep).",
		}),
		sweepDrift: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "sweep_drift_total",
			Help: "Scopes the sweep found with roles on the wrong side, and moved (a lost event, or a global flip reconciled).",
		}),
		globalFlips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "global_flips_total",
			Help: "Changes of the watched flag for everyone (waffle_flag.everyone) seen by the sweep, by the new state.",
		}, []string{"state"}),
	}
	for _, o := range Outcomes {
		m.events.WithLabelValues(o)
	}
	for _, st := range []string{"on", "off"} {
		m.globalFlips.WithLabelValues(st)
	}
	for _, t := range RunTypes {
		m.runDuration.WithLabelValues(t)
		for _, s := range RunStatuses {
			m.runs.WithLabelValues(t, s)
		}
	}
	if reg != nil {
		reg.MustRegister(m.events, m.runs, m.runDuration, m.lockWait, m.lag, m.parkedTotal, m.parkedPending, m.retries,
			m.sweepScopes, m.sweepDrift, m.globalFlips)
		registerShared(reg, collectors.NewGoCollector())
		registerShared(reg, collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// RegisterBuildInfo adds authz_consumer_build_info, always 1, whose labels
// say which build is running (version, VCS revision, Go version), so a
// dashboard can tell which pods run which build.
func RegisterBuildInfo(reg prometheus.Registerer, version, revision, goVersion string) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "build_info",
		Help:        "Always 1; the labels name the running build (version, revision, goversion).",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	registerShared(reg, g)
}

// registerShared registers a collector that may already be on reg.
func registerShared(reg prometheus.Registerer, c prometheus.Collector) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			panic(err)
		}
	}
}

// Sweep records what one sweep did: scopes reconciled, scopes found with
// roles on the wrong side, and the flag's new state for everyone when it
// flipped ("" when not).
func (m *Metrics) Sweep(scopes, drift int, globalFlip string) {
	if m == nil {
		return
	}
	m.sweepScopes.Add(float64(scopes))
	m.sweepDrift.Add(float64(drift))
	if globalFlip != "" {
		m.globalFlips.WithLabelValues(globalFlip).Inc()
	}
}

// Event counts one handled event by its outcome (migrator.Outcome as a string).
func (m *Metrics) Event(outcome string) {
	if m == nil {
		return
	}
	m.events.WithLabelValues(outcome).Inc()
}

// Run records one finished run: typ is forward or rollback, status its final
// status, d the time from lock acquired to commit or rollback.
func (m *Metrics) Run(typ, status string, d time.Duration) {
	if m == nil {
		return
	}
	m.runs.WithLabelValues(typ, status).Inc()
	m.runDuration.WithLabelValues(typ).Observe(d.Seconds())
}

// LockWait records how long a run waited for its org's advisory lock.
func (m *Metrics) LockWait(d time.Duration) {
	if m == nil {
		return
	}
	m.lockWait.Observe(d.Seconds())
}

// SetLag sets the lag of one assigned partition.
func (m *Metrics) SetLag(partition int, lag int64) {
	if m == nil {
		return
	}
	m.lag.WithLabelValues(strconv.Itoa(partition)).Set(float64(lag))
}

// ForgetLag drops the lag series of every partition, for when a rebalance
// takes partitions away from this replica; the new owner reports them.
func (m *Metrics) ForgetLag() {
	if m == nil {
		return
	}
	m.lag.Reset()
}

// Parked counts one event parked by this process.
func (m *Metrics) Parked() {
	if m == nil {
		return
	}
	m.parkedTotal.Inc()
}

// SetParkedPending sets how many parked events wait for a re-drive. Count
// them in the parked table (re-drives happen in other processes) at start,
// after each park, and periodically.
func (m *Metrics) SetParkedPending(n int) {
	if m == nil {
		return
	}
	m.parkedPending.Set(float64(n))
}

// Retry counts one transient failure retried with backoff. Keep reason to a
// few fixed words (database, broker, not_visible, registry).
func (m *Metrics) Retry(reason string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(reason).Inc()
}

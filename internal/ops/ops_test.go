package ops_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/ops"
)

// fixture is a running Server on a free port of 127.0.0.1.
type fixture struct {
	srv     *ops.Server
	base    string
	metrics *ops.Metrics
	stop    func() error
}

func newFixture(t *testing.T, checks ...ops.ReadyCheck) *fixture {
	t.Helper()
	return newFixtureTimeout(t, 200*time.Millisecond, checks...)
}

func newFixtureTimeout(t *testing.T, checkTimeout time.Duration, checks ...ops.ReadyCheck) *fixture {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := ops.NewMetrics(reg)
	srv := ops.NewServer("127.0.0.1:0", reg, checks...)
	srv.CheckTimeout = checkTimeout
	require.NoError(t, srv.Listen())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	var stopped bool
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return &fixture{srv: srv, base: "http://" + srv.Addr(), metrics: m, stop: stop}
}

func (f *fixture) get(t *testing.T, path string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, f.base+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body), resp.Header
}

func TestHealthz(t *testing.T) {
	f := newFixture(t)
	require.NotContains(t, f.srv.Addr(), ":0", "Addr reports the bound port")
	code, body, _ := f.get(t, "/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)
}

func TestReadyz(t *testing.T) {
	var dbErr atomic.Pointer[error]
	joined := atomic.Bool{}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hang := atomic.Bool{}

	f := newFixture(t,
		ops.ReadyCheck{Name: "database", Check: func(ctx context.Context) error {
			if p := dbErr.Load(); p != nil {
				return *p
			}
			return nil
		}},
		ops.ReadyCheck{Name: "consumer group joined", Check: func(ctx context.Context) error {
			if hang.Load() {
				<-release // ignores ctx on purpose: the server must not wait for it
			}
			if !joined.Load() {
				return errors.New("no partitions assigned yet")
			}
			return nil
		}},
	)

	code, body, _ := f.get(t, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Equal(t, "not ready\ndatabase: ok\nconsumer group joined: failed: no partitions assigned yet\n", body)

	joined.Store(true)
	code, body, _ = f.get(t, "/readyz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ready\ndatabase: ok\nconsumer group joined: ok\n", body)

	e := errors.New("dial tcp 127.0.0.1:3306: connect: connection refused")
	dbErr.Store(&e)
	hang.Store(true)
	for _, tc := range []struct{ path, header string }{{"/readyz?format=json", ""}, {"/readyz", "application/json"}} {
		var code int
		var body string
		var h http.Header
		if tc.header != "" {
			code, body, h = f.get(t, tc.path, "Accept", tc.header)
		} else {
			code, body, h = f.get(t, tc.path)
		}
		require.Equal(t, http.StatusServiceUnavailable, code)
		require.Equal(t, "application/json", h.Get("Content-Type"))
		var res ops.Readiness
		require.NoError(t, json.Unmarshal([]byte(body), &res), body)
		require.Equal(t, ops.Readiness{Ready: false, Checks: []ops.CheckResult{
			{Name: "database", Error: "dial tcp 127.0.0.1:3306: connect: connection refused"},
			{Name: "consumer group joined", Error: "no answer within 200ms"},
		}}, res)
	}
}

func TestReadyzWithoutChecksIsReady(t *testing.T) {
	f := newFixture(t)
	code, body, _ := f.get(t, "/readyz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ready\n", body)
}

func TestReadyzPanickingCheck(t *testing.T) {
	f := newFixture(t, ops.ReadyCheck{Name: "broken", Check: func(context.Context) error { panic("boom") }})
	code, body, _ := f.get(t, "/readyz")
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.Contains(t, body, "broken: failed: check panicked: boom")
}

func TestMetricsOverHTTP(t *testing.T) {
	f := newFixture(t)
	m := f.metrics
	m.Event("ran")
	m.Event("ran")
	m.Event("parked")
	m.Run("forward", "completed", 1500*time.Millisecond)
	m.Run("rollback", "failed", 20*time.Millisecond)
	m.LockWait(3 * time.Millisecond)
	m.SetLag(0, 42)
	m.SetLag(3, 7)
	m.Parked()
	m.SetParkedPending(5)
	m.Retry("database")

	code, body, _ := f.get(t, "/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, line := range []string{
		`authz_consumer_events_total{outcome="ran"} 2`,
		`authz_consumer_events_total{outcome="parked"} 1`,
		`authz_consumer_events_total{outcome="noop"} 0`,
		`authz_consumer_runs_total{status="completed",type="forward"} 1`,
		`authz_consumer_runs_total{status="failed",type="rollback"} 1`,
		`authz_consumer_runs_total{status="partial_success",type="forward"} 0`,
		`authz_consumer_run_duration_seconds_count{type="forward"} 1`,
		`authz_consumer_run_duration_seconds_sum{type="forward"} 1.5`,
		`authz_consumer_run_duration_seconds_bucket{type="forward",le="2.5"} 1`,
		`authz_consumer_run_duration_seconds_bucket{type="forward",le="1"} 0`,
		`authz_consumer_lock_wait_seconds_count 1`,
		`authz_consumer_lag{partition="0"} 42`,
		`authz_consumer_lag{partition="3"} 7`,
		`authz_consumer_parked_total 1`,
		`authz_consumer_parked_pending 5`,
		`authz_consumer_retries_total{reason="database"} 1`,
		`# TYPE go_goroutines gauge`,
		`# TYPE process_cpu_seconds_total counter`,
	} {
		require.Contains(t, body, line+"\n")
	}

	m.ForgetLag()
	_, body, _ = f.get(t, "/metrics")
	require.NotContains(t, body, "authz_consumer_lag{")
}

func TestRunShutsDownOnCancel(t *testing.T) {
	f := newFixture(t)
	code, _, _ := f.get(t, "/healthz")
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, f.stop())
	_, err := http.Get(f.base + "/healthz")
	require.Error(t, err, "nothing listens after Run returned")
}

func TestRunWaitsForOpenRequest(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	f := newFixtureTimeout(t, time.Minute, ops.ReadyCheck{Name: "slow", Check: func(ctx context.Context) error {
		close(entered)
		<-release
		return nil
	}})

	type answer struct {
		code int
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Get(f.base + "/readyz")
		if err != nil {
			got <- answer{err: err}
			return
		}
		resp.Body.Close()
		got <- answer{code: resp.StatusCode}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- f.stop() }()
	// Shutdown has begun once the listener refuses new connections.
	addr := strings.TrimPrefix(f.base, "http://")
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			break
		}
		c.Close()
		require.True(t, time.Now().Before(deadline), "listener still open 10s after cancel")
		runtime.Gosched()
	}
	close(release)
	a := <-got
	require.NoError(t, a.err, "an open request is answered during shutdown")
	require.Equal(t, http.StatusOK, a.code)
	require.NoError(t, <-stopped)
}

func TestListenAddressInUse(t *testing.T) {
	f := newFixture(t)
	other := ops.NewServer(f.srv.Addr(), prometheus.NewRegistry())
	err := other.Run(context.Background())
	require.ErrorContains(t, err, "listen on "+f.srv.Addr())
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *ops.Metrics
	m.Event("ran")
	m.Run("forward", "completed", time.Second)
	m.LockWait(time.Second)
	m.SetLag(1, 1)
	m.ForgetLag()
	m.Parked()
	m.SetParkedPending(1)
	m.Retry("broker")
	m.Sweep(3, 1, "on")
	require.NotNil(t, ops.NewMetrics(nil), "metrics without a registry still work")
}

func TestNewMetricsBesideExistingRuntimeCollectors(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	require.NotPanics(t, func() { ops.NewMetrics(reg) })
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var names []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), ops.Namespace+"_") {
			names = append(names, mf.GetName())
		}
	}
	require.ElementsMatch(t, []string{
		"authz_consumer_events_total", "authz_consumer_runs_total", "authz_consumer_run_duration_seconds",
		"authz_consumer_lock_wait_seconds", "authz_consumer_parked_total", "authz_consumer_parked_pending",
		"authz_consumer_sweep_scopes_total", "authz_consumer_sweep_drift_total", "authz_consumer_global_flips_total",
	}, names, "series created at zero are exposed before the first event")
}

package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Defaults of a Server; change the fields before Listen or Run.
const (
	DefaultCheckTimeout    = 2 * time.Second
	DefaultShutdownTimeout = 5 * time.Second
)

// ReadyCheck is one condition of readiness, e.g. {"database", db.Ping} or
// {"consumer group joined", consumer.Joined}. Check gets a context bounded
// by the server's CheckTimeout and returns nil when the condition holds;
// its error text is shown to whoever calls /readyz, so it must not hold
// secrets.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Server serves /healthz, /readyz and /metrics.
type Server struct {
	// CheckTimeout bounds each readiness check.
	CheckTimeout time.Duration
	// ShutdownTimeout bounds the wait for open requests when Run stops.
	ShutdownTimeout time.Duration
	// Logger, when set, gets readiness changes and server errors.
	Logger *slog.Logger

	addr    string
	checks  []ReadyCheck
	gather  prometheus.Gatherer
	handler http.Handler

	mu        sync.Mutex
	ln        net.Listener
	lastReady *bool // nil until the first /readyz, for logging changes only
}

// NewServer builds a server that will listen on addr ("127.0.0.1:0" picks a
// free port; see Addr). g is what /metrics serves, usually the registry
// given to NewMetrics. Checks run concurrently on every /readyz.
func NewServer(addr string, g prometheus.Gatherer, checks ...ReadyCheck) *Server {
	s := &Server{
		CheckTimeout:    DefaultCheckTimeout,
		ShutdownTimeout: DefaultShutdownTimeout,
		addr:            addr,
		checks:          checks,
		gather:          g,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	s.handler = mux
	return s
}

// Handler serves the three endpoints without a listener of the server's own.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen binds the address now, so a port in use fails at start rather than
// inside Run. Run calls it when it has not been called.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.addr, err)
	}
	s.ln = ln
	return nil
}

// Addr is the bound address (host:port) after Listen, or the configured
// address before.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.addr
}

// Run serves until ctx is done, then stops accepting connections and waits
// up to ShutdownTimeout for open requests. It returns nil after a clean
// shutdown. /healthz answers for as long as Run runs: give it a context that
// ends after the consumer has drained, not the one SIGTERM cancels.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()

	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if s.Logger != nil {
		srv.ErrorLog = slog.NewLogLogger(s.Logger.Handler(), slog.LevelWarn)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	select {
	case err := <-served:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
		return fmt.Errorf("shut down %s: %w", ln.Addr(), err)
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	}
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

// CheckResult is one entry of the /readyz answer.
type CheckResult struct {
	Name  string `json:"name"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Readiness is the /readyz answer in JSON (ask with ?format=json or
// Accept: application/json).
type Readiness struct {
	Ready  bool          `json:"ready"`
	Checks []CheckResult `json:"checks"`
}

// Ready runs every check concurrently, each bounded by CheckTimeout, and
// returns the results in the order the checks were given.
func (s *Server) Ready(ctx context.Context) Readiness {
	res := Readiness{Ready: true, Checks: make([]CheckResult, len(s.checks))}
	var wg sync.WaitGroup
	for i, c := range s.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res.Checks[i] = s.runCheck(ctx, c)
		}()
	}
	wg.Wait()
	for _, c := range res.Checks {
		res.Ready = res.Ready && c.OK
	}
	return res
}

// runCheck waits for the check or its timeout, whichever comes first; a
// check that ignores its context is left to finish in the background.
func (s *Server) runCheck(ctx context.Context, c ReadyCheck) CheckResult {
	ctx, cancel := context.WithTimeout(ctx, s.CheckTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		done <- c.Check(ctx)
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = fmt.Errorf("no answer within %s", s.CheckTimeout)
	}
	if err != nil {
		return CheckResult{Name: c.Name, Error: err.Error()}
	}
	return CheckResult{Name: c.Name, OK: true}
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	res := s.Ready(r.Context())
	s.logChange(res)
	status := http.StatusOK
	if !res.Ready {
		status = http.StatusServiceUnavailable
	}
	if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(res)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	var b strings.Builder
	if res.Ready {
		b.WriteString("ready\n")
	} else {
		b.WriteString("not ready\n")
	}
	for _, c := range res.Checks {
		if c.OK {
			fmt.Fprintf(&b, "%s: ok\n", c.Name)
		} else {
			fmt.Fprintf(&b, "%s: failed: %s\n", c.Name, c.Error)
		}
	}
	_, _ = w.Write([]byte(b.String()))
}

// logChange logs when readiness flips, not on every probe.
func (s *Server) logChange(res Readiness) {
	if s.Logger == nil {
		return
	}
	s.mu.Lock()
	changed := s.lastReady == nil || *s.lastReady != res.Ready
	ready := res.Ready
	s.lastReady = &ready
	s.mu.Unlock()
	if !changed {
		return
	}
	if res.Ready {
		s.Logger.Info("ready")
		return
	}
	var failing []string
	for _, c := range res.Checks {
		if !c.OK {
			failing = append(failing, c.Name+": "+c.Error)
		}
	}
	s.Logger.Warn("not ready", "failing", failing)
}

package kafka_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Waits of the tests: generous, because CI shares 2 cores; every wait polls
// and returns as soon as its condition holds.
const (
	waitLimit = 120 * time.Second
	pollEvery = 50 * time.Millisecond
)

// settings are the AUTHZ_CONSUMER_* variables of one process.
type settings map[string]string

func (s settings) env() []string {
	env := baseEnv()
	for k, v := range s {
		env = append(env, "AUTHZ_CONSUMER_"+k+"="+v)
	}
	return env
}

// with returns a copy of s with more settings.
func (s settings) with(kv ...string) settings {
	out := make(settings, len(s)+len(kv)/2)
	for k, v := range s {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// logLine is one JSON log line of a consumer process.
type logLine map[string]any

func (l logLine) str(k string) string {
	v, _ := l[k].(string)
	return v
}

func (l logLine) num(k string) int64 {
	switch v := l[k].(type) {
	case float64:
		return int64(v)
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return -1
}

// proc is a `consumer` subprocess whose stderr (JSON log lines) is kept
// in memory and in a file of the test's temp dir.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the Wait result, once done is closed

	mu    sync.Mutex
	lines []logLine
	raw   []string
}

// start runs the binary with args and settings. The process is killed at
// the end of the test if it still runs; on failure its last log lines are
// printed.
func start(t testing.TB, name string, s settings, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan struct{})}
	p.cmd = exec.Command(binPath, args...)
	p.cmd.Env = s.env()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	stderr, err := p.cmd.StderrPipe()
	require.NoError(t, err)
	p.cmd.Stdout = f
	require.NoError(t, p.cmd.Start(), "start %s", name)
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(f, line)
			var l logLine
			if json.Unmarshal([]byte(line), &l) != nil {
				l = logLine{"msg": line}
			}
			p.mu.Lock()
			p.lines = append(p.lines, l)
			p.raw = append(p.raw, line)
			p.mu.Unlock()
		}
	}()
	go func() {
		<-read // Wait closes the pipe: read it to the end first
		p.err = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		if p.running() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.mu.Lock()
			tail := p.raw[max(len(p.raw)-40, 0):]
			p.mu.Unlock()
			t.Logf("last log lines of %s (all in %s):\n%s", name, logPath, strings.Join(tail, "\n"))
		}
	})
	return p
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// logs returns the log lines whose msg is msg.
func (p *proc) logs(msg string) []logLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []logLine
	for _, l := range p.lines {
		if l.str("msg") == msg {
			out = append(out, l)
		}
	}
	return out
}

// handled returns the "event handled" log lines: one per settled event.
func (p *proc) handled() []logLine { return p.logs("event handled") }

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(sig), "signal %s to %s", sig, p.name)
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(waitLimit):
		p.t.Fatalf("%s did not exit within %s", p.name, waitLimit)
	}
	var exit *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &exit):
		return exit.ExitCode()
	}
	p.t.Fatalf("%s: wait: %v", p.name, p.err)
	return -1
}

// stop sends SIGTERM and requires exit code 0.
func (p *proc) stop() {
	p.t.Helper()
	p.signal(syscall.SIGTERM)
	require.Equal(p.t, 0, p.wait(), "%s exit code after SIGTERM", p.name)
}

// httpAddr is the ops server's address, from its start-up log line.
func (p *proc) httpAddr() string {
	p.t.Helper()
	var addr string
	eventually(p.t, "ops server of "+p.name+" listening", func() (bool, string) {
		if !p.running() {
			p.t.Fatalf("%s exited (%v) before serving", p.name, p.err)
		}
		if ls := p.logs("serving health and metrics"); len(ls) > 0 {
			addr = ls[0].str("addr")
		}
		return addr != "", "no \"serving health and metrics\" log line yet"
	})
	return addr
}

// readiness is the /readyz answer in JSON.
type readiness struct {
	Status int
	Ready  bool `json:"ready"`
	Checks []struct {
		Name  string `json:"name"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"checks"`
}

// failing names the checks that fail, with their errors.
func (r readiness) failing() string {
	var out []string
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c.Name+": "+c.Error)
		}
	}
	return strings.Join(out, "; ")
}

func (p *proc) readyz() readiness {
	p.t.Helper()
	status, body := p.get("/readyz?format=json")
	r := readiness{Status: status}
	require.NoError(p.t, json.Unmarshal(body, &r), "/readyz of %s: %s", p.name, body)
	return r
}

// eventually polls cond until it holds, failing the test after waitLimit
// with cond's last explanation.
func eventually(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	eventuallyWithin(t, waitLimit, what, cond)
}

func eventuallyWithin(t testing.TB, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %s", limit, what, why)
		}
		<-tick.C
	}
}

// run runs the binary to completion and returns its exit code and output.
func run(t testing.TB, s settings, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = s.env()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit) && ctx.Err() == nil:
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("consumer %s: %v\n%s", strings.Join(args, " "), err, out)
	return -1, ""
}

// published is one event sent by `consumer publish`.
type published struct {
	Toggle
	EventID   string
	RecordID  int64
	Partition int
	At        time.Time // just before the publish command started
}

var publishedRE = regexp.MustCompile(`published event (\S+) \(record_id (\d+)\) to \S+ partition (\d+)`)

// publish saves the toggle's override row as Django does and publishes
// its event, with `consumer publish`.
func publish(s settings, tg Toggle) (published, error) {
	args := []string{"publish", "--scope-type", tg.Scope.Type, "--scope-key", tg.Scope.Key, "--choice", tg.Choice, "--changed-by", "kt_admin"}
	if tg.Disabled {
		args = append(args, "--disabled")
	}
	pub := published{Toggle: tg, At: time.Now()}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = s.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return pub, fmt.Errorf("consumer %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	m := publishedRE.FindStringSubmatch(string(out))
	if m == nil {
		return pub, fmt.Errorf("consumer %s printed no \"published event\" line:\n%s", strings.Join(args, " "), out)
	}
	pub.EventID = m[1]
	pub.RecordID, _ = strconv.ParseInt(m[2], 10, 64)
	pub.Partition, _ = strconv.Atoi(m[3])
	return pub, nil
}

// publisher publishes toggles in the background, in order.
type publisher struct {
	mu   sync.Mutex
	out  []published
	err  error
	done chan struct{}
}

func publishAll(s settings, toggles []Toggle) *publisher {
	pb := &publisher{done: make(chan struct{})}
	go func() {
		defer close(pb.done)
		for _, tg := range toggles {
			p, err := publish(s, tg)
			pb.mu.Lock()
			if err != nil {
				pb.err = err
				pb.mu.Unlock()
				return
			}
			pb.out = append(pb.out, p)
			pb.mu.Unlock()
		}
	}()
	return pb
}

// count is how many events were published so far.
func (pb *publisher) count() int {
	pb.mu.Lock()
	defer pb.mu.Unlock()
	return len(pb.out)
}

// wait waits until every toggle is published and returns the events.
func (pb *publisher) wait(t testing.TB) []published {
	t.Helper()
	select {
	case <-pb.done:
	case <-time.After(waitLimit):
		t.Fatalf("publishing did not finish within %s", waitLimit)
	}
	require.NoError(t, pb.err)
	return pb.out
}

// publishNow publishes toggles in order and returns the events.
func publishNow(t testing.TB, s settings, toggles []Toggle) []published {
	t.Helper()
	return publishAll(s, toggles).wait(t)
}

// metric is the value of one series on the process's /metrics, e.g.
// `authz_consumer_retries_total{reason="broker"}`; 0 when it is not there.
func (p *proc) metric(series string) float64 {
	p.t.Helper()
	_, body := p.get("/metrics")
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			require.NoError(p.t, err, "metric line %q", line)
			return f
		}
	}
	return 0
}

// get answers GET path on the process's ops server: status and body.
func (p *proc) get(path string) (int, []byte) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.httpAddr()+path, nil)
	require.NoError(p.t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(p.t, err, "GET %s of %s", path, p.name)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(p.t, err)
	return resp.StatusCode, body
}

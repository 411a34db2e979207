// Package crash is the crash-safety harness: it runs the real
// consumer binary as a subprocess over a mixed stream of events, kills it
// with SIGKILL at random points, restarts it each time, and checks that the
// final database equals that of an uninterrupted run, with no run left
// running.
package crash

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/devstack"
	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

const (
	topic      = "crash-waffle-flag-override-lifecycle"
	dlq        = topic + ".parked"
	partitions = 3
	minKills   = 30
	waitLimit  = 2 * time.Minute
)

func TestSIGKILLAtRandomPointsEndsInSameDatabase(t *testing.T) {
	testenv.SkipShort(t, "two minutes of SIGKILLs")
	ctx := context.Background()
	dir := t.TempDir()
	bin := buildConsumer(t, dir)

	h := newHarness(t, bin, dir)
	brokers, regURL := h.brokers, h.regURL

	// Both databases get the same data and the same override rows, saved
	// before anything is consumed, so every decision is fixed in advance.
	rng := rand.New(rand.NewPCG(42, 8))
	s := newStream(rng)
	cleanURL := "sqlite:///" + filepath.ToSlash(filepath.Join(dir, "clean.db"))
	crashURL := "sqlite:///" + filepath.ToSlash(filepath.Join(dir, "crash.db"))
	var saved []demo.Override
	for _, u := range []string{cleanURL, crashURL} {
		saved = prepare(t, ctx, u, s)
	}
	publishStream(t, ctx, brokers, regURL, s, saved)
	t.Logf("stream: %d messages, %d override rows, %d legacy roles", s.messages, len(s.saves), len(s.roles))

	// The uninterrupted run.
	began := time.Now()
	clean := h.start("clean", cleanURL, 0)
	clean.waitReady()
	h.waitCommitted("clean")
	clean.terminate()
	t.Logf("clean run: %s", time.Since(began).Round(time.Millisecond))

	// The same stream for another group on another database, killed over
	// and over.
	crashDB := open(t, ctx, crashURL)
	kills, midStream := 0, 0
	began = time.Now()
	for kills < minKills {
		p := h.start("crash", crashURL, kills+1)
		if kills%4 == 3 {
			// During start-up: opening the database, joining the group.
			p.sleep(time.Duration(rng.Int64N(int64(300 * time.Millisecond))))
		} else {
			// While events are handled: after this incarnation's first
			// outcome row, at a random point of the following work.
			n := outcomes(t, crashDB)
			deadline := time.Now().Add(10 * time.Second)
			for outcomes(t, crashDB) == n && time.Now().Before(deadline) && h.lag("crash") > 0 && p.alive() {
				time.Sleep(5 * time.Millisecond)
			}
			p.sleep(time.Duration(rng.Int64N(int64(80 * time.Millisecond))))
		}
		lag := h.lag("crash")
		if lag > 0 {
			midStream++
		}
		p.kill()
		kills++
		t.Logf("kill %d: %d messages not committed, %d outcome rows", kills, lag, outcomes(t, crashDB))
	}
	last := h.start("crash", crashURL, kills+1)
	last.waitReady()
	h.waitCommitted("crash")
	last.terminate()
	t.Logf("crash run: %d SIGKILLs (%d with events left to handle), %s", kills, midStream, time.Since(began).Round(time.Millisecond))
	require.GreaterOrEqual(t, kills, minKills)
	require.GreaterOrEqual(t, midStream, minKills/2, "most kills must land while events remain; make the stream longer")

	var running int
	require.NoError(t, crashDB.SQL.QueryRowContext(ctx,
		"SELECT COUNT(*) FROM openedx_authz_authzcourseauthoringmigrationrun WHERE status = 'running'").Scan(&running))
	require.Zero(t, running, "no run may be left running")

	cleanDB := open(t, ctx, cleanURL)
	want, err := demo.TakeDump(ctx, cleanDB)
	require.NoError(t, err)
	got, err := demo.TakeDump(ctx, crashDB)
	require.NoError(t, err)
	require.NotEmpty(t, want["openedx_authz_authzcourseauthoringmigrationrun"])
	require.NotEmpty(t, want["authz_consumer_parked"])
	diff := demo.Diff(want, got)
	require.Empty(t, diff, "the crashed database differs from the clean one:\n%s", strings.Join(diff, "\n"))
	t.Logf("equal databases: %d runs, %d outcome rows, %d parked, %d role assignments",
		len(want["openedx_authz_authzcourseauthoringmigrationrun"]), len(want["authz_consumer_event"]),
		len(want["authz_consumer_parked"]), len(want["casbin_rule"]))
}

// newHarness starts what the consumer processes talk to, for the test's
// lifetime: an in-process Kafka-protocol broker with the topic and the
// dead-letter topic, and a schema registry, both on 127.0.0.1.
func newHarness(t *testing.T, bin, dir string) harness {
	t.Helper()
	st := testenv.Stack(t, devstack.Options{Topic: topic, Partitions: partitions, DeadLetterTopic: dlq})
	return harness{t: t, bin: bin, dir: dir, brokers: st.Brokers, regURL: st.RegistryURL}
}

// buildConsumer builds the consumer binary into dir.
func buildConsumer(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "consumer")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	cmd := exec.Command(goBin, "build", "-o", bin, "authz-flag-consumer/cmd/consumer")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// stream is the mixed input: override saves of courses and orgs whose
// scopes do not share data (so the result does not depend on how the
// partitions interleave), saves of another flag and of CCX courses,
// JSON-encoded events, duplicates, and malformed messages.
type stream struct {
	roles    []demo.Role
	saves    []demo.Override
	plan     []item // the messages, in publish order
	messages int
}

type item struct {
	save  int  // index into saves; -1 for a malformed message
	json  bool // publish the JSON form
	twice bool // publish the same event twice (a producer retry)
}

func newStream(rng *rand.Rand) stream {
	var s stream
	choice := func() string { return []string{"on", "off"}[rng.IntN(2)] }
	var scopes [][]demo.Override
	// Course scopes in orgs that never get an org override; a few with
	// large teams, so that kills land inside runs too.
	for o := range 4 {
		for c := range 60 {
			key := fmt.Sprintf("course-v1:CX%d+C%d+2024", o, c)
			size := 5 + rng.IntN(50)
			if c%20 == 0 {
				size = 300
			}
			s.roles = append(s.roles, demo.Team(fmt.Sprintf("cx%d_%d_u", o, c), key, size)...)
			var saves []demo.Override
			for range 1 + rng.IntN(10) {
				saves = append(saves, demo.Override{ScopeType: "course", ScopeKey: key, Enabled: rng.IntN(6) > 0, Choice: choice(), ChangedBy: "crash_admin"})
			}
			scopes = append(scopes, saves)
		}
	}
	// Org scopes whose courses never get a course override.
	for o := range 8 {
		org := fmt.Sprintf("OX%d", o)
		for c := range 4 {
			key := fmt.Sprintf("course-v1:%s+C%d+2024", org, c)
			s.roles = append(s.roles, demo.Team(fmt.Sprintf("ox%d_%d_u", o, c), key, 10+rng.IntN(40))...)
		}
		s.roles = append(s.roles, demo.Role{Username: fmt.Sprintf("ox%d_staff", o), Org: org, Role: "staff"},
			demo.Role{Username: fmt.Sprintf("ox%d_support", o), Org: org, Role: "support"})
		var saves []demo.Override
		for range 1 + rng.IntN(4) {
			saves = append(saves, demo.Override{ScopeType: "org", ScopeKey: org, Enabled: true, Choice: choice(), ChangedBy: "crash_admin"})
		}
		scopes = append(scopes, saves)
	}
	// Saves the consumer ignores.
	for i := range 100 {
		scopes = append(scopes, []demo.Override{{ScopeType: "org", ScopeKey: fmt.Sprintf("OX%d", i%8), Flag: "other.flag", Enabled: true, Choice: choice()}})
	}
	for i := range 50 {
		scopes = append(scopes, []demo.Override{{ScopeType: "course", ScopeKey: fmt.Sprintf("ccx-v1:CX0+C%d+2024+ccx@%d", i, i), Org: "CX0", Enabled: true, Choice: choice()}})
	}
	// Some scopes' events go in the JSON form. A scope uses one form for
	// all its events: the JSON key is the raw scope key, the Avro key is
	// framed, so the two forms of one scope land on different partitions,
	// and a scope's events must share one to stay in order.
	jsonScope := make([]bool, len(scopes))
	for i := range jsonScope {
		jsonScope[i] = rng.IntN(10) == 0
	}
	// Interleave the scopes' saves, keeping each scope's own order.
	next := make([]int, len(scopes))
	for left := true; left; {
		left = false
		for _, i := range rng.Perm(len(scopes)) {
			if next[i] < len(scopes[i]) {
				s.saves = append(s.saves, scopes[i][next[i]])
				next[i]++
				left = true
				it := item{save: len(s.saves) - 1, json: jsonScope[i], twice: rng.IntN(12) == 0}
				s.plan = append(s.plan, it)
				if rng.IntN(15) == 0 {
					s.plan = append(s.plan, item{save: -1})
				}
			}
		}
	}
	for _, it := range s.plan {
		s.messages++
		if it.twice {
			s.messages++
		}
	}
	return s
}

// prepare creates the database at url with the stream's data and override
// rows, and returns the saved rows (same ids in every database).
func prepare(t *testing.T, ctx context.Context, url string, s stream) []demo.Override {
	t.Helper()
	prepareData(t, ctx, url, s)
	return saveOverrides(t, ctx, url, s)
}

// prepareData creates the database at url with the stream's data (flag,
// users, legacy roles) but no override rows.
func prepareData(t *testing.T, ctx context.Context, url string, s stream) {
	t.Helper()
	db, err := store.Open(ctx, url)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.CreateSchema(ctx))
	require.NoError(t, demo.EnsureFlag(ctx, db, authz.DefaultFlag))
	require.NoError(t, demo.AddRoles(ctx, db, s.roles...))
}

// saveOverrides saves the stream's override rows into the database at url
// and returns them (same ids in every database).
func saveOverrides(t *testing.T, ctx context.Context, url string, s stream) []demo.Override {
	t.Helper()
	db, err := store.Open(ctx, url)
	require.NoError(t, err)
	defer db.Close()
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	saved := make([]demo.Override, len(s.saves))
	for i, o := range s.saves {
		o.ChangeDate = at.Add(time.Duration(i) * time.Second)
		saved[i], err = demo.Save(ctx, db, o)
		require.NoError(t, err)
	}
	return saved
}

// publishStream writes the stream's messages to the topic.
func publishStream(t *testing.T, ctx context.Context, brokers []string, regURL string, s stream, saved []demo.Override) {
	t.Helper()
	rc, err := events.NewRegistryClient(regURL, events.RegistryOptions{})
	require.NoError(t, err)
	enc := events.NewEncoder(rc, events.EncoderOptions{})
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Topic:        topic,
		Balancer:     consumer.KeyPartitioner{},
		BatchTimeout: time.Millisecond,
		RequiredAcks: kafka.RequireAll,
	}
	defer w.Close()
	var msgs []kafka.Message
	for i, it := range s.plan {
		if it.save < 0 {
			msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprintf("junk-%d", i)), Value: []byte("not an event"),
				Headers: []kafka.Header{{Key: "ce_type", Value: []byte(events.EventTypeV1)}}})
			continue
		}
		o := saved[it.save].Event()
		var m events.Message
		if it.json {
			m, err = enc.EncodeJSON(topic, o)
		} else {
			m, err = enc.Encode(ctx, topic, o)
		}
		require.NoError(t, err)
		km := consumer.KafkaMessage(m)
		msgs = append(msgs, km)
		if it.twice {
			msgs = append(msgs, km)
		}
	}
	require.NoError(t, w.WriteMessages(ctx, msgs...))
}

func open(t *testing.T, ctx context.Context, url string) *store.DB {
	t.Helper()
	db, err := store.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

// outcomes counts the recorded event outcomes.
func outcomes(t *testing.T, db *store.DB) int {
	t.Helper()
	var n int
	err := db.SQL.QueryRow("SELECT COUNT(*) FROM authz_consumer_event").Scan(&n)
	if err != nil && err != sql.ErrNoRows {
		require.NoError(t, err)
	}
	return n
}

// harness starts consumer processes and watches their group.
type harness struct {
	t       *testing.T
	bin     string
	dir     string
	brokers []string
	regURL  string
}

// proc is one consumer process.
type proc struct {
	t        *testing.T
	cmd      *exec.Cmd
	log      string
	httpAddr string
	done     chan struct{} // closed when the process has exited
	err      error         // its exit status, once done
}

// start starts a consumer of group on dbURL; extra flags (such as
// --sweep-interval) are added to the fixed ones.
func (h harness) start(group, dbURL string, incarnation int, extra ...string) *proc {
	h.t.Helper()
	logPath := filepath.Join(h.dir, fmt.Sprintf("%s-%02d.log", group, incarnation))
	logFile, err := os.Create(logPath)
	require.NoError(h.t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(h.t, err)
	httpAddr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(h.bin, "run",
		"--database-url", dbURL,
		"--brokers", strings.Join(h.brokers, ","),
		"--topic", topic,
		"--dead-letter-topic", dlq,
		"--group-id", group,
		"--schema-registry-url", h.regURL,
		"--auto-migrate",
		"--http-addr", httpAddr,
		"--log-format", "text",
		"--session-timeout", "1s",
		"--rebalance-timeout", "1s",
		"--heartbeat-interval", "100ms",
		"--commit-interval", "20ms",
		"--min-backoff", "20ms",
	)
	cmd.Args = append(cmd.Args, extra...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	require.NoError(h.t, cmd.Start())
	p := &proc{t: h.t, cmd: cmd, log: logPath, httpAddr: httpAddr, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	h.t.Cleanup(func() {
		if p.alive() {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// sleep waits d unless the process exits first (which fails the test: it
// must only end when killed or terminated).
func (p *proc) sleep(d time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
		p.t.Fatalf("consumer exited by itself (%v); log %s:\n%s", p.err, p.log, tail(p.log))
	case <-time.After(d):
	}
}

func (p *proc) kill() {
	p.t.Helper()
	if !p.alive() {
		p.t.Fatalf("consumer exited by itself (%v); log %s:\n%s", p.err, p.log, tail(p.log))
	}
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-p.done:
	case <-time.After(waitLimit):
		p.t.Fatalf("consumer did not die after SIGKILL")
	}
}

// waitReady waits until /readyz answers 200: database reachable, group joined.
func (p *proc) waitReady() {
	p.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		resp, err := http.Get("http://" + p.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if !p.alive() || time.Now().After(deadline) {
			p.t.Fatalf("consumer not ready (%v); log %s:\n%s", err, p.log, tail(p.log))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// terminate sends SIGTERM and expects a drain and exit code 0.
func (p *proc) terminate() {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
		require.NoError(p.t, p.err, "exit after SIGTERM; log %s:\n%s", p.log, tail(p.log))
	case <-time.After(waitLimit):
		p.t.Fatalf("consumer did not exit after SIGTERM; log %s:\n%s", p.log, tail(p.log))
	}
}

// lag is how many messages the group has not committed.
func (h harness) lag(group string) int64 {
	h.t.Helper()
	o := consumer.Offsets{Client: &kafka.Client{Addr: kafka.TCP(h.brokers...), Timeout: 10 * time.Second}, Group: group, Topic: topic}
	lag, err := o.Lag(context.Background())
	require.NoError(h.t, err)
	var n int64
	for _, l := range lag {
		n += l
	}
	return n
}

// waitCommitted waits until the group has committed the whole topic.
func (h harness) waitCommitted(group string) {
	h.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for h.lag(group) > 0 {
		if time.Now().After(deadline) {
			h.t.Fatalf("group %s still has lag %d after %s", group, h.lag(group), waitLimit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}

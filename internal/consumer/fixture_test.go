package consumer_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/devstack"
	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

const (
	testTopic  = "test-waffle-flag-override-lifecycle"
	testDLQ    = testTopic + ".parked"
	partitions = 3
	waitLimit  = 60 * time.Second
)

// fixture is one test's world: an in-process Kafka broker (kfake) on
// 127.0.0.1 spoken to over TCP by kafka-go, a schema registry on 127.0.0.1,
// a SQLite file with the Open edX tables and the demo data.
type fixture struct {
	t       testing.TB
	ctx     context.Context
	brokers []string
	group   string
	dbURL   string
	db      *store.DB
	enc     *events.Encoder
	dec     *events.Decoder
	writer  *kafka.Writer
	offsets consumer.Offsets

	mu      sync.Mutex
	settled []consumer.Settled
	retries map[string]int
}

func newFixture(t testing.TB) *fixture {
	return newFixtureURL(t, "")
}

// newFixtureURL is newFixture on the database at dbURL ("": a SQLite file
// in the test's temp dir).
func newFixtureURL(t testing.TB, dbURL string) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	st := testenv.Stack(t, devstack.Options{Dir: t.TempDir(), DatabaseURL: dbURL, Seed: true,
		Topic: testTopic, Partitions: partitions, DeadLetterTopic: testDLQ})
	rc, err := events.NewRegistryClient(st.RegistryURL, events.RegistryOptions{})
	require.NoError(t, err)
	db := st.DB
	dbURL = st.DatabaseURL

	brokers := st.Brokers
	w := &kafka.Writer{
		Addr:         kafka.TCP(brokers...),
		Balancer:     consumer.KeyPartitioner{},
		BatchTimeout: time.Millisecond,
		RequiredAcks: kafka.RequireAll,
	}
	t.Cleanup(func() { w.Close() })
	group := "test-group"
	return &fixture{
		t:       t,
		ctx:     ctx,
		brokers: brokers,
		group:   group,
		dbURL:   dbURL,
		db:      db,
		enc:     events.NewEncoder(rc, events.EncoderOptions{}),
		dec:     events.NewDecoder(rc),
		writer:  w,
		offsets: consumer.Offsets{
			Client: &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second},
			Group:  group,
			Topic:  testTopic,
		},
		retries: map[string]int{},
	}
}

// engine returns a new engine on the fixture's database.
func (fx *fixture) engine(o migrator.Options) *migrator.Engine {
	return migrator.New(fx.db, o)
}

// options are consumer options with short group timings for tests.
func (fx *fixture) options(eng consumer.Engine) consumer.Options {
	dlq := &kafka.Writer{
		Addr:         kafka.TCP(fx.brokers...),
		Topic:        testDLQ,
		Balancer:     consumer.KeyPartitioner{},
		BatchTimeout: time.Millisecond,
		RequiredAcks: kafka.RequireAll,
	}
	fx.t.Cleanup(func() { dlq.Close() })
	return consumer.Options{
		Brokers:           fx.brokers,
		Topic:             testTopic,
		GroupID:           fx.group,
		DeadLetter:        dlq,
		Decoder:           fx.dec,
		Engine:            eng,
		Metrics:           &testMetrics{fx: fx},
		MinBackoff:        20 * time.Millisecond,
		MaxBackoff:        200 * time.Millisecond,
		NotVisibleLimit:   time.Minute,
		CommitInterval:    50 * time.Millisecond,
		SessionTimeout:    2 * time.Second,
		RebalanceTimeout:  2 * time.Second,
		HeartbeatInterval: 100 * time.Millisecond,
		OnSettled: func(s consumer.Settled) {
			fx.mu.Lock()
			fx.settled = append(fx.settled, s)
			fx.mu.Unlock()
		},
	}
}

// runner is a consumer running in a goroutine.
type runner struct {
	t        testing.TB
	consumer *consumer.Consumer
	cancel   context.CancelFunc
	done     chan error
}

// start runs a consumer with opts until the test ends or stop is called.
func (fx *fixture) start(opts consumer.Options) *runner {
	fx.t.Helper()
	c, err := consumer.New(opts)
	require.NoError(fx.t, err)
	ctx, cancel := context.WithCancel(fx.ctx)
	r := &runner{t: fx.t, consumer: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	fx.t.Cleanup(func() { r.stop() })
	return r
}

// startDefault runs a consumer on a fresh engine with automatic migration on.
func (fx *fixture) startDefault() *runner {
	return fx.start(fx.options(fx.engine(migrator.Options{AutoMigrate: true})))
}

// stop cancels the consumer and waits for its drain.
func (r *runner) stop() {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			require.NoError(r.t, err)
			close(r.done)
		}
	case <-time.After(waitLimit):
		r.t.Fatalf("consumer did not drain within %s", waitLimit)
	}
}

// save writes an override row as Django would.
func (fx *fixture) save(o demo.Override) demo.Override {
	fx.t.Helper()
	o, err := demo.Save(fx.ctx, fx.db, o)
	require.NoError(fx.t, err)
	return o
}

// publish sends the event of o (Avro, registry-framed) and returns its ce_id.
func (fx *fixture) publish(o demo.Override) string {
	fx.t.Helper()
	m, err := fx.enc.Encode(fx.ctx, testTopic, o.Event())
	require.NoError(fx.t, err)
	fx.write(m)
	id, _ := m.Header("ce_id")
	return id
}

// publishJSON sends the JSON form of o's event and returns its ce_id.
func (fx *fixture) publishJSON(o demo.Override) string {
	fx.t.Helper()
	m, err := fx.enc.EncodeJSON(testTopic, o.Event())
	require.NoError(fx.t, err)
	fx.write(m)
	id, _ := m.Header("ce_id")
	return id
}

// toggle saves o and publishes its event, as the producer plugin does.
func (fx *fixture) toggle(o demo.Override) (demo.Override, string) {
	fx.t.Helper()
	o = fx.save(o)
	return o, fx.publish(o)
}

func (fx *fixture) write(m events.Message) {
	fx.t.Helper()
	km := consumer.KafkaMessage(m)
	km.Topic = testTopic
	require.NoError(fx.t, fx.writer.WriteMessages(fx.ctx, km))
}

// end returns the high watermark of every partition.
func (fx *fixture) end() map[int]int64 {
	fx.t.Helper()
	parts, err := fx.offsets.Partitions(fx.ctx)
	require.NoError(fx.t, err)
	_, end, err := fx.offsets.Bounds(fx.ctx, parts)
	require.NoError(fx.t, err)
	return end
}

// waitCommitted waits until the group has committed everything written so
// far: every event was settled and its effect is durable.
func (fx *fixture) waitCommitted() {
	fx.t.Helper()
	end := fx.end()
	fx.eventually("group commits up to "+fmt.Sprint(end), func() bool {
		committed, err := fx.offsets.Committed(fx.ctx, keys(end))
		if err != nil {
			return false
		}
		for p, e := range end {
			if e > 0 && committed[p] < e {
				return false
			}
		}
		return true
	})
}

// eventually polls cond until it holds or waitLimit passes.
func (fx *fixture) eventually(what string, cond func() bool) {
	fx.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			fx.t.Fatalf("timed out after %s waiting for: %s", waitLimit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settledFor returns what the consumers reported for an event id.
func (fx *fixture) settledFor(eventID string) []consumer.Settled {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	var out []consumer.Settled
	for _, s := range fx.settled {
		if s.EventID == eventID {
			out = append(out, s)
		}
	}
	return out
}

func (fx *fixture) retryCount(reason string) int {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return fx.retries[reason]
}

// outcome returns the recorded outcome row of an event: outcome, run id.
func (fx *fixture) outcome(eventID string) (string, int64) {
	fx.t.Helper()
	var outcome string
	var runID *int64
	err := fx.db.SQL.QueryRowContext(fx.ctx, fx.db.Rebind("SELECT outcome, run_id FROM authz_consumer_event WHERE event_id = ?"), eventID).Scan(&outcome, &runID)
	require.NoError(fx.t, err, "outcome of event %s", eventID)
	if runID == nil {
		return outcome, 0
	}
	return outcome, *runID
}

// runs returns every run, oldest first.
func (fx *fixture) runs() []migrator.Run {
	fx.t.Helper()
	runs, err := fx.engine(migrator.Options{}).Runs(fx.ctx, migrator.RunFilter{Limit: 1000})
	require.NoError(fx.t, err)
	for i, j := 0, len(runs)-1; i < j; i, j = i+1, j-1 {
		runs[i], runs[j] = runs[j], runs[i]
	}
	return runs
}

// counts returns legacy rows and assignments by scope.
func (fx *fixture) counts() map[string]demo.ScopeCounts {
	fx.t.Helper()
	c, err := demo.CountByScope(fx.ctx, fx.db)
	require.NoError(fx.t, err)
	return c
}

func (fx *fixture) dump() demo.Dump {
	fx.t.Helper()
	d, err := demo.TakeDump(fx.ctx, fx.db)
	require.NoError(fx.t, err)
	return d
}

// deadLetters reads every message of the dead-letter topic.
func (fx *fixture) deadLetters(n int) []kafka.Message {
	fx.t.Helper()
	return testenv.ReadMessages(fx.t, kafka.ReaderConfig{Brokers: fx.brokers, Topic: testDLQ, Partition: 0, MaxWait: 100 * time.Millisecond}, n, waitLimit)
}

func keys(m map[int]int64) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// testMetrics counts retries by reason for tests that wait on a retry.
type testMetrics struct{ fx *fixture }

func (m *testMetrics) Event(string)                      {}
func (m *testMetrics) Run(string, string, time.Duration) {}
func (m *testMetrics) SetLag(int, int64)                 {}
func (m *testMetrics) ForgetLag()                        {}
func (m *testMetrics) Parked()                           {}
func (m *testMetrics) Retry(reason string) {
	m.fx.mu.Lock()
	m.fx.retries[reason]++
	m.fx.mu.Unlock()
}

// course and org build override saves of the watched flag.
func course(key, choice string) demo.Override {
	return demo.Override{ScopeType: "course", ScopeKey: key, Enabled: true, Choice: choice, ChangedBy: demo.Admin}
}

func org(name, choice string) demo.Override {
	return demo.Override{ScopeType: "org", ScopeKey: name, Enabled: true, Choice: choice, ChangedBy: demo.Admin}
}

// preferBalancer assigns every partition to the member with the highest
// rank, so a test decides which consumer of a group gets the partitions.
type preferBalancer struct{ rank int }

func (b preferBalancer) ProtocolName() string      { return "test-prefer" }
func (b preferBalancer) UserData() ([]byte, error) { return []byte(strconv.Itoa(b.rank)), nil }
func (b preferBalancer) AssignGroups(members []kafka.GroupMember, parts []kafka.Partition) kafka.GroupMemberAssignments {
	best, bestRank := "", -1
	for _, m := range members {
		if r, _ := strconv.Atoi(string(m.UserData)); r > bestRank {
			best, bestRank = m.ID, r
		}
	}
	out := kafka.GroupMemberAssignments{}
	for _, m := range members {
		out[m.ID] = map[string][]int{}
	}
	for _, p := range parts {
		out[best][p.Topic] = append(out[best][p.Topic], p.ID)
	}
	return out
}

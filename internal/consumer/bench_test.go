package consumer_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/testenv"
)

// The event benchmarks print tables; run them with
//
//	go test -run '^$' -bench . -benchtime 1x ./internal/consumer/

const benchEvents = 5000

// BenchmarkEventThroughput compares ignored and no-op events per second
// through the whole pipeline (fetch, decode, engine transaction with the
// outcome row, batched commit) with the raw read rate of the same topic by
// a bare kafka-go reader (fetch, batched commit) in the same run.
func BenchmarkEventThroughput(b *testing.B) {
	for range b.N {
		fmt.Printf("\nEvents through the pipeline vs the bare kafka-go reader, same topic, same run (SQLite, %d events)\n\n", benchEvents)
		fmt.Printf("| %-8s | %12s | %14s | %6s |\n", "events", "bare msg/s", "pipeline ev/s", "ratio")
		fmt.Println("|----------|--------------|----------------|--------|")
		defer fmt.Printf("(no-db: %d ignored events with the engine replaced by a stub, the loop's own cost: fetch, Avro decode, batched commit)\n", 10*benchEvents)
		for _, kind := range []string{"ignored", "noop", "no-db"} {
			bare, pipe := eventThroughput(b, kind)
			fmt.Printf("| %-8s | %12.0f | %14.0f | %6.3f |\n", kind, bare, pipe, pipe/bare)
			b.ReportMetric(pipe, kind+"_ev/s")
			b.ReportMetric(pipe/bare, kind+"_ratio")
		}
	}
}

func eventThroughput(b *testing.B, kind string) (bare, pipeline float64) {
	fx := newFixture(b)
	// Each event names its own override row, as real saves do.
	var msgs []kafka.Message
	for i := range benchEvents {
		var o demo.Override
		switch kind {
		case "ignored": // another flag: no org lock, no history read
			o = org(fmt.Sprintf("Org%d", i%50), "on")
			o.Flag = "other.flag"
		case "noop": // the watched flag saved off where it is off: org lock, history, no run
			o = course(fmt.Sprintf("course-v1:Org%d+C%d+2024", i%50, i), "off")
		case "no-db": // ignored events with the engine left out: the loop's own cost
			o = org(fmt.Sprintf("Org%d", i%50), "on")
			o.Flag = "other.flag"
		}
		if kind == "no-db" {
			// No database: one saved row serves all, and ten times the
			// events, so that the readers' start (one per partition, a
			// few hundred ms apart at most) does not weigh in a 50ms run.
			msgs = append(msgs, fx.encoded(fx.save(o), 10*benchEvents)...)
			break
		}
		msgs = append(msgs, fx.encoded(fx.save(o), 1)...)
	}
	for i := 0; i < len(msgs); i += 1000 {
		require.NoError(b, fx.writer.WriteMessages(fx.ctx, msgs[i:min(i+1000, len(msgs))]...))
	}
	var eng consumer.Engine = fx.engine(migrator.Options{AutoMigrate: true})
	if kind == "no-db" {
		eng = noEngine{}
	}
	return bareRate(b, fx, len(msgs)), pipelineRate(b, fx, eng, len(msgs))
}

// noEngine answers every event as ignored without touching the database,
// to show what the loop itself costs (fetch, decode, commit).
type noEngine struct{}

func (noEngine) Handle(context.Context, migrator.Source, migrator.Change) (migrator.Result, error) {
	return migrator.Result{Outcome: migrator.OutcomeIgnored}, nil
}

func (noEngine) HandleQuick(_ context.Context, items []migrator.Item) ([]migrator.Result, error) {
	out := make([]migrator.Result, len(items))
	for i := range out {
		out[i] = migrator.Result{Outcome: migrator.OutcomeIgnored}
	}
	return out, nil
}

func (noEngine) Park(context.Context, migrator.ParkedEvent) error { return nil }
func (noEngine) RecordWaiting(context.Context, migrator.Source, migrator.Change, string) error {
	return nil
}

// encoded returns n events of o, each with its own ce_id.
func (fx *fixture) encoded(o demo.Override, n int) []kafka.Message {
	fx.t.Helper()
	out := make([]kafka.Message, 0, n)
	for range n {
		m, err := fx.enc.Encode(fx.ctx, testTopic, o.Event())
		require.NoError(fx.t, err)
		km := consumer.KafkaMessage(m)
		km.Topic = testTopic
		out = append(out, km)
	}
	return out
}

// bareRate reads n messages with a plain group reader, committing every
// 1000 messages and at the end, and returns messages per second from the
// first message to the last commit.
func bareRate(b *testing.B, fx *fixture, n int) float64 {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: fx.brokers, Topic: testTopic, GroupID: "bench-bare", StartOffset: kafka.FirstOffset,
		MaxWait: 100 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond, SessionTimeout: 2 * time.Second,
	})
	defer r.Close()
	ctx, cancel := context.WithTimeout(fx.ctx, waitLimit)
	defer cancel()
	var first time.Time
	var last kafka.Message
	for i := range n {
		m, err := r.FetchMessage(ctx)
		require.NoError(b, err)
		if i == 0 {
			first = time.Now()
		}
		last = m
		if (i+1)%1000 == 0 {
			require.NoError(b, r.CommitMessages(ctx, m))
		}
	}
	require.NoError(b, r.CommitMessages(ctx, last))
	return float64(n-1) / time.Since(first).Seconds()
}

// pipelineRate runs the consumer over the n messages and returns events per
// second from the first settled event to the last.
func pipelineRate(b *testing.B, fx *fixture, eng consumer.Engine, n int) float64 {
	opts := fx.options(eng)
	opts.GroupID = "bench-pipeline"
	opts.CommitInterval = 250 * time.Millisecond
	var (
		mu          sync.Mutex
		count       int
		first, last time.Time
	)
	done := make(chan struct{})
	opts.OnSettled = func(s consumer.Settled) {
		mu.Lock()
		defer mu.Unlock()
		now := time.Now()
		if count == 0 {
			first = now
		}
		count++
		last = now
		if count == n {
			close(done)
		}
	}
	r := fx.start(opts)
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("pipeline settled %d of %d events in 5 minutes", count, n)
	}
	r.stop()
	mu.Lock()
	defer mu.Unlock()
	return float64(n-1) / last.Sub(first).Seconds()
}

// BenchmarkPublishToCompletedRun measures the latency from publishing an
// event to its completed run, for a course with 50 assignments toggled on
// and off, on SQLite and (when AUTHZ_TEST_MYSQL_URL is set) MariaDB.
func BenchmarkPublishToCompletedRun(b *testing.B) {
	const toggles, team = 60, 50
	for range b.N {
		fmt.Printf("\nPublish to completed run, a course of %d assignments toggled %d times (ms)\n\n", team, toggles)
		fmt.Printf("| %-8s | %8s | %8s | %8s |\n", "database", "p50", "p99", "max")
		fmt.Println("|----------|----------|----------|----------|")
		dbs := []struct{ name, url string }{{"sqlite", testenv.SQLiteURL(b)}}
		if os.Getenv(testenv.EnvMySQLURL) != "" {
			dbs = append(dbs, struct{ name, url string }{"mariadb", testenv.MySQLURL(b)})
		}
		for _, d := range dbs {
			lat := runLatencies(b, d.url, toggles, team)
			p := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
			fmt.Printf("| %-8s | %8.1f | %8.1f | %8.1f |\n", d.name, p(0.5), p(0.99), p(1))
			b.ReportMetric(p(0.5), d.name+"_p50_ms")
			b.ReportMetric(p(0.99), d.name+"_p99_ms")
		}
	}
}

func runLatencies(b *testing.B, dbURL string, toggles, team int) []time.Duration {
	fx := newFixtureURL(b, dbURL)
	const key = "course-v1:BenchX+Team+2024"
	require.NoError(b, demo.AddRoles(fx.ctx, fx.db, demo.Team("bench_u", key, team)...))
	settled := make(chan consumer.Settled, 1)
	opts := fx.options(fx.engine(migrator.Options{AutoMigrate: true}))
	opts.OnSettled = func(s consumer.Settled) { settled <- s }
	fx.start(opts)
	var lat []time.Duration
	for i := range toggles {
		choice := []string{"on", "off"}[i%2]
		o := fx.save(course(key, choice))
		began := time.Now()
		fx.publish(o)
		select {
		case s := <-settled:
			lat = append(lat, time.Since(began))
			require.Equal(b, migrator.OutcomeRan, s.Result.Outcome)
			require.Equal(b, migrator.StatusCompleted, s.Result.Status)
		case <-time.After(waitLimit):
			b.Fatalf("toggle %d: no completed run", i)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat
}

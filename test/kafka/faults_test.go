package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/testenv"
)

// faultPlan is the smaller plan of the fault tests: 8 scopes, 3 rounds.
func faultPlan() Plan { return newPlan(6, 2, 3) }

// TestBrokerOutage: the consumer starts while its broker is down, keeps
// running, says why it is not ready and joins when the broker comes; then
// the broker dies (SIGKILL) while events wait and a run is in the middle of
// its transaction; when the broker is back (with its data) the consumer
// resumes: every event has its outcome once, none is skipped, none runs
// twice, and the offsets reach the end.
func TestBrokerOutage(t *testing.T) {
	began := time.Now()
	p := faultPlan()
	db := newTestDB(t, "mysql", p)
	user := db.mysqlUser(t, "c")
	b := newPrivateBroker(t)
	brokers := []string{b.addr()}
	firstStart := b.start()
	topic := testenv.KafkaTopic(t, "outage")
	createTopic(t, brokers, topic)
	b.kill()
	group := topic + "-group"
	s := consumerSettings(brokers, topic, group, db.url)
	started := time.Now()
	c := startConsumer(t, "consumer", s.with("DATABASE_URL", user))

	// Down at start: alive, not ready, retrying.
	var notReady readiness
	eventually(t, "the consumer retrying an unreachable broker", func() (bool, string) {
		require.True(t, c.running(), "the consumer exited while the broker was down: %v", c.err)
		notReady = c.readyz()
		retries := countWarnings(c)
		return notReady.Status == 503 && retries >= 3, fmt.Sprintf("/readyz %d (%s), %d warnings", notReady.Status, notReady.failing(), retries)
	})
	require.Contains(t, notReady.failing(), "consumer group joined", "/readyz names what is missing")
	downFor := time.Since(started)

	startTime := b.start()
	waitReady(t, c)
	pubs := publishNow(t, s, p.Rounds[0])
	db.waitOutcomes(t, pubs)

	// Goes away while a run is in the middle of its transaction and the
	// next round's events wait in the topic.
	unlock := db.lockTable(t, "casbin_rule")
	pubs = append(pubs, publishNow(t, s, p.Rounds[1])...)
	db.waitMidRun(t, userOf(user))
	brokerRetries := c.metric(`authz_consumer_retries_total{reason="broker"}`)
	b.kill()
	killedAt := time.Now()
	unlock()
	handledAtOutage, warnedAtOutage := len(c.handled()), countWarnings(c)
	eventually(t, "the consumer retrying the lost broker", func() (bool, string) {
		require.True(t, c.running(), "the consumer exited when the broker went away: %v", c.err)
		n := countWarnings(c) - warnedAtOutage
		return n >= 3, fmt.Sprintf("%d warnings since the broker went away", n)
	})
	var during readiness
	eventually(t, "the consumer reporting the broker gone", func() (bool, string) {
		require.True(t, c.running(), "the consumer exited when the broker went away: %v", c.err)
		during = c.readyz()
		return during.Status == 503, fmt.Sprintf("/readyz %d", during.Status)
	})
	notReadyAfter := time.Since(killedAt)
	eventually(t, "broker retries counted", func() (bool, string) {
		n := c.metric(`authz_consumer_retries_total{reason="broker"}`) - brokerRetries
		return n >= 3, fmt.Sprintf("retries_total{reason=\"broker\"} rose by %v since the broker went away", n)
	})

	restartTime := b.start()
	pubs = append(pubs, publishNow(t, s, p.Rounds[2])...)
	tl := db.checkRuns(t, pubs)
	waitCommittedToEnd(t, offsets(brokers, group, topic))
	db.expectFinal(t, p, p.Toggles())
	waitReady(t, c)
	c.stop()
	t.Logf("broker outage: %s; redelivered and recognized: %d; private broker first start %s, start %s, restart %s; consumer not ready and retrying %s after its start; during the outage /readyz said %d (%s), %s after the kill; %d events had been handled when the broker died; test took %s",
		tl, outcomesLogged(c)["duplicate"], firstStart.Round(time.Millisecond), startTime.Round(time.Millisecond), restartTime.Round(time.Millisecond), downFor.Round(time.Millisecond),
		during.Status, during.failing(), notReadyAfter.Round(time.Millisecond), handledAtOutage, time.Since(began).Round(time.Millisecond))
}

// TestTopicCreatedAfterStart: the consumer is deployed before its topic
// exists (Open edX's producer creates it with its first event, through the
// broker's auto-creation). Once the topic is there, its events must be
// consumed without a restart.
func TestTopicCreatedAfterStart(t *testing.T) {
	p := newPlan(2, 0, 1)
	db := newTestDB(t, "sqlite", p)
	b := newPrivateBroker(t)
	b.start()
	brokers := []string{b.addr()}
	topic := testenv.KafkaTopic(t, "late")
	group := topic + "-group"
	s := consumerSettings(brokers, topic, group, db.url)
	c := startConsumer(t, "consumer", s)
	waitReady(t, c)
	createTopic(t, brokers, topic)
	pubs := publishNow(t, s, p.Rounds[0])
	eventuallyWithin(t, 30*time.Second, "the events of a topic created after the consumer joined its group", func() (bool, string) {
		n := len(db.outcomes(t))
		return n == len(pubs), fmt.Sprintf("%d of %d events handled; the group's members were assigned: %s", n, len(pubs), assignments(t, offsets(brokers, group, topic)))
	})
	c.stop()
}

// assignments describes the partitions each member of the group holds.
func assignments(t testing.TB, o consumer.Offsets) string {
	t.Helper()
	resp, err := o.Client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{o.Group}})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, g := range resp.Groups {
		for _, m := range g.Members {
			n := 0
			for _, tp := range m.MemberAssignments.Topics {
				n += len(tp.Partitions)
			}
			out = append(out, fmt.Sprintf("%s: %d partitions", m.MemberID, n))
		}
	}
	return strings.Join(out, ", ")
}

// countWarnings counts WARN lines: kafka-go's reader reports each failed
// connection, fetch and commit through the consumer's logger.
func countWarnings(p *proc) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, l := range p.lines {
		if l.str("level") == "WARN" {
			n++
		}
	}
	return n
}

// TestDatabaseOutage: the database goes away while a run is in the middle
// of its transaction (the test kills the consumer's MariaDB sessions, as a
// restart or a network cut ends them). The run's transaction rolls back,
// the event's offset is not committed, and the event is retried until the
// database answers again; then it runs once. With the account locked the
// database stays away for a while (the consumer reports not-ready and
// backs off); without, it is back at once.
func TestDatabaseOutage(t *testing.T) {
	for _, tc := range []struct {
		name      string
		staysAway bool
	}{
		{"stays away", true},
		{"back at once", false},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			began := time.Now()
			brokers := testenv.KafkaBrokers(t)
			p := faultPlan()
			db := newTestDB(t, "mysql", p)
			userURL := db.mysqlUser(t, "c")
			user := userOf(userURL)
			topic := newTopic(t, brokers, "dbdown")
			group := topic + "-group"
			s := consumerSettings(brokers, topic, group, db.url)
			c := startConsumer(t, "consumer", s.with("DATABASE_URL", userURL))
			waitReady(t, c)
			pubs := publishNow(t, s, p.Rounds[0])
			db.waitOutcomes(t, pubs)

			unlock := db.lockTable(t, "casbin_rule")
			pubs = append(pubs, publishNow(t, s, p.Rounds[1])...)
			stmt := db.waitMidRun(t, user)
			if tc.staysAway {
				db.exec(t, fmt.Sprintf("ALTER USER '%s'@'%%' ACCOUNT LOCK", user))
			}
			killed := db.killConnections(t, user)
			unlock()
			var retry logLine
			eventually(t, "the interrupted event retried", func() (bool, string) {
				ls := c.logs("handle failed, retrying")
				if len(ls) > 0 {
					retry = ls[0]
				}
				return len(ls) > 0, "no \"handle failed, retrying\" line"
			})
			interrupted := retry.str("event_id")
			if tc.staysAway {
				var r readiness
				eventually(t, "the consumer reporting the database down", func() (bool, string) {
					r = c.readyz()
					return r.Status == 503 && strings.Contains(r.failing(), "database"), fmt.Sprintf("/readyz %d: %s", r.Status, r.failing())
				})
				eventually(t, "more retries with backoff", func() (bool, string) {
					n := len(c.logs("handle failed, retrying"))
					return n >= 3, fmt.Sprintf("%d retries", n)
				})
				_, done := db.outcomes(t)[interrupted]
				require.False(t, done, "event %s has an outcome while the database is away", interrupted)
				committed, _, err := committedAndEnd(t, offsets(brokers, group, topic))
				require.NoError(t, err)
				part, off := int(retry.num("partition")), retry.num("offset")
				require.LessOrEqual(t, committed[part], off, "offset %d of partition %d committed before its event took effect", off, part)
				db.exec(t, fmt.Sprintf("ALTER USER '%s'@'%%' ACCOUNT UNLOCK", user))
			}
			pubs = append(pubs, publishNow(t, s, p.Rounds[2])...)
			tl := db.checkRuns(t, pubs)
			waitCommittedToEnd(t, offsets(brokers, group, topic))
			db.expectFinal(t, p, p.Toggles())
			waitReady(t, c)
			retries := len(c.logs("handle failed, retrying"))
			c.stop()
			t.Logf("database outage (%s): %s; %d sessions killed while a run waited on %q; event %s retried %d times (%s), then ran once; test took %s",
				tc.name, tl, killed, truncate(stmt, 60), interrupted, retries, truncate(retry.str("error"), 80), time.Since(began).Round(time.Millisecond))
		})
	}
}

// TestSIGTERMDuringRun: SIGTERM arrives while a run is in the middle of
// its transaction and more events wait; the run finishes, the offsets of
// everything handled are committed (the consumer would otherwise commit
// only every 5s), the process exits 0; a new consumer handles the rest and
// gets nothing twice.
func TestSIGTERMDuringRun(t *testing.T) {
	began := time.Now()
	brokers := testenv.KafkaBrokers(t)
	p := faultPlan()
	db := newTestDB(t, "mysql", p)
	userURL := db.mysqlUser(t, "c")
	topic := newTopic(t, brokers, "term")
	group := topic + "-group"
	s := consumerSettings(brokers, topic, group, db.url)
	c := startConsumer(t, "consumer", s.with("DATABASE_URL", userURL), "--commit-interval=5s")
	waitReady(t, c)
	pubs := publishNow(t, s, p.Rounds[0])
	db.waitOutcomes(t, pubs)

	unlock := db.lockTable(t, "casbin_rule")
	pubs = append(pubs, publishNow(t, s, p.Rounds[1])...)
	stmt := db.waitMidRun(t, userOf(userURL))
	before := len(c.handled())
	c.signal(syscall.SIGTERM)
	unlock()
	require.Equal(t, 0, c.wait(), "exit code after SIGTERM")
	require.NotEmpty(t, c.logs("drained"), "the consumer drained")
	// Reported after the SIGTERM: the run in hand, finished, and no other
	// run (events the loop had batched with it may settle if they move no
	// data).
	var ran []logLine
	for _, l := range c.handled()[before:] {
		if l.str("outcome") == "ran" {
			ran = append(ran, l)
		}
	}
	require.Len(t, ran, 1, "after SIGTERM only the run in hand finished, no other run was started: %v", ran)
	require.Equal(t, "completed", ran[0].str("status"), "the run in hand finished")

	// Every outcome's offset is committed.
	committed, _, err := committedAndEnd(t, offsets(brokers, group, topic))
	require.NoError(t, err)
	outs := db.outcomes(t)
	for _, o := range outs {
		require.Greater(t, committed[o.Partition], o.Offset, "event %s (partition %d offset %d) has an outcome but its offset is not committed", o.EventID, o.Partition, o.Offset)
	}

	again := startConsumer(t, "consumer-again", s.with("DATABASE_URL", userURL))
	pubs = append(pubs, publishNow(t, s, p.Rounds[2])...)
	tl := db.checkRuns(t, pubs)
	waitCommittedToEnd(t, offsets(brokers, group, topic))
	db.expectFinal(t, p, p.Toggles())
	require.Zero(t, outcomesLogged(again)["duplicate"], "events redelivered after the drain")
	again.stop()
	t.Logf("SIGTERM during a run (waiting on %q): exit 0, %d outcomes committed at exit; after restart: %s; test took %s",
		truncate(stmt, 60), len(outs), tl, time.Since(began).Round(time.Millisecond))
}

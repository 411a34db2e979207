package kafka_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/testenv"
)

// reference is a plan played by one consumer without faults, round by
// round: the runs it makes are exactly the plan's transitions, and its role
// tables are what every faulty run of the same plan must end with.
type reference struct {
	plan    Plan
	db      *testDB
	brokers []string
	topic   string
	group   string
	s       settings
	pubs    []published
	rounds  [][]published
	tables  demo.Dump
}

// TestPublishedEvents plays the plan (16 scopes, 80 events) once as the
// reference, then checks a consumer group that loses a member to SIGKILL
// mid-stream, and replays, against it.
func TestPublishedEvents(t *testing.T) {
	began := time.Now()
	ref := playReference(t)
	t.Logf("reference (1 consumer, SQLite): %d events in %d rounds took %s", len(ref.pubs), len(ref.rounds), time.Since(began).Round(time.Millisecond))

	t.Run("TwoConsumersOneKilled", func(t *testing.T) { testTwoConsumersOneKilled(t, ref) })
	t.Run("Replay", func(t *testing.T) { testReplay(t, ref) })
}

// playReference publishes the plan round by round with `consumer publish`
// and lets one `consumer run` (on SQLite) handle each round before the
// next: every toggle that changes its scope's state makes exactly one run
// in its direction, every other is a no-op.
func playReference(t *testing.T) *reference {
	ref := &reference{plan: newPlan(12, 4, 5), brokers: testenv.KafkaBrokers(t)}
	ref.db = newTestDB(t, "sqlite", ref.plan)
	ref.topic = newTopic(t, ref.brokers, "ref")
	ref.group = ref.topic + "-group"
	ref.s = consumerSettings(ref.brokers, ref.topic, ref.group, ref.db.url)

	c := startConsumer(t, "reference", ref.s)
	waitReady(t, c)
	for _, round := range ref.plan.Rounds {
		pubs := publishNow(t, ref.s, round)
		ref.db.waitOutcomes(t, append(ref.pubs, pubs...))
		ref.pubs = append(ref.pubs, pubs...)
		ref.rounds = append(ref.rounds, pubs)
	}
	tl := ref.db.checkRuns(t, ref.pubs)
	waitCommittedToEnd(t, offsets(ref.brokers, ref.group, ref.topic))
	c.stop()

	// Exactly the expected runs: event by event, ran in the direction of
	// the transition, or no-op.
	outs, runs := ref.db.outcomes(t), ref.db.runs(t)
	runByID := map[int64]runRow{}
	for _, r := range runs {
		runByID[r.ID] = r
	}
	state := map[Scope]bool{}
	for _, p := range ref.pubs {
		o := outs[p.EventID]
		require.Equal(t, p.RecordID, o.RecordID, "event %s", p.EventID)
		switch {
		case p.on() == state[p.Scope]:
			require.Equal(t, "noop", o.Outcome, "event %s: %s %s %s (disabled=%t) keeps the state", p.EventID, p.Scope.Type, p.Scope.Key, p.Choice, p.Disabled)
		default:
			want := map[bool]string{true: "forward", false: "rollback"}[p.on()]
			require.Equal(t, "ran", o.Outcome, "event %s: %s %s %s (disabled=%t)", p.EventID, p.Scope.Type, p.Scope.Key, p.Choice, p.Disabled)
			require.Equal(t, want, runByID[o.RunID].Type, "run of event %s", p.EventID)
		}
		state[p.Scope] = p.on()
	}
	require.Equal(t, transitions(ref.plan.Toggles()), tl.Runs, "runs of the reference")
	ref.db.expectFinal(t, ref.plan, ref.plan.Toggles())
	ref.tables = ref.db.roleTables(t)
	t.Logf("reference: %s", tl)
	return ref
}

// testTwoConsumersOneKilled: two consumers of one group (each with its own
// MariaDB user) share the 6 partitions; while the plan is being published,
// one is SIGKILLed in the middle of a run (its session waits on a table the
// test holds locked), with handled events whose offsets it has not
// committed yet (commits every 2s). The other takes its partitions over
// and finishes every event; no override record gets a second run, and the
// role tables equal the reference's.
func testTwoConsumersOneKilled(t *testing.T, ref *reference) {
	began := time.Now()
	db := newTestDB(t, "mysql", ref.plan)
	topic := newTopic(t, ref.brokers, "kill")
	group := topic + "-group"
	s := consumerSettings(ref.brokers, topic, group, db.url)
	userA, userB := db.mysqlUser(t, "a"), db.mysqlUser(t, "b")
	victim := startConsumer(t, "consumer-a", s.with("DATABASE_URL", userA), "--commit-interval=2s")
	survivor := startConsumer(t, "consumer-b", s.with("DATABASE_URL", userB), "--commit-interval=2s")
	waitReady(t, victim)
	waitReady(t, survivor)
	waitMembers(t, offsets(ref.brokers, group, topic), 2)

	pb := publishAll(s, ref.plan.Toggles())
	eventually(t, "consumer-a handled some events", func() (bool, string) {
		n := len(victim.handled())
		return n >= 6, fmt.Sprintf("consumer-a handled %d, %d published", n, pb.count())
	})
	stmt, unlock := db.blockMidRun(t, userOf(userA), func() int { return len(victim.handled()) })
	handledAtKill, survivorAtKill := victim.handled(), survivor.handled()
	publishedAtKill := pb.count()
	victim.signal(syscall.SIGKILL)
	require.Equal(t, -1, victim.wait(), "consumer-a dies of SIGKILL")
	killedAt := time.Now()
	unlock()

	// What the victim handled but had not committed: the survivor gets it
	// again and must recognize it.
	committed, _, err := committedAndEnd(t, offsets(ref.brokers, group, topic))
	require.NoError(t, err)
	uncommitted := 0
	for _, l := range handledAtKill {
		if l.num("offset") >= committed[int(l.num("partition"))] {
			uncommitted++
		}
	}

	pubs := pb.wait(t)
	require.GreaterOrEqual(t, len(pubs), 60)
	tl := db.checkRuns(t, pubs)
	waitCommittedToEnd(t, offsets(ref.brokers, group, topic))
	takeover := time.Since(killedAt)
	survivor.stop()

	victimParts, survivorBefore, survivorAfter := partitionsHandled(handledAtKill), partitionsHandled(survivorAtKill), partitionsHandled(survivor.handled()[len(survivorAtKill):])
	redelivered := outcomesLogged(survivor)["duplicate"]
	t.Logf("two consumers, one SIGKILLed mid-run: %s", tl)
	t.Logf("killed while its run waited on %q; at the kill: %d events published, consumer-a had handled %d on partitions %v (%d not committed), consumer-b %d on partitions %v; after it consumer-b handled events on partitions %v and recognized %d redelivered events as duplicates; all committed %s after the kill; test took %s",
		truncate(stmt, 60), publishedAtKill, len(handledAtKill), victimParts, uncommitted, len(survivorAtKill), survivorBefore, survivorAfter, redelivered, takeover.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))

	require.Zero(t, tl.Duplicates)
	require.NotEmpty(t, victimParts, "consumer-a handled events before it was killed")
	require.Empty(t, intersect(victimParts, survivorBefore), "the two consumers held different partitions")
	require.NotEmpty(t, intersect(victimParts, survivorAfter), "consumer-b took over consumer-a's partitions")
	db.expectFinal(t, ref.plan, ref.plan.Toggles())
	require.Empty(t, demo.Diff(ref.tables, db.roleTables(t)), "role tables differ from the reference run (- reference, + this run)")
}

// partitionsHandled lists the partitions of "event handled" lines.
func partitionsHandled(handled []logLine) []int {
	seen := map[int]bool{}
	for _, l := range handled {
		seen[int(l.num("partition"))] = true
	}
	return slices.Sorted(maps.Keys(seen))
}

func intersect(a, b []int) []int {
	var out []int
	for _, x := range a {
		if slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// testReplay: `consumer replay` refuses while a consumer of the group is
// alive; with the group stopped it moves the offsets back, to a time in
// the middle of the stream and to before the first event; a consumer then
// re-reads those events and changes nothing: no run, no outcome, no row.
func testReplay(t *testing.T, ref *reference) {
	began := time.Now()
	o := offsets(ref.brokers, ref.group, ref.topic)
	live := startConsumer(t, "live", ref.s)
	waitReady(t, live)
	waitMembers(t, o, 1)
	first := ref.pubs[0].At.Add(-time.Second).UTC().Format(time.RFC3339)
	code, out := run(t, ref.s, "replay", "--to-time", first)
	require.NotEqual(t, 0, code, "replay with a live consumer: %s", out)
	require.Contains(t, out, "live members", "replay's refusal names the reason")
	live.stop()
	waitMembers(t, o, 0)

	before := takeDump(t, ref.db)
	for _, tc := range []struct {
		name string
		at   time.Time
		want int // events re-read
	}{
		{"middle", ref.rounds[2][0].At, len(ref.pubs) - len(ref.rounds[0]) - len(ref.rounds[1])},
		{"before the first event", ref.pubs[0].At.Add(-time.Second), len(ref.pubs)},
	} {
		at := tc.at.UTC().Format(time.RFC3339Nano)
		code, out := run(t, ref.s, "replay", "--to-time", at)
		require.Equal(t, 0, code, "replay --to-time %s: %s", at, out)
		committed, end, err := committedAndEnd(t, o)
		require.NoError(t, err)
		backlog := 0
		for p, e := range end {
			backlog += int(e - committed[p])
		}
		require.Equal(t, tc.want, backlog, "replay to %s (%s) moved the group back over the events published since:\n%s", tc.name, at, out)

		c := startConsumer(t, "replay-"+strings.ReplaceAll(tc.name, " ", "-"), ref.s)
		waitCommittedToEnd(t, o)
		got := outcomesLogged(c)
		c.stop()
		require.Equal(t, map[string]int{"duplicate": tc.want}, got, "replayed events are recognized as handled")
		require.Empty(t, demo.Diff(before, takeDump(t, ref.db)), "replay to %s changed the database (- before, + after)", tc.name)
		t.Logf("replay to %s: %d events re-read, nothing changed", tc.name, tc.want)
	}
	t.Logf("replay test took %s", time.Since(began).Round(time.Millisecond))
}

// takeDump is every table a run or an event touches (ids and times left out).
func takeDump(t testing.TB, db *testDB) demo.Dump {
	t.Helper()
	d, err := demo.TakeDump(context.Background(), db.db)
	require.NoError(t, err)
	return d
}

// waitMembers waits until the group is stable with n live members, each
// with some of the topic's partitions.
func waitMembers(t testing.TB, o consumer.Offsets, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d live members in group %s", n, o.Group), func() (bool, string) {
		resp, err := o.Client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{o.Group}})
		if err != nil {
			return false, err.Error()
		}
		for _, g := range resp.Groups {
			if g.Error != nil {
				return false, g.Error.Error()
			}
			if len(g.Members) != n {
				return false, fmt.Sprintf("%d members, state %s", len(g.Members), g.GroupState)
			}
			if n == 0 {
				return true, ""
			}
			if g.GroupState != "Stable" {
				return false, "state " + g.GroupState
			}
			for _, m := range g.Members {
				assigned := 0
				for _, tp := range m.MemberAssignments.Topics {
					assigned += len(tp.Partitions)
				}
				if assigned == 0 {
					return false, "member " + m.MemberID + " has no partition"
				}
			}
			return true, ""
		}
		return n == 0, "group not described"
	})
}

func truncate(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

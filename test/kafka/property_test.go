package kafka_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/testenv"
	"authz-flag-consumer/internal/testenv/flagcase"
)

// TestReconcilePropertyRealKafka is the reconciliation property in the
// service tier: the real `consumer run` binary, the real broker, MariaDB.
// For any sequence of course and org saves and any delivery of their events
// (reordered across partitions, duplicated, some lost and healed by the
// binary's own sweep, then the whole topic replayed), once the consumer has
// caught up every course's and org-wide row's mappable roles are where the
// final effective state puts them, and there are no more runs than changes
// of effective states.
//
// The oracle (propModel) knows nothing of the implementation: the newest
// save of each scope, own override else org override else the global flag
// (off here), and the role rows read back from the tables.
//
// Cases share one database, topic and consumer, each on orgs of its own.
// PROPERTY_SEED replays a seed; PROPERTY_CASES_KAFKA sets the number of
// cases (25 by default).
func TestReconcilePropertyRealKafka(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	cases := propEnvInt("PROPERTY_CASES_KAFKA", 25)
	seed := uint64(propEnvInt("PROPERTY_SEED", int(time.Now().UnixNano()%1_000_000)))
	sweep := "500ms"
	if v := os.Getenv("PROPERTY_SWEEP_INTERVAL"); v != "" { // 0 shows the test fails without the sweep
		sweep = v
	}
	t.Logf("property (real Kafka, MariaDB): %d cases, seed %d, sweep interval %s (replay with PROPERTY_SEED=%d)", cases, seed, sweep, seed)

	var plans []*flagcase.Case
	var roles []demo.Role
	for i := range cases {
		c := flagcase.New(seed, i, "KP")
		plans = append(plans, c)
		roles = append(roles, c.Roles...)
	}
	db := newTestDB(t, "mysql", Plan{Roles: roles})
	topic := newTopic(t, brokers, "prop")
	s := consumerSettings(brokers, topic, topic+"-group", db.url)

	// The binary sets its sweep watermarks at start: it runs before any
	// override row is saved, so the sweep sees every one of them.
	c := startConsumer(t, "consumer", s, "--sweep-interval="+sweep)
	waitReady(t, c)
	eventually(t, "the consumer's sweep started (watermarks set, or off)", func() (bool, string) {
		return len(c.logs("sweep watermarks set to the newest override rows; nothing moved (`consumer reconcile` catches up deliberately)"))+
			len(c.logs("sweep off (--sweep-interval 0, or automatic migration off)")) > 0, "no sweep start line yet"
	})

	ctx := context.Background()
	pub := newKPublisher(t, brokers, topic)

	// Saves happen in order; each case's events are published in a permuted
	// order, some twice, some never, all cases interleaved while the
	// consumer works.
	save := func(o demo.Override) demo.Override { return db.save(t, o) }
	send := func(o demo.Override, times int) { pub.send(t, o, times) }
	for active := true; active; {
		active = false
		for _, pc := range plans {
			if pc.Step(save, send) {
				active = true
			}
		}
	}
	off := offsets(brokers, topic+"-group", topic)
	waitCommittedToEnd(t, off)

	// Lost events are left to the sweeps: poll until every case holds (or
	// a deadline passes), then assert.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !allHold(plans, readPropState(t, db)) {
		time.Sleep(250 * time.Millisecond)
	}
	st := readPropState(t, db)
	var published, lost, dups, runs, changes int
	for _, pc := range plans {
		require.Empty(t, mismatch(pc, st), "roles not where the oracle puts them; %s", pc.Describe(seed))
		r, ch := pc.RunsAndChanges(st.runs)
		require.LessOrEqual(t, r, ch, "more runs than effective-state changes; %s", pc.Describe(seed))
		published += pc.Published
		lost += pc.Lost
		dups += pc.Dups
		runs += r
		changes += ch
	}
	swept := 0
	for _, l := range c.logs("sweep done") {
		swept += int(l.num("runs"))
	}

	// A replay of the whole topic changes nothing.
	before, err := demo.TakeDump(ctx, db.db)
	require.NoError(t, err)
	c.stop()
	_, err = off.ResetOffsets(ctx, consumer.ResetTarget{Offset: 0})
	require.NoError(t, err)
	c = startConsumer(t, "consumer-replay", s, "--sweep-interval="+sweep)
	waitReady(t, c)
	waitCommittedToEnd(t, off)
	after, err := demo.TakeDump(ctx, db.db)
	require.NoError(t, err)
	require.Empty(t, demo.Diff(before, after), "a replay from the first offset changes nothing (seed %d)", seed)
	c.stop()

	t.Logf("property held: %d cases, %d saves, %d events published (%d duplicated, %d lost and healed by the sweep), "+
		"%d runs (%d by sweeps) for %d effective-state changes, replay changed nothing, seed %d",
		cases, countSaves(plans), published, dups, lost, runs, swept, changes, seed)
}

func propEnvInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func countSaves(plans []*flagcase.Case) int {
	n := 0
	for _, pc := range plans {
		n += len(pc.Saves)
	}
	return n
}

// kPublisher writes events as the LMS does: registry-framed Avro with the
// ce_* headers, keyed by scope, on librdkafka's partition for the key.
type kPublisher struct {
	ctx   context.Context
	topic string
	enc   *events.Encoder
	w     *kafka.Writer
}

func (p *kPublisher) send(t testing.TB, o demo.Override, times int) {
	t.Helper()
	m, err := p.enc.Encode(p.ctx, p.topic, o.Event())
	require.NoError(t, err)
	km := consumer.KafkaMessage(m)
	km.Topic = p.topic
	for range times { // a duplicate is the same message (same ce_id) again
		require.NoError(t, p.w.WriteMessages(p.ctx, km))
	}
}

// propState is what the tables hold: legacy rows and role assignments as
// strings, and the number of runs by scope key.
type propState struct {
	legacy, assigned map[string]bool
	runs             map[string]int
}

func readPropState(t testing.TB, db *testDB) propState {
	t.Helper()
	st := propState{legacy: map[string]bool{}, assigned: map[string]bool{}, runs: map[string]int{}}
	for _, r := range db.strings(t, `SELECT u.username, r.org, r.course_id, r.role FROM student_courseaccessrole r JOIN auth_user u ON u.id = r.user_id`) {
		st.legacy[r] = true
	}
	for _, r := range db.strings(t, `SELECT v0, v1, v2 FROM casbin_rule WHERE ptype = 'g'`) {
		st.assigned[r] = true
	}
	for _, k := range db.strings(t, `SELECT scope_key FROM openedx_authz_authzcourseauthoringmigrationrun`) {
		st.runs[k]++
	}
	return st
}

// mismatch lists the case's roles that are not exactly where the oracle
// puts them (legacy row xor role assignment), empty when all are.
func mismatch(c *flagcase.Case, st propState) string {
	final, _ := c.Oracle()
	var bad []string
	for _, r := range c.Roles {
		legacy := strings.Join([]string{r.Username, r.Org, r.CourseID, r.Role}, "|")
		scope := "course-v1^" + r.CourseID
		on := final[r.CourseID]
		where := r.CourseID
		if r.CourseID == "" {
			scope = "course-v1^course-v1:" + r.Org + "+*"
			on = final[r.Org]
			where = r.Org + " (org-wide)"
		}
		g := strings.Join([]string{"user^" + r.Username, "role^" + authzRoles[r.Role], scope}, "|")
		if on != st.assigned[g] || on == st.legacy[legacy] {
			bad = append(bad, fmt.Sprintf("%s %s in %s: effective %v, legacy row %v, assignment %v",
				r.Username, r.Role, where, on, st.legacy[legacy], st.assigned[g]))
		}
	}
	sort.Strings(bad)
	return strings.Join(bad, "; ")
}

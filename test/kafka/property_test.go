package kafka_test

import (
	"context"
	"fmt"
	"math/rand/v2"
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
)

// TestReconcilePropertyRealKafka is SPEC 4's reconciliation property in the
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

	var plans []*kCase
	var roles []demo.Role
	for i := range cases {
		c := newKCase(seed, i)
		plans = append(plans, c)
		roles = append(roles, c.roles...)
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
	rc, err := events.NewRegistryClient(registryURL, events.RegistryOptions{})
	require.NoError(t, err)
	pub := &kPublisher{
		ctx:   ctx,
		topic: topic,
		enc:   events.NewEncoder(rc, events.EncoderOptions{}),
		w: &kafka.Writer{
			Addr:         kafka.TCP(brokers...),
			Balancer:     consumer.KeyPartitioner{},
			BatchTimeout: time.Millisecond,
			RequiredAcks: kafka.RequireAll,
		},
	}
	t.Cleanup(func() { pub.w.Close() })

	// Saves happen in order; each case's events are published in a permuted
	// order, some twice, some never, all cases interleaved while the
	// consumer works.
	for {
		active := false
		for _, pc := range plans {
			if pc.step(t, db, pub) {
				active = true
			}
		}
		if !active {
			break
		}
	}
	off := offsets(brokers, topic+"-group", topic)
	waitCommittedToEnd(t, off)

	// Lost events are left to the sweeps: poll until every case holds (or
	// a deadline passes), then assert.
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		st := readPropState(t, db)
		ok := true
		for _, pc := range plans {
			if pc.mismatch(st) != "" {
				ok = false
				break
			}
		}
		if ok {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	st := readPropState(t, db)
	var published, lost, dups, runs, changes int
	for _, pc := range plans {
		require.Empty(t, pc.mismatch(st), "roles not where the oracle puts them; %s", pc.describe(seed))
		r, ch := pc.runsAndChanges(st)
		require.LessOrEqual(t, r, ch, "more runs than effective-state changes; %s", pc.describe(seed))
		published += pc.published
		lost += pc.lost
		dups += pc.dups
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

func countSaves(plans []*kCase) int {
	n := 0
	for _, pc := range plans {
		n += len(pc.saves)
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

// kCase is one case: two orgs of its own with courses and legacy roles
// (course teams, sometimes an org-wide role), saves, and their delivery.
type kCase struct {
	id      int
	rng     *rand.Rand
	orgs    []string
	courses map[string][]string // org -> course keys
	roles   []demo.Role
	saves   []demo.Override
	saved   int
	queue   []int // saves whose events wait to be published
	done    bool

	published, lost, dups int
}

var propRoles = []string{"instructor", "staff", "limited_staff", "data_researcher", "beta_testers", "ccx_coach"}

func newKCase(seed uint64, id int) *kCase {
	rng := rand.New(rand.NewPCG(seed, uint64(id)))
	c := &kCase{id: id, rng: rng, courses: map[string][]string{}}
	for o := range 2 {
		org := fmt.Sprintf("KP%dO%d", id, o)
		c.orgs = append(c.orgs, org)
		for k := range 1 + rng.IntN(3) {
			key := fmt.Sprintf("course-v1:%s+C%d+2026", org, k)
			c.courses[org] = append(c.courses[org], key)
			for u := range 1 + rng.IntN(3) {
				c.roles = append(c.roles, demo.Role{Username: fmt.Sprintf("kp%d_%d_%d_%d", id, o, k, u), Org: org, CourseID: key, Role: propRoles[rng.IntN(len(propRoles))]})
			}
		}
		if rng.IntN(2) == 0 {
			c.roles = append(c.roles, demo.Role{Username: fmt.Sprintf("kp%d_%d_w", id, o), Org: org, Role: propRoles[rng.IntN(len(propRoles))]})
		}
	}
	for range 2 + rng.IntN(7) {
		o := demo.Override{Flag: demo.Flag, Enabled: rng.IntN(5) > 0, Choice: []string{"on", "off"}[rng.IntN(2)]}
		org := c.orgs[rng.IntN(len(c.orgs))]
		if rng.IntN(3) == 0 {
			o.ScopeType, o.ScopeKey = "org", org
		} else {
			cs := c.courses[org]
			o.ScopeType, o.ScopeKey = "course", cs[rng.IntN(len(cs))]
		}
		c.saves = append(c.saves, o)
	}
	return c
}

// step saves the case's next override (if any) and publishes some of the
// waiting events in random order: 1 in 10 lost, 1 in 10 sent twice. It
// reports whether the case still had work.
func (c *kCase) step(t testing.TB, db *testDB, p *kPublisher) bool {
	t.Helper()
	if c.done {
		return false
	}
	if c.saved < len(c.saves) {
		o, err := demo.Save(p.ctx, db.db, c.saves[c.saved])
		require.NoError(t, err)
		c.saves[c.saved] = o
		c.queue = append(c.queue, c.saved)
		c.saved++
	}
	last := c.saved == len(c.saves)
	for len(c.queue) > 0 && (last || c.rng.IntN(2) == 0) {
		i := c.rng.IntN(len(c.queue))
		s := c.queue[i]
		c.queue = append(c.queue[:i], c.queue[i+1:]...)
		switch n := c.rng.IntN(10); {
		case n == 0: // lost: the LMS only logs a failed publish
			c.lost++
		case n == 1:
			p.send(t, c.saves[s], 2)
			c.published += 2
			c.dups++
		default:
			p.send(t, c.saves[s], 1)
			c.published++
		}
	}
	if last && len(c.queue) == 0 {
		c.done = true
	}
	return true
}

// propModel is the oracle: the newest save of each scope.
type propModel struct {
	course, org map[string]demo.Override
}

// forces reports whether o forces a state, and which.
func forces(o demo.Override, ok bool) (on, forced bool) {
	if !ok || !o.Enabled || (o.Choice != "on" && o.Choice != "off") {
		return false, false
	}
	return o.Choice == "on", true
}

func (m propModel) orgOn(org string) bool {
	o, ok := m.org[org]
	on, _ := forces(o, ok)
	return on // not forced: the global flag, off in this test
}

func (m propModel) courseOn(org, key string) bool {
	o, ok := m.course[key]
	if on, forced := forces(o, ok); forced {
		return on
	}
	return m.orgOn(org)
}

// oracle replays the case's saves: the final effective state of every
// scope (orgs by org name, courses by key) and how many times each changed.
func (c *kCase) oracle() (final map[string]bool, changes map[string]int) {
	m := propModel{course: map[string]demo.Override{}, org: map[string]demo.Override{}}
	state := func() map[string]bool {
		s := map[string]bool{}
		for _, org := range c.orgs {
			s[org] = m.orgOn(org)
			for _, k := range c.courses[org] {
				s[k] = m.courseOn(org, k)
			}
		}
		return s
	}
	changes = map[string]int{}
	prev := state()
	for _, o := range c.saves {
		if o.ScopeType == "org" {
			m.org[o.ScopeKey] = o
		} else {
			m.course[o.ScopeKey] = o
		}
		now := state()
		for k, on := range now {
			if on != prev[k] {
				changes[k]++
			}
		}
		prev = now
	}
	return prev, changes
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
func (c *kCase) mismatch(st propState) string {
	final, _ := c.oracle()
	var bad []string
	for _, r := range c.roles {
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

// runsAndChanges sums the case's runs and its scopes' effective-state
// changes (per scope the counts may differ: an org run can move a course
// that follows the org before the course's own event arrives).
func (c *kCase) runsAndChanges(st propState) (runs, changes int) {
	_, ch := c.oracle()
	for _, org := range c.orgs {
		runs += st.runs[org]
		changes += ch[org]
		for _, k := range c.courses[org] {
			runs += st.runs[k]
			changes += ch[k]
		}
	}
	return runs, changes
}

func (c *kCase) describe(seed uint64) string {
	var saves []string
	for _, o := range c.saves {
		saves = append(saves, fmt.Sprintf("#%d %s %s enabled=%v %s", o.ID, o.ScopeType, o.ScopeKey, o.Enabled, o.Choice))
	}
	return fmt.Sprintf("seed %d case %d: saves [%s], published %d, duplicated %d, lost %d",
		seed, c.id, strings.Join(saves, ", "), c.published, c.dups, c.lost)
}

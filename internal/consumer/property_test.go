package consumer_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/testenv"
)

// The reconciliation property: for any sequence of course and org saves
// and any delivery of their events (reordered across scopes, duplicated,
// replayed, some lost and healed by the sweep), once the consumer has
// caught up every course's mappable roles are where its final effective
// state puts them, and there are no more runs than changes of effective
// states (a no-op save makes no run of its own).
//
// The oracle below knows nothing of the implementation: it replays the
// saves in a plain model (own override, else org override, else the
// instance-wide flag, off here) and reads only role rows back.
//
// All cases share one database, one topic and one consumer, each on orgs
// of its own, so hundreds run in seconds. PROPERTY_CASES and PROPERTY_SEED
// set the number of cases and the seed; a failure prints the seed and the
// case to replay it.
func TestReconcileProperty(t *testing.T) {
	t.Parallel()
	runProperty(t, newFixture(t), envInt("PROPERTY_CASES", 200))
}

// The same property on MariaDB (the service tier's server), fewer cases.
func TestReconcilePropertyMariaDB(t *testing.T) {
	t.Parallel()
	runProperty(t, newFixtureURL(t, testenv.MySQLURL(t)), envInt("PROPERTY_CASES_MARIADB", 40))
}

func runProperty(t *testing.T, fx *fixture, cases int) {
	seed := uint64(envInt("PROPERTY_SEED", int(time.Now().UnixNano()%1_000_000)))
	t.Logf("property: %d cases, seed %d (replay with PROPERTY_SEED=%d)", cases, seed, seed)

	eng := fx.engine(migrator.Options{AutoMigrate: true})
	_, err := eng.Sweep(fx.ctx, migrator.SweepOptions{}) // the first sweep sets the watermarks
	require.NoError(t, err)
	r := fx.start(fx.options(eng))

	var plans []*propCase
	for i := range cases {
		c := newPropCase(seed, i)
		require.NoError(t, demo.AddRoles(fx.ctx, fx.db, c.roles...))
		plans = append(plans, c)
	}
	// Saves happen in order, their events are published as the case's
	// delivery says, all cases interleaved while the consumer works.
	for step := 0; ; step++ {
		active := false
		for _, c := range plans {
			if c.step(fx, step) {
				active = true
			}
		}
		if !active {
			break
		}
	}
	fx.waitCommitted()
	// Lost events are healed by the sweep.
	res, err := eng.Sweep(fx.ctx, migrator.SweepOptions{})
	require.NoError(t, err)
	t.Logf("sweep after the stream: %d scopes reconciled, %d runs", res.Scopes, res.Runs)
	lost, published := 0, 0
	for _, c := range plans {
		lost += c.lost
		published += c.published
		c.check(t, fx, seed)
	}

	// A replay of the whole topic changes nothing.
	before := fx.dump()
	r.stop()
	fx.eventually("the group is empty", func() bool {
		m, err := fx.offsets.Members(fx.ctx)
		return err == nil && len(m) == 0
	})
	_, err = fx.offsets.ResetOffsets(fx.ctx, consumer.ResetTarget{Offset: 0})
	require.NoError(t, err)
	fx.start(fx.options(eng))
	fx.waitCommitted()
	require.Empty(t, demo.Diff(before, fx.dump()), "a replay from the first offset changes nothing (seed %d)", seed)
	t.Logf("property held: %d cases, %d events published (%d lost and healed by the sweep), seed %d", cases, published, lost, seed)
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// propCase is one case: two orgs with courses and legacy roles of their
// own, a sequence of saves, and how their events are delivered.
type propCase struct {
	id      int
	rng     *rand.Rand
	orgs    []string
	courses map[string][]string // org -> course keys
	roles   []demo.Role
	saves   []demo.Override
	saved   int
	queue   []int // saves whose events are waiting to be published
	lost    int
	done    bool

	published int
}

func newPropCase(seed uint64, id int) *propCase {
	rng := rand.New(rand.NewPCG(seed, uint64(id)))
	c := &propCase{id: id, rng: rng, courses: map[string][]string{}}
	mapped := []string{"instructor", "staff", "limited_staff", "data_researcher", "beta_testers", "ccx_coach"}
	for o := range 2 {
		org := fmt.Sprintf("P%dO%d", id, o)
		c.orgs = append(c.orgs, org)
		for k := range 1 + rng.IntN(3) {
			key := fmt.Sprintf("course-v1:%s+C%d+2026", org, k)
			c.courses[org] = append(c.courses[org], key)
			for u := range 1 + rng.IntN(3) {
				c.roles = append(c.roles, demo.Role{Username: fmt.Sprintf("p%d_%d_%d_%d", id, o, k, u), Org: org, CourseID: key, Role: mapped[rng.IntN(len(mapped))]})
			}
		}
		if rng.IntN(2) == 0 { // an org-wide role
			c.roles = append(c.roles, demo.Role{Username: fmt.Sprintf("p%d_%d_w", id, o), Org: org, Role: mapped[rng.IntN(len(mapped))]})
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

// step does the case's next save (if any) and publishes some of the
// waiting events in random order: reordered, sometimes twice, sometimes
// never. It reports whether the case still has work.
func (c *propCase) step(fx *fixture, _ int) bool {
	if c.done {
		return false
	}
	if c.saved < len(c.saves) {
		c.saves[c.saved] = fx.save(c.saves[c.saved])
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
		case n == 1: // duplicated: the same message twice
			m, err := fx.enc.Encode(fx.ctx, testTopic, c.saves[s].Event())
			require.NoError(fx.t, err)
			fx.write(m)
			fx.write(m)
			c.published += 2
		default:
			fx.publish(c.saves[s])
			c.published++
		}
	}
	if last && len(c.queue) == 0 {
		c.done = true
	}
	return true
}

// model is the oracle's view of the flag: the newest save of each scope.
type model struct {
	course map[string]demo.Override
	org    map[string]demo.Override
}

func forced(o demo.Override, ok bool) (on, forces bool) {
	if !ok || !o.Enabled || (o.Choice != "on" && o.Choice != "off") {
		return false, false
	}
	return o.Choice == "on", true
}

func (m model) orgOn(org string) bool {
	on, _ := forced(m.org[org], hasKey(m.org, org))
	return on // else the instance-wide flag: off in this test
}

func (m model) courseOn(org, key string) bool {
	if on, forces := forced(m.course[key], hasKey(m.course, key)); forces {
		return on
	}
	return m.orgOn(org)
}

func hasKey(m map[string]demo.Override, k string) bool { _, ok := m[k]; return ok }

// check compares the database with the oracle.
func (c *propCase) check(t *testing.T, fx *fixture, seed uint64) {
	t.Helper()
	m := model{course: map[string]demo.Override{}, org: map[string]demo.Override{}}
	transitions := map[string]int{}
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
				transitions[k]++
			}
		}
		prev = now
	}
	counts := fx.counts()
	runs := map[string]int{}
	for _, r := range fx.runs() {
		runs[r.ScopeKey]++
	}
	describe := func() string {
		return fmt.Sprintf("seed %d case %d: saves %+v, lost %d", seed, c.id, c.saves, c.lost)
	}
	teams := map[string]int{}
	for _, r := range c.roles {
		scope := r.CourseID
		if scope == "" {
			scope = "course-v1:" + r.Org + "+*"
		}
		teams[scope]++
	}
	// No-op saves make no runs: a run is only ever made for a change of some
	// scope's effective state. (Per scope the count may move: an org's
	// event can move, for a course that follows the org, the roles that the
	// course's own pending event would have moved.)
	totalRuns, totalChanges := 0, 0
	for _, org := range c.orgs {
		totalRuns += runs[org]
		totalChanges += transitions[org]
		for _, k := range c.courses[org] {
			totalRuns += runs[k]
			totalChanges += transitions[k]
		}
	}
	require.LessOrEqual(t, totalRuns, totalChanges, "more runs than effective-state changes; %s", describe())
	for _, org := range c.orgs {
		glob := "course-v1:" + org + "+*"
		want := demo.ScopeCounts{Legacy: teams[glob]}
		if m.orgOn(org) {
			want = demo.ScopeCounts{Assignments: teams[glob]}
		}
		require.Equal(t, want, counts[glob], "org-wide roles of %s (effective %v); %s", org, m.orgOn(org), describe())
		for _, k := range c.courses[org] {
			want := demo.ScopeCounts{Legacy: teams[k]}
			if m.courseOn(org, k) {
				want = demo.ScopeCounts{Assignments: teams[k]}
			}
			require.Equal(t, want, counts[k], "roles of %s (effective %v); %s", k, m.courseOn(org, k), describe())
		}
	}
}

package consumer_test

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/testenv"
	"authz-flag-consumer/internal/testenv/flagcase"
)

// The reconciliation property: for any sequence of course and org saves
// and any delivery of their events (reordered across scopes, duplicated,
// replayed, some lost and healed by the sweep), once the consumer has
// caught up every course's mappable roles are where its final effective
// state puts them, and there are no more runs than changes of effective
// states (a no-op save makes no run of its own).
//
// The oracle (internal/testenv/flagcase) knows nothing of the
// implementation: it replays the saves in a plain model (own override,
// else org override, else the instance-wide flag, off here), and the
// check reads only role rows back.
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

	var plans []*flagcase.Case
	for i := range cases {
		c := flagcase.New(seed, i, "P")
		require.NoError(t, demo.AddRoles(fx.ctx, fx.db, c.Roles...))
		plans = append(plans, c)
	}
	// Saves happen in order, their events are published as the case's
	// delivery says, all cases interleaved while the consumer works.
	publish := func(o demo.Override, times int) {
		m, err := fx.enc.Encode(fx.ctx, testTopic, o.Event())
		require.NoError(t, err)
		for range times { // a duplicate is the same message (same ce_id) again
			fx.write(m)
		}
	}
	for active := true; active; {
		active = false
		for _, c := range plans {
			if c.Step(fx.save, publish) {
				active = true
			}
		}
	}
	fx.waitCommitted()
	// Lost events are healed by the sweep.
	res, err := eng.Sweep(fx.ctx, migrator.SweepOptions{})
	require.NoError(t, err)
	t.Logf("sweep after the stream: %d scopes reconciled, %d runs", res.Scopes, res.Runs)
	lost, published := 0, 0
	for _, c := range plans {
		lost += c.Lost
		published += c.Published
		checkCase(t, fx, c, seed)
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

// checkCase compares the database with the oracle: every course's and
// org-wide team wholly on the side its final effective state puts it, and
// no more runs than changes of effective state.
func checkCase(t *testing.T, fx *fixture, c *flagcase.Case, seed uint64) {
	t.Helper()
	final, _ := c.Oracle()
	counts := fx.counts()
	runs := map[string]int{}
	for _, r := range fx.runs() {
		runs[r.ScopeKey]++
	}
	totalRuns, totalChanges := c.RunsAndChanges(runs)
	require.LessOrEqual(t, totalRuns, totalChanges, "more runs than effective-state changes; %s", c.Describe(seed))
	teams := map[string]int{}
	for _, r := range c.Roles {
		scope := r.CourseID
		if scope == "" {
			scope = "course-v1:" + r.Org + "+*"
		}
		teams[scope]++
	}
	for _, org := range c.Orgs {
		glob := "course-v1:" + org + "+*"
		want := demo.ScopeCounts{Legacy: teams[glob]}
		if final[org] {
			want = demo.ScopeCounts{Assignments: teams[glob]}
		}
		require.Equal(t, want, counts[glob], "org-wide roles of %s (effective %v); %s", org, final[org], c.Describe(seed))
		for _, k := range c.Courses[org] {
			want := demo.ScopeCounts{Legacy: teams[k]}
			if final[k] {
				want = demo.ScopeCounts{Assignments: teams[k]}
			}
			require.Equal(t, want, counts[k], "roles of %s (effective %v); %s", k, final[k], c.Describe(seed))
		}
	}
}

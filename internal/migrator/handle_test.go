package migrator_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/testenv"
)

// Events are triggers to reconcile their scope: desired (the effective
// state now) against applied (the ledger), never the payload's state.
func TestEventsReconcileTheirScope(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("s1", "OrgX", c1, "staff")
		fx.legacy("s2", "OrgX", "course-v1:OrgX+C2+2024", "staff")
		fx.legacy("admin", "OrgX", "", "instructor")

		// Course on: forward of that course only.
		on := fx.override(migrator.CourseScope, c1, true, "on")
		res := fx.event("e1", migrator.CourseScope, c1, on)
		require.Equal(t, migrator.OutcomeRan, res.Outcome)
		require.Equal(t, migrator.Forward, res.Direction)
		require.Equal(t, migrator.StatusCompleted, res.Status)
		require.Len(t, fx.rules(), 1)

		// The same event again is a duplicate; another event for the same row
		// finds the roles where they belong: no second run.
		require.Equal(t, migrator.OutcomeDuplicate, fx.event("e1", migrator.CourseScope, c1, on).Outcome)
		require.Equal(t, migrator.OutcomeNoop, fx.event("e1-again", migrator.CourseScope, c1, on).Outcome)
		require.Equal(t, 1, fx.count("openedx_authz_authzcourseauthoringmigrationrun", ""))

		// A no-op save: on again.
		again := fx.override(migrator.CourseScope, c1, true, "on")
		require.Equal(t, migrator.OutcomeNoop, fx.event("e2", migrator.CourseScope, c1, again).Outcome)

		// The org turns on while C1 is on by its own override: the org run
		// moves C2 and the org-wide row; C1 already moved.
		orgOn := fx.override(migrator.OrgScope, "OrgX", true, "on")
		res = fx.event("e3", migrator.OrgScope, "OrgX", orgOn)
		require.Equal(t, migrator.Forward, res.Direction)
		require.Len(t, fx.rules(), 3)
		require.Empty(t, fx.legacyRows())

		// C1 forced off while the org is on: C1 rolls back alone.
		off := fx.override(migrator.CourseScope, c1, true, "off")
		res = fx.event("e4", migrator.CourseScope, c1, off)
		require.Equal(t, migrator.Rollback, res.Direction)
		require.Equal(t, []string{"s1|OrgX|" + c1 + "|staff"}, fx.legacyRows())

		// The org turns off: C1's own off override agrees, C2 and the glob roll back.
		orgOff := fx.override(migrator.OrgScope, "OrgX", true, "off")
		res = fx.event("e5", migrator.OrgScope, "OrgX", orgOff)
		require.Equal(t, migrator.Rollback, res.Direction)
		require.Len(t, fx.legacyRows(), 3)
		require.Empty(t, fx.rules())

		// C1's override is removed (disabled row): the org level (off) applies: no-op.
		removed := fx.override(migrator.CourseScope, c1, false, "off")
		require.Equal(t, migrator.OutcomeNoop, fx.event("e6", migrator.CourseScope, c1, removed).Outcome)

		// An org on with C1 forced off: C1 is left out and reported.
		fx.override(migrator.CourseScope, c1, true, "off")
		orgOn2 := fx.override(migrator.OrgScope, "OrgX", true, "on")
		res = fx.event("e7", migrator.OrgScope, "OrgX", orgOn2)
		run, err := fx.eng.GetRun(fx.ctx, res.RunID)
		require.NoError(t, err)
		require.Equal(t, migrator.StatusPartialSuccess, run.Status)
		skipped := run.Metadata["errors"].(map[string]any)["skipped_for_flag_override"].([]any)
		require.Equal(t, map[string]any{"subject": "s1", "role": "staff", "scope": c1,
			"details": "Course-level authoring flag override opposes this organization-level transition"}, skipped[0])
		require.Equal(t, []any{c1}, run.Metadata["excluded_courses"])
		require.Equal(t, []string{"s1|OrgX|" + c1 + "|staff"}, fx.legacyRows())
		require.Equal(t, "e7", run.Metadata["event"].(map[string]any)["id"])

		// Stale events replayed later under new ids: their rows say "on", but
		// C1 is off now and its roles are in the legacy table: nothing moves.
		require.Equal(t, migrator.OutcomeNoop, fx.event("e1-replayed-with-new-id", migrator.CourseScope, c1, on).Outcome)
		require.Equal(t, migrator.OutcomeNoop, fx.event("e2-replayed-with-new-id", migrator.CourseScope, c1, again).Outcome)

		// An override row not committed yet.
		_, err = fx.eng.Handle(fx.ctx, migrator.Source{EventID: "e8"}, migrator.Change{Flag: authz.DefaultFlag,
			ScopeType: migrator.CourseScope, ScopeKey: c1, Org: "OrgX", RecordID: 9999})
		require.True(t, errors.Is(err, migrator.ErrNotVisible), "%v", err)
		require.True(t, migrator.IsTransient(err))

		// Other flags and non-course-v1 keys are ignored and recorded.
		res, err = fx.eng.Handle(fx.ctx, migrator.Source{EventID: "e9"}, migrator.Change{Flag: "some.other_flag", ScopeType: migrator.OrgScope, ScopeKey: "OrgX", RecordID: 1})
		require.NoError(t, err)
		require.Equal(t, migrator.OutcomeIgnored, res.Outcome)
		res, err = fx.eng.Handle(fx.ctx, migrator.Source{EventID: "e10"}, migrator.Change{Flag: authz.DefaultFlag, ScopeType: migrator.CourseScope, ScopeKey: "OrgX/C1/2024", RecordID: 1})
		require.NoError(t, err)
		require.Equal(t, migrator.OutcomeIgnored, res.Outcome)
		require.ElementsMatch(t, []string{"e1|ran", "e1-again|noop", "e1-replayed-with-new-id|noop", "e10|ignored", "e2|noop", "e2-replayed-with-new-id|noop", "e3|ran", "e4|ran", "e5|ran", "e6|noop", "e7|ran", "e9|ignored"},
			fx.strings("SELECT event_id, outcome FROM authz_consumer_event"))
	})
}

func TestDisabledEventsAreRecordedAndHandledLater(t *testing.T) {
	fx := newFixture(t, testenv.Databases[0]) // no server needed
	fx.legacy("s1", "OrgX", c1, "staff")
	on := fx.override(migrator.CourseScope, c1, true, "on")
	fx.eng = fx.engine(migrator.Options{AutoMigrate: false})
	require.Equal(t, migrator.OutcomeDisabled, fx.event("e1", migrator.CourseScope, c1, on).Outcome)
	require.Empty(t, fx.rules())
	// Turned on and replayed: the disabled event now acts, once.
	fx.eng = fx.engine(migrator.Options{AutoMigrate: true})
	require.Equal(t, migrator.OutcomeRan, fx.event("e1", migrator.CourseScope, c1, on).Outcome)
	require.Equal(t, migrator.OutcomeDuplicate, fx.event("e1", migrator.CourseScope, c1, on).Outcome)
	require.Len(t, fx.rules(), 1)
}

func TestFailedRunFromEventIsRecordedWithOutcome(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("s1", "OrgX", c1, "staff")
		on := fx.override(migrator.CourseScope, c1, true, "on")
		fx.eng = fx.engine(migrator.Options{AutoMigrate: true, Fault: func(string) error { return errors.New("boom") }})
		res := fx.event("e1", migrator.CourseScope, c1, on)
		require.Equal(t, migrator.StatusFailed, res.Status)
		require.Empty(t, fx.rules())
		require.Equal(t, []string{"e1|ran"}, fx.strings("SELECT event_id, outcome FROM authz_consumer_event"))
		require.Equal(t, []string{"failed"}, fx.strings("SELECT status FROM openedx_authz_authzcourseauthoringmigrationrun"))
	})
}

func TestParkKeepsOneRowPerMessage(t *testing.T) {
	fx := newFixture(t, testenv.Databases[0]) // no server needed
	p := migrator.ParkedEvent{Topic: "t", Partition: 2, Offset: 7, Key: []byte{0, 1}, Value: []byte("x"), Headers: map[string]string{"ce_type": "x"}, Reason: "framing", Detail: "too short"}
	require.NoError(t, fx.eng.Park(fx.ctx, p))
	require.NoError(t, fx.eng.Park(fx.ctx, p))
	parked, err := fx.eng.Parked(fx.ctx, false)
	require.NoError(t, err)
	require.Len(t, parked, 1)
	n, err := fx.eng.ParkedCount(fx.ctx)
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, "t/2/7", parked[0].EventID)
	require.Equal(t, []byte("x"), parked[0].Value)
	require.Equal(t, "x", parked[0].Headers["ce_type"])
	require.NoError(t, fx.eng.MarkRedriven(fx.ctx, parked[0].ID))
	parked, err = fx.eng.Parked(fx.ctx, false)
	require.NoError(t, err)
	require.Empty(t, parked)
	require.Equal(t, []string{"t/2/7|parked"}, fx.strings("SELECT event_id, outcome FROM authz_consumer_event"))
}

func TestHandleQuickStopsBeforeARun(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("s1", "OrgX", c1, "staff")
		off := fx.override(migrator.CourseScope, c1, true, "off") // off -> off: no-op
		ch := func(rec int64) migrator.Change {
			return migrator.Change{Flag: authz.DefaultFlag, ScopeType: migrator.CourseScope, ScopeKey: c1, Org: "OrgX", RecordID: rec}
		}
		item := func(id string, c migrator.Change) migrator.Item {
			return migrator.Item{Source: migrator.Source{EventID: id, Topic: "t"}, Change: c}
		}
		other := ch(off)
		other.Flag = "other.flag"
		res, err := fx.eng.HandleQuick(fx.ctx, []migrator.Item{item("a", other), item("b", ch(off)), item("b", ch(off))})
		require.NoError(t, err)
		require.Equal(t, []migrator.Outcome{migrator.OutcomeIgnored, migrator.OutcomeNoop, migrator.OutcomeDuplicate},
			[]migrator.Outcome{res[0].Outcome, res[1].Outcome, res[2].Outcome})

		on := fx.override(migrator.CourseScope, c1, true, "on")
		res, err = fx.eng.HandleQuick(fx.ctx, []migrator.Item{item("c", other), item("d", ch(on)), item("e", other)})
		require.NoError(t, err)
		require.Len(t, res, 1, "stops before the event that needs a run")
		require.Equal(t, migrator.OutcomeIgnored, res[0].Outcome)
		require.Empty(t, fx.rules())

		res, err = fx.eng.HandleQuick(fx.ctx, []migrator.Item{item("f", ch(9999))})
		require.NoError(t, err)
		require.Empty(t, res, "an invisible row is left to Handle")
		require.ElementsMatch(t, []string{"a|ignored", "b|noop", "c|ignored"}, fx.strings("SELECT event_id, outcome FROM authz_consumer_event"))
		require.Equal(t, []string{"course|" + c1 + "|off"}, fx.strings("SELECT scope_type, scope_key, applied FROM authz_consumer_scope_state"),
			"a scope never touched, with nothing to move, has its applied state recorded")
	})
}

// Reordered, delayed and stale events: each one reconciles its scope with
// the state now, so the first to arrive after a change moves the roles, and
// the rest find nothing to do.
func TestDelayedAndStaleEventsReconcile(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("s1", "OrgX", c1, "staff")
		const c2 = "course-v1:OrgX+C2+2024"
		fx.legacy("s2", "OrgX", c2, "staff")
		quick := func(id string, key string, rec int64) migrator.Result {
			res, err := fx.eng.HandleQuick(fx.ctx, []migrator.Item{{Source: migrator.Source{EventID: id}, Change: migrator.Change{
				Flag: authz.DefaultFlag, ScopeType: migrator.CourseScope, ScopeKey: key, Org: "OrgX", RecordID: rec}}})
			require.NoError(t, err)
			if len(res) == 0 {
				return fx.event(id, migrator.CourseScope, key, rec)
			}
			return res[0]
		}

		// On, moved; then off and off again before the consumer catches up:
		// the first of the two events rolls back, the second finds nothing.
		on := fx.override(migrator.CourseScope, c1, true, "on")
		require.Equal(t, migrator.Forward, fx.event("a1", migrator.CourseScope, c1, on).Direction)
		off := fx.override(migrator.CourseScope, c1, true, "off")
		off2 := fx.override(migrator.CourseScope, c1, true, "off")
		require.Equal(t, migrator.Rollback, quick("a2", c1, off).Direction)
		require.Equal(t, migrator.OutcomeNoop, quick("a3", c1, off2).Outcome)
		require.Empty(t, fx.rules())

		// All three saves before the consumer gets to any: the state now is
		// off, the roles are in the legacy table: no run at all.
		b1 := fx.override(migrator.CourseScope, c2, true, "on")
		b2 := fx.override(migrator.CourseScope, c2, true, "off")
		b3 := fx.override(migrator.CourseScope, c2, true, "off")
		res2, err := fx.eng.HandleQuick(fx.ctx, []migrator.Item{
			{Source: migrator.Source{EventID: "b1"}, Change: migrator.Change{Flag: authz.DefaultFlag, ScopeType: migrator.CourseScope, ScopeKey: c2, Org: "OrgX", RecordID: b1}},
			{Source: migrator.Source{EventID: "b2"}, Change: migrator.Change{Flag: authz.DefaultFlag, ScopeType: migrator.CourseScope, ScopeKey: c2, Org: "OrgX", RecordID: b2}},
			{Source: migrator.Source{EventID: "b3"}, Change: migrator.Change{Flag: authz.DefaultFlag, ScopeType: migrator.CourseScope, ScopeKey: c2, Org: "OrgX", RecordID: b3}},
		})
		require.NoError(t, err)
		require.Equal(t, []migrator.Outcome{migrator.OutcomeNoop, migrator.OutcomeNoop, migrator.OutcomeNoop},
			[]migrator.Outcome{res2[0].Outcome, res2[1].Outcome, res2[2].Outcome})
		require.Zero(t, fx.count("openedx_authz_authzcourseauthoringmigrationrun", "scope_key = ?", c2))

		// Flag set before the service was deployed (no applied state): the
		// roles' place decides. Off now, an assignment in authz: rollback.
		const c3 = "course-v1:OrgX+C3+2024"
		fx.legacy("s3", "OrgX", c3, "staff")
		fx.override(migrator.CourseScope, c3, true, "on")
		require.Equal(t, migrator.Forward, fx.event("c0", migrator.CourseScope, c3, fx.override(migrator.CourseScope, c3, true, "on")).Direction)
		fx.exec("DELETE FROM authz_consumer_scope_state WHERE scope_key = ?", c3) // as if never seen
		now := fx.override(migrator.CourseScope, c3, true, "off")
		require.Equal(t, migrator.Rollback, fx.event("c1", migrator.CourseScope, c3, now).Direction)
	})
}

// The reordering found in production-like testing: a course override OFF is
// saved and its event delayed; the org is switched ON (the org run leaves
// the course out, for its own override); the course override is then
// disabled, so the course follows the org and should be ON. Edge-triggered
// decisions called the delayed event superseded and the last one a no-op,
// and the course's roles stayed in the legacy table while its flag was on.
func TestRegressionDelayedCourseEventAfterOrgRun(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("s1", "OrgX", c1, "staff")
		fx.legacy("s2", "OrgX", "course-v1:OrgX+C2+2024", "staff")
		courseOff := fx.override(migrator.CourseScope, c1, true, "off") // its event is delayed
		orgOn := fx.override(migrator.OrgScope, "OrgX", true, "on")
		res := fx.event("org-on", migrator.OrgScope, "OrgX", orgOn)
		require.Equal(t, migrator.Forward, res.Direction)
		require.Equal(t, []string{"s1|OrgX|" + c1 + "|staff"}, fx.legacyRows(), "the org run left C1 out")
		removed := fx.override(migrator.CourseScope, c1, false, "off")

		// The delayed event arrives now: C1 follows the org (on), its roles
		// are in the legacy table: forward.
		res = fx.event("course-off-delayed", migrator.CourseScope, c1, courseOff)
		require.Equal(t, migrator.OutcomeRan, res.Outcome)
		require.Equal(t, migrator.Forward, res.Direction)
		require.Empty(t, fx.legacyRows())
		require.Equal(t, migrator.OutcomeNoop, fx.event("course-removed", migrator.CourseScope, c1, removed).Outcome)
		require.Len(t, fx.rules(), 2)
	})
}

// An org run records the applied state of every course it covered, as the
// database selected them: on MySQL a forward selects the legacy rows of
// every spelling of the org, so a course spelled otherwise follows the org
// too and its ledger row must say so, even when it had no role to move
// (else its next event would make a run of nothing). On SQLite and
// PostgreSQL the other spelling is another org and keeps its state.
func TestOrgRunLedgerCoversTheSpellingsItSelected(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		const lower = "course-v1:orgx+C2+2024"
		fx.legacy("s1", "OrgX", c1, "staff")
		off := fx.override(migrator.CourseScope, lower, true, "off")
		require.Equal(t, migrator.OutcomeNoop, fx.event("lower-off", migrator.CourseScope, lower, off).Outcome)
		removed := fx.override(migrator.CourseScope, lower, false, "off") // follows its org from now on
		require.Equal(t, []string{"off"}, fx.strings("SELECT applied FROM authz_consumer_scope_state WHERE scope_key = ?", lower))

		orgOn := fx.override(migrator.OrgScope, "OrgX", true, "on")
		res := fx.event("org-on", migrator.OrgScope, "OrgX", orgOn)
		require.Equal(t, migrator.Forward, res.Direction)
		want := "off"
		if fx.db.FoldsCase() {
			want = "on" // the org override of OrgX is orgx's too
		}
		require.Equal(t, []string{want}, fx.strings("SELECT applied FROM authz_consumer_scope_state WHERE scope_key = ?", lower))

		runs := fx.count("openedx_authz_authzcourseauthoringmigrationrun", "")
		require.Equal(t, migrator.OutcomeNoop, fx.event("lower-removed", migrator.CourseScope, lower, removed).Outcome,
			"the course is where its state puts it: no run")
		require.Equal(t, runs, fx.count("openedx_authz_authzcourseauthoringmigrationrun", ""))
	})
}

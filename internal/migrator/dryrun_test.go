package migrator_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/testenv"
)

// withoutPlanKeys is a run's metadata without the keys only a plan has.
func withoutPlanKeys(md map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range md {
		if k != "dry_run" && k != "error_counts" {
			out[k] = v
		}
	}
	return out
}

// requirePlanIsRun checks that a plan is exactly what the run then did.
func requirePlanIsRun(t *testing.T, plan, run *migrator.Run) {
	t.Helper()
	require.True(t, plan.DryRun)
	require.Zero(t, plan.ID, "a plan is never written")
	require.False(t, run.DryRun)
	require.NotZero(t, run.ID)
	require.Equal(t, run.MigrationType, plan.MigrationType)
	require.Equal(t, run.ScopeType, plan.ScopeType)
	require.Equal(t, run.ScopeKey, plan.ScopeKey)
	require.Equal(t, run.Status, plan.Status)
	require.Equal(t, run.Metadata, withoutPlanKeys(plan.Metadata))
	// The plan's exact error counts agree with the run's lists (not capped here).
	counts := map[string]any{}
	for reason, list := range run.Metadata["errors"].(map[string]any) {
		counts[reason] = float64(len(list.([]any)))
	}
	require.Equal(t, counts, plan.Metadata["error_counts"])
}

// A dry run does the run's work in its transaction and rolls it back:
// every table is unchanged (an orphaned running run included, which a
// real run marks failed), and the plan is what the run then does, with its
// per-row errors and the courses it leaves out.
func TestDryRunPlansTheRunAndWritesNothing(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		const c2, c3 = "course-v1:OrgX+C2+2024", "course-v1:OrgX+C3+2024"
		fx.legacy("dup", "OrgX", c1, "staff")
		fx.run(migrator.Forward, migrator.CourseScope, c1)
		fx.legacy("dup", "OrgX", c1, "staff") // its assignment exists: assignment_failed
		fx.legacy("s1", "OrgX", c1, "staff")
		fx.legacy("fin", "OrgX", c1, "finance_admin") // unknown_role
		fx.legacy("s2", "OrgX", c2, "instructor")
		fx.legacy("s3", "OrgX", c3, "staff") // left out: skipped_for_flag_override
		fx.legacy("w", "OrgX", "", "instructor")
		fx.exec(`INSERT INTO openedx_authz_authzcourseauthoringmigrationrun (migration_type, scope_type, scope_key, status, created_at, updated_at, metadata)
			VALUES ('forward', 'org', 'OrgX', 'running', ?, ?, '{}')`, fx.clock, fx.clock)

		steps := []migrator.Request{
			{Direction: migrator.Forward, ScopeType: migrator.CourseScope, CourseKeys: []string{c2}},
			{Direction: migrator.Forward, ScopeType: migrator.OrgScope, Org: "OrgX", Delete: true, Excluded: []string{c3}},
			{Direction: migrator.Rollback, ScopeType: migrator.OrgScope, Org: "OrgX", Delete: true},
		}
		for _, req := range steps {
			req.Trigger = migrator.Trigger{Kind: migrator.TriggerManual}
			before := testenv.DumpAll(t, fx.db)
			req.DryRun = true
			plan, err := fx.eng.Run(fx.ctx, req)
			require.NoError(t, err)
			require.Equal(t, before, testenv.DumpAll(t, fx.db), "a dry run writes nothing")
			req.DryRun = false
			run, err := fx.eng.Run(fx.ctx, req)
			require.NoError(t, err)
			requirePlanIsRun(t, plan, run)
		}
		// The org forward the plan was compared with met every kind of per-row error.
		runs, err := fx.eng.Runs(fx.ctx, migrator.RunFilter{Status: migrator.StatusPartialSuccess, ScopeKey: "OrgX"})
		require.NoError(t, err)
		var reasons []string
		for _, r := range runs {
			if r.MigrationType == migrator.Forward {
				for reason := range r.Metadata["errors"].(map[string]any) {
					reasons = append(reasons, reason)
				}
			}
		}
		require.ElementsMatch(t, []string{"unknown_role", "assignment_failed", "skipped_for_flag_override"}, reasons)
		require.Equal(t, []string{"failed|forward|org|OrgX"}, fx.strings("SELECT status, migration_type, scope_type, scope_key FROM openedx_authz_authzcourseauthoringmigrationrun WHERE id = 2"),
			"the orphan was marked failed by the real run only")
	})
}

// A run that would fail is planned as failed, with its error; nothing is
// written, not even the failed run a real run records.
func TestDryRunOfAFailingRun(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("s1", "OrgX", c1, "staff")
		fx.eng = fx.engine(migrator.Options{Fault: func(string) error { return errors.New("boom") }})
		before := testenv.DumpAll(t, fx.db)
		plan, err := fx.eng.Run(fx.ctx, migrator.Request{Direction: migrator.Forward, ScopeType: migrator.CourseScope,
			CourseKeys: []string{c1}, Delete: true, DryRun: true, Trigger: migrator.Trigger{Kind: migrator.TriggerManual}})
		require.NoError(t, err)
		require.True(t, plan.DryRun)
		require.Equal(t, migrator.StatusFailed, plan.Status)
		require.Contains(t, plan.Metadata["error"], "boom")
		require.Equal(t, before, testenv.DumpAll(t, fx.db))
	})
}

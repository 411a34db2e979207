package migrator_test

import (
	"fmt"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/testenv"
)

func (fx *fixture) verify(f migrator.VerifyFilter) *migrator.DriftReport {
	fx.t.Helper()
	rep, err := fx.eng.Verify(fx.ctx, f)
	require.NoError(fx.t, err)
	return rep
}

// scopeLines renders a report's scopes as "type key state(why) legacy assignments drift left".
func scopeLines(rep *migrator.DriftReport) []string {
	var out []string
	for _, s := range rep.Scopes {
		out = append(out, fmt.Sprintf("%s %s %s(%s) %d %d %d %d", s.Type, s.Key, s.State, s.Why, s.Legacy, s.Assignments, s.Drift, s.LeftByErrors))
	}
	return out
}

// entryKey is what a verify row and a run metadata entry have in common.
func entryKey(reason, subject, role, scope string) string {
	return reason + "|" + subject + "|" + role + "|" + scope
}

// Verify reports every scope the database knows with its effective state;
// drift is the mappable roles on the wrong side that a run would move, and
// the roles a run would leave with a per-row error are listed apart.
// Checked against the oracle: a dry run of each scope in the direction of
// its effective state moves exactly the drift and leaves exactly the rest.
func TestVerifyReportsDriftAndPerRowErrorsApart(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		const (
			c2     = "course-v1:OrgX+C2+2024"
			bad    = "course-v1:OrgX+C 1+2024" // edx-opaque-keys rejects it
			unicod = "course-v1:Örg+K1+2024"
			y1     = "course-v1:OrgY+D1+2024"
			w1     = "course-v1:OrgW+E1+2024"
		)
		// OrgX is on. C1: one row to move, one whose assignment already
		// exists, one unmapped role. An org-wide row to move, a row of an
		// invalid course key (the org's run reaches it and leaves it).
		fx.legacy("a1", "OrgX", c1, "instructor")
		fx.run(migrator.Forward, migrator.CourseScope, c1)
		fx.legacy("a1", "OrgX", c1, "instructor")
		fx.legacy("s1", "OrgX", c1, "staff")
		fx.legacy("fin", "OrgX", c1, "finance_admin")
		fx.legacy("w", "OrgX", "", "instructor")
		fx.legacy("b", "OrgX", bad, "staff")
		fx.legacy("ccx", "OrgX", "ccx-v1:OrgX+C1+2024+ccx@1", "staff") // never selected
		// C2 is off by its own override: an assignment to move back, and one
		// whose user has no user subject (written by hand).
		fx.legacy("r1", "OrgX", c2, "staff")
		fx.run(migrator.Forward, migrator.CourseScope, c2)
		fx.user("r2")
		fx.exec("INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5) VALUES ('g', 'user^r2', 'role^course_staff', ?, '', '', '')", authz.CourseNS+c2)
		fx.override(migrator.OrgScope, "OrgX", true, "on")
		fx.override(migrator.CourseScope, c2, true, "off")
		// Örg is on: its course row moves, its org-wide row cannot (no glob).
		fx.legacy("ö", "Örg", unicod, "staff")
		fx.legacy("ö2", "Örg", "", "staff")
		fx.override(migrator.OrgScope, "Örg", true, "on")
		// OrgY is off, its roles are legacy: no drift. OrgZ was migrated,
		// then turned off without a run: its glob is drift.
		fx.legacy("y", "OrgY", y1, "staff")
		fx.legacy("z", "OrgZ", "", "staff")
		fx.run(migrator.Forward, migrator.OrgScope, "OrgZ")
		fx.override(migrator.OrgScope, "OrgZ", true, "off")
		// A course named only by an override.
		fx.override(migrator.CourseScope, w1, true, "on")

		before := testenv.DumpAll(t, fx.db)
		rep := fx.verify(migrator.VerifyFilter{})
		require.Equal(t, before, testenv.DumpAll(t, fx.db), "verify writes nothing")

		require.Equal(t, []string{
			"org OrgW off(global flag) 0 0 0 0",
			"course " + w1 + " on(course override) 0 0 0 0",
			"org OrgX on(org override) 2 0 1 1",
			"course " + c1 + " on(org override) 2 1 1 1",
			"course " + c2 + " off(course override) 0 2 1 1",
			"org OrgY off(global flag) 0 0 0 0",
			"course " + y1 + " off(global flag) 1 0 0 0",
			"org OrgZ off(org override) 0 1 1 0",
			"org Örg on(org override) 1 0 0 1",
			"course " + unicod + " on(org override) 1 0 1 0",
		}, scopeLines(rep))
		require.Equal(t, 5, rep.DriftingScopes)
		require.Equal(t, 5, rep.DriftRows)
		require.Equal(t, 4, rep.LeftByErrors)
		require.Equal(t, 10, rep.ScopesChecked)

		// The oracle: a dry run of each scope, in its direction.
		for _, s := range rep.Scopes {
			if s.Drift == 0 && s.LeftByErrors == 0 {
				continue
			}
			req := migrator.Request{Direction: migrator.Rollback, ScopeType: s.Type, Delete: true, DryRun: true}
			if s.On {
				req.Direction = migrator.Forward
			}
			if s.Type == migrator.OrgScope {
				req.Org = s.Key
			} else {
				req.CourseKeys = []string{s.Key}
			}
			plan, err := fx.eng.Run(fx.ctx, req)
			require.NoError(t, err)
			// An org run also reaches its courses: keep what belongs to the
			// org scope (its glob, course keys no course scope can hold).
			mine := func(scope string) bool {
				if s.Type == migrator.CourseScope {
					return true
				}
				_, err := authz.CourseV1Org(scope)
				return scope != "" && (authz.IsGlob(scope) || err != nil)
			}
			var want, got []string
			for _, en := range plan.Metadata["successes"].([]any) {
				m := en.(map[string]any)
				if mine(fmt.Sprint(m["scope"])) {
					want = append(want, entryKey("", fmt.Sprint(m["subject"]), fmt.Sprint(m["role"]), fmt.Sprint(m["scope"])))
				}
			}
			for reason, list := range plan.Metadata["errors"].(map[string]any) {
				for _, en := range list.([]any) {
					m := en.(map[string]any)
					if reason != migrator.ReasonUnknownRole && mine(fmt.Sprint(m["scope"])) {
						want = append(want, entryKey(reason, fmt.Sprint(m["subject"]), fmt.Sprint(m["role"]), fmt.Sprint(m["scope"]))+"|"+fmt.Sprint(m["details"]))
					}
				}
			}
			for _, r := range s.DriftRows {
				got = append(got, entryKey("", r.Subject, r.Role, r.Scope))
			}
			for reason, list := range s.Errors {
				for _, r := range list {
					got = append(got, entryKey(reason, r.Subject, r.Role, r.Scope)+"|"+r.Details)
				}
			}
			sort.Strings(want)
			sort.Strings(got)
			require.Equal(t, want, got, "%s %s", s.Type, s.Key)
		}
		require.Equal(t, before, testenv.DumpAll(t, fx.db))

		// The errors, by reason and scope.
		reasons := map[string]string{}
		for _, s := range rep.Scopes {
			for reason, list := range s.Errors {
				for _, r := range list {
					reasons[r.Subject] = string(s.Type) + " " + s.Key + " " + reason
				}
			}
		}
		require.Equal(t, map[string]string{
			"a1": "course " + c1 + " assignment_failed",
			"b":  "org OrgX no_scope",
			"r2": "course " + c2 + " unexpected_error",
			"ö2": "org Örg no_scope",
		}, reasons)

		// Narrowed to an org (its courses too) or to courses.
		require.Equal(t, []string{"org OrgZ off(org override) 0 1 1 0"}, scopeLines(fx.verify(migrator.VerifyFilter{Org: "OrgZ"})))
		require.Equal(t, []string{"course " + c2 + " off(course override) 0 2 1 1"}, scopeLines(fx.verify(migrator.VerifyFilter{Courses: []string{c2}})))
	})
}

// Reconcile fixes drift org by org, the org first: the org's run fixes
// its courses, which then get none; a course with its own opposing
// override is left out of the org run. The dry run plans exactly these
// runs and writes nothing. Runs carry the trigger reconcile and update the
// ledger; afterwards nothing drifts, and a second reconcile of the same
// (stale) list makes no run.
func TestReconcileFixesDriftOrgFirst(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		const c2, c3, y1 = "course-v1:OrgX+C2+2024", "course-v1:OrgX+C3+2024", "course-v1:OrgY+D1+2024"
		fx.legacy("w", "OrgX", "", "instructor")
		fx.legacy("s1", "OrgX", c1, "staff")
		fx.legacy("s2", "OrgX", c2, "staff")
		fx.legacy("s3", "OrgX", c3, "staff")
		fx.legacy("y1", "OrgY", y1, "staff")
		fx.run(migrator.Forward, migrator.CourseScope, y1) // OrgY is off: drift
		fx.override(migrator.OrgScope, "OrgX", true, "on")
		fx.override(migrator.CourseScope, c3, true, "off")

		rep := fx.verify(migrator.VerifyFilter{})
		var drifting []string
		for _, d := range rep.Drifting() {
			drifting = append(drifting, string(d.Type)+" "+d.Key)
		}
		require.Equal(t, []string{"org OrgX", "course " + c1, "course " + c2, "course " + y1}, drifting)

		before := testenv.DumpAll(t, fx.db)
		plans, err := fx.eng.Reconcile(fx.ctx, rep.Drifting(), true)
		require.NoError(t, err)
		require.Equal(t, before, testenv.DumpAll(t, fx.db), "a dry reconcile writes nothing")
		runs, err := fx.eng.Reconcile(fx.ctx, rep.Drifting(), false)
		require.NoError(t, err)
		require.Len(t, plans, 2, "the org run fixes C1 and C2")
		require.Len(t, runs, 2)
		for i := range runs {
			requirePlanIsRun(t, plans[i], runs[i])
		}
		require.Equal(t, migrator.Forward, runs[0].MigrationType)
		require.Equal(t, "OrgX", runs[0].ScopeKey)
		require.Equal(t, []any{c3}, runs[0].Metadata["excluded_courses"])
		require.Equal(t, float64(3), runs[0].Metadata["success_count"])
		require.Equal(t, migrator.Rollback, runs[1].MigrationType)
		require.Equal(t, y1, runs[1].ScopeKey)
		for _, r := range runs {
			require.Equal(t, migrator.TriggerReconcile, r.Metadata["trigger"])
		}
		require.Equal(t, []string{"s3|OrgX|" + c3 + "|staff", "y1|OrgY|" + y1 + "|staff"}, fx.legacyRows())
		require.Equal(t, []string{
			"course|" + c1 + "|on", "course|" + c2 + "|on", "course|" + y1 + "|off", "org|OrgX|on",
		}, fx.strings("SELECT scope_type, scope_key, applied FROM authz_consumer_scope_state"), "the ledger, C3 left out")

		require.Zero(t, fx.verify(migrator.VerifyFilter{}).DriftingScopes)
		again, err := fx.eng.Reconcile(fx.ctx, rep.Drifting(), false)
		require.NoError(t, err)
		require.Empty(t, again, "each scope is checked again under its lock")
	})
}

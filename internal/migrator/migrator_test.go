package migrator_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/lock"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

const c1 = "course-v1:OrgX+C1+2024"

func TestCourseForwardAndBackEveryRole(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		for _, r := range authz.LegacyRoles {
			fx.legacy("u_"+r, "OrgX", c1, r)
		}
		fx.legacy("fin", "OrgX", c1, "finance_admin")
		fx.legacy("other", "OrgX", "course-v1:OrgX+C2+2024", "staff")
		before := fx.legacyRows()

		run := fx.run(migrator.Forward, migrator.CourseScope, c1)
		require.Equal(t, migrator.StatusPartialSuccess, run.Status)
		require.EqualValues(t, 7, run.Metadata["total"])
		require.EqualValues(t, 6, run.Metadata["success_count"])
		require.Equal(t, []string{
			"g|user^u_beta_testers|role^course_beta_tester|course-v1^" + c1 + "|||",
			"g|user^u_ccx_coach|role^ccx_coach|course-v1^" + c1 + "|||",
			"g|user^u_data_researcher|role^course_data_researcher|course-v1^" + c1 + "|||",
			"g|user^u_instructor|role^course_admin|course-v1^" + c1 + "|||",
			"g|user^u_limited_staff|role^course_limited_staff|course-v1^" + c1 + "|||",
			"g|user^u_staff|role^course_staff|course-v1^" + c1 + "|||",
		}, fx.rules())
		// Migrated rows are gone; the unknown role and the other course stay.
		require.Equal(t, []string{"fin|OrgX|" + c1 + "|finance_admin", "other|OrgX|course-v1:OrgX+C2+2024|staff"}, fx.legacyRows())
		errs := run.Metadata["errors"].(map[string]any)
		require.Equal(t, []any{map[string]any{"subject": "fin", "role": "finance_admin",
			"details": "Unknown access level: finance_admin for User: fin"}}, errs["unknown_role"], "no scope, as openedx-authz reports it")
		require.Contains(t, run.Metadata["successes"], map[string]any{"subject": "u_staff", "role": "staff", "scope": c1})
		require.Equal(t, "manual", run.Metadata["trigger"])

		// Companions: one course scope, six user subjects, extended rules with keys, created audits.
		require.Equal(t, []string{c1}, fx.strings("SELECT external_key FROM openedx_authz_scope"))
		require.Equal(t, 1, fx.count("openedx_authz_coursescope", ""))
		require.Equal(t, 6, fx.count("openedx_authz_usersubject", ""))
		require.Equal(t, 6, fx.count("openedx_authz_extendedcasbinrule e JOIN casbin_rule c ON c.id = e.casbin_rule_id JOIN openedx_authz_scope s ON s.id = e.scope_id JOIN openedx_authz_usersubject us ON us.subject_ptr_id = e.subject_id",
			"e.casbin_rule_key = "+fx.db.Driver().Concat("'g,'", "c.v0", "','", "c.v1", "','", "c.v2", "','")))
		require.Equal(t, []string{"created|user^u_staff|role^course_staff|course-v1^" + c1 + "|NULL"},
			fx.strings("SELECT operation, subject, role, scope, actor_id FROM openedx_authz_roleassignmentaudit WHERE subject = 'user^u_staff'"))

		back := fx.run(migrator.Rollback, migrator.CourseScope, c1)
		require.Equal(t, migrator.StatusCompleted, back.Status)
		require.EqualValues(t, 6, back.Metadata["success_count"])
		require.Contains(t, back.Metadata["successes"], map[string]any{"subject": "u_staff", "role": "course_staff", "scope": c1})
		require.Equal(t, before, fx.legacyRows())
		require.Empty(t, fx.rules())
		require.Equal(t, 0, fx.count("openedx_authz_extendedcasbinrule", ""))
		require.Equal(t, 6, fx.count("openedx_authz_roleassignmentaudit", "operation = 'deleted'"))
	})
}

func TestOrgForwardAndBack(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("admin", "OrgX", "", "instructor") // org-wide
		fx.legacy("s1", "OrgX", c1, "staff")
		fx.legacy("s2", "OrgX", "course-v1:OrgX+C2+2024", "beta_testers")
		fx.legacy("old", "OrgX", "OrgX/Old/2012", "staff")                 // slash key: never selected
		fx.legacy("ccx", "OrgX", "ccx-v1:OrgX+C1+2024+ccx@3", "ccx_coach") // CCX key: never selected
		fx.legacy("y", "OrgY", "course-v1:OrgY+C1+2024", "staff")          // other org
		fx.legacy("creator", "OrgX", "", "org_course_creator_group")
		before := fx.legacyRows()

		run := fx.run(migrator.Forward, migrator.OrgScope, "OrgX")
		require.EqualValues(t, 4, run.Metadata["total"], "%v", run.Metadata)
		require.EqualValues(t, 3, run.Metadata["success_count"])
		require.Equal(t, []string{
			"g|user^admin|role^course_admin|course-v1^course-v1:OrgX+*|||",
			"g|user^s1|role^course_staff|course-v1^" + c1 + "|||",
			"g|user^s2|role^course_beta_tester|course-v1^course-v1:OrgX+C2+2024|||",
		}, fx.rules())
		// The org glob has no scope row; its extended rule has a null scope.
		require.Equal(t, 1, fx.count("openedx_authz_extendedcasbinrule", "scope_id IS NULL AND casbin_rule_key = ?", "g,user^admin,role^course_admin,course-v1^course-v1:OrgX+*,"))
		require.Equal(t, 2, fx.count("openedx_authz_scope", ""))
		require.Contains(t, run.Metadata["successes"], map[string]any{"subject": "admin", "role": "instructor", "scope": "course-v1:OrgX+*"})
		require.ElementsMatch(t, []string{"ccx|OrgX|ccx-v1:OrgX+C1+2024+ccx@3|ccx_coach", "creator|OrgX||org_course_creator_group",
			"old|OrgX|OrgX/Old/2012|staff", "y|OrgY|course-v1:OrgY+C1+2024|staff"}, fx.legacyRows())

		back := fx.run(migrator.Rollback, migrator.OrgScope, "OrgX")
		require.Equal(t, migrator.StatusCompleted, back.Status)
		require.EqualValues(t, 3, back.Metadata["success_count"])
		require.Equal(t, before, fx.legacyRows())
		require.Empty(t, fx.rules())
	})
}

func TestExistingAssignmentAndNoLegacyEquivalent(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("s1", "OrgX", c1, "staff")
		fx.legacy("s2", "OrgX", c1, "staff")
		fx.exec("INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5) VALUES ('g', 'user^s1', 'role^course_staff', ?, '', '', '')", "course-v1^"+c1)
		fx.exec("INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5) VALUES ('g', 'user^s3', 'role^course_editor', ?, '', '', '')", "course-v1^"+c1)

		run := fx.run(migrator.Forward, migrator.CourseScope, c1)
		require.Equal(t, migrator.StatusPartialSuccess, run.Status)
		errs := run.Metadata["errors"].(map[string]any)
		require.Equal(t, []any{map[string]any{"subject": "s1", "role": "staff", "scope": c1,
			"details": "User 's1' may already have this permission assigned"}}, errs["assignment_failed"])
		require.Equal(t, []string{"s1|OrgX|" + c1 + "|staff"}, fx.legacyRows(), "a row with an error stays")

		fx.user("s3")
		back := fx.run(migrator.Rollback, migrator.CourseScope, c1)
		errs = back.Metadata["errors"].(map[string]any)
		require.Equal(t, []any{map[string]any{"subject": "s3", "role": "course_editor", "scope": c1,
			"details": "Role 'course_editor' has no legacy equivalent."}}, errs["no_legacy_equivalent"])
		// s1's rule was written by hand, without its user subject: openedx-authz's
		// rollback finds no user for it, reports unexpected_error and keeps it.
		require.Equal(t, []any{map[string]any{"subject": "s1", "role": "course_staff", "scope": c1, "details": "'s1'"}}, errs["unexpected_error"])
		require.Equal(t, []string{
			"g|user^s1|role^course_staff|course-v1^" + c1 + "|||",
			"g|user^s3|role^course_editor|course-v1^" + c1 + "|||",
		}, fx.rules(), "the rule without legacy equivalent and the one without a user subject stay")
		require.Equal(t, []string{"s1|OrgX|" + c1 + "|staff", "s2|OrgX|" + c1 + "|staff"}, fx.legacyRows(), "get-or-create: no duplicate")
	})
}

func TestFailureMidRunLeavesNoPartialData(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		for i := 0; i < 20; i++ {
			fx.legacy(fmt.Sprintf("u%02d", i), "OrgX", c1, "staff")
		}
		before := fx.legacyRows()
		batches := 0
		eng := fx.engine(migrator.Options{Fault: func(point string) error {
			if batches++; batches == 2 {
				return errors.New("disk on fire")
			}
			return nil
		}})
		run, err := eng.Run(fx.ctx, migrator.Request{Direction: migrator.Forward, ScopeType: migrator.OrgScope, Org: "OrgX", Delete: true})
		require.NoError(t, err)
		require.Equal(t, migrator.StatusFailed, run.Status)
		require.Contains(t, run.Metadata["error"], "disk on fire")
		require.Equal(t, before, fx.legacyRows())
		require.Empty(t, fx.rules())
		for _, table := range []string{"openedx_authz_extendedcasbinrule", "openedx_authz_roleassignmentaudit", "openedx_authz_usersubject", "openedx_authz_subject"} {
			require.Zero(t, fx.count(table, ""), table)
		}
		require.Equal(t, []string{"failed"}, fx.strings("SELECT status FROM openedx_authz_authzcourseauthoringmigrationrun"))
	})
}

func TestOrphanedRunningRunIsRecovered(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("s1", "OrgX", "", "staff")
		fx.exec(`INSERT INTO openedx_authz_authzcourseauthoringmigrationrun (migration_type, scope_type, scope_key, status, created_at, updated_at, metadata)
			VALUES ('forward', 'org', 'OrgX', 'running', ?, ?, '{}')`, fx.clock, fx.clock)
		run := fx.run(migrator.Forward, migrator.OrgScope, "OrgX")
		require.Equal(t, migrator.StatusCompleted, run.Status)
		runs, err := fx.eng.Runs(fx.ctx, migrator.RunFilter{})
		require.NoError(t, err)
		require.Len(t, runs, 2)
		require.Equal(t, migrator.StatusFailed, runs[1].Status)
		require.Contains(t, runs[1].Metadata["error"], "Abandoned")
		require.NotNil(t, runs[1].CompletedAt)
		require.Zero(t, fx.count("openedx_authz_authzcourseauthoringmigrationrun", "status = 'running'"))
	})
}

// Two engines on two connection pools (as two processes) migrate the same
// org at once: the lock serializes them; nothing is lost or doubled.
func TestConcurrentRunsOfOneOrgSerialize(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		for i := 0; i < 60; i++ {
			fx.legacy(fmt.Sprintf("u%02d", i), "OrgX", fmt.Sprintf("course-v1:OrgX+C%d+2024", i%5), authz.LegacyRoles[i%6])
		}
		var wg sync.WaitGroup
		runs := make([]*migrator.Run, 4)
		errs := make([]error, len(runs))
		for i := range runs {
			db, err := store.Open(fx.ctx, fx.url)
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			eng := migrator.New(db, migrator.Options{BatchSize: 7})
			wg.Add(1)
			go func() {
				defer wg.Done()
				// require must not fail the test from another goroutine:
				// the error is checked once they are all done.
				runs[i], errs[i] = eng.Run(fx.ctx, migrator.Request{Direction: migrator.Forward, ScopeType: migrator.OrgScope, Org: "OrgX", Delete: true})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			require.NoError(t, err, "run %d", i)
		}
		total := 0
		for _, r := range runs {
			require.Equal(t, migrator.StatusCompleted, r.Status)
			total += int(r.Metadata["success_count"].(float64))
		}
		require.Equal(t, 60, total, "every row migrated exactly once")
		require.Len(t, fx.rules(), 60)
		require.Equal(t, 60, fx.count("openedx_authz_extendedcasbinrule", ""))
		require.Empty(t, fx.legacyRows())
	})
}

// Values are never truncated: an assignment whose key is exactly 255
// characters migrates intact both ways; a 255-character course key, whose
// namespaced key cannot fit, is reported and left where it is.
func TestLongKeysSurviveIntact(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		key := func(n int) string { // a course-v1 key of n characters
			return "course-v1:OrgX+" + strings.Repeat("c", n-len("course-v1:OrgX++2024")) + "+2024"
		}
		// g,user^ab,role^course_staff,course-v1^<key>, = 255
		fits := key(255 - len("g,user^ab,role^course_staff,course-v1^,"))
		long := key(255)
		fx.legacy("ab", "OrgX", fits, "staff")
		fx.legacy("ab", "OrgX", long, "staff")
		run := fx.run(migrator.Forward, migrator.OrgScope, "OrgX")
		require.EqualValues(t, 1, run.Metadata["success_count"])
		errs := run.Metadata["errors"].(map[string]any)["assignment_failed"].([]any)
		require.Len(t, errs, 1)
		require.Equal(t, long, errs[0].(map[string]any)["scope"])
		require.Contains(t, errs[0].(map[string]any)["details"], "longer than the 255")
		require.Equal(t, []string{"g|user^ab|role^course_staff|course-v1^" + fits + "|||"}, fx.rules())
		rk := fx.strings("SELECT casbin_rule_key FROM openedx_authz_extendedcasbinrule")
		require.Len(t, rk[0], 255)
		require.Equal(t, []string{fits}, fx.strings("SELECT external_key FROM openedx_authz_scope"))
		require.Equal(t, []string{"ab|OrgX|" + long + "|staff"}, fx.legacyRows())

		fx.run(migrator.Rollback, migrator.OrgScope, "OrgX")
		require.ElementsMatch(t, []string{"ab|OrgX|" + fits + "|staff", "ab|OrgX|" + long + "|staff"}, fx.legacyRows())
	})
}

func TestBadRequestsWriteNothing(t *testing.T) {
	fx := newFixture(t, testenv.Databases[0]) // no server needed
	fx.legacy("s1", "OrgX", c1, "staff")
	fx.legacy("s2", "OrgX", "", "instructor")
	before := testenv.DumpAll(t, fx.db)
	for _, req := range []migrator.Request{
		{Direction: migrator.Forward, ScopeType: migrator.CourseScope, CourseKeys: []string{"not-a-key"}},
		{Direction: migrator.Forward, ScopeType: migrator.CourseScope, CourseKeys: []string{"OrgX/C1/2024"}},
		{Direction: migrator.Forward, ScopeType: migrator.CourseScope, CourseKeys: []string{c1, c1}},
		{Direction: migrator.Forward, ScopeType: migrator.OrgScope, Org: ""},
		{Direction: migrator.Forward, ScopeType: migrator.OrgScope, Org: "Org X"},
		{Direction: "sideways", ScopeType: migrator.OrgScope, Org: "OrgX"},
		{Direction: migrator.Rollback, ScopeType: "global", Org: "OrgX"},
	} {
		run, err := fx.eng.Run(fx.ctx, req)
		require.ErrorIs(t, err, migrator.ErrBadRequest, "%+v", req)
		require.Nil(t, run)
	}
	require.Equal(t, before, testenv.DumpAll(t, fx.db), "a refused request writes nothing: no run, no role moved")
}

// A manual run that cannot get the org's lock records a skipped run, as
// openedx-authz does when a run of the scope is active.
func TestManualRunBehindAHeldLockIsSkipped(t *testing.T) {
	for _, d := range testenv.Servers() {
		t.Run(d.Name, func(t *testing.T) {
			fx := newFixture(t, d)
			fx.legacy("s1", "OrgX", c1, "staff")
			conn, err := fx.db.SQL.Conn(fx.ctx)
			require.NoError(t, err)
			defer conn.Close()
			release, err := lock.Acquire(fx.ctx, fx.db.Driver(), conn, "OrgX", time.Second)
			require.NoError(t, err)
			eng := fx.engine(migrator.Options{LockTimeout: 200 * time.Millisecond})
			run, err := eng.Run(fx.ctx, migrator.Request{Direction: migrator.Forward, ScopeType: migrator.CourseScope,
				CourseKeys: []string{c1}, Trigger: migrator.Trigger{Kind: "manual"}})
			require.NoError(t, err)
			require.Equal(t, migrator.StatusSkipped, run.Status)
			require.Equal(t, migrator.SkipReason, run.Metadata["skip_reason"])
			require.Empty(t, fx.rules())

			// An event-driven run treats the held lock as transient instead.
			on := fx.override(migrator.CourseScope, c1, true, "on")
			_, err = eng.Handle(fx.ctx, migrator.Source{EventID: "e1"}, migrator.Change{Flag: authz.DefaultFlag,
				ScopeType: migrator.CourseScope, ScopeKey: c1, Org: "OrgX", RecordID: on})
			require.ErrorIs(t, err, lock.ErrTimeout)
			require.True(t, migrator.IsTransient(err))
			require.NoError(t, release(fx.ctx))
			require.Equal(t, migrator.OutcomeRan, fx.event("e1", migrator.CourseScope, c1, on).Outcome)
		})
	}
}

package migrator_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/migrator"
)

// overview inserts a course_overviews_courseoverview row, as the CMS does
// when a course is created.
func (fx *fixture) overview(key string) {
	fx.t.Helper()
	fx.exec(`INSERT INTO course_overviews_courseoverview (created, modified, version, id, _location, org, display_number_with_default,
		display_org_with_default, course_image_url, visible_to_staff_only, invitation_only, self_paced)
		VALUES (?, ?, 1, ?, '', '', '', '', '', ?, ?, ?)`, fx.clock, fx.clock, key, false, false, false)
}

// scopes lists course scopes as "external_key|course_overview_id", sorted.
func (fx *fixture) scopes() []string {
	return fx.strings(`SELECT s.external_key, c.course_overview_id FROM openedx_authz_scope s
		JOIN openedx_authz_coursescope c ON c.scope_ptr_id = s.id`)
}

// Course scopes are found and created as openedx-authz's
// Scope.get_or_create_for_external_key does: linked to the course's overview
// row when it exists, pending (link null) when it does not, a pending scope
// linked once the overview exists, an empty external_key filled in. Never
// two scopes for one course.
func TestCourseScopesAsOpenedxAuthzMakesThem(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		const withOverview, pending, noOverview, emptyKey = "course-v1:OrgX+Live+2024", "course-v1:OrgX+Soon+2024", "course-v1:OrgX+Gone+2024", "course-v1:OrgX+Old+2020"
		fx.overview(withOverview)
		fx.overview(pending)
		fx.overview(emptyKey)
		// A scope openedx-authz made before the course existed, and one made
		// before scopes had an external_key.
		fx.exec("INSERT INTO openedx_authz_scope (external_key) VALUES (?)", pending)
		fx.exec("INSERT INTO openedx_authz_coursescope (scope_ptr_id, course_overview_id) SELECT id, NULL FROM openedx_authz_scope WHERE external_key = ?", pending)
		fx.exec("INSERT INTO openedx_authz_scope (external_key) VALUES (NULL)")
		fx.exec("INSERT INTO openedx_authz_coursescope (scope_ptr_id, course_overview_id) SELECT id, ? FROM openedx_authz_scope WHERE external_key IS NULL", emptyKey)
		for _, k := range []string{withOverview, pending, noOverview, emptyKey} {
			fx.legacy("a", "OrgX", k, "staff")
			fx.legacy("b", "OrgX", k, "instructor")
		}
		run := fx.run(migrator.Forward, migrator.OrgScope, "OrgX")
		require.Equal(t, migrator.StatusCompleted, run.Status)
		require.ElementsMatch(t, []string{
			emptyKey + "|" + emptyKey,
			noOverview + "|NULL",
			pending + "|" + pending,
			withOverview + "|" + withOverview,
		}, fx.scopes())
		require.Equal(t, 8, fx.count("openedx_authz_extendedcasbinrule e JOIN openedx_authz_scope s ON s.id = e.scope_id",
			"e.casbin_rule_key LIKE "+fx.db.Driver().Concat("'%'", "s.external_key", "',%'")), "every rule points at its course's scope")

		// The course is created later: openedx-authz links the pending scope
		// itself (link_pending_scope); a second round trip makes no new scope.
		fx.overview(noOverview)
		fx.exec("UPDATE openedx_authz_coursescope SET course_overview_id = ? WHERE scope_ptr_id = (SELECT id FROM openedx_authz_scope WHERE external_key = ?)", noOverview, noOverview)
		require.Equal(t, migrator.StatusCompleted, fx.run(migrator.Rollback, migrator.OrgScope, "OrgX").Status)
		require.Equal(t, migrator.StatusCompleted, fx.run(migrator.Forward, migrator.OrgScope, "OrgX").Status)
		require.Len(t, fx.scopes(), 4)
	})
}

// One grammar for course keys, edx-opaque-keys': Unicode word characters and
// punctuated parts move; a key opaque-keys rejects is reported per row and
// stays, while the rest of the org moves. An org-wide row of an org that
// openedx-authz cannot hold as a glob (its globs are ASCII) stays too.
func TestUnicodeAndPunctuatedKeysMove(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		keys := []string{"course-v1:Örg+Çø+2024", "course-v1:Örg+C.1-a_b~c+2024:x"}
		for _, k := range keys {
			fx.legacy("u", "Örg", k, "staff")
		}
		fx.legacy("w", "Örg", "", "instructor")
		fx.legacy("bad", "Örg", "course-v1:Örg+C 1+2024", "staff")
		run := fx.run(migrator.Forward, migrator.OrgScope, "Örg")
		require.Equal(t, migrator.StatusPartialSuccess, run.Status)
		require.EqualValues(t, 2, run.Metadata["success_count"])
		require.Equal(t, []string{
			"g|user^u|role^course_staff|course-v1^course-v1:Örg+C.1-a_b~c+2024:x|||",
			"g|user^u|role^course_staff|course-v1^course-v1:Örg+Çø+2024|||",
		}, fx.rules())
		require.Equal(t, []string{"bad|Örg|course-v1:Örg+C 1+2024|staff", "w|Örg||instructor"}, fx.legacyRows())
		errs := run.Metadata["errors"].(map[string]any)
		require.Len(t, errs["no_scope"], 2)
		require.Contains(t, errs["no_scope"], map[string]any{"subject": "w", "role": "instructor", "scope": "course-v1:Örg+*",
			"details": "openedx-authz cannot hold an org-wide scope for org 'Örg': its org globs allow only ASCII letters, digits, '.', '_' and '-'; the row stays"})

		back := fx.run(migrator.Rollback, migrator.OrgScope, "Örg")
		require.Equal(t, migrator.StatusCompleted, back.Status)
		require.EqualValues(t, 2, back.Metadata["success_count"])
		require.Empty(t, fx.rules())
	})
}

// Orgs spelled in two cases: forward runs select legacy rows as the database
// compares them (both spellings on Open edX's case-insensitive MySQL, one on
// PostgreSQL and SQLite), as openedx-authz's ORM filter does; rollbacks keep
// the assignments whose scope names the org exactly, as openedx-authz's
// Python filter does (SQLite's LIKE ignores case, and must not widen it).
// Runs record the org as given; a leftover extended rule with the same key
// does not fail the run.
func TestOrgSpelledInTwoCases(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("a", "OrgX", "course-v1:OrgX+C1+2024", "staff")
		fx.legacy("b", "orgx", "course-v1:orgx+C2+2024", "staff")
		fx.legacy("c", "orgx", "", "instructor")

		run := fx.run(migrator.Forward, migrator.OrgScope, "OrgX")
		require.Equal(t, "OrgX", run.ScopeKey)
		if fx.dbase.FoldsCase {
			require.Equal(t, migrator.StatusCompleted, run.Status)
			require.EqualValues(t, 3, run.Metadata["success_count"], "MySQL's collation selects both spellings")
			require.Empty(t, fx.legacyRows())
		} else {
			require.EqualValues(t, 1, run.Metadata["success_count"], "exact comparison selects one spelling")
			require.Len(t, fx.legacyRows(), 2)
			require.Equal(t, migrator.StatusCompleted, fx.run(migrator.Forward, migrator.OrgScope, "orgx").Status)
		}
		require.Len(t, fx.rules(), 3)

		back := fx.run(migrator.Rollback, migrator.OrgScope, "OrgX")
		require.EqualValues(t, 1, back.Metadata["success_count"], "a rollback takes the exact spelling only")
		require.Equal(t, []string{"a|OrgX|course-v1:OrgX+C1+2024|staff"}, fx.legacyRows())
		require.Len(t, fx.rules(), 2)
		require.Equal(t, migrator.StatusCompleted, fx.run(migrator.Rollback, migrator.OrgScope, "orgx").Status)
		require.Empty(t, fx.rules())
		require.Len(t, fx.legacyRows(), 3)

		// An extended rule left behind with the key of an assignment about to
		// be made (its rule id points at an unrelated rule): openedx-authz
		// gets or creates by key, so the run goes on and the row is kept.
		fx.exec("INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5) VALUES ('p', 'x', 'y', 'z', '', '', '')")
		fx.exec(`INSERT INTO openedx_authz_extendedcasbinrule (casbin_rule_key, casbin_rule_id, created_at, updated_at)
			SELECT ?, id, ?, ? FROM casbin_rule WHERE ptype = 'p'`, "g,user^a,role^course_staff,course-v1^course-v1:OrgX+C1+2024,", fx.clock, fx.clock)
		again := fx.run(migrator.Forward, migrator.CourseScope, "course-v1:OrgX+C1+2024")
		require.Equal(t, migrator.StatusCompleted, again.Status)
		require.Equal(t, 1, fx.count("openedx_authz_extendedcasbinrule", "casbin_rule_key = ?", "g,user^a,role^course_staff,course-v1^course-v1:OrgX+C1+2024,"))
	})
}

// Every run that moves roles writes a new openedx-authz policy version, in
// the form Django stores it, so running LMS/CMS enforcers reload the policy;
// a run that moves nothing leaves it alone.
func TestRunsBumpThePolicyVersion(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		version := func() string {
			v := fx.strings("SELECT version FROM openedx_authz_policycachecontrol")
			require.LessOrEqual(t, len(v), 1, "a singleton row")
			if len(v) == 0 {
				return ""
			}
			return v[0]
		}
		require.Empty(t, version())
		fx.legacy("a", "OrgX", c1, "staff")
		require.Equal(t, migrator.StatusCompleted, fx.run(migrator.Forward, migrator.CourseScope, c1).Status)
		first := version()
		require.Regexp(t, `^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$`, first)
		require.Equal(t, !fx.dbase.NativeUUID, len(first) == 32, "SQLite stores Django's char(32) hex; MariaDB and PostgreSQL a native uuid")
		require.Equal(t, migrator.StatusCompleted, fx.run(migrator.Forward, migrator.CourseScope, "course-v1:OrgX+Empty+2024").Status)
		require.Equal(t, first, version(), "nothing moved, nothing to reload")
		require.Equal(t, migrator.StatusCompleted, fx.run(migrator.Rollback, migrator.CourseScope, c1).Status)
		require.NotEqual(t, first, version())
	})
}

// One course spelled two ways in one org run, with a pending scope under
// one spelling and the overview under the other (found by the differential
// test on MariaDB, where both spellings are one course): the run links the
// existing scope instead of creating a second one that the case-insensitive
// unique key refuses.
func TestCourseSpelledTwoWaysInOneRun(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		const upper, lower = "course-v1:OrgX+C1+2024", "course-v1:orgx+C1+2024"
		fx.overview(upper)
		fx.exec("INSERT INTO openedx_authz_scope (external_key) VALUES (?)", lower)
		fx.exec("INSERT INTO openedx_authz_coursescope (scope_ptr_id, course_overview_id) SELECT id, NULL FROM openedx_authz_scope WHERE external_key = ?", lower)
		fx.legacy("a", "OrgX", upper, "staff")
		fx.legacy("b", "orgx", lower, "staff")
		run := fx.run(migrator.Forward, migrator.OrgScope, "OrgX")
		require.Equal(t, migrator.StatusCompleted, run.Status, "%v", run.Metadata["error"])
		if fx.dbase.FoldsCase {
			require.EqualValues(t, 2, run.Metadata["success_count"])
			require.Equal(t, []string{lower + "|" + upper}, fx.scopes(), "one scope for the course, linked")
		} else {
			require.EqualValues(t, 1, run.Metadata["success_count"])
			require.ElementsMatch(t, []string{lower + "|NULL", upper + "|" + upper}, fx.scopes())
		}
	})
}

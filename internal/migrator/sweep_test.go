package migrator_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/migrator"
)

func (fx *fixture) sweep(global bool) migrator.SweepResult {
	fx.t.Helper()
	res, err := fx.eng.Sweep(fx.ctx, migrator.SweepOptions{Window: 2, Global: global})
	require.NoError(fx.t, err)
	return res
}

// The sweep heals lost events: the first one only sets the watermarks
// (deploying moves nothing), later ones reconcile every scope whose
// override rows are newer, re-reading a trailing window of ids.
func TestSweepHealsLostEvents(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("s1", "OrgX", c1, "staff")
		fx.legacy("s2", "OrgX", "course-v1:OrgX+C2+2024", "staff")
		fx.legacy("w", "OrgX", "", "instructor")
		fx.override(migrator.CourseScope, c1, true, "on") // before the service: not moved by deploying it
		first := fx.sweep(false)
		require.True(t, first.First)
		require.Empty(t, fx.rules(), "the first sweep moves nothing")

		// An org save whose event is lost: the next sweep reconciles the org.
		fx.override(migrator.OrgScope, "OrgX", true, "on")
		res := fx.sweep(false)
		require.Equal(t, 1, res.Scopes, "the org; the course override saved before the first sweep is below the floor")
		require.Equal(t, 1, res.Runs)
		require.Len(t, fx.rules(), 3, "the org run moved its courses and the org-wide row")
		require.Equal(t, []string{"forward|org|OrgX|sweep"}, fx.strings(`SELECT migration_type, scope_type, scope_key, `+
			fx.db.Driver().JSONText("metadata", "trigger")+` FROM openedx_authz_authzcourseauthoringmigrationrun`))

		// Nothing new: no scope is looked at again.
		res = fx.sweep(false)
		require.Zero(t, res.Scopes)
		require.Zero(t, res.Runs)
		require.Equal(t, 1, fx.count("openedx_authz_authzcourseauthoringmigrationrun", ""))

		// A row committed late with an id below the watermark (ids are
		// allocated before commit) is still seen, within the window.
		low := fx.override(migrator.CourseScope, "course-v1:OrgX+C2+2024", true, "off")
		fx.exec("UPDATE waffle_utils_waffleflagcourseoverridemodel SET id = ? WHERE id = ?", low+100, low)
		fx.sweep(false) // sees the high id and moves the watermark above it
		fx.exec("INSERT INTO waffle_utils_waffleflagcourseoverridemodel (id, change_date, enabled, waffle_flag, course_id, override_choice, note) VALUES (?, ?, ?, ?, ?, ?, '')",
			low+99, fx.clock, true, authz.DefaultFlag, c1, "off")
		res = fx.sweep(false)
		require.Equal(t, 1, res.Scopes, "only the late row's scope: it was a gap below the watermark")
		require.Equal(t, 1, res.Runs, "the late row below the watermark was seen")
		require.Zero(t, fx.sweep(false).Scopes, "and only once")
		require.Equal(t, []string{"s1|OrgX|" + c1 + "|staff", "s2|OrgX|course-v1:OrgX+C2+2024|staff"}, fx.legacyRows())
	})
}

// A flip of the instance-wide flag is reported; it is reconciled org by org
// (trigger global) only when the operator opts in, leaving out orgs and
// courses with their own override.
func TestSweepGlobalFlip(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("a", "OrgA", "course-v1:OrgA+C1+2024", "staff")
		fx.legacy("b", "OrgB", "course-v1:OrgB+C1+2024", "staff")
		fx.legacy("k", "OrgA", "course-v1:OrgA+Keep+2024", "staff")
		fx.override(migrator.OrgScope, "OrgB", true, "off")
		fx.override(migrator.CourseScope, "course-v1:OrgA+Keep+2024", true, "off")
		require.True(t, fx.sweep(false).First)

		fx.setEveryone(true)
		res := fx.sweep(false)
		require.Equal(t, "on", res.GlobalFlip)
		require.Zero(t, res.Runs, "reported, not reconciled")
		require.Empty(t, fx.rules())

		fx.setEveryone(false)
		require.Equal(t, "off", fx.sweep(true).GlobalFlip)
		fx.setEveryone(true)
		res = fx.sweep(true)
		require.Equal(t, "on", res.GlobalFlip)
		require.Equal(t, 1, res.Runs, "OrgA follows the global flag; OrgB has its own off")
		require.Equal(t, []string{"g|user^a|role^course_staff|course-v1^course-v1:OrgA+C1+2024|||"}, fx.rules(),
			"OrgA+Keep keeps its own off")
		require.Equal(t, []string{"forward|org|OrgA|global"}, fx.strings(`SELECT migration_type, scope_type, scope_key, `+
			fx.db.Driver().JSONText("metadata", "trigger")+` FROM openedx_authz_authzcourseauthoringmigrationrun`))
	})
}

func (fx *fixture) setEveryone(on bool) {
	fx.t.Helper()
	require.NoError(fx.t, demo.SetEveryone(fx.ctx, fx.db, authz.DefaultFlag, &on))
}

package migrator_test

import (
	"testing"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/util"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/migrator"
)

// openedx-authz's casbin model (openedx_authz/engine/config/model.conf).
const authzModel = `
[request_definition]
r = sub, act, scope

[policy_definition]
p = sub, act, scope, eft

[role_definition]
g = _, _, _
g2 = _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = is_staff_or_superuser(r.sub, r.act, r.scope) || (g(r.sub, p.sub, r.scope) || g(r.sub, p.sub, "*")) && keyMatch(r.scope, p.scope) && (r.act == p.act || g2(p.act, r.act))
`

// What a run writes is what openedx-authz's enforcer reads: load the policy
// table through the gorm-adapter and check the permissions granted.
func TestEnforcerSeesMigratedRoles(t *testing.T) {
	dialects(t, func(t *testing.T, fx *fixture) {
		fx.legacy("alice", "OrgX", c1, "staff")
		fx.legacy("olga", "OrgX", "", "instructor")
		fx.legacy("bob", "OrgX", "course-v1:OrgX+C2+2024", "beta_testers")
		// A few permission policies, shaped like openedx-authz's.
		for _, p := range [][]string{
			{"role^course_staff", "act^courses.view_course", "course-v1^*", "allow"},
			{"role^course_admin", "act^courses.manage_course_team", "course-v1^*", "allow"},
			{"role^course_admin", "act^courses.view_course", "course-v1^*", "allow"},
		} {
			fx.exec("INSERT INTO casbin_rule (ptype, v0, v1, v2, v3, v4, v5) VALUES ('p', ?, ?, ?, ?, '', '')", p[0], p[1], p[2], p[3])
		}
		fx.run(migrator.Forward, migrator.OrgScope, "OrgX")

		m, err := model.NewModelFromString(authzModel)
		require.NoError(t, err)
		a, err := migrator.NewAdapter(fx.db)
		require.NoError(t, err)
		e, err := casbin.NewEnforcer(m, a)
		require.NoError(t, err)
		e.AddFunction("is_staff_or_superuser", func(args ...any) (any, error) { return false, nil })
		e.AddNamedDomainMatchingFunc("g", "keyMatch", util.KeyMatch)
		require.NoError(t, e.LoadPolicy())

		allow := func(sub, act, scope string) bool {
			ok, err := e.Enforce(sub, act, scope)
			require.NoError(t, err)
			return ok
		}
		require.True(t, allow("user^alice", "act^courses.view_course", "course-v1^"+c1))
		require.False(t, allow("user^alice", "act^courses.manage_course_team", "course-v1^"+c1))
		require.False(t, allow("user^alice", "act^courses.view_course", "course-v1^course-v1:OrgX+C2+2024"))
		// The org-wide instructor is admin of every course of the org, and of no other org.
		require.True(t, allow("user^olga", "act^courses.manage_course_team", "course-v1^course-v1:OrgX+C9+2030"))
		require.False(t, allow("user^olga", "act^courses.manage_course_team", "course-v1^course-v1:OrgY+C1+2024"))
		require.False(t, allow("user^bob", "act^courses.view_course", "course-v1^course-v1:OrgX+C2+2024"))

		// The adapter never altered the table: still varchar(255) NOT NULL.
		diffs, err := fx.db.Check(fx.ctx)
		require.NoError(t, err)
		require.Empty(t, diffs)

		fx.run(migrator.Rollback, migrator.OrgScope, "OrgX")
		require.NoError(t, e.LoadPolicy())
		require.False(t, allow("user^alice", "act^courses.view_course", "course-v1^"+c1))
	})
}

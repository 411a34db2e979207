package main

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

// summary is what a plan or run line says after its scope: status, and
// what it moved (or would) with its errors by reason.
var summary = regexp.MustCompile(`(?m)^(?:plan|run \d+) +(\w+) +(\w+) +(\S+) +(\w+) +(?:would move|moved) (.*)$`)

// migrate and rollback --dry-run print the plan (the rows each run would
// move, its errors by reason) and write nothing; the real run then does
// exactly that.
func TestManualDryRun(t *testing.T) {
	eachDialect(t, func(t *testing.T, url string, db *store.DB) {
		for _, args := range [][]string{
			{"migrate", "--org-id", "DemoX", "--delete"},
			{"rollback", "--course-id-list", "course-v1:DemoX+Intro+2024", "course-v1:DemoX+Adv+2024", "--delete"},
		} {
			args = append(args, "--database-url", url)
			before := testenv.DumpAll(t, db)
			plan, err := consumerCmd(t, append(args, "--dry-run")...)
			require.NoError(t, err)
			require.Equal(t, before, testenv.DumpAll(t, db), "a dry run writes nothing")
			require.Contains(t, plan, "dry run: nothing was written")
			done, err := consumerCmd(t, args...)
			require.NoError(t, err)
			planned, ran := summary.FindAllStringSubmatch(plan, -1), summary.FindAllStringSubmatch(done, -1)
			require.NotEmpty(t, planned, plan)
			require.Len(t, ran, len(planned), done)
			for i := range planned {
				require.Equal(t, ran[i][1:], planned[i][1:], "plan\n%s\nrun\n%s", plan, done)
			}
		}
		plan, err := consumerCmd(t, "migrate", "--org-id", "DemoX", "--dry-run", "--database-url", url)
		require.NoError(t, err)
		require.Regexp(t, `(?m)^  unknown_role: eli  finance_admin  \(Unknown access level: finance_admin for User: eli\)$`, plan)
		require.Regexp(t, `(?m)^plan +forward +org +DemoX +partial_success +would move 7 of 9; errors: unknown_role 2$`, plan, "the courses rolled back move again")
	})
}

package main

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/migrator"
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
	eachDatabase(t, func(t *testing.T, url string, db *store.DB) {
		for _, args := range [][]string{
			{"migrate", "--org-id", "DemoX", "--delete", "--force"},
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

// A plan names the courses an org run leaves out for their own override,
// and counts each error reason exactly where its list was capped.
func TestPlanPrintsLeftOutCoursesAndExactCounts(t *testing.T) {
	var md map[string]any
	require.NoError(t, json.Unmarshal([]byte(`{"total": 5003, "success_count": 1, "error_count": 5002,
		"successes": [{"subject": "ana", "role": "instructor", "scope": "course-v1:OrgX+C1+2024"}],
		"errors": {"skipped_for_flag_override": [{"subject": "s3", "role": "staff", "scope": "course-v1:OrgX+C3+2024", "details": "d"}]},
		"error_counts": {"skipped_for_flag_override": 5002}, "excluded_courses": ["course-v1:OrgX+C3+2024"], "dry_run": true}`), &md))
	var out bytes.Buffer
	printRun(&out, &migrator.Run{MigrationType: migrator.Forward, ScopeType: migrator.OrgScope, ScopeKey: "OrgX", Status: migrator.StatusPartialSuccess, Metadata: md, DryRun: true})
	require.Equal(t, `plan   forward  org    OrgX                                     partial_success would move 1 of 5003; errors: skipped_for_flag_override 5002
  left out for their own override: course-v1:OrgX+C3+2024
  move: ana  instructor  course-v1:OrgX+C1+2024
  skipped_for_flag_override: s3  staff  course-v1:OrgX+C3+2024  (d)
  skipped_for_flag_override: ... and 5001 more
`, out.String())
}

package main

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/store"
)

// consumerCmd runs the binary's root command in-process with args.
func consumerCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	return out.String(), err
}

func TestManualMigrateAndRollback(t *testing.T) {
	url := "sqlite:///" + filepath.ToSlash(filepath.Join(t.TempDir(), "m.db"))
	_, err := consumerCmd(t, "migrate", "--org-id", "DemoX", "--database-url", url)
	require.ErrorContains(t, err, "does not have the Open edX tables as expected: auth_user: table is missing")

	_, err = consumerCmd(t, "schema", "create", "--database-url", url)
	require.NoError(t, err)
	db, err := store.Open(context.Background(), url)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, demo.Seed(context.Background(), db))
	before, err := demo.TakeDump(context.Background(), db)
	require.NoError(t, err)

	for args, want := range map[string]string{
		"migrate --org-id NoSuchOrg":                     `org "NoSuchOrg" is unknown here`,
		"migrate --course-id-list course-v1:DemoX+Intro": `is not a course-v1 course key`,
		"migrate": "give exactly one of --course-id-list and --org-id",
		"rollback --org-id DemoX --course-id-list course-v1:DemoX+Intro+2024": "give exactly one of",
	} {
		_, err := consumerCmd(t, append(splitArgs(args), "--database-url", url)...)
		require.ErrorContains(t, err, want, args)
	}
	_, err = consumerCmd(t, "migrate", "--org-id", "DemoX", "--database-url", "mysql://u:topsecret@127.0.0.1:1/edxapp")
	require.ErrorContains(t, err, "unreachable")
	require.NotContains(t, err.Error(), "topsecret")
	after, err := demo.TakeDump(context.Background(), db)
	require.NoError(t, err)
	require.Empty(t, demo.Diff(before, after), "bad input writes nothing")

	out, err := consumerCmd(t, "migrate", "--org-id", "DemoX", "--delete", "--force", "--database-url", url)
	require.NoError(t, err)
	require.Regexp(t, `run 1 +forward +org +DemoX +partial_success +moved \d+ of \d+; errors: unknown_role \d`, out)
	out, err = consumerCmd(t, "rollback", "--course-id-list", "course-v1:DemoX+Intro+2024", "course-v1:DemoX+Adv+2024", "--delete", "--database-url", url)
	require.NoError(t, err)
	require.Regexp(t, `run 2 +rollback course +course-v1:DemoX\+Intro\+2024 +completed`, out)
	require.Regexp(t, `run 3 +rollback course +course-v1:DemoX\+Adv\+2024 +completed`, out)
	out, err = consumerCmd(t, "runs", "list", "--database-url", url)
	require.NoError(t, err)
	require.Regexp(t, `^ID +SCOPE +TYPE +STATUS +MOVED +ERRORS +TRIGGER +STARTED \(UTC\) +DURATION\n`, out)
	require.Regexp(t, `(?s)\n3 +course course-v1:DemoX\+Adv\+2024 +rollback +completed +\d+ of \d+ +0 +manual +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\S+\n2 .*\n1 +org DemoX +forward +partial_success`, out)
	out, err = consumerCmd(t, "runs", "show", "1", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, `"trigger": "manual"`)
	_, err = consumerCmd(t, "runs", "show", "99", "--database-url", url)
	require.ErrorContains(t, err, "run 99: not found")
}

func splitArgs(s string) []string {
	var out []string
	for _, f := range bytes.Fields([]byte(s)) {
		out = append(out, string(f))
	}
	return out
}

// `run` checks the Open edX tables before it creates anything, even its own
// tables; `schema create` refuses a database that already has them.
func TestRunRefusesANonOpenEdXDatabaseUntouched(t *testing.T) {
	url := "sqlite:///" + filepath.ToSlash(filepath.Join(t.TempDir(), "empty.db"))
	_, err := consumerCmd(t, "run", "--database-url", url, "--brokers", "127.0.0.1:1", "--http-addr", "127.0.0.1:0")
	require.ErrorContains(t, err, "does not have the Open edX tables as expected: auth_user: table is missing")
	db, err := store.Open(context.Background(), url)
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.SQL.QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'").Scan(&n))
	require.Zero(t, n, "no table created, not even the service's own")

	out, err := consumerCmd(t, "schema", "create", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "as Open edX's migrations make them")
	_, err = consumerCmd(t, "schema", "create", "--database-url", url)
	require.ErrorContains(t, err, "already holds Open edX tables")
	require.ErrorContains(t, err, "consumer schema migrate")
	out, err = consumerCmd(t, "schema", "check", "--database-url", url)
	require.NoError(t, err)
	require.Contains(t, out, "schema check: the 15 Open edX tables are compatible (0 warnings)")
}

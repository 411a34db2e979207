package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/devstack"
	"authz-flag-consumer/internal/store"
)

// Golden files: what the demo leaves in the run records' metadata and what
// `consumer verify` prints, compared whole against testdata/. After a
// deliberate change, rewrite them and review the diff:
//
//	go test ./cmd/consumer -run Golden -update
var update = flag.Bool("update", false, "rewrite the golden files in testdata/ with what the tests see")

// golden compares got with testdata/name (or writes it under -update).
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		require.NoError(t, os.WriteFile(path, got, 0o644))
		return
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "no golden file; create it with: go test ./cmd/consumer -run %s -update", t.Name())
	require.Equal(t, string(want), string(got),
		"%s differs from what the test saw; if the change is deliberate, rerun with -update and review the diff", path)
}

// playedDemo runs `consumer dev` (the script of toggles) in a temp dir and
// returns an open handle on the database it leaves.
func playedDemo(t *testing.T) (*store.DB, string) {
	t.Helper()
	dir := t.TempDir()
	var out bytes.Buffer
	require.NoError(t, runDev(context.Background(), &out, devOptions{dir: dir, partitions: 3, httpAddr: "127.0.0.1:0"}), out.String())
	url := "sqlite:///" + filepath.ToSlash(filepath.Join(dir, devstack.DBFile))
	db, err := store.Open(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db, url
}

// uuidV1 is the form of the ce_id the publisher generates.
var uuidV1 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-1[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// The run records the demo leaves: forward and rollback runs, with per-row
// errors (unknown_role, skipped_for_flag_override) and excluded courses.
// The one field that differs between two plays, the event's ce_id (a
// fresh UUID), is checked for its form and replaced.
func TestGoldenDevRunMetadata(t *testing.T) {
	db, _ := playedDemo(t)
	rows, err := db.SQL.Query(`SELECT id, migration_type, scope_type, scope_key, status, metadata
		FROM openedx_authz_authzcourseauthoringmigrationrun ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	type run struct {
		ID       int64          `json:"id"`
		Type     string         `json:"migration_type"`
		Scope    string         `json:"scope"`
		Status   string         `json:"status"`
		Metadata map[string]any `json:"metadata"`
	}
	var runs []run
	for rows.Next() {
		var r run
		var scopeType, scopeKey, md string
		require.NoError(t, rows.Scan(&r.ID, &r.Type, &scopeType, &scopeKey, &r.Status, &md))
		r.Scope = scopeType + " " + scopeKey
		require.NoError(t, json.Unmarshal([]byte(md), &r.Metadata), "run %d metadata", r.ID)
		ev, ok := r.Metadata["event"].(map[string]any)
		require.True(t, ok, "run %d was triggered by an event: %s", r.ID, md)
		require.Regexp(t, uuidV1, ev["id"], "run %d: the event id is the message's ce_id", r.ID)
		ev["id"] = "<ce_id>"
		runs = append(runs, r)
	}
	require.NoError(t, rows.Err())
	var got bytes.Buffer
	enc := json.NewEncoder(&got)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	require.NoError(t, enc.Encode(runs))
	golden(t, "dev-runs.golden.json", got.Bytes())
}

// `consumer verify` on the demo's database after two saves whose events
// were lost: a course turned on with its legacy roles still there, and a
// course turned off with its assignments still there; and a legacy role
// added back to a migrated course whose assignment exists, which a run
// leaves in place with a per-row error. Text and --json; every value
// in them is the same on each play (row ids included: one process plays
// the script in order), so nothing is normalized.
func TestGoldenVerify(t *testing.T) {
	db, url := playedDemo(t)
	ctx := context.Background()
	for _, o := range []demo.Override{
		{Flag: authz.DefaultFlag, ScopeType: "course", ScopeKey: demo.CourseData, Enabled: true, Choice: "on"},
		{Flag: authz.DefaultFlag, ScopeType: "course", ScopeKey: demo.CourseBio, Enabled: true, Choice: "off"},
	} {
		_, err := demo.Save(ctx, db, o)
		require.NoError(t, err)
	}
	require.NoError(t, demo.AddRoles(ctx, db, demo.Role{Username: "ana", Org: demo.OrgDemo, CourseID: demo.CourseIntro, Role: "instructor"}))
	for name, args := range map[string][]string{
		"verify.golden.txt":  {"verify", "--database-url", url},
		"verify.golden.json": {"verify", "--json", "--database-url", url},
	} {
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			root := newRootCmd()
			root.SetOut(&stdout)
			root.SetErr(&stderr)
			root.SetArgs(args)
			err := root.ExecuteContext(ctx)
			require.EqualError(t, err, "drift in 2 scope(s), 4 role(s) to move: see `consumer reconcile --dry-run`", "stderr: %s", stderr.String())
			golden(t, name, stdout.Bytes())
		})
	}
}

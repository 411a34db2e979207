package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

// eachDatabase runs fn on a fresh database of each supported kind, with the Open
// edX tables and the demo data.
func eachDatabase(t *testing.T, fn func(t *testing.T, url string, db *store.DB)) {
	for _, d := range testenv.Databases {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			url := d.URL(t)
			ctx := context.Background()
			db, err := store.Open(ctx, url)
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			require.NoError(t, db.CreateSchema(ctx))
			require.NoError(t, demo.Seed(ctx, db))
			fn(t, url, db)
		})
	}
}

// saveOverride saves a demo override; handled, its event goes through the
// engine as the consumer would hand it over.
func saveOverride(t *testing.T, db *store.DB, eng *migrator.Engine, scopeType, key, choice string, handled bool) {
	t.Helper()
	ctx := context.Background()
	o, err := demo.Save(ctx, db, demo.Override{ScopeType: scopeType, ScopeKey: key, Enabled: true, Choice: choice, ChangedBy: demo.Admin})
	require.NoError(t, err)
	if !handled {
		return
	}
	res, err := eng.Handle(ctx, migrator.Source{EventID: fmt.Sprintf("ev-%s-%d", scopeType, o.ID), Topic: "waffle-flag-override-lifecycle"},
		migrator.Change{Flag: o.Flag, ScopeType: migrator.ScopeType(o.ScopeType), ScopeKey: o.ScopeKey, Org: o.Org,
			RecordID: o.ID, Enabled: o.Enabled, OverrideChoice: o.Choice, ChangeDate: o.ChangeDate, ChangedBy: o.ChangedBy})
	require.NoError(t, err)
	require.Equal(t, migrator.OutcomeRan, res.Outcome, res.Detail)
}

// A lost event leaves one scope's roles in the wrong place: verify reports
// exactly that scope (exit 1, in the table and the JSON), reconcile
// --dry-run prints the run it would make and changes nothing, reconcile
// makes it (trigger reconcile), and verify then exits 0.
func TestLostEventVerifyThenReconcile(t *testing.T) {
	eachDatabase(t, func(t *testing.T, url string, db *store.DB) {
		ctx := context.Background()
		eng := migrator.New(db, migrator.Options{AutoMigrate: true})
		saveOverride(t, db, eng, "org", demo.OrgDemo, "on", true)
		saveOverride(t, db, eng, "course", demo.CourseAdv, "off", true)
		saveOverride(t, db, eng, "org", demo.OrgOther, "on", true)
		out, err := consumerCmd(t, "verify", "--database-url", url)
		require.NoError(t, err, "every event handled: no drift\n%s", out)
		require.Contains(t, out, "0 drifting (0 roles to move)")

		saveOverride(t, db, eng, "course", demo.CourseIntro, "off", false) // its event is lost

		out, err = consumerCmd(t, "verify", "--database-url", url)
		t.Logf("consumer verify (%s):\n%s", db.URL, out)
		require.EqualError(t, err, "drift in 1 scope(s), 4 role(s) to move: see `consumer reconcile --dry-run`")
		require.Regexp(t, `(?m)^course +course-v1:DemoX\+Intro\+2024 +off \(course override\) +0 +4 +4 +0 *$`, out)
		require.Len(t, regexp.MustCompile(`(?m)^(course|org) `).FindAllString(out, -1), 1, "exactly one scope in the table")

		out, err = consumerCmd(t, "verify", "--json", "--database-url", url)
		require.Error(t, err)
		var rep migrator.DriftReport
		require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
		require.Equal(t, 1, rep.DriftingScopes)
		require.Len(t, rep.Scopes, 1)
		intro := rep.Scopes[0]
		require.Equal(t, migrator.CourseScope, intro.Type)
		require.Equal(t, demo.CourseIntro, intro.Key)
		require.Equal(t, "off", intro.State)
		require.Equal(t, 4, intro.Drift)
		var moved []string
		for _, r := range intro.DriftRows {
			moved = append(moved, r.Subject+" "+r.Role)
		}
		require.ElementsMatch(t, []string{"ana course_admin", "ben course_staff", "chen course_limited_staff", "dara course_beta_tester"}, moved)

		before := testenv.DumpAll(t, db)
		out, err = consumerCmd(t, "reconcile", "--all", "--dry-run", "--database-url", url)
		t.Logf("consumer reconcile --all --dry-run (%s):\n%s", db.URL, out)
		require.NoError(t, err)
		require.Regexp(t, `(?m)^plan +rollback +course +course-v1:DemoX\+Intro\+2024 +completed +would move 4 of 4$`, out)
		require.Regexp(t, `(?m)^  move: ana  course_admin  course-v1:DemoX\+Intro\+2024$`, out)
		require.Contains(t, out, "reconcile: 1 of 6 scopes checked drifting; 1 run(s) planned (dry run: nothing was written)")
		require.Equal(t, before, testenv.DumpAll(t, db), "a dry run writes nothing")

		out, err = consumerCmd(t, "reconcile", "--all", "--database-url", url)
		require.NoError(t, err)
		m := regexp.MustCompile(`(?m)^run (\d+) +rollback course +course-v1:DemoX\+Intro\+2024 +completed +moved 4 of 4$`).FindStringSubmatch(out)
		require.NotNil(t, m, out)
		show, err := consumerCmd(t, "runs", "show", m[1], "--database-url", url)
		require.NoError(t, err)
		require.Contains(t, show, `"trigger": "reconcile"`)
		var applied string
		require.NoError(t, db.SQL.QueryRowContext(ctx, db.Rebind("SELECT applied FROM authz_consumer_scope_state WHERE scope_type = 'course' AND scope_key = ?"), demo.CourseIntro).Scan(&applied))
		require.Equal(t, "off", applied, "the ledger knows")

		out, err = consumerCmd(t, "verify", "--database-url", url)
		require.NoError(t, err, out)
		out, err = consumerCmd(t, "reconcile", "--org-id", demo.OrgDemo, "--database-url", url)
		require.NoError(t, err)
		require.Contains(t, out, "reconcile: no drift in")

		// The flag is a setting: another flag has no overrides, so every
		// migrated role drifts under it.
		_, err = consumerCmd(t, "verify", "--watched-flag", "some.other_flag", "--database-url", url)
		require.ErrorContains(t, err, "drift in")
	})
}

// verify and reconcile refuse a bad selection before touching the database.
func TestVerifyAndReconcileArguments(t *testing.T) {
	for args, want := range map[string]string{
		"reconcile":                      "give exactly one of --course-id-list, --org-id and --all",
		"reconcile --all --org-id DemoX": "give exactly one of",
		"verify --org-id DemoX --course-id-list course-v1:DemoX+Intro+2024": "give at most one of",
		"verify --course-id-list DemoX/Intro/2024":                          "is not a course-v1 course key",
		"reconcile --org-id Demo+X":                                         "is not a valid org short name",
	} {
		_, err := consumerCmd(t, append(splitArgs(args), "--database-url", "sqlite:///does-not-matter.db")...)
		require.ErrorContains(t, err, want, args)
	}
}

package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

func TestSchemaCreateThenCheck(t *testing.T) {
	for name, url := range map[string]func(testing.TB) string{"sqlite": testenv.SQLiteURL, "mysql": testenv.MySQLURL, "postgres": testenv.PostgresURL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db, err := store.Open(ctx, url(t))
			require.NoError(t, err)
			defer db.Close()

			diffs, err := db.Check(ctx)
			require.NoError(t, err)
			require.Len(t, diffs, len(store.OpenEdXTables)+len(store.OwnTables), "an empty database misses every table")
			require.Equal(t, len(store.OpenEdXTables), store.Incompatible(diffs), "missing own tables are only warnings")

			require.NoError(t, db.CreateSchema(ctx))
			err = db.CreateSchema(ctx)
			require.ErrorIs(t, err, store.ErrOpenEdXTablesExist, "a database with Open edX tables is refused")
			require.ErrorContains(t, err, "consumer schema migrate")
			diffs, err = db.Check(ctx)
			require.NoError(t, err)
			require.Empty(t, diffs)

			// What the stock gorm-adapter auto-migration would do (narrower and
			// nullable), a dropped column, a wider column, NOT NULL where the
			// service writes NULL, another type family, an extra column.
			var alters []string
			switch name {
			case "mysql":
				alters = []string{
					"ALTER TABLE casbin_rule MODIFY v0 varchar(100) NULL",
					"ALTER TABLE openedx_authz_roleassignmentaudit MODIFY subject varchar(300) NOT NULL",
					"ALTER TABLE openedx_authz_coursescope MODIFY course_overview_id varchar(255) NOT NULL",
					"ALTER TABLE student_courseaccessrole MODIFY role varchar(64) COLLATE utf8mb4_bin NOT NULL",
					"ALTER TABLE openedx_authz_roleassignmentaudit MODIFY operation int NOT NULL",
				}
			case "postgres":
				alters = []string{
					"ALTER TABLE casbin_rule ALTER COLUMN v0 TYPE varchar(100)",
					"ALTER TABLE openedx_authz_roleassignmentaudit ALTER COLUMN subject TYPE varchar(300)",
					"ALTER TABLE openedx_authz_coursescope ALTER COLUMN course_overview_id SET NOT NULL",
					"ALTER TABLE openedx_authz_roleassignmentaudit ALTER COLUMN operation TYPE integer USING 0",
				}
			}
			alters = append(alters, "ALTER TABLE openedx_authz_roleassignmentaudit DROP COLUMN actor_id",
				"ALTER TABLE student_courseaccessrole ADD COLUMN extra_note varchar(10) NULL")
			for _, a := range alters {
				_, err = db.SQL.ExecContext(ctx, a)
				require.NoError(t, err, a)
			}
			diffs, err = db.Check(ctx)
			require.NoError(t, err)
			var bad, warn []string
			for _, d := range diffs {
				if d.Compatible {
					warn = append(warn, d.String())
				} else {
					bad = append(bad, d.String())
				}
			}
			want := []string{"openedx_authz_roleassignmentaudit.actor_id: column is missing"}
			var wantWarn []string
			if name != "sqlite" {
				want = append(want,
					"casbin_rule.v0: type is "+map[string]string{"mysql": "varchar(100)", "postgres": "character varying(100)"}[name]+", narrower than the "+map[string]string{"mysql": "varchar(255)", "postgres": "character varying(255)"}[name]+" this service writes",
					"openedx_authz_coursescope.course_overview_id: NOT NULL, but this service writes NULL here",
					"openedx_authz_roleassignmentaudit.operation: type is "+map[string]string{"mysql": "int(11)", "postgres": "integer"}[name]+", want "+map[string]string{"mysql": "varchar(20)", "postgres": "character varying(20)"}[name]+" (another type family)")
				wantWarn = append(wantWarn, "warning: openedx_authz_roleassignmentaudit.subject: type is "+
					map[string]string{"mysql": "varchar(300), wider than varchar(255)", "postgres": "character varying(300), wider than character varying(255)"}[name])
			}
			if name == "mysql" {
				want[len(want)-1] = strings.Replace(want[len(want)-1], "int(11)", "int", 1)
				wantWarn = append(wantWarn, "warning: casbin_rule.v0: nullable, want NOT NULL",
					"warning: student_courseaccessrole.role: collation utf8mb4_bin compares case-sensitively; Open edX's MySQL compares case-insensitively, and runs select rows as the database compares them")
			}
			if name == "postgres" {
				wantWarn = append(wantWarn, "warning: casbin_rule.v0: nullable, want NOT NULL")
				wantWarn = wantWarn[:1] // PostgreSQL's ALTER TYPE keeps NOT NULL
			}
			require.ElementsMatch(t, normalizeInt(want), normalizeInt(bad))
			require.ElementsMatch(t, wantWarn, warn)
		})
	}
}

// normalizeInt forgives MariaDB's int(11) display width.
func normalizeInt(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.ReplaceAll(s, "int(11)", "int")
	}
	return out
}

func TestOpenNamesWhatIsWrong(t *testing.T) {
	ctx := context.Background()
	for url, want := range map[string]string{
		"oracle://x":                            "unknown scheme",
		"mysql://u:secret@127.0.0.1:1/db":       "unreachable",
		"postgres://u:secret@127.0.0.1:1/db":    "unreachable",
		"sqlite:///nonexistent-dir/deeper/x.db": "nonexistent-dir/deeper does not exist",
	} {
		_, err := store.Open(ctx, url)
		require.ErrorContains(t, err, want, url)
		require.NotContains(t, err.Error(), "secret", "passwords never appear in errors")
	}
}

// Own tables made by an older binary are brought up to date step by step.
func TestMigrateUpgradesOwnTables(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, testenv.SQLiteURL(t))
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.CreateSchema(ctx))
	// Back to version 1, as the first release left them.
	for _, step := range store.OwnMigrations[1:] {
		for _, tb := range step {
			_, err := db.SQL.ExecContext(ctx, "DROP TABLE "+tb.Name)
			require.NoError(t, err)
		}
	}
	_, err = db.SQL.ExecContext(ctx, "DELETE FROM authz_consumer_schema WHERE version > 1")
	require.NoError(t, err)
	diffs, err := db.Check(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, diffs)

	require.NoError(t, db.Migrate(ctx))
	require.NoError(t, db.Migrate(ctx), "idempotent")
	diffs, err = db.Check(ctx)
	require.NoError(t, err)
	require.Empty(t, diffs)
}

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

			require.NoError(t, db.CreateSchema(ctx))
			require.NoError(t, db.CreateSchema(ctx), "create is idempotent")
			diffs, err = db.Check(ctx)
			require.NoError(t, err)
			require.Empty(t, diffs)

			// What the stock gorm-adapter auto-migration would do, and a dropped column.
			alter := "ALTER TABLE casbin_rule ALTER COLUMN v0 TYPE varchar(100)"
			if name == "mysql" {
				alter = "ALTER TABLE casbin_rule MODIFY v0 varchar(100) NULL"
			}
			if name != "sqlite" {
				_, err = db.SQL.ExecContext(ctx, alter)
				require.NoError(t, err)
			}
			_, err = db.SQL.ExecContext(ctx, "ALTER TABLE openedx_authz_roleassignmentaudit DROP COLUMN actor_id")
			require.NoError(t, err)
			diffs, err = db.Check(ctx)
			require.NoError(t, err)
			var got []string
			for _, d := range diffs {
				got = append(got, d.String())
			}
			require.Contains(t, got, "openedx_authz_roleassignmentaudit.actor_id: column is missing")
			if name != "sqlite" {
				require.True(t, strings.HasPrefix(strings.Join(got, "\n"), "casbin_rule.v0: type is"), "%v", got)
			}
		})
	}
}

func TestOpenNamesWhatIsWrong(t *testing.T) {
	ctx := context.Background()
	for url, want := range map[string]string{
		"oracle://x":                            "unknown scheme",
		"mysql://u:secret@127.0.0.1:1/db":       "unreachable",
		"postgres://u:secret@127.0.0.1:1/db":    "unreachable",
		"sqlite:///nonexistent-dir/deeper/x.db": "unreachable",
	} {
		_, err := store.Open(ctx, url)
		require.ErrorContains(t, err, want, url)
		require.NotContains(t, err.Error(), "secret", "passwords never appear in errors")
	}
}

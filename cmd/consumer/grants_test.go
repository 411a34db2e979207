package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

// An account without a privilege the service needs is refused at start,
// naming what is missing; granted it, the same command runs.
func TestMissingGrantIsNamedAtStart(t *testing.T) {
	for _, d := range []store.Dialect{store.MySQL, store.Postgres} {
		t.Run(string(d), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			user := fmt.Sprintf("authz_t_grants_%08x", rand.Uint32())
			// Registered first, so it runs last: after the database (and
			// the privileges on it) is gone.
			t.Cleanup(func() {
				stmt := map[store.Dialect]string{store.MySQL: "DROP USER IF EXISTS '" + user + "'@'%'", store.Postgres: "DROP ROLE IF EXISTS " + user}[d]
				if db, err := store.Open(ctx, adminURLOf(t, d)); err == nil {
					db.SQL.ExecContext(ctx, stmt) //nolint:errcheck // best effort
					db.Close()
				}
			})
			rawURL := map[store.Dialect]func(testing.TB) string{store.MySQL: testenv.MySQLURL, store.Postgres: testenv.PostgresURL}[d](t)
			admin, err := store.Open(ctx, rawURL)
			require.NoError(t, err)
			t.Cleanup(func() { admin.Close() })
			require.NoError(t, admin.CreateSchema(ctx))
			require.NoError(t, demo.Seed(ctx, admin))
			u, err := url.Parse(rawURL)
			require.NoError(t, err)
			dbName := strings.TrimPrefix(u.Path, "/")

			var grants []string
			var grantDelete string
			switch d {
			case store.MySQL:
				grants = []string{
					"CREATE USER '" + user + "'@'%' IDENTIFIED BY 'pw'",
					"GRANT SELECT, INSERT, UPDATE, CREATE ON `" + dbName + "`.* TO '" + user + "'@'%'",
				}
				for _, tb := range append(store.OpenEdXTables, store.OwnTables...) {
					if tb.Name != "student_courseaccessrole" {
						grants = append(grants, "GRANT DELETE ON `"+dbName+"`.`"+tb.Name+"` TO '"+user+"'@'%'")
					}
				}
				grantDelete = "GRANT DELETE ON `" + dbName + "`.`student_courseaccessrole` TO '" + user + "'@'%'"
			case store.Postgres:
				grants = []string{
					"CREATE ROLE " + user + " LOGIN PASSWORD 'pw'",
					"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + user,
					"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO " + user,
					"REVOKE DELETE ON student_courseaccessrole FROM " + user,
				}
				grantDelete = "GRANT DELETE ON student_courseaccessrole TO " + user
			}
			for _, g := range grants {
				_, err := admin.SQL.ExecContext(ctx, g)
				require.NoError(t, err, g)
			}
			u.User = url.UserPassword(user, "pw")
			restricted := u.String()

			r := runBinary(t, nil, "migrate", "--org-id", "DemoX", "--delete", "--force", "--database-url", restricted)
			require.Equal(t, 1, r.code, r.stdout+r.stderr)
			require.Contains(t, r.stderr, "lacks privileges the service needs: DELETE on student_courseaccessrole (docs/operations.md")
			require.NotContains(t, r.stderr, "pw@", "the password stays masked")
			r = runBinary(t, nil, "runs", "list", "--database-url", restricted)
			require.Zero(t, r.code, "read-only commands need SELECT only: %s", r.stderr)
			require.Equal(t, "no runs\n", r.stdout, "nothing was run")

			_, err = admin.SQL.ExecContext(ctx, grantDelete)
			require.NoError(t, err)
			r = runBinary(t, nil, "migrate", "--org-id", "DemoX", "--delete", "--force", "--database-url", restricted)
			require.Zero(t, r.code, r.stdout+r.stderr)
			require.Regexp(t, `run 1 +forward +org +DemoX +partial_success`, r.stdout)
		})
	}
}

// adminURLOf is the test server's admin URL of dialect d.
func adminURLOf(t *testing.T, d store.Dialect) string {
	if d == store.MySQL {
		return strings.TrimSuffix(os.Getenv(testenv.EnvMySQLURL), "/") + "/mysql"
	}
	return os.Getenv(testenv.EnvPostgresURL)
}

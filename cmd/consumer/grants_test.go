package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

// An account without a privilege the service needs is refused at start,
// naming what is missing; granted it, the same command runs.
func TestMissingGrantIsNamedAtStart(t *testing.T) {
	for _, d := range testenv.Servers() {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rawURL := d.URL(t)
			admin, err := store.Open(ctx, rawURL)
			require.NoError(t, err)
			t.Cleanup(func() { admin.Close() })
			require.NoError(t, admin.CreateSchema(ctx))
			require.NoError(t, demo.Seed(ctx, admin))
			restricted, grantDelete := testenv.Account(t, rawURL, store.LegacyRoleTable)

			r := runBinary(t, nil, "migrate", "--org-id", "DemoX", "--delete", "--force", "--database-url", restricted)
			require.Equal(t, 1, r.code, r.stdout+r.stderr)
			require.Contains(t, r.stderr, "lacks privileges the service needs: DELETE on student_courseaccessrole (docs/operations.md")
			require.NotContains(t, r.stderr, "pw@", "the password stays masked")
			r = runBinary(t, nil, "runs", "list", "--database-url", restricted)
			require.Zero(t, r.code, "read-only commands need SELECT only: %s", r.stderr)
			require.Equal(t, "no runs\n", r.stdout, "nothing was run")

			grantDelete()
			r = runBinary(t, nil, "migrate", "--org-id", "DemoX", "--delete", "--force", "--database-url", restricted)
			require.Zero(t, r.code, r.stdout+r.stderr)
			require.Regexp(t, `run 1 +forward +org +DemoX +partial_success`, r.stdout)
		})
	}
}

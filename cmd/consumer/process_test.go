package main

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

// Two consumer processes migrate the same org at once, on each database:
// the org's advisory lock serializes them, every legacy row moves exactly
// once, and one of the runs finds nothing left to move.
func TestTwoProcessesOnOneOrgSerialize(t *testing.T) {
	bin := consumerBinary(t)

	for name, url := range map[string]func(testing.TB) string{"sqlite": testenv.SQLiteURL, "mysql": testenv.MySQLURL, "postgres": testenv.PostgresURL} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			u := url(t)
			db, err := store.Open(ctx, u)
			require.NoError(t, err)
			defer db.Close()
			require.NoError(t, db.CreateSchema(ctx))
			var roles []demo.Role
			for i := 0; i < 300; i++ {
				roles = append(roles, demo.Role{Username: fmt.Sprintf("p%03d", i), Org: "ProcX",
					CourseID: fmt.Sprintf("course-v1:ProcX+C%d+2026", i%7), Role: "staff"})
			}
			require.NoError(t, demo.AddRoles(ctx, db, roles...))

			var wg sync.WaitGroup
			outs := make([]string, 2)
			errs := make([]error, len(outs))
			for i := range outs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cmd := exec.Command(bin, "migrate", "--org-id", "ProcX", "--delete", "--force", "--database-url", u)
					b, err := cmd.CombinedOutput()
					outs[i], errs[i] = string(b), err // checked below, not from this goroutine
				}()
			}
			wg.Wait()
			for i, err := range errs {
				require.NoError(t, err, outs[i])
			}
			var moved []int
			require.NoError(t, rowsInto(ctx, db, "SELECT COUNT(*) FROM casbin_rule WHERE ptype = 'g'", &moved))
			require.Equal(t, []int{300}, moved, "every row once: %v", outs)
			var legacy []int
			require.NoError(t, rowsInto(ctx, db, "SELECT COUNT(*) FROM student_courseaccessrole WHERE org = 'ProcX'", &legacy))
			require.Equal(t, []int{0}, legacy)
			joined := outs[0] + outs[1]
			require.Contains(t, joined, "moved 300 of 300")
			require.Contains(t, joined, "moved 0 of 0")
		})
	}
}

func rowsInto(ctx context.Context, db *store.DB, q string, out *[]int) error {
	rows, err := db.SQL.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			return err
		}
		*out = append(*out, n)
	}
	return rows.Err()
}

package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

// The driver suite: every driver method, on every database, against the
// real server (the SQLite file runs under -short too). It works on the
// real tables (CreateSchema), so it sees their real keys and collations.

// eachDriver runs fn on a fresh database with the schema of every
// supported database.
func eachDriver(t *testing.T, fn func(t *testing.T, d testenv.Database, db *store.DB)) {
	for _, d := range testenv.Databases {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			url := d.URL(t)
			db, err := store.Open(ctx, url)
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			require.NoError(t, db.CreateSchema(ctx))
			fn(t, d, db)
		})
	}
}

func TestDriverInsertKeepExisting(t *testing.T) {
	eachDriver(t, func(t *testing.T, d testenv.Database, db *store.DB) {
		ctx := context.Background()
		cols := []string{"user_id", "org", "course_id", "role"}
		const conflict = "user_id, org, course_id, role"
		// More rows than one statement takes on any database.
		n := db.RowsPerStatement(len(cols)) + 7
		users := make([][]any, n+1)
		for i := range users {
			users[i] = []any{"!", false, fmt.Sprintf("u%d", i), "", "", "", false, true, time.Now().UTC()}
		}
		uids, err := db.InsertIDs(ctx, db.SQL, store.UserTable,
			[]string{"password", "is_superuser", "username", "first_name", "last_name", "email", "is_staff", "is_active", "date_joined"}, users)
		require.NoError(t, err)
		var rows [][]any
		for i := range n {
			rows = append(rows, []any{uids[i], "OrgX", fmt.Sprintf("course-v1:OrgX+C%d+2024", i), "staff"})
		}
		require.NoError(t, db.InsertKeepExisting(ctx, db.SQL, store.LegacyRoleTable, cols, conflict, rows))
		require.Equal(t, n, count(t, db, store.LegacyRoleTable, ""))

		// Again, with a new row, an existing one and the existing one in
		// another spelling: what exists is kept (not duplicated, not an
		// error); the other spelling is the same key where the database
		// folds case.
		again := [][]any{rows[0], {uids[0], "orgx", "course-v1:OrgX+C0+2024", "staff"}, {uids[n], "OrgY", "", "instructor"}}
		require.NoError(t, db.InsertKeepExisting(ctx, db.SQL, store.LegacyRoleTable, cols, conflict, again))
		want := n + 2
		if d.FoldsCase {
			want = n + 1
		}
		require.Equal(t, want, count(t, db, store.LegacyRoleTable, ""))
		require.Equal(t, d.FoldsCase, db.FoldsCase())

		// Plain InsertRows refuses the same existing row: a duplicate.
		err = db.InsertRows(ctx, db.SQL, store.LegacyRoleTable, cols, rows[:1])
		require.Error(t, err)
		require.Equal(t, store.ErrDuplicate, db.Driver().Classify(err), "%v", err)
		require.Equal(t, store.ErrDuplicate, store.Classify(err))
		require.False(t, store.Transient(err))
	})
}

func TestDriverInsertIDs(t *testing.T) {
	eachDriver(t, func(t *testing.T, d testenv.Database, db *store.DB) {
		ctx := context.Background()
		tx, err := db.SQL.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer tx.Rollback()
		// Two statements' worth of rows, and ids already taken before.
		_, err = db.InsertID(ctx, tx, store.ScopeTable, []string{"external_key"}, "first")
		require.NoError(t, err)
		n := db.RowsPerStatement(1) + 5
		rows := make([][]any, n)
		for i := range rows {
			rows[i] = []any{fmt.Sprintf("course-v1:OrgX+C%05d+2024", n-i)} // keys in another order than ids
		}
		ids, err := db.InsertIDs(ctx, tx, store.ScopeTable, []string{"external_key"}, rows)
		require.NoError(t, err)
		require.Len(t, ids, n)
		got := map[int64]string{}
		res, err := tx.QueryContext(ctx, "SELECT id, external_key FROM "+store.ScopeTable)
		require.NoError(t, err)
		for res.Next() {
			var id int64
			var key string
			require.NoError(t, res.Scan(&id, &key))
			got[id] = key
		}
		require.NoError(t, res.Err())
		for i, id := range ids {
			require.Equal(t, rows[i][0], got[id], "id %d is row %d's", id, i)
		}

		// Rows of only an auto id.
		subjects, err := db.InsertIDs(ctx, tx, store.SubjectTable, nil, make([][]any, 3))
		require.NoError(t, err)
		require.Len(t, subjects, 3)
		require.True(t, sort.SliceIsSorted(subjects, func(i, j int) bool { return subjects[i] < subjects[j] }), "%v", subjects)
		require.NotEqual(t, subjects[0], subjects[1])
		require.NoError(t, tx.Commit())
		require.Equal(t, 3, count(t, db, store.SubjectTable, ""))
	})
}

// Paging reads every row exactly once, in id order, across pages that end
// in the middle of runs of equal rows and a last page that is exactly
// full; the pager runs inside the transaction as the engine's does.
func TestDriverPager(t *testing.T) {
	eachDriver(t, func(t *testing.T, d testenv.Database, db *store.DB) {
		ctx := context.Background()
		var rows [][]any
		for i := range 25 {
			subject := "user^same" // ties: the same row again and again
			if i%4 == 0 {
				subject = fmt.Sprintf("user^u%d", i)
			}
			rows = append(rows, []any{"created", subject, "role^course_staff", "course-v1^K", time.Now().UTC()})
		}
		rows = append(rows, []any{"deleted", "user^other", "role^course_staff", "course-v1^K", time.Now().UTC()})
		ids, err := db.InsertIDs(ctx, db.SQL, store.AuditTable, []string{"operation", "subject", "role", "scope", "timestamp"}, rows)
		require.NoError(t, err)
		want := ids[:25]

		for _, size := range []int{5, 7, 100} {
			tx, err := db.SQL.BeginTx(ctx, nil)
			require.NoError(t, err)
			p := db.Driver().Pager(tx, store.Page{Name: fmt.Sprintf("audit_%d", size),
				Query: "SELECT id, subject FROM " + store.AuditTable + " WHERE operation = ?", Args: []any{"created"}, IDCol: "id", Size: size})
			var got []int64
			pages := 0
			for {
				res, err := p.Next(ctx)
				require.NoError(t, err)
				var last int64
				inPage := 0
				for res.Next() {
					var subject string
					require.NoError(t, res.Scan(&last, &subject))
					got = append(got, last)
					inPage++
				}
				require.NoError(t, res.Err())
				res.Close()
				require.LessOrEqual(t, inPage, size)
				if inPage == 0 {
					break
				}
				pages++
				p.Advance(last)
			}
			p.Close(ctx)
			require.Equal(t, want, got, "page size %d", size)
			require.Equal(t, (25+size-1)/size, pages, "page size %d", size)
			require.NoError(t, tx.Commit())
		}
	})
}

// A snapshot transaction does not see what another session commits after
// its first read.
func TestDriverSnapshotTx(t *testing.T) {
	eachDriver(t, func(t *testing.T, d testenv.Database, db *store.DB) {
		ctx := context.Background()
		insert := func(key string) {
			_, err := db.InsertID(ctx, db.SQL, store.ScopeTable, []string{"external_key"}, key)
			require.NoError(t, err)
		}
		insert("a")
		tx, err := db.SQL.BeginTx(ctx, db.Driver().SnapshotTx())
		require.NoError(t, err)
		defer tx.Rollback()
		var n int
		require.NoError(t, tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+store.ScopeTable).Scan(&n))
		require.Equal(t, 1, n)
		insert("b")
		require.NoError(t, tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+store.ScopeTable).Scan(&n))
		require.Equal(t, 1, n, "one snapshot")
		_, err = tx.ExecContext(ctx, db.Rebind("INSERT INTO "+store.ScopeTable+" (external_key) VALUES (?)"), "c")
		require.Error(t, err, "read-only")
	})
}

// The SQL fragments the tests and the benchmark use read the same on
// every database.
func TestDriverSQLFragments(t *testing.T) {
	eachDriver(t, func(t *testing.T, d testenv.Database, db *store.DB) {
		ctx := context.Background()
		drv := db.Driver()
		var s string
		require.NoError(t, db.SQL.QueryRowContext(ctx, db.Rebind("SELECT "+drv.Concat("?", "'-'", "?")), "a", "b").Scan(&s))
		require.Equal(t, "a-b", s)
		_, err := db.SQL.ExecContext(ctx, db.Rebind("INSERT INTO "+store.RunTable+
			" (migration_type, scope_type, scope_key, status, created_at, updated_at, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"),
			"forward", "org", "OrgX", "completed", time.Now().UTC(), time.Now().UTC(), `{"trigger": "manual", "n": 1}`)
		require.NoError(t, err)
		require.NoError(t, db.SQL.QueryRowContext(ctx, "SELECT "+drv.JSONText("metadata", "trigger")+" FROM "+store.RunTable).Scan(&s))
		require.Equal(t, "manual", s)
		var names []string
		res, err := db.SQL.QueryContext(ctx, drv.TablesQuery())
		require.NoError(t, err)
		for res.Next() {
			require.NoError(t, res.Scan(&s))
			names = append(names, s)
		}
		require.NoError(t, res.Err())
		for _, tb := range append(append([]store.Table{}, store.OpenEdXTables...), store.OwnTables...) {
			require.Contains(t, names, tb.Name)
			require.NoError(t, db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+drv.QuoteIdent(tb.Name)).Scan(new(int)))
		}
	})
}

// Errors induced on the real servers are classified by the driver that
// returned them, and by store.Classify.
func TestDriverClassify(t *testing.T) {
	induce := map[string]map[store.ErrorKind]func(t *testing.T, db *store.DB) error{
		"sqlite": {
			store.ErrBusy: func(t *testing.T, db *store.DB) error {
				path, err := store.SQLitePath(db.URL)
				require.NoError(t, err)
				// A second pool that does not wait for the writer.
				pool, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)&_txlock=immediate")
				require.NoError(t, err)
				impatient, err := store.Wrap(context.Background(), pool, db.URL)
				require.NoError(t, err)
				defer impatient.Close()
				tx, err := db.SQL.BeginTx(context.Background(), nil)
				require.NoError(t, err)
				defer tx.Rollback()
				_, err = impatient.SQL.BeginTx(context.Background(), nil)
				return err
			},
		},
		"mysql": {
			store.ErrLockWait: func(t *testing.T, db *store.DB) error {
				return lockWait(t, db, "SET SESSION innodb_lock_wait_timeout = 1", "SET SESSION innodb_lock_wait_timeout = DEFAULT")
			},
			store.ErrDeadlock: func(t *testing.T, db *store.DB) error { return deadlockOn(t, db) },
			store.ErrConnection: func(t *testing.T, db *store.DB) error {
				return killed(t, db)
			},
		},
		"postgres": {
			store.ErrLockWait: func(t *testing.T, db *store.DB) error {
				return lockWait(t, db, "SET lock_timeout = '200ms'", "RESET lock_timeout")
			},
			store.ErrDeadlock: func(t *testing.T, db *store.DB) error { return deadlockOn(t, db) },
			store.ErrSerialization: func(t *testing.T, db *store.DB) error {
				ctx := context.Background()
				seedScopes(t, db)
				opts := &sql.TxOptions{Isolation: sql.LevelRepeatableRead}
				a, err := db.SQL.BeginTx(ctx, opts)
				require.NoError(t, err)
				defer a.Rollback()
				require.NoError(t, a.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+store.ScopeTable).Scan(new(int))) // a's snapshot
				_, err = db.SQL.ExecContext(ctx, "UPDATE "+store.ScopeTable+" SET external_key = 'x1' WHERE id = 1")
				require.NoError(t, err)
				_, err = a.ExecContext(ctx, "UPDATE "+store.ScopeTable+" SET external_key = 'y1' WHERE id = 1")
				return err
			},
			store.ErrConnection: func(t *testing.T, db *store.DB) error { return killed(t, db) },
		},
	}
	eachDriver(t, func(t *testing.T, d testenv.Database, db *store.DB) {
		for kind, fn := range induce[d.Name] {
			t.Run(kind.String(), func(t *testing.T) {
				err := fn(t, db)
				require.Error(t, err)
				t.Logf("%T: %v", err, err)
				require.Equal(t, kind, db.Driver().Classify(err), "%v", err)
				wrapped := fmt.Errorf("forward course K: %w", err)
				require.Equal(t, kind, db.Driver().Classify(wrapped))
				require.Equal(t, kind, store.Classify(wrapped))
				require.True(t, store.Transient(wrapped))
			})
		}
		t.Run("other", func(t *testing.T) {
			_, err := db.SQL.ExecContext(context.Background(), "SELECT missing FROM "+store.ScopeTable)
			require.Error(t, err)
			require.Equal(t, store.ErrOther, db.Driver().Classify(err))
			require.False(t, store.Transient(err))
			require.Equal(t, store.ErrOther, db.Driver().Classify(errors.New("course key K is not valid")))
			require.Equal(t, store.ErrCanceled, db.Driver().Classify(context.Canceled))
		})
	})
}

// seedScopes makes scope rows 1 and 2.
func seedScopes(t *testing.T, db *store.DB) {
	t.Helper()
	_, err := db.SQL.ExecContext(context.Background(), "DELETE FROM "+store.ScopeTable)
	require.NoError(t, err)
	require.NoError(t, db.InsertRows(context.Background(), db.SQL, store.ScopeTable, []string{"id", "external_key"}, [][]any{{1, "k1"}, {2, "k2"}}))
}

// lockWait holds row 1 in one transaction and updates it from another
// session whose lock wait is cut short by setTimeout (reset after).
func lockWait(t *testing.T, db *store.DB, setTimeout, reset string) error {
	ctx := context.Background()
	seedScopes(t, db)
	holder, err := db.SQL.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer holder.Rollback()
	_, err = holder.ExecContext(ctx, "UPDATE "+store.ScopeTable+" SET external_key = 'h1' WHERE id = 1")
	require.NoError(t, err)
	waiter := conn(t, db.SQL)
	_, err = waiter.ExecContext(ctx, setTimeout)
	require.NoError(t, err)
	_, waitErr := waiter.ExecContext(ctx, "UPDATE "+store.ScopeTable+" SET external_key = 'w1' WHERE id = 1")
	_, err = waiter.ExecContext(ctx, reset)
	require.NoError(t, err)
	return waitErr
}

func deadlockOn(t *testing.T, db *store.DB) error {
	seedScopes(t, db)
	return deadlock(t, db.SQL, db.Rebind("UPDATE "+store.ScopeTable+" SET external_key = external_key WHERE id = ?"))
}

// killed is the error of a statement on a connection whose session was
// killed.
func killed(t *testing.T, db *store.DB) error {
	c := conn(t, db.SQL)
	testenv.Kill(t, db, testenv.SessionID(t, db, c))
	return c.QueryRowContext(context.Background(), "SELECT 1").Scan(new(int))
}

func count(t *testing.T, db *store.DB, table, where string) int {
	t.Helper()
	q := "SELECT COUNT(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	var n int
	require.NoError(t, db.SQL.QueryRowContext(context.Background(), q).Scan(&n))
	return n
}

package store_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	sqlite "github.com/glebarez/go-sqlite"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

// Every error classified here was produced by a real server or by the
// SQLite library: what the engine sees when it goes wrong in production.

// requireTransient checks that err is the driver error with code (the
// MySQL error number, the PostgreSQL SQLSTATE or the SQLite primary result
// code; "" for errors without one), and classifies it bare and wrapped as
// the engine wraps it.
func requireTransient(t *testing.T, want bool, what, code string, err error) {
	t.Helper()
	require.Error(t, err, what)
	t.Logf("%s: %T: %v", what, err, err)
	require.Equal(t, code, codeOf(err), "%s: %v", what, err)
	require.Equal(t, want, store.Transient(err), "%s: %v", what, err)
	require.Equal(t, want, store.Transient(fmt.Errorf("forward course K: %w", err)), "%s wrapped: %v", what, err)
}

func codeOf(err error) string {
	var (
		my  *mysql.MySQLError
		pg  *pgconn.PgError
		lit *sqlite.Error
	)
	switch {
	case errors.As(err, &my):
		return strconv.Itoa(int(my.Number))
	case errors.As(err, &pg):
		return pg.Code
	case errors.As(err, &lit):
		return strconv.Itoa(lit.Code() & 0xff)
	}
	return ""
}

func TestTransientSQLite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "errors.db")
	// Two pools without a busy timeout, so a busy database answers at once.
	open := func() *sql.DB {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)&_pragma=journal_mode(WAL)&_txlock=immediate")
		require.NoError(t, err)
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()
	_, err := a.ExecContext(ctx, "CREATE TABLE t (id integer PRIMARY KEY, v integer NOT NULL)")
	require.NoError(t, err)
	_, err = a.ExecContext(ctx, "INSERT INTO t (id, v) VALUES (1, 0), (2, 0)")
	require.NoError(t, err)

	t.Run("busy: another connection holds the write lock", func(t *testing.T) {
		tx, err := a.BeginTx(ctx, nil) // BEGIN IMMEDIATE
		require.NoError(t, err)
		defer tx.Rollback()
		_, err = b.BeginTx(ctx, nil)
		requireTransient(t, true, "SQLITE_BUSY", "5", err)
	})

	t.Run("locked: a table in use by the same connection", func(t *testing.T) {
		conn, err := a.Conn(ctx)
		require.NoError(t, err)
		defer conn.Close()
		_, err = conn.ExecContext(ctx, "CREATE TABLE doomed (id integer)")
		require.NoError(t, err)
		_, err = conn.ExecContext(ctx, "INSERT INTO doomed VALUES (1), (2)")
		require.NoError(t, err)
		rows, err := conn.QueryContext(ctx, "SELECT id FROM doomed")
		require.NoError(t, err)
		require.True(t, rows.Next())
		_, err = conn.ExecContext(ctx, "DROP TABLE doomed")
		rows.Close()
		requireTransient(t, true, "SQLITE_LOCKED", "6", err)
	})

	t.Run("permanent", func(t *testing.T) {
		_, err := a.ExecContext(ctx, "SELEC 1")
		requireTransient(t, false, "syntax error", "1", err)
		_, err = a.ExecContext(ctx, "INSERT INTO t (id, v) VALUES (1, 0)")
		requireTransient(t, false, "unique violation", "19", err)
		_, err = a.ExecContext(ctx, "SELECT missing FROM t")
		requireTransient(t, false, "no such column", "1", err)
	})
}

func TestTransientMariaDB(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rawURL := testenv.MySQLURL(t)
	db, err := store.Open(ctx, rawURL)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	_, err = db.SQL.ExecContext(ctx, "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, s varchar(255) NULL) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
	require.NoError(t, err)
	_, err = db.SQL.ExecContext(ctx, "INSERT INTO t (id, v) VALUES (1, 0), (2, 0)")
	require.NoError(t, err)

	t.Run("lock wait timeout", func(t *testing.T) {
		holder, err := db.SQL.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer holder.Rollback()
		_, err = holder.ExecContext(ctx, "UPDATE t SET v = v + 1 WHERE id = 1")
		require.NoError(t, err)
		_, err = db.SQL.ExecContext(ctx, "SET STATEMENT innodb_lock_wait_timeout = 1 FOR UPDATE t SET v = v + 1 WHERE id = 1")
		requireTransient(t, true, "lock wait timeout", "1205", err)
	})

	t.Run("deadlock", func(t *testing.T) {
		requireTransient(t, true, "deadlock", "1213", deadlock(t, db.SQL, "UPDATE t SET v = v + 1 WHERE id = ?"))
	})

	t.Run("connection killed between statements", func(t *testing.T) {
		victim := conn(t, db.SQL)
		var id int64
		require.NoError(t, victim.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id))
		_, err := db.SQL.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id))
		require.NoError(t, err)
		_, err = victim.ExecContext(ctx, "UPDATE t SET v = v + 1 WHERE id = 2")
		requireTransient(t, true, "killed connection, next statement", "", err)
		require.ErrorIs(t, err, mysql.ErrInvalidConn)
	})

	t.Run("connection killed during a statement", func(t *testing.T) {
		victim := conn(t, db.SQL)
		var id int64
		require.NoError(t, victim.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id))
		done := make(chan error, 1)
		go func() {
			_, err := victim.ExecContext(ctx, "SELECT SLEEP(30)")
			done <- err
		}()
		waitFor(t, "the statement to run", func() bool {
			var n int
			err := db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.processlist WHERE id = ? AND info LIKE 'SELECT SLEEP%'", id).Scan(&n)
			return err == nil && n == 1
		})
		_, err := db.SQL.ExecContext(ctx, fmt.Sprintf("KILL CONNECTION %d", id))
		require.NoError(t, err)
		err = <-done
		requireTransient(t, true, "killed connection, running statement", "", err)
		require.ErrorIs(t, err, mysql.ErrInvalidConn)
	})

	t.Run("account connection limit", func(t *testing.T) {
		user := "authz_t_lim_" + randomHex(t)
		_, err := db.SQL.ExecContext(ctx, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'pw' WITH MAX_USER_CONNECTIONS 1", user))
		require.NoError(t, err)
		t.Cleanup(func() { db.SQL.ExecContext(context.Background(), fmt.Sprintf("DROP USER '%s'@'%%'", user)) })
		u, err := url.Parse(rawURL)
		require.NoError(t, err)
		u.User = url.UserPassword(user, "pw")
		u.Path = "/"
		first := store.MySQLConfig(u)
		limited, err := sql.Open("mysql", first.FormatDSN())
		require.NoError(t, err)
		defer limited.Close()
		c1 := conn(t, limited)
		require.NoError(t, c1.PingContext(ctx))
		_, err = limited.Conn(ctx)
		requireTransient(t, true, "too many connections of the account", "1226", err)
	})

	t.Run("account locked", func(t *testing.T) {
		user := "authz_t_lock_" + randomHex(t)
		_, err := db.SQL.ExecContext(ctx, fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'pw' ACCOUNT LOCK", user))
		require.NoError(t, err)
		t.Cleanup(func() { db.SQL.ExecContext(context.Background(), fmt.Sprintf("DROP USER '%s'@'%%'", user)) })
		u, err := url.Parse(rawURL)
		require.NoError(t, err)
		u.User = url.UserPassword(user, "pw")
		u.Path = "/"
		locked, err := sql.Open("mysql", store.MySQLConfig(u).FormatDSN())
		require.NoError(t, err)
		defer locked.Close()
		requireTransient(t, true, "account locked", "4151", locked.PingContext(ctx))
		u.User = url.UserPassword(user, "wrong")
		wrong, err := sql.Open("mysql", store.MySQLConfig(u).FormatDSN())
		require.NoError(t, err)
		defer wrong.Close()
		requireTransient(t, true, "access denied", "1045", wrong.PingContext(ctx))
	})

	t.Run("server not listening", func(t *testing.T) {
		u, err := url.Parse(rawURL)
		require.NoError(t, err)
		u.Host = closedPort(t)
		cfg := store.MySQLConfig(u)
		refused, err := sql.Open("mysql", cfg.FormatDSN())
		require.NoError(t, err)
		defer refused.Close()
		err = refused.PingContext(ctx)
		requireTransient(t, true, "connection refused", "", err)
		var netErr *net.OpError
		require.ErrorAs(t, err, &netErr)
	})

	t.Run("permanent", func(t *testing.T) {
		_, err := db.SQL.ExecContext(ctx, "SELEC 1")
		requireTransient(t, false, "syntax error", "1064", err)
		_, err = db.SQL.ExecContext(ctx, "INSERT INTO t (id, v) VALUES (1, 0)")
		requireTransient(t, false, "duplicate key", "1062", err)
		_, err = db.SQL.ExecContext(ctx, "SELECT missing FROM t")
		requireTransient(t, false, "unknown column", "1054", err)
		_, err = db.SQL.ExecContext(ctx, "INSERT INTO t (id, v, s) VALUES (?, 0, ?)", 3, "a\xff\xfeb")
		requireTransient(t, false, "invalid UTF-8", "1366", err)
		_, err = db.SQL.ExecContext(ctx, "INSERT INTO t (id, v, s) VALUES (?, 0, ?)", 3, strings.Repeat("x", 300))
		requireTransient(t, false, "too long for varchar(255)", "1406", err)
	})
}

func TestTransientPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rawURL := testenv.PostgresURL(t)
	db, err := store.Open(ctx, rawURL)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	_, err = db.SQL.ExecContext(ctx, "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, s varchar(255) NULL)")
	require.NoError(t, err)
	_, err = db.SQL.ExecContext(ctx, "INSERT INTO t (id, v) VALUES (1, 0), (2, 0)")
	require.NoError(t, err)

	t.Run("lock not available", func(t *testing.T) {
		holder, err := db.SQL.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer holder.Rollback()
		_, err = holder.ExecContext(ctx, "UPDATE t SET v = v + 1 WHERE id = 1")
		require.NoError(t, err)
		waiter, err := db.SQL.BeginTx(ctx, nil)
		require.NoError(t, err)
		defer waiter.Rollback()
		_, err = waiter.ExecContext(ctx, "SET LOCAL lock_timeout = '200ms'")
		require.NoError(t, err)
		_, err = waiter.ExecContext(ctx, "UPDATE t SET v = v + 1 WHERE id = 1")
		requireTransient(t, true, "lock_not_available", "55P03", err)
	})

	t.Run("deadlock", func(t *testing.T) {
		requireTransient(t, true, "deadlock_detected", "40P01", deadlock(t, db.SQL, "UPDATE t SET v = v + 1 WHERE id = $1"))
	})

	t.Run("serialization failure", func(t *testing.T) {
		tx, err := db.SQL.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead})
		require.NoError(t, err)
		defer tx.Rollback()
		var v int
		require.NoError(t, tx.QueryRowContext(ctx, "SELECT v FROM t WHERE id = 2").Scan(&v))
		_, err = db.SQL.ExecContext(ctx, "UPDATE t SET v = v + 1 WHERE id = 2")
		require.NoError(t, err)
		_, err = tx.ExecContext(ctx, "UPDATE t SET v = v + 1 WHERE id = 2")
		requireTransient(t, true, "serialization_failure", "40001", err)
	})

	t.Run("backend terminated between statements", func(t *testing.T) {
		victim := conn(t, db.SQL)
		var pid int
		require.NoError(t, victim.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid))
		var ok bool
		require.NoError(t, db.SQL.QueryRowContext(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok))
		require.True(t, ok)
		_, err := victim.ExecContext(ctx, "UPDATE t SET v = v + 1 WHERE id = 2")
		requireTransient(t, true, "pg_terminate_backend, next statement", "57P01", err)
	})

	t.Run("backend terminated during a statement", func(t *testing.T) {
		victim := conn(t, db.SQL)
		var pid int
		require.NoError(t, victim.QueryRowContext(ctx, "SELECT pg_backend_pid()").Scan(&pid))
		done := make(chan error, 1)
		go func() {
			_, err := victim.ExecContext(ctx, "SELECT pg_sleep(30)")
			done <- err
		}()
		waitFor(t, "the statement to run", func() bool {
			var n int
			err := db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1 AND query LIKE 'SELECT pg_sleep%' AND state = 'active'", pid).Scan(&n)
			return err == nil && n == 1
		})
		var ok bool
		require.NoError(t, db.SQL.QueryRowContext(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok))
		requireTransient(t, true, "pg_terminate_backend, running statement", "57P01", <-done)
	})

	t.Run("role connection limit", func(t *testing.T) {
		role := "authz_t_lim_" + randomHex(t)
		_, err := db.SQL.ExecContext(ctx, fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD 'pw' CONNECTION LIMIT 1", role))
		require.NoError(t, err)
		u, err := url.Parse(rawURL)
		require.NoError(t, err)
		u.User = url.UserPassword(role, "pw")
		limited, err := sql.Open("pgx", u.String())
		require.NoError(t, err)
		t.Cleanup(func() {
			limited.Close()
			db.SQL.ExecContext(context.Background(), "DROP ROLE IF EXISTS "+role)
		})
		c1 := conn(t, limited)
		require.NoError(t, c1.PingContext(ctx))
		_, err = limited.Conn(ctx)
		requireTransient(t, true, "too_many_connections", "53300", err)
	})

	t.Run("role may not log in", func(t *testing.T) {
		role := "authz_t_nologin_" + randomHex(t)
		_, err := db.SQL.ExecContext(ctx, fmt.Sprintf("CREATE ROLE %s NOLOGIN PASSWORD 'pw'", role))
		require.NoError(t, err)
		t.Cleanup(func() { db.SQL.ExecContext(context.Background(), "DROP ROLE IF EXISTS "+role) })
		u, err := url.Parse(rawURL)
		require.NoError(t, err)
		u.User = url.UserPassword(role, "pw")
		refused, err := sql.Open("pgx", u.String())
		require.NoError(t, err)
		defer refused.Close()
		requireTransient(t, true, "role not permitted to log in", "28000", refused.PingContext(ctx))
	})

	t.Run("server not listening", func(t *testing.T) {
		u, err := url.Parse(rawURL)
		require.NoError(t, err)
		u.Host = closedPort(t)
		refused, err := sql.Open("pgx", u.String())
		require.NoError(t, err)
		defer refused.Close()
		err = refused.PingContext(ctx)
		requireTransient(t, true, "connection refused", "", err)
		var connErr *pgconn.ConnectError
		require.ErrorAs(t, err, &connErr)
	})

	t.Run("permanent", func(t *testing.T) {
		_, err := db.SQL.ExecContext(ctx, "SELEC 1")
		requireTransient(t, false, "syntax_error", "42601", err)
		_, err = db.SQL.ExecContext(ctx, "INSERT INTO t (id, v) VALUES (1, 0)")
		requireTransient(t, false, "unique_violation", "23505", err)
		_, err = db.SQL.ExecContext(ctx, "SELECT missing FROM t")
		requireTransient(t, false, "undefined_column", "42703", err)
		_, err = db.SQL.ExecContext(ctx, "INSERT INTO t (id, v, s) VALUES ($1, 0, $2)", 3, "a\x00b")
		requireTransient(t, false, "NUL in text", "22021", err)
		_, err = db.SQL.ExecContext(ctx, "INSERT INTO t (id, v, s) VALUES ($1, 0, $2)", 3, strings.Repeat("x", 300))
		requireTransient(t, false, "too long for varchar(255)", "22001", err)
	})
}

// The errors of the Go standard library that mean "try again".
func TestTransientWithoutDriver(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done()
	_, dialErr := net.DialTimeout("tcp", closedPort(t), time.Second)
	for what, err := range map[string]error{
		"deadline": ctx.Err(), "io.EOF": io.EOF, "unexpected EOF": io.ErrUnexpectedEOF,
		"dial": dialErr, "conn done": sql.ErrConnDone,
	} {
		requireTransient(t, true, what, "", err)
	}
	require.False(t, store.Transient(nil))
	requireTransient(t, false, "plain error", "", errors.New("course key K is not valid"))
	requireTransient(t, false, "no rows", "", sql.ErrNoRows)
}

// deadlock makes two transactions wait for each other's row and returns
// the error of the one the server picked as the victim.
func deadlock(t *testing.T, db *sql.DB, update string) error {
	t.Helper()
	ctx := context.Background()
	a, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer a.Rollback()
	b, err := db.BeginTx(ctx, nil)
	require.NoError(t, err)
	defer b.Rollback()
	_, err = a.ExecContext(ctx, update, 1)
	require.NoError(t, err)
	_, err = b.ExecContext(ctx, update, 2)
	require.NoError(t, err)
	var (
		wg   sync.WaitGroup
		errA error
	)
	wg.Add(1)
	// Whichever statement reaches the server first waits for the other's
	// row; the second closes the cycle. PostgreSQL keeps an aborted
	// transaction's locks until it rolls back, so the victim does at once.
	go func() {
		defer wg.Done()
		if _, errA = a.ExecContext(ctx, update, 2); errA != nil {
			a.Rollback()
		}
	}()
	_, errB := b.ExecContext(ctx, update, 1)
	if errB != nil {
		b.Rollback()
	}
	wg.Wait()
	require.True(t, (errA == nil) != (errB == nil), "exactly one victim: a=%v b=%v", errA, errB)
	return errors.Join(errA, errB)
}

// conn returns a dedicated connection, closed when the test ends.
func conn(t *testing.T, db *sql.DB) *sql.Conn {
	t.Helper()
	c, err := db.Conn(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// closedPort returns a 127.0.0.1 address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 4)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/murmur3"
)

// postgresDriver is PostgreSQL through pgx's database/sql driver.
type postgresDriver struct{}

func (postgresDriver) Dialect() Dialect              { return Postgres }
func (postgresDriver) FoldsCase() bool               { return false }
func (postgresDriver) SingleWriter() string          { return "" }
func (postgresDriver) QuoteIdent(name string) string { return quoteWith(`"`, name) }
func (postgresDriver) RowsPerStatement(cols int) int { return rowsFor(8000, cols) }
func (postgresDriver) Concat(parts ...string) string { return concatOperator(parts) }
func (postgresDriver) TablesQuery() string {
	return "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
}

func (postgresDriver) JSONText(col, field string) string { return col + "::jsonb->>'" + field + "'" }

// SnapshotTx reads one snapshot: REPEATABLE READ takes it at the first
// statement and keeps it.
func (postgresDriver) SnapshotTx() *sql.TxOptions {
	return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
}

// Rebind turns ? placeholders into $1, $2, ...
func (postgresDriver) Rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

func (postgresDriver) KeepExisting(conflict string) (verb, suffix string) {
	return "INSERT INTO", " ON CONFLICT (" + conflict + ") DO NOTHING"
}

func (d postgresDriver) InsertIDs(ctx context.Context, q Querier, table string, cols []string, rows [][]any) ([]int64, error) {
	return insertReturning(ctx, d, q, table, cols, rows, "(DEFAULT)")
}

// Pager streams one query through a SQL cursor: keyset pages would re-read
// and sort the whole scope for every page here.
func (d postgresDriver) Pager(q Querier, page Page) Pager {
	return &cursorPager{d: d, q: q, page: page, cursor: "authz_consumer_" + page.Name}
}

type cursorPager struct {
	d        Driver
	q        Querier
	page     Page
	cursor   string
	declared bool
}

func (p *cursorPager) Next(ctx context.Context) (*sql.Rows, error) {
	if !p.declared {
		stmt := "DECLARE " + p.cursor + " NO SCROLL CURSOR FOR " + p.page.Query + " ORDER BY " + p.page.IDCol
		if _, err := p.q.ExecContext(ctx, p.d.Rebind(stmt), p.page.Args...); err != nil {
			return nil, fmt.Errorf("declare cursor: %w", err)
		}
		p.declared = true
	}
	return p.q.QueryContext(ctx, fmt.Sprintf("FETCH %d FROM %s", p.page.Size, p.cursor))
}

func (p *cursorPager) Advance(int64) {}

func (p *cursorPager) Close(ctx context.Context) {
	if p.declared {
		_, _ = p.q.ExecContext(ctx, "CLOSE "+p.cursor)
	}
}

// postgresLockKey derives the 64-bit advisory lock key of a name with
// murmur3.
func postgresLockKey(name string) int64 {
	return int64(murmur3.StringSum64("authz_consumer:org:" + name))
}

// AcquireLock polls pg_try_advisory_lock with a growing backoff:
// pg_advisory_lock would wait without a limit of its own.
func (postgresDriver) AcquireLock(ctx context.Context, conn *sql.Conn, name string, wait time.Duration) (func(context.Context) error, error) {
	key := postgresLockKey(name)
	deadline := time.Now().Add(wait)
	backoff := 5 * time.Millisecond
	for {
		var got bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got); err != nil {
			return nil, fmt.Errorf("pg_try_advisory_lock(%d): %w", key, err)
		}
		if got {
			break
		}
		if !time.Now().Before(deadline) {
			return nil, ErrLockTimeout
		}
		if err := sleep(ctx, backoff); err != nil {
			return nil, err
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
	return func(ctx context.Context) error {
		var released bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", key).Scan(&released); err != nil {
			return fmt.Errorf("pg_advisory_unlock(%d): %w", key, err)
		}
		if !released {
			return fmt.Errorf("pg_advisory_unlock(%d): lock was not held by this connection", key)
		}
		return nil
	}, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (postgresDriver) LockHolder(ctx context.Context, conn *sql.Conn, name string) string {
	key := uint64(postgresLockKey(name))
	var (
		pid       int64
		user, app sql.NullString
		addr      sql.NullString
		heldFor   sql.NullFloat64
	)
	// A bigint advisory key shows in pg_locks as classid (high 32 bits),
	// objid (low 32 bits), objsubid 1.
	err := conn.QueryRowContext(ctx, `SELECT a.pid, a.usename, a.application_name, host(a.client_addr),
		EXTRACT(EPOCH FROM now() - COALESCE(a.xact_start, a.backend_start))
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.classid::bigint = $1 AND l.objid::bigint = $2`, int64(key>>32), int64(key&0xffffffff)).
		Scan(&pid, &user, &app, &addr, &heldFor)
	if err != nil {
		return ""
	}
	s := fmt.Sprintf("database backend pid %d (%s", pid, user.String)
	if addr.String != "" {
		s += "@" + addr.String
	}
	if app.String != "" {
		s += ", " + app.String
	}
	return s + fmt.Sprintf(", for %.0fs)", heldFor.Float64)
}

func (postgresDriver) Classify(err error) ErrorKind { return classifyWith(classifyPostgres, err) }

func classifyPostgres(err error) (ErrorKind, bool) {
	var e *pgconn.PgError
	if !errors.As(err, &e) {
		return ErrOther, false
	}
	switch e.Code {
	case "23505": // unique_violation
		return ErrDuplicate, true
	case "55P03": // lock_not_available (lock_timeout)
		return ErrLockWait, true
	case "40P01": // deadlock_detected
		return ErrDeadlock, true
	case "40001": // serialization_failure
		return ErrSerialization, true
	case "57P01", // admin_shutdown (pg_terminate_backend, a restart)
		"57P02": // crash_shutdown
		return ErrConnection, true
	case "53300", // too_many_connections
		"57P03", // cannot_connect_now (starting up, recovering)
		"25006": // read_only_sql_transaction (a standby during failover)
		return ErrUnavailable, true
	}
	switch {
	case strings.HasPrefix(e.Code, "08"): // connection_exception
		return ErrConnection, true
	case strings.HasPrefix(e.Code, "28"):
		// invalid_authorization_specification, refused at login (a role set
		// NOLOGIN, a password rotated), which for a service that logged in
		// at start is the database unavailable for a while.
		return ErrUnavailable, true
	}
	return ErrOther, true
}

func (postgresDriver) columnType(c Column) string {
	return map[ColType]string{Int: "integer", BigInt: "bigint", Text: "text", Bool: "boolean",
		DateTime: "timestamp with time zone", JSON: "jsonb", Decimal: "numeric", Blob: "bytea", UUID: "uuid",
		Varchar: fmt.Sprintf("character varying(%d)", c.Size)}[c.Type]
}

func (d postgresDriver) createTable(t Table) []string {
	return createTableWithIndexes(d, t, func(c Column) string {
		return d.columnType(c) + " NOT NULL GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"
	})
}

func (postgresDriver) columnsQuery() string {
	return `SELECT column_name, CASE WHEN data_type = 'character varying' THEN data_type || '(' || character_maximum_length || ')' ELSE data_type END, is_nullable = 'YES', ''
		FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?`
}

func (d postgresDriver) sameType(want Column, got string) bool { return got == d.columnType(want) }

// missingGrants asks has_table_privilege per table and privilege, and
// has_schema_privilege for CREATE.
func (postgresDriver) missingGrants(ctx context.Context, db *sql.DB, needCreate bool) ([]string, bool, error) {
	missing, err := lackedPrivileges(func(table, p string) (bool, error) {
		var ok sql.NullBool
		err := db.QueryRowContext(ctx, "SELECT CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE has_table_privilege($1, $2) END", table, p).Scan(&ok)
		if err != nil {
			return false, fmt.Errorf("check privileges on %s: %w", table, err)
		}
		return !ok.Valid || ok.Bool, nil // a missing table lacks nothing: schema check names it
	})
	if err != nil {
		return nil, false, err
	}
	if needCreate {
		var schema string
		var ok bool
		if err := db.QueryRowContext(ctx, "SELECT current_schema(), has_schema_privilege(current_schema(), 'CREATE')").Scan(&schema, &ok); err != nil {
			return nil, false, fmt.Errorf("check the CREATE privilege: %w", err)
		}
		if !ok {
			missing = append(missing, "CREATE on schema "+schema+" (to create the service's own tables)")
		}
	}
	return missing, false, nil
}

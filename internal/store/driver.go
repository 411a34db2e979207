package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Driver is everything that differs between the databases the service
// supports: one implementation per dialect (driver_sqlite.go,
// driver_mysql.go, driver_postgres.go), chosen by Open from the URL. Code
// above the store asks the driver and never names a dialect.
//
// The implementations live in this package, one file each, rather than in
// subpackages: they render this package's Table and Column definitions and
// DB hands them out, so subpackages would import store and store them,
// a cycle.
type Driver interface {
	// Dialect names the database family: for logs, the benchmark's tables
	// and the embedded Open edX DDL. Never branch on it above the store.
	Dialect() Dialect

	// Rebind turns the ? placeholders of query into the database's form.
	// Queries in this service are written with ?.
	Rebind(query string) string
	// RowsPerStatement is how many rows of cols columns one multi-row
	// statement carries at most.
	RowsPerStatement(cols int) int
	// FoldsCase reports whether the Open edX tables compare text ignoring
	// case (MySQL's _ci collations), so that `org = 'orgx'` also selects
	// OrgX rows. The service's own tables are case-sensitive everywhere.
	FoldsCase() bool

	// KeepExisting returns the verb and suffix of an INSERT that leaves out
	// rows whose unique key (conflict: its columns, comma separated)
	// already holds, compared as the database compares.
	KeepExisting(conflict string) (verb, suffix string)
	// InsertIDs inserts rows into table and returns their new ids in the
	// order of rows. With no columns it inserts rows of only an auto id.
	InsertIDs(ctx context.Context, q Querier, table string, cols []string, rows [][]any) ([]int64, error)

	// Pager reads page.Query's rows in id order, page by page, inside the
	// transaction q (keyset pages, or a SQL cursor where keyset pages would
	// re-sort the scope for every page).
	Pager(q Querier, page Page) Pager
	// SnapshotTx is the options of a read-only transaction that reads one
	// snapshot of the whole database.
	SnapshotTx() *sql.TxOptions

	// SingleWriter names the database's one write lock, as an operator
	// waiting for it is told ("SQLite's write lock"), when the database has
	// one instead of advisory locks: every transaction takes it at BEGIN,
	// so it is the lock of every run, and AcquireLock does nothing. "" when
	// the database has advisory locks.
	SingleWriter() string
	// AcquireLock takes the advisory lock name on conn, waiting at most
	// wait; ErrLockTimeout when it is not granted in time. The lock lives
	// on that one physical connection until release is called on it.
	AcquireLock(ctx context.Context, conn *sql.Conn, name string, wait time.Duration) (release func(context.Context) error, err error)
	// LockHolder describes who holds the advisory lock name now, as far as
	// the database tells ("" when it cannot say or nobody does).
	LockHolder(ctx context.Context, conn *sql.Conn, name string) string

	// Classify says what a database error returned through this driver is.
	// Errors of another driver, and errors that are no database error,
	// are ErrOther unless they are a lost connection.
	Classify(err error) ErrorKind

	// QuoteIdent quotes a table or column name.
	QuoteIdent(name string) string
	// Concat is the SQL expression concatenating the text expressions parts.
	Concat(parts ...string) string
	// JSONText is the SQL expression reading the top-level string field of
	// the JSON column col.
	JSONText(col, field string) string
	// TablesQuery lists the base tables of the connected database, one name
	// per row.
	TablesQuery() string

	// columnType renders a column type as Django's migrations create it
	// (what the server reports back for it).
	columnType(c Column) string
	// createTable is the statements that create t.
	createTable(t Table) []string
	// columnsQuery reads a table's columns (the table name is its one
	// parameter): name, type, nullable, collation.
	columnsQuery() string
	// sameType compares a live column type with want's, forgiving what the
	// server reports differently for the same thing.
	sameType(want Column, got string) bool
	// missingGrants lists the privileges the connected account lacks.
	missingGrants(ctx context.Context, db *sql.DB, needCreate bool) (missing []string, inconclusive bool, err error)
}

// Querier is what runs statements: *sql.DB, *sql.Conn and *sql.Tx. Queries
// given to the store's helpers are written with ? placeholders.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ErrLockTimeout means an advisory lock was not granted within the wait
// limit: another session holds it. It is transient.
var ErrLockTimeout = errors.New("advisory lock wait timed out")

// Page is a query read page by page.
type Page struct {
	Name  string // names the cursor where there is one: unique within the transaction
	Query string // SELECT ... WHERE ...; paging adds to the WHERE clause and the ORDER BY
	Args  []any
	IDCol string // the unique column pages are ordered by
	Size  int    // rows per page
}

// Pager reads a Page. Next returns the next page's rows; the caller reads
// them and reports the last id it read with Advance. An empty page means
// the end. Close frees what the pager holds (the transaction's end would
// too).
type Pager interface {
	Next(ctx context.Context) (*sql.Rows, error)
	Advance(lastID int64)
	Close(ctx context.Context)
}

// Driver is the database's driver.
func (db *DB) Driver() Driver { return db.driver }

// Rebind turns ? placeholders into the database's form ($1, $2, ... on
// PostgreSQL). Queries in this service are written with ?.
func (db *DB) Rebind(query string) string { return db.driver.Rebind(query) }

// FoldsCase reports whether the Open edX tables compare text ignoring
// case; see Driver.FoldsCase.
func (db *DB) FoldsCase() bool { return db.driver.FoldsCase() }

// RowsPerStatement is how many rows of cols columns one multi-row statement
// carries at most.
func (db *DB) RowsPerStatement(cols int) int { return db.driver.RowsPerStatement(cols) }

// InsertRows inserts rows into table in as few statements as the database
// takes.
func (db *DB) InsertRows(ctx context.Context, q Querier, table string, cols []string, rows [][]any) error {
	return db.insertMany(ctx, q, "INSERT INTO", table, cols, rows, "")
}

// InsertKeepExisting inserts rows, leaving out those whose unique key
// (conflict: its columns, comma separated) already holds: get-or-create in
// bulk, compared as the database compares (case-insensitively under
// MySQL's _ci collations).
func (db *DB) InsertKeepExisting(ctx context.Context, q Querier, table string, cols []string, conflict string, rows [][]any) error {
	verb, suffix := db.driver.KeepExisting(conflict)
	return db.insertMany(ctx, q, verb, table, cols, rows, suffix)
}

func (db *DB) insertMany(ctx context.Context, q Querier, verb, table string, cols []string, rows [][]any, suffix string) error {
	for _, chunk := range Chunks(rows, db.driver.RowsPerStatement(len(cols))) {
		stmt := fmt.Sprintf("%s %s (%s) VALUES %s%s", verb, table, strings.Join(cols, ", "), Placeholders(len(cols), len(chunk)), suffix)
		if _, err := q.ExecContext(ctx, db.driver.Rebind(stmt), flatten(chunk)...); err != nil {
			return fmt.Errorf("insert into %s: %w", table, err)
		}
	}
	return nil
}

// InsertIDs inserts rows and returns their new ids in order; see
// Driver.InsertIDs.
func (db *DB) InsertIDs(ctx context.Context, q Querier, table string, cols []string, rows [][]any) ([]int64, error) {
	return db.driver.InsertIDs(ctx, q, table, cols, rows)
}

// InsertID inserts one row and returns its new id.
func (db *DB) InsertID(ctx context.Context, q Querier, table string, cols []string, values ...any) (int64, error) {
	ids, err := db.driver.InsertIDs(ctx, q, table, cols, [][]any{values})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// Placeholders renders n groups of k ? placeholders: (?, ?), (?, ?).
func Placeholders(k, n int) string {
	group := "(" + strings.TrimSuffix(strings.Repeat("?, ", k), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(group+", ", n), ", ")
}

// Chunks splits in into slices of at most n.
func Chunks[T any](in []T, n int) [][]T {
	var out [][]T
	for len(in) > n {
		out = append(out, in[:n])
		in = in[n:]
	}
	if len(in) > 0 {
		out = append(out, in)
	}
	return out
}

func flatten(rows [][]any) []any {
	var args []any
	for _, r := range rows {
		args = append(args, r...)
	}
	return args
}

// rowsFor bounds a multi-row statement of cols columns to maxParams
// parameters.
func rowsFor(maxParams, cols int) int { return max(1, maxParams/max(1, cols)) }

// insertReturning inserts rows with one INSERT ... RETURNING id per chunk
// (SQLite, PostgreSQL, MariaDB). defaultRow is the VALUES row of a row
// that has only an auto id.
func insertReturning(ctx context.Context, d Driver, q Querier, table string, cols []string, rows [][]any, defaultRow string) ([]int64, error) {
	ids := make([]int64, 0, len(rows))
	for _, chunk := range Chunks(rows, d.RowsPerStatement(len(cols))) {
		stmt := fmt.Sprintf("INSERT INTO %s (%s) VALUES %s RETURNING id", table, strings.Join(cols, ", "), Placeholders(len(cols), len(chunk)))
		if len(cols) == 0 {
			stmt = fmt.Sprintf("INSERT INTO %s (id) VALUES %s RETURNING id", table, strings.TrimSuffix(strings.Repeat(defaultRow+", ", len(chunk)), ", "))
		}
		got, err := scanIDs(ctx, q, d.Rebind(stmt), flatten(chunk))
		if err != nil {
			return nil, err
		}
		ids = append(ids, got...)
	}
	if len(ids) != len(rows) {
		return nil, fmt.Errorf("insert into %s returned %d ids for %d rows", table, len(ids), len(rows))
	}
	return ids, nil
}

func scanIDs(ctx context.Context, q Querier, stmt string, args []any) ([]int64, error) {
	rows, err := q.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// keysetPager pages by keyset: id > last ORDER BY id LIMIT n. Where
// secondary indexes carry the primary key (InnoDB, SQLite) each page is a
// range scan.
type keysetPager struct {
	d    Driver
	q    Querier
	page Page
	last int64
}

func (p *keysetPager) Next(ctx context.Context) (*sql.Rows, error) {
	stmt := p.page.Query + " AND " + p.page.IDCol + " > ? ORDER BY " + p.page.IDCol + " LIMIT ?"
	return p.q.QueryContext(ctx, p.d.Rebind(stmt), append(append([]any{}, p.page.Args...), p.last, p.page.Size)...)
}

func (p *keysetPager) Advance(lastID int64)  { p.last = lastID }
func (p *keysetPager) Close(context.Context) {}

func quoteWith(q, name string) string { return q + name + q }

func concatOperator(parts []string) string { return "(" + strings.Join(parts, " || ") + ")" }

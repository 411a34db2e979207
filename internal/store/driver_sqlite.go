package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	sqlite "github.com/glebarez/go-sqlite"
)

// sqliteDriver is SQLite through the pure-Go glebarez/go-sqlite driver.
// Every transaction begins IMMEDIATE (Open's DSN), so it takes the one
// write lock up front and waits up to busy_timeout for another writer: that
// lock is the lock of every run, and there are no advisory locks.
type sqliteDriver struct{}

func (sqliteDriver) Dialect() Dialect              { return SQLite }
func (sqliteDriver) Rebind(query string) string    { return query }
func (sqliteDriver) FoldsCase() bool               { return false }
func (sqliteDriver) SnapshotTx() *sql.TxOptions    { return &sql.TxOptions{ReadOnly: true} } // one writer: a read transaction is one snapshot (WAL)
func (sqliteDriver) SingleWriter() string          { return "SQLite's write lock" }
func (sqliteDriver) QuoteIdent(name string) string { return quoteWith(`"`, name) }
func (sqliteDriver) Concat(parts ...string) string { return concatOperator(parts) }
func (sqliteDriver) TablesQuery() string {
	return "SELECT name FROM sqlite_master WHERE type = 'table'"
}

func (sqliteDriver) JSONText(col, field string) string {
	return "json_extract(" + col + ", '$." + field + "')"
}

// RowsPerStatement keeps statements small: the pure-Go driver binds each
// parameter by a linear search over all of them.
func (sqliteDriver) RowsPerStatement(cols int) int { return rowsFor(400, cols) }

func (sqliteDriver) KeepExisting(string) (verb, suffix string) { return "INSERT OR IGNORE INTO", "" }

func (d sqliteDriver) InsertIDs(ctx context.Context, q Querier, table string, cols []string, rows [][]any) ([]int64, error) {
	return insertReturning(ctx, d, q, table, cols, rows, "(NULL)") // NULL takes the next id
}

func (d sqliteDriver) Pager(q Querier, page Page) Pager { return &keysetPager{d: d, q: q, page: page} }

// AcquireLock does nothing: the run's IMMEDIATE transaction is the single
// writer, and waits for the write lock itself.
func (sqliteDriver) AcquireLock(context.Context, *sql.Conn, string, time.Duration) (func(context.Context) error, error) {
	return func(context.Context) error { return nil }, nil
}

// LockHolder is "": SQLite's write lock has no owner to name.
func (sqliteDriver) LockHolder(context.Context, *sql.Conn, string) string { return "" }

func (sqliteDriver) Classify(err error) ErrorKind { return classifyWith(classifySQLite, err) }

// SQLite result codes (sqlite3.h).
const (
	sqliteBusy                 = 5    // another connection holds the write lock
	sqliteLocked               = 6    // a table is locked by this connection or a shared cache
	sqliteConstraint           = 19   // a constraint failed
	sqliteConstraintPrimaryKey = 1555 // SQLITE_CONSTRAINT_PRIMARYKEY
	sqliteConstraintUnique     = 2067 // SQLITE_CONSTRAINT_UNIQUE
)

func classifySQLite(err error) (ErrorKind, bool) {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return ErrOther, false
	}
	// Extended codes (SQLITE_BUSY_SNAPSHOT, SQLITE_CONSTRAINT_UNIQUE, ...)
	// carry the primary code in their low byte.
	switch code := e.Code(); {
	case code&0xff == sqliteBusy || code&0xff == sqliteLocked:
		return ErrBusy, true
	case code == sqliteConstraintUnique || code == sqliteConstraintPrimaryKey:
		return ErrDuplicate, true
	}
	return ErrOther, true
}

func (sqliteDriver) columnType(c Column) string {
	return map[ColType]string{Int: "integer", BigInt: "bigint", Text: "text", Bool: "bool",
		DateTime: "datetime", JSON: "text", Decimal: "decimal", Blob: "blob", UUID: "char(32)",
		Varchar: fmt.Sprintf("varchar(%d)", c.Size)}[c.Type]
}

func (d sqliteDriver) createTable(t Table) []string {
	return createTableWithIndexes(d, t, func(Column) string { return "integer NOT NULL PRIMARY KEY AUTOINCREMENT" })
}

func (sqliteDriver) columnsQuery() string {
	return `SELECT name, lower(type), "notnull" = 0 AND pk = 0, '' FROM pragma_table_info(?)`
}

func (d sqliteDriver) sameType(want Column, got string) bool {
	if want.Auto {
		return got == "integer" // Django's SQLite AutoField and BigAutoField alike
	}
	return got == d.columnType(want)
}

// missingGrants is nil: SQLite has no privileges.
func (sqliteDriver) missingGrants(context.Context, *sql.DB, bool) ([]string, bool, error) {
	return nil, false, nil
}

// createTableWithIndexes renders CREATE TABLE and one CREATE INDEX per
// index (SQLite, PostgreSQL); auto renders the definition of an
// auto-increment primary key after its name.
func createTableWithIndexes(d Driver, t Table, auto func(Column) string) []string {
	defs := columnDefs(d, t, auto)
	stmts := []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n  %s\n)", t.Name, strings.Join(defs, ",\n  "))}
	for _, ix := range t.Indexes {
		kind := "INDEX"
		if ix.Unique {
			kind = "UNIQUE INDEX"
		}
		stmts = append(stmts, fmt.Sprintf("CREATE %s IF NOT EXISTS %s ON %s (%s)", kind, ix.Name, t.Name, joinIdents(d, ix.Columns)))
	}
	return stmts
}

// columnDefs renders t's column definitions; auto renders the definition
// of an auto-increment primary key after its name.
func columnDefs(d Driver, t Table, auto func(Column) string) []string {
	var defs []string
	for _, c := range t.Columns {
		def := d.QuoteIdent(c.Name) + " " + d.columnType(c)
		switch {
		case c.Auto:
			def = d.QuoteIdent(c.Name) + " " + auto(c)
		case c.PK:
			def += " NOT NULL PRIMARY KEY"
		case c.Null:
			def += " NULL"
		default:
			def += " NOT NULL"
		}
		defs = append(defs, def)
	}
	return defs
}

func joinIdents(d Driver, names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = d.QuoteIdent(n)
	}
	return strings.Join(q, ", ")
}

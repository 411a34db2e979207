package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/twmb/murmur3"
)

// mysqlDriver is MySQL and MariaDB through go-sql-driver/mysql. Open edX's
// tables there use _ci collations, so text compares ignoring case; the
// service's own tables are created utf8mb4_bin.
type mysqlDriver struct {
	mariaDB bool // served by MariaDB: INSERT ... RETURNING works
}

func (mysqlDriver) Dialect() Dialect              { return MySQL }
func (mysqlDriver) Rebind(query string) string    { return query }
func (mysqlDriver) FoldsCase() bool               { return true }
func (mysqlDriver) SingleWriter() string          { return "" }
func (mysqlDriver) QuoteIdent(name string) string { return quoteWith("`", name) }
func (mysqlDriver) RowsPerStatement(cols int) int { return rowsFor(8000, cols) }
func (mysqlDriver) Concat(parts ...string) string { return "CONCAT(" + strings.Join(parts, ", ") + ")" }
func (mysqlDriver) TablesQuery() string {
	return "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"
}

func (mysqlDriver) JSONText(col, field string) string {
	return "JSON_UNQUOTE(JSON_EXTRACT(" + col + ", '$." + field + "'))"
}

// SnapshotTx reads one snapshot: InnoDB's REPEATABLE READ takes it at the
// first read and keeps it.
func (mysqlDriver) SnapshotTx() *sql.TxOptions {
	return &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead}
}

// KeepExisting updates the first conflict column to itself: a no-op that
// keeps the row (INSERT IGNORE would also hide other errors).
func (mysqlDriver) KeepExisting(conflict string) (verb, suffix string) {
	first, _, _ := strings.Cut(conflict, ",")
	return "INSERT INTO", " ON DUPLICATE KEY UPDATE " + first + " = " + first
}

// InsertIDs uses RETURNING on MariaDB. MySQL has none, and hands out a
// multi-row INSERT's ids consecutively only in some auto-increment lock
// modes, so there each row is its own statement and LastInsertId its id.
func (d mysqlDriver) InsertIDs(ctx context.Context, q Querier, table string, cols []string, rows [][]any) ([]int64, error) {
	if d.mariaDB {
		return insertReturning(ctx, d, q, table, cols, rows, "(NULL)") // NULL takes the next id
	}
	ids := make([]int64, 0, len(rows))
	stmt := fmt.Sprintf("INSERT INTO %s (%s) VALUES %s", table, strings.Join(cols, ", "), Placeholders(len(cols), 1))
	for _, r := range rows {
		res, err := q.ExecContext(ctx, stmt, r...)
		if err != nil {
			return nil, err
		}
		id, err := res.LastInsertId()
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Pager pages by keyset: InnoDB's secondary indexes carry the primary key,
// so each page is a range scan.
func (d mysqlDriver) Pager(q Querier, page Page) Pager { return &keysetPager{d: d, q: q, page: page} }

// mysqlLockName derives the GET_LOCK name of a lock: MySQL limits lock
// names to 64 characters and the names (orgs) are free text, so it carries
// a 128-bit murmur3 hash of the name rather than the name itself.
func mysqlLockName(name string) string {
	h1, h2 := murmur3.StringSum128(name)
	return fmt.Sprintf("authz_consumer:org:%016x%016x", h1, h2)
}

func (mysqlDriver) AcquireLock(ctx context.Context, conn *sql.Conn, name string, wait time.Duration) (func(context.Context) error, error) {
	lockName := mysqlLockName(name)
	deadline := time.Now().Add(wait)
	for {
		// Wait in slices of at most a second so a cancelled context is seen.
		slice := min(max(time.Until(deadline), 0), time.Second)
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", lockName, slice.Seconds()).Scan(&got); err != nil {
			return nil, fmt.Errorf("GET_LOCK %s: %w", lockName, err)
		}
		if got.Valid && got.Int64 == 1 {
			break
		}
		if !got.Valid {
			return nil, fmt.Errorf("GET_LOCK %s returned NULL", lockName)
		}
		if !time.Now().Before(deadline) {
			return nil, ErrLockTimeout
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context) error {
		var released sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", lockName).Scan(&released); err != nil {
			return fmt.Errorf("RELEASE_LOCK %s: %w", lockName, err)
		}
		if released.Int64 != 1 {
			return fmt.Errorf("RELEASE_LOCK %s: lock was not held by this connection", lockName)
		}
		return nil
	}, nil
}

func (mysqlDriver) LockHolder(ctx context.Context, conn *sql.Conn, name string) string {
	var id sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", mysqlLockName(name)).Scan(&id); err != nil || !id.Valid {
		return ""
	}
	var (
		user, host string
		secs       sql.NullInt64
	)
	// Another account's connections are visible only with the PROCESS
	// privilege: then the id alone is said.
	err := conn.QueryRowContext(ctx, "SELECT USER, HOST, TIME FROM information_schema.PROCESSLIST WHERE ID = ?", id.Int64).Scan(&user, &host, &secs)
	if err != nil {
		return fmt.Sprintf("database connection %d", id.Int64)
	}
	return fmt.Sprintf("database connection %d (%s@%s, in its current state for %ds)", id.Int64, user, host, secs.Int64)
}

func (mysqlDriver) Classify(err error) ErrorKind { return classifyWith(classifyMySQL, err) }

// mysqlKinds are the MySQL/MariaDB error numbers told apart; every other
// number is ErrOther.
var mysqlKinds = map[uint16]ErrorKind{
	1062: ErrDuplicate, // ER_DUP_ENTRY
	1586: ErrDuplicate, // ER_DUP_ENTRY_WITH_KEY_NAME
	1205: ErrLockWait,  // ER_LOCK_WAIT_TIMEOUT
	1213: ErrDeadlock,  // ER_LOCK_DEADLOCK

	1053: ErrConnection, // ER_SERVER_SHUTDOWN
	1927: ErrConnection, // ER_CONNECTION_KILLED (MariaDB: KILL CONNECTION during a statement)
	2006: ErrConnection, // CR_SERVER_GONE_ERROR (reported by proxies)
	2013: ErrConnection, // CR_SERVER_LOST (reported by proxies)

	// Refused at login: for a service that logged in at start, the account
	// being locked, its password rotated or its grants being redone is the
	// database unavailable for a while, not a property of the event.
	1044: ErrUnavailable, // ER_DBACCESS_DENIED_ERROR
	1045: ErrUnavailable, // ER_ACCESS_DENIED_ERROR
	1129: ErrUnavailable, // ER_HOST_IS_BLOCKED (too many connection errors; FLUSH HOSTS)
	3118: ErrUnavailable, // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)
	4151: ErrUnavailable, // ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB)

	1040: ErrUnavailable, // ER_CON_COUNT_ERROR: too many connections
	1203: ErrUnavailable, // ER_TOO_MANY_USER_CONNECTIONS (max_user_connections)
	1226: ErrUnavailable, // ER_USER_LIMIT_REACHED (an account's MAX_USER_CONNECTIONS)
	1290: ErrUnavailable, // ER_OPTION_PREVENTS_STATEMENT: --read-only (a replica during failover)
	1836: ErrUnavailable, // ER_READ_ONLY_MODE
}

func classifyMySQL(err error) (ErrorKind, bool) {
	var e *mysql.MySQLError
	if !errors.As(err, &e) {
		return ErrOther, false
	}
	return mysqlKinds[e.Number], true
}

func (mysqlDriver) columnType(c Column) string {
	return map[ColType]string{Int: "int", BigInt: "bigint", Text: "longtext", Bool: "tinyint(1)",
		DateTime: "datetime(6)", JSON: "json", Decimal: "decimal(3,1)", Blob: "longblob", UUID: "char(32)",
		Varchar: fmt.Sprintf("varchar(%d)", c.Size)}[c.Type]
}

// createTable makes InnoDB tables with the indexes inline, utf8mb4_bin:
// the service's own tables compare case-sensitively, as on the other
// databases.
func (d mysqlDriver) createTable(t Table) []string {
	defs := columnDefs(d, t, func(c Column) string { return d.columnType(c) + " NOT NULL AUTO_INCREMENT PRIMARY KEY" })
	for _, ix := range t.Indexes {
		kind := "KEY"
		if ix.Unique {
			kind = "UNIQUE KEY"
		}
		defs = append(defs, fmt.Sprintf("%s %s (%s)", kind, ix.Name, joinIdents(d, ix.Columns)))
	}
	return []string{fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s (\n  %s\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
		t.Name, strings.Join(defs, ",\n  "))}
}

func (mysqlDriver) columnsQuery() string {
	return "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE = 'YES', COALESCE(COLLATION_NAME, '') FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?"
}

var intWidth = regexp.MustCompile(`^(int|bigint|smallint)\(\d+\)`)

// sameType forgives MariaDB's display widths (int(11)) and unsigned ids.
func (d mysqlDriver) sameType(want Column, got string) bool {
	got = intWidth.ReplaceAllString(got, "$1")
	got = strings.TrimSuffix(got, " unsigned")
	return got == d.columnType(want)
}

// grantLine reads one line of SHOW GRANTS: privileges, database, table.
var grantLine = regexp.MustCompile("^GRANT (.+?) ON (?:TABLE )?(\\*|`(?:[^`]|``)+`)\\.(\\*|`(?:[^`]|``)+`) TO ")

// missingGrants reads SHOW GRANTS FOR CURRENT_USER. Privileges granted
// through a role are not listed there: then the answer is inconclusive.
func (mysqlDriver) missingGrants(ctx context.Context, db *sql.DB, needCreate bool) ([]string, bool, error) {
	var dbName string
	if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil {
		return nil, false, fmt.Errorf("check privileges: %w", err)
	}
	rows, err := db.QueryContext(ctx, "SHOW GRANTS FOR CURRENT_USER")
	if err != nil {
		return nil, false, fmt.Errorf("check privileges: SHOW GRANTS FOR CURRENT_USER: %w", err)
	}
	defer rows.Close()
	granted := map[string]map[string]bool{} // table ("" for every table) -> privilege
	inconclusive := false
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, false, fmt.Errorf("check privileges: %w", err)
		}
		m := grantLine.FindStringSubmatch(line)
		if m == nil {
			if strings.HasPrefix(line, "GRANT ") && !strings.Contains(line, " ON ") {
				inconclusive = true // a role granted: its privileges are not listed here
			}
			continue
		}
		dbPat, table := unquote(m[2]), unquote(m[3])
		if dbPat != "*" && !mysqlNameMatch(dbPat, dbName) {
			continue
		}
		if table == "*" {
			table = ""
		}
		if granted[table] == nil {
			granted[table] = map[string]bool{}
		}
		for _, p := range strings.Split(m[1], ",") {
			p = strings.TrimSpace(p)
			if strings.Contains(p, "(") {
				continue // column privileges: not enough for whole rows
			}
			if p == "ALL PRIVILEGES" || p == "ALL" {
				p = "ALL"
			}
			granted[table][p] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("check privileges: %w", err)
	}
	has := func(table, p string) bool {
		return granted[""][p] || granted[""]["ALL"] || granted[table][p] || granted[table]["ALL"]
	}
	missing, _ := lackedPrivileges(func(table, p string) (bool, error) { return has(table, p), nil }) // has never fails
	if needCreate && !has("", "CREATE") {
		missing = append(missing, "CREATE on database "+dbName+" (to create the service's own tables)")
	}
	return missing, inconclusive, nil
}

func unquote(name string) string {
	if name == "*" {
		return name
	}
	return strings.ReplaceAll(strings.Trim(name, "`"), "``", "`")
}

// mysqlNameMatch matches a database name against a GRANT's pattern: %
// and _ are wildcards there unless escaped with a backslash.
func mysqlNameMatch(pattern, name string) bool {
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '\\' && i+1 < len(pattern):
			i++
			re.WriteString(regexp.QuoteMeta(string(pattern[i])))
		case c == '%':
			re.WriteString(".*")
		case c == '_':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	ok, _ := regexp.MatchString(re.String(), name)
	return ok
}

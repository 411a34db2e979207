// Package store opens the database and owns the table definitions: the Open
// edX tables (created only for the embedded default and tests,
// checked read-only in production) and the service's own authz_consumer_*
// tables, created by versioned migrations. Dialect differences (SQLite,
// MySQL/MariaDB, PostgreSQL) live here and in internal/lock only.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"authz-flag-consumer/internal/config"

	"github.com/glebarez/sqlite"
	"github.com/go-sql-driver/mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	gmysql "gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names the database family.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	MySQL    Dialect = "mysql" // MySQL and MariaDB
	Postgres Dialect = "postgres"
)

// DB is an open database. SQL is the pool every query goes through; Gorm
// wraps the same pool for the casbin gorm-adapter.
type DB struct {
	SQL     *sql.DB
	Gorm    *gorm.DB
	Dialect Dialect
	MariaDB bool   // MySQL dialect served by MariaDB (INSERT ... RETURNING works)
	URL     string // the URL with its password masked, safe to log

	uuidCols sync.Map // NativeUUID's answers
}

// Open connects to rawURL (sqlite:///relative.db or sqlite:////abs/path.db, mysql://user:pass@host:port/db,
// postgres://user:pass@host:port/db) and pings it. A missing SQLite file is
// created.
func Open(ctx context.Context, rawURL string) (*DB, error) { return open(ctx, rawURL, false) }

// OpenExisting is Open for commands that only read: a missing SQLite file
// is an error instead of a new empty database.
func OpenExisting(ctx context.Context, rawURL string) (*DB, error) { return open(ctx, rawURL, true) }

// SQLitePath is the file a sqlite:// URL names, as SQLAlchemy (and so Open
// edX operators) write them: sqlite:///relative.db is relative to the
// working directory, sqlite:////absolute/path.db absolute.
func SQLitePath(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "sqlite" && u.Scheme != "sqlite3") {
		return "", fmt.Errorf("%q is not a sqlite:// URL", MaskURL(rawURL))
	}
	return sqlitePath(u), nil
}

func sqlitePath(u *url.URL) string {
	if u.Host != "" { // sqlite://relative.db
		return u.Host + u.Path
	}
	return strings.TrimPrefix(u.Path, "/")
}

// sqliteFile checks that the file of a SQLite URL can be opened and says
// why not in the operator's terms (SQLite itself reports a missing
// directory as "out of memory (14)").
func sqliteFile(masked, path string, existing bool) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("database %s: %w", masked, err)
	}
	where := abs
	if !filepath.IsAbs(path) {
		where = fmt.Sprintf("%s (sqlite:/// is relative to the working directory; sqlite://// starts an absolute path)", abs)
	}
	fi, err := os.Stat(abs)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("database %s: %s is a directory, not a SQLite file", masked, where)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("database %s: cannot open SQLite file %s: %w", masked, where, err)
	case existing:
		return fmt.Errorf("database %s: SQLite file %s does not exist; this command only reads and creates nothing (`consumer schema create` makes a new database)", masked, where)
	}
	dir := filepath.Dir(abs)
	if di, err := os.Stat(dir); err != nil || !di.IsDir() {
		return fmt.Errorf("database %s: cannot create SQLite file %s: directory %s does not exist", masked, where, dir)
	}
	return nil
}

func open(ctx context.Context, rawURL string, existing bool) (*DB, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("database URL %q: want sqlite:///path, mysql://user:pass@host:port/db or postgres://user:pass@host:port/db", MaskURL(rawURL))
	}
	db := &DB{URL: MaskURL(rawURL)}
	var dial gorm.Dialector
	switch u.Scheme {
	case "sqlite", "sqlite3":
		path := sqlitePath(u)
		if path == "" {
			return nil, fmt.Errorf("database URL %s: no file path", db.URL)
		}
		if err := sqliteFile(db.URL, path, existing); err != nil {
			return nil, err
		}
		// One writer at a time: every transaction begins IMMEDIATE, so it
		// takes SQLite's write lock up front, and
		// waits up to busy_timeout for another writer to finish.
		dsn := "file:" + path + "?_pragma=busy_timeout(60000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		if db.SQL, err = sql.Open("sqlite", dsn); err != nil {
			return nil, fmt.Errorf("open %s: %w", db.URL, err)
		}
		db.Dialect = SQLite
		dial = sqlite.Dialector{Conn: db.SQL}
	case "mysql", "mariadb":
		conn, err := mysql.NewConnector(MySQLConfig(u))
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", db.URL, err)
		}
		db.SQL = sql.OpenDB(conn)
		db.Dialect = MySQL
		dial = gmysql.New(gmysql.Config{Conn: db.SQL, SkipInitializeWithVersion: true})
	case "postgres", "postgresql":
		if db.SQL, err = sql.Open("pgx", rawURL); err != nil {
			return nil, fmt.Errorf("open %s: %w", db.URL, err)
		}
		db.Dialect = Postgres
		dial = postgres.New(postgres.Config{Conn: db.SQL})
	default:
		return nil, fmt.Errorf("database URL %s: unknown scheme %q (want sqlite, mysql or postgres)", db.URL, u.Scheme)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.SQL.PingContext(pingCtx); err != nil {
		db.SQL.Close()
		return nil, fmt.Errorf("database %s unreachable: %w", db.URL, err)
	}
	if db.Dialect == MySQL {
		var version string
		if err := db.SQL.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
			db.SQL.Close()
			return nil, fmt.Errorf("database %s: read version: %w", db.URL, err)
		}
		db.MariaDB = strings.Contains(strings.ToLower(version), "mariadb")
	}
	db.Gorm, err = gorm.Open(dial, &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		db.SQL.Close()
		return nil, fmt.Errorf("open %s: %w", db.URL, err)
	}
	return db, nil
}

// MySQLConfig is the go-sql-driver configuration of a mysql:// URL: UTC
// times, utf8mb4, the URL's query as connection parameters.
func MySQLConfig(u *url.URL) *mysql.Config {
	cfg := mysql.NewConfig()
	cfg.User = u.User.Username()
	cfg.Passwd, _ = u.User.Password()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	cfg.Timeout = 10 * time.Second
	cfg.Params = map[string]string{"charset": "utf8mb4", "time_zone": "'+00:00'"}
	for k, v := range u.Query() {
		cfg.Params[k] = v[0]
	}
	return cfg
}

// Close closes the pool.
func (db *DB) Close() error { return db.SQL.Close() }

// Rebind turns ? placeholders into the dialect's form ($1, $2, ... on
// PostgreSQL). Queries in this service are written with ?.
func (db *DB) Rebind(query string) string { return Rebind(db.Dialect, query) }

// Rebind turns ? placeholders into $n for PostgreSQL.
func Rebind(d Dialect, query string) string {
	if d != Postgres || !strings.Contains(query, "?") {
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

// FoldsCase reports whether the Open edX tables compare text ignoring case
// (MySQL's _ci collations), so that `org = 'orgx'` also selects OrgX rows.
// The service's own tables are case-sensitive everywhere.
func (db *DB) FoldsCase() bool { return db.Dialect == MySQL }

// Returning reports whether INSERT ... RETURNING works on this database.
func (db *DB) Returning() bool { return db.Dialect != MySQL || db.MariaDB }

// MaskURL hides the password of a database URL, so it can be logged.
func MaskURL(raw string) string { return config.MaskURL(raw) }

// InsertKeepExisting returns the verb and suffix of an INSERT that leaves
// out rows whose unique column conflict already holds, compared as the
// database compares (case-insensitively under MySQL's _ci collations).
// conflict names the unique key's columns, comma separated.
func InsertKeepExisting(d Dialect, conflict string) (verb, suffix string) {
	switch d {
	case MySQL:
		first, _, _ := strings.Cut(conflict, ",")
		return "INSERT INTO", " ON DUPLICATE KEY UPDATE " + first + " = " + first
	case Postgres:
		return "INSERT INTO", " ON CONFLICT (" + conflict + ") DO NOTHING"
	default:
		return "INSERT OR IGNORE INTO", ""
	}
}

// NativeUUID reports whether a UUIDField column has a native uuid type
// (PostgreSQL, MariaDB 10.7+) rather than Django's char(32) hex form. The
// answer is cached per column.
func (db *DB) NativeUUID(ctx context.Context, table, column string) (bool, error) {
	key := table + "." + column
	if v, ok := db.uuidCols.Load(key); ok {
		return v.(bool), nil
	}
	cols, err := db.columns(ctx, table)
	if err != nil {
		return false, err
	}
	native := cols[column].typ == "uuid"
	db.uuidCols.Store(key, native)
	return native, nil
}

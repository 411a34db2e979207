// Package store opens the database and owns the table definitions: the Open
// edX tables (created only for the embedded default and tests,
// checked read-only in production) and the service's own authz_consumer_*
// tables, created by versioned migrations. Everything that differs between
// the databases (SQLite, MySQL/MariaDB, PostgreSQL) is the Driver's: one
// implementation per dialect, driver_*.go; code above the store asks the
// driver and never names a dialect.
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

// Dialect names the database family. Only the store and the benchmark's
// fixture tell dialects apart; everything else asks the Driver.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	MySQL    Dialect = "mysql" // MySQL and MariaDB
	Postgres Dialect = "postgres"
)

// DB is an open database. SQL is the pool every query goes through; Gorm
// wraps the same pool for the casbin gorm-adapter; Driver says how this
// database differs from the others.
type DB struct {
	SQL  *sql.DB
	Gorm *gorm.DB
	URL  string // the URL with its password masked, safe to log

	driver   Driver
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
	masked := MaskURL(rawURL)
	var pool *sql.DB
	switch u.Scheme {
	case "sqlite", "sqlite3":
		path := sqlitePath(u)
		if path == "" {
			return nil, fmt.Errorf("database URL %s: no file path", masked)
		}
		if err := sqliteFile(masked, path, existing); err != nil {
			return nil, err
		}
		// One writer at a time: every transaction begins IMMEDIATE, so it
		// takes SQLite's write lock up front, and
		// waits up to busy_timeout for another writer to finish.
		dsn := "file:" + path + "?_pragma=busy_timeout(60000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
		if pool, err = sql.Open("sqlite", dsn); err != nil {
			return nil, fmt.Errorf("open %s: %w", masked, err)
		}
	case "mysql", "mariadb":
		conn, err := mysql.NewConnector(MySQLConfig(u))
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", masked, err)
		}
		pool = sql.OpenDB(conn)
	case "postgres", "postgresql":
		if pool, err = sql.Open("pgx", rawURL); err != nil {
			return nil, fmt.Errorf("open %s: %w", masked, err)
		}
	default:
		return nil, fmt.Errorf("database URL %s: unknown scheme %q (want sqlite, mysql or postgres)", masked, u.Scheme)
	}
	db, err := Wrap(ctx, pool, rawURL)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// Wrap makes a DB of a pool the caller opened on the database rawURL names
// (its scheme picks the driver): for tests that need connection settings
// Open does not make. It pings the database; Close closes the pool.
func Wrap(ctx context.Context, pool *sql.DB, rawURL string) (*DB, error) {
	db := &DB{SQL: pool, URL: MaskURL(rawURL)}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("database URL %s: %w", db.URL, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.PingContext(pingCtx); err != nil {
		return nil, fmt.Errorf("database %s unreachable: %w", db.URL, err)
	}
	var dial gorm.Dialector
	switch u.Scheme {
	case "sqlite", "sqlite3":
		db.driver = sqliteDriver{}
		dial = sqlite.Dialector{Conn: pool}
	case "mysql", "mariadb":
		var version string
		if err := pool.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
			return nil, fmt.Errorf("database %s: read version: %w", db.URL, err)
		}
		db.driver = mysqlDriver{mariaDB: strings.Contains(strings.ToLower(version), "mariadb")}
		dial = gmysql.New(gmysql.Config{Conn: pool, SkipInitializeWithVersion: true})
	case "postgres", "postgresql":
		db.driver = postgresDriver{}
		dial = postgres.New(postgres.Config{Conn: pool})
	default:
		return nil, fmt.Errorf("database URL %s: unknown scheme %q (want sqlite, mysql or postgres)", db.URL, u.Scheme)
	}
	if db.Gorm, err = gorm.Open(dial, &gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true}); err != nil {
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

// MaskURL hides the password of a database URL, so it can be logged.
func MaskURL(raw string) string { return config.MaskURL(raw) }

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

// Package testenv gives tests of other packages the real servers of the
// service tier: a fresh database per test on MariaDB or PostgreSQL,
// a SQLite file in the test's temp dir, and the real Kafka broker; and,
// with Stack, the in-process stack of internal/devstack (SQLite, a kfake
// broker, the schema registry) that needs no server.
//
// The servers are started outside the tests by repo scripts, which print the
// environment variables read here:
//
//	scripts/services.sh start && eval "$(scripts/services.sh env)"   # AUTHZ_TEST_MYSQL_URL, AUTHZ_TEST_POSTGRES_URL
//	scripts/kafka.sh start && eval "$(scripts/kafka.sh env)"         # AUTHZ_TEST_KAFKA_BROKERS
//
// This package reads the environment on purpose: it is test support, not
// product code (the product reads its configuration only in cmd/consumer).
// A test that asks for a server that is not configured or not reachable
// fails with the command that starts it; it is never skipped.
package testenv

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"authz-flag-consumer/internal/store"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// Environment variables holding the admin URLs and the broker list.
const (
	EnvMySQLURL     = "AUTHZ_TEST_MYSQL_URL"     // mysql://authz:authz@127.0.0.1:13306/
	EnvPostgresURL  = "AUTHZ_TEST_POSTGRES_URL"  // postgres://authz:authz@127.0.0.1:15432/postgres
	EnvKafkaBrokers = "AUTHZ_TEST_KAFKA_BROKERS" // 127.0.0.1:19092 (comma list)
)

const (
	servicesHint = `start it with: eval "$(scripts/services.sh env)" after scripts/services.sh start`
	kafkaHint    = `start it with: eval "$(scripts/kafka.sh env)" after scripts/kafka.sh start`

	// DBPrefix starts the name of every database this package creates.
	DBPrefix = "authz_t_"

	connectTimeout = 10 * time.Second
	dropTimeout    = 60 * time.Second
)

// MySQLURL creates a fresh, uniquely named database on the MariaDB server
// named by AUTHZ_TEST_MYSQL_URL, drops it when the test ends, and returns its
// URL in the product's form (mysql://authz:authz@127.0.0.1:13306/authz_t_xxx).
// Close your connections to it before the test ends (t.Cleanup runs last
// registered first, so a Cleanup registered after this call runs before the drop).
func MySQLURL(t testing.TB) string {
	t.Helper()
	admin := adminURL(t, EnvMySQLURL, "MariaDB")
	db, err := openMySQL(admin, "")
	if err != nil {
		t.Fatalf("testenv: MariaDB admin URL %s: %v; %s", maskURL(admin), err, servicesHint)
	}
	defer db.Close()
	ping(t, db, "MariaDB", admin)

	name := uniqueName(t, DBPrefix)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE `"+name+"` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		t.Fatalf("testenv: create MariaDB database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(admin, "mysql", "DROP DATABASE IF EXISTS `"+name+"`"); err != nil {
			t.Errorf("testenv: drop MariaDB database %s: %v", name, err)
		}
	})
	return withPath(admin, name)
}

// PostgresURL creates a fresh, uniquely named database on the PostgreSQL
// server named by AUTHZ_TEST_POSTGRES_URL, drops it (forcing out leftover
// sessions) when the test ends, and returns its URL
// (postgres://authz:authz@127.0.0.1:15432/authz_t_xxx).
func PostgresURL(t testing.TB) string {
	t.Helper()
	admin := adminURL(t, EnvPostgresURL, "PostgreSQL")
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("testenv: PostgreSQL admin URL %s: %v; %s", maskURL(admin), err, servicesHint)
	}
	defer db.Close()
	ping(t, db, "PostgreSQL", admin)

	name := uniqueName(t, DBPrefix)
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if _, err := db.ExecContext(ctx, `CREATE DATABASE "`+name+`" ENCODING 'UTF8' TEMPLATE template0`); err != nil {
		t.Fatalf("testenv: create PostgreSQL database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(admin, "pgx", `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Errorf("testenv: drop PostgreSQL database %s: %v", name, err)
		}
	})
	return withPath(admin, name)
}

// SQLiteURL returns sqlite:////<t.TempDir()>/test.db (SQLAlchemy form: four slashes for an absolute path); the file does not exist yet.
func SQLiteURL(t testing.TB) string {
	t.Helper()
	return "sqlite:///" + filepath.ToSlash(filepath.Join(t.TempDir(), "test.db"))
}

// KafkaBrokers returns the real broker list from AUTHZ_TEST_KAFKA_BROKERS
// after checking that each broker accepts TCP connections. Topics on that
// broker outlive the test: use KafkaTopic for names no other test uses.
func KafkaBrokers(t testing.TB) []string {
	t.Helper()
	SkipShort(t, "the real Kafka broker")
	raw := strings.TrimSpace(os.Getenv(EnvKafkaBrokers))
	if raw == "" {
		t.Fatalf("testenv: %s is not set: this test needs the real Kafka broker; %s", EnvKafkaBrokers, kafkaHint)
	}
	var brokers []string
	for _, b := range strings.Split(raw, ",") {
		if b = strings.TrimSpace(b); b != "" {
			brokers = append(brokers, b)
		}
	}
	for _, b := range brokers {
		c, err := net.DialTimeout("tcp", b, connectTimeout)
		if err != nil {
			t.Fatalf("testenv: Kafka broker %s (%s) not reachable: %v; %s", b, EnvKafkaBrokers, err, kafkaHint)
		}
		c.Close()
	}
	return brokers
}

// SkipShort skips a test that needs what (a server, or minutes) under
// `go test -short` (`make test-fast`). Without -short, as `make test` and CI
// run, such a test never skips: it fails with the command that starts what
// it needs.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: needs %s (make test runs it)", what)
	}
}

// KafkaTopic returns a topic name no other test uses ("authz-t-<prefix>-<random>").
func KafkaTopic(t testing.TB, prefix string) string {
	t.Helper()
	if prefix == "" {
		return uniqueName(t, "authz-t-")
	}
	return uniqueName(t, "authz-t-"+prefix+"-")
}

func adminURL(t testing.TB, env, what string) string {
	t.Helper()
	SkipShort(t, "the "+what+" test server")
	v := strings.TrimSpace(os.Getenv(env))
	if v == "" {
		t.Fatalf("testenv: %s is not set: this test needs the %s test server; %s", env, what, servicesHint)
	}
	return v
}

func ping(t testing.TB, db *sql.DB, what, admin string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("testenv: %s at %s not reachable: %v; %s", what, maskURL(admin), err, servicesHint)
	}
}

// openMySQL opens a mysql:// URL with go-sql-driver/mysql; dbName overrides the URL's path.
func openMySQL(rawURL, dbName string) (*sql.DB, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if u.Scheme != "mysql" && u.Scheme != "mariadb" {
		return nil, fmt.Errorf("scheme %q: want mysql://", u.Scheme)
	}
	cfg := store.MySQLConfig(u)
	cfg.DBName = dbName
	cfg.Timeout = connectTimeout
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("connector: %w", err)
	}
	return sql.OpenDB(conn), nil
}

func dropDatabase(admin, driver, stmt string) error {
	var (
		db  *sql.DB
		err error
	)
	if driver == "mysql" {
		db, err = openMySQL(admin, "")
	} else {
		db, err = sql.Open(driver, admin)
	}
	if err != nil {
		return fmt.Errorf("open admin connection: %w", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
	defer cancel()
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// withPath returns rawURL with its path replaced by /name (user, host and query kept).
func withPath(rawURL, name string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL // already parsed successfully by the caller's driver
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String()
}

func uniqueName(t testing.TB, prefix string) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("testenv: random name: %v", err)
	}
	return prefix + hex.EncodeToString(b)
}

// maskURL hides the password of a URL for messages.
func maskURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

package testenv

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"authz-flag-consumer/internal/store"
)

// Database is one database the service supports, as tests see it: the
// subtest name, a fresh database of it, and what tests expect of it. The
// expectations are stated here, apart from the store's driver, so that a
// test comparing what the service did with them can fail.
type Database struct {
	Name string                  // "sqlite", "mysql", "postgres": subtest names
	URL  func(testing.TB) string // a fresh database (skipped under -short where it needs a server)
	// FoldsCase: the Open edX tables compare text ignoring case (MariaDB's
	// _ci collations, as Open edX's MySQL).
	FoldsCase bool
	// NativeUUID: Django's UUIDField is a native uuid column, not char(32).
	NativeUUID bool
	// AdvisoryLocks: the database has named session locks; without them
	// (SQLite) a run's transaction waits for the one writer instead.
	AdvisoryLocks bool
}

// Databases are the databases the service supports: a SQLite file, the
// MariaDB server, the PostgreSQL server.
var Databases = []Database{
	{Name: "sqlite", URL: SQLiteURL},
	{Name: "mysql", URL: MySQLURL, FoldsCase: true, NativeUUID: true, AdvisoryLocks: true},
	{Name: "postgres", URL: PostgresURL, NativeUUID: true, AdvisoryLocks: true},
}

// Servers are the Databases served by a server: those with accounts,
// privileges and advisory locks.
func Servers() []Database {
	var out []Database
	for _, d := range Databases {
		if d.AdvisoryLocks {
			out = append(out, d)
		}
	}
	return out
}

// Account creates a login on the server of rawURL's database (a MySQLURL or
// PostgresURL database) that may SELECT, INSERT, UPDATE and DELETE on every
// table there but DELETE on noDelete, and returns its URL and a function
// that grants it that DELETE too. The account is dropped when the test
// ends. Run it after the tables exist (PostgreSQL grants on the tables
// present).
func Account(t testing.TB, rawURL, noDelete string) (accountURL string, grantDelete func()) {
	t.Helper()
	ctx := context.Background()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatalf("testenv: account on %s: %v", maskURL(rawURL), err)
	}
	user := uniqueName(t, "authz_t_user_")
	dbName := strings.TrimPrefix(u.Path, "/")
	var grants []string
	var grantDeleteStmt string
	var drop []string
	switch u.Scheme {
	case "mysql", "mariadb":
		grants = []string{
			"CREATE USER '" + user + "'@'%' IDENTIFIED BY 'pw'",
			"GRANT SELECT, INSERT, UPDATE, CREATE ON `" + dbName + "`.* TO '" + user + "'@'%'",
		}
		for _, tb := range append(append([]store.Table{}, store.OpenEdXTables...), store.OwnTables...) {
			if tb.Name != noDelete {
				grants = append(grants, "GRANT DELETE ON `"+dbName+"`.`"+tb.Name+"` TO '"+user+"'@'%'")
			}
		}
		grantDeleteStmt = "GRANT DELETE ON `" + dbName + "`.`" + noDelete + "` TO '" + user + "'@'%'"
		drop = []string{"DROP USER IF EXISTS '" + user + "'@'%'"}
	case "postgres", "postgresql":
		grants = []string{
			"CREATE ROLE " + user + " LOGIN PASSWORD 'pw'",
			"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + user,
			"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO " + user,
			"REVOKE DELETE ON " + noDelete + " FROM " + user,
		}
		grantDeleteStmt = "GRANT DELETE ON " + noDelete + " TO " + user
		// A role with privileges cannot be dropped: revoke them first.
		drop = []string{"DROP OWNED BY " + user, "DROP ROLE IF EXISTS " + user}
	default:
		t.Fatalf("testenv: %s has no accounts", maskURL(rawURL))
	}
	db, err := store.Open(ctx, rawURL)
	if err != nil {
		t.Fatalf("testenv: account on %s: %v", maskURL(rawURL), err)
	}
	defer db.Close()
	// Runs before the database is dropped (cleanups run last registered
	// first), on the database the account has privileges on.
	t.Cleanup(func() {
		db, err := store.Open(ctx, rawURL)
		if err != nil {
			t.Errorf("testenv: drop account %s: %v", user, err)
			return
		}
		defer db.Close()
		for _, stmt := range drop {
			if _, err := db.SQL.ExecContext(ctx, stmt); err != nil {
				t.Errorf("testenv: %s: %v", stmt, err)
			}
		}
	})
	for _, g := range grants {
		if _, err := db.SQL.ExecContext(ctx, g); err != nil {
			t.Fatalf("testenv: %s: %v", g, err)
		}
	}
	u.User = url.UserPassword(user, "pw")
	return u.String(), func() {
		t.Helper()
		db, err := store.Open(ctx, rawURL)
		if err != nil {
			t.Fatalf("testenv: %s: %v", grantDeleteStmt, err)
		}
		defer db.Close()
		if _, err := db.SQL.ExecContext(ctx, grantDeleteStmt); err != nil {
			t.Fatalf("testenv: %s: %v", grantDeleteStmt, err)
		}
	}
}

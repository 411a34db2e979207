package testenv

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"authz-flag-consumer/internal/store"
)

// SessionID is the server's id of conn's session (MariaDB's CONNECTION_ID,
// PostgreSQL's backend pid), as lock holders and process lists name it.
func SessionID(t testing.TB, db *store.DB, conn *sql.Conn) int64 {
	t.Helper()
	q := map[store.Dialect]string{store.MySQL: "SELECT CONNECTION_ID()", store.Postgres: "SELECT pg_backend_pid()"}[db.Driver().Dialect()]
	if q == "" {
		t.Fatalf("testenv: %s has no sessions to name", db.URL)
	}
	var id int64
	if err := conn.QueryRowContext(context.Background(), q).Scan(&id); err != nil {
		t.Fatalf("testenv: session id: %v", err)
	}
	return id
}

// Kill ends the server session id from another connection of db (KILL
// CONNECTION, pg_terminate_backend), as an operator or a failover would, and
// waits until the server no longer lists it.
func Kill(t testing.TB, db *store.DB, id int64) {
	t.Helper()
	ctx := context.Background()
	kill, listed := "KILL CONNECTION ?", "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?"
	if db.Driver().Dialect() == store.Postgres {
		kill, listed = "SELECT pg_terminate_backend(?)", "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ?"
	}
	if _, err := db.SQL.ExecContext(ctx, db.Rebind(kill), id); err != nil {
		t.Fatalf("testenv: kill session %d: %v", id, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := db.SQL.QueryRowContext(ctx, db.Rebind(listed), id).Scan(&n); err != nil {
			t.Fatalf("testenv: is session %d gone: %v", id, err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: session %d still listed 30s after it was killed", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

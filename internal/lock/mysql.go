package lock

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/twmb/murmur3"
)

// MySQLName derives the GET_LOCK name of an org: MySQL limits lock names to
// 64 characters and org names are free text, so the name carries a 128-bit
// murmur3 hash of the org rather than the org itself.
func MySQLName(org string) string {
	h1, h2 := murmur3.StringSum128(org)
	return fmt.Sprintf("authz_consumer:org:%016x%016x", h1, h2)
}

func acquireMySQL(ctx context.Context, conn *sql.Conn, org string, wait time.Duration) (Release, error) {
	name := MySQLName(org)
	deadline := time.Now().Add(wait)
	for {
		// Wait in slices of at most a second so a cancelled context is seen.
		slice := time.Until(deadline)
		if slice > time.Second {
			slice = time.Second
		}
		if slice < 0 {
			slice = 0
		}
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, slice.Seconds()).Scan(&got); err != nil {
			return nil, fmt.Errorf("GET_LOCK %s: %w", name, err)
		}
		if got.Valid && got.Int64 == 1 {
			break
		}
		if !got.Valid {
			return nil, fmt.Errorf("GET_LOCK %s returned NULL", name)
		}
		if !time.Now().Before(deadline) {
			return nil, ErrTimeout
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return func(ctx context.Context) error {
		var released sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT RELEASE_LOCK(?)", name).Scan(&released); err != nil {
			return fmt.Errorf("RELEASE_LOCK %s: %w", name, err)
		}
		if released.Int64 != 1 {
			return fmt.Errorf("RELEASE_LOCK %s: lock was not held by this connection", name)
		}
		return nil
	}, nil
}

func holderMySQL(ctx context.Context, conn *sql.Conn, org string) string {
	var id sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT IS_USED_LOCK(?)", MySQLName(org)).Scan(&id); err != nil || !id.Valid {
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

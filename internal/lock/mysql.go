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

package lock

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/twmb/murmur3"
)

// PostgresKey derives the 64-bit advisory lock key of an org with murmur3.
func PostgresKey(org string) int64 {
	return int64(murmur3.StringSum64("authz_consumer:org:" + org))
}

func acquirePostgres(ctx context.Context, conn *sql.Conn, org string, wait time.Duration) (Release, error) {
	key := PostgresKey(org)
	deadline := time.Now().Add(wait)
	backoff := 5 * time.Millisecond
	for {
		var got bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&got); err != nil {
			return nil, fmt.Errorf("pg_try_advisory_lock(%d): %w", key, err)
		}
		if got {
			break
		}
		if !time.Now().Before(deadline) {
			return nil, ErrTimeout
		}
		if err := sleep(ctx, backoff); err != nil {
			return nil, err
		}
		if backoff < 200*time.Millisecond {
			backoff *= 2
		}
	}
	return func(ctx context.Context) error {
		var released bool
		if err := conn.QueryRowContext(ctx, "SELECT pg_advisory_unlock($1)", key).Scan(&released); err != nil {
			return fmt.Errorf("pg_advisory_unlock(%d): %w", key, err)
		}
		if !released {
			return fmt.Errorf("pg_advisory_unlock(%d): lock was not held by this connection", key)
		}
		return nil
	}, nil
}

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

func holderPostgres(ctx context.Context, conn *sql.Conn, org string) string {
	key := uint64(PostgresKey(org))
	var (
		pid       int64
		user, app sql.NullString
		addr      sql.NullString
		heldFor   sql.NullFloat64
	)
	// A bigint advisory key shows in pg_locks as classid (high 32 bits),
	// objid (low 32 bits), objsubid 1.
	err := conn.QueryRowContext(ctx, `SELECT a.pid, a.usename, a.application_name, host(a.client_addr),
		EXTRACT(EPOCH FROM now() - COALESCE(a.xact_start, a.backend_start))
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
		AND l.classid::bigint = $1 AND l.objid::bigint = $2`, int64(key>>32), int64(key&0xffffffff)).
		Scan(&pid, &user, &app, &addr, &heldFor)
	if err != nil {
		return ""
	}
	s := fmt.Sprintf("database backend pid %d (%s", pid, user.String)
	if addr.String != "" {
		s += "@" + addr.String
	}
	if app.String != "" {
		s += ", " + app.String
	}
	return s + fmt.Sprintf(", for %.0fs)", heldFor.Float64)
}

// Package lock takes the per-org database advisory lock every migration run
// holds. A lock lives on one physical connection: the caller passes
// a dedicated *sql.Conn, keeps it for the whole run, and calls the returned
// release function explicitly (returning a pooled connection to the pool does
// not release a MySQL lock). One file per dialect.
package lock

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/store"
)

// ErrTimeout means the lock was not granted within the wait limit. It is
// transient: another run of the same org holds it.
var ErrTimeout = errors.New("advisory lock wait timed out")

// Release gives a lock back. It must be called on the same connection.
type Release func(ctx context.Context) error

// Acquire takes the advisory lock of org on conn, waiting at most wait.
// The lock is named by the case-folded org: Open edX's MySQL compares orgs
// case-insensitively, so OrgX and orgx are one org and one lock.
// On SQLite it does nothing: there the run's IMMEDIATE transaction is the
// single writer, and it waits for the write lock itself.
func Acquire(ctx context.Context, d store.Dialect, conn *sql.Conn, org string, wait time.Duration) (Release, error) {
	var (
		rel Release
		err error
	)
	folded := authz.FoldOrg(org)
	switch d {
	case store.MySQL:
		rel, err = acquireMySQL(ctx, conn, folded, wait)
	case store.Postgres:
		rel, err = acquirePostgres(ctx, conn, folded, wait)
	default:
		rel, err = func(context.Context) error { return nil }, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lock org %q: %w", org, err)
	}
	return rel, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Holder describes who holds org's advisory lock now, as far as the
// database tells ("" when it cannot say, or on SQLite, whose writer lock
// has no owner to name). conn is any connection but the waiting one's lock
// is not needed; the description is for the operator waiting.
func Holder(ctx context.Context, d store.Dialect, conn *sql.Conn, org string) string {
	folded := authz.FoldOrg(org)
	switch d {
	case store.MySQL:
		return holderMySQL(ctx, conn, folded)
	case store.Postgres:
		return holderPostgres(ctx, conn, folded)
	}
	return ""
}

// Package lock takes the per-org advisory lock every migration run holds,
// and the sweep's lock. A lock lives on one physical connection: the
// caller passes a dedicated *sql.Conn, keeps it for the whole run, and
// calls the returned release function explicitly (returning a pooled
// connection to the pool does not release a MySQL lock).
//
// This package is what the engine calls: it folds the org into the lock's
// name, waits, and wraps the errors. How a database locks (GET_LOCK,
// pg_try_advisory_lock, or nothing on SQLite, whose IMMEDIATE transaction
// is the single writer) is the store driver's; this package imports the
// store, never the other way round.
package lock

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/store"
)

// ErrTimeout means the lock was not granted within the wait limit. It is
// transient: another run of the same org holds it.
var ErrTimeout = store.ErrLockTimeout

// Release gives a lock back. It must be called on the same connection.
type Release func(ctx context.Context) error

// Acquire takes the advisory lock of org on conn, waiting at most wait.
// The lock is named by the case-folded org: Open edX's MySQL compares orgs
// case-insensitively, so OrgX and orgx are one org and one lock.
// Where the database has one writer instead of advisory locks
// (Driver.SingleWriter) it does nothing: the run's transaction waits for
// the write lock itself.
func Acquire(ctx context.Context, d store.Driver, conn *sql.Conn, org string, wait time.Duration) (Release, error) {
	rel, err := d.AcquireLock(ctx, conn, authz.FoldOrg(org), wait)
	if err != nil {
		return nil, fmt.Errorf("lock org %q: %w", org, err)
	}
	return rel, nil
}

// Holder describes who holds org's advisory lock now, as far as the
// database tells ("" when it cannot say, or where the database's one
// writer lock has no owner to name). conn is any connection; the
// description is for the operator waiting.
func Holder(ctx context.Context, d store.Driver, conn *sql.Conn, org string) string {
	return d.LockHolder(ctx, conn, authz.FoldOrg(org))
}

package lock_test

import (
	"context"
	"database/sql"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/lock"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

// The org lock on its own, on every database: exclusive between two
// connections, a wait that runs out is ErrTimeout, release frees it, a
// killed holder frees it, two spellings of one org are one lock (Open edX's
// MySQL compares orgs case-insensitively, so both select the same rows),
// another org is not held up, and Holder names the holding session.
func TestOrgLock(t *testing.T) {
	for _, d := range testenv.Databases {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db, err := store.Open(ctx, d.URL(t))
			require.NoError(t, err)
			t.Cleanup(func() { db.Close() })
			newConn := func() *sql.Conn {
				c, err := db.SQL.Conn(ctx)
				require.NoError(t, err)
				t.Cleanup(func() { c.Close() })
				return c
			}
			holder, other := newConn(), newConn()

			if !d.AdvisoryLocks {
				// One writer instead: taking the lock does nothing, on any
				// number of connections, and there is no holder to name.
				require.NotEmpty(t, db.Driver().SingleWriter())
				r1, err := lock.Acquire(ctx, db.Driver(), holder, "OrgX", 0)
				require.NoError(t, err)
				r2, err := lock.Acquire(ctx, db.Driver(), other, "OrgX", 0)
				require.NoError(t, err)
				require.Empty(t, lock.Holder(ctx, db.Driver(), other, "OrgX"))
				require.NoError(t, r1(ctx))
				require.NoError(t, r2(ctx))
				return
			}
			require.Empty(t, db.Driver().SingleWriter())

			require.Empty(t, lock.Holder(ctx, db.Driver(), other, "OrgX"), "nobody holds it yet")
			release, err := lock.Acquire(ctx, db.Driver(), holder, "OrgX", time.Second)
			require.NoError(t, err)
			who := lock.Holder(ctx, db.Driver(), other, "orgx")
			require.Contains(t, who, " "+strconv.FormatInt(testenv.SessionID(t, db, holder), 10)+" ", "Holder names the holding session: %s", who)

			start := time.Now()
			_, err = lock.Acquire(ctx, db.Driver(), other, "orgx", 300*time.Millisecond)
			require.ErrorIs(t, err, lock.ErrTimeout, "orgx is the same lock as OrgX")
			require.GreaterOrEqual(t, time.Since(start), 300*time.Millisecond, "it waited before giving up")

			releaseY, err := lock.Acquire(ctx, db.Driver(), other, "OrgY", time.Second)
			require.NoError(t, err, "another org is free")
			require.NoError(t, releaseY(ctx))

			// A waiter is granted the lock once it is released.
			granted := make(chan error, 1)
			go func() {
				rel, err := lock.Acquire(ctx, db.Driver(), other, "ORGX", 10*time.Second)
				if err == nil {
					err = rel(ctx)
				}
				granted <- err
			}()
			time.Sleep(100 * time.Millisecond)
			require.NoError(t, release(ctx))
			require.NoError(t, <-granted, "free once released")
			require.Error(t, release(ctx), "a lock released twice was not held")

			// A killed holder's session takes its lock with it.
			doomed := newConn()
			_, err = lock.Acquire(ctx, db.Driver(), doomed, "OrgZ", time.Second)
			require.NoError(t, err)
			_, err = lock.Acquire(ctx, db.Driver(), other, "OrgZ", 0)
			require.ErrorIs(t, err, lock.ErrTimeout)
			testenv.Kill(t, db, testenv.SessionID(t, db, doomed))
			releaseZ, err := lock.Acquire(ctx, db.Driver(), other, "OrgZ", 10*time.Second)
			require.NoError(t, err, "the killed holder's lock is free")
			require.NoError(t, releaseZ(ctx))
		})
	}
}

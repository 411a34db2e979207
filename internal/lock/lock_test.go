package lock_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/lock"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

// Two spellings of one org are one lock (Open edX's MySQL compares orgs
// case-insensitively, so both select the same rows); another org is not
// held up; a released lock can be taken again.
func TestOrgLockIsCaseFolded(t *testing.T) {
	for _, d := range testenv.Servers() {
		t.Run(d.Name, func(t *testing.T) {
			ctx := context.Background()
			db, err := store.Open(ctx, d.URL(t))
			require.NoError(t, err)
			defer db.Close()
			holder, err := db.SQL.Conn(ctx)
			require.NoError(t, err)
			defer holder.Close()
			other, err := db.SQL.Conn(ctx)
			require.NoError(t, err)
			defer other.Close()

			release, err := lock.Acquire(ctx, db.Driver(), holder, "OrgX", time.Second)
			require.NoError(t, err)
			_, err = lock.Acquire(ctx, db.Driver(), other, "orgx", 300*time.Millisecond)
			require.ErrorIs(t, err, lock.ErrTimeout, "orgx is the same lock as OrgX")
			releaseY, err := lock.Acquire(ctx, db.Driver(), other, "OrgY", time.Second)
			require.NoError(t, err, "another org is free")
			require.NoError(t, releaseY(ctx))
			require.NoError(t, release(ctx))
			releaseX, err := lock.Acquire(ctx, db.Driver(), other, "ORGX", time.Second)
			require.NoError(t, err, "free again once released")
			require.NoError(t, releaseX(ctx))
		})
	}
}

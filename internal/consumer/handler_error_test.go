package consumer_test

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/store"
)

// An error the engine returns that retrying cannot cure (here the database
// refuses, by a trigger, every run record of one course, so the engine can
// neither run it nor record the run as failed) used to be retried for ever
// and hold up the partition. The event is parked with reason handler_error
// at the first failure, and the next event on the partition is handled.
func TestPermanentHandlerErrorIsParkedAndPartitionMovesOn(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	_, err := fx.db.SQL.ExecContext(fx.ctx, `CREATE TRIGGER refuse_intro_runs BEFORE INSERT ON openedx_authz_authzcourseauthoringmigrationrun
		WHEN NEW.scope_key = '`+demo.CourseIntro+`' BEGIN SELECT RAISE(ABORT, 'runs of this course are refused'); END`)
	require.NoError(t, err)
	fx.startDefault()
	before := fx.counts()

	bad := fx.encode(fx.save(course(demo.CourseIntro, "on")))
	badID, _ := bad.Header("ce_id")
	fx.write(bad)
	next := fx.encode(fx.save(course(demo.CourseBio, "on")))
	next.Key = bad.Key // same partition, after it
	nextID, _ := next.Header("ce_id")
	fx.write(next)
	fx.waitCommitted()

	outcome, _ := fx.outcome(badID)
	require.Equal(t, "parked", outcome)
	s := fx.settledFor(badID)
	require.Len(t, s, 1)
	require.Equal(t, consumer.ReasonHandlerError, s[0].Reason)
	require.Equal(t, 1, s[0].Attempts, "parked at the first failure, not retried")
	require.Zero(t, fx.retryCount("database"))
	parked, err := fx.engine(migrator.Options{}).Parked(fx.ctx, false)
	require.NoError(t, err)
	require.Len(t, parked, 1)
	require.Equal(t, badID, parked[0].EventID)
	require.Equal(t, consumer.ReasonHandlerError, parked[0].Reason)
	require.Contains(t, parked[0].Detail, "runs of this course are refused")
	dl := fx.deadLetters(1)
	require.Equal(t, consumer.ReasonHandlerError, consumer.Header(dl[0], consumer.HeaderParkedReason))
	require.Equal(t, badID, consumer.Header(dl[0], "ce_id"))
	require.Equal(t, bad.Value, dl[0].Value)

	outcome, runID := fx.outcome(nextID)
	require.Equal(t, "ran", outcome, "the next event on the partition is handled")
	require.NotZero(t, runID)
	after := fx.counts()
	require.Equal(t, before[demo.CourseIntro], after[demo.CourseIntro], "nothing moved for the parked event")
	require.Equal(t, demo.ScopeCounts{Assignments: 2}, after[demo.CourseBio])
}

// A transient error (another writer holds SQLite's write lock, and the
// engine's connections do not wait for it) is retried with backoff; the
// offset is not committed until the event is handled.
func TestTransientHandlerErrorIsRetriedUntilHandled(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "test.db")
	fx := newFixtureURL(t, "sqlite:///"+path)
	o := fx.save(course(demo.CourseIntro, "on"))

	holder, err := fx.db.SQL.BeginTx(fx.ctx, nil) // BEGIN IMMEDIATE: the write lock
	require.NoError(t, err)
	defer holder.Rollback()
	fx.start(fx.options(migrator.New(openNoBusyWait(t, path), migrator.Options{AutoMigrate: true})))
	id := fx.publish(o)
	fx.eventually("three retries of the busy database", func() bool { return fx.retryCount("database") >= 3 })
	require.Empty(t, fx.settledFor(id), "not settled while the database is busy")
	end := fx.end()
	committed, err := fx.offsets.Committed(fx.ctx, keys(end))
	require.NoError(t, err)
	for p, e := range end {
		if e > 0 {
			require.Less(t, committed[p], e, "partition %d: no commit while the event is retried", p)
		}
	}

	require.NoError(t, holder.Rollback())
	fx.waitCommitted()
	s := fx.settledFor(id)
	require.Len(t, s, 1)
	require.Equal(t, migrator.OutcomeRan, s[0].Result.Outcome)
	require.Greater(t, s[0].Attempts, 3)
	outcome, runID := fx.outcome(id)
	require.Equal(t, "ran", outcome)
	require.NotZero(t, runID)
	parked, err := fx.engine(migrator.Options{}).Parked(fx.ctx, false)
	require.NoError(t, err)
	require.Empty(t, parked)
}

// openNoBusyWait opens the SQLite file at path as store.Open does, but with
// no busy timeout: a busy database fails at once with SQLITE_BUSY instead
// of waiting up to a minute.
func openNoBusyWait(t *testing.T, path string) *store.DB {
	t.Helper()
	sqlDB, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	require.NoError(t, err)
	t.Cleanup(func() { sqlDB.Close() })
	db, err := store.Wrap(context.Background(), sqlDB, "sqlite:///"+path)
	require.NoError(t, err)
	return db
}

// refusedDial is the error of a real connection attempt to a 127.0.0.1
// port nothing listens on, as the engine wraps it.
func refusedDial() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	addr := l.Addr().String()
	l.Close()
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		return fmt.Errorf("get connection: %s answered after its listener closed", addr)
	}
	return fmt.Errorf("get connection: %w", err)
}

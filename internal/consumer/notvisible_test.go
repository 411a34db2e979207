package consumer_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/migrator"
)

// An event whose override row is not visible yet is set aside: the events
// after it, on its partition and on the others, are handled at once, while
// its partition's committed offset stays below it. When its row commits it
// runs, and the partition's offset moves to the end.
func TestInvisibleRowHoldsUpNothingButItsOwnOffset(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	opts := fx.options(fx.engine(migrator.Options{AutoMigrate: true}))
	opts.NotVisibleLimit = time.Hour // it must be its row that settles it, not the limit
	fx.start(opts)

	late := course(demo.CourseIntro, "on")
	late.ID, late.Org, late.Flag, late.ChangeDate = 700, demo.OrgDemo, authz.DefaultFlag, time.Now().UTC()
	lateID := fx.publish(late)
	fx.eventually("the late event set aside", func() bool { return fx.retryCount("not_visible") > 0 })

	// After it: the same scope (its partition) and two others.
	_, sameKey := fx.toggle(course(demo.CourseIntro, "off"))
	_, other := fx.toggle(course(demo.CourseBio, "on"))
	_, orgEv := fx.toggle(org(demo.OrgOther, "on"))
	for _, id := range []string{sameKey, other, orgEv} {
		fx.eventually("event "+id+" handled while the late one waits", func() bool { return len(fx.settledFor(id)) == 1 })
	}
	require.Empty(t, fx.settledFor(lateID), "the late event must still wait for its row")
	outcome, _ := fx.outcome(other)
	require.Equal(t, "ran", outcome)

	// Its partition's commit stays at the late event; the others move on.
	latePart, lateOff := -1, int64(-1)
	for _, s := range fx.settledFor(sameKey) {
		latePart, lateOff = s.Partition, s.Offset-1 // the same key: its partition, just before
	}
	end := fx.end()
	fx.eventually("the other partitions committed to their end", func() bool {
		committed, err := fx.offsets.Committed(fx.ctx, keys(end))
		require.NoError(t, err)
		for p, e := range end {
			if p != latePart && e > 0 && committed[p] < e {
				return false
			}
		}
		return true
	})
	committed, err := fx.offsets.Committed(fx.ctx, []int{latePart})
	require.NoError(t, err)
	require.LessOrEqual(t, committed[latePart], lateOff, "partition %d committed past its unsettled event at offset %d", latePart, lateOff)

	// The row commits: the late event settles and everything is committed.
	_, err = fx.db.SQL.ExecContext(fx.ctx, fx.db.Rebind(`INSERT INTO waffle_utils_waffleflagcourseoverridemodel
		(id, change_date, enabled, waffle_flag, course_id, override_choice, note, changed_by_id) VALUES (?, ?, ?, ?, ?, ?, '', NULL)`),
		late.ID, late.ChangeDate, true, authz.DefaultFlag, demo.CourseIntro, "on")
	require.NoError(t, err)
	fx.waitCommitted()
	s := fx.settledFor(lateID)
	require.Len(t, s, 1)
	require.Greater(t, s[0].Attempts, 1)
	// The course's newest row is the "off" saved after it, so the late
	// event reconciles to where the roles already are.
	require.Equal(t, migrator.OutcomeNoop, s[0].Result.Outcome)
	require.Equal(t, demo.ScopeCounts{Legacy: 5}, fx.counts()[demo.CourseIntro])
}

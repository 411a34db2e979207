package demo_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

func newDB(t *testing.T) *store.DB {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, testenv.SQLiteURL(t))
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.CreateSchema(ctx))
	return db
}

// Seed writes the demo's roles once: a second Seed changes nothing.
func TestSeedTwiceWritesTheDataOnce(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	require.NoError(t, demo.Seed(ctx, db))
	once, err := demo.TakeDump(ctx, db)
	require.NoError(t, err)
	require.Len(t, once["student_courseaccessrole"], len(demo.Roles))
	require.Contains(t, once["student_courseaccessrole"], "ana | DemoX | course-v1:DemoX+Intro+2024 | instructor")

	require.NoError(t, demo.Seed(ctx, db))
	twice, err := demo.TakeDump(ctx, db)
	require.NoError(t, err)
	require.Empty(t, demo.Diff(once, twice))

	counts, err := demo.CountByScope(ctx, db)
	require.NoError(t, err)
	require.Equal(t, demo.ScopeCounts{Legacy: 5}, counts[demo.CourseIntro])
}

// Save appends a row per save, as Django's ConfigurationModel does, and
// its Event carries what the LMS would publish.
func TestSaveAppendsAndDescribesItsEvent(t *testing.T) {
	ctx := context.Background()
	db := newDB(t)
	at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))
	first, err := demo.Save(ctx, db, demo.Override{ScopeType: "course", ScopeKey: demo.CourseBio, Enabled: true, Choice: "on", ChangeDate: at, ChangedBy: demo.Admin})
	require.NoError(t, err)
	second, err := demo.Save(ctx, db, demo.Override{ScopeType: "course", ScopeKey: demo.CourseBio, Enabled: true, Choice: "off"})
	require.NoError(t, err)
	require.Greater(t, second.ID, first.ID, "a second save is a new row")

	ev := first.Event()
	require.Equal(t, authz.DefaultFlag, ev.WaffleFlag, "the watched flag unless set")
	require.Equal(t, demo.OrgOther, ev.Org, "the org comes from the course key")
	require.Equal(t, first.ID, ev.RecordID)
	require.Equal(t, at.UTC(), ev.ChangeDate)
	require.Equal(t, time.UTC, ev.ChangeDate.Location())
	require.Equal(t, demo.Admin, ev.ChangedBy)

	org, err := demo.Save(ctx, db, demo.Override{ScopeType: "org", ScopeKey: demo.OrgDemo, Choice: "on"})
	require.NoError(t, err)
	require.Equal(t, demo.OrgDemo, org.Org)

	_, err = demo.Save(ctx, db, demo.Override{ScopeType: "site", ScopeKey: "x"})
	require.ErrorContains(t, err, `scope type "site" is neither course nor org`)

	before, err := demo.TakeDump(ctx, db)
	require.NoError(t, err)
	require.NoError(t, demo.AddRoles(ctx, db, demo.Team("t", demo.CourseData, 3)...))
	after, err := demo.TakeDump(ctx, db)
	require.NoError(t, err)
	require.Len(t, demo.Diff(before, after), 3, "Diff names each row added")
}

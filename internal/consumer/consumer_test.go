package consumer_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/migrator"
)

// The demo's scopes as CountByScope keys them.
const (
	globDemo = "course-v1:DemoX+*"
)

func TestToggleSequenceEndsInExpectedTables(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	ctx := fx.ctx
	fx.startDefault()

	type step struct {
		name      string
		save      demo.Override
		outcome   string
		direction string
	}
	var ids []string
	var want []step
	do := func(s step) {
		_, id := fx.toggle(s.save)
		ids = append(ids, id)
		want = append(want, s)
		fx.waitCommitted() // the next save happens after this one was acted on, as when people click
	}
	do(step{"course on", course(demo.CourseIntro, "on"), "ran", "forward"})
	do(step{"org on", org(demo.OrgDemo, "on"), "ran", "forward"})
	do(step{"course off under org on", course(demo.CourseAdv, "off"), "ran", "rollback"})
	removed := course(demo.CourseAdv, "off")
	removed.Enabled = false // a disabled row defers: the org level applies again
	do(step{"course override removed", removed, "ran", "forward"})
	do(step{"same state saved again", course(demo.CourseIntro, "on"), "noop", ""})

	// A global change: Django emits no event, and nothing moves by itself.
	// An org saved on while the flag is on for everyone does not change its
	// effective state, but the org was never reconciled and its roles are
	// on the wrong side: its event catches it up.
	on := true
	require.NoError(t, demo.SetEveryone(ctx, fx.db, authz.DefaultFlag, &on))
	do(step{"org on while global on", org(demo.OrgOther, "on"), "ran", "forward"})
	do(step{"org on while global on, saved again", org(demo.OrgOther, "on"), "noop", ""})
	require.NoError(t, demo.SetEveryone(ctx, fx.db, authz.DefaultFlag, nil))

	other := org(demo.OrgDemo, "off")
	other.Flag = "studio.some_other_flag"
	do(step{"other flag", other, "ignored", ""})
	ccx := course(demo.CCXIntro, "off")
	ccx.Org = demo.OrgDemo
	do(step{"ccx key", ccx, "ignored", ""})
	slash := course(demo.OldSlash, "off")
	slash.Org = demo.OrgDemo
	do(step{"old slash key", slash, "ignored", ""})

	fx.waitCommitted()

	for i, s := range want {
		outcome, runID := fx.outcome(ids[i])
		require.Equal(t, s.outcome, outcome, "step %q", s.name)
		require.Equal(t, s.outcome == "ran", runID != 0, "step %q run id", s.name)
	}
	runs := fx.runs()
	require.Len(t, runs, 5)
	for i, w := range []struct {
		dir   migrator.Direction
		scope string
	}{{migrator.Forward, demo.CourseIntro}, {migrator.Forward, demo.OrgDemo}, {migrator.Rollback, demo.CourseAdv}, {migrator.Forward, demo.CourseAdv}, {migrator.Forward, demo.OrgOther}} {
		require.Equal(t, w.dir, runs[i].MigrationType, "run %d", i)
		require.Equal(t, w.scope, runs[i].ScopeKey, "run %d", i)
		require.Contains(t, []string{migrator.StatusCompleted, migrator.StatusPartialSuccess}, runs[i].Status, "run %d", i)
	}
	require.Equal(t, map[string]demo.ScopeCounts{
		demo.CourseIntro: {Legacy: 1, Assignments: 4}, // finance_admin is never migrated
		demo.CourseAdv:   {Legacy: 0, Assignments: 3},
		demo.CourseData:  {Legacy: 0, Assignments: 2},
		globDemo:         {Legacy: 1, Assignments: 1}, // support stays legacy
		demo.CCXIntro:    {Legacy: 1},
		demo.OldSlash:    {Legacy: 1},
		demo.CourseBio:   {Assignments: 2},
	}, fx.counts())
}

func TestAutoMigrateOffRecordsDisabled(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.start(fx.options(fx.engine(migrator.Options{}))) // automatic migration off: the default
	before := fx.counts()
	_, id := fx.toggle(course(demo.CourseIntro, "on"))
	other := course(demo.CourseIntro, "on")
	other.Flag = "some.other_flag"
	_, otherID := fx.toggle(other)
	fx.waitCommitted()

	outcome, runID := fx.outcome(id)
	require.Equal(t, "disabled", outcome)
	require.Zero(t, runID)
	outcome, _ = fx.outcome(otherID)
	require.Equal(t, "ignored", outcome)
	require.Empty(t, fx.runs())
	require.Equal(t, before, fx.counts())
}

func TestJSONEventsAreHandled(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.startDefault()
	o := fx.save(course(demo.CourseBio, "on"))
	id := fx.publishJSON(o)
	fx.waitCommitted()
	outcome, runID := fx.outcome(id)
	require.Equal(t, "ran", outcome)
	require.NotZero(t, runID)
	require.Equal(t, demo.ScopeCounts{Assignments: 2}, fx.counts()[demo.CourseBio])
}

// Events arrive newest first. Each reconciles its scope with the state now:
// the first to arrive moves the roles, the others find nothing to do.
func TestOutOfOrderEventsReconcile(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	// Three saves of one course, on, off, on; their events arrive newest
	// first: the first one moves the roles forward (on now).
	r1 := fx.save(course(demo.CourseIntro, "on"))
	r2 := fx.save(course(demo.CourseIntro, "off"))
	r3 := fx.save(course(demo.CourseIntro, "on"))
	id3, id1, id2 := fx.publish(r3), fx.publish(r1), fx.publish(r2)
	// An org turned on then off: off now, and its roles never left the
	// legacy table, so neither event moves anything.
	o1 := fx.save(org(demo.OrgOther, "on"))
	o2 := fx.save(org(demo.OrgOther, "off"))
	oid2, oid1 := fx.publish(o2), fx.publish(o1)
	fx.startDefault()
	fx.waitCommitted()

	outcome, _ := fx.outcome(id3)
	require.Equal(t, "ran", outcome)
	for _, id := range []string{id1, id2, oid1, oid2} {
		outcome, runID := fx.outcome(id)
		require.Equal(t, "noop", outcome)
		require.Zero(t, runID)
	}
	runs := fx.runs()
	require.Len(t, runs, 1)
	require.Equal(t, migrator.Forward, runs[0].MigrationType)
	require.Equal(t, demo.CourseIntro, runs[0].ScopeKey)
	counts := fx.counts()
	require.Equal(t, demo.ScopeCounts{Legacy: 1, Assignments: 4}, counts[demo.CourseIntro])
	require.Equal(t, demo.ScopeCounts{Legacy: 2}, counts[demo.CourseBio])
}

func TestOverrideRowCommittedAfterEventArrives(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.startDefault()
	// The producer publishes before its transaction commits: the event names
	// row 500, which appears only after the consumer has seen the event.
	ev := course(demo.CourseIntro, "on")
	ev.ID, ev.Org, ev.Flag, ev.ChangeDate = 500, demo.OrgDemo, authz.DefaultFlag, time.Now().UTC()
	id := fx.publish(ev)
	fx.eventually("a not-visible retry", func() bool { return fx.retryCount("not_visible") > 0 })
	require.Empty(t, fx.settledFor(id), "the event must wait for its row")
	_, err := fx.db.SQL.ExecContext(fx.ctx, fx.db.Rebind(`INSERT INTO waffle_utils_waffleflagcourseoverridemodel
		(id, change_date, enabled, waffle_flag, course_id, override_choice, note, changed_by_id) VALUES (?, ?, ?, ?, ?, ?, '', NULL)`),
		ev.ID, ev.ChangeDate, true, authz.DefaultFlag, demo.CourseIntro, "on")
	require.NoError(t, err)
	fx.waitCommitted()
	outcome, runID := fx.outcome(id)
	require.Equal(t, "ran", outcome)
	require.NotZero(t, runID)
	require.Equal(t, demo.ScopeCounts{Legacy: 1, Assignments: 4}, fx.counts()[demo.CourseIntro])
}

func TestOverrideRowNeverVisibleIsParked(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	opts := fx.options(fx.engine(migrator.Options{AutoMigrate: true}))
	opts.NotVisibleLimit = 200 * time.Millisecond
	fx.start(opts)
	ghost := course(demo.CourseIntro, "on")
	ghost.ID, ghost.Org, ghost.Flag = 9999, demo.OrgDemo, authz.DefaultFlag
	id := fx.publish(ghost)
	_, laterID := fx.toggle(course(demo.CourseIntro, "on")) // same key, same partition, after it
	fx.waitCommitted()

	outcome, _ := fx.outcome(id)
	require.Equal(t, "parked", outcome)
	outcome, _ = fx.outcome(laterID)
	require.Equal(t, "ran", outcome)
	dl := fx.deadLetters(1)
	require.Equal(t, consumer.ReasonNotVisible, consumer.Header(dl[0], consumer.HeaderParkedReason))
	require.Equal(t, id, consumer.Header(dl[0], "ce_id"))
}

// With the sweep on, an event whose override row does not become visible
// in time is settled as waiting and the partition moves on; once the row
// commits, the sweep reconciles its scope.
func TestOverrideRowNotVisibleIsLeftToTheSweep(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	eng := fx.engine(migrator.Options{AutoMigrate: true})
	_, err := eng.Sweep(fx.ctx, migrator.SweepOptions{}) // watermarks, as `run` sets them at start
	require.NoError(t, err)
	opts := fx.options(eng)
	opts.NotVisibleLimit = 200 * time.Millisecond
	opts.LeaveToSweep = true
	fx.start(opts)
	late := course(demo.CourseAdv, "on")
	late.ID, late.Org, late.Flag, late.ChangeDate = 9000, demo.OrgDemo, authz.DefaultFlag, time.Now().UTC()
	id := fx.publish(late)
	_, laterID := fx.toggle(course(demo.CourseIntro, "on"))
	fx.waitCommitted()
	outcome, _ := fx.outcome(id)
	require.Equal(t, "waiting", outcome)
	outcome, _ = fx.outcome(laterID)
	require.Equal(t, "ran", outcome, "the partition moved on")
	parked, err := eng.ParkedCount(fx.ctx)
	require.NoError(t, err)
	require.Zero(t, parked, "nothing parked")

	// The row commits late; the sweep reconciles the course.
	_, err = fx.db.SQL.ExecContext(fx.ctx, fx.db.Rebind(`INSERT INTO waffle_utils_waffleflagcourseoverridemodel
		(id, change_date, enabled, waffle_flag, course_id, override_choice, note, changed_by_id) VALUES (?, ?, ?, ?, ?, ?, '', NULL)`),
		late.ID, late.ChangeDate, true, authz.DefaultFlag, demo.CourseAdv, "on")
	require.NoError(t, err)
	res, err := eng.Sweep(fx.ctx, migrator.SweepOptions{})
	require.NoError(t, err)
	require.Equal(t, 1, res.Runs)
	require.Equal(t, demo.ScopeCounts{Assignments: 3}, fx.counts()[demo.CourseAdv])
}

func TestMalformedEventsAreParkedAndPartitionMovesOn(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	fx.startDefault()

	good := fx.save(course(demo.CourseIntro, "on"))
	avro, err := fx.enc.Encode(fx.ctx, testTopic, good.Event())
	require.NoError(t, err)
	jsonMsg := func(mutate func(map[string]any)) events.Message {
		m, err := fx.enc.EncodeJSON(testTopic, good.Event())
		require.NoError(t, err)
		o := map[string]any{
			"waffle_flag": authz.DefaultFlag, "scope_type": "course", "scope_key": demo.CourseIntro, "org": demo.OrgDemo,
			"enabled": true, "override_choice": "on", "record_id": good.ID, "change_date": "2024-05-01T12:00:00Z", "changed_by": "",
		}
		mutate(o)
		m.Value = mustJSON(t, map[string]any{"override": o})
		return m
	}
	cases := []struct {
		reason string
		msg    events.Message
	}{
		{events.ReasonFraming, func() events.Message { m := avro; m.Value = []byte("not avro"); return m }()},
		{events.ReasonUnknownSchemaID, func() events.Message {
			m := avro
			m.Value = append([]byte{0, 0, 0, 0x7f, 0x7f}, avro.Value[5:]...)
			return m
		}()},
		{events.ReasonBadAvro, func() events.Message { m := avro; m.Value = avro.Value[:8]; return m }()},
		{events.ReasonBadJSON, func() events.Message { m := jsonMsg(func(map[string]any) {}); m.Value = []byte("{"); return m }()},
		{events.ReasonMissingField, jsonMsg(func(o map[string]any) { delete(o, "record_id") })},
		{events.ReasonBadCEType, withHeader(avro, "ce_type", events.EventTypeBase+".v2")},
		{events.ReasonBadScopeType, jsonMsg(func(o map[string]any) { o["scope_type"] = "global" })},
		{events.ReasonBadCourseKey, jsonMsg(func(o map[string]any) { o["scope_key"] = "course-v1:nonsense" })},
		{events.ReasonScopeOrgMismatch, jsonMsg(func(o map[string]any) { o["org"] = demo.OrgOther })},
	}
	ceIDs := map[string]string{}
	for _, c := range cases {
		m := withHeader(c.msg, "ce_id", "malformed-"+c.reason)
		m.Key = avro.Key // same key: same partition as the good event after them
		ceIDs[c.reason] = "malformed-" + c.reason
		fx.write(m)
	}
	goodID := fx.publish(good)
	fx.waitCommitted()

	outcome, runID := fx.outcome(goodID)
	require.Equal(t, "ran", outcome, "the event after the malformed ones is handled")
	require.NotZero(t, runID)

	dl := fx.deadLetters(len(cases))
	parked, err := fx.engine(migrator.Options{}).Parked(fx.ctx, false)
	require.NoError(t, err)
	require.Len(t, parked, len(cases))
	for i, c := range cases {
		outcome, _ := fx.outcome(ceIDs[c.reason])
		require.Equal(t, "parked", outcome, c.reason)
		require.Equal(t, c.reason, parked[i].Reason)
		require.Equal(t, ceIDs[c.reason], parked[i].EventID)
		m := dl[i]
		require.Equal(t, c.reason, consumer.Header(m, consumer.HeaderParkedReason))
		require.NotEmpty(t, consumer.Header(m, consumer.HeaderParkedDetail))
		require.Equal(t, testTopic, consumer.Header(m, consumer.HeaderOriginalTopic))
		require.Equal(t, fmt.Sprint(parked[i].Partition), consumer.Header(m, consumer.HeaderOriginalPartition))
		require.Equal(t, fmt.Sprint(parked[i].Offset), consumer.Header(m, consumer.HeaderOriginalOffset))
		require.Equal(t, ceIDs[c.reason], consumer.Header(m, "ce_id"), "original headers are kept")
		require.Equal(t, cases[i].msg.Value, m.Value, "original value is kept")
		require.Equal(t, avro.Key, m.Key, "original key is kept")
	}
}

func TestRedeliveryAfterRebalanceMidRunMakesNoSecondRun(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	slow, inRun, release := fx.stallingEngine()
	a := fx.options(slow)
	a.GroupBalancers = []kafka.GroupBalancer{preferBalancer{rank: 1}}
	fx.start(a)
	_, id := fx.toggle(course(demo.CourseIntro, "on"))
	<-inRun // consumer A is inside the run's transaction

	b := fx.options(fx.engine(migrator.Options{AutoMigrate: true}))
	b.GroupBalancers = []kafka.GroupBalancer{preferBalancer{rank: 2}}
	bSettled := make(chan consumer.Settled, 10)
	b.OnSettled = func(s consumer.Settled) { bSettled <- s }
	runB := fx.start(b)
	fx.eventually("B joined and owns every partition", func() bool { return runB.consumer.Joined(fx.ctx) == nil })
	close(release) // A finishes its run after losing the partition

	select {
	case s := <-bSettled:
		require.Equal(t, id, s.EventID)
		require.Equal(t, migrator.OutcomeDuplicate, s.Result.Outcome, "B gets the event again and recognizes it")
	case <-time.After(waitLimit):
		t.Fatal("B never settled the redelivered event")
	}
	fx.waitCommitted()
	require.Len(t, fx.runs(), 1)
	outcome, _ := fx.outcome(id)
	require.Equal(t, "ran", outcome)
	require.Equal(t, demo.ScopeCounts{Legacy: 1, Assignments: 4}, fx.counts()[demo.CourseIntro])
}

func TestRestartBeforeCommitMakesNoSecondRun(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	// A handles the event (its effect is durable) and hangs before it can
	// commit the offset; B takes over the group's partitions.
	hung, release := make(chan struct{}), make(chan struct{})
	a := fx.options(fx.engine(migrator.Options{AutoMigrate: true}))
	a.GroupBalancers = []kafka.GroupBalancer{preferBalancer{rank: 1}}
	var once sync.Once
	a.OnSettled = func(consumer.Settled) { once.Do(func() { close(hung); <-release }) }
	runA := fx.start(a)
	_, id := fx.toggle(course(demo.CourseIntro, "on"))
	<-hung
	outcome, _ := fx.outcome(id)
	require.Equal(t, "ran", outcome)

	b := fx.options(fx.engine(migrator.Options{AutoMigrate: true}))
	b.GroupBalancers = []kafka.GroupBalancer{preferBalancer{rank: 2}}
	bSettled := make(chan consumer.Settled, 10)
	b.OnSettled = func(s consumer.Settled) { bSettled <- s }
	fx.start(b)
	select {
	case s := <-bSettled:
		require.Equal(t, id, s.EventID)
		require.Equal(t, migrator.OutcomeDuplicate, s.Result.Outcome)
	case <-time.After(waitLimit):
		t.Fatal("B never settled the redelivered event")
	}
	close(release)
	runA.stop()
	fx.waitCommitted()
	require.Len(t, fx.runs(), 1)
	require.Equal(t, demo.ScopeCounts{Legacy: 1, Assignments: 4}, fx.counts()[demo.CourseIntro])
}

func TestReplayOfWholeTopicChangesNothing(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	r := fx.startDefault()
	fx.toggle(course(demo.CourseIntro, "on"))
	fx.toggle(org(demo.OrgDemo, "on"))
	fx.toggle(course(demo.CourseAdv, "off"))
	fx.toggle(org(demo.OrgOther, "on"))
	fx.toggle(org(demo.OrgOther, "off"))
	fx.write(events.Message{Key: []byte("x"), Value: []byte("garbage")})
	fx.waitCommitted()
	before := fx.dump()
	require.NotEmpty(t, before["openedx_authz_authzcourseauthoringmigrationrun"])

	_, err := fx.offsets.ResetOffsets(fx.ctx, consumer.ResetTarget{Offset: 0})
	require.ErrorIs(t, err, consumer.ErrGroupActive, "no reset while a consumer is in the group")
	r.stop()
	fx.eventually("the group is empty", func() bool {
		m, err := fx.offsets.Members(fx.ctx)
		return err == nil && len(m) == 0
	})
	plan, err := fx.offsets.ResetOffsets(fx.ctx, consumer.ResetTarget{Offset: 0})
	require.NoError(t, err)
	replayed := int64(0)
	for _, p := range plan {
		require.Equal(t, p.Start, p.To)
		replayed += p.End - p.To
	}
	require.EqualValues(t, 6, replayed)
	lag, err := fx.offsets.Lag(fx.ctx)
	require.NoError(t, err)
	total := int64(0)
	for _, l := range lag {
		total += l
	}
	require.EqualValues(t, 6, total, "everything is to be read again")

	fx.mu.Lock()
	fx.settled = nil
	fx.mu.Unlock()
	fx.startDefault()
	fx.waitCommitted()
	fx.mu.Lock()
	for _, s := range fx.settled {
		require.Contains(t, []migrator.Outcome{migrator.OutcomeDuplicate, migrator.OutcomeParked}, s.Result.Outcome)
	}
	require.Len(t, fx.settled, 6)
	fx.mu.Unlock()
	require.Empty(t, demo.Diff(before, fx.dump()), "a replay changes nothing")
}

func TestReplayToTime(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	r := fx.startDefault()
	fx.toggle(course(demo.CourseIntro, "on"))
	fx.waitCommitted()
	mark := time.Now()
	fx.eventually("a later broker timestamp", func() bool { return time.Since(mark) > 5*time.Millisecond })
	_, id := fx.toggle(course(demo.CourseIntro, "off"))
	fx.waitCommitted()
	r.stop()
	fx.eventually("the group is empty", func() bool {
		m, err := fx.offsets.Members(fx.ctx)
		return err == nil && len(m) == 0
	})
	plan, err := fx.offsets.ResetOffsets(fx.ctx, consumer.ResetTarget{Time: mark})
	require.NoError(t, err)
	toReplay := int64(0)
	for _, p := range plan {
		toReplay += p.End - p.To
	}
	require.EqualValues(t, 1, toReplay, "only the event after the time")
	fx.mu.Lock()
	fx.settled = nil
	fx.mu.Unlock()
	fx.startDefault()
	fx.waitCommitted()
	s := fx.settledFor(id)
	require.Len(t, s, 1)
	require.Equal(t, migrator.OutcomeDuplicate, s[0].Result.Outcome)
}

// flaky fails its first n Handle calls with a transient error (a real
// refused connection, as when the database went away), then hands over to
// the real engine.
type flaky struct {
	consumer.Engine
	mu    sync.Mutex
	n     int
	calls int
}

func (f *flaky) Handle(ctx context.Context, src migrator.Source, ch migrator.Change) (migrator.Result, error) {
	f.mu.Lock()
	f.calls++
	fail := f.calls <= f.n
	f.mu.Unlock()
	if fail {
		return migrator.Result{}, refusedDial()
	}
	return f.Engine.Handle(ctx, src, ch)
}

func TestTransientFailureRetriesWithoutCommit(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	eng := &flaky{Engine: fx.engine(migrator.Options{AutoMigrate: true}), n: 1 << 30} // fails until released
	fx.start(fx.options(eng))
	_, id := fx.toggle(course(demo.CourseIntro, "on"))

	// While it fails, retries go on over many commit intervals (50ms) and
	// nothing is committed: the event has not taken effect.
	fx.eventually("6 retries", func() bool { return fx.retryCount("database") >= 6 })
	end := fx.end()
	committed, err := fx.offsets.Committed(fx.ctx, keys(end))
	require.NoError(t, err)
	for p, off := range committed {
		require.LessOrEqual(t, off, int64(0), "partition %d committed to %d while its event was failing", p, off)
	}
	require.Empty(t, fx.settledFor(id))

	eng.mu.Lock()
	eng.n = eng.calls // the next call succeeds
	failures := eng.calls
	eng.mu.Unlock()
	fx.waitCommitted()
	s := fx.settledFor(id)
	require.Len(t, s, 1)
	require.Equal(t, failures+1, s[0].Attempts)
	require.Equal(t, migrator.OutcomeRan, s[0].Result.Outcome)
	require.Equal(t, failures, fx.retryCount("database"))
	require.Len(t, fx.runs(), 1)
}

func TestShutdownDrainsEventInHand(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	slow, inRun, release := fx.stallingEngine()
	r := fx.start(fx.options(slow))
	_, id := fx.toggle(course(demo.CourseBio, "on"))
	<-inRun
	r.cancel() // SIGTERM while the run is in progress
	close(release)
	r.stop() // returns nil: drained
	outcome, runID := fx.outcome(id)
	require.Equal(t, "ran", outcome)
	require.NotZero(t, runID)
	require.Equal(t, migrator.StatusCompleted, statusOf(fx, runID, t))
	fx.waitCommitted() // the drained event's offset was committed on the way out
}

// stallingEngine returns an engine whose first run stops inside its
// transaction: inRun is closed when it gets there, and it goes on when
// release is closed.
func (fx *fixture) stallingEngine() (eng *migrator.Engine, inRun, release chan struct{}) {
	inRun, release = make(chan struct{}), make(chan struct{})
	var once sync.Once
	eng = fx.engine(migrator.Options{AutoMigrate: true, BatchSize: 1, Fault: func(point string) error {
		if strings.HasPrefix(point, "forward") {
			once.Do(func() { close(inRun); <-release })
		}
		return nil
	}})
	return eng, inRun, release
}

func statusOf(fx *fixture, runID int64, t *testing.T) string {
	run, err := fx.engine(migrator.Options{}).GetRun(fx.ctx, runID)
	require.NoError(t, err)
	return run.Status
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func TestRedriveAfterTheCauseIsFixed(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	opts := fx.options(fx.engine(migrator.Options{AutoMigrate: true}))
	opts.NotVisibleLimit = 100 * time.Millisecond
	fx.start(opts)
	// An event whose row never showed up in time is parked...
	ev := course(demo.CourseIntro, "on")
	ev.ID, ev.Org, ev.Flag, ev.ChangeDate = 700, demo.OrgDemo, authz.DefaultFlag, time.Now().UTC()
	id := fx.publish(ev)
	fx.waitCommitted()
	outcome, _ := fx.outcome(id)
	require.Equal(t, "parked", outcome)

	// ...the row is repaired, and the operator re-drives the event.
	_, err := fx.db.SQL.ExecContext(fx.ctx, fx.db.Rebind(`INSERT INTO waffle_utils_waffleflagcourseoverridemodel
		(id, change_date, enabled, waffle_flag, course_id, override_choice, note, changed_by_id) VALUES (?, ?, ?, ?, ?, ?, '', NULL)`),
		ev.ID, ev.ChangeDate, true, authz.DefaultFlag, demo.CourseIntro, "on")
	require.NoError(t, err)
	eng := fx.engine(migrator.Options{})
	parked, err := eng.Parked(fx.ctx, false)
	require.NoError(t, err)
	require.Len(t, parked, 1)
	w := &kafka.Writer{Addr: kafka.TCP(fx.brokers...), Balancer: consumer.OriginalPartition{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	redriven := consumer.Redrive(parked[0])
	require.NoError(t, w.WriteMessages(fx.ctx, redriven))
	require.NoError(t, eng.MarkRedriven(fx.ctx, parked[0].ID))
	fx.waitCommitted()

	outcome, runID := fx.outcome(id)
	require.Equal(t, "ran", outcome)
	require.NotZero(t, runID)
	s := fx.settledFor(id)
	require.Equal(t, parked[0].Partition, s[len(s)-1].Partition, "back on its partition")
	left, err := eng.Parked(fx.ctx, false)
	require.NoError(t, err)
	require.Empty(t, left)
}

func TestKeyPartitionerMatchesTheOpenEdXProducer(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	want := map[string]int{}
	for _, key := range []string{demo.CourseIntro, demo.CourseAdv, demo.CourseData, demo.CourseBio, demo.OrgDemo, demo.OrgOther} {
		m, err := fx.enc.Encode(fx.ctx, testTopic, course(key, "on").Event())
		require.NoError(t, err)
		fx.write(m)
		want[string(m.Key)] = events.Partition(m.Key, partitions)
		// kafka-go's librdkafka-compatible balancer agrees.
		require.Equal(t, want[string(m.Key)], (&kafka.CRC32Balancer{}).Balance(kafka.Message{Key: m.Key}, 0, 1, 2))
	}
	for p := range partitions {
		r := kafka.NewReader(kafka.ReaderConfig{Brokers: fx.brokers, Topic: testTopic, Partition: p, MaxWait: 50 * time.Millisecond})
		end := fx.end()[p]
		for i := int64(0); i < end; i++ {
			m, err := r.ReadMessage(fx.ctx)
			require.NoError(t, err)
			require.Equal(t, want[string(m.Key)], p, "key %q", m.Key)
		}
		r.Close()
	}
}

package consumer_test

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/migrator"
)

// lagMetrics keeps the lag series one consumer reports, as a gauge vector
// would: SetLag sets one, ForgetLag drops them all.
type lagMetrics struct {
	testMetrics
	mu  sync.Mutex
	lag map[int]int64
}

func (m *lagMetrics) SetLag(p int, lag int64) {
	m.mu.Lock()
	m.lag[p] = lag
	m.mu.Unlock()
}

func (m *lagMetrics) ForgetLag() {
	m.mu.Lock()
	clear(m.lag)
	m.mu.Unlock()
}

func (m *lagMetrics) series() map[int]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.lag)
}

// When a rebalance takes every partition from consumer A, A commits what it
// handled with the generation that owned it (its commit interval is an
// hour: only the end of the generation commits), so B starts after A's
// events and handles none of them again; A's lag series go with its
// partitions and B reports them.
func TestRebalanceCommitsWhatWasHandledAndForgetsLag(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	a := fx.options(fx.engine(migrator.Options{AutoMigrate: true}))
	a.GroupBalancers = []kafka.GroupBalancer{preferBalancer{rank: 1}}
	a.CommitInterval, a.CommitBatch = time.Hour, 1<<30
	aLag := &lagMetrics{testMetrics: testMetrics{fx: fx}, lag: map[int]int64{}}
	a.Metrics = aLag
	fx.start(a)
	var ids []string
	for _, o := range []demo.Override{course(demo.CourseIntro, "on"), course(demo.CourseBio, "on"), org(demo.OrgOther, "on")} {
		_, id := fx.toggle(o)
		ids = append(ids, id)
	}
	for _, id := range ids {
		fx.eventually("A handled "+id, func() bool { return len(fx.settledFor(id)) == 1 })
	}
	require.NotEmpty(t, aLag.series(), "A reports the lag of its partitions")
	committed, err := fx.offsets.Committed(fx.ctx, keys(fx.end()))
	require.NoError(t, err)
	for p, off := range committed {
		require.LessOrEqual(t, off, int64(0), "partition %d committed before the rebalance: the commit interval is an hour", p)
	}

	b := fx.options(fx.engine(migrator.Options{AutoMigrate: true}))
	b.GroupBalancers = []kafka.GroupBalancer{preferBalancer{rank: 2}}
	bLag := &lagMetrics{testMetrics: testMetrics{fx: fx}, lag: map[int]int64{}}
	b.Metrics = bLag
	var mu sync.Mutex
	var bSettled []consumer.Settled
	b.OnSettled = func(s consumer.Settled) { mu.Lock(); bSettled = append(bSettled, s); mu.Unlock() }
	runB := fx.start(b)
	fx.eventually("B joined and owns every partition", func() bool { return runB.consumer.Joined(fx.ctx) == nil })
	fx.waitCommitted()
	fx.eventually("A forgot the lag of the partitions it lost", func() bool { return len(aLag.series()) == 0 })

	_, later := fx.toggle(course(demo.CourseAdv, "on"))
	fx.waitCommitted()
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, bSettled, 1, "B handled only the event published after the rebalance: %+v", bSettled)
	require.Equal(t, later, bSettled[0].EventID)
	require.NotEmpty(t, bLag.series(), "B reports the lag of the partitions it took")
	require.Len(t, fx.runs(), 3, "one run per course; the org has no roles left to move")
}

// slowEngine settles nothing in batches and takes a while per event, as a
// backlog of runs does.
type slowEngine struct {
	consumer.Engine
	per time.Duration
}

func (s slowEngine) HandleQuick(context.Context, []migrator.Item) ([]migrator.Result, error) {
	return nil, nil
}

func (s slowEngine) Handle(ctx context.Context, src migrator.Source, ch migrator.Change) (migrator.Result, error) {
	time.Sleep(s.per)
	return s.Engine.Handle(ctx, src, ch)
}

// Offsets are committed every commit interval even in the middle of one
// fetched batch: a backlog fetched at once (here 40 events, 20ms each)
// must not wait for its last event before anything is committed, or a
// crash would redo all of it.
func TestCommitsInsideALongBatch(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	var ids []string
	for i := range 40 {
		o := course(demo.CourseIntro, "on")
		o.Flag = fmt.Sprintf("other.flag.%d", i) // ignored, one partition (one key)
		ids = append(ids, fx.publish(fx.save(o)))
	}
	opts := fx.options(slowEngine{Engine: fx.engine(migrator.Options{AutoMigrate: true}), per: 20 * time.Millisecond})
	fx.start(opts)
	end := fx.end()
	var midway int64
	fx.eventually("a commit while the batch is still being settled", func() bool {
		committed, err := fx.offsets.Committed(fx.ctx, keys(end))
		require.NoError(t, err)
		for _, off := range committed {
			if off > 0 && len(fx.settledFor(ids[len(ids)-1])) == 0 {
				midway = off
				return true
			}
		}
		return false
	})
	require.Less(t, midway, int64(len(ids)))
	fx.waitCommitted()
}

package consumer_test

import (
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

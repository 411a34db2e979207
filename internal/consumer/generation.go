package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
)

// maxDeferred is how many events whose override row is not visible yet one
// generation sets aside at once; with that many waiting, the loop fetches
// nothing new until one of them settles.
const maxDeferred = 256

// statsWindow is how often the partition readers' counters are read, for
// the broker retry metric and the readiness probe.
const statsWindow = time.Second

// consumeGeneration reads and handles the partitions gen assigns to this
// member until gctx ends (a rebalance) or ctx ends (shutdown). Before it
// returns, the event in hand is finished and the offsets of everything
// settled are committed with gen.
func (c *Consumer) consumeGeneration(ctx, gctx context.Context, gen *kafka.Generation) {
	assigned := gen.Assignments[c.opts.Topic]
	parts := make([]int, 0, len(assigned))
	for _, a := range assigned {
		parts = append(parts, a.ID)
	}
	sort.Ints(parts)
	log := c.log.With("generation", gen.ID)
	log.Info("partitions assigned", "partitions", parts)

	// lctx ends with the generation or with the process.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-gctx.Done():
			cancel()
		case <-lctx.Done():
		}
	}()

	feed := make(chan kafka.Message, c.opts.QuickBatch)
	readers, stopReaders := c.startReaders(lctx, assigned, feed)
	defer stopReaders()
	go c.watchReaders(lctx, readers)

	l := &genLoop{c: c, gen: gen, feed: feed, offsets: newOffsets(assigned), log: log}
	l.run(lctx)
	l.commit(context.WithoutCancel(ctx), true)
	log.Info("generation ended", "partitions", parts, "left_unsettled", l.offsets.unsettledCount())
}

// startReaders starts one reader per assigned partition at the group's
// committed offset, each feeding its messages, in order, into feed. stop
// ends them and waits for them.
func (c *Consumer) startReaders(ctx context.Context, assigned []kafka.PartitionAssignment, feed chan<- kafka.Message) (map[int]*kafka.Reader, func()) {
	readers := make(map[int]*kafka.Reader, len(assigned))
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, a := range assigned {
		r := kafka.NewReader(kafka.ReaderConfig{
			Brokers:        c.opts.Brokers,
			Dialer:         c.opts.Dialer,
			Topic:          c.opts.Topic,
			Partition:      a.ID,
			MaxWait:        500 * time.Millisecond,
			QueueCapacity:  min(c.opts.QuickBatch, 1000),
			ReadBackoffMin: c.opts.MinBackoff,
			ReadBackoffMax: time.Second,
			ErrorLogger:    c.kafkaLogger(),
		})
		if err := r.SetOffset(a.Offset); err != nil {
			// Only a reader already started refuses; this one is new.
			c.log.Error("set reader offset", "partition", a.ID, "offset", a.Offset, "error", err)
		}
		readers[a.ID] = r
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := r.FetchMessage(rctx)
				switch {
				case rctx.Err() != nil || errors.Is(err, io.EOF):
					return
				case err != nil:
					// A Kafka error the reader reports and then retries itself.
					c.opts.Metrics.Retry("broker")
					c.log.Warn("fetch failed, retrying", "partition", a.ID, "error", err)
					if c.opts.Sleep(rctx, c.opts.MinBackoff*10) != nil {
						return
					}
					continue
				}
				select {
				case feed <- m:
				case <-rctx.Done():
					return
				}
			}
		}()
	}
	return readers, func() {
		cancel()
		for p, r := range readers {
			if err := r.Close(); err != nil {
				c.log.Warn("close reader", "partition", p, "error", err)
			}
		}
		wg.Wait()
	}
}

// watchReaders reads the readers' counters every statsWindow: each failed
// connection or fetch counts as a broker retry, a window with failures and
// no fetch at all marks the broker unreachable (readiness), and a reader
// that has caught up reports a lag of zero for its partition even when no
// message arrives.
func (c *Consumer) watchReaders(ctx context.Context, readers map[int]*kafka.Reader) {
	defer c.setFetchHealth("")
	t := time.NewTicker(statsWindow)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var errs, fetches int64
		for p, r := range readers {
			st := r.Stats() // counters since the previous call
			errs += st.Errors
			fetches += st.Fetches
			if st.Fetches > 0 && st.Messages == 0 && st.Lag == 0 {
				c.opts.Metrics.SetLag(p, 0)
			}
		}
		for range errs {
			c.opts.Metrics.Retry("broker")
		}
		if errs > 0 && fetches == 0 {
			c.setFetchHealth(fmt.Sprintf("broker unreachable: %d failed connections or fetches and no fetch in the last %s", errs, statsWindow))
		} else if fetches > 0 {
			c.setFetchHealth("")
		}
	}
}

// genLoop is the state of one generation's loop.
type genLoop struct {
	c        *Consumer
	gen      *kafka.Generation
	feed     <-chan kafka.Message
	offsets  *offsets
	deferred []*pending // not visible yet, in the order they are due
	log      interface {
		Info(string, ...any)
		Warn(string, ...any)
	}
}

// run fetches, decodes, settles and commits until ctx ends: fetch, then
// settle what is ready (runs of events that move no data in one engine
// transaction), then commit when due; events set aside are retried when
// due. It returns with the event in hand finished.
func (l *genLoop) run(ctx context.Context) {
	c := l.c
	for ctx.Err() == nil {
		if err := l.retryDue(ctx); err != nil {
			return
		}
		if len(l.deferred) >= maxDeferred {
			if c.opts.Sleep(ctx, time.Until(l.deferred[0].next)) != nil {
				return
			}
			continue
		}
		m, ok := l.fetch(ctx)
		if !ok {
			l.commit(ctx, false)
			continue
		}
		msgs := append([]kafka.Message{m}, l.ready(c.opts.QuickBatch-1)...)
		for _, m := range msgs {
			l.offsets.fetched(m)
		}
		if err := l.settleAll(ctx, msgs); err != nil {
			return // shutting down while a transient failure was retried
		}
		if l.offsets.due(c.opts.Now(), c.opts.CommitBatch, c.opts.CommitInterval) {
			l.commit(ctx, false)
		}
	}
}

// fetch waits for the next message, at most until handled offsets are due
// for commit or the first event set aside is due for a retry. ok is false
// when none came by then.
func (l *genLoop) fetch(ctx context.Context) (kafka.Message, bool) {
	c := l.c
	var wake <-chan time.Time
	var until time.Time
	if !l.offsets.empty() {
		until = l.offsets.first.Add(c.opts.CommitInterval)
	}
	if len(l.deferred) > 0 && (until.IsZero() || l.deferred[0].next.Before(until)) {
		until = l.deferred[0].next
	}
	if !until.IsZero() {
		d := until.Sub(c.opts.Now())
		if d <= 0 {
			return kafka.Message{}, false
		}
		t := time.NewTimer(d)
		defer t.Stop()
		wake = t.C
	}
	select {
	case m := <-l.feed:
		return m, true
	case <-wake:
		return kafka.Message{}, false
	case <-ctx.Done():
		return kafka.Message{}, false
	}
}

// ready returns up to n more messages the readers already hold, without
// waiting.
func (l *genLoop) ready(n int) []kafka.Message {
	var out []kafka.Message
	for len(out) < n {
		select {
		case m := <-l.feed:
			out = append(out, m)
		default:
			return out
		}
	}
	return out
}

// commit commits, with the generation, each partition's offset up to its
// first unsettled message. A failed commit is only logged: the events took
// effect, and redelivering them is harmless. final says the generation is
// ending (logged at info so an operator sees where it stopped).
func (l *genLoop) commit(ctx context.Context, final bool) {
	commits := l.offsets.toCommit()
	if len(commits) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- l.gen.CommitOffsets(map[string]map[int]int64{l.c.opts.Topic: commits}) }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		l.log.Warn("offset commit failed; these events will be redelivered and recognized", "error", err, "offsets", commits)
		return
	}
	l.offsets.committedUpTo(commits)
	if final {
		l.log.Info("committed", "offsets", commits)
	}
}

// offsets tracks, per partition, the messages fetched and not yet settled,
// the highest settled one and what was committed, so that a commit never
// passes a message that has not taken effect (one set aside, say).
type offsets struct {
	unsettled map[int]map[int64]struct{}
	next      map[int]int64 // highest settled offset + 1
	committed map[int]int64
	n         int       // settled since the last commit
	first     time.Time // when the oldest of those settled
}

func newOffsets(assigned []kafka.PartitionAssignment) *offsets {
	o := &offsets{unsettled: map[int]map[int64]struct{}{}, next: map[int]int64{}, committed: map[int]int64{}}
	for _, a := range assigned {
		o.unsettled[a.ID] = map[int64]struct{}{}
		if a.Offset >= 0 {
			o.committed[a.ID] = a.Offset
		}
	}
	return o
}

func (o *offsets) fetched(m kafka.Message) {
	if o.unsettled[m.Partition] == nil {
		o.unsettled[m.Partition] = map[int64]struct{}{}
	}
	o.unsettled[m.Partition][m.Offset] = struct{}{}
}

func (o *offsets) settled(m kafka.Message, now time.Time) {
	delete(o.unsettled[m.Partition], m.Offset)
	o.next[m.Partition] = max(o.next[m.Partition], m.Offset+1)
	if o.n == 0 {
		o.first = now
	}
	o.n++
}

func (o *offsets) empty() bool { return o.n == 0 }

func (o *offsets) due(now time.Time, size int, interval time.Duration) bool {
	return o.n >= size || (o.n > 0 && now.Sub(o.first) >= interval)
}

// toCommit returns the offset to commit per partition (the next one to
// read: the first unsettled message, or one past the highest settled),
// for the partitions where that moved since the last commit.
func (o *offsets) toCommit() map[int]int64 {
	out := map[int]int64{}
	for p, next := range o.next {
		for off := range o.unsettled[p] {
			next = min(next, off)
		}
		if c, ok := o.committed[p]; !ok || next > c {
			out[p] = next
		}
	}
	if len(out) == 0 {
		o.n = 0 // nothing can move until the messages in the way settle
	}
	return out
}

func (o *offsets) committedUpTo(commits map[int]int64) {
	for p, off := range commits {
		o.committed[p] = off
	}
	o.n = 0
}

func (o *offsets) unsettledCount() int {
	n := 0
	for _, u := range o.unsettled {
		n += len(u)
	}
	return n
}

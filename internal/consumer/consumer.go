// Package consumer is the Kafka side of the service: one loop that fetches
// flag-override events of its consumer group, decodes them, lets the
// migrator engine act on each (decision, run and outcome row in one
// database transaction), parks what cannot be decoded, and commits offsets
// only once the effect is durable.
//
// Delivery is at least once: a crash between the engine's commit and the
// offset commit redelivers the event, and the engine recognizes it by its
// id, so effects happen once. Order is kept per partition because the loop
// handles one message at a time, in the order the reader delivers them.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/migrator"
)

// Decoder turns a Kafka message into a typed event. Its errors are
// malformed input (errors.Is(err, events.ErrMalformed)) or transient.
type Decoder interface {
	Decode(ctx context.Context, m events.Message) (events.Event, error)
}

// Engine acts on decoded events and keeps parked ones; *migrator.Engine is
// the one used outside tests.
type Engine interface {
	Handle(ctx context.Context, src migrator.Source, ch migrator.Change) (migrator.Result, error)
	HandleQuick(ctx context.Context, items []migrator.Item) ([]migrator.Result, error)
	Park(ctx context.Context, p migrator.ParkedEvent) error
	RecordWaiting(ctx context.Context, src migrator.Source, ch migrator.Change, detail string) error
}

// MessageWriter writes parked messages to the dead-letter topic; a
// *kafka.Writer whose Topic is the dead-letter topic.
type MessageWriter interface {
	WriteMessages(ctx context.Context, msgs ...kafka.Message) error
}

// Metrics receives what the loop observes; *ops.Metrics in the binary.
type Metrics interface {
	Event(outcome string)
	Run(typ, status string, d time.Duration)
	SetLag(partition int, lag int64)
	Parked()
	Retry(reason string) // database, broker, not_visible, registry
}

// Options build a Consumer. Brokers, Topic, GroupID, Decoder, Engine and
// DeadLetter are required; zero values elsewhere take the defaults named.
type Options struct {
	Brokers []string
	Dialer  *kafka.Dialer // TLS and SASL; nil: plain TCP
	Topic   string
	GroupID string

	DeadLetter MessageWriter
	Decoder    Decoder
	Engine     Engine
	Metrics    Metrics // nil: none
	Logger     *slog.Logger

	MinBackoff      time.Duration // first retry wait of a transient failure (100ms)
	MaxBackoff      time.Duration // longest retry wait (30s)
	NotVisibleLimit time.Duration // how long to wait for an event's override row before leaving it to the sweep, or parking it (2m)
	// LeaveToSweep settles an event whose override row stays invisible as
	// "waiting" (the sweep reconciles its scope once the row commits)
	// instead of parking it. Set it when the sweep runs.
	LeaveToSweep bool

	// Offsets of handled events are committed in batches: when CommitBatch
	// events wait, when the oldest has waited CommitInterval, when no
	// message is ready, and on shutdown (1000, 250ms).
	CommitBatch    int
	CommitInterval time.Duration

	// QuickBatch is how many messages already fetched are settled together
	// when none of them moves data (ignored, duplicate, disabled, no-op,
	// superseded: one database transaction for all) (1000).
	QuickBatch int

	// Group session settings passed to kafka-go (defaults 10s, 30s, 3s).
	SessionTimeout    time.Duration
	RebalanceTimeout  time.Duration
	HeartbeatInterval time.Duration
	// GroupBalancers decide partition assignment (kafka-go's default: range, round robin).
	GroupBalancers []kafka.GroupBalancer

	// OnSettled, when set, is called after each event is settled (handled or
	// parked), before its offset is committed. `consumer dev` and tests use it.
	OnSettled func(Settled)

	Now   func() time.Time                                 // time.Now
	Sleep func(ctx context.Context, d time.Duration) error // a timer that ctx cancels
}

// Settled is what happened to one message.
type Settled struct {
	Topic     string
	Partition int
	Offset    int64
	Key       string
	EventID   string
	Change    migrator.Change // zero when the message was not decoded
	Result    migrator.Result // Outcome parked when it was parked
	Reason    string          // why it was parked
	Detail    string
	Attempts  int // 1 when it settled at the first try
}

// Consumer runs the loop. Create it with New and call Run once.
type Consumer struct {
	opts Options
	log  *slog.Logger

	mu         sync.Mutex
	waiting    string // why the consumer is not reading yet (topic missing, broker down)
	brokerDown bool   // no broker answered while waiting
	reader     *kafka.Reader
	rebalances int64 // generations joined so far
}

// New checks opts and fills defaults.
func New(opts Options) (*Consumer, error) {
	switch {
	case len(opts.Brokers) == 0:
		return nil, errors.New("consumer: no brokers")
	case opts.Topic == "":
		return nil, errors.New("consumer: no topic")
	case opts.GroupID == "":
		return nil, errors.New("consumer: no group id")
	case opts.Decoder == nil || opts.Engine == nil || opts.DeadLetter == nil:
		return nil, errors.New("consumer: decoder, engine and dead-letter writer are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = noMetrics{}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.MinBackoff, 100*time.Millisecond)
	def(&opts.MaxBackoff, 30*time.Second)
	def(&opts.NotVisibleLimit, 2*time.Minute)
	def(&opts.CommitInterval, 250*time.Millisecond)
	def(&opts.SessionTimeout, 10*time.Second)
	def(&opts.RebalanceTimeout, 30*time.Second)
	def(&opts.HeartbeatInterval, 3*time.Second)
	if opts.CommitBatch <= 0 {
		opts.CommitBatch = 1000
	}
	if opts.QuickBatch <= 0 {
		opts.QuickBatch = 1000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	return &Consumer{opts: opts, log: opts.Logger.With("topic", opts.Topic, "group", opts.GroupID)}, nil
}

// Run consumes until ctx is cancelled, then drains: the event in hand is
// finished (the engine's transaction is not cancelled), handled offsets are
// committed, and the group is left. It returns nil after a drain; an error
// only when the reader cannot be used at all.
func (c *Consumer) Run(ctx context.Context) error {
	// kafka-go's group reader does not pick up a topic that appears after it
	// joined, and the Open edX producer creates the topic with its first
	// event: wait for the topic first (not ready meanwhile).
	if err := c.waitForTopic(ctx); err != nil {
		c.log.Info("stopped while starting", "while", "waiting for the topic")
		return nil
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       c.opts.Brokers,
		Dialer:        c.opts.Dialer,
		GroupID:       c.opts.GroupID,
		Topic:         c.opts.Topic,
		StartOffset:   kafka.FirstOffset,
		MaxWait:       500 * time.Millisecond,
		QueueCapacity: c.opts.QuickBatch, // so a quick batch can fill
		// The Open edX producer creates the topic with its first event, so
		// the consumer may start first: watch for the partitions to appear.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 2 * time.Second,
		SessionTimeout:         c.opts.SessionTimeout,
		RebalanceTimeout:       c.opts.RebalanceTimeout,
		HeartbeatInterval:      c.opts.HeartbeatInterval,
		JoinGroupBackoff:       c.opts.MinBackoff * 5,
		GroupBalancers:         c.opts.GroupBalancers,
		ReadBackoffMin:         c.opts.MinBackoff,
		ReadBackoffMax:         time.Second,
		ErrorLogger:            kafka.LoggerFunc(func(msg string, args ...any) { c.log.Warn(fmt.Sprintf(msg, args...)) }),
	})
	c.mu.Lock()
	c.reader = r
	c.mu.Unlock()
	defer func() {
		if err := r.Close(); err != nil {
			c.log.Warn("close reader", "error", err)
		}
	}()
	c.log.Info("consuming")

	batch := newBatch()
	for {
		m, err := c.fetch(ctx, r, batch)
		switch {
		case ctx.Err() != nil:
			c.commit(context.WithoutCancel(ctx), r, batch)
			if c.joinedOnce() {
				c.log.Info("drained")
			} else {
				c.log.Info("stopped while starting", "while", "joining the group")
			}
			return nil
		case errors.Is(err, errIdle):
			c.commit(ctx, r, batch)
			continue
		case errors.Is(err, io.EOF):
			return errors.New("consumer: reader closed")
		case err != nil:
			// The reader retries on its own; this only paces the loop. When
			// ctx ends during the wait, the next fetch fails and drains.
			c.log.Warn("fetch failed, retrying", "error", err)
			_ = c.opts.Sleep(ctx, c.opts.MinBackoff*10)
			continue
		}

		msgs := append([]kafka.Message{m}, c.fetchReady(ctx, r, c.opts.QuickBatch-1)...)
		settled, err := c.settleAll(ctx, msgs)
		for i, s := range settled {
			c.report(msgs[i], s)
			batch.add(msgs[i], c.opts.Now())
		}
		if err != nil {
			// Shut down while a transient failure was being retried: that
			// event and those after it did not take effect, so their offsets
			// stay uncommitted.
			c.commit(context.WithoutCancel(ctx), r, batch)
			c.log.Info("drained", "unsettled_partition", msgs[len(settled)].Partition, "unsettled_offset", msgs[len(settled)].Offset)
			return nil
		}
		if batch.due(c.opts.Now(), c.opts.CommitBatch, c.opts.CommitInterval) {
			c.commit(ctx, r, batch)
		}
	}
}

// fetchReady returns up to n more messages the reader already holds,
// without waiting for the broker.
func (c *Consumer) fetchReady(ctx context.Context, r *kafka.Reader, n int) []kafka.Message {
	var out []kafka.Message
	for len(out) < n && ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, time.Millisecond)
		m, err := r.FetchMessage(fctx)
		cancel()
		if err != nil {
			break
		}
		out = append(out, m)
	}
	return out
}

// settleAll settles msgs in order. Runs of well-formed events that move no
// data go to the engine together (HandleQuick, one transaction); the first
// event that needs a run, a retry or parking goes through settle alone. It
// returns what settled before ctx ended, in order.
func (c *Consumer) settleAll(ctx context.Context, msgs []kafka.Message) ([]Settled, error) {
	decoded := make([]Settled, len(msgs))
	ok := make([]bool, len(msgs))
	for i, m := range msgs {
		var reason string
		var err error
		decoded[i], reason, _, err = c.decode(ctx, m)
		ok[i] = reason == "" && err == nil
	}
	var out []Settled
	for i := 0; i < len(msgs); {
		if i > 0 && ctx.Err() != nil {
			// Shutting down: the event in hand finished; the rest stay
			// uncommitted and come back to whoever owns the partition next.
			return out, ctx.Err()
		}
		var items []migrator.Item
		for j := i; j < len(msgs) && ok[j]; j++ {
			d := decoded[j]
			items = append(items, migrator.Item{Change: d.Change,
				Source: migrator.Source{EventID: d.EventID, Topic: d.Topic, Partition: d.Partition, Offset: d.Offset}})
		}
		if len(items) > 0 {
			res, err := c.opts.Engine.HandleQuick(context.WithoutCancel(ctx), items)
			if err != nil {
				c.log.Warn("settling a batch failed; settling one by one", "error", err)
			}
			for _, r := range res {
				decoded[i].Result = r
				out = append(out, decoded[i])
				i++
			}
			if len(res) > 0 {
				continue
			}
		}
		s, err := c.settle(ctx, msgs[i])
		if err != nil {
			return out, err
		}
		out = append(out, s)
		i++
	}
	return out, nil
}

// waitForTopic polls the brokers until the topic exists, with backoff. It
// returns only when the topic exists or ctx ends.
func (c *Consumer) waitForTopic(ctx context.Context) error {
	dialer := c.opts.Dialer
	if dialer == nil {
		dialer = kafka.DefaultDialer
	}
	for attempt := 1; ; attempt++ {
		var err error
		for _, b := range c.opts.Brokers {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var parts []kafka.Partition
			if parts, err = dialer.LookupPartitions(ctx, "tcp", b, c.opts.Topic); err == nil && len(parts) > 0 {
				c.setWaiting("", false)
				return nil
			}
			if err == nil {
				err = errors.New("no partitions")
			}
		}
		c.setWaiting(fmt.Sprintf("topic %s not available yet: %v", c.opts.Topic, err), !errors.Is(err, kafka.UnknownTopicOrPartition))
		if attempt == 1 || attempt%10 == 0 {
			c.log.Warn("waiting for the topic", "error", err, "attempt", attempt)
		}
		if err := c.opts.Sleep(ctx, c.backoff(attempt)); err != nil {
			return err
		}
	}
}

func (c *Consumer) setWaiting(why string, brokerDown bool) {
	c.mu.Lock()
	c.waiting, c.brokerDown = why, brokerDown
	c.mu.Unlock()
}

// errIdle means no message came before the oldest handled offset was due
// for commit.
var errIdle = errors.New("idle")

// fetch returns the next message. While handled offsets wait for a commit,
// it waits only until they are due and returns errIdle then, so a quiet
// topic does not hold commits back.
func (c *Consumer) fetch(ctx context.Context, r *kafka.Reader, b *batch) (kafka.Message, error) {
	if b.empty() {
		return r.FetchMessage(ctx)
	}
	wait := b.first.Add(c.opts.CommitInterval).Sub(c.opts.Now())
	if wait <= 0 {
		return kafka.Message{}, errIdle
	}
	fctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	m, err := r.FetchMessage(fctx)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return m, errIdle
	}
	return m, err
}

// decode decodes m into what the engine is given, every value storable
// (see storable.go). When m is to be parked, reason and detail say why; err
// is a decode failure worth a retry (the registry unreachable).
func (c *Consumer) decode(ctx context.Context, m kafka.Message) (s Settled, reason, detail string, err error) {
	s = Settled{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: string(m.Key), Attempts: 1}
	var idNote string
	s.EventID, idNote = eventID(m)
	ev, err := c.opts.Decoder.Decode(ctx, message(m))
	if err != nil {
		if reason, detail, bad := malformed(err); bad {
			if idNote != "" { // the decoder's reason is the more useful one
				detail = strings.TrimPrefix(detail+"; "+idNote, "; ")
			}
			return s, reason, detail, nil
		}
		return s, "", "", err
	}
	if idNote != "" {
		return s, ReasonBadEventID, idNote, nil
	}
	var changed []string
	s.Change, changed = storableChange(change(ev))
	if len(changed) > 0 {
		c.log.Warn("event values cut to fit their columns", "partition", m.Partition, "offset", m.Offset, "event_id", s.EventID, "fields", changed)
	}
	return s, "", "", nil
}

// settle decodes one message and has the engine act on it, retrying
// transient failures with backoff until it is handled or parked. It
// returns an error only when ctx ends first.
func (c *Consumer) settle(ctx context.Context, m kafka.Message) (Settled, error) {
	var s Settled
	log := c.log.With("partition", m.Partition, "offset", m.Offset, "key", events.KeyText(m.Key))
	var invisibleSince time.Time
	for attempt := 1; ; attempt++ {
		if attempt > 1 {
			if err := c.opts.Sleep(ctx, c.backoff(attempt-1)); err != nil {
				return s, err
			}
		}
		d, reason, detail, err := c.decode(ctx, m)
		s, s.Attempts = d, attempt
		if reason != "" {
			return c.park(ctx, m, s, reason, detail)
		}
		if err != nil {
			if ctx.Err() != nil {
				return s, ctx.Err()
			}
			c.opts.Metrics.Retry("registry")
			log.Warn("decode failed, retrying", "attempt", attempt, "error", err)
			continue
		}
		src := migrator.Source{EventID: s.EventID, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
		// The engine's transaction is not cancelled by shutdown: the event in
		// hand finishes (SPEC 10's drain), bounded by the engine's lock timeout.
		began := c.opts.Now()
		res, err := c.opts.Engine.Handle(context.WithoutCancel(ctx), src, s.Change)
		switch {
		case err == nil:
			s.Result = res
			if res.Outcome == migrator.OutcomeRan {
				c.opts.Metrics.Run(string(res.Direction), res.Status, c.opts.Now().Sub(began))
			}
			return s, nil
		case errors.Is(err, migrator.ErrNotVisible):
			now := c.opts.Now()
			if invisibleSince.IsZero() {
				invisibleSince = now
			}
			if now.Sub(invisibleSince) >= c.opts.NotVisibleLimit {
				detail := fmt.Sprintf("override row %d of %s %s not visible after %s", s.Change.RecordID, s.Change.ScopeType, s.Change.ScopeKey, c.opts.NotVisibleLimit)
				if c.opts.LeaveToSweep {
					return c.leaveToSweep(ctx, s, src, detail)
				}
				return c.park(ctx, m, s, ReasonNotVisible, detail)
			}
			c.opts.Metrics.Retry("not_visible")
			log.Info("override row not visible yet, retrying", "event_id", s.EventID, "record_id", s.Change.RecordID, "attempt", attempt)
		case !migrator.IsTransient(err):
			// Retrying would fail the same way and hold up the partition.
			return c.park(ctx, m, s, ReasonHandlerError, err.Error())
		default:
			c.opts.Metrics.Retry("database")
			log.Warn("handle failed, retrying", "event_id", s.EventID, "attempt", attempt, "error", err)
		}
		if ctx.Err() != nil {
			return s, ctx.Err()
		}
	}
}

// leaveToSweep settles an event whose override row is not visible: its
// outcome is recorded as waiting (retried until durable) and the sweep
// reconciles the scope when the row commits, so the partition moves on.
func (c *Consumer) leaveToSweep(ctx context.Context, s Settled, src migrator.Source, detail string) (Settled, error) {
	detail = storableText(detail + "; left to the sweep")
	for attempt := 1; ; attempt++ {
		err := c.opts.Engine.RecordWaiting(context.WithoutCancel(ctx), src, s.Change, detail)
		if err == nil {
			s.Result = migrator.Result{Outcome: migrator.OutcomeWaiting, Detail: detail}
			c.log.Warn("override row not visible: left to the sweep", "event_id", s.EventID, "record_id", s.Change.RecordID)
			return s, nil
		}
		c.opts.Metrics.Retry("database")
		if err := c.opts.Sleep(ctx, c.backoff(attempt)); err != nil {
			return s, err
		}
	}
}

// ReasonNotVisible is the park reason of an event whose override row never
// became visible within the not-visible limit.
const ReasonNotVisible = "override_not_visible"

// ReasonHandlerError is the park reason of an event the engine failed on
// with an error that is not transient (migrator.IsTransient): retrying
// would fail the same way for ever. Re-drive it once the cause is fixed.
const ReasonHandlerError = "handler_error"

// park writes the message to the dead-letter topic and records it in the
// database, retrying each until done; both happen before the offset is
// committed. Both are idempotent per source, so a crash in between only
// repeats them.
func (c *Consumer) park(ctx context.Context, m kafka.Message, s Settled, reason, detail string) (Settled, error) {
	detail = storableText(detail) // s.EventID is storable already (decode)
	s.Reason, s.Detail = reason, detail
	s.Result = migrator.Result{Outcome: migrator.OutcomeParked, Detail: reason + ": " + detail}
	dead := deadLetter(m, reason, detail)
	p := migrator.ParkedEvent{
		EventID:   s.EventID,
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
		Key:       m.Key,
		Value:     m.Value,
		Headers:   headerMap(m.Headers),
		Reason:    reason,
		Detail:    detail,
		ParkedAt:  c.opts.Now().UTC(),
	}
	for attempt := 1; ; attempt++ {
		err := c.opts.DeadLetter.WriteMessages(ctx, dead)
		if err != nil {
			c.opts.Metrics.Retry("broker")
			err = fmt.Errorf("write to dead-letter topic: %w", err)
		} else if err = c.opts.Engine.Park(context.WithoutCancel(ctx), p); err != nil {
			c.opts.Metrics.Retry("database")
		} else {
			c.opts.Metrics.Parked()
			c.log.Warn("event parked", "partition", m.Partition, "offset", m.Offset, "event_id", s.EventID, "reason", reason, "detail", detail)
			return s, nil
		}
		// Parking is the last resort, so it is retried even when the error
		// is not transient (its values are storable: a missing table, a
		// missing dead-letter topic). That needs an operator: say so louder.
		level := slog.LevelWarn
		if !migrator.IsTransient(err) {
			level = slog.LevelError
		}
		c.log.Log(ctx, level, "park failed, retrying", "partition", m.Partition, "offset", m.Offset, "attempt", attempt, "error", err)
		if err := c.opts.Sleep(ctx, c.backoff(attempt)); err != nil {
			return s, err
		}
	}
}

// report logs and counts a settled event.
func (c *Consumer) report(m kafka.Message, s Settled) {
	c.opts.Metrics.Event(string(s.Result.Outcome))
	if m.HighWaterMark > 0 {
		c.opts.Metrics.SetLag(m.Partition, max(m.HighWaterMark-m.Offset-1, 0))
	}
	if s.Result.Outcome != migrator.OutcomeParked {
		attrs := []any{"partition", m.Partition, "offset", m.Offset, "event_id", s.EventID,
			"flag", s.Change.Flag, "scope_type", s.Change.ScopeType, "scope", s.Change.ScopeKey,
			"record_id", s.Change.RecordID, "outcome", s.Result.Outcome}
		if s.Result.RunID != 0 {
			attrs = append(attrs, "run_id", s.Result.RunID, "direction", s.Result.Direction, "status", s.Result.Status)
		}
		if s.Result.Detail != "" {
			attrs = append(attrs, "detail", s.Result.Detail)
		}
		c.log.Info("event handled", attrs...)
	}
	if c.opts.OnSettled != nil {
		c.opts.OnSettled(s)
	}
}

// commit commits the batch's offsets. A failed commit is only logged: the
// events took effect, and redelivering them is harmless.
func (c *Consumer) commit(ctx context.Context, r *kafka.Reader, b *batch) {
	if b.empty() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	msgs := b.take()
	if err := r.CommitMessages(ctx, msgs...); err != nil {
		c.log.Warn("offset commit failed; these events will be redelivered and recognized", "error", err)
		return
	}
	for _, m := range msgs {
		c.log.Debug("committed", "partition", m.Partition, "offset", m.Offset+1)
	}
}

// backoff is the wait before retry n (1-based): exponential from
// MinBackoff, capped at MaxBackoff, with ±20% jitter.
func (c *Consumer) backoff(n int) time.Duration {
	d := c.opts.MinBackoff
	for i := 1; i < n && d < c.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxBackoff)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// joinedOnce reports whether the reader has joined its group at least once.
func (c *Consumer) joinedOnce() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reader != nil {
		c.rebalances += c.reader.Stats().Rebalances
	}
	return c.rebalances > 0
}

// Joined returns nil once the reader has joined its group, for the
// readiness probe (ops.ReadyCheck).
func (c *Consumer) Joined(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiting != "" {
		if c.brokerDown {
			return errors.New(c.waiting)
		}
		// Ready: a missing topic is normal until the producer's first event
		// creates it, and an unready pod would hold up a rollout for it.
		return nil
	}
	if c.reader == nil {
		return errors.New("consumer not started")
	}
	// Stats resets its counters on every call, so they are summed here, and
	// the ones since the previous probe tell whether the broker answers.
	st := c.reader.Stats()
	c.rebalances += st.Rebalances
	if c.rebalances == 0 {
		return fmt.Errorf("not joined group %s yet", c.opts.GroupID)
	}
	if st.Errors > 0 && st.Fetches == 0 && st.Messages == 0 {
		return fmt.Errorf("broker unreachable: %d fetch errors and no successful fetch since the last check", st.Errors)
	}
	return nil
}

// batch holds the newest handled message per partition until commit.
type batch struct {
	last  map[int]kafka.Message
	n     int
	first time.Time // when the oldest uncommitted event was handled
}

func newBatch() *batch { return &batch{last: map[int]kafka.Message{}} }

func (b *batch) empty() bool { return b.n == 0 }

func (b *batch) add(m kafka.Message, now time.Time) {
	if b.n == 0 {
		b.first = now
	}
	b.last[m.Partition] = m
	b.n++
}

func (b *batch) due(now time.Time, size int, interval time.Duration) bool {
	return b.n >= size || now.Sub(b.first) >= interval
}

func (b *batch) take() []kafka.Message {
	msgs := make([]kafka.Message, 0, len(b.last))
	for _, m := range b.last {
		msgs = append(msgs, m)
	}
	clear(b.last)
	b.n = 0
	return msgs
}

type noMetrics struct{}

func (noMetrics) Event(string)                      {}
func (noMetrics) Run(string, string, time.Duration) {}
func (noMetrics) SetLag(int, int64)                 {}
func (noMetrics) Parked()                           {}
func (noMetrics) Retry(string)                      {}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

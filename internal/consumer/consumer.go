// Package consumer is the Kafka side of the service: one loop that fetches
// flag-override events of its consumer group, decodes them, lets the
// migrator engine act on each (decision, run and outcome row in one
// database transaction), parks what cannot be decoded, and commits offsets
// only once the effect is durable.
//
// Delivery is at least once: a crash between the engine's commit and the
// offset commit redelivers the event, and the engine recognizes it by its
// id, so effects happen once. Each message is decoded once and handled in
// the order its partition delivers it, except one whose override row is
// not visible yet: it is set aside and retried while the messages after it
// go on (an event only says "look at this scope again", so their order does
// not matter to the result), and its partition's committed offset stays
// below it until it settles.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
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
	ForgetLag() // the assignment ended: drop every partition's lag series
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

	mu          sync.Mutex
	waiting     string // why the consumer is not reading yet (topic missing, broker down)
	brokerDown  bool   // no broker answered while waiting
	groupErr    string // why the last attempt to join the group failed
	fetchDown   string // why the partition readers got no answer in the last stats window
	generations int    // generations joined so far
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
// only when the group cannot be used at all.
//
// Run works generation by generation of the consumer group: each
// generation's partitions are read by one reader each, their messages are
// handled by one loop (consumeGeneration), and its offsets are committed
// with that generation. When a rebalance ends the generation, the loop
// finishes the event in hand, commits what it handled, forgets the lag of
// its partitions and drops everything else it held; the next generation
// starts from the committed offsets of whatever partitions it is given. So
// no offset of a partition this replica no longer owns is ever committed
// later, and no lag series outlives its assignment.
func (c *Consumer) Run(ctx context.Context) error {
	// kafka-go's group does not pick up a topic that appears after it
	// joined, and the Open edX producer creates the topic with its first
	// event: wait for the topic first (not ready meanwhile).
	if err := c.waitForTopic(ctx); err != nil {
		c.log.Info("stopped while starting", "while", "waiting for the topic")
		return nil
	}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                c.opts.GroupID,
		Brokers:           c.opts.Brokers,
		Dialer:            c.opts.Dialer,
		Topics:            []string{c.opts.Topic},
		GroupBalancers:    c.opts.GroupBalancers,
		HeartbeatInterval: c.opts.HeartbeatInterval,
		SessionTimeout:    c.opts.SessionTimeout,
		RebalanceTimeout:  c.opts.RebalanceTimeout,
		JoinGroupBackoff:  c.opts.MinBackoff * 5,
		// Partitions added later are picked up by a rebalance.
		WatchPartitionChanges:  true,
		PartitionWatchInterval: 2 * time.Second,
		StartOffset:            kafka.FirstOffset,
		ErrorLogger:            c.kafkaLogger(),
	})
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	defer func() {
		if err := group.Close(); err != nil { // leaves the group
			c.log.Warn("leave group", "error", err)
		}
	}()
	c.log.Info("consuming")

	for {
		gen, err := group.Next(ctx)
		switch {
		case ctx.Err() != nil:
			if c.joinedOnce() {
				c.log.Info("drained")
			} else {
				c.log.Info("stopped while starting", "while", "joining the group")
			}
			return nil
		case errors.Is(err, kafka.ErrGroupClosed):
			return errors.New("consumer: group closed")
		case err != nil:
			// The group retries on its own, after JoinGroupBackoff.
			c.opts.Metrics.Retry("broker")
			c.setGroupError(err)
			c.log.Warn("joining the group failed, retrying", "error", err)
			continue
		}
		c.setGroupError(nil)
		done := make(chan struct{})
		gen.Start(func(gctx context.Context) {
			defer close(done)
			c.consumeGeneration(ctx, gctx, gen)
		})
		<-done
		c.opts.Metrics.ForgetLag()
		if ctx.Err() != nil {
			c.log.Info("drained")
			return nil
		}
	}
}

// kafkaLogger hands kafka-go's error reports to the consumer's logger.
func (c *Consumer) kafkaLogger() kafka.Logger {
	return kafka.LoggerFunc(func(msg string, args ...any) { c.log.Warn(fmt.Sprintf(msg, args...)) })
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
		brokerDown := !errors.Is(err, kafka.UnknownTopicOrPartition)
		if brokerDown {
			c.opts.Metrics.Retry("broker")
		}
		c.setWaiting(fmt.Sprintf("topic %s not available yet: %v", c.opts.Topic, err), brokerDown)
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

// setGroupError records why the last attempt to join the group failed (nil:
// it joined), for the readiness probe.
func (c *Consumer) setGroupError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.groupErr = ""
		c.generations++
		return
	}
	c.groupErr = err.Error()
}

// setFetchHealth records what the partition readers saw in the last stats
// window: why is "" when the broker answered.
func (c *Consumer) setFetchHealth(why string) {
	c.mu.Lock()
	c.fetchDown = why
	c.mu.Unlock()
}

// joinedOnce reports whether the consumer has joined its group at least once.
func (c *Consumer) joinedOnce() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.generations > 0
}

// Joined returns nil while the consumer is a member of its group and its
// broker answers, for the readiness probe (ops.ReadyCheck).
func (c *Consumer) Joined(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.waiting != "" && c.brokerDown:
		return errors.New(c.waiting)
	case c.waiting != "":
		// Ready: a missing topic is normal until the producer's first event
		// creates it, and an unready pod would hold up a rollout for it.
		return nil
	case c.groupErr != "":
		return fmt.Errorf("cannot join group %s: %s", c.opts.GroupID, c.groupErr)
	case c.generations == 0:
		return fmt.Errorf("not joined group %s yet", c.opts.GroupID)
	case c.fetchDown != "":
		return errors.New(c.fetchDown)
	}
	return nil
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

type noMetrics struct{}

func (noMetrics) Event(string)                      {}
func (noMetrics) Run(string, string, time.Duration) {}
func (noMetrics) SetLag(int, int64)                 {}
func (noMetrics) ForgetLag()                        {}
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

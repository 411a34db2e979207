package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"

	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/migrator"
)

// pending is one fetched message on its way to settling: decoded once, and
// carried across retries (a registry that does not answer, an override row
// not visible yet).
type pending struct {
	msg            kafka.Message
	s              Settled
	reason, detail string // set: park it
	decodeErr      error  // set: decoding failed in a way worth a retry
	attempts       int
	invisibleSince time.Time // first time its override row was not visible
	next           time.Time // when a message set aside is tried again
}

func (p *pending) source() migrator.Source {
	return migrator.Source{EventID: p.s.EventID, Topic: p.msg.Topic, Partition: p.msg.Partition, Offset: p.msg.Offset}
}

// quick says whether p may go to the engine in a batch: it decoded well
// and was never tried before.
func (p *pending) quick() bool { return p.reason == "" && p.decodeErr == nil && p.attempts == 0 }

// settleAll settles msgs in order. Runs of well-formed events that move no
// data go to the engine together (HandleQuick, one transaction); the first
// event that needs a run, a retry or parking goes through settle alone.
// An event whose override row is not visible yet is set aside (l.deferred)
// and the ones after it go on. It returns an error only when ctx ended
// while a transient failure was being retried; what had not settled then
// stays unsettled.
func (l *genLoop) settleAll(ctx context.Context, msgs []kafka.Message) error {
	c := l.c
	ps := make([]*pending, len(msgs))
	for i, m := range msgs {
		ps[i] = c.decode(ctx, m)
	}
	for i := 0; i < len(ps); {
		// Commit as often inside a batch as between batches: a batch of a
		// backlog can hold a thousand events and many runs.
		if i > 0 && l.offsets.due(c.opts.Now(), c.opts.CommitBatch, c.opts.CommitInterval) {
			l.commit(ctx, false)
		}
		if i > 0 && ctx.Err() != nil {
			// Shutting down or rebalancing: the event in hand finished; the
			// rest stay uncommitted and come back to whoever owns the
			// partition next.
			return nil
		}
		var items []migrator.Item
		for j := i; j < len(ps) && ps[j].quick(); j++ {
			items = append(items, migrator.Item{Change: ps[j].s.Change, Source: ps[j].source()})
		}
		if len(items) > 0 {
			res, err := c.opts.Engine.HandleQuick(context.WithoutCancel(ctx), items)
			if err != nil {
				c.log.Warn("settling a batch failed; settling one by one", "error", err)
			}
			for _, r := range res {
				ps[i].s.Result = r
				l.settled(ps[i])
				i++
			}
			if len(res) > 0 {
				continue
			}
		}
		if err := l.settleOne(ctx, ps[i]); err != nil {
			return err
		}
		i++
	}
	return nil
}

// retryDue tries again every event set aside whose time has come.
func (l *genLoop) retryDue(ctx context.Context) error {
	now := l.c.opts.Now()
	for len(l.deferred) > 0 && !l.deferred[0].next.After(now) && ctx.Err() == nil {
		p := l.deferred[0]
		l.deferred = l.deferred[1:]
		if err := l.settleOne(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

// settled records p's outcome: metrics, log, offsets.
func (l *genLoop) settled(p *pending) {
	l.c.report(p.msg, p.s)
	l.offsets.settled(p.msg, l.c.opts.Now())
}

// settleOne has the engine act on p, retrying transient failures with
// backoff until it is handled or parked, or sets it aside when its override
// row is not visible yet. It returns an error only when ctx ends while it
// waits to retry.
func (l *genLoop) settleOne(ctx context.Context, p *pending) error {
	c := l.c
	log := c.log.With("partition", p.msg.Partition, "offset", p.msg.Offset, "key", events.KeyText(p.msg.Key))
	for {
		p.attempts++
		p.s.Attempts = p.attempts
		if p.attempts > 1 && p.decodeErr != nil {
			next := c.decode(ctx, p.msg)
			next.attempts, next.invisibleSince = p.attempts, p.invisibleSince
			next.s.Attempts = p.attempts
			*p = *next
		}
		if p.reason != "" {
			return l.park(ctx, p, p.reason, p.detail)
		}
		if p.decodeErr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.opts.Metrics.Retry("registry")
			log.Warn("decode failed, retrying", "attempt", p.attempts, "error", p.decodeErr)
			if err := c.opts.Sleep(ctx, c.backoff(p.attempts)); err != nil {
				return err
			}
			continue
		}
		// The engine's transaction is not cancelled by shutdown: the event in
		// hand finishes (the drain), bounded by the engine's lock timeout.
		began := c.opts.Now()
		res, err := c.opts.Engine.Handle(context.WithoutCancel(ctx), p.source(), p.s.Change)
		switch {
		case err == nil:
			p.s.Result = res
			if res.Outcome == migrator.OutcomeRan {
				c.opts.Metrics.Run(string(res.Direction), res.Status, c.opts.Now().Sub(began))
			}
			l.settled(p)
			return nil
		case errors.Is(err, migrator.ErrNotVisible):
			now := c.opts.Now()
			if p.invisibleSince.IsZero() {
				p.invisibleSince = now
			}
			if now.Sub(p.invisibleSince) >= c.opts.NotVisibleLimit {
				detail := fmt.Sprintf("override row %d of %s %s not visible after %s", p.s.Change.RecordID, p.s.Change.ScopeType, p.s.Change.ScopeKey, c.opts.NotVisibleLimit)
				if c.opts.LeaveToSweep {
					return l.leaveToSweep(ctx, p, detail)
				}
				return l.park(ctx, p, ReasonNotVisible, detail)
			}
			c.opts.Metrics.Retry("not_visible")
			log.Info("override row not visible yet; set aside, the partition goes on", "event_id", p.s.EventID, "record_id", p.s.Change.RecordID, "attempt", p.attempts)
			l.setAside(p, now.Add(c.backoff(p.attempts)))
			return nil
		case !migrator.IsTransient(err):
			// Retrying would fail the same way and hold up the partition.
			return l.park(ctx, p, ReasonHandlerError, err.Error())
		default:
			c.opts.Metrics.Retry("database")
			log.Warn("handle failed, retrying", "event_id", p.s.EventID, "attempt", p.attempts, "error", err)
		}
		if err := c.opts.Sleep(ctx, c.backoff(p.attempts)); err != nil {
			return err
		}
	}
}

// setAside queues p for another try at next, keeping the queue in due order.
func (l *genLoop) setAside(p *pending, next time.Time) {
	p.next = next
	i := len(l.deferred)
	for i > 0 && l.deferred[i-1].next.After(next) {
		i--
	}
	l.deferred = append(l.deferred, nil)
	copy(l.deferred[i+1:], l.deferred[i:])
	l.deferred[i] = p
}

// decode decodes m into what the engine is given, every value storable
// (see storable.go). A message to park has reason and detail set; a decode
// failure worth a retry (the registry unreachable) has decodeErr set.
func (c *Consumer) decode(ctx context.Context, m kafka.Message) *pending {
	p := &pending{msg: m, s: Settled{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: string(m.Key), Attempts: 1}}
	var idNote string
	p.s.EventID, idNote = eventID(m)
	ev, err := c.opts.Decoder.Decode(ctx, message(m))
	if err != nil {
		if reason, detail, bad := malformed(err); bad {
			if idNote != "" { // the decoder's reason is the more useful one
				detail = strings.TrimPrefix(detail+"; "+idNote, "; ")
			}
			p.reason, p.detail = reason, detail
			return p
		}
		p.decodeErr = err
		return p
	}
	if idNote != "" {
		p.reason, p.detail = ReasonBadEventID, idNote
		return p
	}
	var changed []string
	p.s.Change, changed = storableChange(change(ev))
	if len(changed) > 0 {
		c.log.Warn("event values cut to fit their columns", "partition", m.Partition, "offset", m.Offset, "event_id", p.s.EventID, "fields", changed)
	}
	return p
}

// leaveToSweep settles an event whose override row is not visible: its
// outcome is recorded as waiting (retried until durable) and the sweep
// reconciles the scope when the row commits, so the partition moves on.
func (l *genLoop) leaveToSweep(ctx context.Context, p *pending, detail string) error {
	c := l.c
	detail = storableText(detail + "; left to the sweep")
	for attempt := 1; ; attempt++ {
		err := c.opts.Engine.RecordWaiting(context.WithoutCancel(ctx), p.source(), p.s.Change, detail)
		if err == nil {
			p.s.Result = migrator.Result{Outcome: migrator.OutcomeWaiting, Detail: detail}
			c.log.Warn("override row not visible: left to the sweep", "event_id", p.s.EventID, "record_id", p.s.Change.RecordID)
			l.settled(p)
			return nil
		}
		c.opts.Metrics.Retry("database")
		if err := c.opts.Sleep(ctx, c.backoff(attempt)); err != nil {
			return err
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
func (l *genLoop) park(ctx context.Context, p *pending, reason, detail string) error {
	c, m := l.c, p.msg
	detail = storableText(detail) // the event id is storable already (decode)
	p.s.Reason, p.s.Detail = reason, detail
	p.s.Result = migrator.Result{Outcome: migrator.OutcomeParked, Detail: reason + ": " + detail}
	dead := deadLetter(m, reason, detail)
	row := migrator.ParkedEvent{
		EventID:   p.s.EventID,
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
		} else if err = c.opts.Engine.Park(context.WithoutCancel(ctx), row); err != nil {
			c.opts.Metrics.Retry("database")
		} else {
			c.opts.Metrics.Parked()
			c.log.Warn("event parked", "partition", m.Partition, "offset", m.Offset, "key", events.KeyText(m.Key), "event_id", p.s.EventID, "reason", reason, "detail", detail)
			l.settled(p)
			return nil
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
			return err
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

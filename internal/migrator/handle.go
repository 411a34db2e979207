package migrator

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/eventid"
	"authz-flag-consumer/internal/store"
)

// Handle acts on one flag-change event once. Under the org's advisory lock
// and in one transaction it checks whether the event was handled before,
// reconciles its scope (desired against applied state), runs the migration
// when one is needed, updates the ledger and records the event's outcome in
// authz_consumer_event: a crash at any point leaves either all of it or
// none. errors.Is(err, ErrNotVisible) means the override row is not
// committed yet; IsTransient tells the other errors worth retrying (do not
// commit the offset) from those that would fail the same way again.
func (e *Engine) Handle(ctx context.Context, src Source, ch Change) (Result, error) {
	item := []Item{{Source: src, Change: ch}}
	if e.ignoreReason(ch) != "" {
		// Nothing to lock for: its org may not even parse.
		res, err := e.HandleQuick(ctx, item)
		if err != nil {
			return Result{}, err
		}
		return res[0], nil
	}
	org := ch.ScopeKey
	if ch.ScopeType == CourseScope {
		org, _ = authz.CourseV1Org(ch.ScopeKey)
	}
	var (
		res Result
		req *Request
	)
	err := e.locked(ctx, []string{org}, func(t *tx) error {
		res, req = Result{}, nil
		q := e.newQuickBatch(t)
		if err := q.readPrior(ctx, item); err != nil {
			return err
		}
		quick, settled, d, err := q.one(ctx, item[0])
		if err != nil {
			return err
		}
		if settled {
			res = quick
			return q.flush(ctx)
		}
		res = Result{Outcome: d.outcome, Direction: d.dir, Detail: d.detail}
		r := scopeRequest(d.dir, ch.ScopeType, ch.ScopeKey, Trigger{Kind: TriggerEvent, EventID: src.EventID,
			Topic: src.Topic, Partition: src.Partition, Offset: src.Offset, RecordID: ch.RecordID})
		r.Excluded = d.excluded
		req = &r
		run, err := e.runIn(ctx, t, r)
		if err != nil {
			return err
		}
		res.RunID, res.Status = run.ID, run.Status
		return e.recordEvent(ctx, t, src, ch, res)
	})
	if err == nil || IsTransient(err) || req == nil {
		return res, err
	}
	// The run failed for good: its data rolled back; record the failed run
	// and the event's outcome together.
	cause := err
	err = e.locked(ctx, []string{org}, func(t *tx) error {
		md := newReport(0).metadata(*req)
		md["error"] = cause.Error()
		run, err := e.insertRun(ctx, t, *req, StatusFailed, md)
		if err != nil {
			return err
		}
		res = Result{Outcome: OutcomeRan, Direction: req.Direction, RunID: run.ID, Status: StatusFailed, Detail: cause.Error()}
		return e.recordEvent(ctx, t, src, ch, res)
	})
	if err != nil {
		return Result{}, fmt.Errorf("record failed run (failure was: %v): %w", cause, err)
	}
	e.log.Error("migration run failed", "run_id", res.RunID, "scope", ch.ScopeKey, "event_id", src.EventID, "err", cause)
	return res, nil
}

// ignoreReason says why an event is none of this service's business, or "".
func (e *Engine) ignoreReason(ch Change) string {
	switch {
	case ch.Flag != e.opts.WatchedFlag:
		return fmt.Sprintf("flag %q is not the watched flag %q", ch.Flag, e.opts.WatchedFlag)
	case ch.ScopeType == CourseScope:
		if _, err := authz.CourseV1Org(ch.ScopeKey); err != nil {
			return "not a course-v1 course key: " + ch.ScopeKey
		}
	case ch.ScopeType == OrgScope:
		if err := authz.ValidOrg(ch.ScopeKey); err != nil {
			return err.Error()
		}
	default:
		return fmt.Sprintf("scope type %q is neither course nor org", ch.ScopeType)
	}
	return ""
}

// recordEvent writes (or, for a re-handled disabled or parked event,
// updates) the event's outcome row.
func (e *Engine) recordEvent(ctx context.Context, t *tx, src Source, ch Change, res Result) error {
	row := e.eventRow(src, ch, res)
	// The update sets every column but event_id, created_at (row[0], row[12]).
	args := append(append([]any{}, row[1:12]...), row[13], src.EventID)
	r, err := t.exec(ctx, "UPDATE "+store.EventTable+" SET topic = ?, partition_no = ?, offset_no = ?, flag = ?, scope_type = ?, scope_key = ?, record_id = ?, outcome = ?, run_id = ?, direction = ?, detail = ?, updated_at = ? WHERE event_id = ?", args...)
	if err != nil {
		return fmt.Errorf("record outcome of event %s: %w", src.EventID, err)
	}
	if n, _ := r.RowsAffected(); n > 0 {
		return nil
	}
	return insertRows(ctx, t, store.EventTable, eventColumns, [][]any{row})
}

var eventColumns = []string{"event_id", "topic", "partition_no", "offset_no", "flag", "scope_type", "scope_key", "record_id", "outcome", "run_id", "direction", "detail", "created_at", "updated_at"}

// eventRow is an authz_consumer_event row in eventColumns' order.
func (e *Engine) eventRow(src Source, ch Change, res Result) []any {
	now := e.now()
	var runID any
	if res.RunID != 0 {
		runID = res.RunID
	}
	detail := res.Detail
	if res.Status != "" {
		detail = strings.TrimSpace("run " + res.Status + " " + detail)
	}
	return []any{src.EventID, src.Topic, src.Partition, src.Offset, ch.Flag, string(ch.ScopeType), ch.ScopeKey, ch.RecordID,
		string(res.Outcome), runID, string(res.Direction), detail, now, now}
}

// RecordWaiting records that an event's override row did not become
// visible in time (the LMS may publish before its transaction commits, or
// the transaction rolled back): the event is settled, and the sweep
// reconciles the scope once the row is there (its trailing window reads
// rows that commit late). A redelivery evaluates it again.
func (e *Engine) RecordWaiting(ctx context.Context, src Source, ch Change, detail string) error {
	return e.locked(ctx, nil, func(t *tx) error {
		return e.recordEvent(ctx, t, src, ch, Result{Outcome: OutcomeWaiting, Detail: detail})
	})
}

// ParkedEvent is a message the consumer could not use, kept for re-drive.
type ParkedEvent struct {
	ID         int64
	EventID    string
	Topic      string
	Partition  int
	Offset     int64
	Key        []byte
	Value      []byte
	Headers    map[string]string
	Reason     string // a stable code, e.g. framing, missing_field
	Detail     string
	ParkedAt   time.Time
	RedrivenAt *time.Time
}

// Park records a malformed event: its payload in authz_consumer_parked and
// outcome parked in authz_consumer_event. Parking the same message twice
// (a redelivery) keeps one row.
func (e *Engine) Park(ctx context.Context, p ParkedEvent) error {
	if p.EventID == "" {
		p.EventID = eventid.Format(p.Topic, p.Partition, p.Offset)
	}
	headers, _ := json.Marshal(p.Headers)
	now := e.now()
	return e.locked(ctx, nil, func(t *tx) error {
		var n int
		if err := t.queryRow(ctx, "SELECT COUNT(*) FROM "+store.ParkedTable+" WHERE topic = ? AND partition_no = ? AND offset_no = ?",
			p.Topic, p.Partition, p.Offset).Scan(&n); err != nil {
			return fmt.Errorf("park event %s: %w", p.EventID, err)
		}
		if n > 0 {
			return nil
		}
		if err := insertRows(ctx, t, store.ParkedTable,
			[]string{"event_id", "topic", "partition_no", "offset_no", "msg_key", "msg_value", "headers", "reason", "detail", "parked_at"},
			[][]any{{p.EventID, p.Topic, p.Partition, p.Offset, p.Key, p.Value, string(headers), p.Reason, p.Detail, now}}); err != nil {
			return err
		}
		src := Source{EventID: p.EventID, Topic: p.Topic, Partition: p.Partition, Offset: p.Offset}
		var prior string
		err := t.queryRow(ctx, "SELECT outcome FROM "+store.EventTable+" WHERE event_id = ?", p.EventID).Scan(&prior)
		if err == nil && prior != string(OutcomeParked) {
			return nil // the id was handled before: keep that outcome
		}
		return e.recordEvent(ctx, t, src, Change{}, Result{Outcome: OutcomeParked, Detail: p.Reason + ": " + p.Detail})
	})
}

// Parked lists parked events, oldest first; re-driven ones only when
// includeRedriven.
func (e *Engine) Parked(ctx context.Context, includeRedriven bool) ([]ParkedEvent, error) {
	q := "SELECT id, event_id, topic, partition_no, offset_no, msg_key, msg_value, headers, reason, detail, parked_at, redriven_at FROM " + store.ParkedTable
	if !includeRedriven {
		q += " WHERE redriven_at IS NULL"
	}
	rows, err := e.db.SQL.QueryContext(ctx, q+" ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list parked events: %w", err)
	}
	defer rows.Close()
	var out []ParkedEvent
	for rows.Next() {
		var p ParkedEvent
		var headers string
		var redriven sql.NullTime
		if err := rows.Scan(&p.ID, &p.EventID, &p.Topic, &p.Partition, &p.Offset, &p.Key, &p.Value, &headers, &p.Reason, &p.Detail, &p.ParkedAt, &redriven); err != nil {
			return nil, fmt.Errorf("read parked event: %w", err)
		}
		_ = json.Unmarshal([]byte(headers), &p.Headers)
		if redriven.Valid {
			p.RedrivenAt = &redriven.Time
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ParkedCount counts parked events not yet re-driven (the pending gauge),
// without reading their payloads.
func (e *Engine) ParkedCount(ctx context.Context) (int, error) {
	var n int
	if err := e.db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+store.ParkedTable+" WHERE redriven_at IS NULL").Scan(&n); err != nil {
		return 0, fmt.Errorf("count parked events: %w", err)
	}
	return n, nil
}

// ErrNotFound means a run or parked event id does not exist.
var ErrNotFound = errors.New("not found")

// MarkRedriven marks a parked event as re-driven.
func (e *Engine) MarkRedriven(ctx context.Context, id int64) error {
	r, err := e.db.SQL.ExecContext(ctx, e.db.Rebind("UPDATE "+store.ParkedTable+" SET redriven_at = ? WHERE id = ?"), e.now(), id)
	if err != nil {
		return fmt.Errorf("mark parked event %d re-driven: %w", id, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("parked event %d: %w", id, ErrNotFound)
	}
	return nil
}

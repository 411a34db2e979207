package migrator

import (
	"authz-flag-consumer/internal/store"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Item is one event for HandleQuick.
type Item struct {
	Source Source
	Change Change
}

// HandleQuick settles, in one transaction, the longest prefix of items that
// moves no data: events to ignore, duplicates, disabled events (automatic
// migration off), and no-op saves. It stops before the first
// item that calls for a run or whose override row is not visible yet; the
// caller hands that one to Handle. The results, one per settled item, are
// durable when it returns; on error nothing is.
//
// It takes no advisory lock: none of these outcomes changes role data, and
// a second consumer settling the same event at once fails on the event
// id's unique index and retries, finding the first one's outcome.
func (e *Engine) HandleQuick(ctx context.Context, items []Item) ([]Result, error) {
	if len(items) == 0 {
		return nil, nil
	}
	var results []Result
	err := e.locked(ctx, nil, func(t *tx) error {
		var err error
		results, err = e.newQuickBatch(t).settle(ctx, items)
		return err
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// quickBatch is one HandleQuick transaction: prior outcomes read in one
// query, new outcome rows written in one statement at the end (decisions
// see the rows this batch found superseded through pending).
type quickBatch struct {
	e       *Engine
	t       *tx
	prior   map[string]priorOutcome
	seen    map[string]bool // event ids settled in this batch
	rows    [][]any
	applied map[string]bool // scopes whose applied state this batch recorded
}

func (e *Engine) newQuickBatch(t *tx) *quickBatch {
	return &quickBatch{e: e, t: t, seen: map[string]bool{}, applied: map[string]bool{}}
}

type priorOutcome struct {
	outcome, direction, detail string
	runID                      sql.NullInt64
}

func (q *quickBatch) settle(ctx context.Context, items []Item) ([]Result, error) {
	if err := q.readPrior(ctx, items); err != nil {
		return nil, err
	}
	var results []Result
	for _, it := range items {
		res, settled, _, err := q.one(ctx, it)
		if errors.Is(err, ErrNotVisible) {
			break
		}
		if err != nil {
			return nil, err
		}
		if !settled {
			break
		}
		results = append(results, res)
	}
	if err := q.flush(ctx); err != nil {
		return nil, err
	}
	return results, nil
}

// flush writes the outcome rows collected so far.
func (q *quickBatch) flush(ctx context.Context) error {
	err := insertRows(ctx, q.t, store.EventTable, eventColumns, q.rows)
	q.rows = nil
	return err
}

// one settles an item when that moves no data (settled). Otherwise it
// returns the decision that calls for a run, or an error wrapping
// ErrNotVisible when the override row is not there yet. Handle and
// HandleQuick both go through it, so an event meets the same checks,
// in the same order, whichever path takes it.
func (q *quickBatch) one(ctx context.Context, it Item) (res Result, settled bool, run decision, err error) {
	src, ch := it.Source, it.Change
	p, known := q.prior[src.EventID]
	switch {
	case q.seen[src.EventID]:
		return Result{Outcome: OutcomeDuplicate, Detail: "event delivered twice in one batch"}, true, run, nil
	case known && p.outcome != string(OutcomeDisabled) && p.outcome != string(OutcomeParked) && p.outcome != string(OutcomeWaiting):
		return Result{Outcome: OutcomeDuplicate, RunID: p.runID.Int64, Direction: Direction(p.direction),
			Detail: fmt.Sprintf("event already handled: %s %s", p.outcome, p.detail)}, true, run, nil
	}
	switch reason := q.e.ignoreReason(ch); {
	case reason != "":
		res = Result{Outcome: OutcomeIgnored, Detail: reason}
	case !q.e.opts.AutoMigrate:
		res = Result{Outcome: OutcomeDisabled, Detail: "automatic migration is off"}
	default:
		d, err := q.e.decide(ctx, q.t, ch)
		if err != nil {
			return Result{}, false, run, err
		}
		if d.outcome == OutcomeRan {
			return Result{}, false, d, nil
		}
		if d.recordApplied && !q.applied[scopeKey(ch)] {
			// Unknown until now, and nothing to move: remember the state.
			if err := setApplied(ctx, q.t, ch.ScopeType, []string{ch.ScopeKey}, d.dir == Forward, 0, q.e.now()); err != nil {
				return Result{}, false, run, err
			}
			q.applied[scopeKey(ch)] = true
		}
		res = Result{Outcome: d.outcome, Detail: d.detail}
	}
	q.seen[src.EventID] = true
	if known { // a disabled, parked or waiting event settled again: its row is updated
		return res, true, run, q.e.recordEvent(ctx, q.t, src, ch, res)
	}
	q.rows = append(q.rows, q.e.eventRow(src, ch, res))
	return res, true, run, nil
}

func (q *quickBatch) readPrior(ctx context.Context, items []Item) error {
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.Source.EventID
	}
	ids = unique(ids)
	q.prior = map[string]priorOutcome{}
	for _, chunk := range chunks(ids, q.t.db.RowsPerStatement(1)) {
		rows, err := q.t.query(ctx, "SELECT event_id, outcome, run_id, direction, detail FROM "+store.EventTable+" WHERE event_id IN "+inList(len(chunk)), anys(chunk)...)
		if err != nil {
			return fmt.Errorf("read outcomes of events: %w", err)
		}
		for rows.Next() {
			var id string
			var p priorOutcome
			if err := rows.Scan(&id, &p.outcome, &p.runID, &p.direction, &p.detail); err != nil {
				rows.Close()
				return err
			}
			q.prior[id] = p
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

func scopeKey(ch Change) string {
	return strings.Join([]string{ch.Flag, string(ch.ScopeType), ch.ScopeKey}, "\x00")
}

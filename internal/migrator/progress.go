package migrator

import (
	"context"
	"fmt"
	"time"
)

// progress logs how far a long run is: rows read of the total, at most
// every Options.ProgressInterval, and a last line when it ends. A run
// shorter than the interval logs nothing here (its outcome is logged by
// whoever asked for it).
type progress struct {
	e           *Engine
	run         *Run
	req         Request
	start, last time.Time
	done, total int
	logged      bool
}

func (e *Engine) newProgress(run *Run, req Request) *progress {
	now := time.Now()
	return &progress{e: e, run: run, req: req, start: now, last: now}
}

// count sets the total from a COUNT(*) over the rows the run will read.
func (p *progress) count(ctx context.Context, t *tx, q string, args ...any) error {
	if err := t.queryRow(ctx, q, args...).Scan(&p.total); err != nil {
		return fmt.Errorf("count rows to read: %w", err)
	}
	return nil
}

// add counts n rows read and logs when the interval has passed.
func (p *progress) add(n int) {
	p.done += n
	if now := time.Now(); now.Sub(p.last) >= p.e.opts.ProgressInterval {
		p.last = now
		p.logged = true
		p.e.log.Info("run progress", p.attrs(now)...)
	}
}

// finish logs the last line of a run that logged progress.
func (p *progress) finish(status string) {
	if !p.logged {
		return
	}
	p.e.log.Info("run finished", append(p.attrs(time.Now()), "status", status)...)
}

func (p *progress) attrs(now time.Time) []any {
	elapsed := now.Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.done) / elapsed.Seconds()
	}
	return []any{"run_id", p.run.ID, "type", p.req.Direction, "scope_type", p.req.ScopeType, "scope", p.req.scopeKey(),
		"rows_done", p.done, "rows_total", p.total, "elapsed", elapsed.Round(time.Millisecond).String(), "rows_per_second", int(rate)}
}

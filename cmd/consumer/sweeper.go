package main

import (
	"context"
	"log/slog"
	"time"

	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/ops"
)

// sweeper runs the engine's sweep every interval until ctx ends: the
// safety net that reconciles scopes whose events were lost, and reports
// (or, opted in, reconciles) flips of the flag for everyone. Every replica
// runs one; the database lock lets one sweep at a time, the others skip.
type sweeper struct {
	engine   *migrator.Engine
	interval time.Duration
	global   bool
	metrics  *ops.Metrics
	log      *slog.Logger
}

func (s sweeper) run(ctx context.Context) {
	if s.interval <= 0 {
		s.log.Info("sweep off (--sweep-interval 0, or automatic migration off)")
		return
	}
	// At start only the watermarks are set, when there are none yet (the
	// first deployment); sweeping waits for the first interval, so a
	// restart handles its backlog through the events.
	s.once(ctx, true)
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.once(ctx, false)
	}
}

func (s sweeper) once(ctx context.Context, initOnly bool) {
	began := time.Now()
	res, err := s.engine.Sweep(ctx, migrator.SweepOptions{Global: s.global, InitOnly: initOnly})
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		// The next tick tries again: the watermark moves only after a sweep
		// reconciled everything below it.
		s.log.Warn("sweep failed; retried at the next interval", "err", err)
		return
	case res.Skipped:
		s.log.Debug("sweep skipped: another replica is sweeping")
		return
	case res.First:
		s.log.Info("sweep watermarks set to the newest override rows; nothing moved (`consumer reconcile` catches up deliberately)")
		return
	case initOnly:
		return
	}
	s.metrics.Sweep(res.Scopes, res.Drift, res.GlobalFlip)
	s.log.Info("sweep done", "scopes", res.Scopes, "runs", res.Runs, "global_flip", res.GlobalFlip, "took", time.Since(began).Round(time.Millisecond))
}

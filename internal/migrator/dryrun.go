package migrator

import (
	"encoding/json"
	"errors"

	"authz-flag-consumer/internal/lock"
)

// errDryRun rolls a dry run's transaction back once its work is done.
var errDryRun = errors.New("dry run: rolled back")

// dryRunResult turns the end of a dry run into its plan: the run as it would
// be, a failed or skipped plan where the real run would record one, or the
// transient error the real run would return. Nothing of it was written.
func dryRunResult(run *Run, req Request, err error) (*Run, error) {
	switch {
	case errors.Is(err, errDryRun):
		run.ID, run.DryRun = 0, true
		return run, nil
	case err == nil:
		return nil, nil // the plan step found nothing to do
	case errors.Is(err, lock.ErrTimeout) && req.Trigger.Kind != TriggerEvent:
		return plannedRun(req, StatusSkipped, "skip_reason", SkipReason), nil
	case IsTransient(err):
		return nil, err
	}
	return plannedRun(req, StatusFailed, "error", err.Error()), nil
}

// plannedRun is the plan of a run that would move nothing: failed (key
// "error") or skipped (key "skip_reason").
func plannedRun(req Request, status, key, value string) *Run {
	md := newReport(0).metadata(req)
	md[key] = value
	raw, _ := json.Marshal(md)
	run := &Run{MigrationType: req.Direction, ScopeType: req.ScopeType, ScopeKey: req.scopeKey(), Status: status, DryRun: true}
	_ = json.Unmarshal(raw, &run.Metadata) // as a stored run would read
	return run
}

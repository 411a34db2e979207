package migrator

import (
	"errors"
	"time"
)

// Direction of a migration run, as openedx-authz names it.
type Direction string

const (
	Forward  Direction = "forward"
	Rollback Direction = "rollback"
)

// ScopeType is what a run or an override covers.
type ScopeType string

const (
	CourseScope ScopeType = "course"
	OrgScope    ScopeType = "org"
)

// Run statuses, as openedx-authz names them.
const (
	StatusRunning        = "running"
	StatusCompleted      = "completed"
	StatusPartialSuccess = "partial_success"
	StatusFailed         = "failed"
	StatusSkipped        = "skipped"
)

// Trigger says why a run happened; it is written under extra metadata keys
// so an operator can trace a run back to its cause.
type Trigger struct {
	Kind      string // TriggerEvent, TriggerManual, TriggerSweep, TriggerGlobal or TriggerReconcile
	EventID   string
	Topic     string
	Partition int
	Offset    int64
	RecordID  int64
}

// Request asks for one run.
type Request struct {
	Direction  Direction
	ScopeType  ScopeType
	CourseKeys []string // course runs: one or more course keys of one run
	Org        string   // org runs
	Delete     bool     // delete migrated rows (automatic runs always do)
	Trigger    Trigger
	// Excluded lists courses of an org run left out because their own
	// override disagrees with the org's new state.
	Excluded []string
	// DryRun does the run's work in its transaction and rolls it back: the
	// returned run is the plan (ID 0, DryRun set) and nothing is written.
	DryRun bool
}

// Run is one row of openedx_authz_authzcourseauthoringmigrationrun.
type Run struct {
	ID            int64
	MigrationType Direction
	ScopeType     ScopeType
	ScopeKey      string
	Status        string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	CompletedAt   *time.Time
	Metadata      map[string]any
	DryRun        bool // a plan: never written, ID is 0
}

// Change is a decoded flag-override event as the engine needs it.
type Change struct {
	Flag           string
	ScopeType      ScopeType
	ScopeKey       string // course key or org short name
	Org            string
	RecordID       int64
	Enabled        bool
	OverrideChoice string
	ChangeDate     time.Time
	ChangedBy      string
}

// Source identifies the message an event came from. EventID is ce_id when
// present, else "<topic>/<partition>/<offset>".
type Source struct {
	EventID   string
	Topic     string
	Partition int
	Offset    int64
}

// Outcome of one event, recorded in authz_consumer_event.
type Outcome string

const (
	OutcomeRan       Outcome = "ran"
	OutcomeNoop      Outcome = "noop"
	OutcomeIgnored   Outcome = "ignored"
	OutcomeDisabled  Outcome = "disabled"
	OutcomeParked    Outcome = "parked"
	OutcomeWaiting   Outcome = "waiting"   // its override row was not visible in time: left to the sweep
	OutcomeDuplicate Outcome = "duplicate" // returned, never stored: the event was handled before
)

// Result of handling one event.
type Result struct {
	Outcome   Outcome
	RunID     int64 // when Outcome is ran (or duplicate of a ran event)
	Direction Direction
	Status    string // run status when a run was made
	Detail    string
}

// ErrNotVisible means the override row an event names is not in the
// database yet (the producer may publish before its transaction commits).
// It is transient: retry with backoff, and park after a bound.
var ErrNotVisible = errors.New("override row not yet visible")

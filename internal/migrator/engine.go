package migrator

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"authz-flag-consumer/internal/store"
)

// Options tune an Engine. Zero values are sensible defaults.
type Options struct {
	Logger      *slog.Logger
	WatchedFlag string        // default authz.enable_course_authoring
	AutoMigrate bool          // when false, events are recorded as disabled
	LockTimeout time.Duration // how long to wait for the org lock
	BatchSize   int
	Now         func() time.Time
}

// Engine runs migrations and handles flag-change events against one database.
type Engine struct {
	db   *store.DB
	opts Options
}

// New returns an Engine on db.
func New(db *store.DB, opts Options) *Engine { return &Engine{db: db, opts: opts} }

var errTODO = errors.New("not implemented yet")

// Run performs one migration run and returns its record.
func (e *Engine) Run(ctx context.Context, req Request) (*Run, error) { return nil, errTODO }

// Handle acts on one event exactly once: duplicate check, ignore/disabled,
// decision from the override history, the run, and the outcome row, all in
// one transaction under the org lock. A returned error is transient (retry).
func (e *Engine) Handle(ctx context.Context, src Source, ch Change) (Result, error) {
	return Result{}, errTODO
}

// ParkedEvent is a message the consumer could not decode, kept for re-drive.
type ParkedEvent struct {
	ID        int64
	EventID   string
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   map[string]string
	Reason    string
	ParkedAt  time.Time
	RedrivenAt *time.Time
}

// Park records a malformed event (outcome parked, with its payload).
// Parking the same source twice keeps one row.
func (e *Engine) Park(ctx context.Context, p ParkedEvent) error { return errTODO }

// Parked lists parked events not yet re-driven (all when includeRedriven).
func (e *Engine) Parked(ctx context.Context, includeRedriven bool) ([]ParkedEvent, error) {
	return nil, errTODO
}

// MarkRedriven marks a parked event as re-driven.
func (e *Engine) MarkRedriven(ctx context.Context, id int64) error { return errTODO }

// Runs lists the newest runs first.
func (e *Engine) Runs(ctx context.Context, limit int) ([]Run, error) { return nil, errTODO }

// GetRun returns one run.
func (e *Engine) GetRun(ctx context.Context, id int64) (*Run, error) { return nil, errTODO }

package migrator

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/lock"
	"authz-flag-consumer/internal/store"
)

// Options tune an Engine. Zero values are sensible defaults.
type Options struct {
	Logger      *slog.Logger
	WatchedFlag string        // default authz.enable_course_authoring
	AutoMigrate bool          // when false, events are recorded as disabled
	LockTimeout time.Duration // how long to wait for the org lock; default 30s
	BatchSize   int           // rows per statement batch; default 1000
	// MaxReportedEntries caps the successes and each error list kept in a
	// run's metadata (the counts stay exact); default 5000. openedx-authz
	// keeps every entry, which makes a 100k-row run's metadata megabytes.
	MaxReportedEntries int
	Now                func() time.Time
	// ProgressInterval is how often a long run logs its progress (rows
	// read of the total); default 5s.
	ProgressInterval time.Duration
	// LockWaited, when set, is told how long each lock wait took (metrics).
	LockWaited func(time.Duration)
	// Fault, when set, is called at named points of a run; an error it
	// returns fails the run there. Tests use it to inject failures.
	Fault func(point string) error
}

// Engine runs migrations and handles flag-change events against one database.
// It is safe for concurrent use: every run takes its org's advisory lock.
type Engine struct {
	db   *store.DB
	opts Options
	log  *slog.Logger
}

// New returns an Engine on db.
func New(db *store.DB, opts Options) *Engine {
	if opts.WatchedFlag == "" {
		opts.WatchedFlag = authz.DefaultFlag
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 30 * time.Second
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = 5 * time.Second
	}
	if opts.MaxReportedEntries <= 0 {
		opts.MaxReportedEntries = 5000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Engine{db: db, opts: opts, log: opts.Logger}
}

func (e *Engine) now() time.Time { return e.opts.Now().UTC().Truncate(time.Microsecond) }

func (e *Engine) fault(point string) error {
	if e.opts.Fault == nil {
		return nil
	}
	if err := e.opts.Fault(point); err != nil {
		return fmt.Errorf("injected fault at %s: %w", point, err)
	}
	return nil
}

// tx is one transaction on the connection that holds the org lock.
type tx struct {
	*sql.Tx
	db *store.DB
}

func (t *tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.ExecContext(ctx, t.db.Rebind(q), args...)
}

func (t *tx) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.QueryContext(ctx, t.db.Rebind(q), args...)
}

func (t *tx) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.QueryRowContext(ctx, t.db.Rebind(q), args...)
}

// locked runs fn in one transaction on a dedicated connection that holds
// the advisory locks of orgs (sorted, so two runs never deadlock). The
// transaction commits when fn returns nil and rolls back otherwise.
func (e *Engine) locked(ctx context.Context, orgs []string, fn func(*tx) error) error {
	conn, err := e.db.SQL.Conn(ctx)
	if err != nil {
		return fmt.Errorf("get connection: %w", err)
	}
	defer conn.Close()
	folded := make([]string, len(orgs))
	for i, org := range orgs {
		folded[i] = authz.FoldOrg(org) // two spellings of one org are one lock
	}
	orgs = uniqueSorted(folded)
	start := time.Now()
	for _, org := range orgs {
		release, err := lock.Acquire(ctx, e.db.Driver(), conn, org, 0)
		if errors.Is(err, lock.ErrTimeout) {
			// Another run of the org holds it: say so, then wait.
			e.log.Info("waiting for the org's advisory lock: another run of the org holds it",
				"org", org, "held_by", e.lockHolder(ctx, conn, org), "timeout", e.opts.LockTimeout.String())
			release, err = lock.Acquire(ctx, e.db.Driver(), conn, org, e.opts.LockTimeout)
		}
		if err != nil {
			return err
		}
		defer func() {
			// The lock must go back even when ctx was cancelled.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if err := release(rctx); err != nil {
				e.log.Error("release advisory lock", "org", org, "err", err)
				conn.Raw(func(any) error { return driver.ErrBadConn }) // drop the connection: closing the session frees its locks
			}
		}()
	}
	writer := e.db.Driver().SingleWriter()
	if e.opts.LockWaited != nil && len(orgs) > 0 && writer == "" {
		e.opts.LockWaited(time.Since(start))
	}
	var waiting *time.Timer
	if writer != "" && len(orgs) > 0 {
		// One writer: BEGIN waits (SQLite's busy_timeout) for another
		// writer, a run or the consumer, without a word.
		waiting = time.AfterFunc(time.Second, func() {
			e.log.Info("waiting for "+writer+": another writer (a run, or a consumer on this file) holds it", "orgs", strings.Join(orgs, ","))
		})
	}
	sqlTx, err := conn.BeginTx(ctx, nil)
	if waiting != nil {
		waiting.Stop()
	}
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	t := &tx{Tx: sqlTx, db: e.db}
	if err := fn(t); err != nil {
		if rbErr := sqlTx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			e.log.Warn("rollback", "err", rbErr)
		}
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// lockHolder describes who holds org's lock: the database connection, and
// a running run of the org when one is visible (openedx-authz commits its
// running record first; this service's runs are visible only once done).
func (e *Engine) lockHolder(ctx context.Context, conn *sql.Conn, org string) string {
	who := lock.Holder(ctx, e.db.Driver(), conn, org)
	if who == "" {
		who = "another connection"
	}
	runs, err := e.queryRuns(ctx, "SELECT "+runColumns+" FROM "+store.RunTable+" WHERE status = ? AND (scope_key = ? OR scope_key LIKE ?) ORDER BY id",
		StatusRunning, org, "course-v1:"+org+"+%")
	if err == nil {
		for _, r := range runs {
			who += fmt.Sprintf("; running run %d (%s %s %s, started %s)", r.ID, r.MigrationType, r.ScopeType, r.ScopeKey, r.CreatedAt.UTC().Format(time.RFC3339))
		}
	}
	return who
}

func uniqueSorted(in []string) []string {
	out := unique(in)
	sort.Strings(out)
	return out
}

// IsTransient reports whether err is worth retrying as it is: an override
// row not visible yet, an org lock another run holds, or a database error
// store.Transient classifies as transient (connection lost, deadlock, lock
// wait timeout, busy, ...). Other errors fail the run for good.
func IsTransient(err error) bool {
	return errors.Is(err, ErrNotVisible) || errors.Is(err, lock.ErrTimeout) || store.Transient(err)
}

// ErrBadRequest wraps every reason a request is refused before anything is
// read or written: an unknown direction or scope type, an invalid org or
// course key, not exactly one course key for a course run.
var ErrBadRequest = errors.New("bad migration request")

// orgs checks a request and returns the orgs whose locks it needs; its
// errors wrap ErrBadRequest.
func (r Request) orgs() ([]string, error) {
	bad := func(err error) ([]string, error) { return nil, fmt.Errorf("%w: %w", ErrBadRequest, err) }
	if r.Direction != Forward && r.Direction != Rollback {
		return bad(fmt.Errorf("unknown migration type %q", r.Direction))
	}
	switch r.ScopeType {
	case OrgScope:
		if err := authz.ValidOrg(r.Org); err != nil {
			return bad(err)
		}
		return []string{r.Org}, nil
	case CourseScope:
		if len(r.CourseKeys) != 1 {
			return bad(fmt.Errorf("a course run takes exactly one course key, got %d", len(r.CourseKeys)))
		}
		org, err := authz.CourseV1Org(r.CourseKeys[0])
		if err != nil {
			return bad(err)
		}
		return []string{org}, nil
	}
	return bad(fmt.Errorf("unknown scope type %q", r.ScopeType))
}

func (r Request) scopeKey() string {
	if r.ScopeType == OrgScope {
		return r.Org
	}
	return r.CourseKeys[0]
}

// Run performs one migration run under its org's advisory lock and returns
// its record. All data changes of the run and its final record commit in
// one transaction; on an error that is not transient the data rolls back
// and a failed run is recorded (and returned with a nil error). A transient
// error (database gone, lock timeout, cancelled) is returned and nothing is
// written.
//
// A dry run (req.DryRun) does the same work and rolls it back: the run
// returned is the plan, exactly what the run would do now, and nothing is
// written (not even a failed or skipped run).
func (e *Engine) Run(ctx context.Context, req Request) (*Run, error) {
	return e.run(ctx, req, nil)
}

// run is Run with an optional plan step, called under the lock before the
// run: it decides the run from the database as it is now (it may set req's
// direction and left-out courses), or says none is needed (nil run).
func (e *Engine) run(ctx context.Context, req Request, plan func(context.Context, *tx, *Request) (bool, error)) (*Run, error) {
	orgs, err := req.orgs()
	if err != nil {
		return nil, err
	}
	var run *Run
	err = e.locked(ctx, orgs, func(t *tx) error {
		run = nil
		if plan != nil {
			if ok, err := plan(ctx, t, &req); err != nil || !ok {
				return err
			}
		}
		run, err = e.runIn(ctx, t, req)
		if err == nil && req.DryRun {
			return errDryRun
		}
		return err
	})
	if req.DryRun {
		return dryRunResult(run, req, err)
	}
	if errors.Is(err, lock.ErrTimeout) && req.Trigger.Kind != "event" {
		// A manual run does not wait forever behind another run of the
		// scope's org: like openedx-authz, it records a skipped run.
		return e.recordSkipped(ctx, req)
	}
	if err == nil || IsTransient(err) {
		return run, err
	}
	return e.recordFailed(ctx, orgs, req, err)
}

// SkipReason is openedx-authz's skip_reason for a scope already being migrated.
const SkipReason = "A concurrent migration run is already active for this scope."

// recordSkipped writes a skipped run without the lock (another run holds it).
func (e *Engine) recordSkipped(ctx context.Context, req Request) (*Run, error) {
	var run *Run
	err := e.locked(ctx, nil, func(t *tx) error {
		md := newReport(0).metadata(req)
		md["skip_reason"] = SkipReason
		var err error
		run, err = e.insertRun(ctx, t, req, StatusSkipped, md)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record skipped run: %w", err)
	}
	return run, nil
}

// runIn does a run inside t: recover an orphaned running run of the scope,
// insert this run, migrate, and finalize the record.
func (e *Engine) runIn(ctx context.Context, t *tx, req Request) (*Run, error) {
	if err := e.recoverOrphans(ctx, t, req.ScopeType, req.scopeKey()); err != nil {
		return nil, err
	}
	run, err := e.insertRun(ctx, t, req, StatusRunning, nil)
	if err != nil {
		return nil, err
	}
	rep := newReport(e.opts.MaxReportedEntries)
	rep.progress = e.newProgress(run, req)
	if req.Direction == Forward {
		err = e.forward(ctx, t, req, rep)
	} else {
		err = e.rollback(ctx, t, req, rep)
	}
	if err != nil {
		rep.progress.finish(StatusFailed)
		return nil, fmt.Errorf("%s %s %s: %w", req.Direction, req.ScopeType, req.scopeKey(), err)
	}
	if rep.successCount > 0 {
		// Every LMS/CMS process caches the policy and reloads it only when
		// this version changes (openedx-authz's invalidate_policy_cache).
		if err := bumpPolicyVersion(ctx, t); err != nil {
			return nil, err
		}
	}
	if err := recordRunApplied(ctx, t, req, run.ID, rep.courses, e.now()); err != nil {
		return nil, err
	}
	run.Status = StatusCompleted
	if rep.errorCount > 0 {
		run.Status = StatusPartialSuccess
	}
	run.Metadata = rep.metadata(req)
	if err := e.finishRun(ctx, t, run); err != nil {
		return nil, err
	}
	rep.progress.finish(run.Status)
	return run, nil
}

// recordFailed writes a failed run after the data of the attempt rolled back.
func (e *Engine) recordFailed(ctx context.Context, orgs []string, req Request, cause error) (*Run, error) {
	var run *Run
	err := e.locked(ctx, orgs, func(t *tx) error {
		if err := e.recoverOrphans(ctx, t, req.ScopeType, req.scopeKey()); err != nil {
			return err
		}
		md := newReport(0).metadata(req)
		md["error"] = cause.Error()
		var err error
		run, err = e.insertRun(ctx, t, req, StatusFailed, md)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("record failed run (failure was: %v): %w", cause, err)
	}
	e.log.Error("migration run failed", "run_id", run.ID, "type", req.Direction, "scope", req.scopeKey(), "err", cause)
	return run, nil
}

// recoverOrphans marks running runs of the scope failed. Called under the
// org lock, where a running run can only be left over from a crash.
func (e *Engine) recoverOrphans(ctx context.Context, t *tx, st ScopeType, key string) error {
	rows, err := t.query(ctx, "SELECT id, metadata FROM "+store.RunTable+" WHERE scope_type = ? AND scope_key = ? AND status = ?",
		string(st), key, StatusRunning)
	if err != nil {
		return fmt.Errorf("find orphaned runs of %s: %w", key, err)
	}
	type orphan struct {
		id int64
		md map[string]any
	}
	var orphans []orphan
	for rows.Next() {
		var o orphan
		var raw []byte
		if err := rows.Scan(&o.id, &raw); err != nil {
			rows.Close()
			return fmt.Errorf("read orphaned run: %w", err)
		}
		if json.Unmarshal(raw, &o.md) != nil || o.md == nil {
			o.md = map[string]any{}
		}
		orphans = append(orphans, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read orphaned runs: %w", err)
	}
	now := e.now()
	for _, o := range orphans {
		o.md["error"] = "Abandoned: the run was still running when a later run of the same scope took the lock (the process that ran it stopped); marked failed by authz-flag-consumer."
		raw, _ := json.Marshal(o.md)
		if _, err := t.exec(ctx, "UPDATE "+store.RunTable+" SET status = ?, metadata = ?, updated_at = ?, completed_at = ? WHERE id = ?",
			StatusFailed, string(raw), now, now, o.id); err != nil {
			return fmt.Errorf("mark orphaned run %d failed: %w", o.id, err)
		}
		e.log.Warn("marked orphaned running run failed", "run_id", o.id, "scope", key)
	}
	return nil
}

func (e *Engine) insertRun(ctx context.Context, t *tx, req Request, status string, md map[string]any) (*Run, error) {
	now := e.now()
	run := &Run{MigrationType: req.Direction, ScopeType: req.ScopeType, ScopeKey: req.scopeKey(), Status: status,
		CreatedAt: now, UpdatedAt: now, Metadata: md}
	if md == nil {
		md = map[string]any{}
	}
	var completed any
	if status != StatusRunning {
		run.CompletedAt = &now
		completed = now
	}
	raw, _ := json.Marshal(md)
	run.Metadata = nil
	_ = json.Unmarshal(raw, &run.Metadata)
	ids, err := insertIDs(ctx, t, store.RunTable,
		[]string{"migration_type", "scope_type", "scope_key", "status", "created_at", "updated_at", "completed_at", "metadata"},
		[][]any{{string(req.Direction), string(req.ScopeType), run.ScopeKey, status, now, now, completed, string(raw)}})
	if err != nil {
		return nil, fmt.Errorf("insert run: %w", err)
	}
	run.ID = ids[0]
	return run, nil
}

func (e *Engine) finishRun(ctx context.Context, t *tx, run *Run) error {
	now := e.now()
	run.UpdatedAt, run.CompletedAt = now, &now
	raw, err := json.Marshal(run.Metadata)
	if err != nil {
		return fmt.Errorf("encode run metadata: %w", err)
	}
	run.Metadata = nil
	_ = json.Unmarshal(raw, &run.Metadata) // callers see what GetRun would read
	if _, err := t.exec(ctx, "UPDATE "+store.RunTable+" SET status = ?, metadata = ?, updated_at = ?, completed_at = ? WHERE id = ?",
		run.Status, string(raw), now, now, run.ID); err != nil {
		return fmt.Errorf("finish run %d: %w", run.ID, err)
	}
	return nil
}

// insertIDs inserts rows and returns their new ids in order (RETURNING
// where the database has it, else one statement per row).
func insertIDs(ctx context.Context, t *tx, table string, cols []string, rows [][]any) ([]int64, error) {
	return t.db.InsertIDs(ctx, t.Tx, table, cols, rows)
}

// insertRows inserts rows in as few statements as the database takes.
func insertRows(ctx context.Context, t *tx, table string, cols []string, rows [][]any) error {
	return t.db.InsertRows(ctx, t.Tx, table, cols, rows)
}

// bumpPolicyVersion writes a new openedx-authz policy version, as
// openedx-authz's AuthzEnforcer.invalidate_policy_cache does, in the run's
// transaction: running enforcers reload the policy on their next check.
func bumpPolicyVersion(ctx context.Context, t *tx) error {
	native, err := t.db.NativeUUID(ctx, store.PolicyCacheTable, "version")
	if err != nil {
		return err
	}
	v := uuid.New()
	value := any(strings.ReplaceAll(v.String(), "-", "")) // Django's char(32) form
	if native {
		value = v.String()
	}
	// The singleton row may not exist yet (openedx-authz creates it on first
	// use): create it if missing, then set it. Concurrent runs of other orgs
	// queue on the row until the first commits.
	if err := insertRowsKeepExisting(ctx, t, store.PolicyCacheTable, []string{"id", "version"}, "id", [][]any{{1, value}}); err != nil {
		return fmt.Errorf("bump policy version: %w", err)
	}
	if _, err := t.exec(ctx, "UPDATE "+store.PolicyCacheTable+" SET version = ? WHERE id = 1", value); err != nil {
		return fmt.Errorf("bump policy version: %w", err)
	}
	return nil
}

// insertRowsKeepExisting inserts rows, leaving out those whose unique
// column conflict already holds (get-or-create in bulk).
func insertRowsKeepExisting(ctx context.Context, t *tx, table string, cols []string, conflict string, rows [][]any) error {
	return t.db.InsertKeepExisting(ctx, t.Tx, table, cols, conflict, rows)
}

func chunks[T any](in []T, n int) [][]T { return store.Chunks(in, n) }

// inList renders "(?, ?, ?)" for n values.
func inList(n int) string { return "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")" }

func anys[T any](in []T) []any {
	out := make([]any, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}

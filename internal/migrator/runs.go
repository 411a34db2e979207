package migrator

import (
	"authz-flag-consumer/internal/store"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
)

const runColumns = "id, migration_type, scope_type, scope_key, status, created_at, updated_at, completed_at, metadata"

// RunFilter narrows Runs; zero fields do not filter.
type RunFilter struct {
	Status   string
	ScopeKey string
	Limit    int // newest first; 0: all
}

// Runs lists runs, newest first.
func (e *Engine) Runs(ctx context.Context, f RunFilter) ([]Run, error) {
	q := "SELECT " + runColumns + " FROM " + store.RunTable + " WHERE 1 = 1"
	var args []any
	if f.Status != "" {
		q += " AND status = ?"
		args = append(args, f.Status)
	}
	if f.ScopeKey != "" {
		q += " AND scope_key = ?"
		args = append(args, f.ScopeKey)
	}
	q += " ORDER BY id DESC"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return e.queryRuns(ctx, q, args...)
}

func (e *Engine) queryRuns(ctx context.Context, q string, args ...any) ([]Run, error) {
	rows, err := e.db.SQL.QueryContext(ctx, e.db.Rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	defer rows.Close()
	var out []Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, rows.Err()
}

// GetRun returns one run, or an error wrapping ErrNotFound.
func (e *Engine) GetRun(ctx context.Context, id int64) (*Run, error) {
	rows, err := e.db.SQL.QueryContext(ctx, e.db.Rebind("SELECT "+runColumns+" FROM "+store.RunTable+" WHERE id = ?"), id)
	if err != nil {
		return nil, fmt.Errorf("read run %d: %w", id, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read run %d: %w", id, err)
		}
		return nil, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	return scanRun(rows)
}

func scanRun(rows *sql.Rows) (*Run, error) {
	var (
		r         Run
		completed sql.NullTime
		md        []byte
		mt, st    string
	)
	if err := rows.Scan(&r.ID, &mt, &st, &r.ScopeKey, &r.Status, &r.CreatedAt, &r.UpdatedAt, &completed, &md); err != nil {
		return nil, fmt.Errorf("read run: %w", err)
	}
	r.MigrationType, r.ScopeType = Direction(mt), ScopeType(st)
	if completed.Valid {
		r.CompletedAt = &completed.Time
	}
	if err := json.Unmarshal(md, &r.Metadata); err != nil {
		return nil, fmt.Errorf("run %d metadata: %w", r.ID, err)
	}
	return &r, nil
}

// OrgKnown reports whether anything here names the org: a legacy role or an
// openedx-authz assignment of it or of one of its courses.
func (e *Engine) OrgKnown(ctx context.Context, org string) (bool, error) {
	var n int
	err := e.db.SQL.QueryRowContext(ctx, e.db.Rebind("SELECT COUNT(*) FROM (SELECT 1 AS x FROM "+store.LegacyRoleTable+" WHERE org = ? LIMIT 1) a"), org).Scan(&n)
	if err != nil || n > 0 {
		return n > 0, err
	}
	cond, args := scopeFilter(Request{ScopeType: OrgScope, Org: org})
	err = e.db.SQL.QueryRowContext(ctx, e.db.Rebind("SELECT COUNT(*) FROM (SELECT 1 AS x FROM "+PolicyTable+" WHERE ptype = 'g' AND "+cond+" LIMIT 1) a"), args...).Scan(&n)
	return n > 0, err
}

// RunningRuns lists runs whose status is running. This service never
// commits a running run (its record is written in the run's transaction),
// so any found was made by another migrator (openedx-authz's automatic
// migration, which should be off) or left by a crash of one: `run` warns
// about them at start.
func (e *Engine) RunningRuns(ctx context.Context) ([]Run, error) {
	return e.queryRuns(ctx, "SELECT "+runColumns+" FROM "+store.RunTable+" WHERE status = ? ORDER BY id", StatusRunning)
}

// CourseKnown reports whether anything here names the course: a legacy
// role, an openedx-authz assignment, a course overview or an override row
// of it. A manual run of a course nothing names would record an empty run.
func (e *Engine) CourseKnown(ctx context.Context, key string) (bool, error) {
	for _, q := range []string{
		"SELECT COUNT(*) FROM (SELECT 1 AS x FROM " + store.LegacyRoleTable + " WHERE course_id = ? LIMIT 1) a",
		"SELECT COUNT(*) FROM (SELECT 1 AS x FROM " + store.CourseOverviewTable + " WHERE id = ? LIMIT 1) a",
		"SELECT COUNT(*) FROM (SELECT 1 AS x FROM " + store.CourseOverrideTable + " WHERE course_id = ? LIMIT 1) a",
	} {
		var n int
		if err := e.db.SQL.QueryRowContext(ctx, e.db.Rebind(q), key).Scan(&n); err != nil {
			return false, fmt.Errorf("look up course %s: %w", key, err)
		}
		if n > 0 {
			return true, nil
		}
	}
	var n int
	cond, args := scopeFilter(Request{ScopeType: CourseScope, CourseKeys: []string{key}})
	err := e.db.SQL.QueryRowContext(ctx, e.db.Rebind("SELECT COUNT(*) FROM (SELECT 1 AS x FROM "+PolicyTable+" WHERE ptype = 'g' AND "+cond+" LIMIT 1) a"), args...).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up course %s: %w", key, err)
	}
	return n > 0, nil
}

package migrator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/lock"
	"authz-flag-consumer/internal/store"
)

// Trigger kinds recorded in run metadata.
const (
	TriggerEvent     = "event"
	TriggerManual    = "manual"
	TriggerSweep     = "sweep"
	TriggerGlobal    = "global"
	TriggerReconcile = "reconcile"
)

// SweepOptions tune a sweep.
type SweepOptions struct {
	// Window is how many ids below the watermark are read again: ids are
	// allocated before commit, so a row with a lower id can become visible
	// after a higher one. Default 1000.
	Window int64
	// Global reconciles a flip of the instance-wide flag org by org (runs
	// recorded with the trigger "global"); without it a flip is only
	// reported.
	Global bool
	// InitOnly sets the watermarks when there are none (the first start)
	// and otherwise does nothing.
	InitOnly bool
}

// SweepResult says what a sweep did.
type SweepResult struct {
	First      bool   // the first sweep: watermarks set to the newest rows, nothing reconciled
	Skipped    bool   // another sweeper held the sweep lock
	Scopes     int    // scopes reconciled
	Runs       int    // runs made
	Drift      int    // scopes whose roles were not where their state puts them
	GlobalFlip string // "on" or "off" when the instance-wide flag changed since the last sweep
}

// sweepLockName is the advisory lock that makes one sweeper at a time.
const sweepLockName = "authz_consumer sweep"

// Sweep is the safety net of event handling (lost events, global flips):
// override tables are append-only, so rows with an id above the last
// sweep's watermark name every scope changed since; each is reconciled as
// if its event had arrived. The first sweep only sets the watermarks to the
// newest rows, and they stay the floor it never reads below: deploying the
// service moves nothing by itself (`reconcile` is the deliberate catch-up). One sweeper at a time (a database lock);
// the watermarks are durable and move only after the scopes below them
// were reconciled.
func (e *Engine) Sweep(ctx context.Context, o SweepOptions) (SweepResult, error) {
	if o.Window <= 0 {
		o.Window = 1000
	}
	var res SweepResult
	conn, err := e.db.SQL.Conn(ctx)
	if err != nil {
		return res, fmt.Errorf("sweep: get connection: %w", err)
	}
	defer conn.Close()
	release, err := lock.Acquire(ctx, e.db.Driver(), conn, sweepLockName, e.opts.LockTimeout/10)
	if errors.Is(err, lock.ErrTimeout) {
		res.Skipped = true
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("sweep: %w", err)
	}
	defer release(context.WithoutCancel(ctx))

	mark, err := e.readSweepMark(ctx)
	if err != nil {
		return res, err
	}
	everyone, err := e.globalState(ctx)
	if err != nil {
		return res, err
	}
	if mark == nil {
		courseMax, orgMax, err := e.overrideMaxIDs(ctx)
		if err != nil {
			return res, err
		}
		res.First = true
		return res, e.writeSweepMark(ctx, sweepMark{course: courseMax, org: orgMax, courseFloor: courseMax, orgFloor: orgMax, everyone: onOff(everyone)})
	}
	if o.InitOnly {
		return res, nil
	}

	next := *mark
	orgs, err := e.changedScopes(ctx, OrgScope, mark.org, mark.orgFloor, mark.orgGaps, o.Window, &next.org, &next.orgGaps)
	if err != nil {
		return res, err
	}
	courses, err := e.changedScopes(ctx, CourseScope, mark.course, mark.courseFloor, mark.courseGaps, o.Window, &next.course, &next.courseGaps)
	if err != nil {
		return res, err
	}
	if g := onOff(everyone); g != mark.everyone {
		res.GlobalFlip = g
		next.everyone = g
		e.log.Warn("the watched flag changed for everyone", "flag", e.opts.WatchedFlag, "now", g, "reconciled", o.Global)
		if o.Global {
			all, err := e.knownOrgs(ctx)
			if err != nil {
				return res, err
			}
			if err := e.reconcileAll(ctx, OrgScope, all, TriggerGlobal, &res); err != nil {
				return res, err
			}
		}
	}
	// Orgs first: an org run may settle its courses.
	if err := e.reconcileAll(ctx, OrgScope, orgs, TriggerSweep, &res); err != nil {
		return res, err
	}
	if err := e.reconcileAll(ctx, CourseScope, courses, TriggerSweep, &res); err != nil {
		return res, err
	}
	return res, e.writeSweepMark(ctx, next)
}

func (e *Engine) reconcileAll(ctx context.Context, st ScopeType, keys []string, kind string, res *SweepResult) error {
	for _, k := range keys {
		r, err := e.ReconcileScope(ctx, st, k, Trigger{Kind: kind})
		if err != nil {
			return fmt.Errorf("reconcile %s %s: %w", st, k, err)
		}
		res.Scopes++
		if r.Outcome == OutcomeRan {
			res.Runs++
			res.Drift++
		}
	}
	return nil
}

// ReconcileScope reconciles one scope under its org's lock: a run when its
// roles are not where its effective state puts them, recorded with trig.
func (e *Engine) ReconcileScope(ctx context.Context, st ScopeType, key string, trig Trigger) (Result, error) {
	org := key
	if st == CourseScope {
		var err error
		if org, err = authz.CourseV1Org(key); err != nil {
			return Result{}, err
		}
	} else if err := authz.ValidOrg(key); err != nil {
		return Result{}, err
	}
	var (
		res Result
		req *Request
	)
	err := e.locked(ctx, []string{org}, func(t *tx) error {
		res, req = Result{}, nil
		d, err := e.reconcile(ctx, t, st, key, e.opts.WatchedFlag)
		if err != nil {
			return err
		}
		res = Result{Outcome: d.outcome, Direction: d.dir, Detail: d.detail}
		if d.outcome != OutcomeRan {
			if d.recordApplied {
				return setApplied(ctx, t, st, []string{key}, d.dir == Forward, 0, e.now())
			}
			return nil
		}
		r := scopeRequest(d.dir, st, key, trig)
		r.Excluded = d.excluded
		req = &r
		run, err := e.runIn(ctx, t, r)
		if err != nil {
			return err
		}
		res.RunID, res.Status = run.ID, run.Status
		return nil
	})
	if err == nil || IsTransient(err) || req == nil {
		return res, err
	}
	run, err := e.recordFailed(ctx, []string{org}, *req, err)
	if err != nil {
		return Result{}, err
	}
	res.RunID, res.Status = run.ID, run.Status
	return res, nil
}

type sweepMark struct {
	course, org           int64
	courseFloor, orgFloor int64
	courseGaps, orgGaps   []int64 // ids below the watermark not visible at the last sweep
	everyone              string
}

func (e *Engine) readSweepMark(ctx context.Context) (*sweepMark, error) {
	var m sweepMark
	var courseGaps, orgGaps string
	err := e.db.SQL.QueryRowContext(ctx, "SELECT course_mark, org_mark, course_floor, org_floor, course_gaps, org_gaps, everyone FROM "+store.SweepTable+" WHERE id = 1").
		Scan(&m.course, &m.org, &m.courseFloor, &m.orgFloor, &courseGaps, &orgGaps, &m.everyone)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read sweep watermark: %w", err)
	}
	m.courseGaps, m.orgGaps = parseIDs(courseGaps), parseIDs(orgGaps)
	return &m, nil
}

func parseIDs(s string) []int64 {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		if id, err := strconv.ParseInt(f, 10, 64); err == nil {
			out = append(out, id)
		}
	}
	return out
}

func formatIDs(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ",")
}

func (e *Engine) writeSweepMark(ctx context.Context, m sweepMark) error {
	return e.locked(ctx, nil, func(t *tx) error {
		res, err := t.exec(ctx, "UPDATE "+store.SweepTable+" SET course_mark = ?, org_mark = ?, course_gaps = ?, org_gaps = ?, everyone = ?, updated_at = ? WHERE id = 1",
			m.course, m.org, formatIDs(m.courseGaps), formatIDs(m.orgGaps), m.everyone, e.now())
		if err != nil {
			return fmt.Errorf("write sweep watermark: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		return insertRowsKeepExisting(ctx, t, store.SweepTable,
			[]string{"id", "course_mark", "org_mark", "course_floor", "org_floor", "course_gaps", "org_gaps", "everyone", "updated_at"}, "id",
			[][]any{{1, m.course, m.org, m.courseFloor, m.orgFloor, formatIDs(m.courseGaps), formatIDs(m.orgGaps), m.everyone, e.now()}})
	})
}

func (e *Engine) globalState(ctx context.Context) (bool, error) {
	var on bool
	err := e.locked(ctx, nil, func(t *tx) error {
		var err error
		on, err = globalOn(ctx, t, e.opts.WatchedFlag)
		return err
	})
	return on, err
}

func (e *Engine) overrideMaxIDs(ctx context.Context) (course, org int64, err error) {
	for _, st := range []ScopeType{CourseScope, OrgScope} {
		table, _ := overrideTable(st)
		var m sql.NullInt64
		if err := e.db.SQL.QueryRowContext(ctx, "SELECT MAX(id) FROM "+table).Scan(&m); err != nil {
			return 0, 0, fmt.Errorf("read newest %s override: %w", st, err)
		}
		if st == CourseScope {
			course = m.Int64
		} else {
			org = m.Int64
		}
	}
	return course, org, nil
}

// changedScopes lists the scopes whose override rows of the watched flag
// are new since the last sweep: ids above the watermark mark, and ids
// that were gaps below it (allocated, not yet visible: a transaction that
// commits late). It moves *nextMark to the newest id and records in
// *nextGaps the ids within window below it that are still not visible
// (never below floor). Every flag's rows count as visible ids.
func (e *Engine) changedScopes(ctx context.Context, st ScopeType, mark, floor int64, gaps []int64, window int64,
	nextMark *int64, nextGaps *[]int64) ([]string, error) {
	table, keyCol := overrideTable(st)
	from := max(floor, mark-window, 0)
	rows, err := e.db.SQL.QueryContext(ctx, e.db.Rebind(fmt.Sprintf("SELECT id, waffle_flag, %s FROM %s WHERE id > ?", keyCol, table)), from)
	if err != nil {
		return nil, fmt.Errorf("read changed %s overrides: %w", st, err)
	}
	defer rows.Close()
	wasGap := map[int64]bool{}
	for _, id := range gaps {
		wasGap[id] = true
	}
	seen, visible := map[string]bool{}, map[int64]bool{}
	top := mark
	for rows.Next() {
		var id int64
		var flag, key string
		if err := rows.Scan(&id, &flag, &key); err != nil {
			return nil, err
		}
		visible[id] = true
		top = max(top, id)
		if flag != e.opts.WatchedFlag || (id <= mark && !wasGap[id]) {
			continue // another flag, or seen by an earlier sweep
		}
		if e.ignoreReason(Change{Flag: flag, ScopeType: st, ScopeKey: key}) == "" {
			seen[key] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	*nextMark = top
	var left []int64
	for id := max(floor, top-window) + 1; id < top; id++ {
		if !visible[id] && id > from {
			left = append(left, id)
		}
	}
	*nextGaps = left
	out := keysOf(seen)
	sort.Strings(out)
	return out, nil
}

// knownOrgs lists every org this database names: in legacy course roles,
// in org overrides of the watched flag, and in course-v1 assignments.
func (e *Engine) knownOrgs(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	add := func(q string, args []any, parse func(string) (string, bool)) error {
		rows, err := e.db.SQL.QueryContext(ctx, e.db.Rebind(q), args...)
		if err != nil {
			return fmt.Errorf("list orgs: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var v string
			if err := rows.Scan(&v); err != nil {
				return err
			}
			if org, ok := parse(v); ok && authz.ValidOrg(org) == nil {
				seen[org] = true
			}
		}
		return rows.Err()
	}
	asIs := func(v string) (string, bool) { return v, true }
	if err := add("SELECT DISTINCT org FROM "+store.LegacyRoleTable+" WHERE course_id = '' OR course_id LIKE 'course-v1:%'", nil, asIs); err != nil {
		return nil, err
	}
	table, _ := overrideTable(OrgScope)
	if err := add("SELECT DISTINCT org FROM "+table+" WHERE waffle_flag = ?", []any{e.opts.WatchedFlag}, asIs); err != nil {
		return nil, err
	}
	if err := add("SELECT DISTINCT v2 FROM "+PolicyTable+" WHERE ptype = 'g' AND v2 LIKE 'course-v1^%'", nil, func(v string) (string, bool) {
		org, _, ok := authz.ScopeOrg(v[len(authz.CourseNS):])
		return org, ok
	}); err != nil {
		return nil, err
	}
	out := keysOf(seen)
	sort.Strings(out)
	return out, nil
}

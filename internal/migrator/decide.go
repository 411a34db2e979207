package migrator

import (
	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/store"

	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
	"time"
)

// overrideRow is one row of an override table's history.
type overrideRow struct {
	id         int64
	changeDate time.Time
	enabled    bool
	choice     string
	flag, key  string
}

// forced says what state a row forces: on, and whether it forces anything
// (enabled with choice on or off; anything else defers).
func (r *overrideRow) forced() (on, forces bool) {
	if r == nil || !r.enabled {
		return false, false
	}
	switch r.choice {
	case "on":
		return true, true
	case "off":
		return false, true
	}
	return false, false
}

func overrideTable(st ScopeType) (table, keyCol string) {
	if st == CourseScope {
		return store.CourseOverrideTable, "course_id"
	}
	return store.OrgOverrideTable, "org"
}

// history reads every override row of one flag and scope, oldest first
// (by change_date, then id). Histories are short: one row per save.
//
// It selects by the scope's key alone and keeps the flag's rows itself
// (compared as the database compares): every row of a table names one of
// a few flags, so a planner without statistics (SQLite's) that picks the
// waffle_flag index for `waffle_flag = ? AND course_id = ?` reads the whole
// table for every event, where the key's index finds a handful of rows.
func history(ctx context.Context, t *tx, st ScopeType, flag, key string) ([]overrideRow, error) {
	table, keyCol := overrideTable(st)
	rows, err := t.query(ctx, fmt.Sprintf("SELECT id, change_date, enabled, override_choice, waffle_flag FROM %s WHERE %s = ?", table, keyCol), key)
	if err != nil {
		return nil, fmt.Errorf("read %s overrides of %s: %w", st, key, err)
	}
	defer rows.Close()
	sameFlag := func(f string) bool { return f == flag }
	if t.db.FoldsCase() {
		sameFlag = func(f string) bool { return strings.EqualFold(f, flag) }
	}
	var out []overrideRow
	for rows.Next() {
		r := overrideRow{flag: flag, key: key}
		var rowFlag string
		if err := rows.Scan(&r.id, &r.changeDate, &r.enabled, &r.choice, &rowFlag); err != nil {
			return nil, fmt.Errorf("read override: %w", err)
		}
		if sameFlag(rowFlag) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].changeDate.Equal(out[j].changeDate) {
			return out[i].changeDate.Before(out[j].changeDate)
		}
		return out[i].id < out[j].id
	})
	return out, rows.Err()
}

func newest(h []overrideRow) *overrideRow {
	if len(h) == 0 {
		return nil
	}
	return &h[len(h)-1]
}

// globalOn reads the flag's instance-wide state (waffle_flag.everyone).
func globalOn(ctx context.Context, t *tx, flag string) (bool, error) {
	var everyone sql.NullBool
	err := t.queryRow(ctx, "SELECT everyone FROM "+store.FlagTable+" WHERE name = ?", flag).Scan(&everyone)
	if err == sql.ErrNoRows {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read waffle flag %s: %w", flag, err)
	}
	return everyone.Valid && everyone.Bool, nil
}

// decision is what an event calls for.
type decision struct {
	outcome  Outcome
	dir      Direction
	detail   string
	excluded []string
	// recordApplied: the scope's applied state was unknown and no roles
	// are on the wrong side: record the desired state as applied, no run.
	recordApplied bool
}

// scopeRequest is the automatic run of one scope (moved rows deleted).
func scopeRequest(dir Direction, st ScopeType, key string, trig Trigger) Request {
	r := Request{Direction: dir, ScopeType: st, Delete: true, Trigger: trig}
	if st == OrgScope {
		r.Org = key
	} else {
		r.CourseKeys = []string{key}
	}
	return r
}

// decide reconciles the event's scope (level-triggered). The event
// says only "this scope changed, look again": the decision compares the
// scope's effective state now (desired) with the state this service last
// put its roles into (applied, in the ledger), never the payload's state.
// So reordered, duplicated, replayed or stale events cannot move roles the
// wrong way, and a no-op save makes no run.
func (e *Engine) decide(ctx context.Context, t *tx, ch Change) (decision, error) {
	table, keyCol := overrideTable(ch.ScopeType)
	var flag, key string
	err := t.queryRow(ctx, fmt.Sprintf("SELECT waffle_flag, %s FROM %s WHERE id = ?", keyCol, table), ch.RecordID).Scan(&flag, &key)
	if err == sql.ErrNoRows {
		return decision{}, fmt.Errorf("%s override %d: %w", ch.ScopeType, ch.RecordID, ErrNotVisible)
	}
	if err != nil {
		return decision{}, fmt.Errorf("read %s override %d: %w", ch.ScopeType, ch.RecordID, err)
	}
	if flag != ch.Flag || key != ch.ScopeKey {
		return decision{outcome: OutcomeIgnored, detail: fmt.Sprintf("override row %d is for flag %q and %s %q, not what the event names", ch.RecordID, flag, ch.ScopeType, key)}, nil
	}
	return e.reconcile(ctx, t, ch.ScopeType, key, flag)
}

// reconcile decides what scope (st, key) needs: desired vs applied.
func (e *Engine) reconcile(ctx context.Context, t *tx, st ScopeType, key, flag string) (decision, error) {
	desired, why, err := effectiveState(ctx, t, st, key, flag)
	if err != nil {
		return decision{}, err
	}
	d := decision{outcome: OutcomeRan, dir: Rollback}
	if desired {
		d.dir = Forward
	}
	applied, known, err := appliedState(ctx, t, st, key)
	if err != nil {
		return decision{}, err
	}
	if known && applied == desired { // the common no-op: nothing more to read
		d.outcome, d.detail = OutcomeNoop, fmt.Sprintf("effective state is %s (%s) and the roles are already there", onOff(desired), why)
		return d, nil
	}
	if st == OrgScope {
		if d.excluded, err = e.opposingCourses(ctx, t, flag, key, desired); err != nil {
			return decision{}, err
		}
	}
	switch {
	case known:
		d.detail = fmt.Sprintf("effective state is %s (%s); roles were left %s", onOff(desired), why, onOff(applied))
	default:
		// Never touched by this service (e.g. the flag was set before it
		// was deployed): decide from where the scope's mappable roles are.
		moves, err := rolesToMove(ctx, t, Request{Direction: d.dir, ScopeType: st, Org: key, CourseKeys: []string{key}, Excluded: d.excluded})
		if err != nil {
			return decision{}, err
		}
		if !moves {
			d.outcome, d.recordApplied = OutcomeNoop, true
			d.detail = fmt.Sprintf("effective state is %s (%s) and no mappable role is on the other side", onOff(desired), why)
		} else {
			d.detail = fmt.Sprintf("effective state is %s (%s); mappable roles found on the other side", onOff(desired), why)
		}
	}
	return d, nil
}

// effectiveState is a scope's flag state now, and which level decided it:
// its own enabled override; for a course, else its org's (as edx-platform
// evaluates course waffle flags); else the instance-wide flag.
func effectiveState(ctx context.Context, t *tx, st ScopeType, key, flag string) (on bool, why string, err error) {
	h, err := history(ctx, t, st, flag, key)
	if err != nil {
		return false, "", err
	}
	if on, forces := newest(h).forced(); forces {
		return on, string(st) + " override", nil
	}
	if st == CourseScope {
		org, err := authz.CourseV1Org(key)
		if err != nil {
			return false, "", err
		}
		oh, err := history(ctx, t, OrgScope, flag, org)
		if err != nil {
			return false, "", err
		}
		if on, forces := newest(oh).forced(); forces {
			return on, "org override", nil
		}
	}
	global, err := globalOn(ctx, t, flag)
	return global, "global flag", err
}

// appliedState reads the ledger: the state this service last put the
// scope's roles into; known is false when it never touched the scope.
func appliedState(ctx context.Context, t *tx, st ScopeType, key string) (on, known bool, err error) {
	var applied string
	err = t.queryRow(ctx, "SELECT applied FROM "+store.ScopeStateTable+" WHERE scope_type = ? AND scope_key = ?", string(st), key).Scan(&applied)
	if err == sql.ErrNoRows {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("read applied state of %s %s: %w", st, key, err)
	}
	return applied == "on", true, nil
}

// setApplied records the state the scopes' roles are now in, a chunk of
// scopes per statement: an update, then an insert of those without a row.
func setApplied(ctx context.Context, t *tx, st ScopeType, keys []string, on bool, runID int64, now time.Time) error {
	var run any
	if runID != 0 {
		run = runID
	}
	for _, chunk := range chunks(keys, t.db.RowsPerStatement(5)) {
		args := append([]any{onOff(on), run, now, string(st)}, anys(chunk)...)
		res, err := t.exec(ctx, "UPDATE "+store.ScopeStateTable+" SET applied = ?, run_id = ?, updated_at = ? WHERE scope_type = ? AND scope_key IN "+inList(len(chunk)), args...)
		if err != nil {
			return fmt.Errorf("record applied state of %d %s scopes: %w", len(chunk), st, err)
		}
		if n, err := res.RowsAffected(); err == nil && n >= int64(len(chunk)) {
			continue // every scope had its row
		}
		// Scopes seen for the first time; the rows just updated are kept.
		rows := make([][]any, len(chunk))
		for i, k := range chunk {
			rows[i] = []any{string(st), k, onOff(on), run, now}
		}
		if err := insertRowsKeepExisting(ctx, t, store.ScopeStateTable, []string{"scope_type", "scope_key", "applied", "run_id", "updated_at"},
			"scope_type, scope_key", rows); err != nil {
			return err
		}
	}
	return nil
}

// recordRunApplied updates the ledger after a run: its scope, and for an
// org run every course it covered (those it moved roles of, and those
// already in the ledger), less the courses it left out for their own
// override, which keep theirs.
func recordRunApplied(ctx context.Context, t *tx, req Request, runID int64, courses map[string]bool, now time.Time) error {
	on := req.Direction == Forward
	if req.ScopeType == CourseScope {
		return setApplied(ctx, t, CourseScope, req.CourseKeys[:1], on, runID, now)
	}
	if err := setApplied(ctx, t, OrgScope, []string{req.Org}, on, runID, now); err != nil {
		return err
	}
	excluded := setOf(req.Excluded)
	covered := map[string]bool{}
	for c := range courses {
		covered[c] = true
	}
	// The courses an org run covers are those whose rows it selected: a
	// forward selects legacy rows by org as the database compares (every
	// spelling of the org on MySQL), a rollback keeps the assignments whose
	// scope names the org exactly, as openedx-authz does. The ledger itself
	// is case-sensitive, so other spellings are looked up folded.
	sameOrg := func(org string) bool { return org == req.Org }
	col, pattern := "scope_key", likeEscape(authz.CourseV1Prefix+req.Org+"+")+"%"
	if req.Direction == Forward && t.db.FoldsCase() {
		sameOrg = func(org string) bool { return strings.EqualFold(org, req.Org) }
		col, pattern = "LOWER(scope_key)", strings.ToLower(pattern)
	}
	rows, err := t.query(ctx, "SELECT scope_key FROM "+store.ScopeStateTable+" WHERE scope_type = ? AND "+col+" LIKE ? ESCAPE '!'",
		string(CourseScope), pattern)
	if err != nil {
		return fmt.Errorf("read applied states of org %s: %w", req.Org, err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return err
		}
		if org, _ := authz.CourseV1Org(k); sameOrg(org) {
			covered[k] = true
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var keys []string
	for _, k := range uniqueSorted(keysOf(covered)) {
		if !excluded[k] {
			keys = append(keys, k)
		}
	}
	return setApplied(ctx, t, CourseScope, keys, on, runID, now)
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// rolesToMove reports whether a run of req would find a mappable role to
// move: legacy rows for a forward, authz assignments for a rollback (the
// courses it leaves out do not count).
func rolesToMove(ctx context.Context, t *tx, req Request) (bool, error) {
	var q string
	var args []any
	if req.Direction == Forward {
		q = "SELECT course_id FROM " + store.LegacyRoleTable + " WHERE "
		if req.ScopeType == OrgScope {
			q += "org = ? AND (course_id = '' OR course_id LIKE 'course-v1:%')"
			args = append(args, req.Org)
		} else {
			q += "course_id = ?"
			args = append(args, req.CourseKeys[0])
		}
		q += " AND role IN " + inList(len(authz.LegacyRoles))
		args = append(args, anys(authz.LegacyRoles)...)
	} else {
		cond, cargs := scopeFilter(req)
		q = "SELECT v2 FROM " + PolicyTable + " WHERE ptype = 'g' AND " + cond + " AND v1 IN " + inList(len(authz.LegacyRoles))
		args = append(cargs, anys(authzRoles())...)
	}
	rows, err := t.query(ctx, q, args...)
	if err != nil {
		return false, fmt.Errorf("look for roles to move: %w", err)
	}
	defer rows.Close()
	excluded := setOf(req.Excluded)
	for rows.Next() {
		var scope string
		if err := rows.Scan(&scope); err != nil {
			return false, err
		}
		scope = strings.TrimPrefix(scope, authz.CourseNS)
		if req.Direction == Rollback && req.ScopeType == OrgScope {
			if org, _, ok := authz.ScopeOrg(scope); !ok || org != req.Org {
				continue // rollbacks take the exact org only
			}
		}
		if req.Direction == Rollback && req.ScopeType == CourseScope && scope != req.CourseKeys[0] {
			continue
		}
		if !excluded[scope] {
			return true, nil
		}
	}
	return false, rows.Err()
}

// authzRoles are the namespaced authz roles that have a legacy equivalent.
func authzRoles() []string {
	out := make([]string, len(authz.LegacyRoles))
	for i, l := range authz.LegacyRoles {
		a, _ := authz.AuthzRole(l)
		out[i] = authz.RoleNS + a
	}
	return out
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// opposingCourses lists the org's courses whose own override forces the
// opposite of the org's new state: an org run leaves them out.
func (e *Engine) opposingCourses(ctx context.Context, t *tx, flag, org string, orgOn bool) ([]string, error) {
	rows, err := t.query(ctx, "SELECT id, change_date, enabled, override_choice, course_id FROM "+store.CourseOverrideTable+" WHERE waffle_flag = ? AND course_id LIKE ? ESCAPE '!'",
		flag, likeEscape("course-v1:"+org+"+")+"%")
	if err != nil {
		return nil, fmt.Errorf("read course overrides of org %s: %w", org, err)
	}
	defer rows.Close()
	latest := map[string]overrideRow{}
	for rows.Next() {
		var r overrideRow
		if err := rows.Scan(&r.id, &r.changeDate, &r.enabled, &r.choice, &r.key); err != nil {
			return nil, err
		}
		cur, ok := latest[r.key]
		if !ok || r.changeDate.After(cur.changeDate) || (r.changeDate.Equal(cur.changeDate) && r.id > cur.id) {
			latest[r.key] = r
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []string
	for course, r := range latest {
		if on, forces := r.forced(); forces && on != orgOn {
			out = append(out, course)
		}
	}
	sort.Strings(out)
	return out, nil
}

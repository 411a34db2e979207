package migrator

import (
	"authz-flag-consumer/internal/authz"

	"context"
	"database/sql"
	"fmt"
	"sort"
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
// (SPEC 4: enabled with choice on or off; anything else defers).
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
		return "waffle_utils_waffleflagcourseoverridemodel", "course_id"
	}
	return "waffle_utils_waffleflagorgoverridemodel", "org"
}

// history reads every override row of one flag and scope, oldest first
// (by change_date, then id). Histories are short: one row per save.
func history(ctx context.Context, t *tx, st ScopeType, flag, key string) ([]overrideRow, error) {
	table, keyCol := overrideTable(st)
	rows, err := t.query(ctx, fmt.Sprintf("SELECT id, change_date, enabled, override_choice FROM %s WHERE waffle_flag = ? AND %s = ?", table, keyCol), flag, key)
	if err != nil {
		return nil, fmt.Errorf("read %s overrides of %s: %w", st, key, err)
	}
	defer rows.Close()
	var out []overrideRow
	for rows.Next() {
		r := overrideRow{flag: flag, key: key}
		if err := rows.Scan(&r.id, &r.changeDate, &r.enabled, &r.choice); err != nil {
			return nil, fmt.Errorf("read override: %w", err)
		}
		out = append(out, r)
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
	err := t.queryRow(ctx, "SELECT everyone FROM waffle_flag WHERE name = ?", flag).Scan(&everyone)
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
}

// decide computes, from the override history in the database, what the
// event's override row changed (SPEC 4). It never trusts the payload's
// state: a stale or replayed event decides from the rows as they are.
//
// pending lists override rows of the scope found superseded by events not
// yet written (HandleQuick's batch); nil elsewhere.
func (e *Engine) decide(ctx context.Context, t *tx, ch Change, pending map[int64]bool) (decision, error) {
	table, _ := overrideTable(ch.ScopeType)
	var flag, key string
	_, keyCol := overrideTable(ch.ScopeType)
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
	h, err := history(ctx, t, ch.ScopeType, flag, key)
	if err != nil {
		return decision{}, err
	}
	idx := -1
	for i := range h {
		if h[i].id == ch.RecordID {
			idx = i
		}
	}
	if idx != len(h)-1 {
		return decision{outcome: OutcomeSuperseded, detail: fmt.Sprintf("override row %d is superseded by row %d", ch.RecordID, newest(h).id)}, nil
	}
	// The state before is the one the scope's roles were left in: that of
	// the newest earlier row that took effect. A row whose event was
	// superseded (a newer save came before the consumer got to it) never
	// moved anything, so it is passed over; rows with no recorded event
	// (saved before this service ran, or whose event never came) count as
	// having taken effect.
	skipped, err := supersededRows(ctx, t, ch, pending)
	if err != nil {
		return decision{}, err
	}
	var prev *overrideRow
	for j := idx - 1; j >= 0; j-- {
		if !skipped[h[j].id] {
			prev = &h[j]
			break
		}
	}
	// The level below this scope's own override, as it is now.
	global, err := globalOn(ctx, t, flag)
	if err != nil {
		return decision{}, err
	}
	below := global
	if ch.ScopeType == CourseScope {
		org, err := authz.CourseV1Org(key)
		if err != nil {
			return decision{}, err
		}
		oh, err := history(ctx, t, OrgScope, flag, org)
		if err != nil {
			return decision{}, err
		}
		if on, forces := newest(oh).forced(); forces {
			below = on
		}
	}
	effective := func(r *overrideRow) bool {
		if on, forces := r.forced(); forces {
			return on
		}
		return below
	}
	before, after := effective(prev), effective(&h[idx])
	if before == after {
		return decision{outcome: OutcomeNoop, detail: fmt.Sprintf("effective state stays %s", onOff(after))}, nil
	}
	d := decision{outcome: OutcomeRan, dir: Rollback}
	if after {
		d.dir = Forward
	}
	if ch.ScopeType == OrgScope {
		if d.excluded, err = e.opposingCourses(ctx, t, flag, key, after); err != nil {
			return decision{}, err
		}
	}
	return d, nil
}

// supersededRows lists the scope's override rows whose events were
// superseded and that no event acted on (ran or no-op), plus pending.
func supersededRows(ctx context.Context, t *tx, ch Change, pending map[int64]bool) (map[int64]bool, error) {
	rows, err := t.query(ctx, "SELECT record_id, outcome FROM authz_consumer_event WHERE scope_type = ? AND scope_key = ? AND flag = ? AND outcome IN (?, ?, ?)",
		string(ch.ScopeType), ch.ScopeKey, ch.Flag, string(OutcomeSuperseded), string(OutcomeRan), string(OutcomeNoop))
	if err != nil {
		return nil, fmt.Errorf("read outcomes of %s %s: %w", ch.ScopeType, ch.ScopeKey, err)
	}
	defer rows.Close()
	skipped, acted := map[int64]bool{}, map[int64]bool{}
	for id := range pending {
		skipped[id] = true
	}
	for rows.Next() {
		var id int64
		var outcome string
		if err := rows.Scan(&id, &outcome); err != nil {
			return nil, err
		}
		if outcome == string(OutcomeSuperseded) {
			skipped[id] = true
		} else {
			acted[id] = true
		}
	}
	for id := range acted {
		delete(skipped, id)
	}
	return skipped, rows.Err()
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
	rows, err := t.query(ctx, "SELECT id, change_date, enabled, override_choice, course_id FROM waffle_utils_waffleflagcourseoverridemodel WHERE waffle_flag = ? AND course_id LIKE ? ESCAPE '!'",
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

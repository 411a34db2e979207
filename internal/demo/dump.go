package demo

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"authz-flag-consumer/internal/store"
)

// Dump is the content of the tables a migration touches, each row rendered
// as one canonical line without ids or times, sorted: two databases that
// went through the same events compare equal even when a crash made their
// ids differ.
type Dump map[string][]string

// dumpQueries render each table's rows; ids are replaced by what they name.
var dumpQueries = []struct{ name, query string }{
	{store.LegacyRoleTable, `SELECT u.username, r.org, r.course_id, r.role
		FROM ` + store.LegacyRoleTable + ` r JOIN ` + store.UserTable + ` u ON u.id = r.user_id`},
	{store.PolicyTable, `SELECT ptype, v0, v1, v2, v3, v4, v5 FROM ` + store.PolicyTable},
	{store.ExtendedRuleTable, `SELECT e.casbin_rule_key, c.v0, c.v1, c.v2,
		COALESCE(s.external_key, ''), COALESCE(u.username, '')
		FROM ` + store.ExtendedRuleTable + ` e
		JOIN ` + store.PolicyTable + ` c ON c.id = e.casbin_rule_id
		LEFT JOIN ` + store.ScopeTable + ` s ON s.id = e.scope_id
		LEFT JOIN ` + store.UserSubjectTable + ` us ON us.subject_ptr_id = e.subject_id
		LEFT JOIN ` + store.UserTable + ` u ON u.id = us.user_id`},
	{store.ScopeTable, `SELECT COALESCE(s.external_key, ''), CASE WHEN c.scope_ptr_id IS NULL THEN 'scope' ELSE 'course' END
		FROM ` + store.ScopeTable + ` s LEFT JOIN ` + store.CourseScopeTable + ` c ON c.scope_ptr_id = s.id`},
	{store.UserSubjectTable, `SELECT COALESCE(u.username, '') FROM ` + store.UserSubjectTable + ` us
		LEFT JOIN ` + store.UserTable + ` u ON u.id = us.user_id`},
	{store.AuditTable, `SELECT operation, subject, role, scope, COALESCE(actor_id, 0)
		FROM ` + store.AuditTable},
	{store.RunTable, `SELECT migration_type, scope_type, scope_key, status, metadata
		FROM ` + store.RunTable},
	{store.EventTable, `SELECT event_id, topic, partition_no, offset_no, flag, scope_type, scope_key, record_id, outcome, direction
		FROM ` + store.EventTable},
	{store.ParkedTable, `SELECT topic, partition_no, offset_no, reason FROM ` + store.ParkedTable},
}

// TakeDump reads the Dump of db.
func TakeDump(ctx context.Context, db *store.DB) (Dump, error) {
	d := Dump{}
	for _, q := range dumpQueries {
		rows, err := db.SQL.QueryContext(ctx, q.query)
		if err != nil {
			return nil, fmt.Errorf("dump %s: %w", q.name, err)
		}
		lines, err := renderRows(rows, q.name == store.RunTable)
		if err != nil {
			return nil, fmt.Errorf("dump %s: %w", q.name, err)
		}
		sort.Strings(lines)
		d[q.name] = lines
	}
	return d, nil
}

// renderRows joins each row's columns with " | ". For runs, the metadata
// column is reduced to the counts, which do not depend on ids or times.
func renderRows(rows *sql.Rows, runs bool) ([]string, error) {
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		parts := make([]string, len(cols))
		for i, v := range vals {
			parts[i] = v.String
		}
		if runs {
			parts[len(parts)-1] = runCounts(parts[len(parts)-1])
		}
		out = append(out, strings.Join(parts, " | "))
	}
	return out, rows.Err()
}

// runCounts renders the parts of a run's metadata that say what it did.
func runCounts(metadata string) string {
	var m struct {
		Total        *int           `json:"total"`
		SuccessCount *int           `json:"success_count"`
		ErrorCount   *int           `json:"error_count"`
		Errors       map[string]any `json:"errors"`
	}
	if err := json.Unmarshal([]byte(metadata), &m); err != nil {
		return "unreadable metadata"
	}
	n := func(p *int) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprint(*p)
	}
	reasons := make([]string, 0, len(m.Errors))
	for r := range m.Errors {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	return fmt.Sprintf("total=%s ok=%s errors=%s %s", n(m.Total), n(m.SuccessCount), n(m.ErrorCount), strings.Join(reasons, ","))
}

// Diff lists the lines that differ between two dumps ("-" only in a, "+"
// only in b), table by table; empty when they are equal.
func Diff(a, b Dump) []string {
	var out []string
	names := map[string]bool{}
	for n := range a {
		names[n] = true
	}
	for n := range b {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		count := map[string]int{}
		for _, l := range a[n] {
			count[l]++
		}
		for _, l := range b[n] {
			count[l]--
		}
		lines := make([]string, 0, len(count))
		for l := range count {
			lines = append(lines, l)
		}
		sort.Strings(lines)
		for _, l := range lines {
			for c := count[l]; c > 0; c-- {
				out = append(out, n+": - "+l)
			}
			for c := count[l]; c < 0; c++ {
				out = append(out, n+": + "+l)
			}
		}
	}
	return out
}

// ScopeCounts is how many legacy roles and role assignments (g rules) a
// scope has; the dev summary prints them before and after.
type ScopeCounts struct {
	Legacy      int
	Assignments int
}

// CountByScope counts legacy rows by course key (org-wide rows under the
// org glob course-v1:<org>+*) and g rules by scope, keyed by the scope's
// external key without namespace. Keys that never take part (CCX, old
// slash keys) are counted under their own key.
func CountByScope(ctx context.Context, db *store.DB) (map[string]ScopeCounts, error) {
	out := map[string]ScopeCounts{}
	rows, err := db.SQL.QueryContext(ctx, `SELECT org, course_id, role FROM `+store.LegacyRoleTable)
	if err != nil {
		return nil, fmt.Errorf("count legacy roles: %w", err)
	}
	for rows.Next() {
		var org, course, role string
		if err := rows.Scan(&org, &course, &role); err != nil {
			rows.Close()
			return nil, fmt.Errorf("count legacy roles: %w", err)
		}
		key := course
		if key == "" {
			key = "course-v1:" + org + "+*"
		}
		c := out[key]
		c.Legacy++
		out[key] = c
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count legacy roles: %w", err)
	}
	rows, err = db.SQL.QueryContext(ctx, `SELECT v2 FROM `+store.PolicyTable+` WHERE ptype = 'g'`)
	if err != nil {
		return nil, fmt.Errorf("count role assignments: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var scope string
		if err := rows.Scan(&scope); err != nil {
			return nil, fmt.Errorf("count role assignments: %w", err)
		}
		key := strings.TrimPrefix(scope, "course-v1^")
		c := out[key]
		c.Assignments++
		out[key] = c
	}
	return out, rows.Err()
}

package migrator

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/store"
)

// legacyRow is a student_courseaccessrole row with its user's name.
type legacyRow struct {
	id, userID      int64
	username        string
	org, courseID   string
	role            string
	subject, scope  string // namespaced, for candidates
	authz, external string
}

// forward turns the scope's legacy rows into g rules with their companions,
// batch by batch inside the run's transaction.
func (e *Engine) forward(ctx context.Context, t *tx, req Request, rep *report) error {
	existing, err := existingGroupings(ctx, t, req)
	if err != nil {
		return err
	}
	excluded := setOf(req.Excluded)
	scopeCache := map[string]int64{}
	cond, arg := "r.course_id = ?", any(req.scopeKey())
	if req.ScopeType == OrgScope {
		cond = "r.org = ?"
	}
	q := `SELECT r.id, r.user_id, COALESCE(u.username, ''), r.org, r.course_id, r.role
		FROM ` + store.LegacyRoleTable + ` r LEFT JOIN ` + store.UserTable + ` u ON u.id = r.user_id
		WHERE ` + cond + ` AND (r.course_id = '' OR r.course_id LIKE 'course-v1:%')`
	if rep.progress != nil {
		if err := rep.progress.count(ctx, t, "SELECT COUNT(*) FROM "+store.LegacyRoleTable+" r WHERE "+cond+" AND (r.course_id = '' OR r.course_id LIKE 'course-v1:%')", arg); err != nil {
			return err
		}
	}
	pages := newPager(t, "legacy", q, []any{arg}, "r.id", e.opts.BatchSize)
	defer pages.close(ctx)
	for {
		batch, err := readLegacy(ctx, pages)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		if rep.progress != nil {
			rep.progress.add(len(batch))
		}
		pages.advance(batch[len(batch)-1].id)
		var cands []legacyRow
		seen := map[string]bool{}
		for _, r := range batch {
			// The checks and their order are openedx-authz's: unknown role
			// (reported without a scope), course left out by its own
			// override, no scope, then the assignment itself.
			authzRole, known := authz.AuthzRole(r.role)
			if !known {
				rep.fail(ReasonUnknownRole, entry{subject: r.username, role: r.role,
					details: fmt.Sprintf("Unknown access level: %s for User: %s", r.role, r.username)})
				continue
			}
			if r.courseID != "" && excluded[r.courseID] {
				rep.fail(ReasonSkippedForOverride, entry{subject: r.username, role: r.role, scope: r.courseID, details: skippedDetails})
				continue
			}
			external, ok := authz.ScopeOf(r.org, r.courseID)
			if !ok {
				rep.fail(ReasonNoScope, entry{subject: r.username, role: r.role,
					details: fmt.Sprintf("User '%s' has neither course_id nor org defined", r.username)})
				continue
			}
			if r.courseID != "" && !strings.HasPrefix(r.courseID, authz.CourseV1Prefix) {
				continue // another spelling of the prefix: not selected, as openedx-authz's case-sensitive startswith
			}
			// The assignment's own checks are the ones verify applies too.
			if reason, ref := forwardCheck(r, existing, seen); reason != "" {
				rep.fail(reason, entry{subject: ref.Subject, role: ref.Role, scope: ref.Scope, details: ref.Details})
				continue
			}
			r.subject, r.authz, r.external, r.scope = authz.UserNS+r.username, authzRole, external, authz.CourseNS+external
			cands = append(cands, r)
		}
		if err := e.assign(ctx, t, cands, scopeCache); err != nil {
			return err
		}
		if req.Delete && len(cands) > 0 {
			ids := make([]int64, len(cands))
			for i, c := range cands {
				ids[i] = c.id
			}
			if _, err := t.exec(ctx, "DELETE FROM "+store.LegacyRoleTable+" WHERE id IN "+inList(len(ids)), anys(ids)...); err != nil {
				return fmt.Errorf("delete migrated legacy rows: %w", err)
			}
		}
		for _, c := range cands {
			rep.success(entry{subject: c.username, role: c.role, scope: c.external})
			if c.courseID != "" {
				rep.courses[c.courseID] = true
			}
		}
		if err := e.fault("forward-batch"); err != nil {
			return err
		}
	}
}

func readLegacy(ctx context.Context, pages *pager) ([]legacyRow, error) {
	rows, err := pages.next(ctx)
	if err != nil {
		return nil, fmt.Errorf("read legacy roles: %w", err)
	}
	defer rows.Close()
	var out []legacyRow
	for rows.Next() {
		var r legacyRow
		if err := rows.Scan(&r.id, &r.userID, &r.username, &r.org, &r.courseID, &r.role); err != nil {
			return nil, fmt.Errorf("read legacy role: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// assign writes the g rules of cands and every companion openedx-authz
// writes with one: user subject, course scope, extended rule, audit row.
func (e *Engine) assign(ctx context.Context, t *tx, cands []legacyRow, scopeCache map[string]int64) error {
	if len(cands) == 0 {
		return nil
	}
	rules := make([][3]string, len(cands))
	userIDs := make([]int64, 0, len(cands))
	var scopes []string
	for i, c := range cands {
		rules[i] = [3]string{c.subject, authz.RoleNS + c.authz, c.scope}
		userIDs = append(userIDs, c.userID)
		if !authz.IsGlob(c.external) {
			scopes = append(scopes, c.external)
		}
	}
	ruleIDs, err := addGroupings(ctx, e.db, t, rules)
	if err != nil {
		return err
	}
	subjects, err := userSubjects(ctx, t, userIDs)
	if err != nil {
		return err
	}
	scopeIDs, err := courseScopes(ctx, t, scopes, scopeCache)
	if err != nil {
		return err
	}
	now := e.now()
	ext := make([][]any, len(cands))
	audit := make([][]any, len(cands))
	for i, c := range cands {
		var scopeID any
		if id, ok := scopeIDs[c.external]; ok {
			scopeID = id
		}
		ext[i] = []any{authz.RuleKey(rules[i][0], rules[i][1], rules[i][2]), ruleIDs[i], now, now, scopeID, subjects[c.userID]}
		audit[i] = []any{"created", rules[i][0], rules[i][1], rules[i][2], now}
	}
	// openedx-authz gets or creates the extended rule by its key: a row left
	// with the same key (by the database's comparison) is kept as it is.
	if err := insertRowsKeepExisting(ctx, t, store.ExtendedRuleTable,
		[]string{"casbin_rule_key", "casbin_rule_id", "created_at", "updated_at", "scope_id", "subject_id"}, "casbin_rule_key", ext); err != nil {
		return err
	}
	return insertAudit(ctx, t, audit)
}

func insertAudit(ctx context.Context, t *tx, rows [][]any) error {
	return insertRows(ctx, t, store.AuditTable, []string{"operation", "subject", "role", "scope", "timestamp"}, rows)
}

// userSubjects gets or creates the user subject of each user id.
func userSubjects(ctx context.Context, t *tx, userIDs []int64) (map[int64]int64, error) {
	userIDs = unique(userIDs)
	got := map[int64]int64{}
	rows, err := t.query(ctx, "SELECT user_id, subject_ptr_id FROM "+store.UserSubjectTable+" WHERE user_id IN "+inList(len(userIDs)), anys(userIDs)...)
	if err != nil {
		return nil, fmt.Errorf("read user subjects: %w", err)
	}
	for rows.Next() {
		var u, s int64
		if err := rows.Scan(&u, &s); err != nil {
			rows.Close()
			return nil, err
		}
		got[u] = s
	}
	rows.Close()
	var missing []int64
	for _, u := range userIDs {
		if _, ok := got[u]; !ok {
			missing = append(missing, u)
		}
	}
	if len(missing) == 0 {
		return got, nil
	}
	ids, err := insertIDs(ctx, t, store.SubjectTable, nil, make([][]any, len(missing)))
	if err != nil {
		return nil, fmt.Errorf("create subjects: %w", err)
	}
	link := make([][]any, len(missing))
	for i, u := range missing {
		got[u] = ids[i]
		link[i] = []any{ids[i], u}
	}
	return got, insertRows(ctx, t, store.UserSubjectTable, []string{"subject_ptr_id", "user_id"}, link)
}

// queryID returns the first column of the first row as an id, 0 for no row.
func queryID(ctx context.Context, t *tx, q string, args ...any) (int64, error) {
	var id int64
	err := t.queryRow(ctx, q, args...).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return id, err
}

// queryString returns the first column of the first row, nil for no row.
func queryString(ctx context.Context, t *tx, q string, args ...any) (*string, error) {
	var v string
	err := t.queryRow(ctx, q, args...).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func setOf(in []string) map[string]bool {
	m := make(map[string]bool, len(in))
	for _, s := range in {
		m[s] = true
	}
	return m
}

// unique returns in without repeats, first occurrences in order.
func unique[T comparable](in []T) []T {
	seen := make(map[T]bool, len(in))
	var out []T
	for _, v := range in {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

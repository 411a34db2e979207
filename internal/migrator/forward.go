package migrator

import (
	"context"
	"fmt"
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
// batch by batch inside the run's transaction (SPEC 5).
func (e *Engine) forward(ctx context.Context, t *tx, req Request, rep *report) error {
	existing, err := existingGroupings(ctx, t, req)
	if err != nil {
		return err
	}
	excluded := setOf(req.Excluded)
	cond, arg := "r.course_id = ?", any(req.scopeKey())
	if req.ScopeType == OrgScope {
		cond = "r.org = ?"
	}
	q := `SELECT r.id, r.user_id, COALESCE(u.username, ''), r.org, r.course_id, r.role
		FROM student_courseaccessrole r LEFT JOIN auth_user u ON u.id = r.user_id
		WHERE ` + cond + ` AND (r.course_id = '' OR r.course_id LIKE 'course-v1:%')`
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
		pages.advance(batch[len(batch)-1].id)
		var cands []legacyRow
		seen := map[string]bool{}
		for _, r := range batch {
			external, ok := scopeOf(r.org, r.courseID)
			en := entry{subject: r.username, role: r.role, scope: external}
			authz, known := AuthzRole(r.role)
			switch {
			case !ok:
				rep.fail(ReasonNoScope, entry{subject: r.username, role: r.role, details: "Legacy role has neither a course key nor an org."})
				continue
			case req.ScopeType == OrgScope && excluded[r.courseID]:
				en.details = skippedDetails
				rep.fail(ReasonSkippedForOverride, en)
				continue
			case !known:
				en.details = fmt.Sprintf("Unknown access level: %s for User: %s", r.role, r.username)
				rep.fail(ReasonUnknownRole, en)
				continue
			case r.username == "":
				en.details = fmt.Sprintf("User id %d does not exist.", r.userID)
				rep.fail(ReasonAssignmentFailed, en)
				continue
			}
			r.subject, r.authz, r.external, r.scope = userNS+r.username, authz, external, courseNS+external
			if msg := tooLong(r.subject, roleNS+authz, r.scope); msg != "" {
				en.details = msg
				rep.fail(ReasonAssignmentFailed, en)
				continue
			}
			k := ruleSetKey(r.subject, roleNS+authz, r.scope)
			if existing[k] || seen[k] {
				en.details = fmt.Sprintf("User '%s' may already have this permission assigned", r.username)
				rep.fail(ReasonAssignmentFailed, en)
				continue
			}
			seen[k] = true
			cands = append(cands, r)
		}
		if err := e.assign(ctx, t, cands); err != nil {
			return err
		}
		if req.Delete && len(cands) > 0 {
			ids := make([]int64, len(cands))
			for i, c := range cands {
				ids[i] = c.id
			}
			if _, err := t.exec(ctx, "DELETE FROM student_courseaccessrole WHERE id IN "+inList(len(ids)), anys(ids)...); err != nil {
				return fmt.Errorf("delete migrated legacy rows: %w", err)
			}
		}
		for _, c := range cands {
			rep.success(entry{subject: c.username, role: c.role, scope: c.external})
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
func (e *Engine) assign(ctx context.Context, t *tx, cands []legacyRow) error {
	if len(cands) == 0 {
		return nil
	}
	rules := make([][3]string, len(cands))
	userIDs := make([]int64, 0, len(cands))
	var scopes []string
	for i, c := range cands {
		rules[i] = [3]string{c.subject, roleNS + c.authz, c.scope}
		userIDs = append(userIDs, c.userID)
		if !isGlob(c.external) {
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
	scopeIDs, err := courseScopes(ctx, t, scopes)
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
		ext[i] = []any{ruleKey(rules[i][0], rules[i][1], rules[i][2]), ruleIDs[i], now, now, scopeID, subjects[c.userID]}
		audit[i] = []any{"created", rules[i][0], rules[i][1], rules[i][2], now}
	}
	if err := insertRows(ctx, t, "openedx_authz_extendedcasbinrule",
		[]string{"casbin_rule_key", "casbin_rule_id", "created_at", "updated_at", "scope_id", "subject_id"}, ext); err != nil {
		return err
	}
	return insertAudit(ctx, t, audit)
}

func insertAudit(ctx context.Context, t *tx, rows [][]any) error {
	return insertRows(ctx, t, "openedx_authz_roleassignmentaudit", []string{"operation", "subject", "role", "scope", "timestamp"}, rows)
}

// userSubjects gets or creates the user subject of each user id.
func userSubjects(ctx context.Context, t *tx, userIDs []int64) (map[int64]int64, error) {
	userIDs = unique(userIDs)
	got := map[int64]int64{}
	rows, err := t.query(ctx, "SELECT user_id, subject_ptr_id FROM openedx_authz_usersubject WHERE user_id IN "+inList(len(userIDs)), anys(userIDs)...)
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
	ids, err := insertIDs(ctx, t, "openedx_authz_subject", nil, make([][]any, len(missing)))
	if err != nil {
		return nil, fmt.Errorf("create subjects: %w", err)
	}
	link := make([][]any, len(missing))
	for i, u := range missing {
		got[u] = ids[i]
		link[i] = []any{ids[i], u}
	}
	return got, insertRows(ctx, t, "openedx_authz_usersubject", []string{"subject_ptr_id", "user_id"}, link)
}

// courseScopes gets or creates the course scope of each course key.
func courseScopes(ctx context.Context, t *tx, keys []string) (map[string]int64, error) {
	keys = unique(keys)
	if len(keys) == 0 {
		return map[string]int64{}, nil
	}
	got, err := scopeIDs(ctx, t, keys)
	if err != nil {
		return nil, err
	}
	var missing [][]any
	for _, k := range keys {
		if _, ok := got[k]; !ok {
			missing = append(missing, []any{k})
		}
	}
	if len(missing) == 0 {
		return got, nil
	}
	ids, err := insertIDs(ctx, t, "openedx_authz_scope", []string{"external_key"}, missing)
	if err != nil {
		return nil, fmt.Errorf("create scopes: %w", err)
	}
	link := make([][]any, len(ids))
	for i, id := range ids {
		link[i] = []any{id}
	}
	if err := insertRows(ctx, t, "openedx_authz_coursescope", []string{"scope_ptr_id"}, link); err != nil {
		return nil, err
	}
	// Read back rather than trust RETURNING's row order.
	return scopeIDs(ctx, t, keys)
}

func scopeIDs(ctx context.Context, t *tx, keys []string) (map[string]int64, error) {
	rows, err := t.query(ctx, "SELECT external_key, id FROM openedx_authz_scope WHERE external_key IN "+inList(len(keys)), anys(keys)...)
	if err != nil {
		return nil, fmt.Errorf("read scopes: %w", err)
	}
	defer rows.Close()
	got := map[string]int64{}
	for rows.Next() {
		var k string
		var id int64
		if err := rows.Scan(&k, &id); err != nil {
			return nil, err
		}
		got[k] = id
	}
	return got, rows.Err()
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

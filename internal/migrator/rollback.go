package migrator

import (
	"context"
	"fmt"
	"strings"
)

type grouping struct {
	id                   int64
	subject, role, scope string // as stored (namespaced)
	username, authz      string
	external             string
	org, courseID        string
	legacy               string
	userID               int64
}

// rollback turns the scope's g rules back into legacy rows (get or create)
// and, when asked, removes the rules with their companions (SPEC 5).
func (e *Engine) rollback(ctx context.Context, t *tx, req Request, rep *report) error {
	excluded := setOf(req.Excluded)
	cond, args := scopeFilter(req)
	q := "SELECT id, v0, v1, v2 FROM " + PolicyTable + " WHERE ptype = 'g' AND " + cond
	pages := newPager(t, "assignments", q, args, "id", e.opts.BatchSize)
	defer pages.close(ctx)
	for {
		batch, err := readGroupings(ctx, pages)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			return nil
		}
		pages.advance(batch[len(batch)-1].id)
		var cands []grouping
		for _, g := range batch {
			g.username = strings.TrimPrefix(g.subject, userNS)
			g.authz = strings.TrimPrefix(g.role, roleNS)
			g.external = strings.TrimPrefix(g.scope, courseNS)
			en := entry{subject: g.username, role: g.authz, scope: g.external}
			var ok bool
			g.org, g.courseID, ok = legacyOf(g.external)
			switch {
			case !strings.HasPrefix(g.scope, courseNS) || !ok:
				en.details = fmt.Sprintf("Scope '%s' is not a course or an org-wide course scope.", g.scope)
				rep.fail(ReasonUnexpectedScopeType, en)
				continue
			case req.ScopeType == OrgScope && excluded[g.courseID]:
				en.details = skippedDetails
				rep.fail(ReasonSkippedForOverride, en)
				continue
			}
			if g.legacy, ok = LegacyRole(g.authz); !ok || !strings.HasPrefix(g.role, roleNS) {
				en.details = fmt.Sprintf("Role '%s' has no legacy equivalent.", g.authz)
				rep.fail(ReasonNoLegacyEquivalent, en)
				continue
			}
			if !strings.HasPrefix(g.subject, userNS) {
				en.details = fmt.Sprintf("Subject '%s' is not a user.", g.subject)
				rep.fail(ReasonUnexpectedError, en)
				continue
			}
			cands = append(cands, g)
		}
		cands, err = e.resolveUsers(ctx, t, cands, rep)
		if err != nil {
			return err
		}
		if err := restoreLegacy(ctx, t, cands); err != nil {
			return err
		}
		if req.Delete {
			if err := e.unassign(ctx, t, cands); err != nil {
				return err
			}
		}
		for _, g := range cands {
			rep.success(entry{subject: g.username, role: g.authz, scope: g.external})
		}
		if err := e.fault("rollback-batch"); err != nil {
			return err
		}
	}
}

func readGroupings(ctx context.Context, pages *pager) ([]grouping, error) {
	rows, err := pages.next(ctx)
	if err != nil {
		return nil, fmt.Errorf("read assignments: %w", err)
	}
	defer rows.Close()
	var out []grouping
	for rows.Next() {
		var g grouping
		if err := rows.Scan(&g.id, &g.subject, &g.role, &g.scope); err != nil {
			return nil, fmt.Errorf("read assignment: %w", err)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}

// resolveUsers finds each candidate's user id; a user that no longer exists
// is an unexpected_error for that rule.
func (e *Engine) resolveUsers(ctx context.Context, t *tx, cands []grouping, rep *report) ([]grouping, error) {
	if len(cands) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(cands))
	for _, g := range cands {
		names = append(names, g.username)
	}
	names = unique(names)
	rows, err := t.query(ctx, "SELECT username, id FROM auth_user WHERE username IN "+inList(len(names)), anys(names)...)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	ids := map[string]int64{}
	for rows.Next() {
		var n string
		var id int64
		if err := rows.Scan(&n, &id); err != nil {
			rows.Close()
			return nil, err
		}
		ids[n] = id
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	kept := cands[:0]
	for _, g := range cands {
		id, ok := ids[g.username]
		if !ok {
			rep.fail(ReasonUnexpectedError, entry{subject: g.username, role: g.authz, scope: g.external,
				details: fmt.Sprintf("User '%s' does not exist.", g.username)})
			continue
		}
		g.userID = id
		kept = append(kept, g)
	}
	return kept, nil
}

// restoreLegacy gets or creates the legacy row of each candidate.
func restoreLegacy(ctx context.Context, t *tx, cands []grouping) error {
	if len(cands) == 0 {
		return nil
	}
	key := func(u int64, org, course, role string) string {
		return fmt.Sprintf("%d\x00%s\x00%s\x00%s", u, org, course, role)
	}
	userIDs := make([]int64, len(cands))
	for i, g := range cands {
		userIDs[i] = g.userID
	}
	userIDs = unique(userIDs)
	rows, err := t.query(ctx, "SELECT user_id, org, course_id, role FROM student_courseaccessrole WHERE user_id IN "+inList(len(userIDs)), anys(userIDs)...)
	if err != nil {
		return fmt.Errorf("read legacy roles: %w", err)
	}
	have := map[string]bool{}
	for rows.Next() {
		var u int64
		var org, course, role string
		if err := rows.Scan(&u, &org, &course, &role); err != nil {
			rows.Close()
			return err
		}
		have[key(u, org, course, role)] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var add [][]any
	for _, g := range cands {
		k := key(g.userID, g.org, g.courseID, g.legacy)
		if !have[k] {
			have[k] = true
			add = append(add, []any{g.userID, g.org, g.courseID, g.legacy})
		}
	}
	return insertRows(ctx, t, "student_courseaccessrole", []string{"user_id", "org", "course_id", "role"}, add)
}

// unassign removes the rules of cands with their extended rules, and writes
// a deleted audit row for each, as openedx-authz's unassign does.
func (e *Engine) unassign(ctx context.Context, t *tx, cands []grouping) error {
	if len(cands) == 0 {
		return nil
	}
	ids := make([]int64, len(cands))
	audit := make([][]any, len(cands))
	now := e.now()
	for i, g := range cands {
		ids[i] = g.id
		audit[i] = []any{"deleted", g.subject, g.role, g.scope, now}
	}
	if _, err := t.exec(ctx, "DELETE FROM openedx_authz_extendedcasbinrule WHERE casbin_rule_id IN "+inList(len(ids)), anys(ids)...); err != nil {
		return fmt.Errorf("delete extended rules: %w", err)
	}
	if _, err := t.exec(ctx, "DELETE FROM "+PolicyTable+" WHERE id IN "+inList(len(ids)), anys(ids)...); err != nil {
		return fmt.Errorf("delete assignments: %w", err)
	}
	return insertAudit(ctx, t, audit)
}

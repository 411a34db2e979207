package migrator

import (
	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/store"

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
// and, when asked, removes the rules with their companions.
func (e *Engine) rollback(ctx context.Context, t *tx, req Request, rep *report) error {
	excluded := setOf(req.Excluded)
	cond, args := scopeFilter(req)
	q := "SELECT id, v0, v1, v2 FROM " + PolicyTable + " WHERE ptype = 'g' AND " + cond
	if rep.progress != nil {
		if err := rep.progress.count(ctx, t, "SELECT COUNT(*) FROM "+PolicyTable+" WHERE ptype = 'g' AND "+cond, args...); err != nil {
			return err
		}
	}
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
		if rep.progress != nil {
			rep.progress.add(len(batch))
		}
		pages.advance(batch[len(batch)-1].id)
		var cands []grouping
		for _, g := range batch {
			g.username = strings.TrimPrefix(g.subject, authz.UserNS)
			g.authz = strings.TrimPrefix(g.role, authz.RoleNS)
			g.external = strings.TrimPrefix(g.scope, authz.CourseNS)
			org, glob, ok := authz.ScopeOrg(g.external)
			// The database selected by its own comparison (case-insensitive
			// on MySQL, LIKE on SQLite); openedx-authz then keeps the
			// assignments whose scope names the org or course exactly.
			switch {
			case req.ScopeType == OrgScope && ok && org != req.Org:
				continue
			case req.ScopeType == CourseScope && g.external != req.CourseKeys[0]:
				continue
			}
			en := entry{subject: g.username, role: g.authz, scope: g.external}
			g.org = org
			if !glob {
				g.courseID = g.external
			}
			switch {
			case !strings.HasPrefix(g.scope, authz.CourseNS) || !ok:
				en.details = fmt.Sprintf("Unexpected scope type: %s", g.scope)
				rep.fail(ReasonUnexpectedScopeType, en)
				continue
			case req.ScopeType == OrgScope && !glob && excluded[g.courseID]:
				en.details = skippedDetails
				rep.fail(ReasonSkippedForOverride, en)
				continue
			}
			if g.legacy, ok = authz.LegacyRole(g.authz); !ok || !strings.HasPrefix(g.role, authz.RoleNS) {
				en.details = fmt.Sprintf("Role '%s' has no legacy equivalent.", g.authz)
				rep.fail(ReasonNoLegacyEquivalent, en)
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
			if g.courseID != "" {
				rep.courses[g.courseID] = true
			}
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

// resolveUsers finds each candidate's user through its openedx-authz user
// subject, as openedx-authz's rollback does: a rule whose user has no
// subject row (written without its companions) is an unexpected_error and
// stays. The lookup compares as the database does; the match against the
// rule's username is exact, as openedx-authz's dictionary lookup is.
func (e *Engine) resolveUsers(ctx context.Context, t *tx, cands []grouping, rep *report) ([]grouping, error) {
	if len(cands) == 0 {
		return nil, nil
	}
	names := make([]string, 0, len(cands))
	for _, g := range cands {
		names = append(names, g.username)
	}
	names = unique(names)
	rows, err := t.query(ctx, `SELECT u.username, u.id FROM `+store.UserSubjectTable+` s JOIN `+store.UserTable+` u ON u.id = s.user_id
		WHERE u.username IN `+inList(len(names)), anys(names)...)
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
			// openedx-authz reports the KeyError's text: the quoted username.
			rep.fail(ReasonUnexpectedError, entry{subject: g.username, role: g.authz, scope: g.external,
				details: fmt.Sprintf("'%s'", g.username)})
			continue
		}
		g.userID = id
		kept = append(kept, g)
	}
	return kept, nil
}

// restoreLegacy gets or creates the legacy row of each candidate; an
// existing row (by the database's comparison) is kept as it is.
func restoreLegacy(ctx context.Context, t *tx, cands []grouping) error {
	seen := map[string]bool{}
	var add [][]any
	for _, g := range cands {
		k := fmt.Sprintf("%d\x00%s\x00%s\x00%s", g.userID, g.org, g.courseID, g.legacy)
		if !seen[k] {
			seen[k] = true
			add = append(add, []any{g.userID, g.org, g.courseID, g.legacy})
		}
	}
	return insertRowsKeepExisting(ctx, t, store.LegacyRoleTable, []string{"user_id", "org", "course_id", "role"}, "user_id, org, course_id, role", add)
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
	if _, err := t.exec(ctx, "DELETE FROM "+store.ExtendedRuleTable+" WHERE casbin_rule_id IN "+inList(len(ids)), anys(ids)...); err != nil {
		return fmt.Errorf("delete extended rules: %w", err)
	}
	if _, err := t.exec(ctx, "DELETE FROM "+PolicyTable+" WHERE id IN "+inList(len(ids)), anys(ids)...); err != nil {
		return fmt.Errorf("delete assignments: %w", err)
	}
	return insertAudit(ctx, t, audit)
}

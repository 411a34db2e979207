package migrator

import (
	"authz-flag-consumer/internal/authz"

	"context"
	"fmt"
	"strings"

	gormadapter "github.com/casbin/gorm-adapter/v3"
	"gorm.io/gorm"

	"authz-flag-consumer/internal/store"
)

// PolicyTable is openedx-authz's casbin table (django-casbin-adapter's).
const PolicyTable = store.PolicyTable

// gormOn returns a gorm handle bound to the run's transaction, with the
// casbin adapter's auto-migration off: the adapter's rule struct would alter
// the policy table to varchar(100) NULL.
func gormOn(ctx context.Context, db *store.DB, t *tx) *gorm.DB {
	g := db.Gorm.Session(&gorm.Session{NewDB: true, Context: ctx})
	g.Statement.ConnPool = t.Tx
	gormadapter.TurnOffAutoMigrate(g)
	return g
}

// NewAdapter returns a casbin gorm-adapter on the Open edX policy table that
// never alters the table. It is what an enforcer loads openedx-authz's
// policies through.
func NewAdapter(db *store.DB) (*gormadapter.Adapter, error) {
	g := db.Gorm.Session(&gorm.Session{NewDB: true})
	gormadapter.TurnOffAutoMigrate(g)
	a, err := gormadapter.NewAdapterByDBUseTableName(g, "", PolicyTable)
	if err != nil {
		return nil, fmt.Errorf("casbin adapter on %s: %w", PolicyTable, err)
	}
	return a, nil
}

// addGroupings writes g rules with the adapter's rule type through gorm in
// one batch and returns their ids (the adapter's AddPolicies discards them,
// and the companion rows need them).
func addGroupings(ctx context.Context, db *store.DB, t *tx, rules [][3]string) ([]int64, error) {
	lines := make([]gormadapter.CasbinRule, len(rules))
	for i, r := range rules {
		lines[i] = gormadapter.CasbinRule{Ptype: "g", V0: r[0], V1: r[1], V2: r[2]}
	}
	if err := gormOn(ctx, db, t).Table(PolicyTable).CreateInBatches(&lines, db.RowsPerStatement(7)).Error; err != nil {
		return nil, fmt.Errorf("add %d grouping policies: %w", len(lines), err)
	}
	ids := make([]int64, len(lines))
	for i, l := range lines {
		ids[i] = int64(l.ID)
	}
	// The companion rows point at these ids, so check them on every
	// dialect: MySQL hands out a batch's ids consecutively only in some
	// auto-increment lock modes, and no SQL standard promises that
	// RETURNING lists rows in the order they were inserted.
	if err := verifyIDs(ctx, t, ids, rules); err != nil {
		return nil, err
	}
	return ids, nil
}

func verifyIDs(ctx context.Context, t *tx, ids []int64, rules [][3]string) error {
	rows, err := t.query(ctx, "SELECT id, v0, v1, v2 FROM "+PolicyTable+" WHERE id IN "+inList(len(ids)), anys(ids)...)
	if err != nil {
		return fmt.Errorf("verify policy ids: %w", err)
	}
	defer rows.Close()
	want := map[int64][3]string{}
	for i, id := range ids {
		want[id] = rules[i]
	}
	n := 0
	for rows.Next() {
		var id int64
		var r [3]string
		if err := rows.Scan(&id, &r[0], &r[1], &r[2]); err != nil {
			return err
		}
		if want[id] != r {
			return fmt.Errorf("policy id %d holds %v, want %v: auto-increment ids were not consecutive", id, r, want[id])
		}
		n++
	}
	if n != len(ids) {
		return fmt.Errorf("verify policy ids: found %d of %d", n, len(ids))
	}
	return rows.Err()
}

// likeEscape escapes a LIKE pattern literal with '!'.
func likeEscape(s string) string {
	return strings.NewReplacer("!", "!!", "%", "!%", "_", "!_").Replace(s)
}

// scopeFilter is the SQL condition on v2 selecting the rules of a scope:
// one course scope, or an org's glob and all its course scopes.
func scopeFilter(req Request) (string, []any) {
	if req.ScopeType == OrgScope {
		return "(v2 = ? OR v2 LIKE ? ESCAPE '!')", []any{authz.CourseNS + authz.OrgGlob(req.Org), likeEscape(authz.CourseNS+"course-v1:"+req.Org+"+") + "%"}
	}
	return "v2 = ?", []any{authz.CourseNS + req.CourseKeys[0]}
}

func ruleSetKey(sub, role, scope string) string { return sub + "\x00" + role + "\x00" + scope }

// existingGroupings loads the keys of the scope's g rules: one scan, since
// Open edX's policy table has no index to look rules up by.
func existingGroupings(ctx context.Context, t *tx, req Request) (map[string]bool, error) {
	cond, args := scopeFilter(req)
	rows, err := t.query(ctx, "SELECT v0, v1, v2 FROM "+PolicyTable+" WHERE ptype = 'g' AND "+cond, args...)
	if err != nil {
		return nil, fmt.Errorf("read existing assignments: %w", err)
	}
	defer rows.Close()
	set := map[string]bool{}
	for rows.Next() {
		var a, b, c string
		if err := rows.Scan(&a, &b, &c); err != nil {
			return nil, err
		}
		set[ruleSetKey(a, b, c)] = true
	}
	return set, rows.Err()
}

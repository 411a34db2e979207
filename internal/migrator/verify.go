package migrator

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/lock"
	"authz-flag-consumer/internal/store"
)

// Scope names one course or org.
type Scope struct {
	Type ScopeType
	Key  string
}

// org is the org whose lock covers the scope.
func (s Scope) org() string {
	if s.Type == CourseScope {
		org, _ := authz.CourseV1Org(s.Key)
		return org
	}
	return s.Key
}

// VerifyFilter narrows Verify; the zero value checks every scope.
type VerifyFilter struct {
	Org     string   // this org and its courses
	Courses []string // these courses
}

func (f VerifyFilter) keeps(s Scope) bool {
	switch {
	case f.Org != "":
		return s.org() == f.Org
	case len(f.Courses) > 0:
		return s.Type == CourseScope && setOf(f.Courses)[s.Key]
	}
	return true
}

// RowRef is one mappable role in a drift report: a legacy row or an
// openedx-authz assignment (g rule), named as run metadata names it.
type RowRef struct {
	Table   string `json:"table"` // student_courseaccessrole or casbin_rule
	ID      int64  `json:"id"`
	Subject string `json:"subject"` // username
	Role    string `json:"role"`    // legacy role for legacy rows, authz role for assignments
	Scope   string `json:"scope"`   // external key: course key or org glob
	Details string `json:"details,omitempty"`
}

// ScopeDrift is what Verify found for one scope. A course scope holds its
// course's roles; an org scope its org-wide legacy rows, its org glob's
// assignments, and the rows of course keys no course scope can hold
// (invalid keys), which only an org run reaches.
type ScopeDrift struct {
	Type        ScopeType `json:"scope_type"`
	Key         string    `json:"scope"`
	On          bool      `json:"-"`
	State       string    `json:"effective"` // on or off
	Why         string    `json:"why"`       // which level decided it
	Legacy      int       `json:"legacy_rows"`
	Assignments int       `json:"assignments"`
	// Drift counts the mappable roles on the wrong side that a run would
	// move; DriftRows lists them (capped).
	Drift     int      `json:"drift"`
	DriftRows []RowRef `json:"drift_rows"`
	// LeftByErrors counts the roles on the wrong side that a run would
	// leave there with a per-row error, as openedx-authz leaves them: not
	// drift. Errors lists them by reason (capped).
	LeftByErrors int                 `json:"left_by_errors"`
	Errors       map[string][]RowRef `json:"errors"`
	Omitted      int                 `json:"entries_omitted,omitempty"`
}

// DriftReport is the result of Verify.
type DriftReport struct {
	Flag           string       `json:"flag"`
	ScopesChecked  int          `json:"scopes_checked"`
	DriftingScopes int          `json:"drifting_scopes"`
	DriftRows      int          `json:"drift_rows"`
	LeftByErrors   int          `json:"rows_left_by_errors"`
	Scopes         []ScopeDrift `json:"scopes"` // every scope checked, org by org, the org first
}

// Drifting lists the scopes with drift, in report order.
func (r *DriftReport) Drifting() []ScopeDrift {
	var out []ScopeDrift
	for _, s := range r.Scopes {
		if s.Drift > 0 {
			out = append(out, s)
		}
	}
	return out
}

// Verify reports drift, read-only: for every scope the database
// knows (named by legacy rows of course-v1 keys or org-wide, by g rules on
// course-v1 scopes, by override rows of the watched flag), its effective
// state and the mappable roles that are not where that state puts them.
// Roles a run would leave in place with a per-row error (openedx-authz
// leaves them too) are listed apart and are not drift. It reads in one
// read-only transaction and writes nothing.
func (e *Engine) Verify(ctx context.Context, f VerifyFilter) (*DriftReport, error) {
	sqlTx, err := e.db.SQL.BeginTx(ctx, e.db.Driver().SnapshotTx()) // one snapshot for the whole report
	if err != nil {
		return nil, fmt.Errorf("verify: begin read-only transaction: %w", err)
	}
	defer sqlTx.Rollback() //nolint:errcheck // read-only: nothing to keep
	t := &tx{Tx: sqlTx, db: e.db}
	roles, err := loadRoles(ctx, t, nil)
	if err != nil {
		return nil, err
	}
	scopes, err := e.knownScopes(ctx, t, roles)
	if err != nil {
		return nil, err
	}
	rep := &DriftReport{Flag: e.opts.WatchedFlag, Scopes: []ScopeDrift{}}
	for _, s := range scopes {
		if !f.keeps(s) {
			continue
		}
		d, err := e.scopeDrift(ctx, t, s, roles)
		if err != nil {
			return nil, err
		}
		rep.ScopesChecked++
		rep.DriftRows += d.Drift
		rep.LeftByErrors += d.LeftByErrors
		if d.Drift > 0 {
			rep.DriftingScopes++
		}
		rep.Scopes = append(rep.Scopes, d)
	}
	return rep, nil
}

// roleSet holds the mappable roles Verify classifies, grouped by the scope
// they belong to, and what the per-row checks need.
type roleSet struct {
	legacy   map[Scope][]legacyRow // in id order
	rules    map[Scope][]grouping  // in id order
	existing map[string]bool       // ruleSetKey of every rule read
	subjects map[string]bool       // usernames with an openedx-authz user subject
}

// loadRoles reads the mappable legacy rows and assignments: all of them,
// or (only set) those of one scope, as the run of that scope selects them.
func loadRoles(ctx context.Context, t *tx, only *Scope) (*roleSet, error) {
	rs := &roleSet{legacy: map[Scope][]legacyRow{}, rules: map[Scope][]grouping{}, existing: map[string]bool{}, subjects: map[string]bool{}}
	q := `SELECT r.id, r.user_id, COALESCE(u.username, ''), r.org, r.course_id, r.role
		FROM ` + store.LegacyRoleTable + ` r LEFT JOIN ` + store.UserTable + ` u ON u.id = r.user_id
		WHERE (r.course_id = '' OR r.course_id LIKE 'course-v1:%') AND r.role IN ` + inList(len(authz.LegacyRoles))
	args := anys(authz.LegacyRoles)
	if only != nil && only.Type == CourseScope {
		q, args = q+" AND r.course_id = ?", append(args, only.Key)
	} else if only != nil {
		q, args = q+" AND r.org = ?", append(args, only.Key)
	}
	rows, err := t.query(ctx, q+" ORDER BY r.id", args...)
	if err != nil {
		return nil, fmt.Errorf("verify: read legacy roles: %w", err)
	}
	for rows.Next() {
		var r legacyRow
		if err := rows.Scan(&r.id, &r.userID, &r.username, &r.org, &r.courseID, &r.role); err != nil {
			rows.Close()
			return nil, fmt.Errorf("verify: read legacy role: %w", err)
		}
		if s, ok := legacyScope(r); ok {
			rs.legacy[s] = append(rs.legacy[s], r)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("verify: read legacy roles: %w", err)
	}

	q = "SELECT id, v0, v1, v2 FROM " + PolicyTable + " WHERE ptype = 'g' AND v2 LIKE 'course-v1^course-v1:%' AND v1 IN " + inList(len(authz.LegacyRoles))
	args = anys(authzRoles())
	if only != nil {
		req := Request{ScopeType: only.Type, Org: only.Key, CourseKeys: []string{only.Key}}
		cond, cargs := scopeFilter(req)
		q, args = q+" AND "+cond, append(args, cargs...)
	}
	rows, err = t.query(ctx, q+" ORDER BY id", args...)
	if err != nil {
		return nil, fmt.Errorf("verify: read assignments: %w", err)
	}
	var names []string
	for rows.Next() {
		var g grouping
		if err := rows.Scan(&g.id, &g.subject, &g.role, &g.scope); err != nil {
			rows.Close()
			return nil, fmt.Errorf("verify: read assignment: %w", err)
		}
		g.username = strings.TrimPrefix(g.subject, authz.UserNS)
		g.authz = strings.TrimPrefix(g.role, authz.RoleNS)
		g.external = strings.TrimPrefix(g.scope, authz.CourseNS)
		rs.existing[ruleSetKey(g.subject, g.role, g.scope)] = true
		if s, ok := ruleScope(g); ok {
			rs.rules[s] = append(rs.rules[s], g)
			names = append(names, g.username)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("verify: read assignments: %w", err)
	}
	// As a rollback finds each rule's user: through its user subject, the
	// lookup by the database's comparison, the match exact.
	for _, chunk := range chunks(unique(names), t.db.RowsPerStatement(1)) {
		rows, err := t.query(ctx, `SELECT u.username FROM `+store.UserSubjectTable+` s JOIN `+store.UserTable+` u ON u.id = s.user_id
			WHERE u.username IN `+inList(len(chunk)), anys(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("verify: read user subjects: %w", err)
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return nil, err
			}
			rs.subjects[n] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("verify: read user subjects: %w", err)
		}
	}
	return rs, nil
}

// legacyScope is the scope a legacy row belongs to: its course, else its
// org (org-wide rows, and course keys no course scope can hold, which an
// org forward reaches by the org column). ok is false for rows no run
// selects.
func legacyScope(r legacyRow) (Scope, bool) {
	if r.courseID != "" {
		if !strings.HasPrefix(r.courseID, authz.CourseV1Prefix) {
			return Scope{}, false // another spelling of the prefix: never selected
		}
		if _, err := authz.CourseV1Org(r.courseID); err == nil {
			return Scope{CourseScope, r.courseID}, true
		}
	}
	if authz.ValidOrg(r.org) != nil {
		return Scope{}, false
	}
	return Scope{OrgScope, r.org}, true
}

// ruleScope is the scope an assignment belongs to: its course, else its
// org (the org glob, and course keys no course scope can hold, which an
// org rollback reaches by the key's prefix).
func ruleScope(g grouping) (Scope, bool) {
	if !strings.HasPrefix(g.scope, authz.CourseNS+authz.CourseV1Prefix) {
		return Scope{}, false
	}
	org, glob, ok := authz.ScopeOrg(g.external)
	switch {
	case ok && glob:
		return Scope{OrgScope, org}, true
	case ok:
		return Scope{CourseScope, g.external}, true
	}
	org, _, _ = strings.Cut(strings.TrimPrefix(g.external, authz.CourseV1Prefix), "+")
	if authz.ValidOrg(org) != nil {
		return Scope{}, false
	}
	return Scope{OrgScope, org}, true
}

// knownScopes lists every scope the roles or the watched flag's override
// rows name, with the org of every course, sorted org by org, the org
// first.
func (e *Engine) knownScopes(ctx context.Context, t *tx, rs *roleSet) ([]Scope, error) {
	seen := map[Scope]bool{}
	add := func(s Scope) {
		seen[s] = true
		if s.Type == CourseScope {
			seen[Scope{OrgScope, s.org()}] = true
		}
	}
	for s := range rs.legacy {
		add(s)
	}
	for s := range rs.rules {
		add(s)
	}
	for _, st := range []ScopeType{CourseScope, OrgScope} {
		table, keyCol := overrideTable(st)
		rows, err := t.query(ctx, fmt.Sprintf("SELECT DISTINCT %s FROM %s WHERE waffle_flag = ?", keyCol, table), e.opts.WatchedFlag)
		if err != nil {
			return nil, fmt.Errorf("verify: read %s overrides: %w", st, err)
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, err
			}
			if e.ignoreReason(Change{Flag: e.opts.WatchedFlag, ScopeType: st, ScopeKey: k}) == "" {
				add(Scope{st, k})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("verify: read %s overrides: %w", st, err)
		}
	}
	out := make([]Scope, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	sortScopes(out)
	return out, nil
}

// sortScopes orders scopes org by org, each org before its courses.
func sortScopes(s []Scope) {
	sort.Slice(s, func(i, j int) bool {
		if a, b := s[i].org(), s[j].org(); a != b {
			return a < b
		}
		if s[i].Type != s[j].Type {
			return s[i].Type == OrgScope
		}
		return s[i].Key < s[j].Key
	})
}

// scopeDrift classifies a scope's mappable roles against its effective
// state, with the per-row checks of the run that state calls for, in
// openedx-authz's order (forward.go, rollback.go): a role that run would
// move is drift, one it would leave with a per-row error is not.
func (e *Engine) scopeDrift(ctx context.Context, t *tx, s Scope, rs *roleSet) (ScopeDrift, error) {
	on, why, err := effectiveState(ctx, t, s.Type, s.Key, e.opts.WatchedFlag)
	if err != nil {
		return ScopeDrift{}, fmt.Errorf("verify %s %s: %w", s.Type, s.Key, err)
	}
	d := ScopeDrift{Type: s.Type, Key: s.Key, On: on, State: onOff(on), Why: why,
		Legacy: len(rs.legacy[s]), Assignments: len(rs.rules[s]), DriftRows: []RowRef{}, Errors: map[string][]RowRef{}}
	limit := e.opts.MaxReportedEntries
	add := func(reason string, ref RowRef) {
		if reason == "" {
			d.Drift++
		} else {
			d.LeftByErrors++
		}
		switch {
		case reason == "" && len(d.DriftRows) < limit:
			d.DriftRows = append(d.DriftRows, ref)
		case reason != "" && len(d.Errors[reason]) < limit:
			d.Errors[reason] = append(d.Errors[reason], ref)
		default:
			d.Omitted++
		}
	}
	if on {
		seen := map[string]bool{}
		for _, r := range rs.legacy[s] {
			reason, ref := forwardCheck(r, rs.existing, seen)
			add(reason, ref)
		}
		return d, nil
	}
	for _, g := range rs.rules[s] {
		ref := RowRef{Table: PolicyTable, ID: g.id, Subject: g.username, Role: g.authz, Scope: g.external}
		switch _, _, ok := authz.ScopeOrg(g.external); {
		case !ok:
			ref.Details = fmt.Sprintf("Unexpected scope type: %s", g.scope)
			add(ReasonUnexpectedScopeType, ref)
		case !rs.subjects[g.username]:
			ref.Details = fmt.Sprintf("'%s'", g.username)
			add(ReasonUnexpectedError, ref)
		default:
			add("", ref)
		}
	}
	return d, nil
}

// forwardCheck is what a forward run does with one mapped legacy row that
// has a scope: move it (reason "", and its rule key is added to seen) or
// leave it with a per-row error. The forward run and verify both use it.
// An org-wide row of an org openedx-authz cannot hold as a glob, and a key
// opaque-keys rejects, make openedx-authz fail the whole run; here only
// that row stays.
func forwardCheck(r legacyRow, existing, seen map[string]bool) (reason string, ref RowRef) {
	external, _ := authz.ScopeOf(r.org, r.courseID)
	ref = RowRef{Table: store.LegacyRoleTable, ID: r.id, Subject: r.username, Role: r.role, Scope: external}
	authzRole, _ := authz.AuthzRole(r.role)
	if r.courseID == "" {
		if msg := authz.GlobOrgProblem(r.org); msg != "" {
			ref.Details = msg
			return ReasonNoScope, ref
		}
	} else if _, err := authz.CourseV1Org(r.courseID); err != nil {
		ref.Details = fmt.Sprintf("Course key '%s' is not a valid course-v1 key; the row stays.", r.courseID)
		return ReasonNoScope, ref
	}
	if r.username == "" {
		ref.Details = fmt.Sprintf("User id %d does not exist.", r.userID)
		return ReasonAssignmentFailed, ref
	}
	subject, role, scope := authz.UserNS+r.username, authz.RoleNS+authzRole, authz.CourseNS+external
	if msg := authz.TooLong(subject, role, scope); msg != "" {
		ref.Details = msg
		return ReasonAssignmentFailed, ref
	}
	k := ruleSetKey(subject, role, scope)
	if existing[k] || seen[k] {
		ref.Details = fmt.Sprintf("User '%s' may already have this permission assigned", r.username)
		return ReasonAssignmentFailed, ref
	}
	seen[k] = true
	return "", ref
}

// reconcileRequest re-checks one scope inside t (under its org's lock) and
// returns the run its drift calls for, or nil when it has none (any more).
func (e *Engine) reconcileRequest(ctx context.Context, t *tx, s Scope) (*Request, error) {
	rs, err := loadRoles(ctx, t, &s)
	if err != nil {
		return nil, err
	}
	d, err := e.scopeDrift(ctx, t, s, rs)
	if err != nil || d.Drift == 0 {
		return nil, err
	}
	req := reconcileReq(d)
	if s.Type == OrgScope {
		if req.Excluded, err = e.opposingCourses(ctx, t, e.opts.WatchedFlag, s.Key, d.On); err != nil {
			return nil, err
		}
	}
	return &req, nil
}

// reconcileReq is the run a drifting scope's effective state calls for.
func reconcileReq(d ScopeDrift) Request {
	dir := Rollback
	if d.On {
		dir = Forward
	}
	return scopeRequest(dir, d.Type, d.Key, Trigger{Kind: TriggerReconcile})
}

// Reconcile fixes drift: each drifting scope (from a DriftReport)
// gets a run in the direction its effective state calls for, recorded with
// the trigger reconcile, updating the ledger as every run does. Org by
// org, the org's own run first, since it may fix its courses; each scope
// is checked again under its org's lock right before its run, so a scope
// fixed meanwhile (by that org run, or an event) gets none. It returns the
// runs made, in order; a run that failed is among them (status failed).
//
// dryRun plans instead: each org's runs are done in one transaction under
// its lock (each in a savepoint, as each real run is atomic on its own)
// and rolled back, so the plan is exactly the runs a real reconcile would
// make now, and nothing is written.
func (e *Engine) Reconcile(ctx context.Context, drifting []ScopeDrift, dryRun bool) ([]*Run, error) {
	byOrg := map[string][]ScopeDrift{}
	var orgs []string
	for _, d := range drifting {
		s := Scope{d.Type, d.Key}
		if _, ok := byOrg[s.org()]; !ok {
			orgs = append(orgs, s.org())
		}
		byOrg[s.org()] = append(byOrg[s.org()], d)
	}
	sort.Strings(orgs)
	var runs []*Run
	for _, org := range orgs {
		group := byOrg[org]
		sort.SliceStable(group, func(i, j int) bool { return group[i].Type == OrgScope && group[j].Type != OrgScope })
		var (
			got []*Run
			err error
		)
		if dryRun {
			got, err = e.planOrg(ctx, org, group)
		} else {
			got, err = e.reconcileOrg(ctx, group)
		}
		runs = append(runs, got...)
		if err != nil {
			return runs, err
		}
	}
	return runs, nil
}

func (e *Engine) reconcileOrg(ctx context.Context, group []ScopeDrift) ([]*Run, error) {
	var runs []*Run
	for _, d := range group {
		s := Scope{d.Type, d.Key}
		run, err := e.run(ctx, reconcileReq(d), func(ctx context.Context, t *tx, req *Request) (bool, error) {
			now, err := e.reconcileRequest(ctx, t, s)
			if err != nil || now == nil {
				return false, err
			}
			*req = *now
			return true, nil
		})
		if err != nil {
			return runs, fmt.Errorf("reconcile %s %s: %w", d.Type, d.Key, err)
		}
		if run != nil {
			runs = append(runs, run)
		}
	}
	return runs, nil
}

// planOrg is reconcileOrg as a dry run: one transaction, rolled back.
func (e *Engine) planOrg(ctx context.Context, org string, group []ScopeDrift) ([]*Run, error) {
	var runs []*Run
	err := e.locked(ctx, []string{org}, func(t *tx) error {
		runs = nil
		for _, d := range group {
			if _, err := t.exec(ctx, "SAVEPOINT authz_consumer_plan"); err != nil {
				return fmt.Errorf("plan %s %s: %w", d.Type, d.Key, err)
			}
			req, err := e.reconcileRequest(ctx, t, Scope{d.Type, d.Key})
			if err != nil {
				return fmt.Errorf("plan %s %s: %w", d.Type, d.Key, err)
			}
			if req == nil {
				continue // fixed by an earlier run of the plan
			}
			req.DryRun = true
			run, err := e.runIn(ctx, t, *req)
			if err != nil {
				if IsTransient(err) {
					return err
				}
				// The real run would fail and roll back alone; the next ones go on.
				if _, rbErr := t.exec(ctx, "ROLLBACK TO SAVEPOINT authz_consumer_plan"); rbErr != nil {
					return fmt.Errorf("plan %s %s: %w", d.Type, d.Key, rbErr)
				}
				run = plannedRun(*req, StatusFailed, "error", err.Error())
			}
			run.ID, run.DryRun = 0, true
			runs = append(runs, run)
		}
		return errDryRun
	})
	switch {
	case errors.Is(err, errDryRun):
		return runs, nil
	case errors.Is(err, lock.ErrTimeout):
		// The real runs would each record a skipped run.
		runs = nil
		for _, d := range group {
			req := reconcileReq(d)
			req.DryRun = true
			runs = append(runs, plannedRun(req, StatusSkipped, "skip_reason", SkipReason))
		}
		return runs, nil
	}
	return nil, fmt.Errorf("plan reconcile of org %s: %w", org, err)
}

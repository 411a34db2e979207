// Package demo holds the demo dataset (users, courses, legacy course-team
// roles) and writes rows the way Open edX's Django code writes them: a flag
// override save inserts a new row into the append-only override table, as
// ConfigurationModel does. `consumer dev`, `consumer publish`, the tests and
// the benchmarks use it; it works on every dialect of internal/store.
package demo

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/store"
)

// Role is one legacy student_courseaccessrole row. An empty CourseID is an
// org-wide role.
type Role struct {
	Username string
	Org      string
	CourseID string
	Role     string
}

// Orgs and courses of the demo.
const (
	OrgDemo  = "DemoX"
	OrgOther = "OtherU"

	CourseIntro = "course-v1:DemoX+Intro+2024"
	CourseAdv   = "course-v1:DemoX+Adv+2024"
	CourseData  = "course-v1:DemoX+Data+2025"
	CourseBio   = "course-v1:OtherU+Bio+2024"

	// CCXIntro is a CCX of the intro course: its roles never take part.
	CCXIntro = "ccx-v1:DemoX+Intro+2024+ccx@3"
	// OldSlash is an old-style course key: its roles never take part.
	OldSlash = "DemoX/Legacy/2013"
)

// Courses lists the demo's course-v1 courses.
var Courses = []string{CourseIntro, CourseAdv, CourseData, CourseBio}

// Roles is the demo's legacy role set: a few course teams, an org-wide
// staff role, roles that are never migrated (finance_admin, support) and
// roles on keys that are never selected (CCX, old slash key).
var Roles = []Role{
	{"ana", OrgDemo, CourseIntro, "instructor"},
	{"ben", OrgDemo, CourseIntro, "staff"},
	{"chen", OrgDemo, CourseIntro, "limited_staff"},
	{"dara", OrgDemo, CourseIntro, "beta_testers"},
	{"eli", OrgDemo, CourseIntro, "finance_admin"},
	{"ana", OrgDemo, CourseAdv, "instructor"},
	{"fay", OrgDemo, CourseAdv, "staff"},
	{"gus", OrgDemo, CourseAdv, "data_researcher"},
	{"hana", OrgDemo, CourseData, "instructor"},
	{"ivan", OrgDemo, CourseData, "ccx_coach"},
	{"jo", OrgDemo, "", "staff"},
	{"kai", OrgDemo, "", "support"},
	{"lee", OrgDemo, CCXIntro, "staff"},
	{"mo", OrgDemo, OldSlash, "instructor"},
	{"nia", OrgOther, CourseBio, "instructor"},
	{"oto", OrgOther, CourseBio, "staff"},
}

// Admin is the user the demo's override saves are attributed to.
const Admin = "demo_admin"

// Seed writes the demo dataset into a database whose tables exist: the
// watched waffle flag (off for everyone), the users and the legacy roles.
// Rows already there are kept, so Seed may run twice.
func Seed(ctx context.Context, db *store.DB) error {
	if err := EnsureFlag(ctx, db, authz.DefaultFlag); err != nil {
		return err
	}
	if _, err := EnsureUser(ctx, db, Admin); err != nil {
		return err
	}
	// The CMS makes an overview row for each course; CourseData has none yet
	// (its scope stays pending until the course exists, as in openedx-authz).
	for _, k := range []string{CourseIntro, CourseAdv, CourseBio} {
		if err := EnsureOverview(ctx, db, k); err != nil {
			return err
		}
	}
	return AddRoles(ctx, db, Roles...)
}

// EnsureOverview creates the course_overviews_courseoverview row of a course
// unless it exists, with the columns Open edX requires.
func EnsureOverview(ctx context.Context, db *store.DB, courseKey string) error {
	var id string
	err := db.SQL.QueryRowContext(ctx, db.Rebind("SELECT id FROM "+store.CourseOverviewTable+" WHERE id = ?"), courseKey).Scan(&id)
	if err == nil {
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read course overview %s: %w", courseKey, err)
	}
	now := time.Now().UTC()
	_, err = db.SQL.ExecContext(ctx, db.Rebind(`INSERT INTO `+store.CourseOverviewTable+` (created, modified, version, id, _location,
		org, display_name, display_number_with_default, display_org_with_default, course_image_url, visible_to_staff_only,
		invitation_only, self_paced) VALUES (?, ?, 1, ?, '', ?, ?, '', ?, '', ?, ?, ?)`),
		now, now, courseKey, OrgOf(courseKey), courseKey, OrgOf(courseKey), false, false, false)
	if err != nil {
		return fmt.Errorf("create course overview %s: %w", courseKey, err)
	}
	return nil
}

// Team returns a course team of n legacy roles for courseKey, with users
// named <prefix>1..<prefix>n and the mapped roles in turn (for benchmarks
// and the crash harness).
func Team(prefix, courseKey string, n int) []Role {
	org := OrgOf(courseKey)
	roles := []string{"instructor", "staff", "limited_staff", "data_researcher", "beta_testers", "ccx_coach"}
	out := make([]Role, 0, n)
	for i := range n {
		out = append(out, Role{
			Username: fmt.Sprintf("%s%d", prefix, i+1),
			Org:      org,
			CourseID: courseKey,
			Role:     roles[i%len(roles)],
		})
	}
	return out
}

// OrgOf returns the org part of a course-v1 key ("" when key is not one).
func OrgOf(courseKey string) string {
	org, _ := authz.CourseV1Org(courseKey)
	return org
}

// EnsureFlag creates the waffle flag row (everyone NULL: off) unless it exists.
func EnsureFlag(ctx context.Context, db *store.DB, name string) error {
	var id int64
	err := db.SQL.QueryRowContext(ctx, db.Rebind("SELECT id FROM "+store.FlagTable+" WHERE name = ?"), name).Scan(&id)
	if err == nil {
		return nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read waffle flag %s: %w", name, err)
	}
	now := time.Now().UTC()
	_, err = db.SQL.ExecContext(ctx, db.Rebind(`INSERT INTO `+store.FlagTable+`
		(name, everyone, percent, testing, superusers, staff, authenticated, languages, rollout, note, created, modified)
		VALUES (?, NULL, NULL, ?, ?, ?, ?, '', ?, '', ?, ?)`),
		name, false, false, false, false, false, now, now)
	if err != nil {
		return fmt.Errorf("create waffle flag %s: %w", name, err)
	}
	return nil
}

// SetEveryone sets the flag's global state (waffle_flag.everyone): true is
// on for all, nil defers (off). Django emits no event for it, and the
// service never migrates on a global change.
func SetEveryone(ctx context.Context, db *store.DB, name string, everyone *bool) error {
	if err := EnsureFlag(ctx, db, name); err != nil {
		return err
	}
	_, err := db.SQL.ExecContext(ctx, db.Rebind("UPDATE "+store.FlagTable+" SET everyone = ?, modified = ? WHERE name = ?"),
		everyone, time.Now().UTC(), name)
	if err != nil {
		return fmt.Errorf("set waffle flag %s everyone: %w", name, err)
	}
	return nil
}

// EnsureUser returns the id of the auth_user named username, creating it.
func EnsureUser(ctx context.Context, db *store.DB, username string) (int64, error) {
	var id int64
	err := db.SQL.QueryRowContext(ctx, db.Rebind("SELECT id FROM "+store.UserTable+" WHERE username = ?"), username).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("read user %s: %w", username, err)
	}
	id, err = db.InsertID(ctx, db.SQL, store.UserTable,
		[]string{"password", "last_login", "is_superuser", "username", "first_name", "last_name", "email", "is_staff", "is_active", "date_joined"},
		"!", nil, false, username, "", "", username+"@example.com", false, true, time.Now().UTC())
	if err != nil {
		return 0, fmt.Errorf("create user %s: %w", username, err)
	}
	return id, nil
}

// AddRoles writes legacy roles (creating their users); a role that exists
// is kept.
func AddRoles(ctx context.Context, db *store.DB, roles ...Role) error {
	users := map[string]int64{}
	for _, r := range roles {
		uid, ok := users[r.Username]
		if !ok {
			var err error
			if uid, err = EnsureUser(ctx, db, r.Username); err != nil {
				return err
			}
			users[r.Username] = uid
		}
		var n int
		err := db.SQL.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM `+store.LegacyRoleTable+`
			WHERE user_id = ? AND org = ? AND course_id = ? AND role = ?`), uid, r.Org, r.CourseID, r.Role).Scan(&n)
		if err != nil {
			return fmt.Errorf("read role %v: %w", r, err)
		}
		if n > 0 {
			continue
		}
		_, err = db.SQL.ExecContext(ctx, db.Rebind(`INSERT INTO `+store.LegacyRoleTable+` (org, course_id, role, user_id)
			VALUES (?, ?, ?, ?)`), r.Org, r.CourseID, r.Role, uid)
		if err != nil {
			return fmt.Errorf("add role %v: %w", r, err)
		}
	}
	return nil
}

// Override is one save of a course or org override of a waffle flag: the
// fields of the flag-change event and of the override row.
type Override struct {
	ID         int64 // the row id (record_id), set by Save
	Flag       string
	ScopeType  string // "course" or "org"
	ScopeKey   string // course key, or org short name
	Org        string // the scope's org (derived when empty)
	Enabled    bool
	Choice     string // "on" or "off"
	ChangeDate time.Time
	ChangedBy  string // username, may be empty
	Note       string
}

// Save inserts o as the newest override row of its scope, as Django's
// ConfigurationModel.save does, and returns it with its id and change date
// (now, in UTC, unless set). An Org left empty is derived from the key.
func Save(ctx context.Context, db *store.DB, o Override) (Override, error) {
	var table, keyCol string
	switch o.ScopeType {
	case "course":
		table, keyCol = store.CourseOverrideTable, "course_id"
		if o.Org == "" {
			o.Org = OrgOf(o.ScopeKey)
		}
	case "org":
		table, keyCol = store.OrgOverrideTable, "org"
		if o.Org == "" {
			o.Org = o.ScopeKey
		}
	default:
		return o, fmt.Errorf("save override of %s: scope type %q is neither course nor org", o.ScopeKey, o.ScopeType)
	}
	if o.Flag == "" {
		o.Flag = authz.DefaultFlag
	}
	if o.ChangeDate.IsZero() {
		o.ChangeDate = time.Now().UTC()
	}
	o.ChangeDate = o.ChangeDate.UTC()
	var changedBy any
	if o.ChangedBy != "" {
		uid, err := EnsureUser(ctx, db, o.ChangedBy)
		if err != nil {
			return o, err
		}
		changedBy = uid
	}
	id, err := db.InsertID(ctx, db.SQL, table, []string{"change_date", "enabled", "waffle_flag", keyCol, "override_choice", "note", "changed_by_id"},
		o.ChangeDate, o.Enabled, o.Flag, o.ScopeKey, o.Choice, o.Note, changedBy)
	if err != nil {
		return o, fmt.Errorf("save %s override of %s: %w", o.ScopeType, o.ScopeKey, err)
	}
	o.ID = id
	return o, nil
}

// Event is the payload of the event that announces this save.
func (o Override) Event() events.Override {
	return events.Override{
		WaffleFlag:     o.Flag,
		ScopeType:      o.ScopeType,
		ScopeKey:       o.ScopeKey,
		Org:            o.Org,
		Enabled:        o.Enabled,
		OverrideChoice: o.Choice,
		RecordID:       o.ID,
		ChangeDate:     o.ChangeDate,
		ChangedBy:      o.ChangedBy,
	}
}

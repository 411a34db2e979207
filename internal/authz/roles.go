package authz

import (
	"fmt"
	"regexp"
	"strings"
)

// Namespaces of openedx-authz keys: a subject is user^<username>, a role
// role^<authz role>, a course scope course-v1^<course key>.
const (
	UserNS   = "user^"
	RoleNS   = "role^"
	CourseNS = "course-v1^"
)

// CourseV1Prefix starts every course-v1 key; openedx-authz selects legacy
// rows by it (or by an empty course key, for org-wide roles).
const CourseV1Prefix = "course-v1:"

// legacyToAuthz is the one-to-one role mapping; it is used in reverse for
// rollback. Other legacy roles are never migrated.
var legacyToAuthz = map[string]string{
	"instructor":      "course_admin",
	"staff":           "course_staff",
	"limited_staff":   "course_limited_staff",
	"data_researcher": "course_data_researcher",
	"beta_testers":    "course_beta_tester",
	"ccx_coach":       "ccx_coach",
}

var authzToLegacy = func() map[string]string {
	m := make(map[string]string, len(legacyToAuthz))
	for l, a := range legacyToAuthz {
		m[a] = l
	}
	return m
}()

// LegacyRoles lists the legacy roles that take part, in a stable order.
var LegacyRoles = []string{"instructor", "staff", "limited_staff", "data_researcher", "beta_testers", "ccx_coach"}

// AuthzRole maps a legacy role; ok is false for roles that are never migrated.
func AuthzRole(legacy string) (string, bool) { a, ok := legacyToAuthz[legacy]; return a, ok }

// LegacyRole maps an authz role back; ok is false when it has no legacy equivalent.
func LegacyRole(authz string) (string, bool) { l, ok := authzToLegacy[authz]; return l, ok }

// globOrg is what openedx-authz accepts as the org of an org-wide scope
// (OrgGlobData.ORG_NAME_VALID_PATTERN): narrower than a course key's org.
var globOrg = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// GlobOrgProblem says why openedx-authz cannot hold an org-wide scope for
// org, or "" when it can.
func GlobOrgProblem(org string) string {
	if globOrg.MatchString(org) {
		return ""
	}
	return fmt.Sprintf("openedx-authz cannot hold an org-wide scope for org '%s': its org globs allow only ASCII letters, digits, '.', '_' and '-'; the row stays", org)
}

// OrgGlob is the external key of an org-wide scope: course-v1:<org>+*.
func OrgGlob(org string) string { return CourseV1Prefix + org + "+*" }

// IsGlob tells an org-wide scope.
func IsGlob(scope string) bool { return strings.HasSuffix(scope, "+*") }

// ScopeOf is the scope external key of a legacy row, as openedx-authz
// derives it: the course key when there is one (course_id wins over org),
// else the org glob. ok is false for a row with neither.
func ScopeOf(org, courseID string) (string, bool) {
	switch {
	case courseID != "":
		return courseID, true
	case org != "":
		return OrgGlob(org), true
	}
	return "", false
}

// ScopeOrg is the org of a course scope or org glob external key, as
// openedx-authz's scope data parses it; ok is false for anything else.
func ScopeOrg(scope string) (org string, glob, ok bool) {
	if strings.HasPrefix(scope, CourseV1Prefix) && IsGlob(scope) {
		org = strings.TrimSuffix(strings.TrimPrefix(scope, CourseV1Prefix), "+*")
		return org, true, ValidOrg(org) == nil
	}
	org, err := CourseV1Org(scope)
	return org, false, err == nil
}

// RuleKey is the extended rule key openedx-authz writes: ptype,v0,v1,v2,v3.
func RuleKey(subject, role, scope string) string {
	return "g," + subject + "," + role + "," + scope + ","
}

// MaxColumn is the width of every policy and key column (varchar 255).
const MaxColumn = 255

// TooLong says why an assignment cannot be stored without truncation, or "".
func TooLong(subject, role, scope string) string {
	if k := RuleKey(subject, role, scope); len([]rune(k)) > MaxColumn {
		return fmt.Sprintf("assignment key is %d characters, longer than the %d the Open edX columns hold; not migrated rather than truncated", len([]rune(k)), MaxColumn)
	}
	return ""
}

package migrator

import (
	"fmt"
	"regexp"
	"strings"
)

// Namespaces of openedx-authz keys (SPEC 3).
const (
	userNS   = "user^"
	roleNS   = "role^"
	courseNS = "course-v1^"
)

// legacyToAuthz is the one-to-one role mapping of SPEC 3.
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

// courseKeyRE matches a course-v1 key: course-v1:ORG+COURSE+RUN, the
// characters opaque-keys allows in each part.
var courseKeyRE = regexp.MustCompile(`^course-v1:([\w\-~.:%]+)\+([\w\-~.:%]+)\+([\w\-~.:%]+)$`)

// orgRE is what an org short name may hold (opaque-keys' allowed characters).
var orgRE = regexp.MustCompile(`^[\w\-~.:%]+$`)

// CourseOrg returns the org of a course-v1 key, or an error naming the key.
func CourseOrg(key string) (string, error) {
	m := courseKeyRE.FindStringSubmatch(key)
	if m == nil {
		return "", fmt.Errorf("%q is not a course-v1 course key (course-v1:ORG+COURSE+RUN)", key)
	}
	return m[1], nil
}

// ValidOrg checks an org short name.
func ValidOrg(org string) error {
	if !orgRE.MatchString(org) || len(org) > 64 {
		return fmt.Errorf("%q is not a valid org short name", org)
	}
	return nil
}

// orgGlob is the external key of an org-wide scope.
func orgGlob(org string) string { return "course-v1:" + org + "+*" }

// scopeOf is the scope external key of a legacy row: its course key, or the
// org glob for an org-wide row (empty course key).
func scopeOf(org, courseID string) (string, bool) {
	switch {
	case courseID == "" && org != "":
		return orgGlob(org), true
	case strings.HasPrefix(courseID, "course-v1:"):
		return courseID, true
	}
	return "", false
}

// legacyOf turns a scope external key back into a legacy (org, course_id).
func legacyOf(scope string) (org, courseID string, ok bool) {
	if strings.HasPrefix(scope, "course-v1:") && strings.HasSuffix(scope, "+*") {
		org = strings.TrimSuffix(strings.TrimPrefix(scope, "course-v1:"), "+*")
		return org, "", org != "" && !strings.Contains(org, "+")
	}
	org, err := CourseOrg(scope)
	if err != nil {
		return "", "", false
	}
	return org, scope, true
}

// isGlob tells an org-wide scope.
func isGlob(scope string) bool { return strings.HasSuffix(scope, "+*") }

// ruleKey is the extended rule key openedx-authz writes: ptype,v0,v1,v2,v3.
func ruleKey(subject, role, scope string) string {
	return "g," + subject + "," + role + "," + scope + ","
}

// maxColumn is the width of every policy and key column (varchar 255).
const maxColumn = 255

// tooLong says why an assignment cannot be stored without truncation, or "".
func tooLong(subject, role, scope string) string {
	if k := ruleKey(subject, role, scope); len([]rune(k)) > maxColumn {
		return fmt.Sprintf("assignment key is %d characters, longer than the %d the Open edX columns hold; not migrated rather than truncated", len([]rune(k)), maxColumn)
	}
	return ""
}

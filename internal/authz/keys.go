// Package authz is the domain of the migration, with no I/O: course keys
// (one grammar, the one edx-opaque-keys defines), org short names, the
// openedx-authz key namespaces and the legacy <-> authz role mapping.
// Everything that reads or checks a key, from the event decoder to the
// engine's SQL selection, goes through here.
package authz

import (
	"fmt"
	"regexp"
	"strings"
)

// KeyKind tells what kind of scope key an override names.
type KeyKind string

// Key kinds. The course kinds are the course-key types of
// edx-opaque-keys/ccx-keys that a course waffle override can name.
const (
	KeyOrg       KeyKind = "org"
	KeyCourseV1  KeyKind = "course-v1"
	KeyCCX       KeyKind = "ccx-v1"
	KeyLibraryV1 KeyKind = "library-v1"
	KeySlash     KeyKind = "slash" // deprecated Org/Course/Run
)

// CourseKey is a parsed course key.
type CourseKey struct {
	Kind   KeyKind
	Org    string
	Course string // library name for library-v1
	Run    string // empty for library-v1
}

// idPart is opaque-keys' ALLOWED_ID_CHARS, [\w\-~.:] compiled with
// re.UNICODE. Python's Unicode \w is what str.isalnum() accepts plus '_':
// letters and numbers, not combining marks.
var idPart = regexp.MustCompile(`^[\p{L}\p{N}_\-~.:]+$`)

// deprecatedPart is the character set of old slash-separated keys
// (opaque-keys' INVALID_CHARS_DEPRECATED negated: [\w.%-]).
var deprecatedPart = regexp.MustCompile(`^[\p{L}\p{N}_.%\-]+$`)

var ccxPart = regexp.MustCompile(`^ccx@[0-9]+$`)

// ParseCourseKey parses the course-key forms a course override can carry:
// course-v1:ORG+COURSE+RUN, ccx-v1:ORG+COURSE+RUN+ccx@N,
// library-v1:ORG+LIBRARY and the deprecated ORG/COURSE/RUN. Keys with a
// branch or version part are rejected: no override names one.
func ParseCourseKey(s string) (CourseKey, error) {
	prefix, rest, hasPrefix := strings.Cut(s, ":")
	if !hasPrefix || strings.Contains(prefix, "/") {
		return parseSlashKey(s)
	}
	parts := strings.Split(rest, "+")
	for _, p := range parts {
		if p == "" {
			return CourseKey{}, fmt.Errorf("course key %q: empty part", s)
		}
	}
	bad := func(what string) (CourseKey, error) {
		return CourseKey{}, fmt.Errorf("course key %q: %s", s, what)
	}
	checkID := func(ps ...string) bool {
		for _, p := range ps {
			if !idPart.MatchString(p) {
				return false
			}
		}
		return true
	}
	switch prefix {
	case "course-v1":
		if len(parts) != 3 {
			return bad("want course-v1:ORG+COURSE+RUN")
		}
		if !checkID(parts...) {
			return bad("invalid characters")
		}
		return CourseKey{Kind: KeyCourseV1, Org: parts[0], Course: parts[1], Run: parts[2]}, nil
	case "ccx-v1":
		if len(parts) != 4 || !ccxPart.MatchString(parts[3]) {
			return bad("want ccx-v1:ORG+COURSE+RUN+ccx@N")
		}
		if !checkID(parts[:3]...) {
			return bad("invalid characters")
		}
		return CourseKey{Kind: KeyCCX, Org: parts[0], Course: parts[1], Run: parts[2]}, nil
	case "library-v1":
		if len(parts) != 2 {
			return bad("want library-v1:ORG+LIBRARY")
		}
		if !checkID(parts...) {
			return bad("invalid characters")
		}
		return CourseKey{Kind: KeyLibraryV1, Org: parts[0], Course: parts[1]}, nil
	default:
		return bad("unknown key type " + prefix)
	}
}

func parseSlashKey(s string) (CourseKey, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return CourseKey{}, fmt.Errorf("course key %q: not a course key", s)
	}
	for _, p := range parts {
		if !deprecatedPart.MatchString(p) {
			return CourseKey{}, fmt.Errorf("course key %q: invalid characters", s)
		}
	}
	return CourseKey{Kind: KeySlash, Org: parts[0], Course: parts[1], Run: parts[2]}, nil
}

// CourseV1Org returns the org of a course-v1 key, or an error naming the key.
func CourseV1Org(key string) (string, error) {
	k, err := ParseCourseKey(key)
	if err != nil || k.Kind != KeyCourseV1 {
		return "", fmt.Errorf("%q is not a course-v1 course key (course-v1:ORG+COURSE+RUN)", key)
	}
	return k.Org, nil
}

// MaxOrgLen is the width of student_courseaccessrole.org.
const MaxOrgLen = 64

// ValidOrg checks an org short name: one course-key part, as a course-v1
// key could carry it, that fits the legacy table's org column.
func ValidOrg(org string) error {
	if !idPart.MatchString(org) || len([]rune(org)) > MaxOrgLen {
		return fmt.Errorf("%q is not a valid org short name", org)
	}
	return nil
}

// FoldOrg is the case-folded org that names its advisory lock: Open edX's
// MySQL compares orgs case-insensitively, so two spellings of one org
// select the same rows and must serialize on one lock.
func FoldOrg(org string) string { return strings.ToLower(strings.ToUpper(org)) }

package events

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

// idPart is opaque-keys' ALLOWED_ID_CHARS ([\w\-~.:] with re.UNICODE);
// Python's Unicode \w is approximated by letters, marks, numbers and '_'.
var idPart = regexp.MustCompile(`^[\p{L}\p{M}\p{N}_\-~.:]+$`)

// deprecatedPart is the character set of old slash-separated keys.
var deprecatedPart = regexp.MustCompile(`^[\p{L}\p{M}\p{N}_.%\-]+$`)

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

// validOrg reports whether org can be an organization short name that a
// course-v1 key could carry.
func validOrg(org string) bool {
	return idPart.MatchString(org)
}

package authz

// DefaultFlag is the waffle flag the service watches unless told otherwise:
// the one openedx-authz reads to decide whether a course's authoring roles
// live in its policy table.
const DefaultFlag = "authz.enable_course_authoring"

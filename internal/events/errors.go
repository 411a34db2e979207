package events

import (
	"errors"
	"fmt"
)

// ErrMalformed is matched (errors.Is) by every error that means "this
// message can never be decoded as a valid event": park it with its reason
// and move on. The concrete error is a *MalformedError.
var ErrMalformed = errors.New("malformed event")

// ErrTransient is matched by errors that may go away on retry (the schema
// registry unreachable, answering 5xx, or misconfigured): retry the same
// message with backoff, do not commit its offset, do not park it.
var ErrTransient = errors.New("transient failure")

// ErrSchemaNotFound is what a SchemaSource returns (wrapped) when the
// registry says it does not know a schema id. The Decoder turns it into a
// MalformedError with reason unknown_schema_id.
var ErrSchemaNotFound = errors.New("schema not found")

// Reasons of a MalformedError. They are stable codes: they are stored with
// parked messages, used as metric labels, and checked by the shared test
// vectors (schemas/testdata/vectors.json).
const (
	ReasonFraming            = "framing"             // no value, or not magic byte 0 + 4-byte schema id
	ReasonBadContentType     = "bad_content_type"    // content-type neither Avro nor JSON
	ReasonUnknownSchemaID    = "unknown_schema_id"   // the registry answered 40403 for the id
	ReasonUnresolvableSchema = "unresolvable_schema" // writer schema unparseable, lacking a field, or incompatible
	ReasonBadAvro            = "bad_avro"            // bytes do not decode with the writer schema
	ReasonBadJSON            = "bad_json"            // JSON value unparseable or a field of the wrong type
	ReasonMissingField       = "missing_field"       // JSON form: a required field absent; any form: empty waffle_flag
	ReasonBadCEType          = "bad_ce_type"         // ce_type missing, not "<type>.v<N>", or unknown major
	ReasonUnknownEventType   = "unknown_event_type"  // ce_type names another event type
	ReasonBadScopeType       = "bad_scope_type"      // scope_type not course or org
	ReasonBadCourseKey       = "bad_course_key"      // course scope_key is not a course key
	ReasonBadOrg             = "bad_org"             // org scope with an empty or invalid org
	ReasonScopeOrgMismatch   = "scope_org_mismatch"  // scope_key and org disagree
	ReasonBadRecordID        = "bad_record_id"       // record_id <= 0
	ReasonBadChangeDate      = "bad_change_date"     // change_date not ISO 8601
	ReasonBadString          = "bad_string"          // a string field with invalid UTF-8 or a NUL byte
)

// MalformedError says why a message is not a valid event.
type MalformedError struct {
	Reason string // one of the Reason* codes
	Detail string // human-readable specifics (field name, parser message)
}

func (e *MalformedError) Error() string {
	if e.Detail == "" {
		return "malformed event: " + e.Reason
	}
	return "malformed event: " + e.Reason + ": " + e.Detail
}

// Is makes errors.Is(err, ErrMalformed) true for every MalformedError.
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

func malformed(reason, format string, args ...any) *MalformedError {
	return &MalformedError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Reason returns the MalformedError reason carried by err, or "" when err
// is not a malformed-event error.
func Reason(err error) string {
	var me *MalformedError
	if errors.As(err, &me) {
		return me.Reason
	}
	return ""
}

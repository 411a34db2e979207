package events

import (
	"encoding/binary"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"authz-flag-consumer/internal/authz"
)

// Event type and naming.
const (
	// EventTypeBase is the ce_type without its ".v<major>" suffix.
	EventTypeBase = "org.openedx.platform.waffle_flag_override.changed"
	// EventTypeV1 is the only major version this consumer understands.
	EventTypeV1 = EventTypeBase + ".v1"
)

// Headers of an event's message that this package reads and writes, as
// edx-event-bus-kafka sets them.
const (
	HeaderID          = "ce_id" // the event's UUID, its idempotency key
	HeaderType        = "ce_type"
	HeaderContentType = "content-type"
)

// Scope types.
const (
	ScopeCourse = "course"
	ScopeOrg    = "org"
)

// Header is one Kafka record header. Its shape is the one kafka-go and
// franz-go use, so their headers convert with a plain type conversion.
type Header struct {
	Key   string
	Value []byte
}

// Message is a Kafka record as the decoder needs it, independent of the
// Kafka client.
type Message struct {
	Topic     string
	Partition int
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Time      time.Time
}

// Header returns the value of the last header named key (as
// edx-event-bus-kafka reads headers) and whether there was one.
func (m Message) Header(key string) (string, bool) {
	for i := len(m.Headers) - 1; i >= 0; i-- {
		if m.Headers[i].Key == key {
			return string(m.Headers[i].Value), true
		}
	}
	return "", false
}

// Event is a decoded, validated waffle-flag-override-changed event.
type Event struct {
	// ID is the idempotency key: ce_id when present, else
	// "<topic>/<partition>/<offset>".
	ID           string
	Type         string    // ce_type, e.g. EventTypeV1
	MinorVersion int       // ce_minorversion, 0 when absent or not a number
	Source       string    // ce_source
	Time         time.Time // ce_time; the record timestamp when absent or unparseable
	SchemaID     int       // writer schema id; 0 for JSON values
	Override     Override
}

// Override is the payload: the override row that was saved.
type Override struct {
	WaffleFlag     string
	ScopeType      string // ScopeCourse or ScopeOrg
	ScopeKey       string // course key, or the org short name for org scopes
	Org            string
	Enabled        bool
	OverrideChoice string // "on" / "off"; anything else defers, so it is not validated
	RecordID       int64
	ChangeDate     time.Time // UTC
	ChangedBy      string
	// KeyKind is authz.KeyOrg for org scopes and the course key's kind for course
	// scopes. Only authz.KeyOrg and authz.KeyCourseV1 take part in migrations.
	KeyKind authz.KeyKind
}

// KeySupported reports whether the override's scope can take part in a
// migration: an org, or a course-v1 course. Overrides of other valid course
// key types (CCX, library-v1, old slash keys) are well-formed events that
// the consumer acknowledges and ignores.
func (o Override) KeySupported() bool {
	return o.KeyKind == authz.KeyOrg || o.KeyKind == authz.KeyCourseV1
}

// ValueRecordName is the full name of the value record; with
// TopicRecordNameStrategy it names the value subject.
const ValueRecordName = EventTypeV1 + ".CloudEvent"

// KeySubject is the registry subject of the key schema on topic.
// confluent-kafka-python's AvroSerializer with
// topic_record_subject_name_strategy names a primitive schema after its
// type, so the key schema {"name": "scope_key", "type": "string"} that
// edx-event-bus-kafka extracts is registered as "<topic>-string".
func KeySubject(topic string) string { return topic + "-string" }

// ValueSubject is the registry subject of the value schema on topic:
// "<topic>-org.openedx.platform.waffle_flag_override.changed.v1.CloudEvent".
func ValueSubject(topic string) string { return topic + "-" + ValueRecordName }

// KeyText is a message key as logs show it: the scope key itself, whether
// the key is Confluent-framed Avro (magic byte, schema id, Avro string) or
// raw text (the JSON form). A key that is neither is shown quoted, with its
// bytes escaped.
func KeyText(key []byte) string {
	if len(key) > 5 && key[0] == 0 {
		if s, ok := avroString(key[5:]); ok {
			return s
		}
	}
	if utf8.Valid(key) && !strings.ContainsFunc(string(key), func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return string(key)
	}
	return strconv.Quote(string(key))
}

// avroString decodes b as exactly one Avro string: a zigzag varint length,
// then that many bytes of UTF-8.
func avroString(b []byte) (string, bool) {
	u, n := binary.Uvarint(b)
	if n <= 0 {
		return "", false
	}
	l := int64(u>>1) ^ -int64(u&1)
	if l < 0 || int64(len(b)-n) != l || !utf8.Valid(b[n:]) {
		return "", false
	}
	return string(b[n:]), true
}

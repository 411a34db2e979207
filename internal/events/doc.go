// Package events is the wire format of the waffle-flag-override-changed
// event: it turns a Kafka record (Message, free of any Kafka client
// type) into a validated Event, or says precisely why it cannot, and it
// encodes events the way Open edX's edx-event-bus-kafka does for `consumer
// publish`, the dev demo and tests. It knows nothing of databases or of the
// consumer loop.
//
// Decoding (Decoder.Decode):
//   - ce_type is checked first, before any registry call. It must be
//     "org.openedx.platform.waffle_flag_override.changed.v<major>" with
//     major 1. Another major, a missing or garbled ce_type: reason
//     bad_ce_type. Another event type on the topic: reason
//     unknown_event_type. Both are malformed, so they are parked with their
//     reason (a malformed or unknown event is parked); there is no
//     separate "ignorable" error class. What the consumer ignores instead of
//     parking is a well-formed event it does not act on (another flag, a
//     non-course-v1 course key): see Override.KeySupported.
//   - content-type (else ce_datacontenttype) selects the form:
//     application/json is the registry-free JSON form {"override": {...}};
//     application/avro or no header is the Confluent framing (magic 0,
//     4-byte big-endian schema id, Avro binary). Anything else is
//     bad_content_type.
//   - The writer schema is fetched by id from a SchemaSource and resolved
//     against our reader schema (schemas/…value.avsc) with hamba/avro's
//     schema resolution, so writers that add, reorder or promote fields
//     (int record_id) decode. A writer lacking a field our reader needs, or
//     otherwise incompatible, is unresolvable_schema (the detail names the
//     missing field); missing_field is for the JSON form, where fields are
//     not guaranteed by a schema.
//     Resolved schemas (and deterministic failures) are cached per id for
//     the Decoder's life; ids are immutable in a schema registry.
//   - The key is not decoded: the scope comes from the payload, and the key
//     only matters for partitioning.
//   - Repeated headers: the last one wins, as in edx-event-bus-kafka's
//     last_message_header_value.
//   - Event.ID (the idempotency key) is ce_id, else topic/partition/offset.
//
// Validation, each failure a MalformedError with a stable Reason code:
// required fields present (missing_field; an empty waffle_flag counts as
// missing), strings valid UTF-8 without NUL (bad_string: a database would
// refuse them and retrying forever would block the partition), scope_type
// course or org (bad_scope_type), a course scope_key that parses as a course
// key of ≤255 bytes (bad_course_key), an org scope_key that is a valid org
// short name of ≤64 bytes (bad_org), scope_key and org agreeing
// (scope_org_mismatch: the course key's org equals org; for org scopes
// scope_key equals org), record_id > 0 (bad_record_id), change_date in ISO
// 8601 (bad_change_date; "+00:00" and "Z" forms, optional fraction, naive
// times taken as UTC). override_choice is not validated: any
// value but on or off defers to the next level. Course keys of type ccx-v1,
// library-v1 and old Org/Course/Run slash keys are valid (KeyKind tells
// them apart) but not KeySupported; a string that is no course key at all
// is malformed.
//
// Error classes: errors.Is(err, ErrMalformed) means park, never retry;
// errors.Is(err, ErrTransient) means retry with backoff without committing.
// The registry being unreachable, answering 5xx, 401/403, or a 404 that is
// not its "schema not found" (error_code 40403: a 404 without it is a wrong
// URL or proxy) is transient; only 40403 makes unknown_schema_id. A Decoder
// without a SchemaSource treats Avro values as transient too: missing
// configuration must not park good events.
//
// Why our own small RegistryClient rather than hamba/avro's registry.Client
// (which does cache schemas by id): hamba's GetSchema parses into the
// process-wide avro.DefaultSchemaCache, so a name defined by one writer
// schema silently satisfies a reference in the next, and its errors do not
// separate "the registry sent a schema we cannot parse" (malformed) from
// "the answer was not a registry answer" (transient). Our client parses
// nothing; the Decoder parses each writer schema with a fresh name cache
// and caches the resolved result. The registry server used in tests and
// the demo (internal/registry) is checked against hamba's client as well.
//
// Encoding (Encoder) mirrors edx-event-bus-kafka 6.x: the value schema is
// registered under "<topic>-<record full name>" and the key schema (the
// override.scope_key field, {"name": "scope_key", "type": "string"}) under
// "<topic>-string", which is what confluent-kafka-python's AvroSerializer
// with topic_record_subject_name_strategy names a primitive schema. Headers
// are ce_specversion 1.0, content-type and ce_datacontenttype
// application/avro, ce_type, ce_id (UUID v1), ce_source, ce_time
// (isoformat), ce_minorversion, sourcehost, sourcelib, in that order.
// Partition reproduces librdkafka's consistent_random partitioner so that
// our `publish` puts a scope's events on the partition the Open edX
// producer would.
package events

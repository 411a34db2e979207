package events

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hamba/avro/v2"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/eventid"
	"authz-flag-consumer/schemas"
)

// avroAPI bounds what a hostile length prefix can make the decoder allocate.
var avroAPI = avro.Config{MaxByteSliceSize: 1 << 20, MaxSliceAllocSize: 1 << 16}.Freeze()

// valueSchema is our reader schema, parsed once with a private name cache
// (never hamba's process-wide DefaultSchemaCache).
var valueSchema = mustParse(schemas.WaffleFlagOverrideChangedV1Value)

func mustParse(b []byte) avro.Schema {
	s, err := avro.ParseBytesWithCache(b, "", &avro.SchemaCache{})
	if err != nil {
		panic(fmt.Sprintf("embedded schema: %v", err))
	}
	return s
}

// avroValue mirrors the value record; fields a writer adds are skipped by
// schema resolution.
type avroValue struct {
	Override avroOverride `avro:"override"`
}

type avroOverride struct {
	WaffleFlag     string `avro:"waffle_flag"`
	ScopeType      string `avro:"scope_type"`
	ScopeKey       string `avro:"scope_key"`
	Org            string `avro:"org"`
	Enabled        bool   `avro:"enabled"`
	OverrideChoice string `avro:"override_choice"`
	RecordID       int64  `avro:"record_id"`
	ChangeDate     string `avro:"change_date"`
	ChangedBy      string `avro:"changed_by"`
}

// Decoder turns Kafka messages into validated Events. Build it with
// NewDecoder; it is safe for concurrent use.
type Decoder struct {
	src    SchemaSource
	compat *avro.SchemaCompatibility

	mu   sync.Mutex
	byID map[int]writerEntry
}

// writerEntry is the cached outcome for one writer schema id: the schema
// resolved against ours, or why it cannot be. Only deterministic outcomes
// are cached; "not found" and transient failures are asked again.
type writerEntry struct {
	resolved avro.Schema
	err      *MalformedError
}

// NewDecoder returns a Decoder fetching writer schemas from src. src may be
// nil when only JSON values are expected; an Avro value then fails with a
// transient error (a configuration problem must not park good events).
func NewDecoder(src SchemaSource) *Decoder {
	return &Decoder{src: src, compat: avro.NewSchemaCompatibility(), byID: map[int]writerEntry{}}
}

var ceTypeRe = regexp.MustCompile(`^(.+)\.v([0-9]+)$`)

// Decode decodes and validates m. Errors:
//   - errors.Is(err, ErrMalformed): park m with Reason(err); never retry;
//   - errors.Is(err, ErrTransient): retry m later (it also matches the
//     context error when ctx was cancelled).
//
// No other kinds are returned. On error the Event still carries what was
// read before the failure (ID, and Type/Source/Time once ce_type passed),
// for parking and logs.
func (d *Decoder) Decode(ctx context.Context, m Message) (Event, error) {
	ev := Event{ID: eventid.Format(m.Topic, m.Partition, m.Offset), Time: m.Time}
	if id, ok := m.Header(HeaderID); ok && id != "" {
		ev.ID = id
	}
	ceType, ok := m.Header(HeaderType)
	if !ok || ceType == "" {
		return ev, malformed(ReasonBadCEType, "no ce_type header")
	}
	ev.Type = ceType
	match := ceTypeRe.FindStringSubmatch(ceType)
	if match == nil {
		if strings.HasPrefix(ceType, EventTypeBase) {
			return ev, malformed(ReasonBadCEType, "ce_type %q has no .v<major> suffix", ceType)
		}
		return ev, malformed(ReasonUnknownEventType, "ce_type %q", ceType)
	}
	if match[1] != EventTypeBase {
		return ev, malformed(ReasonUnknownEventType, "ce_type %q", ceType)
	}
	if match[2] != "1" {
		return ev, malformed(ReasonBadCEType, "ce_type %q: unknown major version", ceType)
	}
	ev.Source, _ = m.Header("ce_source")
	if v, ok := m.Header("ce_minorversion"); ok {
		ev.MinorVersion, _ = strconv.Atoi(v)
	}
	if v, ok := m.Header("ce_time"); ok {
		if t, err := ParseTime(v); err == nil {
			ev.Time = t
		}
	}

	ct, ok := m.Header(HeaderContentType)
	if !ok {
		ct, _ = m.Header("ce_datacontenttype")
	}
	var raw rawOverride
	var err error
	switch mediaType(ct) {
	case "application/json":
		raw, err = decodeJSON(m.Value)
	case "", "application/avro", "avro/binary":
		raw, ev.SchemaID, err = d.decodeAvro(ctx, m.Value)
	default:
		return ev, malformed(ReasonBadContentType, "content-type %q", ct)
	}
	if err != nil {
		return ev, err
	}
	ev.Override, err = raw.validate()
	return ev, err
}

func mediaType(ct string) string {
	if strings.TrimSpace(ct) == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "invalid"
	}
	return mt
}

func (d *Decoder) decodeAvro(ctx context.Context, value []byte) (rawOverride, int, error) {
	if len(value) < 5 {
		return rawOverride{}, 0, malformed(ReasonFraming, "value of %d bytes is shorter than the 5-byte header", len(value))
	}
	if value[0] != 0 {
		return rawOverride{}, 0, malformed(ReasonFraming, "magic byte %d, want 0", value[0])
	}
	id := int(binary.BigEndian.Uint32(value[1:5]))
	schema, err := d.writer(ctx, id)
	if err != nil {
		return rawOverride{}, id, err
	}
	var v avroValue
	if err := avroAPI.Unmarshal(schema, value[5:], &v); err != nil {
		return rawOverride{}, id, malformed(ReasonBadAvro, "schema id %d: %v", id, err)
	}
	o := v.Override
	raw := rawOverride{
		WaffleFlag: &o.WaffleFlag, ScopeType: &o.ScopeType, ScopeKey: &o.ScopeKey, Org: &o.Org,
		Enabled: &o.Enabled, OverrideChoice: &o.OverrideChoice, RecordID: &o.RecordID,
		ChangeDate: &o.ChangeDate, ChangedBy: &o.ChangedBy,
	}
	return raw, id, nil
}

// writer returns the writer schema of id resolved against ours.
func (d *Decoder) writer(ctx context.Context, id int) (avro.Schema, error) {
	d.mu.Lock()
	e, ok := d.byID[id]
	d.mu.Unlock()
	if ok {
		if e.err != nil {
			return nil, e.err
		}
		return e.resolved, nil
	}
	if d.src == nil {
		return nil, fmt.Errorf("schema id %d: %w: no schema registry configured", id, ErrTransient)
	}
	text, err := d.src.SchemaByID(ctx, id)
	if errors.Is(err, ErrSchemaNotFound) {
		return nil, malformed(ReasonUnknownSchemaID, "schema id %d: %v", id, err)
	}
	if err != nil {
		return nil, fmt.Errorf("fetch writer schema %d: %w: %w", id, ErrTransient, err)
	}
	e = d.resolve(id, text)
	d.mu.Lock()
	d.byID[id] = e
	d.mu.Unlock()
	if e.err != nil {
		return nil, e.err
	}
	return e.resolved, nil
}

func (d *Decoder) resolve(id int, text string) writerEntry {
	w, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
	if err != nil {
		return writerEntry{err: malformed(ReasonUnresolvableSchema, "schema id %d does not parse: %v", id, err)}
	}
	if name := missingField(valueSchema, w, ""); name != "" {
		// Reported as a resolution failure (as the shared vectors expect),
		// with the field named so an operator sees what the producer dropped.
		return writerEntry{err: malformed(ReasonUnresolvableSchema, "schema id %d has no field %s", id, name)}
	}
	resolved, err := d.compat.Resolve(valueSchema, w)
	if err != nil {
		return writerEntry{err: malformed(ReasonUnresolvableSchema, "schema id %d: %v", id, err)}
	}
	return writerEntry{resolved: resolved}
}

// missingField returns the dotted path of the first field of reader (with
// no default) that writer lacks, descending into nested records; "" when
// none is missing or the schemas are not both records (Resolve reports those).
func missingField(reader, writer avro.Schema, path string) string {
	r, ok1 := deref(reader).(*avro.RecordSchema)
	w, ok2 := deref(writer).(*avro.RecordSchema)
	if !ok1 || !ok2 {
		return ""
	}
	for _, rf := range r.Fields() {
		var wf *avro.Field
		for _, f := range w.Fields() {
			if f.Name() == rf.Name() || slices.Contains(rf.Aliases(), f.Name()) {
				wf = f
				break
			}
		}
		if wf == nil {
			if rf.HasDefault() {
				continue
			}
			return path + rf.Name()
		}
		if m := missingField(rf.Type(), wf.Type(), path+rf.Name()+"."); m != "" {
			return m
		}
	}
	return ""
}

func deref(s avro.Schema) avro.Schema {
	if ref, ok := s.(*avro.RefSchema); ok {
		return ref.Schema()
	}
	return s
}

type jsonValue struct {
	Override *rawOverride `json:"override"`
}

// rawOverride is the payload before validation; nil means absent.
type rawOverride struct {
	WaffleFlag     *string `json:"waffle_flag"`
	ScopeType      *string `json:"scope_type"`
	ScopeKey       *string `json:"scope_key"`
	Org            *string `json:"org"`
	Enabled        *bool   `json:"enabled"`
	OverrideChoice *string `json:"override_choice"`
	RecordID       *int64  `json:"record_id"`
	ChangeDate     *string `json:"change_date"`
	ChangedBy      *string `json:"changed_by"`
}

func decodeJSON(value []byte) (rawOverride, error) {
	var v jsonValue
	if err := json.Unmarshal(value, &v); err != nil {
		return rawOverride{}, malformed(ReasonBadJSON, "%v", err)
	}
	if v.Override == nil {
		return rawOverride{}, malformed(ReasonMissingField, "override")
	}
	return *v.Override, nil
}

// validate checks the payload rules of the wire contract and builds the Override.
func (r rawOverride) validate() (Override, error) {
	required := []struct {
		name string
		set  bool
	}{
		{"waffle_flag", r.WaffleFlag != nil}, {"scope_type", r.ScopeType != nil},
		{"scope_key", r.ScopeKey != nil}, {"org", r.Org != nil}, {"enabled", r.Enabled != nil},
		{"override_choice", r.OverrideChoice != nil}, {"record_id", r.RecordID != nil},
		{"change_date", r.ChangeDate != nil}, {"changed_by", r.ChangedBy != nil},
	}
	for _, f := range required {
		if !f.set {
			return Override{}, malformed(ReasonMissingField, "override.%s", f.name)
		}
	}
	o := Override{
		WaffleFlag: *r.WaffleFlag, ScopeType: *r.ScopeType, ScopeKey: *r.ScopeKey, Org: *r.Org,
		Enabled: *r.Enabled, OverrideChoice: *r.OverrideChoice, RecordID: *r.RecordID,
		ChangedBy: *r.ChangedBy,
	}
	for name, s := range map[string]string{
		"waffle_flag": o.WaffleFlag, "scope_type": o.ScopeType, "scope_key": o.ScopeKey, "org": o.Org,
		"override_choice": o.OverrideChoice, "change_date": *r.ChangeDate, "changed_by": o.ChangedBy,
	} {
		// Databases reject these; a stored-forever retry loop is worse than parking.
		if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
			return Override{}, malformed(ReasonBadString, "override.%s is not valid UTF-8 text", name)
		}
	}
	if o.WaffleFlag == "" {
		return Override{}, malformed(ReasonMissingField, "override.waffle_flag is empty")
	}
	switch o.ScopeType {
	case ScopeCourse:
		if len(o.ScopeKey) > maxCourseKeyLen {
			return Override{}, malformed(ReasonBadCourseKey, "scope_key longer than %d bytes", maxCourseKeyLen)
		}
		key, err := authz.ParseCourseKey(o.ScopeKey)
		if err != nil {
			return Override{}, malformed(ReasonBadCourseKey, "%v", err)
		}
		if key.Org != o.Org {
			return Override{}, malformed(ReasonScopeOrgMismatch, "course %q belongs to org %q, event says %q", o.ScopeKey, key.Org, o.Org)
		}
		o.KeyKind = key.Kind
	case ScopeOrg:
		if authz.ValidOrg(o.ScopeKey) != nil {
			return Override{}, malformed(ReasonBadOrg, "org scope_key %q is not an organization short name", o.ScopeKey)
		}
		if o.ScopeKey != o.Org {
			return Override{}, malformed(ReasonScopeOrgMismatch, "org scope_key %q differs from org %q", o.ScopeKey, o.Org)
		}
		o.KeyKind = authz.KeyOrg
	default:
		return Override{}, malformed(ReasonBadScopeType, "scope_type %q, want course or org", o.ScopeType)
	}
	if o.RecordID <= 0 {
		return Override{}, malformed(ReasonBadRecordID, "record_id %d", o.RecordID)
	}
	t, err := ParseTime(*r.ChangeDate)
	if err != nil {
		return Override{}, malformed(ReasonBadChangeDate, "%v", err)
	}
	o.ChangeDate = t
	return o, nil
}

// Column widths of the Open edX tables the keys end up in.
const (
	maxCourseKeyLen = 255
	maxOrgLen       = 64
)

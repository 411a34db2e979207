package events

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"time"

	"github.com/google/uuid"

	"authz-flag-consumer/schemas"
)

// keySchema is the Avro schema of the key: override.scope_key alone.
var keySchema = mustParse(schemas.WaffleFlagOverrideChangedV1Key)

// Schema texts as registered. The key text is byte for byte what
// edx-event-bus-kafka registers (json.dumps of the field, sort_keys=True).
var (
	keySchemaText   = string(bytes.TrimSpace(schemas.WaffleFlagOverrideChangedV1Key))
	valueSchemaText = compactJSON(schemas.WaffleFlagOverrideChangedV1Value)
)

func compactJSON(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		panic(fmt.Sprintf("embedded schema: %v", err))
	}
	return buf.String()
}

// EncoderOptions sets the CloudEvents metadata an Encoder writes. Zero
// values get the defaults noted.
type EncoderOptions struct {
	Source     string           // ce_source; default "openedx/authz-flag-consumer/web"
	SourceHost string           // sourcehost; default the host name
	SourceLib  string           // sourcelib, dotted integers; default "0.0.0"
	Now        func() time.Time // ce_time and a zero ChangeDate; default time.Now
	NewID      func() string    // ce_id; default a UUID (version 1, as openedx-events uses)
}

// Encoder produces messages as edx-event-bus-kafka does: framed Avro key and
// value with auto-registered schemas, and its ce_* headers. It is for
// `consumer publish`, the dev demo and tests. Safe for concurrent use.
type Encoder struct {
	reg  Registrar
	opts EncoderOptions

	mu  sync.Mutex
	ids map[string]int // subject -> registered id
}

// NewEncoder returns an Encoder registering schemas with reg; reg may be
// nil when only EncodeJSON is used.
func NewEncoder(reg Registrar, opts EncoderOptions) *Encoder {
	if opts.Source == "" {
		opts.Source = "openedx/authz-flag-consumer/web"
	}
	if opts.SourceHost == "" {
		opts.SourceHost, _ = os.Hostname()
		if opts.SourceHost == "" {
			opts.SourceHost = "unknown"
		}
	}
	if opts.SourceLib == "" {
		opts.SourceLib = "0.0.0"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.NewID == nil {
		opts.NewID = newUUID
	}
	return &Encoder{reg: reg, opts: opts, ids: map[string]int{}}
}

func newUUID() string {
	if id, err := uuid.NewUUID(); err == nil {
		return id.String()
	}
	return uuid.NewString()
}

// Encode returns the Avro message for o on topic: key and value in the
// Confluent framing, schemas registered under the TopicRecordNameStrategy
// subjects (KeySubject, ValueSubject). A zero o.ChangeDate is set to now.
// The message's Partition is left 0: use Partition(msg.Key, n).
// o is not validated; call o.Validate first to refuse bad input.
func (e *Encoder) Encode(ctx context.Context, topic string, o Override) (Message, error) {
	if e.reg == nil {
		return Message{}, fmt.Errorf("encode event for %s: no schema registry", o.ScopeKey)
	}
	keyID, err := e.schemaID(ctx, KeySubject(topic), keySchemaText)
	if err != nil {
		return Message{}, fmt.Errorf("encode event for %s: %w", o.ScopeKey, err)
	}
	valueID, err := e.schemaID(ctx, ValueSubject(topic), valueSchemaText)
	if err != nil {
		return Message{}, fmt.Errorf("encode event for %s: %w", o.ScopeKey, err)
	}
	now := e.opts.Now()
	key, err := avroAPI.Marshal(keySchema, o.ScopeKey)
	if err != nil {
		return Message{}, fmt.Errorf("encode key %s: %w", o.ScopeKey, err)
	}
	value, err := avroAPI.Marshal(valueSchema, avroValue{Override: toAvro(o, now)})
	if err != nil {
		return Message{}, fmt.Errorf("encode value for %s: %w", o.ScopeKey, err)
	}
	return Message{
		Topic:   topic,
		Key:     frame(keyID, key),
		Value:   frame(valueID, value),
		Headers: e.headers("application/avro", now),
		Time:    now,
	}, nil
}

// EncodeJSON returns the JSON form of the message (no registry): value
// {"override": {...}}, key the plain scope key, content-type
// application/json. The partition for it is Partition(msg.Key, n) too.
func (e *Encoder) EncodeJSON(topic string, o Override) (Message, error) {
	now := e.opts.Now()
	value, err := json.Marshal(map[string]any{"override": jsonOverride(toAvro(o, now))})
	if err != nil {
		return Message{}, fmt.Errorf("encode value for %s: %w", o.ScopeKey, err)
	}
	return Message{
		Topic:   topic,
		Key:     []byte(o.ScopeKey),
		Value:   value,
		Headers: e.headers("application/json", now),
		Time:    now,
	}, nil
}

func (e *Encoder) schemaID(ctx context.Context, subject, text string) (int, error) {
	e.mu.Lock()
	id, ok := e.ids[subject]
	e.mu.Unlock()
	if ok {
		return id, nil
	}
	id, err := e.reg.Register(ctx, subject, text)
	if err != nil {
		return 0, err
	}
	e.mu.Lock()
	e.ids[subject] = id
	e.mu.Unlock()
	return id, nil
}

// headers are edx-event-bus-kafka's, in its order.
func (e *Encoder) headers(contentType string, now time.Time) []Header {
	h := func(k, v string) Header { return Header{Key: k, Value: []byte(v)} }
	return []Header{
		h("ce_specversion", "1.0"),
		h(HeaderContentType, contentType),
		h("ce_datacontenttype", contentType),
		h(HeaderType, EventTypeV1),
		h(HeaderID, e.opts.NewID()),
		h("ce_source", e.opts.Source),
		h("ce_time", FormatTime(now)),
		h("ce_minorversion", "0"),
		h("sourcehost", e.opts.SourceHost),
		h("sourcelib", e.opts.SourceLib),
	}
}

func toAvro(o Override, now time.Time) avroOverride {
	cd := o.ChangeDate
	if cd.IsZero() {
		cd = now
	}
	return avroOverride{
		WaffleFlag: o.WaffleFlag, ScopeType: o.ScopeType, ScopeKey: o.ScopeKey, Org: o.Org,
		Enabled: o.Enabled, OverrideChoice: o.OverrideChoice, RecordID: o.RecordID,
		ChangeDate: FormatTime(cd), ChangedBy: o.ChangedBy,
	}
}

// jsonOverride is avroOverride with JSON field names.
type jsonOverride struct {
	WaffleFlag     string `json:"waffle_flag"`
	ScopeType      string `json:"scope_type"`
	ScopeKey       string `json:"scope_key"`
	Org            string `json:"org"`
	Enabled        bool   `json:"enabled"`
	OverrideChoice string `json:"override_choice"`
	RecordID       int64  `json:"record_id"`
	ChangeDate     string `json:"change_date"`
	ChangedBy      string `json:"changed_by"`
}

func frame(id int, body []byte) []byte {
	out := make([]byte, 5, 5+len(body))
	binary.BigEndian.PutUint32(out[1:], uint32(id))
	return append(out, body...)
}

// Validate applies the decoder's rules to o (as if it had been received),
// so a producer can refuse what the consumer would park.
func (o Override) Validate() error {
	a := toAvro(o, time.Unix(0, 0))
	_, err := rawOverride{
		WaffleFlag: &a.WaffleFlag, ScopeType: &a.ScopeType, ScopeKey: &a.ScopeKey, Org: &a.Org,
		Enabled: &a.Enabled, OverrideChoice: &a.OverrideChoice, RecordID: &a.RecordID,
		ChangeDate: &a.ChangeDate, ChangedBy: &a.ChangedBy,
	}.validate()
	return err
}

// Partition returns the partition librdkafka's default partitioner
// (consistent_random) picks for a non-empty key among n partitions:
// CRC32 (IEEE) of the key bytes as sent (framing included) modulo n.
// kafka-go's CRC32Balancer gives the same for non-empty keys.
func Partition(key []byte, n int) int {
	if n <= 0 {
		return 0
	}
	return int(crc32.ChecksumIEEE(key) % uint32(n))
}

package consumer

import (
	"errors"
	"strconv"

	"github.com/segmentio/kafka-go"

	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/migrator"
)

// Headers the dead-letter copy of a parked message carries besides the
// original key, value and headers.
const (
	HeaderParkedReason      = "x-parked-reason"
	HeaderParkedDetail      = "x-parked-detail"
	HeaderOriginalTopic     = "x-original-topic"
	HeaderOriginalPartition = "x-original-partition"
	HeaderOriginalOffset    = "x-original-offset"
)

// message converts a kafka-go message for the decoder.
func message(m kafka.Message) events.Message {
	hs := make([]events.Header, len(m.Headers))
	for i, h := range m.Headers {
		hs[i] = events.Header(h)
	}
	return events.Message{
		Topic:     m.Topic,
		Partition: m.Partition,
		Offset:    m.Offset,
		Key:       m.Key,
		Value:     m.Value,
		Headers:   hs,
		Time:      m.Time,
	}
}

// KafkaMessage is the kafka-go message that sends m: its key, value and
// headers. Topic is left empty, for a writer that names it.
func KafkaMessage(m events.Message) kafka.Message {
	hs := make([]kafka.Header, len(m.Headers))
	for i, h := range m.Headers {
		hs[i] = kafka.Header(h)
	}
	return kafka.Message{Key: m.Key, Value: m.Value, Headers: hs}
}

// change is the engine's view of a decoded event.
func change(ev events.Event) migrator.Change {
	o := ev.Override
	return migrator.Change{
		Flag:           o.WaffleFlag,
		ScopeType:      migrator.ScopeType(o.ScopeType),
		ScopeKey:       o.ScopeKey,
		Org:            o.Org,
		RecordID:       o.RecordID,
		Enabled:        o.Enabled,
		OverrideChoice: o.OverrideChoice,
		ChangeDate:     o.ChangeDate,
		ChangedBy:      o.ChangedBy,
	}
}

// malformed classifies a decode error: park (with reason and detail) or retry.
func malformed(err error) (reason, detail string, ok bool) {
	var me *events.MalformedError
	if errors.As(err, &me) {
		return me.Reason, me.Detail, true
	}
	if errors.Is(err, events.ErrMalformed) {
		return "malformed", err.Error(), true
	}
	return "", "", false
}

// Header is the value of m's header key (the last one when it repeats), or
// "".
func Header(m kafka.Message, key string) string {
	for i := len(m.Headers) - 1; i >= 0; i-- {
		if m.Headers[i].Key == key {
			return string(m.Headers[i].Value)
		}
	}
	return ""
}

func headerMap(hs []kafka.Header) map[string]string {
	out := make(map[string]string, len(hs))
	for _, h := range hs {
		out[h.Key] = string(h.Value)
	}
	return out
}

// deadLetter is the dead-letter copy of a parked message: the original key,
// value and headers, plus where it came from and why it was parked.
func deadLetter(m kafka.Message, reason, detail string) kafka.Message {
	hs := make([]kafka.Header, 0, len(m.Headers)+5)
	hs = append(hs, m.Headers...)
	hs = append(hs,
		kafka.Header{Key: HeaderParkedReason, Value: []byte(reason)},
		kafka.Header{Key: HeaderParkedDetail, Value: []byte(detail)},
		kafka.Header{Key: HeaderOriginalTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderOriginalPartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderOriginalOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
	)
	return kafka.Message{Key: m.Key, Value: m.Value, Headers: hs}
}

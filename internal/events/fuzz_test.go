package events_test

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"

	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/registry"
)

var knownReasons = map[string]bool{
	events.ReasonFraming: true, events.ReasonBadContentType: true, events.ReasonUnknownSchemaID: true,
	events.ReasonUnresolvableSchema: true, events.ReasonBadAvro: true, events.ReasonBadJSON: true,
	events.ReasonMissingField: true, events.ReasonBadCEType: true, events.ReasonUnknownEventType: true,
	events.ReasonBadScopeType: true, events.ReasonBadCourseKey: true, events.ReasonBadOrg: true,
	events.ReasonScopeOrgMismatch: true, events.ReasonBadRecordID: true, events.ReasonBadChangeDate: true,
	events.ReasonBadString: true,
}

// FuzzDecode feeds arbitrary values and headers to a Decoder backed by a
// real registry holding the vectors' schemas (good and incompatible ones)
// and ours. The decoder must never panic, and every outcome must be either
// a valid event or exactly one of malformed (with a known reason) or
// transient.
//
//	go test ./internal/events -run '^$' -fuzz FuzzDecode -fuzztime 60s -parallel 1
func FuzzDecode(f *testing.F) {
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	srv := registry.NewServer()
	vs := loadVectors(f)
	for _, v := range vs {
		for id, text := range v.Schemas {
			n, _ := strconv.Atoi(id)
			_ = srv.SetSchema(n, text) // the canonical-text vector reuses ids 1 and 2: keep the first
		}
	}
	addr, err := srv.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	client, err := events.NewRegistryClient("http://"+addr, events.RegistryOptions{})
	if err != nil {
		f.Fatal(err)
	}
	dec := events.NewDecoder(client)

	for _, v := range vs {
		value, _ := hex.DecodeString(v.ValueHex)
		f.Add(value, v.Headers["ce_type"], v.Headers["content-type"])
	}
	enc := events.NewEncoder(client, events.EncoderOptions{})
	for _, o := range []events.Override{courseOverride(), orgOverride()} {
		m, err := enc.Encode(ctx, testTopic, o)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(m.Value, events.EventTypeV1, "application/avro")
		f.Add(m.Value, events.EventTypeV1, "")
		j, _ := enc.EncodeJSON(testTopic, o)
		f.Add(j.Value, events.EventTypeV1, "application/json; charset=utf-8")
	}

	f.Fuzz(func(t *testing.T, value []byte, ceType, contentType string) {
		m := events.Message{Topic: testTopic, Partition: 1, Offset: 2, Value: value, Headers: []events.Header{
			{Key: "ce_type", Value: []byte(ceType)},
			{Key: "content-type", Value: []byte(contentType)},
		}}
		ev, err := dec.Decode(ctx, m)
		if err == nil {
			if verr := ev.Override.Validate(); verr != nil {
				t.Fatalf("decoded an override that does not validate: %+v: %v", ev.Override, verr)
			}
			if ev.Type != events.EventTypeV1 || ev.ID != testTopic+"/1/2" {
				t.Fatalf("event metadata: %+v", ev)
			}
			return
		}
		isMalformed, isTransient := errors.Is(err, events.ErrMalformed), errors.Is(err, events.ErrTransient)
		if isMalformed == isTransient {
			t.Fatalf("error is neither or both malformed and transient: %v", err)
		}
		if isMalformed && !knownReasons[events.Reason(err)] {
			t.Fatalf("unknown reason %q: %v", events.Reason(err), err)
		}
		if isTransient {
			t.Fatalf("transient error with a live registry: %v", err)
		}
	})
}

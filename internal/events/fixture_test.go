package events_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/registry"
)

const testTopic = "dev-waffle-flag-override-lifecycle"

// fixture is a real registry server on 127.0.0.1 with a client, an Encoder
// and a Decoder talking to it over HTTP.
type fixture struct {
	t      testing.TB
	srv    *registry.Server
	url    string
	cancel context.CancelFunc // stops the registry
	client *events.RegistryClient
	enc    *events.Encoder
	dec    *events.Decoder
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv := registry.NewServer()
	addr, err := srv.Serve(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + addr
	client, err := events.NewRegistryClient(url, events.RegistryOptions{})
	require.NoError(t, err)
	ids := 0
	enc := events.NewEncoder(client, events.EncoderOptions{
		Source:     "openedx/test/web",
		SourceHost: "test-host",
		SourceLib:  "10.5.0",
		Now:        func() time.Time { return time.Date(2024, 5, 1, 12, 0, 1, 500000000, time.UTC) },
		NewID: func() string {
			ids++
			return fmt.Sprintf("00000000-0000-1000-8000-%012d", ids)
		},
	})
	return &fixture{t: t, srv: srv, url: url, cancel: cancel, client: client, enc: enc, dec: events.NewDecoder(client)}
}

func courseOverride() events.Override {
	return events.Override{
		WaffleFlag:     "authz.enable_course_authoring",
		ScopeType:      events.ScopeCourse,
		ScopeKey:       "course-v1:OrgX+C1+2024",
		Org:            "OrgX",
		Enabled:        true,
		OverrideChoice: "on",
		RecordID:       42,
		ChangeDate:     time.Date(2024, 5, 1, 12, 0, 0, 123456000, time.UTC),
		ChangedBy:      "admin",
	}
}

func orgOverride() events.Override {
	o := courseOverride()
	o.ScopeType, o.ScopeKey = events.ScopeOrg, "OrgX"
	return o
}

// encode returns the Avro message the Encoder makes for o.
func (f *fixture) encode(o events.Override) events.Message {
	f.t.Helper()
	m, err := f.enc.Encode(context.Background(), testTopic, o)
	require.NoError(f.t, err)
	m.Partition, m.Offset = 3, 17
	return m
}

func (f *fixture) encodeJSON(o events.Override) events.Message {
	f.t.Helper()
	m, err := f.enc.EncodeJSON(testTopic, o)
	require.NoError(f.t, err)
	m.Partition, m.Offset = 3, 17
	return m
}

// withWriter returns a message whose value is v written with the given
// writer schema, registered in the registry under its own subject.
func (f *fixture) withWriter(schema string, v any) events.Message {
	f.t.Helper()
	id, err := f.client.Register(context.Background(), "writer-test-"+schema, schema)
	require.NoError(f.t, err)
	s, err := avro.ParseWithCache(schema, "", &avro.SchemaCache{})
	require.NoError(f.t, err)
	body, err := avro.Marshal(s, v)
	require.NoError(f.t, err)
	m := f.encode(courseOverride())
	m.Value = framed(id, body)
	return m
}

func framed(id int, body []byte) []byte {
	out := make([]byte, 5, 5+len(body))
	binary.BigEndian.PutUint32(out[1:], uint32(id))
	return append(out, body...)
}

// setHeader replaces (or adds) header key in a copy of m.
func setHeader(m events.Message, key, value string) events.Message {
	hs := make([]events.Header, 0, len(m.Headers)+1)
	for _, h := range m.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	if value != "\x00delete" {
		hs = append(hs, events.Header{Key: key, Value: []byte(value)})
	}
	m.Headers = hs
	return m
}

func dropHeader(m events.Message, key string) events.Message { return setHeader(m, key, "\x00delete") }

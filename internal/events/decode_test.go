package events_test

import (
	"authz-flag-consumer/internal/authz"

	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/events"
)

func TestRoundTripAvro(t *testing.T) {
	f := newFixture(t)
	for _, o := range []events.Override{courseOverride(), orgOverride()} {
		m := f.encode(o)
		ev, err := f.dec.Decode(t.Context(), m)
		require.NoError(t, err)
		want := o
		if o.ScopeType == events.ScopeOrg {
			want.KeyKind = authz.KeyOrg
		} else {
			want.KeyKind = authz.KeyCourseV1
		}
		require.Equal(t, want, ev.Override)
		require.True(t, ev.Override.KeySupported())
		require.Equal(t, events.EventTypeV1, ev.Type)
		require.Equal(t, "openedx/test/web", ev.Source)
		require.Equal(t, time.Date(2024, 5, 1, 12, 0, 1, 500000000, time.UTC), ev.Time)
		require.NotZero(t, ev.SchemaID)
		hdr, _ := m.Header("ce_id")
		require.Equal(t, hdr, ev.ID)
	}

	// Both subjects are named by TopicRecordNameStrategy as confluent-kafka names them.
	resp, err := http.Get(f.url + "/subjects")
	require.NoError(t, err)
	defer resp.Body.Close()
	var subjects []string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&subjects))
	require.ElementsMatch(t, []string{
		testTopic + "-string",
		testTopic + "-org.openedx.platform.waffle_flag_override.changed.v1.CloudEvent",
	}, subjects)
}

func TestRoundTripJSON(t *testing.T) {
	f := newFixture(t)
	m := f.encodeJSON(courseOverride())
	require.JSONEq(t, `{"override":{"waffle_flag":"authz.enable_course_authoring","scope_type":"course",
		"scope_key":"course-v1:OrgX+C1+2024","org":"OrgX","enabled":true,"override_choice":"on",
		"record_id":42,"change_date":"2024-05-01T12:00:00.123456+00:00","changed_by":"admin"}}`, string(m.Value))
	ev, err := events.NewDecoder(nil).Decode(t.Context(), m)
	require.NoError(t, err, "JSON needs no registry")
	want := courseOverride()
	want.KeyKind = authz.KeyCourseV1
	require.Equal(t, want, ev.Override)
	require.Zero(t, ev.SchemaID)

	// ce_datacontenttype is enough when content-type is absent.
	ev, err = f.dec.Decode(t.Context(), dropHeader(m, "content-type"))
	require.NoError(t, err)
	require.Equal(t, want, ev.Override)
}

// The headers are edx-event-bus-kafka's, in its order, with its values.
func TestEncoderHeaders(t *testing.T) {
	f := newFixture(t)
	m := f.encode(courseOverride())
	var keys []string
	for _, h := range m.Headers {
		keys = append(keys, h.Key)
	}
	require.Equal(t, []string{"ce_specversion", "content-type", "ce_datacontenttype", "ce_type", "ce_id",
		"ce_source", "ce_time", "ce_minorversion", "sourcehost", "sourcelib"}, keys)
	get := func(k string) string { v, _ := m.Header(k); return v }
	require.Equal(t, "1.0", get("ce_specversion"))
	require.Equal(t, "application/avro", get("content-type"))
	require.Equal(t, "application/avro", get("ce_datacontenttype"))
	require.Equal(t, "org.openedx.platform.waffle_flag_override.changed.v1", get("ce_type"))
	require.Equal(t, "2024-05-01T12:00:01.500000+00:00", get("ce_time"))
	require.Equal(t, "0", get("ce_minorversion"))
	require.Equal(t, "test-host", get("sourcehost"))
	require.Equal(t, "10.5.0", get("sourcelib"))

	// Key: framing + Avro string (zigzag length 22*2=44, then the bytes).
	require.Equal(t, byte(0), m.Key[0])
	require.Equal(t, append([]byte{44}, "course-v1:OrgX+C1+2024"...), m.Key[5:])
}

func TestEventIDFallsBackToPosition(t *testing.T) {
	f := newFixture(t)
	ev, err := f.dec.Decode(t.Context(), dropHeader(f.encode(courseOverride()), "ce_id"))
	require.NoError(t, err)
	require.Equal(t, testTopic+"/3/17", ev.ID)
}

func TestNonCourseV1KeysAreValidButUnsupported(t *testing.T) {
	f := newFixture(t)
	for key, kind := range map[string]authz.KeyKind{
		"ccx-v1:OrgX+C1+2024+ccx@3": authz.KeyCCX,
		"OrgX/C1/2024":              authz.KeySlash,
		"library-v1:OrgX+Lib1":      authz.KeyLibraryV1,
	} {
		o := courseOverride()
		o.ScopeKey = key
		ev, err := f.dec.Decode(t.Context(), f.encode(o))
		require.NoError(t, err, key)
		require.Equal(t, kind, ev.Override.KeyKind)
		require.False(t, ev.Override.KeySupported(), key)
	}
}

// Payload rules, checked on both the Avro and the JSON form.
func TestValidation(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name   string
		mutate func(*events.Override)
		reason string
	}{
		{"scope type", func(o *events.Override) { o.ScopeType = "site" }, events.ReasonBadScopeType},
		{"empty scope type", func(o *events.Override) { o.ScopeType = "" }, events.ReasonBadScopeType},
		{"not a course key", func(o *events.Override) { o.ScopeKey = "OrgX" }, events.ReasonBadCourseKey},
		{"course key missing run", func(o *events.Override) { o.ScopeKey = "course-v1:OrgX+C1" }, events.ReasonBadCourseKey},
		{"course key with spaces", func(o *events.Override) { o.ScopeKey = "course-v1:Org X+C1+R" }, events.ReasonBadCourseKey},
		{"course key with branch", func(o *events.Override) { o.ScopeKey = "course-v1:OrgX+C1+2024+branch@draft" }, events.ReasonBadCourseKey},
		{"course key too long", func(o *events.Override) { o.ScopeKey = "course-v1:OrgX+C1+" + strings.Repeat("r", 250) }, events.ReasonBadCourseKey},
		{"course org mismatch", func(o *events.Override) { o.Org = "OrgY" }, events.ReasonScopeOrgMismatch},
		{"course org empty", func(o *events.Override) { o.Org = "" }, events.ReasonScopeOrgMismatch},
		{"org scope mismatch", func(o *events.Override) { o.ScopeType, o.ScopeKey = "org", "OrgY" }, events.ReasonScopeOrgMismatch},
		{"org scope empty", func(o *events.Override) { o.ScopeType, o.ScopeKey, o.Org = "org", "", "" }, events.ReasonBadOrg},
		{"org scope course key", func(o *events.Override) { o.ScopeType = "org" }, events.ReasonBadOrg},
		{"record id zero", func(o *events.Override) { o.RecordID = 0 }, events.ReasonBadRecordID},
		{"record id negative", func(o *events.Override) { o.RecordID = -5 }, events.ReasonBadRecordID},
		{"empty flag", func(o *events.Override) { o.WaffleFlag = "" }, events.ReasonMissingField},
		{"NUL in changed_by", func(o *events.Override) { o.ChangedBy = "a\x00b" }, events.ReasonBadString},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := courseOverride()
			tc.mutate(&o)
			require.Equal(t, tc.reason, events.Reason(o.Validate()), "Override.Validate")
			for form, m := range map[string]events.Message{"avro": f.encode(o), "json": f.encodeJSON(o)} {
				_, err := f.dec.Decode(t.Context(), m)
				require.ErrorIs(t, err, events.ErrMalformed, form)
				require.NotErrorIs(t, err, events.ErrTransient, form)
				require.Equal(t, tc.reason, events.Reason(err), "%s: %v", form, err)
			}
		})
	}
}

func TestHeadersAndFraming(t *testing.T) {
	f := newFixture(t)
	good := f.encode(courseOverride())
	withValue := func(v []byte) events.Message { m := good; m.Value = v; return m }
	cases := []struct {
		name   string
		msg    events.Message
		reason string
	}{
		{"no ce_type", dropHeader(good, "ce_type"), events.ReasonBadCEType},
		{"major 2", setHeader(good, "ce_type", events.EventTypeBase+".v2"), events.ReasonBadCEType},
		{"no version", setHeader(good, "ce_type", events.EventTypeBase), events.ReasonBadCEType},
		{"other event", setHeader(good, "ce_type", "org.openedx.content_authoring.course.catalog_info.changed.v1"), events.ReasonUnknownEventType},
		{"content type", setHeader(good, "content-type", "text/plain"), events.ReasonBadContentType},
		{"garbled content type", setHeader(good, "content-type", "application/"), events.ReasonBadContentType},
		{"no value", withValue(nil), events.ReasonFraming},
		{"short value", withValue([]byte{0, 0, 1}), events.ReasonFraming},
		{"magic byte", withValue(append([]byte{1}, good.Value[1:]...)), events.ReasonFraming},
		{"unknown id", withValue(framed(9999, good.Value[5:])), events.ReasonUnknownSchemaID},
		{"truncated avro", withValue(good.Value[:len(good.Value)-12]), events.ReasonBadAvro},
		{"json not json", setHeader(withValue([]byte("{nope")), "content-type", "application/json"), events.ReasonBadJSON},
		{"json wrong type", setHeader(withValue([]byte(`{"override":{"record_id":"42"}}`)), "content-type", "application/json"), events.ReasonBadJSON},
		{"json no override", setHeader(withValue([]byte(`{}`)), "content-type", "application/json"), events.ReasonMissingField},
		{"json missing field", setHeader(withValue([]byte(`{"override":{"waffle_flag":"f"}}`)), "content-type", "application/json"), events.ReasonMissingField},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.dec.Decode(t.Context(), tc.msg)
			require.ErrorIs(t, err, events.ErrMalformed)
			require.Equal(t, tc.reason, events.Reason(err), "%v", err)
		})
	}
}

// writerSchema builds a value schema with the given override fields and
// extra top-level fields (JSON fragments).
func writerSchema(overrideFields, extraTop string) string {
	s := `{"type":"record","name":"CloudEvent","namespace":"org.openedx.platform.waffle_flag_override.changed.v1",
	"fields":[` + extraTop + `{"name":"override","type":{"type":"record","name":"WaffleFlagOverrideData","fields":[` +
		overrideFields + `]}}]}`
	return s
}

const allFields = `{"name":"waffle_flag","type":"string"},{"name":"scope_type","type":"string"},
{"name":"scope_key","type":"string"},{"name":"org","type":"string"},{"name":"enabled","type":"boolean"},
{"name":"override_choice","type":"string"},{"name":"record_id","type":"long"},
{"name":"change_date","type":"string"},{"name":"changed_by","type":"string"}`

func overrideMap() map[string]any {
	return map[string]any{
		"waffle_flag": "authz.enable_course_authoring", "scope_type": "course",
		"scope_key": "course-v1:OrgX+C1+2024", "org": "OrgX", "enabled": false,
		"override_choice": "off", "record_id": int64(7), "change_date": "2024-05-01T12:00:00Z",
		"changed_by": "",
	}
}

// Writer schemas that differ from ours: compatible ones decode, the others
// are malformed with a precise reason.
func TestSchemaResolution(t *testing.T) {
	f := newFixture(t)

	t.Run("extra reordered and promoted fields", func(t *testing.T) {
		fields := `{"name":"note","type":["null","string"],"default":null},{"name":"record_id","type":"int"},
		{"name":"changed_by","type":"string"},{"name":"change_date","type":"string"},{"name":"enabled","type":"boolean"},
		{"name":"override_choice","type":"string"},{"name":"org","type":"string"},{"name":"scope_key","type":"string"},
		{"name":"scope_type","type":"string"},{"name":"waffle_flag","type":"string"},{"name":"tags","type":{"type":"array","items":"string"}}`
		ov := overrideMap()
		ov["record_id"] = 7
		ov["note"] = "hello"
		ov["tags"] = []string{"a", "b"}
		m := f.withWriter(writerSchema(fields, `{"name":"extra","type":"long"},`),
			map[string]any{"extra": int64(99), "override": ov})
		ev, err := f.dec.Decode(t.Context(), m)
		require.NoError(t, err)
		require.Equal(t, events.Override{
			WaffleFlag: "authz.enable_course_authoring", ScopeType: "course", ScopeKey: "course-v1:OrgX+C1+2024",
			Org: "OrgX", Enabled: false, OverrideChoice: "off", RecordID: 7,
			ChangeDate: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC), KeyKind: authz.KeyCourseV1,
		}, ev.Override)
	})

	without := func(drop string, set map[string]any) map[string]any {
		ov := overrideMap()
		delete(ov, drop)
		for k, v := range set {
			ov[k] = v
		}
		return map[string]any{"override": ov}
	}
	bad := []struct {
		name, schema string
		value        any
		reason       string
	}{
		{"missing field", writerSchema(strings.Replace(allFields, `,
{"name":"change_date","type":"string"}`, "", 1), ""), without("change_date", nil), events.ReasonUnresolvableSchema},
		{"wrong field type", writerSchema(strings.Replace(allFields, `{"name":"enabled","type":"boolean"}`,
			`{"name":"enabled","type":"string"}`, 1), ""), without("", map[string]any{"enabled": "yes"}), events.ReasonUnresolvableSchema},
		{"nullable field", writerSchema(strings.Replace(allFields, `{"name":"org","type":"string"}`,
			`{"name":"org","type":["null","string"]}`, 1), ""), without("", nil), events.ReasonUnresolvableSchema},
		{"other record", `{"type":"record","name":"Other","fields":[{"name":"override","type":"string"}]}`,
			map[string]any{"override": "x"}, events.ReasonUnresolvableSchema},
		{"primitive writer", `{"type":"string","name":"scope_key"}`, "course-v1:OrgX+C1+2024", events.ReasonUnresolvableSchema},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			m := f.withWriter(tc.schema, tc.value)
			_, err := f.dec.Decode(t.Context(), m)
			require.ErrorIs(t, err, events.ErrMalformed)
			require.Equal(t, tc.reason, events.Reason(err), "%v", err)
			_, err = f.dec.Decode(t.Context(), m)
			require.Equal(t, tc.reason, events.Reason(err), "cached outcome")
		})
	}
}

// Resolved writer schemas are cached: a registry that went away does not
// stop ids already seen.
func TestWriterSchemaCache(t *testing.T) {
	f := newFixture(t)
	m := f.encode(courseOverride())
	_, err := f.dec.Decode(t.Context(), m)
	require.NoError(t, err)
	f.cancel()
	waitRefused(t, f.url)
	_, err = f.dec.Decode(t.Context(), m)
	require.NoError(t, err)
	_, err = f.dec.Decode(t.Context(), f.encodeJSON(courseOverride()))
	require.NoError(t, err)
	m.Value = framed(12345, m.Value[5:])
	_, err = f.dec.Decode(t.Context(), m)
	require.ErrorIs(t, err, events.ErrTransient, "unseen id with the registry gone")
}

func waitRefused(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	c := &http.Client{Timeout: time.Second}
	for {
		resp, err := c.Get(url + "/subjects")
		if err != nil {
			return
		}
		resp.Body.Close()
		require.True(t, time.Now().Before(deadline), "registry still answering")
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

// A registry that cannot answer is a transient condition, never a reason
// to park.
func TestRegistryFailuresAreTransient(t *testing.T) {
	f := newFixture(t)
	m := f.encode(courseOverride())

	decodeWith := func(t *testing.T, url string) error {
		c, err := events.NewRegistryClient(url, events.RegistryOptions{HTTPClient: &http.Client{Timeout: 5 * time.Second}})
		require.NoError(t, err)
		_, err = events.NewDecoder(c).Decode(t.Context(), m)
		return err
	}
	assertTransient := func(t *testing.T, err error) {
		t.Helper()
		require.ErrorIs(t, err, events.ErrTransient)
		require.NotErrorIs(t, err, events.ErrMalformed)
		require.Empty(t, events.Reason(err))
	}

	t.Run("closed port", func(t *testing.T) {
		assertTransient(t, decodeWith(t, closedPortURL(t)))
	})
	t.Run("no registry configured", func(t *testing.T) {
		_, err := events.NewDecoder(nil).Decode(t.Context(), m)
		assertTransient(t, err)
	})
	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"5xx", 503, `{"error_code":50003,"message":"Error while forwarding the request to the leader"}`},
		{"unauthorized", 401, `{"error_code":401,"message":"Unauthorized"}`},
		{"404 from a wrong path", 404, `<html>Not Found</html>`},
		{"200 not json", 200, `<html>login</html>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := serveFixed(t, tc.status, tc.body)
			assertTransient(t, decodeWith(t, url))
		})
	}
	t.Run("cancelled context", func(t *testing.T) {
		c, err := events.NewRegistryClient(f.url, events.RegistryOptions{})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err = events.NewDecoder(c).Decode(ctx, m)
		assertTransient(t, err)
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestRegistryBasicAuth(t *testing.T) {
	f := newFixture(t)
	m := f.encode(courseOverride())
	var got [2]string
	proxyURL := serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got[0], got[1], _ = r.BasicAuth()
		resp, err := http.Get(f.url + r.URL.Path)
		if err != nil {
			w.WriteHeader(502)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	c, err := events.NewRegistryClient(strings.Replace(proxyURL, "http://", "http://key:se%40cret@", 1), events.RegistryOptions{})
	require.NoError(t, err)
	_, err = events.NewDecoder(c).Decode(t.Context(), m)
	require.NoError(t, err)
	require.Equal(t, [2]string{"key", "se@cret"}, got, "credentials from the URL")

	c, err = events.NewRegistryClient(proxyURL, events.RegistryOptions{Username: "u", Password: "p"})
	require.NoError(t, err)
	_, err = events.NewDecoder(c).Decode(t.Context(), m)
	require.NoError(t, err)
	require.Equal(t, [2]string{"u", "p"}, got, "credentials from options")
}

func TestRegistryClientRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "localhost:8081", "ftp://x", "http://"} {
		_, err := events.NewRegistryClient(u, events.RegistryOptions{})
		require.Error(t, err, u)
	}
}

func TestEncodeNeedsRegistry(t *testing.T) {
	_, err := events.NewEncoder(nil, events.EncoderOptions{}).Encode(t.Context(), testTopic, courseOverride())
	require.Error(t, err)
	var re *events.RegistryError
	f := newFixture(t)
	f.cancel()
	waitRefused(t, f.url)
	_, err = events.NewEncoder(f.client, events.EncoderOptions{}).Encode(t.Context(), testTopic, courseOverride())
	require.Error(t, err)
	require.False(t, errors.As(err, &re))
}

// One Decoder serves concurrent partitions: the first fetch of an id races
// with itself and every goroutine still gets the event.
func TestConcurrentDecode(t *testing.T) {
	f := newFixture(t)
	msgs := []events.Message{f.encode(courseOverride()), f.encode(orgOverride()), f.encodeJSON(courseOverride())}
	dec := events.NewDecoder(f.client)
	errs := make(chan error, 8*len(msgs)*20)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				for _, m := range msgs {
					_, err := dec.Decode(t.Context(), m)
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
}

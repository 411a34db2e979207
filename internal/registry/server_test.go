package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	hreg "github.com/hamba/avro/v2/registry"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/registry"
)

const recordV1 = `{"type":"record","name":"R","namespace":"t","fields":[{"name":"a","type":"string"}]}`

// Same schema, other key order and whitespace.
const recordV1Spaced = `{ "namespace": "t", "name": "R", "type": "record",
  "fields": [ {"type": "string", "name": "a"} ] }`

const recordV2 = `{"type":"record","name":"R","namespace":"t","fields":[{"name":"a","type":"string"},{"name":"b","type":"long","default":0}]}`

type fixture struct {
	t    *testing.T
	url  string
	addr string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	addr, err := registry.NewServer().Serve(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	return &fixture{t: t, url: "http://" + addr, addr: addr}
}

// call does one request and decodes the JSON answer into out (if not nil).
func (f *fixture) call(method, path string, body any, out any) int {
	f.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(f.t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.url+path, r)
	require.NoError(f.t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(f.t, err)
	defer resp.Body.Close()
	require.Equal(f.t, registry.ContentType, resp.Header.Get("Content-Type"))
	if out != nil {
		require.NoError(f.t, json.NewDecoder(resp.Body).Decode(out))
	}
	return resp.StatusCode
}

func (f *fixture) register(subject, schema string) int {
	f.t.Helper()
	var out struct{ ID int }
	require.Equal(f.t, 200, f.call("POST", "/subjects/"+subject+"/versions?normalize=False", map[string]string{"schema": schema}, &out))
	return out.ID
}

type apiError struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
}

func TestRegisterIsIdempotentAcrossTextAndSubjects(t *testing.T) {
	f := newFixture(t)
	id := f.register("topic-t.R", recordV1)
	require.Equal(t, 1, id)
	require.Equal(t, id, f.register("topic-t.R", recordV1Spaced), "same schema, other formatting")
	require.Equal(t, id, f.register("other-t.R", recordV1), "same schema in another subject keeps its id")
	id2 := f.register("topic-t.R", recordV2)
	require.Equal(t, 2, id2)

	var versions []int
	require.Equal(t, 200, f.call("GET", "/subjects/topic-t.R/versions", nil, &versions))
	require.Equal(t, []int{1, 2}, versions)

	var subjects []string
	require.Equal(t, 200, f.call("GET", "/subjects", nil, &subjects))
	require.Equal(t, []string{"other-t.R", "topic-t.R"}, subjects)

	var latest struct {
		Subject string
		Version int
		ID      int
		Schema  string
	}
	require.Equal(t, 200, f.call("GET", "/subjects/topic-t.R/versions/latest", nil, &latest))
	require.Equal(t, "topic-t.R", latest.Subject)
	require.Equal(t, 2, latest.Version)
	require.Equal(t, id2, latest.ID)
	require.Equal(t, recordV2, latest.Schema)
	require.Equal(t, 200, f.call("GET", "/subjects/topic-t.R/versions/1", nil, &latest))
	require.Equal(t, id, latest.ID)

	var byID struct{ Schema string }
	require.Equal(t, 200, f.call("GET", "/schemas/ids/1", nil, &byID))
	require.Equal(t, recordV1, byID.Schema, "the text first registered is served")

	var usages []struct {
		Subject string
		Version int
	}
	require.Equal(t, 200, f.call("GET", "/schemas/ids/1/versions", nil, &usages))
	require.Len(t, usages, 2)
	require.Equal(t, "other-t.R", usages[0].Subject)
	require.Equal(t, "topic-t.R", usages[1].Subject)
	require.Equal(t, 1, usages[1].Version)

	var lookedUp struct {
		Subject string
		Version int
		ID      int
	}
	require.Equal(t, 200, f.call("POST", "/subjects/topic-t.R", map[string]string{"schema": recordV2}, &lookedUp))
	require.Equal(t, 2, lookedUp.Version)
	require.Equal(t, id2, lookedUp.ID)
}

func TestErrors(t *testing.T) {
	f := newFixture(t)
	f.register("s", recordV1)
	cases := []struct {
		name, method, path string
		body               any
		status, code       int
	}{
		{"unknown schema id", "GET", "/schemas/ids/42", nil, 404, registry.CodeSchemaNotFound},
		{"non-numeric schema id", "GET", "/schemas/ids/x", nil, 404, registry.CodeSchemaNotFound},
		{"unknown subject", "GET", "/subjects/nope/versions", nil, 404, registry.CodeSubjectNotFound},
		{"unknown version", "GET", "/subjects/s/versions/7", nil, 404, registry.CodeVersionNotFound},
		{"bad version", "GET", "/subjects/s/versions/x", nil, 422, registry.CodeInvalidVersion},
		{"lookup unknown schema", "POST", "/subjects/s", map[string]string{"schema": recordV2}, 404, registry.CodeSchemaNotFound},
		{"lookup unknown subject", "POST", "/subjects/nope", map[string]string{"schema": recordV1}, 404, registry.CodeSubjectNotFound},
		{"not avro", "POST", "/subjects/s/versions", map[string]string{"schema": `{"type":"recrd"}`}, 422, registry.CodeInvalidSchema},
		{"not json", "POST", "/subjects/s/versions", map[string]string{"schema": `{"type":`}, 422, registry.CodeInvalidSchema},
		{"bad compatibility", "PUT", "/config", map[string]string{"compatibility": "SOMETIMES"}, 422, registry.CodeInvalidCompat},
		{"unknown path", "GET", "/nothing/here", nil, 404, 404},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e apiError
			require.Equal(t, tc.status, f.call(tc.method, tc.path, tc.body, &e))
			require.Equal(t, tc.code, e.ErrorCode)
			require.NotEmpty(t, e.Message)
		})
	}
	var e apiError
	f.call("GET", "/schemas/ids/42", nil, &e)
	require.Equal(t, apiError{ErrorCode: 40403, Message: "Schema not found"}, e)
}

func TestBarePrimitiveSchema(t *testing.T) {
	f := newFixture(t)
	id := f.register("k-string", `{"name": "scope_key", "type": "string"}`)
	require.Equal(t, id, f.register("k-string", `{"type":"string","name":"scope_key"}`))
	require.NotEqual(t, id, f.register("k2-string", `string`), "a bare primitive is accepted")
}

func TestConfig(t *testing.T) {
	f := newFixture(t)
	var cfg map[string]string
	require.Equal(t, 200, f.call("GET", "/config", nil, &cfg))
	require.Equal(t, "BACKWARD", cfg["compatibilityLevel"])
	require.Equal(t, 200, f.call("PUT", "/config", map[string]string{"compatibility": "NONE"}, &cfg))
	require.Equal(t, "NONE", cfg["compatibility"])
	require.Equal(t, 200, f.call("GET", "/config", nil, &cfg))
	require.Equal(t, "NONE", cfg["compatibilityLevel"])
}

func TestSetSchemaKeepsImportedIDs(t *testing.T) {
	srv := registry.NewServer()
	require.NoError(t, srv.SetSchema(7, recordV1))
	require.NoError(t, srv.SetSchema(7, recordV1Spaced), "same schema again is a no-op")
	require.Error(t, srv.SetSchema(7, recordV2))
	require.Error(t, srv.SetSchema(0, recordV1))
	addr, err := srv.Serve(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	f := &fixture{t: t, url: "http://" + addr}
	require.Equal(t, 7, f.register("s", recordV1), "registering an imported schema reuses its id")
	require.Equal(t, 8, f.register("s", recordV2), "new ids continue after the imported ones")
}

// The hamba/avro registry client (used by Go producers) works against the server.
func TestHambaClient(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	c, err := hreg.NewClient(f.url)
	require.NoError(t, err)

	id, _, err := c.CreateSchema(ctx, "topic-t.R", recordV1)
	require.NoError(t, err)
	again, _, err := c.IsRegistered(ctx, "topic-t.R", recordV1Spaced)
	require.NoError(t, err)
	require.Equal(t, id, again)

	s, err := c.GetSchema(ctx, id)
	require.NoError(t, err)
	require.Equal(t, "t.R", s.(interface{ FullName() string }).FullName())

	info, err := c.GetLatestSchemaInfo(ctx, "topic-t.R")
	require.NoError(t, err)
	require.Equal(t, id, info.ID)
	require.Equal(t, 1, info.Version)

	subjects, err := c.GetSubjects(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"topic-t.R"}, subjects)
	versions, err := c.GetVersions(ctx, "topic-t.R")
	require.NoError(t, err)
	require.Equal(t, []int{1}, versions)

	require.NoError(t, c.SetGlobalCompatibilityLevel(ctx, "FULL"))
	lvl, err := c.GetGlobalCompatibilityLevel(ctx)
	require.NoError(t, err)
	require.Equal(t, "FULL", lvl)

	_, err = c.GetSchema(ctx, 999)
	var herr hreg.Error
	require.ErrorAs(t, err, &herr)
	require.Equal(t, 404, herr.StatusCode)
	require.Equal(t, 40403, herr.Code)
}

// Serve stops listening once its context is cancelled.
func TestServeStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	addr, err := registry.NewServer().Serve(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	conn.Close()
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if errors.Is(err, syscall.ECONNREFUSED) {
			return
		}
		if err == nil { // still listening, or a reset while the listener closes: poll again
			conn.Close()
		}
		require.True(t, time.Now().Before(deadline), "server still accepting 10s after cancel")
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

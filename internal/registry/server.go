// Package registry is a small in-memory schema registry that speaks the
// Confluent Schema Registry REST API as far as the clients of this project
// use it: confluent-kafka-python's SchemaRegistryClient (the Open edX
// producer), hamba/avro's registry client and our own events.RegistryClient.
// It exists for the one-command demo (`consumer dev-registry`, `consumer
// dev`) and for tests; production uses a real registry.
//
// What it does: schemas get global ids, the same schema (compared after JSON
// canonicalisation: key order and whitespace do not matter) always gets the
// same id, every subject keeps an ordered list of versions. Schemas are
// checked to be parseable Avro. What it does not do: compatibility checks
// (the level is stored and reported, never enforced), schema references,
// modes, contexts, soft-delete history, authentication.
package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/hamba/avro/v2"
)

// ContentType is the media type of every response, as the real registry sends it.
const ContentType = "application/vnd.schemaregistry.v1+json"

// Error codes of the Confluent API that clients act on.
const (
	CodeSubjectNotFound = 40401
	CodeVersionNotFound = 40402
	CodeSchemaNotFound  = 40403
	CodeInvalidSchema   = 42201
	CodeInvalidVersion  = 42202
	CodeInvalidCompat   = 42203

	CodeSubjectCompatNotFound = 40408
)

const maxBody = 4 << 20

// bareName is an unquoted primitive or type name, which confluent-kafka-python
// accepts as a schema declaration.
var bareName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

// Server is the registry. Its zero value is not usable; build it with
// NewServer. It is safe for concurrent use.
type Server struct {
	mux *http.ServeMux

	mu            sync.Mutex
	schemas       map[int]string // id -> schema text as first registered
	byCanon       map[string]int // canonical text -> id
	subjects      map[string][]int
	nextID        int
	compat        string
	subjectCompat map[string]string
}

// NewServer returns an empty registry with compatibility level BACKWARD,
// the real registry's default.
func NewServer() *Server {
	s := &Server{
		mux:           http.NewServeMux(),
		schemas:       map[int]string{},
		byCanon:       map[string]int{},
		subjects:      map[string][]int{},
		nextID:        1,
		compat:        "BACKWARD",
		subjectCompat: map[string]string{},
	}
	s.mux.HandleFunc("POST /subjects/{subject}/versions", s.register)
	s.mux.HandleFunc("POST /subjects/{subject}", s.lookup)
	s.mux.HandleFunc("GET /subjects", s.listSubjects)
	s.mux.HandleFunc("GET /subjects/{subject}/versions", s.listVersions)
	s.mux.HandleFunc("GET /subjects/{subject}/versions/{version}", s.getVersion)
	s.mux.HandleFunc("GET /subjects/{subject}/versions/{version}/schema", s.getVersionSchema)
	s.mux.HandleFunc("DELETE /subjects/{subject}", s.deleteSubject)
	s.mux.HandleFunc("GET /schemas/ids/{id}", s.getSchema)
	s.mux.HandleFunc("GET /schemas/ids/{id}/versions", s.getSchemaVersions)
	s.mux.HandleFunc("GET /schemas/ids/{id}/subjects", s.getSchemaSubjects)
	s.mux.HandleFunc("GET /schemas/types", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, []string{"AVRO"})
	})
	s.mux.HandleFunc("GET /config", s.getConfig)
	s.mux.HandleFunc("PUT /config", s.putConfig)
	s.mux.HandleFunc("GET /config/{subject}", s.getConfig)
	s.mux.HandleFunc("PUT /config/{subject}", s.putConfig)
	s.mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{})
	})
	return s
}

// ServeHTTP implements http.Handler. Unknown paths get a JSON 404 like the
// real registry's, not the mux's plain-text one.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		writeError(w, http.StatusNotFound, 404, "HTTP 404 Not Found")
		return
	}
	s.mux.ServeHTTP(w, r)
}

// SetSchema stores schema under a fixed id without a subject, as the real
// registry's IMPORT mode does. Tests use it to replay schemas captured
// elsewhere (the shared test vectors) under their original ids. Setting the
// same schema again is a no-op; a different schema for a taken id is an error.
func (s *Server) SetSchema(id int, schema string) error {
	if id <= 0 {
		return fmt.Errorf("set schema %d: id must be positive", id)
	}
	canon, err := canonicalize(schema)
	if err != nil {
		return fmt.Errorf("set schema %d: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.schemas[id]; ok {
		if oc, _ := canonicalize(old); oc != canon {
			return fmt.Errorf("set schema %d: id already holds a different schema", id)
		}
		return nil
	}
	s.schemas[id] = schema
	if _, ok := s.byCanon[canon]; !ok {
		s.byCanon[canon] = id
	}
	if id >= s.nextID {
		s.nextID = id + 1
	}
	return nil
}

type schemaRequest struct {
	Schema     string            `json:"schema"`
	SchemaType string            `json:"schemaType,omitempty"`
	References []json.RawMessage `json:"references,omitempty"`
}

func readSchemaRequest(w http.ResponseWriter, r *http.Request) (schemaRequest, string, bool) {
	var req schemaRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, 400, "invalid request body: "+err.Error())
		return req, "", false
	}
	if req.SchemaType != "" && req.SchemaType != "AVRO" {
		writeError(w, http.StatusUnprocessableEntity, CodeInvalidSchema, "only AVRO schemas are supported")
		return req, "", false
	}
	if len(req.References) > 0 {
		writeError(w, http.StatusUnprocessableEntity, CodeInvalidSchema, "schema references are not supported")
		return req, "", false
	}
	canon, err := canonicalize(req.Schema)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, CodeInvalidSchema, "Invalid schema: "+err.Error())
		return req, "", false
	}
	return req, canon, true
}

func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	req, canon, ok := readSchemaRequest(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, known := s.byCanon[canon]
	if !known {
		id = s.nextID
		s.nextID++
		s.schemas[id] = req.Schema
		s.byCanon[canon] = id
	}
	if !slices.Contains(s.subjects[subject], id) {
		s.subjects[subject] = append(s.subjects[subject], id)
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id})
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	_, canon, ok := readSchemaRequest(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	versions, found := s.subjects[subject]
	if !found {
		writeError(w, http.StatusNotFound, CodeSubjectNotFound, "Subject '"+subject+"' not found.")
		return
	}
	id, known := s.byCanon[canon]
	if known {
		for i, v := range versions {
			if v == id {
				writeJSON(w, http.StatusOK, s.versionBody(subject, i+1, id))
				return
			}
		}
	}
	writeError(w, http.StatusNotFound, CodeSchemaNotFound, "Schema not found")
}

func (s *Server) listSubjects(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	names := make([]string, 0, len(s.subjects))
	for name := range s.subjects {
		names = append(names, name)
	}
	s.mu.Unlock()
	sort.Strings(names)
	writeJSON(w, http.StatusOK, names)
}

func (s *Server) listVersions(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	s.mu.Lock()
	versions, found := s.subjects[subject]
	n := len(versions)
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, CodeSubjectNotFound, "Subject '"+subject+"' not found.")
		return
	}
	writeJSON(w, http.StatusOK, versionNumbers(n))
}

// version resolves {version|latest} of a subject; it writes the error
// response itself and reports ok=false when there is none.
func (s *Server) version(w http.ResponseWriter, r *http.Request) (subject string, version, id int, ok bool) {
	subject = r.PathValue("subject")
	raw := r.PathValue("version")
	s.mu.Lock()
	defer s.mu.Unlock()
	versions, found := s.subjects[subject]
	if !found {
		writeError(w, http.StatusNotFound, CodeSubjectNotFound, "Subject '"+subject+"' not found.")
		return "", 0, 0, false
	}
	if raw == "latest" || raw == "-1" {
		version = len(versions)
	} else {
		v, err := strconv.Atoi(raw)
		if err != nil || v <= 0 {
			writeError(w, http.StatusUnprocessableEntity, CodeInvalidVersion,
				"The specified version '"+raw+"' is not a valid version id.")
			return "", 0, 0, false
		}
		version = v
	}
	if version < 1 || version > len(versions) {
		writeError(w, http.StatusNotFound, CodeVersionNotFound, "Version "+raw+" not found.")
		return "", 0, 0, false
	}
	return subject, version, versions[version-1], true
}

func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) {
	subject, version, id, ok := s.version(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	body := s.versionBody(subject, version, id)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, body)
}

// getVersionSchema returns the bare schema, as the real registry does.
func (s *Server) getVersionSchema(w http.ResponseWriter, r *http.Request) {
	_, _, id, ok := s.version(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	text := s.schemas[id]
	s.mu.Unlock()
	w.Header().Set("Content-Type", ContentType)
	_, _ = w.Write([]byte(text))
}

// versionBody must be called with s.mu held.
func (s *Server) versionBody(subject string, version, id int) map[string]any {
	return map[string]any{"subject": subject, "version": version, "id": id, "schema": s.schemas[id]}
}

func (s *Server) deleteSubject(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	s.mu.Lock()
	versions, found := s.subjects[subject]
	delete(s.subjects, subject)
	delete(s.subjectCompat, subject)
	s.mu.Unlock()
	if !found {
		writeError(w, http.StatusNotFound, CodeSubjectNotFound, "Subject '"+subject+"' not found.")
		return
	}
	writeJSON(w, http.StatusOK, versionNumbers(len(versions)))
}

// versionNumbers is [1..n], a subject's version list.
func versionNumbers(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i + 1
	}
	return out
}

// schemaID parses {id}; it writes the 404 itself and reports ok=false when
// the id is not known.
func (s *Server) schemaID(w http.ResponseWriter, r *http.Request) (int, string, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	s.mu.Lock()
	text, found := s.schemas[id]
	s.mu.Unlock()
	if err != nil || !found {
		writeError(w, http.StatusNotFound, CodeSchemaNotFound, "Schema not found")
		return 0, "", false
	}
	return id, text, true
}

func (s *Server) getSchema(w http.ResponseWriter, r *http.Request) {
	if _, text, ok := s.schemaID(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"schema": text})
	}
}

type subjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// usages lists every subject version holding id, sorted; s.mu must be held.
func (s *Server) usages(id int) []subjectVersion {
	out := []subjectVersion{}
	for subject, versions := range s.subjects {
		for i, v := range versions {
			if v == id {
				out = append(out, subjectVersion{Subject: subject, Version: i + 1})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Subject != out[j].Subject {
			return out[i].Subject < out[j].Subject
		}
		return out[i].Version < out[j].Version
	})
	return out
}

func (s *Server) getSchemaVersions(w http.ResponseWriter, r *http.Request) {
	id, _, ok := s.schemaID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	out := s.usages(id)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getSchemaSubjects(w http.ResponseWriter, r *http.Request) {
	id, _, ok := s.schemaID(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	usages := s.usages(id)
	s.mu.Unlock()
	out := []string{}
	for _, u := range usages {
		if len(out) == 0 || out[len(out)-1] != u.Subject {
			out = append(out, u.Subject)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	s.mu.Lock()
	level, ok := s.subjectCompat[subject]
	if !ok {
		level = s.compat
	}
	s.mu.Unlock()
	if subject != "" && !ok && r.URL.Query().Get("defaultToGlobal") != "true" {
		writeError(w, http.StatusNotFound, CodeSubjectCompatNotFound, "Subject '"+subject+"' does not have subject-level compatibility configured")
		return
	}
	// The real registry answers compatibilityLevel; hamba/avro's client reads
	// compatibility. Both are sent.
	writeJSON(w, http.StatusOK, map[string]string{"compatibilityLevel": level, "compatibility": level})
}

var compatLevels = map[string]bool{
	"BACKWARD": true, "BACKWARD_TRANSITIVE": true, "FORWARD": true, "FORWARD_TRANSITIVE": true,
	"FULL": true, "FULL_TRANSITIVE": true, "NONE": true,
}

func (s *Server) putConfig(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Compatibility string `json:"compatibility"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, 400, "invalid request body: "+err.Error())
		return
	}
	if !compatLevels[req.Compatibility] {
		writeError(w, http.StatusUnprocessableEntity, CodeInvalidCompat, "Invalid compatibility level")
		return
	}
	subject := r.PathValue("subject")
	s.mu.Lock()
	if subject == "" {
		s.compat = req.Compatibility
	} else {
		s.subjectCompat[subject] = req.Compatibility
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]string{"compatibility": req.Compatibility})
}

// canonicalize returns the form two schemas are compared in: the JSON
// re-encoded with sorted keys and no insignificant whitespace. A bare
// primitive name ("string" without quotes) is accepted as the Python client
// accepts it. The schema must parse as Avro on its own (a fresh name cache,
// so one schema cannot lean on names another one defined).
func canonicalize(schema string) (string, error) {
	text := bytes.TrimSpace([]byte(schema))
	if len(text) == 0 {
		return "", fmt.Errorf("empty schema")
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil || dec.More() {
		if !bareName.Match(text) {
			return "", fmt.Errorf("schema is not valid JSON")
		}
		v = string(text)
		text, _ = json.Marshal(v)
	}
	if _, err := avro.ParseBytesWithCache(text, "", &avro.SchemaCache{}); err != nil {
		return "", err
	}
	out, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func writeError(w http.ResponseWriter, status, code int, message string) {
	writeJSON(w, status, map[string]any{"error_code": code, "message": message})
}

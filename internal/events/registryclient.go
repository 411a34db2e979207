package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SchemaSource fetches writer schemas by id. SchemaByID returns the schema
// text; an error wrapping ErrSchemaNotFound when the registry says the id
// does not exist; any other error is treated by the Decoder as transient.
// The Decoder caches what it derives from a schema, so a source need not.
type SchemaSource interface {
	SchemaByID(ctx context.Context, id int) (string, error)
}

// Registrar registers a schema under a subject and returns its id
// (idempotent: the same schema gets the same id).
type Registrar interface {
	Register(ctx context.Context, subject, schema string) (int, error)
}

// RegistryOptions configures a RegistryClient.
type RegistryOptions struct {
	// Username and Password enable HTTP basic auth (Confluent Cloud API
	// key/secret). When both are empty, credentials in the URL's userinfo
	// are used, as confluent-kafka-python does.
	Username, Password string
	// HTTPClient defaults to a client with a 10 s timeout.
	HTTPClient *http.Client
}

// RegistryClient is a minimal Confluent Schema Registry client: fetch a
// schema by id, register a schema under a subject. It implements
// SchemaSource and Registrar. Safe for concurrent use.
type RegistryClient struct {
	base       *url.URL
	user, pass string
	auth       bool
	hc         *http.Client
}

// RegistryError is an error answer of the registry.
type RegistryError struct {
	StatusCode int
	Code       int    `json:"error_code"`
	Message    string `json:"message"`
}

func (e *RegistryError) Error() string {
	return fmt.Sprintf("schema registry: HTTP %d: error_code %d: %s", e.StatusCode, e.Code, e.Message)
}

// NewRegistryClient returns a client for the registry at baseURL
// (http[s]://host[:port][/path]).
func NewRegistryClient(baseURL string, opts RegistryOptions) (*RegistryClient, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil {
		return nil, fmt.Errorf("schema registry url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("schema registry url %q: want http(s)://host[:port]", u.Redacted())
	}
	c := &RegistryClient{hc: opts.HTTPClient, user: opts.Username, pass: opts.Password}
	c.auth = c.user != "" || c.pass != ""
	if u.User != nil {
		if !c.auth {
			c.user = u.User.Username()
			c.pass, _ = u.User.Password()
			c.auth = true
		}
		u.User = nil
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
	}
	c.base = u
	if c.hc == nil {
		c.hc = &http.Client{Timeout: 10 * time.Second}
	}
	return c, nil
}

// SchemaByID fetches GET /schemas/ids/{id}. Only a 404 carrying error code
// 40403 counts as "not found": a 404 without it comes from a wrong URL or a
// proxy, which is a configuration problem, not a bad message.
func (c *RegistryClient) SchemaByID(ctx context.Context, id int) (string, error) {
	var out struct {
		Schema *string `json:"schema"`
	}
	err := c.do(ctx, http.MethodGet, "schemas/ids/"+strconv.Itoa(id), nil, &out)
	if err != nil {
		var re *RegistryError
		if errors.As(err, &re) && re.StatusCode == http.StatusNotFound && re.Code == 40403 {
			return "", fmt.Errorf("schema id %d: %w: %w", id, ErrSchemaNotFound, err)
		}
		return "", fmt.Errorf("schema id %d: %w", id, err)
	}
	if out.Schema == nil {
		return "", fmt.Errorf("schema id %d: registry answer has no schema", id)
	}
	return *out.Schema, nil
}

// Register posts schema to /subjects/{subject}/versions and returns its id.
func (c *RegistryClient) Register(ctx context.Context, subject, schema string) (int, error) {
	var out struct {
		ID *int `json:"id"`
	}
	body := map[string]string{"schema": schema}
	if err := c.do(ctx, http.MethodPost, "subjects/"+url.PathEscape(subject)+"/versions", body, &out); err != nil {
		return 0, fmt.Errorf("register subject %s: %w", subject, err)
	}
	if out.ID == nil {
		return 0, fmt.Errorf("register subject %s: registry answer has no id", subject)
	}
	return *out.ID, nil
}

func (c *RegistryClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ref, err := url.Parse(path)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base.ResolveReference(ref).String(), body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.schemaregistry.v1+json, application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	}
	if c.auth {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("read registry answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		re := &RegistryError{StatusCode: resp.StatusCode}
		_ = json.Unmarshal(data, re)
		return re
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("registry answer (HTTP %d) is not JSON: %w", resp.StatusCode, err)
	}
	return nil
}

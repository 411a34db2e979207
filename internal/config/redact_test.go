package config_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/config"
)

func TestSecretsRedactedInSlogJSON(t *testing.T) {
	cfg, err := load(t, nil, map[string]string{
		"AUTHZ_CONSUMER_DATABASE_URL":             "mysql://edx:db-s3cret@mysql:3306/edxapp",
		"AUTHZ_CONSUMER_SASL_MECHANISM":           "PLAIN",
		"AUTHZ_CONSUMER_SASL_USER":                "consumer",
		"AUTHZ_CONSUMER_SASL_PASSWORD":            "sasl-s3cret",
		"AUTHZ_CONSUMER_SCHEMA_REGISTRY_URL":      "https://reg:url-s3cret@registry:8081",
		"AUTHZ_CONSUMER_SCHEMA_REGISTRY_USER":     "reg",
		"AUTHZ_CONSUMER_SCHEMA_REGISTRY_PASSWORD": "registry-s3cret",
	})
	require.NoError(t, err)

	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			c := cfg
			c.LogFormat = format
			c.Logger(&buf).Info("starting", "config", c)
			c.Logger(&buf).Info("starting", "config", &c)
			out := buf.String()
			require.NotContains(t, out, "s3cret", out)
			require.Contains(t, out, "consumer", "non-secret settings stay visible")
		})
	}

	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("starting", "config", cfg)
	var line struct {
		Config map[string]any `json:"config"`
	}
	require.NoError(t, json.Unmarshal(buf.Bytes(), &line), buf.String())
	require.Equal(t, "mysql://edx:***@mysql:3306/edxapp", line.Config["database_url"])
	require.Equal(t, "***", line.Config["sasl_password"])
	require.Equal(t, "***", line.Config["schema_registry_password"])
	require.Equal(t, "https://reg:***@registry:8081", line.Config["schema_registry_url"])
	require.Equal(t, "consumer", line.Config["sasl_user"])
	require.Equal(t, "PLAIN", line.Config["sasl_mechanism"])

	require.Equal(t, "sasl-s3cret", cfg.SASLPassword, "Redacted works on a copy")
}

func TestMaskURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"sqlite:///var/lib/a.db", "sqlite:///var/lib/a.db"},
		{"mysql://edx:pw@h:3306/db", "mysql://edx:***@h:3306/db"},
		{"mysql://edx@h:3306/db", "mysql://edx@h:3306/db"},
		{"postgres://h/db?password=pw&sslmode=require", "postgres://h/db?password=***&sslmode=require"},
		{"mysql://edx:p%40ss@h/db", "mysql://edx:***@h/db"},
		{"mysql://edx:bad%zz@h/db", "mysql://***"},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, config.MaskURL(tc.in), tc.in)
	}
}

func TestRedactedLeavesEmptyPasswordsEmpty(t *testing.T) {
	r := config.Config{DatabaseURL: "sqlite:///x.db"}.Redacted()
	require.Empty(t, r.SASLPassword)
	require.Empty(t, r.SchemaRegistryPassword)
}

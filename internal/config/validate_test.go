package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/config"
)

func TestValidateNamesVariableAndFlag(t *testing.T) {
	p := newPKI(t)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a certificate"), 0o600))

	tests := []struct {
		name string
		env  map[string]string
		want []string // each must appear in the error; the first names the variable
	}{
		{"bad sasl mechanism", map[string]string{"AUTHZ_CONSUMER_SASL_MECHANISM": "FOO"},
			[]string{`AUTHZ_CONSUMER_SASL_MECHANISM (--sasl-mechanism): "FOO" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512`}},
		{"sasl without password", map[string]string{"AUTHZ_CONSUMER_SASL_MECHANISM": "PLAIN", "AUTHZ_CONSUMER_SASL_USER": "u"},
			[]string{"AUTHZ_CONSUMER_SASL_PASSWORD (--sasl-password)"}},
		{"sasl without user", map[string]string{"AUTHZ_CONSUMER_SASL_MECHANISM": "SCRAM-SHA-256", "AUTHZ_CONSUMER_SASL_PASSWORD": "p"},
			[]string{"AUTHZ_CONSUMER_SASL_USER (--sasl-user)"}},
		{"sasl credentials without mechanism", map[string]string{"AUTHZ_CONSUMER_SASL_USER": "u", "AUTHZ_CONSUMER_SASL_PASSWORD": "p"},
			[]string{"AUTHZ_CONSUMER_SASL_MECHANISM (--sasl-mechanism)"}},
		{"cert without key", map[string]string{"AUTHZ_CONSUMER_TLS": "true", "AUTHZ_CONSUMER_TLS_CERT_FILE": p.clientCert},
			[]string{"AUTHZ_CONSUMER_TLS_KEY_FILE (--tls-key-file)"}},
		{"key without cert", map[string]string{"AUTHZ_CONSUMER_TLS": "true", "AUTHZ_CONSUMER_TLS_KEY_FILE": p.clientKey},
			[]string{"AUTHZ_CONSUMER_TLS_CERT_FILE (--tls-cert-file)"}},
		{"cert and key do not match", map[string]string{"AUTHZ_CONSUMER_TLS": "true", "AUTHZ_CONSUMER_TLS_CERT_FILE": p.clientCert, "AUTHZ_CONSUMER_TLS_KEY_FILE": garbage},
			[]string{"AUTHZ_CONSUMER_TLS_CERT_FILE (--tls-cert-file)", "AUTHZ_CONSUMER_TLS_KEY_FILE (--tls-key-file)"}},
		{"unreadable CA file", map[string]string{"AUTHZ_CONSUMER_TLS": "true", "AUTHZ_CONSUMER_TLS_CA_FILE": filepath.Join(t.TempDir(), "missing.pem")},
			[]string{"AUTHZ_CONSUMER_TLS_CA_FILE (--tls-ca-file)", "no such file"}},
		{"CA file without certificate", map[string]string{"AUTHZ_CONSUMER_TLS": "true", "AUTHZ_CONSUMER_TLS_CA_FILE": garbage},
			[]string{"AUTHZ_CONSUMER_TLS_CA_FILE (--tls-ca-file)", "no PEM certificate"}},
		{"TLS files while TLS off", map[string]string{"AUTHZ_CONSUMER_TLS_CA_FILE": p.caFile},
			[]string{"AUTHZ_CONSUMER_TLS_CA_FILE (--tls-ca-file)", "AUTHZ_CONSUMER_TLS=true"}},
		{"bad database scheme", map[string]string{"AUTHZ_CONSUMER_DATABASE_URL": "oracle://u:secret@h/db"},
			[]string{"AUTHZ_CONSUMER_DATABASE_URL (--database-url)", `scheme "oracle"`}},
		{"database URL without scheme", map[string]string{"AUTHZ_CONSUMER_DATABASE_URL": "/var/lib/x.db"},
			[]string{"AUTHZ_CONSUMER_DATABASE_URL (--database-url)", "no scheme"}},
		{"mysql without database", map[string]string{"AUTHZ_CONSUMER_DATABASE_URL": "mysql://u:secret@h:3306"},
			[]string{"AUTHZ_CONSUMER_DATABASE_URL (--database-url)", "no database"}},
		{"postgres without host", map[string]string{"AUTHZ_CONSUMER_DATABASE_URL": "postgres:///edx"},
			[]string{"AUTHZ_CONSUMER_DATABASE_URL (--database-url)", "no host"}},
		{"sqlite without path", map[string]string{"AUTHZ_CONSUMER_DATABASE_URL": "sqlite:///"},
			[]string{"AUTHZ_CONSUMER_DATABASE_URL (--database-url)"}},
		{"empty brokers", map[string]string{"AUTHZ_CONSUMER_BROKERS": " , "},
			[]string{"AUTHZ_CONSUMER_BROKERS (--brokers)", "no broker"}},
		{"broker without port", map[string]string{"AUTHZ_CONSUMER_BROKERS": "kafka"},
			[]string{"AUTHZ_CONSUMER_BROKERS (--brokers)", `"kafka"`}},
		{"bad http addr", map[string]string{"AUTHZ_CONSUMER_HTTP_ADDR": "8080"},
			[]string{"AUTHZ_CONSUMER_HTTP_ADDR (--http-addr)"}},
		{"http port out of range", map[string]string{"AUTHZ_CONSUMER_HTTP_ADDR": ":70000"},
			[]string{"AUTHZ_CONSUMER_HTTP_ADDR (--http-addr)", "65535"}},
		{"bad log level", map[string]string{"AUTHZ_CONSUMER_LOG_LEVEL": "verbose"},
			[]string{`AUTHZ_CONSUMER_LOG_LEVEL (--log-level): "verbose" is not one of debug, info, warn, error`}},
		{"bad log format", map[string]string{"AUTHZ_CONSUMER_LOG_FORMAT": "xml"},
			[]string{"AUTHZ_CONSUMER_LOG_FORMAT (--log-format)"}},
		{"bad topic", map[string]string{"AUTHZ_CONSUMER_TOPIC": "has space"},
			[]string{"AUTHZ_CONSUMER_TOPIC (--topic)"}},
		{"dead letter equals topic", map[string]string{"AUTHZ_CONSUMER_TOPIC": "t", "AUTHZ_CONSUMER_DEAD_LETTER_TOPIC": "t"},
			[]string{"AUTHZ_CONSUMER_DEAD_LETTER_TOPIC (--dead-letter-topic)"}},
		{"empty group", map[string]string{"AUTHZ_CONSUMER_GROUP_ID": " "},
			[]string{"AUTHZ_CONSUMER_GROUP_ID (--group-id)"}},
		{"empty watched flag", map[string]string{"AUTHZ_CONSUMER_WATCHED_FLAG": " "},
			[]string{"AUTHZ_CONSUMER_WATCHED_FLAG (--watched-flag)"}},
		{"registry not http", map[string]string{"AUTHZ_CONSUMER_SCHEMA_REGISTRY_URL": "ftp://r"},
			[]string{"AUTHZ_CONSUMER_SCHEMA_REGISTRY_URL (--schema-registry-url)"}},
		{"registry user without password", map[string]string{"AUTHZ_CONSUMER_SCHEMA_REGISTRY_URL": "https://r", "AUTHZ_CONSUMER_SCHEMA_REGISTRY_USER": "u"},
			[]string{"AUTHZ_CONSUMER_SCHEMA_REGISTRY_PASSWORD (--schema-registry-password)"}},
		{"zero backoff", map[string]string{"AUTHZ_CONSUMER_RETRY_MAX_BACKOFF": "0s"},
			[]string{"AUTHZ_CONSUMER_RETRY_MAX_BACKOFF (--retry-max-backoff)"}},
		{"negative not-visible limit", map[string]string{"AUTHZ_CONSUMER_NOT_VISIBLE_LIMIT": "-1m"},
			[]string{"AUTHZ_CONSUMER_NOT_VISIBLE_LIMIT (--not-visible-limit)"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := load(t, nil, tc.env)
			require.NoError(t, err)
			err = cfg.Validate()
			require.Error(t, err)
			for _, w := range tc.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "secret", "a validation error must not print a password")
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	cfg, err := load(t, nil, map[string]string{
		"AUTHZ_CONSUMER_LOG_LEVEL":      "loud",
		"AUTHZ_CONSUMER_SASL_MECHANISM": "FOO",
		"AUTHZ_CONSUMER_HTTP_ADDR":      "nope",
	})
	require.NoError(t, err)
	msg := cfg.Validate().Error()
	require.Len(t, strings.Split(msg, "\n"), 3, msg)
}

func TestValidateGoodSettings(t *testing.T) {
	p := newPKI(t)
	for _, env := range []map[string]string{
		{"AUTHZ_CONSUMER_DATABASE_URL": "mysql://edx:pw@mysql:3306/edxapp"},
		{"AUTHZ_CONSUMER_DATABASE_URL": "postgres://edx:pw@pg/edxapp?sslmode=disable"},
		{"AUTHZ_CONSUMER_DATABASE_URL": "postgresql://pg:5432/edxapp"},
		{"AUTHZ_CONSUMER_DATABASE_URL": "sqlite://relative.db"},
		{"AUTHZ_CONSUMER_DATABASE_URL": "sqlite3:///tmp/a.db"},
		{"AUTHZ_CONSUMER_DATABASE_URL": "mariadb://edx:pw@mariadb/edxapp"},
		{"AUTHZ_CONSUMER_HTTP_ADDR": "127.0.0.1:0"},
		{"AUTHZ_CONSUMER_SASL_MECHANISM": "plain", "AUTHZ_CONSUMER_SASL_USER": "u", "AUTHZ_CONSUMER_SASL_PASSWORD": "p"},
		{"AUTHZ_CONSUMER_TLS": "true"},
		{"AUTHZ_CONSUMER_TLS": "true", "AUTHZ_CONSUMER_TLS_CA_FILE": p.caFile,
			"AUTHZ_CONSUMER_TLS_CERT_FILE": p.clientCert, "AUTHZ_CONSUMER_TLS_KEY_FILE": p.clientKey},
		{"AUTHZ_CONSUMER_SCHEMA_REGISTRY_URL": "https://r:8081", "AUTHZ_CONSUMER_SCHEMA_REGISTRY_USER": "u", "AUTHZ_CONSUMER_SCHEMA_REGISTRY_PASSWORD": "p"},
	} {
		cfg, err := load(t, nil, env)
		require.NoError(t, err)
		require.NoError(t, cfg.Validate(), "%v", env)
	}
}

func TestValidateDatabaseOnlyIgnoresKafka(t *testing.T) {
	cfg, err := load(t, nil, map[string]string{"AUTHZ_CONSUMER_SASL_MECHANISM": "FOO", "AUTHZ_CONSUMER_BROKERS": ","})
	require.NoError(t, err)
	require.NoError(t, cfg.ValidateDatabaseOnly())

	cfg.DatabaseURL = "redis://h/0"
	err = cfg.ValidateDatabaseOnly()
	require.ErrorContains(t, err, "AUTHZ_CONSUMER_DATABASE_URL (--database-url)")
	require.NotContains(t, err.Error(), "SASL")
}

func TestDefaultTopic(t *testing.T) {
	require.Equal(t, "waffle-flag-override-lifecycle", config.DefaultTopic(""))
	require.Equal(t, "dev-waffle-flag-override-lifecycle", config.DefaultTopic("dev"))
}

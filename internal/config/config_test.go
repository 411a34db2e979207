package config_test

import (
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/config"
)

// load runs the same steps as cmd/consumer: register, parse, env, finish.
func load(t *testing.T, args []string, env map[string]string) (config.Config, error) {
	t.Helper()
	var cfg config.Config
	fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
	config.Register(fs, &cfg)
	require.NoError(t, fs.Parse(args))
	if err := config.ApplyEnv(fs, mapLookup(env)); err != nil {
		return cfg, err
	}
	cfg.Finish()
	return cfg, nil
}

func mapLookup(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := load(t, nil, nil)
	require.NoError(t, err)
	require.Equal(t, config.Config{
		DatabaseURL:     "sqlite:///authz-consumer.db",
		Brokers:         []string{"127.0.0.1:9092"},
		Topic:           "waffle-flag-override-lifecycle",
		GroupID:         "authz-flag-consumer",
		DeadLetterTopic: "waffle-flag-override-lifecycle.parked",
		WatchedFlag:     "authz.enable_course_authoring",
		HTTPAddr:        ":8080",
		LogLevel:        "info",
		LogFormat:       "json",
		RetryMaxBackoff: 30 * time.Second,
		NotVisibleLimit: 15 * time.Second,
		SweepInterval:   time.Minute,

		MinBackoff:        100 * time.Millisecond,
		SessionTimeout:    10 * time.Second,
		HeartbeatInterval: 3 * time.Second,
		RebalanceTimeout:  30 * time.Second,
		CommitInterval:    250 * time.Millisecond,
		LockTimeout:       30 * time.Second,
		ProgressInterval:  5 * time.Second,
	}, cfg)
	require.NoError(t, cfg.Validate(), "laptop defaults must validate")
}

func TestSources(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c config.Config)
	}{
		{
			name: "env overrides default",
			env: map[string]string{
				"AUTHZ_CONSUMER_DATABASE_URL":        "postgres://u:p@db:5432/edx",
				"AUTHZ_CONSUMER_BROKERS":             "k1:9092, k2:9093",
				"AUTHZ_CONSUMER_AUTO_MIGRATE":        "true",
				"AUTHZ_CONSUMER_RETRY_MAX_BACKOFF":   "5s",
				"AUTHZ_CONSUMER_NOT_VISIBLE_LIMIT":   "90s",
				"AUTHZ_CONSUMER_SWEEP_INTERVAL":      "5m",
				"AUTHZ_CONSUMER_RECONCILE_GLOBAL":    "true",
				"AUTHZ_CONSUMER_SASL_MECHANISM":      "scram-sha-512",
				"AUTHZ_CONSUMER_LOG_LEVEL":           "DEBUG",
				"AUTHZ_CONSUMER_WATCHED_FLAG":        "my.flag",
				"AUTHZ_CONSUMER_TLS":                 "1",
				"AUTHZ_CONSUMER_SCHEMA_REGISTRY_URL": "http://registry:8081",
			},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, "postgres://u:p@db:5432/edx", c.DatabaseURL)
				require.Equal(t, []string{"k1:9092", "k2:9093"}, c.Brokers)
				require.True(t, c.AutoMigrate)
				require.True(t, c.TLSEnabled)
				require.Equal(t, 5*time.Second, c.RetryMaxBackoff)
				require.Equal(t, 90*time.Second, c.NotVisibleLimit)
				require.Equal(t, 5*time.Minute, c.SweepInterval)
				require.True(t, c.ReconcileGlobal)
				require.Equal(t, "SCRAM-SHA-512", c.SASLMechanism)
				require.Equal(t, "debug", c.LogLevel)
				require.Equal(t, "my.flag", c.WatchedFlag)
				require.Equal(t, "http://registry:8081", c.SchemaRegistryURL)
			},
		},
		{
			name: "flag overrides env",
			args: []string{"--database-url", "mysql://a:b@h:3306/edxapp", "--brokers", "f:1", "--auto-migrate=false", "--group-id", "g-flag"},
			env: map[string]string{
				"AUTHZ_CONSUMER_DATABASE_URL": "postgres://u:p@db/edx",
				"AUTHZ_CONSUMER_BROKERS":      "e:1,e:2",
				"AUTHZ_CONSUMER_AUTO_MIGRATE": "true",
				"AUTHZ_CONSUMER_GROUP_ID":     "g-env",
			},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, "mysql://a:b@h:3306/edxapp", c.DatabaseURL)
				require.Equal(t, []string{"f:1"}, c.Brokers)
				require.False(t, c.AutoMigrate)
				require.Equal(t, "g-flag", c.GroupID)
			},
		},
		{
			name: "empty env value counts as unset",
			env:  map[string]string{"AUTHZ_CONSUMER_GROUP_ID": "", "AUTHZ_CONSUMER_TLS": ""},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, "authz-flag-consumer", c.GroupID)
				require.False(t, c.TLSEnabled)
			},
		},
		{
			name: "topic derived from prefix",
			env:  map[string]string{"AUTHZ_CONSUMER_TOPIC_PREFIX": "prod"},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, "prod-waffle-flag-override-lifecycle", c.Topic)
				require.Equal(t, "prod-waffle-flag-override-lifecycle.parked", c.DeadLetterTopic)
			},
		},
		{
			name: "explicit topic wins over prefix, dead letter follows topic",
			args: []string{"--topic-prefix", "prod", "--topic", "custom"},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, "custom", c.Topic)
				require.Equal(t, "custom.parked", c.DeadLetterTopic)
			},
		},
		{
			name: "explicit dead-letter topic",
			env:  map[string]string{"AUTHZ_CONSUMER_DEAD_LETTER_TOPIC": "dlq"},
			check: func(t *testing.T, c config.Config) {
				require.Equal(t, "dlq", c.DeadLetterTopic)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := load(t, tc.args, tc.env)
			require.NoError(t, err)
			tc.check(t, cfg)
		})
	}
}

func TestApplyEnvInvalidValueNamesVariable(t *testing.T) {
	tests := []struct{ env, value string }{
		{"AUTHZ_CONSUMER_TLS", "maybe"},
		{"AUTHZ_CONSUMER_AUTO_MIGRATE", "yes please"},
		{"AUTHZ_CONSUMER_RETRY_MAX_BACKOFF", "30"},
		{"AUTHZ_CONSUMER_NOT_VISIBLE_LIMIT", "two minutes"},
	}
	for _, tc := range tests {
		t.Run(tc.env, func(t *testing.T) {
			_, err := load(t, nil, map[string]string{tc.env: tc.value})
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.env)
		})
	}
}

func TestApplyEnvOnlyTouchesConfigFlags(t *testing.T) {
	var cfg config.Config
	fs := pflag.NewFlagSet("replay", pflag.ContinueOnError)
	config.Register(fs, &cfg)
	toTime := fs.String("to-time", "", "command flag, not a setting")
	require.NoError(t, fs.Parse(nil))
	require.NoError(t, config.ApplyEnv(fs, mapLookup(map[string]string{"AUTHZ_CONSUMER_TO_TIME": "2024-01-01T00:00:00Z"})))
	require.Empty(t, *toTime)
}

func TestRegisterHelpNamesEnv(t *testing.T) {
	var cfg config.Config
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	config.Register(fs, &cfg)
	n := 0
	fs.VisitAll(func(f *pflag.Flag) {
		n++
		require.Contains(t, f.Usage, "[env "+config.EnvVar(f.Name)+"]", f.Name)
	})
	require.Equal(t, 32, n, "one flag per Config field")
	require.Equal(t, "AUTHZ_CONSUMER_SCHEMA_REGISTRY_PASSWORD", config.EnvVar("schema-registry-password"))
}

func TestRegisterDatabaseOnly(t *testing.T) {
	var cfg config.Config
	fs := pflag.NewFlagSet("runs", pflag.ContinueOnError)
	config.RegisterDatabase(fs, &cfg)
	require.NoError(t, fs.Parse(nil))
	require.NoError(t, config.ApplyEnv(fs, mapLookup(map[string]string{
		"AUTHZ_CONSUMER_DATABASE_URL": "sqlite:///tmp/x.db",
		"AUTHZ_CONSUMER_BROKERS":      "ignored:1",
	})))
	cfg.Finish()
	require.Equal(t, "sqlite:///tmp/x.db", cfg.DatabaseURL)
	require.Nil(t, fs.Lookup("brokers"))
	require.NoError(t, cfg.ValidateDatabaseOnly())
	require.Equal(t, []string{config.DefaultBroker}, cfg.Brokers, "settings not taken keep their defaults")
}

// A command registers only its parts: its --help lists only its own flags.
func TestRegisterParts(t *testing.T) {
	var cfg config.Config
	fs := pflag.NewFlagSet("replay", pflag.ContinueOnError)
	config.RegisterParts(fs, &cfg, config.Kafka|config.Topic|config.Group)
	var names []string
	fs.VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	require.ElementsMatch(t, []string{"log-level", "log-format", "brokers", "topic-prefix", "topic", "group-id",
		"sasl-mechanism", "sasl-user", "sasl-password", "tls", "tls-ca-file", "tls-cert-file", "tls-key-file"}, names)
	require.NoError(t, fs.Parse([]string{"--brokers", "k:9092"}))
	cfg.Finish()
	require.NoError(t, cfg.Validate(), "the settings not taken have valid defaults")
	require.Equal(t, config.DefaultHTTPAddr, cfg.HTTPAddr)
}

func TestUnknownEnv(t *testing.T) {
	got := config.UnknownEnv([]string{
		"AUTHZ_CONSUMER_DATABSE_URL=sqlite:///x.db", "AUTHZ_CONSUMER_BROKERS=k:9092", "AUTHZ_CONSUMER_BIN=/bin/consumer",
		"AUTHZ_CONSUMER_SOMETHING_ELSE_ENTIRELY=1", "HOME=/root",
	})
	require.Equal(t, []string{
		"warning: AUTHZ_CONSUMER_DATABSE_URL is not a setting and is ignored (did you mean AUTHZ_CONSUMER_DATABASE_URL?)",
		"warning: AUTHZ_CONSUMER_SOMETHING_ELSE_ENTIRELY is not a setting and is ignored",
	}, got)
}

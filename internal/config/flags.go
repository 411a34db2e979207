package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// EnvPrefix starts the name of every environment variable the service reads.
const EnvPrefix = "AUTHZ_CONSUMER_"

// envAnnotation marks the flags ApplyEnv may fill; other flags of the same
// command (--to-time, --org-id, ...) are never taken from the environment.
const envAnnotation = "authz_consumer_env"

// EnvVar is the environment variable of a flag: "sasl-mechanism" ->
// "AUTHZ_CONSUMER_SASL_MECHANISM".
func EnvVar(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// setting reads "AUTHZ_CONSUMER_X (--x)", the way every error points at a setting.
func setting(flag string) string {
	return fmt.Sprintf("%s (--%s)", EnvVar(flag), flag)
}

// Register adds every setting of Config to fs with its default; each help
// text names the environment variable. Use it on commands that talk to
// Kafka (run, dev, replay, parked, publish).
func Register(fs *pflag.FlagSet, cfg *Config) {
	RegisterDatabase(fs, cfg)
	r := registrar{fs}

	r.strings(&cfg.Brokers, "brokers", []string{DefaultBroker},
		"Kafka bootstrap brokers, comma separated host:port")
	r.str(&cfg.TopicPrefix, "topic-prefix", "",
		"topic prefix, as Open edX's EVENT_BUS_TOPIC_PREFIX")
	r.str(&cfg.Topic, "topic", "",
		"topic of flag override events (default <prefix>-"+TopicSuffix+", or "+TopicSuffix+" without prefix)")
	r.str(&cfg.GroupID, "group-id", DefaultGroupID,
		"Kafka consumer group")
	r.str(&cfg.DeadLetterTopic, "dead-letter-topic", "",
		"topic where malformed events are parked (default <topic>"+DeadLetterSuffix+")")

	r.str(&cfg.SchemaRegistryURL, "schema-registry-url", "",
		"Confluent schema registry URL (empty: only JSON events are accepted)")
	r.str(&cfg.SchemaRegistryUser, "schema-registry-user", "",
		"schema registry basic-auth user")
	r.str(&cfg.SchemaRegistryPassword, "schema-registry-password", "",
		"schema registry basic-auth password")

	r.str(&cfg.SASLMechanism, "sasl-mechanism", "",
		"Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)")
	r.str(&cfg.SASLUser, "sasl-user", "",
		"Kafka SASL user")
	r.str(&cfg.SASLPassword, "sasl-password", "",
		"Kafka SASL password")
	r.boolean(&cfg.TLSEnabled, "tls", false,
		"connect to Kafka over TLS")
	r.str(&cfg.TLSCAFile, "tls-ca-file", "",
		"PEM file of CA certificates to trust for Kafka (empty: system roots)")
	r.str(&cfg.TLSCertFile, "tls-cert-file", "",
		"PEM client certificate for Kafka mutual TLS (needs --tls-key-file)")
	r.str(&cfg.TLSKeyFile, "tls-key-file", "",
		"PEM private key of --tls-cert-file")

	r.str(&cfg.WatchedFlag, "watched-flag", DefaultWatchedFlag,
		"waffle flag whose course and org overrides move roles")
	r.boolean(&cfg.AutoMigrate, "auto-migrate", false,
		"migrate roles when the flag's effective state changes (off: events are acknowledged and logged only)")
	r.str(&cfg.HTTPAddr, "http-addr", DefaultHTTPAddr,
		"listen address of /healthz, /readyz and /metrics")
	r.duration(&cfg.RetryMaxBackoff, "retry-max-backoff", DefaultRetryMaxBackoff,
		"longest wait between retries of a transient failure (database or broker down)")
	r.duration(&cfg.NotVisibleLimit, "not-visible-limit", DefaultNotVisibleLimit,
		"how long to wait for an event's override row to become visible (the LMS may publish before its commit) before the event is left to the sweep (recorded as waiting), or parked when the sweep is off")
	r.duration(&cfg.SweepInterval, "sweep-interval", DefaultSweepInterval,
		"how often the sweep reconciles every scope whose override rows changed since the last sweep (heals lost events; runs only with --auto-migrate; 0 turns it off)")
	r.boolean(&cfg.ReconcileGlobal, "reconcile-global", false,
		"when the flag changes for everyone (waffle_flag.everyone), reconcile every org that has no override of its own (off: the flip is only reported)")
}

// RegisterDatabase adds only the settings a database-only command needs
// (migrate, rollback, runs, schema): the database URL and logging. Pair it
// with ValidateDatabaseOnly. Register calls it; do not call both on one set.
func RegisterDatabase(fs *pflag.FlagSet, cfg *Config) {
	r := registrar{fs}
	r.str(&cfg.DatabaseURL, "database-url", DefaultDatabaseURL,
		"database URL (sqlite:///relative.db or sqlite:////abs/path.db, mysql://user:pass@host:port/db, postgres://user:pass@host:port/db)")
	r.str(&cfg.LogLevel, "log-level", DefaultLogLevel,
		"log level: debug, info, warn or error")
	r.str(&cfg.LogFormat, "log-format", DefaultLogFormat,
		"log format: json or text")
}

// registrar defines a flag, names its variable in the help text and marks
// it for ApplyEnv, in one step.
type registrar struct{ fs *pflag.FlagSet }

func (r registrar) str(p *string, flag, def, text string) {
	r.fs.StringVar(p, flag, def, withEnv(text, flag))
	r.mark(flag)
}

func (r registrar) strings(p *[]string, flag string, def []string, text string) {
	r.fs.StringSliceVar(p, flag, def, withEnv(text, flag))
	r.mark(flag)
}

func (r registrar) boolean(p *bool, flag string, def bool, text string) {
	r.fs.BoolVar(p, flag, def, withEnv(text, flag))
	r.mark(flag)
}

func (r registrar) duration(p *time.Duration, flag string, def time.Duration, text string) {
	r.fs.DurationVar(p, flag, def, withEnv(text, flag))
	r.mark(flag)
}

func (r registrar) mark(flag string) {
	// SetAnnotation fails only for an unknown flag, and the flag was just defined.
	_ = r.fs.SetAnnotation(flag, envAnnotation, []string{EnvVar(flag)})
}

func withEnv(text, flag string) string {
	return text + " [env " + EnvVar(flag) + "]"
}

// ApplyEnv fills every flag registered by Register or RegisterDatabase that
// was not given on the command line from its AUTHZ_CONSUMER_* variable, read
// through lookup (os.LookupEnv in main). An empty value counts as unset, so a
// Helm chart may render every variable. A value that does not parse is an
// error naming the variable. Flags given on the command line always win.
// Changed stays false for flags filled from the environment.
func ApplyEnv(fs *pflag.FlagSet, lookup func(string) (string, bool)) error {
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		env, ok := f.Annotations[envAnnotation]
		if !ok || len(env) == 0 || f.Changed {
			return
		}
		v, ok := lookup(env[0])
		if !ok || v == "" {
			return
		}
		if err := f.Value.Set(v); err != nil {
			errs = append(errs, fmt.Errorf("%s: invalid value %q for --%s (%s expected): %w",
				env[0], v, f.Name, f.Value.Type(), err))
		}
	})
	return joinErrors(errs)
}

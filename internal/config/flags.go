package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"authz-flag-consumer/internal/authz"
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

// Part is a group of settings; a command registers only the parts it uses,
// so its --help lists only its own flags.
type Part uint

const (
	// Database is --database-url.
	Database Part = 1 << iota
	// Kafka is the connection: --brokers, SASL and TLS.
	Kafka
	// Topic is --topic-prefix and --topic.
	Topic
	// Group is --group-id.
	Group
	// DeadLetter is --dead-letter-topic.
	DeadLetter
	// Registry is the schema registry URL and credentials.
	Registry
	// Watch is --watched-flag.
	Watch
	// Service is what only `run` (and dev) use: --auto-migrate, --http-addr,
	// retries, the sweep, and the consumer group timings.
	Service
	// Lock is --lock-timeout and --progress-interval, for every command
	// that runs migrations.
	Lock

	// All is every setting, as `run` takes them.
	All = Database | Kafka | Topic | Group | DeadLetter | Registry | Watch | Service | Lock
)

// Register adds every setting of Config to fs with its default; each help
// text names the environment variable. Use it on `run` and `dev`.
func Register(fs *pflag.FlagSet, cfg *Config) { RegisterParts(fs, cfg, All) }

// RegisterParts adds the logging settings and the settings of parts to fs.
// Every other field of cfg is set to its default, so Validate passes for
// the settings a command does not take.
func RegisterParts(fs *pflag.FlagSet, cfg *Config, parts Part) {
	if parts != All {
		RegisterParts(pflag.NewFlagSet("defaults", pflag.ContinueOnError), cfg, All)
	}
	r := registrar{fs}
	if parts&Database != 0 {
		r.str(&cfg.DatabaseURL, "database-url", DefaultDatabaseURL,
			"database URL (sqlite:///relative.db or sqlite:////abs/path.db, mysql://user:pass@host:port/db, postgres://user:pass@host:port/db)")
	}
	r.str(&cfg.LogLevel, "log-level", DefaultLogLevel,
		"log level: debug, info, warn or error")
	r.str(&cfg.LogFormat, "log-format", DefaultLogFormat,
		"log format: json or text")

	if parts&Kafka != 0 {
		r.strings(&cfg.Brokers, "brokers", []string{DefaultBroker},
			"Kafka bootstrap brokers, comma separated host:port")
	}
	if parts&Topic != 0 {
		r.str(&cfg.TopicPrefix, "topic-prefix", "",
			"topic prefix, as Open edX's EVENT_BUS_TOPIC_PREFIX")
		r.str(&cfg.Topic, "topic", "",
			"topic of flag override events (default <prefix>-"+TopicSuffix+", or "+TopicSuffix+" without prefix)")
	}
	if parts&Group != 0 {
		r.str(&cfg.GroupID, "group-id", DefaultGroupID,
			"Kafka consumer group")
	}
	if parts&DeadLetter != 0 {
		r.str(&cfg.DeadLetterTopic, "dead-letter-topic", "",
			"topic where malformed events are parked (default <topic>"+DeadLetterSuffix+")")
	}
	if parts&Registry != 0 {
		r.str(&cfg.SchemaRegistryURL, "schema-registry-url", "",
			"Confluent schema registry URL (empty: only JSON events are accepted)")
		r.str(&cfg.SchemaRegistryUser, "schema-registry-user", "",
			"schema registry basic-auth user")
		r.str(&cfg.SchemaRegistryPassword, "schema-registry-password", "",
			"schema registry basic-auth password")
	}
	if parts&Kafka != 0 {
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
	}
	if parts&Watch != 0 {
		r.str(&cfg.WatchedFlag, "watched-flag", authz.DefaultFlag,
			"waffle flag whose course and org overrides move roles")
	}
	if parts&Service != 0 {
		r.boolean(&cfg.AutoMigrate, "auto-migrate", false,
			"migrate roles when the flag's effective state changes (off: events are acknowledged and logged only)")
		r.str(&cfg.HTTPAddr, "http-addr", DefaultHTTPAddr,
			"listen address of /healthz, /readyz and /metrics")
		r.duration(&cfg.RetryMaxBackoff, "retry-max-backoff", DefaultRetryMaxBackoff,
			"longest wait between retries of a transient failure (database or broker down)")
		r.duration(&cfg.MinBackoff, "min-backoff", DefaultMinBackoff,
			"first wait before retrying a transient failure (doubles up to --retry-max-backoff)")
		r.duration(&cfg.NotVisibleLimit, "not-visible-limit", DefaultNotVisibleLimit,
			"how long to wait for an event's override row to become visible (the LMS may publish before its commit) before the event is left to the sweep (recorded as waiting), or parked when the sweep is off")
		r.duration(&cfg.SweepInterval, "sweep-interval", DefaultSweepInterval,
			"how often the sweep reconciles every scope whose override rows changed since the last sweep (heals lost events; runs only with --auto-migrate; 0 turns it off)")
		r.boolean(&cfg.ReconcileGlobal, "reconcile-global", false,
			"when the flag changes for everyone (waffle_flag.everyone), reconcile every org that has no override of its own (off: the flip is only reported)")
		r.duration(&cfg.SessionTimeout, "session-timeout", DefaultSessionTimeout,
			"consumer group session timeout: a replica silent this long loses its partitions")
		r.duration(&cfg.HeartbeatInterval, "heartbeat-interval", DefaultHeartbeatInterval,
			"consumer group heartbeat interval (well below --session-timeout)")
		r.duration(&cfg.RebalanceTimeout, "rebalance-timeout", DefaultRebalanceTimeout,
			"how long a rebalance waits for members to rejoin")
		r.duration(&cfg.CommitInterval, "commit-interval", DefaultCommitInterval,
			"longest wait before a handled event's offset is committed")
	}
	if parts&Lock != 0 {
		r.duration(&cfg.LockTimeout, "lock-timeout", DefaultLockTimeout,
			"longest wait for an org's advisory lock (another run of the org holds it); an event is then retried, a manual run recorded as skipped")
		r.duration(&cfg.ProgressInterval, "progress-interval", DefaultProgressInterval,
			"how often a long run logs its progress (rows done of the total); it logs a last line when it ends")
	}
}

// RegisterDatabase adds only the settings a database-only command needs
// (schema, runs, verify, parked list): the database URL and logging. Pair
// it with ValidateDatabaseOnly.
func RegisterDatabase(fs *pflag.FlagSet, cfg *Config) { RegisterParts(fs, cfg, Database) }

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

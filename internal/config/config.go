// Package config holds the one Config struct the binary is built from.
// It is filled in cmd/consumer from flags and AUTHZ_CONSUMER_* environment
// variables; nothing below cmd reads the environment.
//
// The order of use in a command is:
//
//	var cfg config.Config
//	config.Register(cmd.Flags(), &cfg)      // when building the command
//	config.ApplyEnv(cmd.Flags(), os.LookupEnv) // after flag parsing
//	cfg.Finish()                            // derive defaults
//	cfg.Validate()                          // or ValidateDatabaseOnly
package config

import "time"

// Config is everything the service needs at start.
type Config struct {
	DatabaseURL string // sqlite:///path, mysql://user:pass@host:port/db, postgres://...

	Brokers         []string
	TopicPrefix     string // as Open edX's EVENT_BUS_TOPIC_PREFIX
	Topic           string // default "<prefix>-waffle-flag-override-lifecycle"
	GroupID         string
	DeadLetterTopic string // default "<topic>.parked"

	SchemaRegistryURL      string
	SchemaRegistryUser     string
	SchemaRegistryPassword string

	SASLMechanism string // "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	SASLUser      string
	SASLPassword  string
	TLSEnabled    bool
	TLSCAFile     string
	TLSCertFile   string
	TLSKeyFile    string

	WatchedFlag     string // default authz.enable_course_authoring
	AutoMigrate     bool   // off by default
	HTTPAddr        string // default :8080
	LogLevel        string // debug, info (default), warn, error
	LogFormat       string // json (default) or text
	RetryMaxBackoff time.Duration
	NotVisibleLimit time.Duration // how long to wait for an event's override row before leaving it to the sweep (or parking it)
	SweepInterval   time.Duration // how often the sweep reconciles changed scopes; 0: never
	ReconcileGlobal bool          // reconcile flips of the instance-wide flag org by org

	// Timings with defaults that suit production; tests and dev shorten them.
	MinBackoff        time.Duration // first wait before retrying a transient failure
	SessionTimeout    time.Duration // consumer group session timeout
	HeartbeatInterval time.Duration
	RebalanceTimeout  time.Duration
	CommitInterval    time.Duration // longest wait before a handled offset is committed
	LockTimeout       time.Duration // longest wait for an org's advisory lock
	ProgressInterval  time.Duration // how often a long run logs its progress
}

// Defaults that work on a laptop.
const (
	DefaultDatabaseURL     = "sqlite:///authz-consumer.db"
	DefaultBroker          = "127.0.0.1:9092"
	DefaultGroupID         = "authz-flag-consumer"
	DefaultHTTPAddr        = ":8080"
	DefaultLogLevel        = "info"
	DefaultLogFormat       = "json"
	DefaultRetryMaxBackoff = 30 * time.Second
	DefaultNotVisibleLimit = 15 * time.Second
	DefaultSweepInterval   = time.Minute

	DefaultMinBackoff        = 100 * time.Millisecond
	DefaultSessionTimeout    = 10 * time.Second
	DefaultHeartbeatInterval = 3 * time.Second
	DefaultRebalanceTimeout  = 30 * time.Second
	DefaultCommitInterval    = 250 * time.Millisecond
	DefaultLockTimeout       = 30 * time.Second
	DefaultProgressInterval  = 5 * time.Second

	// TopicSuffix is the topic name without prefix.
	TopicSuffix = "waffle-flag-override-lifecycle"
	// DeadLetterSuffix is appended to the topic to name the dead-letter topic.
	DeadLetterSuffix = ".parked"
)

// SASL mechanisms the service can speak.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// DefaultTopic is the topic for an Open edX EVENT_BUS_TOPIC_PREFIX.
func DefaultTopic(prefix string) string {
	if prefix == "" {
		return TopicSuffix
	}
	return prefix + "-" + TopicSuffix
}

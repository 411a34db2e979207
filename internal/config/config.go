// Package config holds the one Config struct the binary is built from.
// It is filled in cmd/consumer from flags and AUTHZ_CONSUMER_* environment
// variables; nothing below cmd reads the environment.
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
	AutoMigrate     bool   // off by default (SPEC 8)
	HTTPAddr        string // default :8080
	LogLevel        string
	LogFormat       string // json (default) or text
	RetryMaxBackoff time.Duration
	NotVisibleLimit time.Duration // how long an override row may stay invisible before parking
}

package config

import (
	"io"
	"log/slog"
	"net/url"
	"strings"
)

// Masked replaces every secret in logs and printed URLs.
const Masked = "***"

// Redacted is a copy safe to log or print: passwords are Masked, and so is
// the password inside the database and registry URLs.
func (c Config) Redacted() Config {
	r := c
	r.Brokers = append([]string(nil), c.Brokers...)
	r.DatabaseURL = MaskURL(c.DatabaseURL)
	r.SchemaRegistryURL = MaskURL(c.SchemaRegistryURL)
	if r.SchemaRegistryPassword != "" {
		r.SchemaRegistryPassword = Masked
	}
	if r.SASLPassword != "" {
		r.SASLPassword = Masked
	}
	return r
}

// LogValue makes slog print the redacted Config, so
// logger.Info("starting", "config", cfg) never leaks a secret.
func (c Config) LogValue() slog.Value {
	r := c.Redacted()
	return slog.GroupValue(
		slog.String("database_url", r.DatabaseURL),
		slog.Any("brokers", r.Brokers),
		slog.String("topic_prefix", r.TopicPrefix),
		slog.String("topic", r.Topic),
		slog.String("group_id", r.GroupID),
		slog.String("dead_letter_topic", r.DeadLetterTopic),
		slog.String("schema_registry_url", r.SchemaRegistryURL),
		slog.String("schema_registry_user", r.SchemaRegistryUser),
		slog.String("schema_registry_password", r.SchemaRegistryPassword),
		slog.String("sasl_mechanism", r.SASLMechanism),
		slog.String("sasl_user", r.SASLUser),
		slog.String("sasl_password", r.SASLPassword),
		slog.Bool("tls", r.TLSEnabled),
		slog.String("tls_ca_file", r.TLSCAFile),
		slog.String("tls_cert_file", r.TLSCertFile),
		slog.String("tls_key_file", r.TLSKeyFile),
		slog.String("watched_flag", r.WatchedFlag),
		slog.Bool("auto_migrate", r.AutoMigrate),
		slog.String("http_addr", r.HTTPAddr),
		slog.String("log_level", r.LogLevel),
		slog.String("log_format", r.LogFormat),
		slog.Duration("retry_max_backoff", r.RetryMaxBackoff),
		slog.Duration("not_visible_limit", r.NotVisibleLimit),
		slog.Duration("sweep_interval", r.SweepInterval),
		slog.Bool("reconcile_global", r.ReconcileGlobal),
		slog.Duration("min_backoff", r.MinBackoff),
		slog.Duration("session_timeout", r.SessionTimeout),
		slog.Duration("heartbeat_interval", r.HeartbeatInterval),
		slog.Duration("rebalance_timeout", r.RebalanceTimeout),
		slog.Duration("commit_interval", r.CommitInterval),
		slog.Duration("lock_timeout", r.LockTimeout),
		slog.Duration("progress_interval", r.ProgressInterval),
	)
}

// MaskURL hides the password of a URL (user:pass@ and ?password=) so it can
// be logged. A URL that does not parse is reduced to its scheme, since where
// its password sits cannot be known.
func MaskURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		if scheme, _, ok := strings.Cut(raw, "://"); ok {
			return scheme + "://" + Masked
		}
		return Masked
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Masked)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			switch strings.ToLower(k) {
			case "password", "pass", "passwd", "sslpassword":
				q.Set(k, Masked)
			}
		}
		u.RawQuery = q.Encode()
	}
	// Keep the mask readable: "***", not "%2A%2A%2A".
	return strings.ReplaceAll(u.String(), url.QueryEscape(Masked), Masked)
}

// Level is the slog level of LogLevel (info when unset or unknown; Validate
// rejects unknown values).
func (c Config) Level() slog.Level {
	switch c.LogLevel {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// Logger builds the process logger writing to w in LogFormat at LogLevel.
func (c Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Level()}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

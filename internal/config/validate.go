package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Finish derives the settings whose default depends on others (topic from
// prefix, dead-letter topic from topic) and normalises spelling (broker list
// trimmed, SASL mechanism upper case, log level and format lower case). Call
// it after ApplyEnv and before Validate.
func (c *Config) Finish() {
	var brokers []string
	for _, b := range c.Brokers {
		for _, part := range strings.Split(b, ",") {
			if part = strings.TrimSpace(part); part != "" {
				brokers = append(brokers, part)
			}
		}
	}
	c.Brokers = brokers
	c.TopicPrefix = strings.TrimSpace(c.TopicPrefix)
	if c.Topic = strings.TrimSpace(c.Topic); c.Topic == "" {
		c.Topic = DefaultTopic(c.TopicPrefix)
	}
	if c.DeadLetterTopic = strings.TrimSpace(c.DeadLetterTopic); c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Topic + DeadLetterSuffix
	}
	c.SASLMechanism = strings.ToUpper(strings.TrimSpace(c.SASLMechanism))
	c.LogLevel = strings.ToLower(strings.TrimSpace(c.LogLevel))
	c.LogFormat = strings.ToLower(strings.TrimSpace(c.LogFormat))
	c.DatabaseURL = strings.TrimSpace(c.DatabaseURL)
}

// ValidateDatabaseOnly checks what a database-only command needs: the
// database URL and the logging settings. Every error names the variable and
// the flag; all problems are reported at once.
func (c Config) ValidateDatabaseOnly() error {
	var errs []error
	errs = append(errs, c.validateDatabase()...)
	errs = append(errs, c.validateLogging()...)
	return joinErrors(errs)
}

// Validate checks the whole Config, as `run` needs it. Every error names the
// variable and the flag, e.g.
//
//	AUTHZ_CONSUMER_SASL_MECHANISM (--sasl-mechanism): "FOO" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
//
// and all problems are reported at once (errors.Join). Certificate and key
// files are read here, so a bad file fails at start and not at first dial.
func (c Config) Validate() error {
	var errs []error
	errs = append(errs, c.validateDatabase()...)
	errs = append(errs, c.validateLogging()...)
	errs = append(errs, c.validateKafka()...)
	errs = append(errs, c.validateRegistry()...)
	errs = append(errs, c.validateSASL()...)
	errs = append(errs, c.validateTLS()...)

	if strings.TrimSpace(c.WatchedFlag) == "" {
		errs = append(errs, fmt.Errorf("%s: must not be empty", setting("watched-flag")))
	}
	if err := checkListenAddr(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("%s: %q: %w", setting("http-addr"), c.HTTPAddr, err))
	}
	if c.RetryMaxBackoff <= 0 {
		errs = append(errs, fmt.Errorf("%s: %s must be positive", setting("retry-max-backoff"), c.RetryMaxBackoff))
	}
	if c.SweepInterval < 0 {
		errs = append(errs, fmt.Errorf("%s: %s must not be negative (0 turns the sweep off)", setting("sweep-interval"), c.SweepInterval))
	}
	if c.NotVisibleLimit <= 0 {
		errs = append(errs, fmt.Errorf("%s: %s must be positive", setting("not-visible-limit"), c.NotVisibleLimit))
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"min-backoff", c.MinBackoff}, {"session-timeout", c.SessionTimeout}, {"heartbeat-interval", c.HeartbeatInterval},
		{"rebalance-timeout", c.RebalanceTimeout}, {"commit-interval", c.CommitInterval}, {"lock-timeout", c.LockTimeout},
		{"progress-interval", c.ProgressInterval},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s: %s must be positive", setting(d.flag), d.v))
		}
	}
	return joinErrors(errs)
}

// databaseSchemes are the URL schemes store.Open understands.
var databaseSchemes = []string{"sqlite", "sqlite3", "mysql", "mariadb", "postgres", "postgresql"}

func (c Config) validateDatabase() []error {
	bad := func(format string, args ...any) []error {
		return []error{fmt.Errorf("%s: %s", setting("database-url"), fmt.Sprintf(format, args...))}
	}
	if c.DatabaseURL == "" {
		return bad("must not be empty")
	}
	scheme, rest, ok := strings.Cut(c.DatabaseURL, "://")
	if !ok {
		return bad("%q has no scheme; use one of sqlite:///path, mysql://user:pass@host:port/db, postgres://user:pass@host:port/db", MaskURL(c.DatabaseURL))
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "sqlite", "sqlite3":
		if strings.Trim(rest, "/") == "" {
			return bad("%q names no file; use sqlite:///path/to/file.db", c.DatabaseURL)
		}
		return nil
	case "mysql", "mariadb", "postgres", "postgresql":
	default:
		return bad("scheme %q is not one of %s", scheme, strings.Join(databaseSchemes, ", "))
	}
	u, err := url.Parse(c.DatabaseURL)
	if err != nil {
		// The parse error quotes the URL, password included: do not wrap it.
		return bad("%q does not parse as a URL (percent-encode special characters in the password)", MaskURL(c.DatabaseURL))
	}
	if u.Hostname() == "" {
		return bad("%q names no host", MaskURL(c.DatabaseURL))
	}
	if p := u.Port(); p != "" {
		if err := checkPort(p); err != nil {
			return bad("%q: %v", MaskURL(c.DatabaseURL), err)
		}
	}
	if (scheme == "mysql" || scheme == "mariadb") && strings.Trim(u.Path, "/") == "" {
		return bad("%q names no database; use mysql://user:pass@host:port/db", MaskURL(c.DatabaseURL))
	}
	return nil
}

var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"json", "text"}
)

func (c Config) validateLogging() []error {
	var errs []error
	if !slices.Contains(logLevels, c.LogLevel) {
		errs = append(errs, notOneOf("log-level", c.LogLevel, logLevels...))
	}
	if !slices.Contains(logFormats, c.LogFormat) {
		errs = append(errs, notOneOf("log-format", c.LogFormat, logFormats...))
	}
	return errs
}

// topicName is what Kafka accepts as a topic name.
var topicName = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func (c Config) validateKafka() []error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, fmt.Errorf("%s: no broker given; list host:port, comma separated", setting("brokers")))
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err == nil && host == "" {
			err = errors.New("missing host")
		}
		if err == nil {
			err = checkPort(port)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: broker %q is not host:port: %w", setting("brokers"), b, err))
		}
	}
	if c.TopicPrefix != "" && !topicName.MatchString(c.TopicPrefix) {
		errs = append(errs, fmt.Errorf("%s: %q may hold only letters, digits, '.', '_' and '-'", setting("topic-prefix"), c.TopicPrefix))
	}
	if !topicName.MatchString(c.Topic) {
		errs = append(errs, fmt.Errorf("%s: %q is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)", setting("topic"), c.Topic))
	}
	if !topicName.MatchString(c.DeadLetterTopic) {
		errs = append(errs, fmt.Errorf("%s: %q is not a valid Kafka topic name (letters, digits, '.', '_', '-'; at most 249)", setting("dead-letter-topic"), c.DeadLetterTopic))
	} else if c.DeadLetterTopic == c.Topic {
		errs = append(errs, fmt.Errorf("%s: %q must differ from %s", setting("dead-letter-topic"), c.DeadLetterTopic, setting("topic")))
	}
	if strings.TrimSpace(c.GroupID) == "" {
		errs = append(errs, fmt.Errorf("%s: must not be empty", setting("group-id")))
	}
	return errs
}

func (c Config) validateRegistry() []error {
	var errs []error
	if c.SchemaRegistryURL != "" {
		u, err := url.Parse(c.SchemaRegistryURL)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %q does not parse as a URL", setting("schema-registry-url"), MaskURL(c.SchemaRegistryURL)))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("%s: scheme %q is not http or https", setting("schema-registry-url"), u.Scheme))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("%s: %q names no host", setting("schema-registry-url"), MaskURL(c.SchemaRegistryURL)))
		}
	}
	if c.SchemaRegistryUser != "" && c.SchemaRegistryPassword == "" {
		errs = append(errs, fmt.Errorf("%s: must be set when %s is set", setting("schema-registry-password"), setting("schema-registry-user")))
	}
	if c.SchemaRegistryPassword != "" && c.SchemaRegistryUser == "" {
		errs = append(errs, fmt.Errorf("%s: must be set when %s is set", setting("schema-registry-user"), setting("schema-registry-password")))
	}
	if (c.SchemaRegistryUser != "" || c.SchemaRegistryPassword != "") && c.SchemaRegistryURL == "" {
		errs = append(errs, fmt.Errorf("%s: must be set when registry credentials are given", setting("schema-registry-url")))
	}
	return errs
}

func (c Config) validateSASL() []error {
	var errs []error
	switch c.SASLMechanism {
	case "":
		if c.SASLUser != "" || c.SASLPassword != "" {
			errs = append(errs, fmt.Errorf("%s: must be set when a SASL user or password is given (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", setting("sasl-mechanism")))
		}
		return errs
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
	default:
		return append(errs, notOneOf("sasl-mechanism", c.SASLMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512))
	}
	if c.SASLUser == "" {
		errs = append(errs, fmt.Errorf("%s: must be set when %s is %s", setting("sasl-user"), setting("sasl-mechanism"), c.SASLMechanism))
	}
	if c.SASLPassword == "" {
		errs = append(errs, fmt.Errorf("%s: must be set when %s is %s", setting("sasl-password"), setting("sasl-mechanism"), c.SASLMechanism))
	}
	return errs
}

func (c Config) validateTLS() []error {
	var errs []error
	if !c.TLSEnabled {
		for _, f := range []struct{ flag, value string }{
			{"tls-ca-file", c.TLSCAFile}, {"tls-cert-file", c.TLSCertFile}, {"tls-key-file", c.TLSKeyFile},
		} {
			if f.value != "" {
				errs = append(errs, fmt.Errorf("%s: is set but TLS is off; set %s=true", setting(f.flag), EnvVar("tls")))
			}
		}
		return errs
	}
	if c.TLSCAFile != "" {
		if _, err := loadCAPool(c.TLSCAFile); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", setting("tls-ca-file"), err))
		}
	}
	switch {
	case c.TLSCertFile != "" && c.TLSKeyFile == "":
		errs = append(errs, fmt.Errorf("%s: must be set when %s is set", setting("tls-key-file"), setting("tls-cert-file")))
	case c.TLSKeyFile != "" && c.TLSCertFile == "":
		errs = append(errs, fmt.Errorf("%s: must be set when %s is set", setting("tls-cert-file"), setting("tls-key-file")))
	case c.TLSCertFile != "":
		if _, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("%s and %s: %w", setting("tls-cert-file"), setting("tls-key-file"), err))
		}
	}
	return errs
}

func loadCAPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// checkListenAddr accepts host:port and :port with a port in 0..65535
// (0 picks a free port, for tests).
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	return checkPort(port)
}

func checkPort(port string) error {
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

func notOneOf(flag, v string, allowed ...string) error {
	return fmt.Errorf("%s: %q is not one of %s", setting(flag), v, strings.Join(allowed, ", "))
}

func joinErrors(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}

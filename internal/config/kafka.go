package config

import (
	"crypto/tls"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// KafkaDialTimeout bounds one connection attempt to a broker.
const KafkaDialTimeout = 10 * time.Second

// KafkaDialer is the dialer for kafka.ReaderConfig.Dialer and admin
// connections (replay, group inspection), with SASL and TLS as configured.
func (c Config) KafkaDialer() (*kafka.Dialer, error) {
	mech, tlsCfg, err := c.kafkaSecurity()
	if err != nil {
		return nil, err
	}
	return &kafka.Dialer{
		Timeout:       KafkaDialTimeout,
		DualStack:     true,
		SASLMechanism: mech,
		TLS:           tlsCfg,
	}, nil
}

// KafkaTransport is the transport for kafka.Writer (dead-letter topic,
// publish) and kafka.Client, with SASL and TLS as configured.
func (c Config) KafkaTransport() (*kafka.Transport, error) {
	mech, tlsCfg, err := c.kafkaSecurity()
	if err != nil {
		return nil, err
	}
	return &kafka.Transport{
		DialTimeout: KafkaDialTimeout,
		SASL:        mech,
		TLS:         tlsCfg,
	}, nil
}

// KafkaWriter is a writer to topic ("" when each message names its own)
// through KafkaTransport that waits for every in-sync replica: what
// publish, re-drive and the dead-letter topic need. balancer picks the
// partition.
func (c Config) KafkaWriter(topic string, balancer kafka.Balancer) (*kafka.Writer, error) {
	transport, err := c.KafkaTransport()
	if err != nil {
		return nil, err
	}
	return &kafka.Writer{
		Addr:         kafka.TCP(c.Brokers...),
		Topic:        topic,
		Transport:    transport,
		Balancer:     balancer,
		BatchTimeout: 5 * time.Millisecond,
		RequiredAcks: kafka.RequireAll,
	}, nil
}

func (c Config) kafkaSecurity() (sasl.Mechanism, *tls.Config, error) {
	mech, err := c.saslMechanism()
	if err != nil {
		return nil, nil, err
	}
	tlsCfg, err := c.TLSConfig()
	if err != nil {
		return nil, nil, err
	}
	return mech, tlsCfg, nil
}

func (c Config) saslMechanism() (sasl.Mechanism, error) {
	switch c.SASLMechanism {
	case "":
		return nil, nil
	case SASLPlain:
		return plain.Mechanism{Username: c.SASLUser, Password: c.SASLPassword}, nil
	case SASLScramSHA256, SASLScramSHA512:
		algo := scram.SHA256
		if c.SASLMechanism == SASLScramSHA512 {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, c.SASLUser, c.SASLPassword)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", setting("sasl-mechanism"), err)
		}
		return m, nil
	default:
		return nil, notOneOf("sasl-mechanism", c.SASLMechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
	}
}

// TLSConfig is the client TLS configuration for Kafka, or nil when TLS is
// off. Without a CA file the system roots are trusted. The server name is
// left empty: kafka-go fills it from each broker's host.
func (c Config) TLSConfig() (*tls.Config, error) {
	if !c.TLSEnabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSCAFile != "" {
		pool, err := loadCAPool(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", setting("tls-ca-file"), err)
		}
		cfg.RootCAs = pool
	}
	if c.TLSCertFile != "" || c.TLSKeyFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s and %s: %w", setting("tls-cert-file"), setting("tls-key-file"), err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

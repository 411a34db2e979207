package config_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kfake"

	"authz-flag-consumer/internal/config"
)

const kafkaTestTopic = "waffle-flag-override-lifecycle"

// broker starts an in-process Kafka-protocol broker (kfake) on 127.0.0.1
// with SASL users for every mechanism, optionally behind mutual TLS.
func broker(t *testing.T, serverTLS *tls.Config) string {
	t.Helper()
	opts := []kfake.Opt{
		kfake.EnableSASL(),
		kfake.Superuser(config.SASLPlain, "plain-user", "plain-pass"),
		kfake.Superuser(config.SASLScramSHA256, "scram256-user", "scram256-pass"),
		kfake.Superuser(config.SASLScramSHA512, "scram512-user", "scram512-pass"),
		kfake.SeedTopics(2, kafkaTestTopic),
	}
	if serverTLS != nil {
		opts = append(opts, kfake.TLS(serverTLS))
	}
	c, err := kfake.NewCluster(opts...)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// useBroker proves the dialer and the transport both get through TLS and
// SASL: each reads the seeded topic's partitions.
func useBroker(ctx context.Context, cfg config.Config, addr string) error {
	d, err := cfg.KafkaDialer()
	if err != nil {
		return err
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	parts, err := conn.ReadPartitions(kafkaTestTopic)
	conn.Close()
	if err != nil {
		return err
	}
	if len(parts) != 2 {
		return errorf("dialer saw %d partitions, want 2", len(parts))
	}

	tr, err := cfg.KafkaTransport()
	if err != nil {
		return err
	}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(addr), Transport: tr, Timeout: 10 * time.Second}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{kafkaTestTopic}})
	if err != nil {
		return err
	}
	if len(md.Topics) != 1 || md.Topics[0].Error != nil || len(md.Topics[0].Partitions) != 2 {
		return errorf("transport saw metadata %+v", md.Topics)
	}
	return nil
}

func TestKafkaSASLMechanisms(t *testing.T) {
	addr := broker(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	tests := []struct {
		mech, user, pass string
		ok               bool
	}{
		{config.SASLPlain, "plain-user", "plain-pass", true},
		{config.SASLScramSHA256, "scram256-user", "scram256-pass", true},
		{config.SASLScramSHA512, "scram512-user", "scram512-pass", true},
		{config.SASLScramSHA512, "scram512-user", "wrong", false},
		{config.SASLPlain, "plain-user", "wrong", false},
	}
	for _, tc := range tests {
		t.Run(tc.mech+"/"+tc.pass, func(t *testing.T) {
			cfg, err := load(t, []string{"--brokers", addr}, map[string]string{
				"AUTHZ_CONSUMER_SASL_MECHANISM": tc.mech,
				"AUTHZ_CONSUMER_SASL_USER":      tc.user,
				"AUTHZ_CONSUMER_SASL_PASSWORD":  tc.pass,
			})
			require.NoError(t, err)
			require.NoError(t, cfg.Validate())
			err = useBroker(ctx, cfg, addr)
			if tc.ok {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, "SASL", "a wrong password must not authenticate")
			}
		})
	}
}

func TestKafkaMutualTLSWithSASL(t *testing.T) {
	p := newPKI(t)
	addr := broker(t, &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientCAs:    p.caPool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	env := map[string]string{
		"AUTHZ_CONSUMER_BROKERS":        addr,
		"AUTHZ_CONSUMER_TLS":            "true",
		"AUTHZ_CONSUMER_TLS_CA_FILE":    p.caFile,
		"AUTHZ_CONSUMER_TLS_CERT_FILE":  p.clientCert,
		"AUTHZ_CONSUMER_TLS_KEY_FILE":   p.clientKey,
		"AUTHZ_CONSUMER_SASL_MECHANISM": config.SASLScramSHA256,
		"AUTHZ_CONSUMER_SASL_USER":      "scram256-user",
		"AUTHZ_CONSUMER_SASL_PASSWORD":  "scram256-pass",
	}
	cfg, err := load(t, nil, env)
	require.NoError(t, err)
	require.NoError(t, cfg.Validate())
	require.NoError(t, useBroker(ctx, cfg, addr))

	t.Run("without client certificate the broker refuses", func(t *testing.T) {
		c := cfg
		c.TLSCertFile, c.TLSKeyFile = "", ""
		require.Error(t, useBroker(ctx, c, addr))
	})
	t.Run("without our CA the broker is not trusted", func(t *testing.T) {
		c := cfg
		c.TLSCAFile = ""
		require.ErrorContains(t, useBroker(ctx, c, addr), "certificate")
	})
}

func TestKafkaSecurityOff(t *testing.T) {
	cfg, err := load(t, nil, nil)
	require.NoError(t, err)
	d, err := cfg.KafkaDialer()
	require.NoError(t, err)
	require.Nil(t, d.TLS)
	require.Nil(t, d.SASLMechanism)
	tr, err := cfg.KafkaTransport()
	require.NoError(t, err)
	require.Nil(t, tr.TLS)
	require.Nil(t, tr.SASL)
}

func TestKafkaBuildErrorsNameVariable(t *testing.T) {
	cfg := config.Config{TLSEnabled: true, TLSCAFile: "/nonexistent/ca.pem"}
	_, err := cfg.KafkaDialer()
	require.ErrorContains(t, err, "AUTHZ_CONSUMER_TLS_CA_FILE")
	cfg = config.Config{SASLMechanism: "GSSAPI"}
	_, err = cfg.KafkaTransport()
	require.ErrorContains(t, err, "AUTHZ_CONSUMER_SASL_MECHANISM")
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

// Package devstack starts, inside the calling process, everything the
// consumer talks to: a SQLite database with the Open edX tables, a
// Kafka-protocol broker (kfake) with the event topic and its dead-letter
// topic, and a Confluent-compatible schema registry (internal/registry),
// each on 127.0.0.1. `consumer dev` runs its demo on it, and the tests that
// need a broker and a registry but no server start the same stack.
//
//	st, err := devstack.Start(ctx, devstack.Options{Dir: dir, Topic: topic, DeadLetterTopic: topic + ".parked", Seed: true})
//	...
//	defer st.Close()
//	// st.DatabaseURL, st.DB, st.Brokers, st.RegistryURL
package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/registry"
	"authz-flag-consumer/internal/store"
)

// DBFile is the name of the SQLite file in Options.Dir.
const DBFile = "dev.db"

// Options say what to start. The zero value starts a broker without topics
// and a registry, and no database.
type Options struct {
	// Dir holds the SQLite file (DBFile); a file left there by an earlier
	// start is removed first, so the database is always fresh. Empty: no
	// database, unless DatabaseURL names one.
	Dir string
	// DatabaseURL is a database to use instead of the SQLite file (a test
	// on MariaDB or PostgreSQL); it must be empty of the Open edX tables.
	DatabaseURL string
	// Seed writes the demo data (internal/demo) into the database.
	Seed bool

	// Topic is created on the broker with Partitions partitions (default
	// 1); DeadLetterTopic, when set, with one partition. Empty: no topics.
	Topic           string
	Partitions      int
	DeadLetterTopic string
	KafkaPort       int // loopback port of the broker; 0 picks a free one

	RegistryPort int // loopback port of the registry; 0 picks a free one
}

// Stack is a started stack. Close stops it.
type Stack struct {
	DatabaseURL string    // "" without a database
	DB          *store.DB // open on DatabaseURL, with the Open edX tables; nil without a database
	Brokers     []string
	RegistryURL string
	// Kafka is the broker itself, for a test that injects broker faults.
	Kafka *kfake.Cluster

	stopRegistry context.CancelFunc
}

// Start starts the broker, the registry and the database of o, in that
// order; on an error what was already started is stopped.
func Start(ctx context.Context, o Options) (st *Stack, err error) {
	st = &Stack{}
	defer func() {
		if err != nil {
			st.Close()
			st = nil
		}
	}()
	if st.Kafka, err = startKafka(o); err != nil {
		return st, err
	}
	st.Brokers = st.Kafka.ListenAddrs()

	regCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	st.stopRegistry = stop
	regAddr, err := registry.NewServer().Serve(regCtx, fmt.Sprintf("127.0.0.1:%d", o.RegistryPort))
	if err != nil {
		return st, fmt.Errorf("start schema registry: %w", err)
	}
	st.RegistryURL = "http://" + regAddr

	if st.DatabaseURL, err = databaseURL(o); err != nil || st.DatabaseURL == "" {
		return st, err
	}
	if st.DB, err = store.Open(ctx, st.DatabaseURL); err != nil {
		return st, err
	}
	if err = st.DB.CreateSchema(ctx); err != nil {
		return st, err
	}
	if o.Seed {
		if err = demo.Seed(ctx, st.DB); err != nil {
			return st, fmt.Errorf("seed demo data: %w", err)
		}
	}
	return st, nil
}

// Close closes the database and stops the registry and the broker.
func (st *Stack) Close() error {
	var err error
	if st.DB != nil {
		err = st.DB.Close()
	}
	if st.stopRegistry != nil {
		st.stopRegistry()
	}
	if st.Kafka != nil {
		st.Kafka.Close()
	}
	return err
}

func startKafka(o Options) (*kfake.Cluster, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(o.KafkaPort),
		// Consumers in tests and the demo use session timeouts far below
		// Kafka's default minimum of 6s.
		kfake.GroupMinSessionTimeout(100 * time.Millisecond),
	}
	if o.Topic != "" {
		opts = append(opts, kfake.SeedTopics(int32(max(o.Partitions, 1)), o.Topic))
	}
	if o.DeadLetterTopic != "" {
		opts = append(opts, kfake.SeedTopics(1, o.DeadLetterTopic))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("start in-process Kafka broker: %w", err)
	}
	return c, nil
}

// databaseURL returns o's database: DatabaseURL, or a fresh SQLite file in
// Dir (in the SQLAlchemy form, four slashes for an absolute path).
func databaseURL(o Options) (string, error) {
	if o.DatabaseURL != "" || o.Dir == "" {
		return o.DatabaseURL, nil
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return "", fmt.Errorf("database directory: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("database directory: %w", err)
	}
	path := filepath.Join(dir, DBFile)
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("remove old database: %w", err)
		}
	}
	return "sqlite:///" + filepath.ToSlash(path), nil
}

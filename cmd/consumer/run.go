package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/config"
	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/consumer/shutdown"
	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/ops"
	"authz-flag-consumer/internal/store"
)

// Signals that arrive before main has installed its handlers are caught by
// package shutdown from the process's first moments; once a command runs,
// main's handlers are there to take them.
func init() { cobra.OnInitialize(shutdown.Handoff) }

func newRunCmd() *cobra.Command {
	var cfg config.Config
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Consume flag-override events and move course-team roles (the Deployment's command)",
		Long: `Join the consumer group on the flag-override topic and act on every event:
decide from the override history in the database, migrate the scope's roles
under the org's advisory lock when its effective state changed (only with
--auto-migrate), record the event's outcome, then commit its offset.
Malformed events go to the dead-letter topic and the parked table.
SIGTERM drains: the event in hand finishes, offsets are committed, exit 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadKafkaConfig(cmd, &cfg); err != nil {
				return err
			}
			ctx := cmd.Context()
			log := cfg.Logger(os.Stderr)
			log.Info("starting", "config", cfg)
			svc, err := startService(ctx, cfg, log, nil)
			if err != nil {
				if ctx.Err() != nil {
					// SIGTERM while connecting (a database that does not
					// answer yet, say): a stop like any other.
					log.Info("stopped while starting", "while", "opening the database", "interrupted", err.Error())
					return nil
				}
				return err
			}
			defer svc.Close()
			return svc.Run(ctx)
		},
	}
	config.Register(cmd.Flags(), &cfg)
	return cmd
}

// loadKafkaConfig completes cfg for a command that talks to Kafka: the
// environment, derived defaults, validation.
func loadKafkaConfig(cmd *cobra.Command, cfg *config.Config) error {
	if err := config.ApplyEnv(cmd.Flags(), os.LookupEnv); err != nil {
		return err
	}
	cfg.Finish()
	return cfg.Validate()
}

// adminOffsets is the admin view of the configured group on the topic.
func adminOffsets(cfg config.Config) (consumer.Offsets, error) {
	transport, err := cfg.KafkaTransport()
	if err != nil {
		return consumer.Offsets{}, err
	}
	client := &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Transport: transport, Timeout: 10 * time.Second}
	return consumer.Offsets{Client: client, Group: cfg.GroupID, Topic: cfg.Topic}, nil
}

// service is the consumer with everything it needs: database, engine,
// decoder, dead-letter writer, metrics and the ops server.
type service struct {
	cfg      config.Config
	log      *slog.Logger
	db       *store.DB
	engine   *migrator.Engine
	consumer *consumer.Consumer
	metrics  *ops.Metrics
	server   *ops.Server
	dlq      *kafka.Writer
}

// startService opens the database (checking the Open edX tables, then
// creating the service's own tables), and
// builds the consumer and the ops server. onSettled, when set, sees every
// settled event (dev uses it).
func startService(ctx context.Context, cfg config.Config, log *slog.Logger, onSettled func(consumer.Settled)) (*service, error) {
	db, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	s := &service{cfg: cfg, log: log, db: db}
	// Check the Open edX tables before creating anything of our own, so a
	// database that is not an Open edX one is refused untouched.
	if err := checkOpenEdX(ctx, db, log); err != nil {
		s.Close()
		return nil, err
	}
	if err := readyToWrite(ctx, db, log); err != nil {
		s.Close()
		return nil, err
	}
	reg := prometheus.NewRegistry()
	s.metrics = ops.NewMetrics(reg)
	v, rev, dirty := buildInfo()
	if dirty {
		rev += "-modified"
	}
	ops.RegisterBuildInfo(reg, v, rev, runtime.Version())
	s.engine = migrator.New(db, migrator.Options{
		Logger:           log,
		WatchedFlag:      cfg.WatchedFlag,
		AutoMigrate:      cfg.AutoMigrate,
		LockTimeout:      cfg.LockTimeout,
		ProgressInterval: cfg.ProgressInterval,
		LockWaited:       s.metrics.LockWait,
	})
	var src events.SchemaSource
	if cfg.SchemaRegistryURL != "" {
		rc, err := events.NewRegistryClient(cfg.SchemaRegistryURL, events.RegistryOptions{
			Username: cfg.SchemaRegistryUser, Password: cfg.SchemaRegistryPassword,
		})
		if err != nil {
			s.Close()
			return nil, err
		}
		src = rc
	}
	dialer, err := cfg.KafkaDialer()
	if err != nil {
		s.Close()
		return nil, err
	}
	if s.dlq, err = cfg.KafkaWriter(cfg.DeadLetterTopic, consumer.KeyPartitioner{}); err != nil {
		s.Close()
		return nil, err
	}
	settled := func(st consumer.Settled) {
		if st.Result.Outcome == migrator.OutcomeParked {
			s.countParked(ctx)
		}
		if onSettled != nil {
			onSettled(st)
		}
	}
	s.consumer, err = consumer.New(consumer.Options{
		Brokers:           cfg.Brokers,
		Dialer:            dialer,
		Topic:             cfg.Topic,
		GroupID:           cfg.GroupID,
		DeadLetter:        s.dlq,
		Decoder:           events.NewDecoder(src),
		Engine:            s.engine,
		Metrics:           s.metrics,
		Logger:            log,
		MinBackoff:        cfg.MinBackoff,
		MaxBackoff:        cfg.RetryMaxBackoff,
		NotVisibleLimit:   cfg.NotVisibleLimit,
		LeaveToSweep:      cfg.AutoMigrate && cfg.SweepInterval > 0,
		CommitInterval:    cfg.CommitInterval,
		SessionTimeout:    cfg.SessionTimeout,
		RebalanceTimeout:  cfg.RebalanceTimeout,
		HeartbeatInterval: cfg.HeartbeatInterval,
		OnSettled:         settled,
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	s.server = ops.NewServer(cfg.HTTPAddr, reg,
		ops.ReadyCheck{Name: "database", Check: db.SQL.PingContext},
		ops.ReadyCheck{Name: "consumer group joined", Check: s.consumer.Joined},
	)
	s.server.Logger = log
	if err := s.server.Listen(); err != nil {
		s.Close()
		return nil, err
	}
	s.countParked(ctx)
	if ctx.Err() == nil { // when stopping already, these could only fail
		s.warnForeignRuns(ctx)
		s.ensureDeadLetterTopic(ctx)
	}
	return s, nil
}

// warnForeignRuns warns about runs marked running at start. This
// service writes a run and its data in one transaction, so a running row
// others can see was left by another migrator: most likely openedx-authz's
// own automatic migration, which must stay off while this service runs.
func (s *service) warnForeignRuns(ctx context.Context) {
	runs, err := s.engine.RunningRuns(ctx)
	if err != nil {
		s.log.Warn("look for running runs", "error", err)
		return
	}
	for _, r := range runs {
		s.log.Warn("a migration run is marked running, not by this service: keep openedx-authz's ENABLE_AUTOMATIC_AUTHZ_COURSE_AUTHORING_MIGRATION off in the LMS and CMS; a run left over from a crash is marked failed when its scope is next migrated",
			"run_id", r.ID, "scope_type", r.ScopeType, "scope", r.ScopeKey, "created_at", r.CreatedAt)
	}
}

// ensureDeadLetterTopic creates the dead-letter topic when it is missing,
// with the source topic's partition count, so parking never stalls on a
// missing topic. A broker that refuses (no ACL) is only logged: the
// operator then creates it (docs/operations.md).
func (s *service) ensureDeadLetterTopic(ctx context.Context) {
	admin, err := adminOffsets(s.cfg)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	meta, err := admin.Client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.cfg.Topic, s.cfg.DeadLetterTopic}})
	if err != nil {
		s.log.Warn("dead-letter topic: broker metadata unavailable; will rely on auto-creation", "topic", s.cfg.DeadLetterTopic, "error", err)
		return
	}
	partitions := 1
	for _, t := range meta.Topics {
		switch {
		case t.Name == s.cfg.DeadLetterTopic && t.Error == nil:
			return
		case t.Name == s.cfg.Topic && t.Error == nil && len(t.Partitions) > 0:
			partitions = len(t.Partitions)
		}
	}
	res, err := admin.Client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: s.cfg.DeadLetterTopic, NumPartitions: partitions, ReplicationFactor: -1}}})
	if err == nil {
		err = res.Errors[s.cfg.DeadLetterTopic]
	}
	if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		s.log.Warn("could not create the dead-letter topic; create it, or parking will retry until it exists", "topic", s.cfg.DeadLetterTopic, "error", err)
		return
	}
	s.log.Info("created the dead-letter topic", "topic", s.cfg.DeadLetterTopic, "partitions", partitions)
}

// countParked refreshes the parked_pending gauge from the parked table.
func (s *service) countParked(ctx context.Context) {
	n, err := s.engine.ParkedCount(context.WithoutCancel(ctx))
	if err != nil {
		s.log.Warn("count parked events", "error", err)
		return
	}
	s.metrics.SetParkedPending(n)
}

// Run consumes until ctx is cancelled and the consumer has drained; the
// ops server keeps answering until then.
func (s *service) Run(ctx context.Context) error {
	serverCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- s.server.Run(serverCtx) }()
	s.log.Info("serving health and metrics", "addr", s.server.Addr())

	interval := s.cfg.SweepInterval
	if !s.cfg.AutoMigrate {
		interval = 0 // nothing moves without automatic migration
	}
	sweepCtx, stopSweep := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		sweeper{engine: s.engine, interval: interval, global: s.cfg.ReconcileGlobal, metrics: s.metrics, log: s.log}.run(sweepCtx)
	}()

	err := s.consumer.Run(ctx)
	stopSweep()
	<-swept
	stopServer()
	return errors.Join(err, <-served)
}

// Close releases the database and the dead-letter writer.
func (s *service) Close() {
	if s.dlq != nil {
		if err := s.dlq.Close(); err != nil {
			s.log.Warn("close dead-letter writer", "error", err)
		}
	}
	if err := s.db.Close(); err != nil {
		s.log.Warn("close database", "error", err)
	}
}

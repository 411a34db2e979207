package main

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/config"
)

func newTopicsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "topics", Short: "Create the event topic and its dead-letter topic"}
	var (
		cfg         config.Config
		partitions  int
		replication int
		retention   time.Duration
	)
	create := &cobra.Command{
		Use:   "create [--partitions N] [--replication-factor N] [--retention D]",
		Short: "Create the event topic and the dead-letter topic; existing ones are left as they are",
		Long: `Create the event topic (--topic, or <prefix>-waffle-flag-override-lifecycle) and the
dead-letter topic (--dead-letter-topic, or <topic>.parked) with the same partition count.

The partition count is the service's maximum parallelism (one replica per partition); flag
changes are rare, so 3 to 6 is plenty. Retention bounds how far back a replay can go: keep it at
least as long as the database backups. A topic that exists already is left unchanged and its
partition count is printed. The Kafka user needs the CREATE permission on the topics (or the
cluster).`,
		Example: "  consumer topics create --topic-prefix prod --partitions 6 --replication-factor 3",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if partitions < 1 {
				return fmt.Errorf("--partitions %d: must be 1 or more", partitions)
			}
			if replication == 0 || replication < -1 {
				return fmt.Errorf("--replication-factor %d: must be 1 or more, or -1 for the broker's default", replication)
			}
			if retention <= 0 {
				return fmt.Errorf("--retention %s: must be positive", retention)
			}
			if err := loadKafkaConfig(cmd, &cfg); err != nil {
				return err
			}
			admin, err := adminOffsets(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			for _, topic := range []string{cfg.Topic, cfg.DeadLetterTopic} {
				res, err := admin.Client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
					Topic: topic, NumPartitions: partitions, ReplicationFactor: replication,
					ConfigEntries: []kafka.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: strconv.FormatInt(retention.Milliseconds(), 10)}},
				}}})
				if err == nil {
					err = res.Errors[topic]
				}
				switch {
				case err == nil:
					fmt.Fprintf(out, "created topic %s: %d partitions, retention %s\n", topic, partitions, retention)
				case errors.Is(err, kafka.TopicAlreadyExists):
					meta, merr := admin.Client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
					if merr != nil || len(meta.Topics) == 0 {
						fmt.Fprintf(out, "topic %s exists already; left as it is\n", topic)
						continue
					}
					fmt.Fprintf(out, "topic %s exists already (%d partitions); left as it is\n", topic, len(meta.Topics[0].Partitions))
				default:
					return fmt.Errorf("create topic %s on %v: %w", topic, cfg.Brokers, err)
				}
			}
			return nil
		},
	}
	config.RegisterParts(create.Flags(), &cfg, config.Kafka|config.Topic|config.DeadLetter)
	create.Flags().IntVar(&partitions, "partitions", 3, "partitions of each topic: the service's maximum parallelism (3 to 6 is plenty)")
	create.Flags().IntVar(&replication, "replication-factor", -1, "replicas of each partition (-1: the broker's default.replication.factor)")
	create.Flags().DurationVar(&retention, "retention", 7*24*time.Hour, "how long the topics keep events: how far back a replay can go")
	cmd.AddCommand(create)
	return cmd
}

package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/config"
	"authz-flag-consumer/internal/consumer"
)

func newReplayCmd() *cobra.Command {
	var (
		cfg        config.Config
		toTime     string
		toOffset   int64
		partitions []int
		dryRun     bool
	)
	cmd := &cobra.Command{
		Use:   "replay (--to-time T | --to-offset N)",
		Short: "Move the consumer group's committed offsets back (or forward) for a replay",
		Long: `Reset the consumer group's committed offsets on the event topic, so the next
'consumer run' re-reads from there. Replaying is safe: every event's direction
comes from the database and handled events are recognized by their id, so a
replay never makes a second run nor moves data the wrong way.

The group must have no live members: stop every 'consumer run' of the group
first (scale the Deployment to 0), reset, then start them again.

  --to-time T     first message at or after T (RFC 3339, e.g. 2024-05-01T10:00:00Z);
                  partitions with no message that late move to their end
  --to-offset N   offset N on every partition (clamped to what the log still
                  holds: 0 means the start of the topic)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			timeSet, offsetSet := cmd.Flags().Changed("to-time"), cmd.Flags().Changed("to-offset")
			if timeSet == offsetSet {
				return errors.New("give exactly one of --to-time or --to-offset")
			}
			target := consumer.ResetTarget{Offset: toOffset, Partitions: partitions}
			if timeSet {
				t, err := time.Parse(time.RFC3339, toTime)
				if err != nil {
					return fmt.Errorf("--to-time %q: want RFC 3339, e.g. 2024-05-01T10:00:00Z: %w", toTime, err)
				}
				target.Time = t
			} else if toOffset < 0 {
				return fmt.Errorf("--to-offset %d: must be 0 or more", toOffset)
			}
			if err := loadKafkaConfig(cmd, &cfg); err != nil {
				return err
			}
			offsets, err := adminOffsets(cfg)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var plan []consumer.PartitionReset
			if dryRun {
				plan, err = offsets.PlanReset(ctx, target)
			} else {
				plan, err = offsets.ResetOffsets(ctx, target)
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			verb := "reset"
			if dryRun {
				verb = "would reset (dry run)"
			}
			fmt.Fprintf(out, "group %s on topic %s: %s\n", cfg.GroupID, cfg.Topic, verb)
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "PARTITION\tCOMMITTED\tLOG START\tLOG END\tNEW OFFSET\tTO REPLAY")
			for _, p := range plan {
				from := "-"
				if p.From >= 0 {
					from = fmt.Sprint(p.From)
				}
				fmt.Fprintf(tw, "%d\t%s\t%d\t%d\t%d\t%d\n", p.Partition, from, p.Start, p.End, p.To, p.End-p.To)
			}
			return tw.Flush()
		},
	}
	config.RegisterParts(cmd.Flags(), &cfg, config.Kafka|config.Topic|config.Group)
	cmd.Flags().StringVar(&toTime, "to-time", "", "replay from the first message at or after this time (RFC 3339)")
	cmd.Flags().Int64Var(&toOffset, "to-offset", 0, "replay from this offset on every partition (0: from the start)")
	cmd.Flags().IntSliceVar(&partitions, "partition", nil, "only these partitions (default: all)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan without changing the group's offsets")
	return cmd
}

package main

import (
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/config"
	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/eventid"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/store"
)

func newParkedCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "parked",
		Short: "List parked events and re-drive them",
		Long: `Events the consumer could not decode (or whose override row never became
visible) are parked: copied to the dead-letter topic with the reason in
x-parked-* headers, and recorded in the database. 'parked list' shows them;
'parked redrive' publishes an event again, unchanged, to the partition it came
from, once the cause is fixed (a schema registered, a producer repaired).`,
	}
	cmd.AddCommand(newParkedListCmd(), newParkedRedriveCmd())
	return cmd
}

func newParkedListCmd() *cobra.Command {
	var (
		db     dbFlags
		all    bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [--all] [--json]",
		Short: "List parked events waiting for a re-drive (--all: also re-driven ones)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, err := db.open(cmd)
			if err != nil {
				return err
			}
			defer conn.Close()
			parked, err := migrator.New(conn, migrator.Options{}).Parked(cmd.Context(), all)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				list := make([]map[string]any, len(parked))
				for i, p := range parked {
					list[i] = map[string]any{"id": p.ID, "parked_at": p.ParkedAt, "topic": p.Topic, "partition": p.Partition,
						"offset": p.Offset, "event_id": p.EventID, "reason": p.Reason, "detail": p.Detail, "redriven_at": p.RedrivenAt}
				}
				return printJSON(out, list)
			}
			if len(parked) == 0 {
				fmt.Fprintln(out, "no parked events")
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tPARKED AT\tSOURCE\tEVENT ID\tREASON\tREDRIVEN AT")
			for _, p := range parked {
				redriven := "-"
				if p.RedrivenAt != nil {
					redriven = p.RedrivenAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", p.ID, p.ParkedAt.UTC().Format(time.RFC3339),
					eventid.Format(p.Topic, p.Partition, p.Offset), p.EventID, p.Reason, redriven)
			}
			return tw.Flush()
		},
	}
	db.readOnly = true
	db.register(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "include events already re-driven")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the parked events as a JSON array")
	return cmd
}

func newParkedRedriveCmd() *cobra.Command {
	var (
		cfg config.Config
		all bool
	)
	cmd := &cobra.Command{
		Use:   "redrive (ID... | --all)",
		Short: "Publish parked events again to the partition they came from",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return errors.New("give parked event ids (see 'consumer parked list') or --all")
			}
			ids := map[int64]bool{}
			for _, a := range args {
				id, err := strconv.ParseInt(a, 10, 64)
				if err != nil {
					return fmt.Errorf("parked event id %q: not a number", a)
				}
				ids[id] = true
			}
			if err := loadKafkaConfig(cmd, &cfg); err != nil {
				return err
			}
			ctx := cmd.Context()
			db, err := store.Open(ctx, cfg.DatabaseURL)
			if err != nil {
				return err
			}
			defer db.Close()
			engine := migrator.New(db, migrator.Options{})
			parked, err := engine.Parked(ctx, len(ids) > 0)
			if err != nil {
				return err
			}
			var todo []migrator.ParkedEvent
			for _, p := range parked {
				if all || ids[p.ID] {
					todo = append(todo, p)
					delete(ids, p.ID)
				}
			}
			for id := range ids {
				return fmt.Errorf("no parked event %d (see 'consumer parked list --all')", id)
			}
			w, err := cfg.KafkaWriter("", consumer.OriginalPartition{})
			if err != nil {
				return err
			}
			defer w.Close()
			out := cmd.OutOrStdout()
			for _, p := range todo {
				if err := w.WriteMessages(ctx, consumer.Redrive(p)); err != nil {
					return fmt.Errorf("re-drive parked event %d to %s/%d: %w", p.ID, p.Topic, p.Partition, err)
				}
				if err := engine.MarkRedriven(ctx, p.ID); err != nil {
					return fmt.Errorf("parked event %d was re-driven but not marked: %w", p.ID, err)
				}
				fmt.Fprintf(out, "re-drove parked event %d (%s, was %s) to %s partition %d\n",
					p.ID, p.Reason, eventid.Format(p.Topic, p.Partition, p.Offset), p.Topic, p.Partition)
			}
			if len(todo) == 0 {
				fmt.Fprintln(out, "no parked events to re-drive")
			}
			return nil
		},
	}
	config.RegisterParts(cmd.Flags(), &cfg, config.Database|config.Kafka)
	cmd.Flags().BoolVar(&all, "all", false, "re-drive every parked event not re-driven yet")
	return cmd
}

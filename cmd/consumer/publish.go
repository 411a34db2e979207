package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/config"
	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/store"
)

// publishArgs are the flags of `consumer publish` (the event's fields).
type publishArgs struct {
	scopeType  string
	scopeKey   string
	org        string
	choice     string
	disabled   bool
	flag       string
	recordID   int64
	changedBy  string
	changeDate string
	json       bool
}

func newPublishCmd() *cobra.Command {
	var (
		cfg config.Config
		a   publishArgs
	)
	cmd := &cobra.Command{
		Use:   "publish --scope-type course|org --scope-key KEY --choice on|off",
		Short: "Save a flag override as Django would and publish its event",
		Long: `Emit a waffle-flag-override-changed event, as the Open edX producer plugin
does when an override is saved: registry-framed Avro with the ce_* headers
(or JSON with --json), keyed by the scope key and sent to the partition
librdkafka would choose, so it stays in order with the LMS's own events.

Without --record-id the override row is first inserted into the database
(--database-url), like Django's save, and the event names the new row. With
--record-id only the event is sent (the row must exist, or appear soon).

Examples:
  consumer publish --scope-type course --scope-key course-v1:DemoX+Intro+2024 --choice off
  consumer publish --scope-type org --scope-key DemoX --choice on
  consumer publish --scope-type course --scope-key course-v1:DemoX+Adv+2024 --choice on --disabled   # remove the course override`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := loadKafkaConfig(cmd, &cfg); err != nil {
				return err
			}
			return publish(cmd.Context(), cmd.OutOrStdout(), cfg, a)
		},
	}
	config.RegisterParts(cmd.Flags(), &cfg, config.Database|config.Kafka|config.Topic|config.Registry|config.Watch)
	fs := cmd.Flags()
	fs.StringVar(&a.scopeType, "scope-type", "", "course or org")
	fs.StringVar(&a.scopeKey, "scope-key", "", "course key (course-v1:ORG+COURSE+RUN) or org short name")
	fs.StringVar(&a.org, "org", "", "the scope's org (default: derived from the scope key)")
	fs.StringVar(&a.choice, "choice", "", "override choice: on or off (lower case)")
	fs.BoolVar(&a.disabled, "disabled", false, "save the override disabled (enabled=false): it defers to the next level, as removing it does")
	fs.StringVar(&a.flag, "flag", "", "waffle flag (default: --watched-flag)")
	fs.Int64Var(&a.recordID, "record-id", 0, "publish for this existing override row instead of saving a new one")
	fs.StringVar(&a.changedBy, "changed-by", "", "username the save is attributed to")
	fs.StringVar(&a.changeDate, "change-date", "", "change date, RFC 3339 (default: now)")
	fs.BoolVar(&a.json, "json", false, "publish the JSON form (no schema registry)")
	for _, f := range []string{"scope-type", "scope-key", "choice"} {
		_ = cmd.MarkFlagRequired(f) // defined just above
	}
	return cmd
}

// publish saves the override (unless a record id is given) and sends its event.
func publish(ctx context.Context, out io.Writer, cfg config.Config, a publishArgs) error {
	o := demo.Override{
		ID:        a.recordID,
		Flag:      a.flag,
		ScopeType: a.scopeType,
		ScopeKey:  a.scopeKey,
		Org:       a.org,
		Enabled:   !a.disabled,
		Choice:    a.choice,
		ChangedBy: a.changedBy,
	}
	if o.Flag == "" {
		o.Flag = cfg.WatchedFlag
	}
	if o.Org == "" {
		o.Org = map[string]string{"course": demo.OrgOf(o.ScopeKey), "org": o.ScopeKey}[o.ScopeType]
	}
	if a.changeDate != "" {
		t, err := time.Parse(time.RFC3339, a.changeDate)
		if err != nil {
			return fmt.Errorf("--change-date %q: want RFC 3339: %w", a.changeDate, err)
		}
		o.ChangeDate = t.UTC()
	}
	// Django's choices are exactly "on" and "off"; the consumer treats any
	// other value as no override, which is never what an operator means.
	if o.Choice != "on" && o.Choice != "off" {
		return fmt.Errorf("--choice %q: want on or off (lower case, as Django stores it; --disabled removes an override)", o.Choice)
	}
	if o.ID == 0 {
		o.ID = 1 // validated before the row exists; replaced by the row's id
	}
	if err := o.Event().Validate(); err != nil {
		return fmt.Errorf("the consumer would park this event: %w", err)
	}
	// The broker, the topic and the registry first: a row saved with no
	// event waits for a sweep to notice it (or a save that never comes).
	parts, err := topicPartitions(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%w (nothing saved)", err)
	}
	if _, err := encodeEvent(ctx, cfg, o, a.json); err != nil {
		return fmt.Errorf("%w (nothing saved)", err)
	}
	if a.recordID == 0 {
		db, err := store.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		o, err = demo.Save(ctx, db, o)
		db.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "saved %s override row %d of %s (%s, enabled=%t) in %s\n", o.ScopeType, o.ID, o.ScopeKey, o.Choice, o.Enabled, store.MaskURL(cfg.DatabaseURL))
	}
	m, err := encodeEvent(ctx, cfg, o, a.json)
	var p int
	if err == nil {
		p, err = sendEvent(ctx, cfg, m, parts)
	}
	if err != nil {
		if a.recordID == 0 {
			return fmt.Errorf("%w; override row %d is saved without an event: publish it with --record-id %d", err, o.ID, o.ID)
		}
		return err
	}
	id, _ := m.Header(events.HeaderID)
	fmt.Fprintf(out, "published event %s (record_id %d) to %s partition %d\n", id, o.ID, cfg.Topic, p)
	return nil
}

// encodeEvent builds the message of o: registry-framed Avro, or JSON.
func encodeEvent(ctx context.Context, cfg config.Config, o demo.Override, asJSON bool) (events.Message, error) {
	if asJSON {
		return events.NewEncoder(nil, events.EncoderOptions{}).EncodeJSON(cfg.Topic, o.Event())
	}
	if cfg.SchemaRegistryURL == "" {
		return events.Message{}, errors.New("Avro events need a schema registry: set AUTHZ_CONSUMER_SCHEMA_REGISTRY_URL (--schema-registry-url), or publish JSON with --json")
	}
	rc, err := events.NewRegistryClient(cfg.SchemaRegistryURL, events.RegistryOptions{
		Username: cfg.SchemaRegistryUser, Password: cfg.SchemaRegistryPassword,
	})
	if err != nil {
		return events.Message{}, err
	}
	return events.NewEncoder(rc, events.EncoderOptions{}).Encode(ctx, cfg.Topic, o.Event())
}

// topicPartitions returns the partition count of the configured topic,
// which also tells that the broker answers and the topic exists.
func topicPartitions(ctx context.Context, cfg config.Config) (int, error) {
	offsets, err := adminOffsets(cfg)
	if err != nil {
		return 0, err
	}
	parts, err := offsets.Partitions(ctx)
	if err != nil {
		return 0, fmt.Errorf("topic %s on %v: %w", cfg.Topic, cfg.Brokers, err)
	}
	if len(parts) == 0 {
		return 0, fmt.Errorf("topic %s on %v has no partitions", cfg.Topic, cfg.Brokers)
	}
	return len(parts), nil
}

// sendEvent writes m to its topic on the partition the Open edX producer
// would pick for its key, and returns that partition.
func sendEvent(ctx context.Context, cfg config.Config, m events.Message, partitions int) (int, error) {
	w, err := cfg.KafkaWriter(m.Topic, consumer.KeyPartitioner{})
	if err != nil {
		return 0, err
	}
	defer w.Close()
	if err := w.WriteMessages(ctx, consumer.KafkaMessage(m)); err != nil {
		return 0, fmt.Errorf("publish to %s: %w", m.Topic, err)
	}
	return events.Partition(m.Key, partitions), nil
}

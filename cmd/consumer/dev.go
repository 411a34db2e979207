package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/config"
	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/devstack"
	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/store"
)

// devOptions are the flags of `consumer dev`.
type devOptions struct {
	dir          string
	stay         bool
	partitions   int
	kafkaPort    int
	registryPort int
	httpAddr     string
	verbose      bool
}

func newDevCmd() *cobra.Command {
	var o devOptions
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "One-command demo: embedded database, in-process Kafka and registry, scripted flag toggles",
		Long: `Start everything in one process with no setup: a fresh SQLite file, an
in-process Kafka-protocol broker on a loopback port, a schema registry, the
demo's users, courses and legacy course-team roles, and the consumer with
automatic migration on. Then play a script of course and org flag toggles,
each saved as Django would save it and published as the LMS would, and print
what the consumer did, the runs and what moved.

With --stay everything keeps running and the exact 'consumer publish'
commands to try next are printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDev(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.dir, "dir", "dev-data", "directory of the SQLite file and the consumer's log (the database is recreated)")
	fs.BoolVar(&o.stay, "stay", false, "keep running after the script and print commands to try")
	fs.IntVar(&o.partitions, "partitions", 3, "partitions of the event topic")
	fs.IntVar(&o.kafkaPort, "kafka-port", 0, "loopback port of the in-process Kafka broker (0: any free port)")
	fs.IntVar(&o.registryPort, "registry-port", 0, "loopback port of the schema registry (0: any free port)")
	fs.StringVar(&o.httpAddr, "http-addr", "127.0.0.1:0", "listen address of /healthz, /readyz and /metrics")
	fs.BoolVar(&o.verbose, "verbose", false, "also print the consumer's log (text) on stderr")
	return cmd
}

// devStep is one toggle of the script: override saves published as events.
type devStep struct {
	say   string
	saves []demo.Override
	raw   *kafka.Message // a hand-made message instead (the malformed one)
	note  string         // printed before the step
}

func devScript() []devStep {
	course := func(key, choice string) demo.Override {
		return demo.Override{ScopeType: "course", ScopeKey: key, Enabled: true, Choice: choice, ChangedBy: demo.Admin}
	}
	org := func(name, choice string) demo.Override {
		return demo.Override{ScopeType: "org", ScopeKey: name, Enabled: true, Choice: choice, ChangedBy: demo.Admin}
	}
	removed := course(demo.CourseAdv, "off")
	removed.Enabled = false
	other := org(demo.OrgDemo, "off")
	other.Flag = "studio.some_other_flag"
	ccx := course(demo.CCXIntro, "on")
	ccx.Org = demo.OrgDemo
	return []devStep{
		{say: "course " + demo.CourseIntro + " on", saves: []demo.Override{course(demo.CourseIntro, "on")}},
		{say: "org " + demo.OrgDemo + " on", saves: []demo.Override{org(demo.OrgDemo, "on")}},
		{say: "course " + demo.CourseAdv + " off (against its org)", saves: []demo.Override{course(demo.CourseAdv, "off")}},
		{say: "course " + demo.CourseAdv + " override removed (the org level applies)", saves: []demo.Override{removed}},
		{say: "course " + demo.CourseIntro + " on, saved again", saves: []demo.Override{course(demo.CourseIntro, "on")}},
		{say: "another flag on org " + demo.OrgDemo, saves: []demo.Override{other}},
		{say: "a CCX course (not course-v1)", saves: []demo.Override{ccx}},
		{say: "course " + demo.CourseBio + " off, then on (two quick saves)", saves: []demo.Override{course(demo.CourseBio, "off"), course(demo.CourseBio, "on")}},
		{say: "org " + demo.OrgDemo + " off (" + demo.CourseIntro + " keeps its own on)", saves: []demo.Override{org(demo.OrgDemo, "off")}},
		{say: "a malformed message", raw: &kafka.Message{Key: []byte(demo.OrgDemo), Value: []byte("this is not an event"),
			Headers: []kafka.Header{{Key: "content-type", Value: []byte("application/avro")}, {Key: "ce_type", Value: []byte(events.EventTypeV1)}, {Key: "ce_id", Value: []byte("dev-malformed-1")}}}},
	}
}

// runDev is the demo as a script of steps; each one is a method of devRun
// below, in the order they run.
func runDev(ctx context.Context, out io.Writer, o devOptions) error {
	d := &devRun{out: out, opts: o, began: time.Now()}
	defer d.close()
	for _, step := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"open the log", d.openLog},
		{"start the database, broker and registry", d.startStack},
		{"start the consumer", d.startConsumer},
		{"print the setup", d.printSetup},
		{"play the toggles", d.playToggles},
		{"print the summary", d.printSummary},
	} {
		if err := step.run(ctx); err != nil {
			return fmt.Errorf("dev: %s: %w", step.name, err)
		}
	}
	if !o.stay {
		return d.stopConsumer()
	}
	printTryNext(out, d.cfg, d.svc.server.Addr())
	return d.printEvents(ctx)
}

// devRun is the state the steps of runDev share.
type devRun struct {
	out   io.Writer
	opts  devOptions
	began time.Time

	logFile *os.File
	log     *slog.Logger
	stack   *devstack.Stack
	cfg     config.Config
	before  map[string]demo.ScopeCounts // legacy roles and assignments by scope before the toggles

	svc         *service
	settled     chan consumer.Settled // every event the consumer settled
	served      chan error            // what the consumer's Run returned
	stopService context.CancelFunc
	pub         devPublisher
}

// openLog creates <dir>/consumer.log, and sends the log to stderr too with --verbose.
func (d *devRun) openLog(context.Context) error {
	if err := os.MkdirAll(d.opts.dir, 0o755); err != nil {
		return err
	}
	path, err := filepath.Abs(filepath.Join(d.opts.dir, "consumer.log"))
	if err != nil {
		return err
	}
	if d.logFile, err = os.Create(path); err != nil {
		return err
	}
	var logOut io.Writer = d.logFile
	if d.opts.verbose {
		logOut = io.MultiWriter(d.logFile, os.Stderr)
	}
	d.log = slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return nil
}

// startStack starts a fresh SQLite database with the demo data, the broker
// with the topics and the registry, and counts the roles before the toggles.
func (d *devRun) startStack(ctx context.Context) error {
	d.cfg = devConfig(d.opts.httpAddr)
	var err error
	d.stack, err = devstack.Start(ctx, devstack.Options{
		Dir: d.opts.dir, Seed: true,
		Topic: d.cfg.Topic, Partitions: d.opts.partitions, DeadLetterTopic: d.cfg.DeadLetterTopic, KafkaPort: d.opts.kafkaPort,
		RegistryPort: d.opts.registryPort,
	})
	if err != nil {
		return err
	}
	d.cfg.DatabaseURL, d.cfg.Brokers, d.cfg.SchemaRegistryURL = d.stack.DatabaseURL, d.stack.Brokers, d.stack.RegistryURL
	if err := d.cfg.Validate(); err != nil {
		return err
	}
	d.before, err = demo.CountByScope(ctx, d.stack.DB)
	return err
}

// devConfig is the consumer's configuration in the demo: automatic
// migration on, and timings short enough that each toggle settles at once.
func devConfig(httpAddr string) config.Config {
	cfg := config.Config{
		TopicPrefix:     "dev",
		GroupID:         "authz-flag-consumer-dev",
		WatchedFlag:     authz.DefaultFlag,
		AutoMigrate:     true,
		HTTPAddr:        httpAddr,
		LogLevel:        "info",
		LogFormat:       "json",
		RetryMaxBackoff: 2 * time.Second,
		NotVisibleLimit: 10 * time.Second,

		SessionTimeout: 6 * time.Second, HeartbeatInterval: 500 * time.Millisecond, RebalanceTimeout: 5 * time.Second,
		CommitInterval: 100 * time.Millisecond, MinBackoff: 50 * time.Millisecond, LockTimeout: 10 * time.Second,
		ProgressInterval: config.DefaultProgressInterval,
	}
	cfg.Finish()
	return cfg
}

// startConsumer runs the service as `consumer run` does, reporting every
// settled event on d.settled, and opens the publisher of the toggles.
func (d *devRun) startConsumer(ctx context.Context) error {
	d.settled = make(chan consumer.Settled, 1024)
	var err error
	if d.svc, err = startService(ctx, d.cfg, d.log, func(s consumer.Settled) { d.settled <- s }); err != nil {
		return err
	}
	var svcCtx context.Context
	svcCtx, d.stopService = context.WithCancel(ctx)
	d.served = make(chan error, 1)
	go func() { d.served <- d.svc.Run(svcCtx) }()
	d.pub = devPublisher{cfg: d.cfg, db: d.stack.DB}
	return d.pub.open(ctx)
}

func (d *devRun) printSetup(context.Context) error {
	cfg := d.cfg
	fmt.Fprintf(d.out, "authz-flag-consumer dev: everything in one process, nothing to set up\n\n")
	tw := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  database\t%s (fresh, with the Open edX tables)\n", cfg.DatabaseURL)
	fmt.Fprintf(tw, "  kafka\t%s (in-process), topic %s with %d partitions, dead letters on %s\n", strings.Join(cfg.Brokers, ","), cfg.Topic, d.opts.partitions, cfg.DeadLetterTopic)
	fmt.Fprintf(tw, "  registry\t%s\n", cfg.SchemaRegistryURL)
	fmt.Fprintf(tw, "  consumer\tgroup %s, automatic migration on, flag %s\n", cfg.GroupID, cfg.WatchedFlag)
	fmt.Fprintf(tw, "  ops\thttp://%s/metrics  /readyz  /healthz\n", d.svc.server.Addr())
	fmt.Fprintf(tw, "  log\t%s\n", d.logFile.Name())
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "\nDemo data: %d legacy course-team roles of %d courses in orgs %s and %s (plus a CCX and an old slash-key course, never migrated)\n",
		len(demo.Roles), len(demo.Courses), demo.OrgDemo, demo.OrgOther)
	return nil
}

// playToggles plays devScript, printing one line per toggle with what
// happened to each of its events.
func (d *devRun) playToggles(ctx context.Context) error {
	fmt.Fprintf(d.out, "\nToggles (each saves the override row as Django would, then publishes its event as the LMS would):\n")
	script := devScript()
	width := 0
	for _, step := range script {
		width = max(width, len(step.say))
	}
	for i, step := range script {
		n, err := d.pub.play(ctx, step)
		if err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, step.say, err)
		}
		var lines []string
		for range n {
			s, err := d.next(ctx)
			if err != nil {
				return fmt.Errorf("step %d (%s): %w", i+1, step.say, err)
			}
			lines = append(lines, describe(ctx, d.svc.engine, s))
		}
		fmt.Fprintf(d.out, "  %d. %-*s  %s\n", i+1, width, step.say, strings.Join(lines, "\n     "+strings.Repeat(" ", width)+"  "))
	}
	return nil
}

// next waits for the next settled event.
func (d *devRun) next(ctx context.Context) (consumer.Settled, error) {
	select {
	case s := <-d.settled:
		return s, nil
	case err := <-d.served:
		return consumer.Settled{}, fmt.Errorf("consumer stopped: %v", err)
	case <-ctx.Done():
		return consumer.Settled{}, ctx.Err()
	case <-time.After(30 * time.Second):
		return consumer.Settled{}, fmt.Errorf("no outcome after 30s; see %s", d.logFile.Name())
	}
}

func (d *devRun) printSummary(ctx context.Context) error {
	if err := printSummary(ctx, d.out, d.stack.DB, d.svc.engine, d.before); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "\nDone in %.1fs.\n", time.Since(d.began).Seconds())
	return nil
}

// stopConsumer stops the consumer and returns what its Run returned.
func (d *devRun) stopConsumer() error {
	d.stopService()
	return <-d.served
}

// printEvents prints what happens to each event published from now on,
// until the consumer stops (Ctrl-C).
func (d *devRun) printEvents(ctx context.Context) error {
	for {
		select {
		case s := <-d.settled:
			scope := "partition " + fmt.Sprint(s.Partition)
			if s.Change.ScopeKey != "" {
				scope = fmt.Sprintf("%s %s %s", s.Change.ScopeType, s.Change.ScopeKey, s.Change.OverrideChoice)
			}
			fmt.Fprintf(d.out, "event (%s): %s\n", scope, describe(ctx, d.svc.engine, s))
		case err := <-d.served:
			return err
		}
	}
}

// close releases, in reverse order, whatever the steps started.
func (d *devRun) close() {
	if d.pub.w != nil {
		d.pub.close()
	}
	if d.stopService != nil {
		d.stopService()
	}
	if d.svc != nil {
		d.svc.Close()
	}
	if d.stack != nil {
		d.stack.Close()
	}
	if d.logFile != nil {
		d.logFile.Close()
	}
}

// devPublisher saves overrides and publishes their events for the script.
type devPublisher struct {
	cfg config.Config
	db  *store.DB
	enc *events.Encoder
	w   *kafka.Writer
}

func (p *devPublisher) open(context.Context) error {
	rc, err := events.NewRegistryClient(p.cfg.SchemaRegistryURL, events.RegistryOptions{})
	if err != nil {
		return err
	}
	p.enc = events.NewEncoder(rc, events.EncoderOptions{Source: "openedx/dev/web"})
	p.w = &kafka.Writer{
		Addr:         kafka.TCP(p.cfg.Brokers...),
		Topic:        p.cfg.Topic,
		Balancer:     consumer.KeyPartitioner{},
		BatchTimeout: 2 * time.Millisecond,
		RequiredAcks: kafka.RequireAll,
	}
	return nil
}

func (p *devPublisher) close() { p.w.Close() }

// play performs one step and returns how many events it published.
func (p *devPublisher) play(ctx context.Context, step devStep) (int, error) {
	if step.raw != nil {
		return 1, p.w.WriteMessages(ctx, *step.raw)
	}
	saved := make([]demo.Override, 0, len(step.saves))
	for _, o := range step.saves {
		o, err := demo.Save(ctx, p.db, o)
		if err != nil {
			return 0, err
		}
		saved = append(saved, o)
	}
	for _, o := range saved {
		m, err := p.enc.Encode(ctx, p.cfg.Topic, o.Event())
		if err != nil {
			return 0, err
		}
		if err := p.w.WriteMessages(ctx, consumer.KafkaMessage(m)); err != nil {
			return 0, err
		}
	}
	return len(saved), nil
}

// describe says in one line what happened to an event.
func describe(ctx context.Context, eng *migrator.Engine, s consumer.Settled) string {
	r := s.Result
	switch r.Outcome {
	case migrator.OutcomeRan:
		run, err := eng.GetRun(ctx, r.RunID)
		if err != nil {
			return fmt.Sprintf("ran: %s run #%d %s", r.Direction, r.RunID, r.Status)
		}
		return fmt.Sprintf("ran: %s run #%d %s, %s", run.MigrationType, run.ID, run.Status, runSummary(run))
	case migrator.OutcomeParked:
		return fmt.Sprintf("parked (%s): in the dead-letter topic and the parked table", s.Reason)
	case migrator.OutcomeIgnored:
		return "ignored: " + r.Detail
	default:
		return fmt.Sprintf("%s: %s", r.Outcome, r.Detail)
	}
}

func printSummary(ctx context.Context, out io.Writer, db *store.DB, eng *migrator.Engine, before map[string]demo.ScopeCounts) error {
	after, err := demo.CountByScope(ctx, db)
	if err != nil {
		return err
	}
	runs, err := eng.Runs(ctx, migrator.RunFilter{Limit: 100})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nRuns (openedx_authz_authzcourseauthoringmigrationrun):\n")
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tTYPE\tSCOPE\tSTATUS\tRESULT")
	for i := len(runs) - 1; i >= 0; i-- {
		r := runs[i]
		fmt.Fprintf(tw, "  %d\t%s\t%s %s\t%s\t%s\n", r.ID, r.MigrationType, r.ScopeType, r.ScopeKey, r.Status, runSummary(&r))
	}
	tw.Flush()

	fmt.Fprintf(out, "\nWhat moved (legacy student_courseaccessrole rows / authz role assignments, before → after):\n")
	scopes := make([]string, 0, len(after))
	for k := range before {
		scopes = append(scopes, k)
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			scopes = append(scopes, k)
		}
	}
	sort.Strings(scopes)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SCOPE\tLEGACY ROLES\tROLE ASSIGNMENTS\t")
	for _, k := range scopes {
		b, a := before[k], after[k]
		mark := ""
		if b != a {
			mark = "moved"
		}
		fmt.Fprintf(tw, "  %s\t%d → %d\t%d → %d\t%s\n", k, b.Legacy, a.Legacy, b.Assignments, a.Assignments, mark)
	}
	return tw.Flush()
}

func printTryNext(out io.Writer, cfg config.Config, opsAddr string) {
	bin := os.Args[0]
	if strings.Contains(bin, "go-build") {
		bin = "go run ./cmd/consumer"
	}
	common := fmt.Sprintf("--brokers %s --topic %s --schema-registry-url %s --database-url %s",
		strings.Join(cfg.Brokers, ","), cfg.Topic, cfg.SchemaRegistryURL, cfg.DatabaseURL)
	fmt.Fprintf(out, "\nEverything keeps running (Ctrl-C to stop). Try, in another terminal:\n\n")
	for _, c := range []string{
		"--scope-type course --scope-key " + demo.CourseIntro + " --choice off",
		"--scope-type org --scope-key " + demo.OrgOther + " --choice on",
		"--scope-type org --scope-key " + demo.OrgDemo + " --choice off",
		"--scope-type course --scope-key " + demo.CourseData + " --choice on --disabled",
	} {
		fmt.Fprintf(out, "  %s publish %s %s\n", bin, common, c)
	}
	fmt.Fprintf(out, "\n  %s runs list --database-url %s\n", bin, cfg.DatabaseURL)
	fmt.Fprintf(out, "  %s parked list --database-url %s\n", bin, cfg.DatabaseURL)
	fmt.Fprintf(out, "  %s parked redrive --all --brokers %s --database-url %s\n", bin, strings.Join(cfg.Brokers, ","), cfg.DatabaseURL)
	fmt.Fprintf(out, "  curl -s http://%s/metrics | grep ^authz_consumer_events_total\n\n", opsAddr)
	fmt.Fprintf(out, "Events the consumer handles from now on are printed below.\n")
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/config"
	"authz-flag-consumer/internal/migrator"
)

func newMigrateCmd() *cobra.Command {
	return manualRunCmd(migrator.Forward, "migrate",
		"Move legacy course access roles into openedx-authz (as authz_migrate_course_authoring)")
}

func newRollbackCmd() *cobra.Command {
	return manualRunCmd(migrator.Rollback, "rollback",
		"Move openedx-authz course role assignments back to legacy roles (as authz_rollback_course_authoring)")
}

// manualRunCmd builds migrate and rollback: same flags and meaning as
// openedx-authz's management commands, and every run is recorded (trigger
// manual), one run per course key or one for the org.
func manualRunCmd(dir migrator.Direction, use, short string) *cobra.Command {
	var (
		f       dbFlags
		courses []string
		org     string
		del     bool
		dryRun  bool
		force   bool
	)
	cmd := &cobra.Command{
		Use:   use + " (--course-id-list KEY [KEY...] | --org-id ORG) [--delete] [--dry-run] [--force]",
		Short: short,
		Long: short + `.

Each course key, or the org, is one run under the org's advisory lock, recorded in
openedx_authz_authzcourseauthoringmigrationrun with trigger "manual". Without --delete
the source rows stay (a copy); with it they are removed once moved.
--dry-run prints the plan instead (the rows each run would move, its errors by reason)
and writes nothing. Exit code 1 when a run failed (or, dry, would fail), or was skipped
because another run of the org held its lock longer than --lock-timeout.

A run against the scope's effective flag state (a forward run where the flag is off, a
rollback where it is on) is refused without --force: the next reconcile of the scope (an
event for it, the sweep, ` + "`consumer reconcile`" + `) would move the roles back.`,
		Example: "  consumer " + use + " --org-id OrgX --delete\n  consumer " + use + " --course-id-list course-v1:OrgX+C1+2024 course-v1:OrgX+C2+2024",
		RunE: func(cmd *cobra.Command, args []string) error {
			courses = append(courses, args...) // --course-id-list K1 K2: the rest arrive as args
			if (len(courses) == 0) == (org == "") {
				return errors.New("give exactly one of --course-id-list and --org-id")
			}
			reqs, err := manualRequests(dir, courses, org, del)
			if err != nil {
				return err
			}
			for i := range reqs {
				reqs[i].DryRun = dryRun
			}
			db, eng, err := f.openEngine(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			// A dry run does its work in a transaction it rolls back, which
			// needs the service's own tables too, but not the GRANTs.
			if dryRun {
				err = db.Migrate(cmd.Context())
			} else {
				err = readyToWrite(cmd.Context(), db, f.cfg.Logger(os.Stderr))
			}
			if err != nil {
				return err
			}
			if err := checkKnown(cmd.Context(), eng, courses, org); err != nil {
				return err
			}
			if err := checkAgainstFlag(cmd.Context(), cmd.ErrOrStderr(), eng, reqs, force || dryRun); err != nil {
				return err
			}
			failed, skipped := 0, 0
			for _, req := range reqs {
				run, err := eng.Run(cmd.Context(), req)
				if err != nil {
					return err
				}
				printRun(cmd.OutOrStdout(), run)
				switch run.Status {
				case migrator.StatusFailed:
					failed++
				case migrator.StatusSkipped:
					skipped++
				}
			}
			if dryRun {
				fmt.Fprintln(cmd.OutOrStdout(), "dry run: nothing was written")
				if failed > 0 {
					return fmt.Errorf("%d of %d runs would fail", failed, len(reqs))
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d runs failed (see `consumer runs show ID`)", failed, len(reqs))
			}
			if skipped > 0 {
				return fmt.Errorf("%d of %d runs skipped: another run of the org held its lock longer than --lock-timeout (%s); run again once it is done (`consumer runs list`)", skipped, len(reqs), f.cfg.LockTimeout)
			}
			return nil
		},
	}
	config.RegisterParts(cmd.Flags(), &f.cfg, config.Database|config.Lock|config.Watch)
	cmd.Flags().StringSliceVar(&courses, "course-id-list", nil, "course keys (course-v1:ORG+COURSE+RUN), space or comma separated")
	cmd.Flags().StringVar(&org, "org-id", "", "org short name: its org-wide roles and every course of it")
	cmd.Flags().BoolVar(&del, "delete", false, "delete the source rows once moved")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan (rows that would move, errors by reason) and write nothing")
	cmd.Flags().BoolVar(&force, "force", false, "run even where the scope's effective flag state says the other direction (the next reconcile of the scope moves the roles back)")
	return cmd
}

// checkKnown refuses a scope nothing in the database names: its run would
// record a completed run of 0 of 0 and hide a typo.
func checkKnown(ctx context.Context, eng *migrator.Engine, courses []string, org string) error {
	if org != "" {
		known, err := eng.OrgKnown(ctx, org)
		if err != nil {
			return err
		}
		if !known {
			return fmt.Errorf("org %q is unknown here: no legacy course access roles and no openedx-authz assignments name it", org)
		}
		return nil
	}
	for _, k := range courses {
		known, err := eng.CourseKnown(ctx, k)
		if err != nil {
			return err
		}
		if !known {
			return fmt.Errorf("course %q is unknown here: no legacy course access roles, openedx-authz assignments, course overview or flag override name it (nothing was run)", k)
		}
	}
	return nil
}

// checkAgainstFlag compares each run's direction with its scope's
// effective flag state. A run against it is refused unless force, in which
// case it is only warned about on w.
func checkAgainstFlag(ctx context.Context, w io.Writer, eng *migrator.Engine, reqs []migrator.Request, force bool) error {
	var against []string
	for _, req := range reqs {
		key := req.Org
		if req.ScopeType == migrator.CourseScope {
			key = req.CourseKeys[0]
		}
		on, why, err := eng.EffectiveState(ctx, req.ScopeType, key)
		if err != nil {
			return err
		}
		if on == (req.Direction == migrator.Forward) {
			continue
		}
		state := map[bool]string{true: "on", false: "off"}[on]
		against = append(against, fmt.Sprintf("%s %s is %s (%s)", req.ScopeType, key, state, why))
	}
	if len(against) == 0 {
		return nil
	}
	dir := reqs[0].Direction
	msg := fmt.Sprintf("a %s run goes against the effective flag state: %s; the next reconcile of the scope (an event for it, the sweep, `consumer reconcile`) would move the roles back",
		dir, strings.Join(against, ", "))
	if !force {
		return errors.New(msg + "; change the flag override instead, or give --force to run anyway (nothing was run)")
	}
	fmt.Fprintln(w, "warning: "+msg)
	return nil
}

// manualRequests validates every key before anything runs.
func manualRequests(dir migrator.Direction, courses []string, org string, del bool) ([]migrator.Request, error) {
	trig := migrator.Trigger{Kind: migrator.TriggerManual}
	if org != "" {
		if err := authz.ValidOrg(org); err != nil {
			return nil, err
		}
		return []migrator.Request{{Direction: dir, ScopeType: migrator.OrgScope, Org: org, Delete: del, Trigger: trig}}, nil
	}
	var reqs []migrator.Request
	for _, k := range courses {
		if _, err := authz.CourseV1Org(k); err != nil {
			return nil, err
		}
		reqs = append(reqs, migrator.Request{Direction: dir, ScopeType: migrator.CourseScope, CourseKeys: []string{k}, Delete: del, Trigger: trig})
	}
	return reqs, nil
}

// printRun prints the one-line summary of a run; a dry run's plan also
// lists what it would move and leave (capped).
func printRun(w io.Writer, r *migrator.Run) {
	if r.DryRun {
		fmt.Fprintf(w, "plan   %-8s %-6s %-40s %-15s %s\n", r.MigrationType, r.ScopeType, r.ScopeKey, r.Status, runSummary(r))
		printPlanRows(w, r.Metadata)
		return
	}
	fmt.Fprintf(w, "run %d  %-8s %-6s %-40s %-15s %s\n", r.ID, r.MigrationType, r.ScopeType, r.ScopeKey, r.Status, runSummary(r))
}

// planListed caps the rows a plan lists to move, and per error reason.
const planListed = 20

func printPlanRows(w io.Writer, md map[string]any) {
	if ex, ok := md["excluded_courses"].([]any); ok && len(ex) > 0 {
		fmt.Fprintf(w, "  left out for their own override: %s\n", joinAny(ex, ", "))
	}
	list := func(verb string, entries []any, count int) {
		for i, en := range entries {
			if i == planListed {
				break
			}
			fmt.Fprintf(w, "  %s: %s\n", verb, entryText(en))
		}
		if shown := min(len(entries), planListed); count > shown {
			fmt.Fprintf(w, "  %s: ... and %d more\n", verb, count-shown)
		}
	}
	successes, _ := md["successes"].([]any)
	list("move", successes, asInt(md["success_count"]))
	errs, _ := md["errors"].(map[string]any)
	counts, _ := md["error_counts"].(map[string]any)
	reasons := make([]string, 0, len(errs))
	for reason := range errs {
		reasons = append(reasons, reason)
	}
	sort.Strings(reasons)
	for _, reason := range reasons {
		entries, _ := errs[reason].([]any)
		list(reason, entries, max(len(entries), asInt(counts[reason])))
	}
}

// entryText renders a metadata entry: subject role scope (details).
func entryText(en any) string {
	m, _ := en.(map[string]any)
	var parts []string
	for _, k := range []string{"subject", "role", "scope"} {
		if v, ok := m[k]; ok {
			parts = append(parts, fmt.Sprint(v))
		}
	}
	s := strings.Join(parts, "  ")
	if d, ok := m["details"]; ok {
		s += "  (" + fmt.Sprint(d) + ")"
	}
	return s
}

func joinAny(vs []any, sep string) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprint(v)
	}
	return strings.Join(out, sep)
}

func asInt(v any) int {
	f, _ := v.(float64) // metadata numbers, as JSON reads them
	return int(f)
}

func runSummary(r *migrator.Run) string {
	md := r.Metadata
	if e, ok := md["error"]; ok {
		return fmt.Sprint("error: ", e)
	}
	if s, ok := md["skip_reason"]; ok {
		return fmt.Sprint(s)
	}
	verb := "moved"
	if r.DryRun {
		verb = "would move"
	}
	s := fmt.Sprintf("%s %v of %v", verb, md["success_count"], md["total"])
	if errs, ok := md["errors"].(map[string]any); ok && len(errs) > 0 {
		counts, _ := md["error_counts"].(map[string]any) // exact where lists are capped (plans)
		var parts []string
		for reason, list := range errs {
			if l, ok := list.([]any); ok {
				parts = append(parts, fmt.Sprintf("%s %d", reason, max(len(l), asInt(counts[reason]))))
			}
		}
		sort.Strings(parts)
		s += "; errors: " + strings.Join(parts, ", ")
	}
	return s
}

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/migrator"
)

// runStatuses are the statuses `runs list --status` accepts.
var runStatuses = []string{migrator.StatusRunning, migrator.StatusCompleted, migrator.StatusPartialSuccess, migrator.StatusFailed, migrator.StatusSkipped}

func newRunsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "runs", Short: "List and show migration runs"}
	var (
		lf     dbFlags
		filter migrator.RunFilter
		asJSON bool
	)
	list := &cobra.Command{
		Use:   "list [--status S] [--scope KEY] [--limit N] [--json]",
		Short: "List runs, newest first: id, scope, type, status, counts, trigger, start, duration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if filter.Status != "" && !slices.Contains(runStatuses, filter.Status) {
				return fmt.Errorf("--status %q is not one of %s", filter.Status, strings.Join(runStatuses, ", "))
			}
			if filter.Limit < 0 {
				return fmt.Errorf("--limit %d: must be 0 (all) or more", filter.Limit)
			}
			db, eng, err := lf.openEngine(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			runs, err := eng.Runs(cmd.Context(), filter)
			if err != nil {
				return err
			}
			if asJSON {
				out := make([]map[string]any, len(runs))
				for i := range runs {
					out[i] = runJSON(&runs[i])
				}
				return printJSON(cmd.OutOrStdout(), out)
			}
			printRunTable(cmd.OutOrStdout(), runs)
			return nil
		},
	}
	lf.readOnly = true
	lf.register(list)
	list.Flags().IntVar(&filter.Limit, "limit", 50, "how many runs (0: all)")
	list.Flags().StringVar(&filter.Status, "status", "", "only runs with this status ("+strings.Join(runStatuses, ", ")+")")
	list.Flags().StringVar(&filter.ScopeKey, "scope", "", "only runs of this course key or org")
	list.Flags().BoolVar(&asJSON, "json", false, "print the runs as a JSON array, metadata included")

	var (
		sf       dbFlags
		showJSON bool
	)
	show := &cobra.Command{
		Use:   "show ID [--json]",
		Short: "Show one run: its summary, then its metadata (successes, errors by reason, trigger)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return fmt.Errorf("run id %q is not a number", args[0])
			}
			db, eng, err := sf.openEngine(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			run, err := eng.GetRun(cmd.Context(), id)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if showJSON {
				return printJSON(out, runJSON(run))
			}
			printRunTable(out, []migrator.Run{*run})
			md, _ := json.MarshalIndent(run.Metadata, "", "  ")
			fmt.Fprintf(out, "\nmetadata:\n%s\n", md)
			return nil
		},
	}
	sf.readOnly = true
	sf.register(show)
	show.Flags().BoolVar(&showJSON, "json", false, "print the run as one JSON object")
	cmd.AddCommand(list, show)
	return cmd
}

// runJSON is a run as --json prints it.
func runJSON(r *migrator.Run) map[string]any {
	return map[string]any{
		"id": r.ID, "migration_type": r.MigrationType, "scope_type": r.ScopeType, "scope_key": r.ScopeKey,
		"status": r.Status, "trigger": runTrigger(r), "created_at": r.CreatedAt, "updated_at": r.UpdatedAt,
		"completed_at": r.CompletedAt, "metadata": r.Metadata,
	}
}

func printJSON(w io.Writer, v any) error {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(out))
	return err
}

// printRunTable prints runs as a table with a header.
func printRunTable(w io.Writer, runs []migrator.Run) {
	if len(runs) == 0 {
		fmt.Fprintln(w, "no runs")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSCOPE\tTYPE\tSTATUS\tMOVED\tERRORS\tTRIGGER\tSTARTED (UTC)\tDURATION")
	for i := range runs {
		r := &runs[i]
		moved := fmt.Sprintf("%d of %d", asInt(r.Metadata["success_count"]), asInt(r.Metadata["total"]))
		errs := fmt.Sprint(asInt(r.Metadata["error_count"]))
		if _, ok := r.Metadata["error"]; ok {
			errs = "run failed"
		}
		if _, ok := r.Metadata["skip_reason"]; ok {
			moved, errs = "-", "-"
		}
		fmt.Fprintf(tw, "%d\t%s %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.ScopeType, r.ScopeKey, r.MigrationType, r.Status,
			moved, errs, runTrigger(r), r.CreatedAt.UTC().Format("2006-01-02 15:04:05"), runDuration(r))
	}
	tw.Flush()
}

// runTrigger reads the trigger kind from the metadata ("-" for runs made
// by openedx-authz, which records none); an event trigger names the event.
func runTrigger(r *migrator.Run) string {
	t, _ := r.Metadata["trigger"].(string)
	if t == "" {
		return "-"
	}
	if ev, ok := r.Metadata["event"].(map[string]any); ok && t == migrator.TriggerEvent {
		return fmt.Sprintf("event %v/%v", ev["partition"], ev["offset"])
	}
	return t
}

func runDuration(r *migrator.Run) string {
	if r.CompletedAt == nil {
		return "-"
	}
	d := r.CompletedAt.Sub(r.CreatedAt)
	if d < 0 {
		d = 0
	}
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

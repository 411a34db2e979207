package main

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/migrator"
)

func newRunsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "runs", Short: "List and show migration runs"}
	var lf dbFlags
	var filter migrator.RunFilter
	list := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, eng, err := lf.openEngine(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			runs, err := eng.Runs(cmd.Context(), filter)
			if err != nil {
				return err
			}
			for i := range runs {
				printRun(cmd.OutOrStdout(), &runs[i])
			}
			return nil
		},
	}
	lf.register(list)
	list.Flags().IntVar(&filter.Limit, "limit", 50, "how many runs (0: all)")
	list.Flags().StringVar(&filter.Status, "status", "", "only runs with this status (running, completed, partial_success, failed, skipped)")
	list.Flags().StringVar(&filter.ScopeKey, "scope", "", "only runs of this course key or org")

	var sf dbFlags
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one run with its metadata as JSON",
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
			out, _ := json.MarshalIndent(map[string]any{
				"id": run.ID, "migration_type": run.MigrationType, "scope_type": run.ScopeType, "scope_key": run.ScopeKey,
				"status": run.Status, "created_at": run.CreatedAt, "updated_at": run.UpdatedAt, "completed_at": run.CompletedAt,
				"metadata": run.Metadata,
			}, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), string(out))
			return nil
		},
	}
	sf.register(show)
	cmd.AddCommand(list, show)
	return cmd
}

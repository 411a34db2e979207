package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/migrator"
)

func newReconcileCmd() *cobra.Command {
	var (
		f      dbFlags
		sel    scopeSelection
		dryRun bool
	)
	cmd := &cobra.Command{
		Use:   "reconcile (--course-id-list KEY [KEY...] | --org-id ORG | --all) [--dry-run]",
		Short: "Fix drift: move every drifting scope's roles where its effective flag state puts them",
		Long: `Fix what ` + "`consumer verify`" + ` reports: each scope whose mappable roles are not where its
effective flag state puts them gets a run in that direction (forward when on, rollback when off),
source rows deleted, recorded with trigger "reconcile", under the org's advisory lock, updating the
service's ledger of applied states as event-driven runs do. Org by org, the org's own run first:
it may fix its courses (courses with their own opposing override are left out of it). Each scope
is checked again under the lock right before its run; one fixed meanwhile gets none.

--dry-run prints the runs it would make (rows each would move, errors by reason, courses left
out) and writes nothing: each org's runs are made in one transaction that is rolled back.
Exit code 1 when a run failed (or, dry, would fail).`,
		Example: "  consumer reconcile --all --dry-run\n  consumer reconcile --org-id DemoX\n  consumer reconcile --course-id-list course-v1:DemoX+Intro+2024",
		RunE: func(cmd *cobra.Command, args []string) error {
			db, eng, rep, err := verifySelected(cmd, &f, &sel, args, true)
			if err != nil {
				return err
			}
			defer db.Close()
			if !dryRun {
				if err := readyToWrite(cmd.Context(), db, f.cfg.Logger(os.Stderr)); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			drifting := rep.Drifting()
			if len(drifting) == 0 {
				fmt.Fprintf(out, "reconcile: no drift in %d scopes checked; nothing to do\n", rep.ScopesChecked)
				return nil
			}
			runs, err := eng.Reconcile(cmd.Context(), drifting, dryRun)
			failed, skipped := 0, 0
			for _, run := range runs {
				printRun(out, run)
				switch run.Status {
				case migrator.StatusFailed:
					failed++
				case migrator.StatusSkipped:
					skipped++
				}
			}
			if err != nil {
				return err
			}
			what := "made"
			if dryRun {
				what = "planned (dry run: nothing was written)"
			}
			fmt.Fprintf(out, "reconcile: %d of %d scopes checked drifting; %d run(s) %s", len(drifting), rep.ScopesChecked, len(runs), what)
			if settled := len(drifting) - len(runs); settled > 0 {
				fmt.Fprintf(out, "; %d scope(s) settled by an earlier run of their org, or meanwhile", settled)
			}
			fmt.Fprintln(out)
			if failed > 0 {
				if dryRun {
					return fmt.Errorf("%d of %d runs would fail", failed, len(runs))
				}
				return fmt.Errorf("%d of %d runs failed (see `consumer runs show ID`)", failed, len(runs))
			}
			if skipped > 0 && !dryRun {
				return fmt.Errorf("%d of %d runs skipped: another run of the org held its lock longer than --lock-timeout (%s); run reconcile again once it is done", skipped, len(runs), f.cfg.LockTimeout)
			}
			return nil
		},
	}
	f.registerRuns(cmd)
	sel.register(cmd, true)
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the runs it would make and write nothing")
	return cmd
}

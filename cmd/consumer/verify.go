package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/config"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/store"
)

func newVerifyCmd() *cobra.Command {
	var (
		f         dbFlags
		sel       scopeSelection
		asJSON    bool
		allScopes bool
	)
	cmd := &cobra.Command{
		Use:   "verify [--org-id ORG | --course-id-list KEY [KEY...]] [--json] [--all-scopes]",
		Short: "Report, read-only, every scope whose roles are not where the flag puts them (drift)",
		Long: `Report drift, read-only: for every scope the database knows (orgs and courses named by
legacy course access roles, by openedx-authz assignments, by override rows of the watched flag),
its effective flag state (course override, else org override, else the global flag) and the
mappable roles that are not where that state puts it: legacy rows in a scope that is on,
openedx-authz assignments in a scope that is off.

Rows a run would leave in place with a per-row error, as openedx-authz leaves them (an
assignment that already exists, a course key or org glob openedx-authz cannot hold, a rule
whose user has no user subject, ...), are listed apart and are not drift. Org-wide rows and
org globs belong to the org scope.

It reads in one read-only transaction and writes nothing. Exit code 1 when there is drift
(or on an error, with its message on stderr), 0 otherwise; ` + "`consumer reconcile`" + ` fixes drift.`,
		Example: "  consumer verify\n  consumer verify --org-id DemoX --json",
		RunE: func(cmd *cobra.Command, args []string) error {
			db, _, rep, err := verifySelected(cmd, &f, &sel, args, false)
			if err != nil {
				return err
			}
			defer db.Close()
			if !allScopes {
				rep.Scopes = worthShowing(rep.Scopes)
			}
			if asJSON {
				out, _ := json.MarshalIndent(rep, "", "  ")
				fmt.Fprintln(cmd.OutOrStdout(), string(out))
			} else {
				printDrift(cmd.OutOrStdout(), rep)
			}
			if rep.DriftingScopes > 0 {
				return fmt.Errorf("drift in %d scope(s), %d role(s) to move: see `consumer reconcile --dry-run`", rep.DriftingScopes, rep.DriftRows)
			}
			return nil
		},
	}
	f.readOnly = true
	f.register(cmd)
	sel.register(cmd, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&allScopes, "all-scopes", false, "list every scope checked, not only those with drift or rows left by per-row errors")
	return cmd
}

// scopeSelection is the --course-id-list / --org-id / --all choice of
// verify and reconcile.
type scopeSelection struct {
	courses []string
	org     string
	all     bool
	flag    string
}

func (s *scopeSelection) register(cmd *cobra.Command, withAll bool) {
	cmd.Flags().StringSliceVar(&s.courses, "course-id-list", nil, "only these courses (course-v1:ORG+COURSE+RUN), space or comma separated")
	cmd.Flags().StringVar(&s.org, "org-id", "", "only this org: its org-wide roles and every course of it")
	if withAll {
		cmd.Flags().BoolVar(&s.all, "all", false, "every scope")
	}
	cmd.Flags().StringVar(&s.flag, "watched-flag", authz.DefaultFlag, "waffle flag whose overrides decide the effective state [env "+config.EnvVar("watched-flag")+"]")
}

// filter validates the choice; required: exactly one of the three.
func (s *scopeSelection) filter(args []string, required bool) (migrator.VerifyFilter, error) {
	s.courses = append(s.courses, args...) // --course-id-list K1 K2: the rest arrive as args
	n := 0
	for _, given := range []bool{len(s.courses) > 0, s.org != "", s.all} {
		if given {
			n++
		}
	}
	switch {
	case n > 1 || (required && n == 0):
		if required {
			return migrator.VerifyFilter{}, errors.New("give exactly one of --course-id-list, --org-id and --all")
		}
		return migrator.VerifyFilter{}, errors.New("give at most one of --course-id-list and --org-id")
	case s.org != "":
		if err := authz.ValidOrg(s.org); err != nil {
			return migrator.VerifyFilter{}, err
		}
		return migrator.VerifyFilter{Org: s.org}, nil
	}
	for _, k := range s.courses {
		if _, err := authz.CourseV1Org(k); err != nil {
			return migrator.VerifyFilter{}, err
		}
	}
	return migrator.VerifyFilter{Courses: s.courses}, nil
}

// verifySelected validates the selection, opens the database and reports
// its drift; the caller closes db.
func verifySelected(cmd *cobra.Command, f *dbFlags, sel *scopeSelection, args []string, required bool) (*store.DB, *migrator.Engine, *migrator.DriftReport, error) {
	filter, err := sel.filter(args, required)
	if err != nil {
		return nil, nil, nil, err
	}
	db, eng, err := f.openWatching(cmd)
	if err != nil {
		return nil, nil, nil, err
	}
	rep, err := eng.Verify(cmd.Context(), filter)
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	return db, eng, rep, nil
}

// openWatching opens the engine with the watched flag of --watched-flag,
// else AUTHZ_CONSUMER_WATCHED_FLAG, else the default.
func (f *dbFlags) openWatching(cmd *cobra.Command) (*store.DB, *migrator.Engine, error) {
	db, _, err := f.openEngine(cmd)
	if err != nil {
		return nil, nil, err
	}
	fl := cmd.Flags().Lookup("watched-flag")
	flag := fl.Value.String()
	if v, ok := os.LookupEnv(config.EnvVar("watched-flag")); ok && v != "" && !fl.Changed {
		flag = v
	}
	return db, migrator.New(db, migrator.Options{Logger: f.cfg.Logger(os.Stderr), WatchedFlag: flag, LockTimeout: f.cfg.LockTimeout, ProgressInterval: f.cfg.ProgressInterval}), nil
}

// worthShowing keeps the scopes with drift or rows left by per-row errors.
func worthShowing(scopes []migrator.ScopeDrift) []migrator.ScopeDrift {
	out := []migrator.ScopeDrift{}
	for _, s := range scopes {
		if s.Drift > 0 || s.LeftByErrors > 0 {
			out = append(out, s)
		}
	}
	return out
}

// driftListed caps the rows listed per scope in the text report.
const driftListed = 20

func printDrift(w io.Writer, rep *migrator.DriftReport) {
	if len(rep.Scopes) > 0 {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TYPE\tSCOPE\tEFFECTIVE\tLEGACY\tASSIGNMENTS\tDRIFT\tLEFT BY ERRORS")
		for _, s := range rep.Scopes {
			fmt.Fprintf(tw, "%s\t%s\t%s (%s)\t%d\t%d\t%d\t%d\n", s.Type, s.Key, s.State, s.Why, s.Legacy, s.Assignments, s.Drift, s.LeftByErrors)
		}
		tw.Flush()
	}
	listRows := func(title string, pick func(migrator.ScopeDrift) (map[string][]migrator.RowRef, int)) {
		printed := false
		for _, s := range rep.Scopes {
			lists, count := pick(s)
			if count == 0 {
				continue
			}
			if !printed {
				fmt.Fprintf(w, "\n%s\n", title)
				printed = true
			}
			shown := 0
			for _, reason := range sortedKeys(lists) {
				for _, r := range lists[reason] {
					if shown == driftListed {
						break
					}
					shown++
					fmt.Fprintf(w, "  %s %s: %s\n", s.Type, s.Key, rowText(reason, r))
				}
			}
			if count > shown {
				fmt.Fprintf(w, "  %s %s: ... and %d more\n", s.Type, s.Key, count-shown)
			}
		}
	}
	listRows("Drift (a run in the direction of the effective state moves these):", func(s migrator.ScopeDrift) (map[string][]migrator.RowRef, int) {
		return map[string][]migrator.RowRef{"": s.DriftRows}, s.Drift
	})
	listRows("Left in place by per-row errors (openedx-authz leaves them too; not drift):", func(s migrator.ScopeDrift) (map[string][]migrator.RowRef, int) {
		return s.Errors, s.LeftByErrors
	})
	fmt.Fprintf(w, "\nverify (%s): %d scopes checked, %d drifting (%d roles to move), %d roles left by per-row errors\n",
		rep.Flag, rep.ScopesChecked, rep.DriftingScopes, rep.DriftRows, rep.LeftByErrors)
}

func rowText(reason string, r migrator.RowRef) string {
	where := "legacy row"
	if r.Table != store.LegacyRoleTable {
		where = "assignment"
	}
	s := fmt.Sprintf("%s id=%d  %s  %s  %s", where, r.ID, r.Subject, r.Role, r.Scope)
	if reason != "" {
		s = reason + "  " + s
	}
	if r.Details != "" {
		s += "  (" + r.Details + ")"
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

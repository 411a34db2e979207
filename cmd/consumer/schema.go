package main

import (
	"fmt"
	"sort"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/store"
)

func newSchemaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Create or check the database tables",
	}
	cmd.AddCommand(schemaSub("create", false,
		"Create the Open edX tables (embedded default, tests, standalone) and the service's own tables",
		"The Open edX tables are made exactly as Open edX's Django migrations make them on this\n"+
			"database (names, types, nullability, unique keys, indexes, foreign keys, and on MySQL the\n"+
			"case-insensitive utf8mb4_unicode_ci collation). A database that already holds any Open edX\n"+
			"table is refused: there Django owns them (use `schema migrate` for the service's own tables).",
		func(cmd *cobra.Command, db *store.DB) error {
			if err := db.CreateSchema(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %d Open edX tables as Open edX's migrations make them, and the service's own tables (version %d), in %s\n",
				len(store.OpenEdXTables), store.SchemaVersion, db.URL)
			return nil
		}))
	cmd.AddCommand(schemaSub("migrate", false,
		"Create or upgrade only the service's own authz_consumer_* tables",
		"Safe on a production Open edX database: it never touches Django's tables.",
		func(cmd *cobra.Command, db *store.DB) error {
			before, err := db.OwnVersion(cmd.Context())
			if err != nil {
				return err
			}
			if err := db.Migrate(cmd.Context()); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch before {
			case store.SchemaVersion:
				fmt.Fprintf(out, "own tables already at version %d in %s; nothing to do\n", store.SchemaVersion, db.URL)
			case 0:
				fmt.Fprintf(out, "created the service's own tables (version %d) in %s\n", store.SchemaVersion, db.URL)
			default:
				fmt.Fprintf(out, "upgraded the service's own tables from version %d to %d in %s\n", before, store.SchemaVersion, db.URL)
			}
			return nil
		}))
	cmd.AddCommand(schemaSub("check", true,
		"Compare a live database with the expected tables, read-only, and name every difference",
		"Incompatible differences (a missing table or column, a column narrower than what the service\n"+
			"writes, NOT NULL where it writes NULL, another type family) are listed one per line and make\n"+
			"the exit code 1. Harmless ones (a wider column, another integer width, a case-sensitive\n"+
			"collation, the service's own tables not created yet) are listed as warnings. Extra columns,\n"+
			"indexes and foreign keys are not differences.",
		func(cmd *cobra.Command, db *store.DB) error {
			diffs, err := db.Check(cmd.Context())
			if err != nil {
				return err
			}
			sort.SliceStable(diffs, func(i, j int) bool { return !diffs[i].Compatible && diffs[j].Compatible })
			for _, d := range diffs {
				fmt.Fprintln(cmd.OutOrStdout(), d)
			}
			if n := store.Incompatible(diffs); n > 0 {
				return fmt.Errorf("schema check: %d incompatible differences in %s", n, db.URL)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schema check: the %d Open edX tables are compatible (%d warnings) in %s\n",
				len(store.OpenEdXTables), len(diffs), db.URL)
			return nil
		}))
	return cmd
}

func schemaSub(use string, readOnly bool, short, long string, fn func(*cobra.Command, *store.DB) error) *cobra.Command {
	f := dbFlags{readOnly: readOnly}
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  short + ".\n\n" + long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			db, err := f.open(cmd)
			if err != nil {
				return err
			}
			defer db.Close()
			return fn(cmd, db)
		},
	}
	f.register(cmd)
	return cmd
}

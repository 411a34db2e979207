package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/store"
)

func newSchemaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Create or check the database tables",
	}
	cmd.AddCommand(schemaSub("create",
		"Create the Open edX tables (embedded default, tests, standalone) and the service's own tables",
		"Never point this at a production Open edX database: there Django owns the tables. Existing tables are left as they are.",
		func(cmd *cobra.Command, db *store.DB) error {
			if err := db.CreateSchema(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "created %d Open edX tables and the service's own tables (version %d) in %s\n",
				len(store.OpenEdXTables), store.SchemaVersion, db.URL)
			return nil
		}))
	cmd.AddCommand(schemaSub("migrate",
		"Create or upgrade only the service's own authz_consumer_* tables",
		"Safe on a production Open edX database: it never touches Django's tables.",
		func(cmd *cobra.Command, db *store.DB) error {
			if err := db.Migrate(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "own tables at version %d in %s\n", store.SchemaVersion, db.URL)
			return nil
		}))
	cmd.AddCommand(schemaSub("check",
		"Compare a live database with the expected tables, read-only, and name every difference",
		"Exit code 1 when anything differs. Extra columns are not differences.",
		func(cmd *cobra.Command, db *store.DB) error {
			diffs, err := db.Check(cmd.Context())
			if err != nil {
				return err
			}
			for _, d := range diffs {
				fmt.Fprintln(cmd.OutOrStdout(), d)
			}
			if len(diffs) > 0 {
				return fmt.Errorf("schema check: %d differences in %s", len(diffs), db.URL)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "schema check: %d Open edX tables and %d own tables as expected in %s\n",
				len(store.OpenEdXTables), len(store.OwnTables), db.URL)
			return nil
		}))
	return cmd
}

func schemaSub(use, short, long string, fn func(*cobra.Command, *store.DB) error) *cobra.Command {
	var f dbFlags
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

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"authz-flag-consumer/internal/config"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/store"
)

// dbFlags are the settings of the commands that only need the database
// (schema, migrate, rollback, runs).
type dbFlags struct {
	cfg config.Config
	// readOnly commands never create a database: a missing SQLite file is
	// an error (runs, schema check, verify, parked list).
	readOnly bool
}

func (f *dbFlags) register(cmd *cobra.Command) {
	config.RegisterDatabase(cmd.Flags(), &f.cfg)
}

// registerRuns is register for the commands that make runs: they also take
// --lock-timeout.
func (f *dbFlags) registerRuns(cmd *cobra.Command) {
	config.RegisterParts(cmd.Flags(), &f.cfg, config.Database|config.Lock)
}

// open fills the settings from the environment, validates them and opens
// the database.
func (f *dbFlags) open(cmd *cobra.Command) (*store.DB, error) {
	if err := config.ApplyEnv(cmd.Flags(), os.LookupEnv); err != nil {
		return nil, err
	}
	f.cfg.Finish()
	if err := f.cfg.ValidateDatabaseOnly(); err != nil {
		return nil, err
	}
	if f.readOnly {
		return store.OpenExisting(cmd.Context(), f.cfg.DatabaseURL)
	}
	return store.Open(cmd.Context(), f.cfg.DatabaseURL)
}

// openEngine opens the database and checks that the Open edX tables are
// there as Django creates them, so a manual run never writes to a database
// it does not understand.
func (f *dbFlags) openEngine(cmd *cobra.Command) (*store.DB, *migrator.Engine, error) {
	db, err := f.open(cmd)
	if err != nil {
		return nil, nil, err
	}
	if err := checkOpenEdX(cmd.Context(), db, f.cfg.Logger(os.Stderr)); err != nil {
		db.Close()
		return nil, nil, err
	}
	return db, migrator.New(db, migrator.Options{Logger: f.cfg.Logger(os.Stderr), LockTimeout: f.cfg.LockTimeout, WatchedFlag: f.cfg.WatchedFlag, ProgressInterval: f.cfg.ProgressInterval}), nil
}

// checkOpenEdX fails when an Open edX table is missing or differs in a way
// the service cannot work with; harmless differences are logged as warnings.
// It runs before the service creates or writes anything.
func checkOpenEdX(ctx context.Context, db *store.DB, log *slog.Logger) error {
	diffs, err := db.Check(ctx)
	if err != nil {
		return err
	}
	var bad []string
	for _, d := range diffs {
		switch {
		case strings.HasPrefix(d.Table, "authz_consumer_"):
		case d.Compatible:
			log.Warn("schema difference the service can work with", "difference", d.String())
		default:
			bad = append(bad, d.String())
		}
	}
	switch len(bad) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("database %s does not have the Open edX tables as expected: %s (see `consumer schema check`)", db.URL, bad[0])
	}
	return fmt.Errorf("database %s does not have the Open edX tables as expected: %s, and %d more differences (see `consumer schema check`)", db.URL, bad[0], len(bad)-1)
}

// readyToWrite prepares a command that writes roles: the account must have
// every privilege the service needs, and the service's own tables (the
// ledger every run records its applied state in) are created or upgraded,
// never Django's.
func readyToWrite(ctx context.Context, db *store.DB, log *slog.Logger) error {
	if err := checkGrants(ctx, db, log); err != nil {
		return err
	}
	if err := db.Migrate(ctx); err != nil {
		return fmt.Errorf("own tables: %w", err)
	}
	return nil
}

// checkGrants fails when the database account lacks a privilege the
// service needs to run (it would otherwise fail at the first run, in the
// middle of an event). When the privileges cannot be read fully (granted
// through roles), what is known to be missing is only warned about.
func checkGrants(ctx context.Context, db *store.DB, log *slog.Logger) error {
	missing, inconclusive, err := db.MissingGrants(ctx)
	if err != nil {
		return err
	}
	if len(missing) == 0 {
		return nil
	}
	msg := fmt.Sprintf("the database account of %s lacks privileges the service needs: %s (docs/operations.md, \"Database account\", lists the GRANTs)",
		db.URL, strings.Join(missing, "; "))
	if inconclusive {
		log.Warn(msg+"; privileges granted through roles are not visible here, so this may be wrong", "missing", missing)
		return nil
	}
	return errors.New(msg)
}

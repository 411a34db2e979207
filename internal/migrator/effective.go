package migrator

import (
	"context"
	"database/sql"
	"fmt"
)

// EffectiveState reads, in a read-only transaction, a scope's flag state
// now and which level decided it ("course override", "org override",
// "global flag"), as the automatic runs decide it. A manual run against it
// is undone by the next reconcile of the scope (an event, the sweep,
// `consumer reconcile`).
func (e *Engine) EffectiveState(ctx context.Context, st ScopeType, key string) (on bool, why string, err error) {
	sqlTx, err := e.db.SQL.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return false, "", fmt.Errorf("effective state of %s %s: %w", st, key, err)
	}
	defer sqlTx.Rollback() //nolint:errcheck // read-only: nothing to keep
	on, why, err = effectiveState(ctx, &tx{Tx: sqlTx, db: e.db}, st, key, e.opts.WatchedFlag)
	if err != nil {
		return false, "", fmt.Errorf("effective state of %s %s: %w", st, key, err)
	}
	return on, why, nil
}

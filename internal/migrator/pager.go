package migrator

import (
	"context"
	"database/sql"

	"authz-flag-consumer/internal/store"
)

// pager reads a query's rows page by page, in id order, inside the run's
// transaction, as the database pages best (store.Driver.Pager: keyset
// pages, or a SQL cursor).
type pager struct{ p store.Pager }

func newPager(t *tx, name, query string, args []any, idCol string, size int) *pager {
	return &pager{t.db.Driver().Pager(t.Tx, store.Page{Name: name, Query: query, Args: args, IDCol: idCol, Size: size})}
}

// next returns the next page's rows; the caller reads them and reports the
// last id it saw with advance. An empty page means the end.
func (p *pager) next(ctx context.Context) (*sql.Rows, error) { return p.p.Next(ctx) }

func (p *pager) advance(lastID int64) { p.p.Advance(lastID) }

// close releases what the pager holds (the transaction's end would too).
func (p *pager) close(ctx context.Context) { p.p.Close(ctx) }

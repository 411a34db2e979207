package migrator

import (
	"context"
	"database/sql"
	"fmt"

	"authz-flag-consumer/internal/store"
)

// pager reads a query's rows page by page, in id order, inside the run's
// transaction. MySQL and SQLite page by keyset (id > last ORDER BY id
// LIMIT n): their secondary indexes carry the primary key, so each page is
// a range scan. PostgreSQL's would re-read and sort the whole scope for
// every page, so there a SQL cursor streams the one query instead.
type pager struct {
	t      *tx
	query  string // SELECT ... WHERE ...; the id column is idCol
	args   []any
	idCol  string
	size   int
	last   int64
	cursor string
}

func newPager(t *tx, name, query string, args []any, idCol string, size int) *pager {
	p := &pager{t: t, query: query, args: args, idCol: idCol, size: size}
	if t.db.Dialect == store.Postgres {
		p.cursor = "authz_consumer_" + name
	}
	return p
}

// next returns the next page's rows; the caller reads them and reports the
// last id it saw with advance. An empty page means the end.
func (p *pager) next(ctx context.Context) (*sql.Rows, error) {
	if p.cursor == "" {
		return p.t.query(ctx, p.query+" AND "+p.idCol+" > ? ORDER BY "+p.idCol+" LIMIT ?", append(p.args, p.last, p.size)...)
	}
	if p.last == 0 && p.cursor != "" {
		if _, err := p.t.exec(ctx, "DECLARE "+p.cursor+" NO SCROLL CURSOR FOR "+p.query+" ORDER BY "+p.idCol, p.args...); err != nil {
			return nil, fmt.Errorf("declare cursor: %w", err)
		}
		p.last = -1
	}
	return p.t.QueryContext(ctx, fmt.Sprintf("FETCH %d FROM %s", p.size, p.cursor))
}

func (p *pager) advance(lastID int64) { p.last = lastID }

// close releases the cursor (the transaction's end would too).
func (p *pager) close(ctx context.Context) {
	if p.cursor != "" && p.last != 0 {
		_, _ = p.t.exec(ctx, "CLOSE "+p.cursor)
	}
}

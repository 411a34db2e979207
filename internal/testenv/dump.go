package testenv

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"authz-flag-consumer/internal/store"
)

// DumpAll reads every table of db's database, every column of every row
// (ids and times included), each row one line, each table's lines sorted:
// two dumps are equal only when no table changed. Tests use it to prove a
// command wrote nothing.
func DumpAll(t testing.TB, db *store.DB) map[string][]string {
	t.Helper()
	ctx := context.Background()
	q := db.Driver().TablesQuery()
	rows, err := db.SQL.QueryContext(ctx, q)
	if err != nil {
		t.Fatalf("list tables: %v", err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatalf("list tables: %v", err)
		}
		tables = append(tables, name)
	}
	rows.Close()
	if len(tables) == 0 {
		t.Fatal("list tables: none found")
	}
	out := map[string][]string{}
	for _, table := range tables {
		out[table] = dumpTable(t, db, table)
	}
	return out
}

func dumpTable(t testing.TB, db *store.DB, table string) []string {
	t.Helper()
	rows, err := db.SQL.QueryContext(context.Background(), "SELECT * FROM "+db.Driver().QuoteIdent(table))
	if err != nil {
		t.Fatalf("dump %s: %v", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatalf("dump %s: %v", table, err)
	}
	lines := []string{}
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			switch x := v.(type) {
			case nil:
				parts[i] = cols[i] + "=NULL"
			case []byte:
				parts[i] = fmt.Sprintf("%s=%q", cols[i], x)
			case time.Time:
				parts[i] = cols[i] + "=" + x.UTC().Format(time.RFC3339Nano)
			default:
				parts[i] = fmt.Sprintf("%s=%v", cols[i], x)
			}
		}
		lines = append(lines, strings.Join(parts, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("dump %s: %v", table, err)
	}
	sort.Strings(lines)
	return lines
}

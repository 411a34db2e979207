package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

//go:embed ddl/*.sql
var ddlFiles embed.FS

// openEdXDDL returns the statements that create the Open edX tables on d,
// exactly as the real Django migrations create them (ddl/*.sql is generated
// from such databases by scripts/gen-ddl.sh).
func openEdXDDL(d Dialect) ([]string, error) {
	b, err := ddlFiles.ReadFile("ddl/" + string(d) + ".sql")
	if err != nil {
		return nil, fmt.Errorf("no Open edX DDL for %s: %w", d, err)
	}
	var stmts []string
	for _, chunk := range strings.Split(string(b), ";\n\n") {
		var lines []string
		for _, l := range strings.Split(chunk, "\n") {
			if !strings.HasPrefix(l, "--") {
				lines = append(lines, l)
			}
		}
		if stmt := strings.TrimSpace(strings.Join(lines, "\n")); stmt != "" {
			stmts = append(stmts, stmt)
		}
	}
	return stmts, nil
}

// ErrOpenEdXTablesExist means schema create found Open edX tables: Django
// owns them there.
var ErrOpenEdXTablesExist = errors.New("the database already holds Open edX tables")

// CreateSchema creates the Open edX tables as the real Django migrations do
// (for the embedded default, tests and standalone use) and the service's own
// tables. It refuses a database that already holds any Open edX table:
// there Django owns them, and only the service's own tables are ours to
// create (Migrate).
func (db *DB) CreateSchema(ctx context.Context) error {
	var present []string
	for _, t := range OpenEdXTables {
		live, err := db.columns(ctx, t.Name)
		if err != nil {
			return err
		}
		if len(live) > 0 {
			present = append(present, t.Name)
		}
	}
	if len(present) > 0 {
		return fmt.Errorf("%w (%s): Django owns them there; run `consumer schema check` to compare them and `consumer schema migrate` to create only the service's own tables",
			ErrOpenEdXTablesExist, strings.Join(present, ", "))
	}
	stmts, err := openEdXDDL(db.driver.Dialect())
	if err != nil {
		return err
	}
	for _, stmt := range stmts {
		if _, err := db.SQL.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create Open edX tables: %s: %w", firstLine(stmt), err)
		}
	}
	return db.Migrate(ctx)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func (db *DB) createTable(ctx context.Context, t Table) error {
	for _, stmt := range db.driver.createTable(t) {
		if _, err := db.SQL.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("create table %s: %w", t.Name, err)
		}
	}
	return nil
}

// Migrate brings the service's own authz_consumer_* tables to SchemaVersion.
// It never touches Open edX tables.
func (db *DB) Migrate(ctx context.Context) error {
	have, err := db.ownVersion(ctx)
	if err != nil {
		return err
	}
	if have > SchemaVersion {
		return fmt.Errorf("own tables are at version %d, newer than this binary's %d: upgrade the binary", have, SchemaVersion)
	}
	if have == SchemaVersion {
		return nil
	}
	for v := have; v < SchemaVersion; v++ {
		for _, t := range OwnMigrations[v] {
			if err := db.createTable(ctx, t); err != nil {
				return err
			}
		}
		if _, err := db.SQL.ExecContext(ctx, db.Rebind("INSERT INTO "+SchemaTable+" (version, applied_at) VALUES (?, ?)"),
			v+1, time.Now().UTC()); err != nil {
			return fmt.Errorf("record own schema version %d: %w", v+1, err)
		}
	}
	return nil
}

// OwnVersion is the version of the service's own tables (0: not created).
func (db *DB) OwnVersion(ctx context.Context) (int, error) { return db.ownVersion(ctx) }

func (db *DB) ownVersion(ctx context.Context) (int, error) {
	cols, err := db.columns(ctx, SchemaTable)
	if err != nil {
		return 0, err
	}
	if len(cols) == 0 {
		return 0, nil
	}
	var v sql.NullInt64
	if err := db.SQL.QueryRowContext(ctx, "SELECT MAX(version) FROM "+SchemaTable).Scan(&v); err != nil {
		return 0, fmt.Errorf("read own schema version: %w", err)
	}
	return int(v.Int64), nil
}

type liveColumn struct {
	typ       string
	nullable  bool
	collation string // MySQL only
}

// columns reads a table's columns; an absent table gives an empty map.
func (db *DB) columns(ctx context.Context, table string) (map[string]liveColumn, error) {
	q := db.driver.columnsQuery()
	rows, err := db.SQL.QueryContext(ctx, db.Rebind(q), table)
	if err != nil {
		return nil, fmt.Errorf("read columns of %s: %w", table, err)
	}
	defer rows.Close()
	cols := map[string]liveColumn{}
	for rows.Next() {
		var name, typ, coll string
		var nullable bool
		if err := rows.Scan(&name, &typ, &nullable, &coll); err != nil {
			return nil, fmt.Errorf("read columns of %s: %w", table, err)
		}
		cols[name] = liveColumn{typ: strings.ToLower(typ), nullable: nullable, collation: strings.ToLower(coll)}
	}
	return cols, rows.Err()
}

// family is the kind of a column type as a server reports it, with the
// width of a character column (0: unbounded).
type family struct {
	kind string // int, string, bool, datetime, json, decimal, blob
	size int
}

var sized = regexp.MustCompile(`^(?:varchar|character varying|char|character)\((\d+)\)`)

func liveFamily(typ string) family {
	if m := sized.FindStringSubmatch(typ); m != nil {
		n, _ := strconv.Atoi(m[1])
		return family{kind: "string", size: n}
	}
	base, _, _ := strings.Cut(typ, "(")
	base = strings.Fields(base + " x")[0]
	switch {
	case typ == "tinyint(1)" || base == "bool" || base == "boolean":
		return family{kind: "bool"}
	case strings.HasSuffix(base, "int") || base == "integer":
		return family{kind: "int"}
	case strings.HasSuffix(base, "text") || base == "varchar" || base == "clob":
		return family{kind: "string"}
	case base == "datetime" || base == "timestamp" || base == "date":
		return family{kind: "datetime"}
	case base == "uuid":
		return family{kind: "uuid"}
	case base == "json" || base == "jsonb":
		return family{kind: "json"}
	case base == "decimal" || base == "numeric":
		return family{kind: "decimal"}
	case strings.HasSuffix(base, "blob") || base == "bytea":
		return family{kind: "blob"}
	}
	return family{kind: typ}
}

func wantFamily(c Column) family {
	switch c.Type {
	case Int, BigInt:
		return family{kind: "int"}
	case Varchar:
		return family{kind: "string", size: c.Size}
	case Text:
		return family{kind: "string"}
	case Bool:
		return family{kind: "bool"}
	case DateTime:
		return family{kind: "datetime"}
	case JSON:
		return family{kind: "json"}
	case Decimal:
		return family{kind: "decimal"}
	case UUID:
		return family{kind: "uuid"}
	}
	return family{kind: "blob"}
}

// Difference is one way a live table differs from its definition.
// Incompatible ones stop the service (it would fail, or write what
// openedx-authz cannot read); the others are warnings.
type Difference struct {
	Table, Column, Problem string
	Compatible             bool
}

func (d Difference) String() string {
	s := d.Table + ": " + d.Problem
	if d.Column != "" {
		s = d.Table + "." + d.Column + ": " + d.Problem
	}
	if d.Compatible {
		return "warning: " + s
	}
	return s
}

// compareColumn classifies how a live column differs from c, if it does.
func compareColumn(d Driver, t Table, c Column, lc liveColumn) []Difference {
	var out []Difference
	add := func(compatible bool, format string, args ...any) {
		out = append(out, Difference{Column: c.Name, Problem: fmt.Sprintf(format, args...), Compatible: compatible})
	}
	want, got := wantFamily(c), liveFamily(lc.typ)
	switch {
	case want.kind == "json" && got.kind == "string" && got.size == 0:
		// JSON stored as text (MariaDB's longtext, SQLite's text).
	case want.kind == "uuid" && got.kind == "string" && got.size >= 32:
		// Django's UUIDField without a native type: char(32) hex.
	case want.kind != got.kind:
		add(false, "type is %s, want %s (another type family)", lc.typ, d.columnType(c))
	case want.kind == "string" && got.size > 0 && (want.size == 0 || got.size < want.size):
		add(false, "type is %s, narrower than the %s this service writes", lc.typ, d.columnType(c))
	case want.kind == "string" && want.size > 0 && (got.size == 0 || got.size > want.size):
		add(true, "type is %s, wider than %s", lc.typ, d.columnType(c))
	case want.kind == "int" && lc.typ != d.columnType(c) && !d.sameType(c, lc.typ):
		add(true, "type is %s, want %s", lc.typ, d.columnType(c))
	}
	switch {
	case c.Auto || c.PK:
	case c.Null && !lc.nullable:
		add(false, "NOT NULL, but this service writes NULL here")
	case !c.Null && lc.nullable:
		add(true, "nullable, want NOT NULL")
	}
	if d.FoldsCase() && !t.Own && c.Type == Varchar && (strings.HasSuffix(lc.collation, "_bin") || strings.HasSuffix(lc.collation, "_cs")) {
		add(true, "collation %s compares case-sensitively; Open edX's MySQL compares case-insensitively, and runs select rows as the database compares them", lc.collation)
	}
	return out
}

// Check compares the live database with every table definition, read-only,
// and names every difference. Extra columns, indexes and foreign keys are
// not differences.
func (db *DB) Check(ctx context.Context) ([]Difference, error) {
	var diffs []Difference
	tables := append(append([]Table{}, OpenEdXTables...), OwnTables...)
	for _, t := range tables {
		live, err := db.columns(ctx, t.Name)
		if err != nil {
			return nil, err
		}
		if len(live) == 0 {
			if t.Own {
				diffs = append(diffs, Difference{Table: t.Name, Compatible: true,
					Problem: "table is missing (the service's own table: `consumer run` or `consumer schema migrate` creates it)"})
				continue
			}
			diffs = append(diffs, Difference{Table: t.Name, Problem: "table is missing"})
			continue
		}
		for _, c := range t.Columns {
			lc, ok := live[c.Name]
			if !ok {
				diffs = append(diffs, Difference{Table: t.Name, Column: c.Name, Problem: "column is missing"})
				continue
			}
			for _, d := range compareColumn(db.driver, t, c, lc) {
				d.Table = t.Name
				diffs = append(diffs, d)
			}
		}
	}
	if Incompatible(diffs) == 0 {
		if v, err := db.ownVersion(ctx); err != nil {
			return nil, err
		} else if v > SchemaVersion {
			diffs = append(diffs, Difference{Table: SchemaTable, Problem: fmt.Sprintf("own tables at version %d, newer than this binary's %d: upgrade the binary", v, SchemaVersion)})
		} else if v > 0 && v < SchemaVersion {
			diffs = append(diffs, Difference{Table: SchemaTable, Compatible: true, Problem: fmt.Sprintf("own tables at version %d, want %d (`consumer schema migrate` upgrades them)", v, SchemaVersion)})
		}
	}
	return diffs, nil
}

// Incompatible counts the differences that are not mere warnings.
func Incompatible(diffs []Difference) int {
	n := 0
	for _, d := range diffs {
		if !d.Compatible {
			n++
		}
	}
	return n
}

package store

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Privileges the service needs, by table. The Open edX tables it only reads
// need SELECT; those it writes, and its own tables, SELECT, INSERT, UPDATE
// and DELETE (docs/operations.md lists the same).
var (
	readTables = []string{"auth_user", "waffle_flag", "waffle_utils_waffleflagcourseoverridemodel",
		"waffle_utils_waffleflagorgoverridemodel", "course_overviews_courseoverview"}
	writePrivileges = []string{"SELECT", "INSERT", "UPDATE", "DELETE"}
)

// writeTables are the tables the service writes: the Open edX ones and
// its own.
func writeTables() []string {
	var out []string
	for _, t := range OpenEdXTables {
		if !slices.Contains(readTables, t.Name) {
			out = append(out, t.Name)
		}
	}
	for _, t := range OwnTables {
		out = append(out, t.Name)
	}
	return out
}

// MissingGrants lists the privileges the database account lacks for the
// service to run, one "PRIV, PRIV on table" entry per table ("CREATE on
// database/schema X" when its own tables are still to be created or
// upgraded). Tables that do not exist are left to Check. Inconclusive is
// set when the account's privileges cannot be read fully (MySQL roles):
// then the list holds what is known to be missing, possibly less. SQLite
// has no privileges: nil.
func (db *DB) MissingGrants(ctx context.Context) (missing []string, inconclusive bool, err error) {
	have, err := db.ownVersion(ctx)
	if err != nil {
		return nil, false, err
	}
	needCreate := have < SchemaVersion
	switch db.Dialect {
	case MySQL:
		return db.missingMySQL(ctx, needCreate)
	case Postgres:
		m, err := db.missingPostgres(ctx, needCreate)
		return m, false, err
	}
	return nil, false, nil
}

func wanted() map[string][]string {
	want := map[string][]string{}
	for _, t := range readTables {
		want[t] = []string{"SELECT"}
	}
	for _, t := range writeTables() {
		want[t] = writePrivileges
	}
	return want
}

func (db *DB) missingPostgres(ctx context.Context, needCreate bool) ([]string, error) {
	var missing []string
	want := wanted()
	for _, t := range sortedTables(want) {
		var lacking []string
		for _, p := range want[t] {
			var ok sql.NullBool
			err := db.SQL.QueryRowContext(ctx, "SELECT CASE WHEN to_regclass($1) IS NULL THEN NULL ELSE has_table_privilege($1, $2) END", t, p).Scan(&ok)
			if err != nil {
				return nil, fmt.Errorf("check privileges on %s: %w", t, err)
			}
			if ok.Valid && !ok.Bool {
				lacking = append(lacking, p)
			}
		}
		if len(lacking) > 0 {
			missing = append(missing, strings.Join(lacking, ", ")+" on "+t)
		}
	}
	if needCreate {
		var schema string
		var ok bool
		if err := db.SQL.QueryRowContext(ctx, "SELECT current_schema(), has_schema_privilege(current_schema(), 'CREATE')").Scan(&schema, &ok); err != nil {
			return nil, fmt.Errorf("check the CREATE privilege: %w", err)
		}
		if !ok {
			missing = append(missing, "CREATE on schema "+schema+" (to create the service's own tables)")
		}
	}
	return missing, nil
}

// grantLine reads one line of SHOW GRANTS: privileges, database, table.
var grantLine = regexp.MustCompile("^GRANT (.+?) ON (?:TABLE )?(\\*|`(?:[^`]|``)+`)\\.(\\*|`(?:[^`]|``)+`) TO ")

func (db *DB) missingMySQL(ctx context.Context, needCreate bool) ([]string, bool, error) {
	var dbName string
	if err := db.SQL.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil {
		return nil, false, fmt.Errorf("check privileges: %w", err)
	}
	rows, err := db.SQL.QueryContext(ctx, "SHOW GRANTS FOR CURRENT_USER")
	if err != nil {
		return nil, false, fmt.Errorf("check privileges: SHOW GRANTS FOR CURRENT_USER: %w", err)
	}
	defer rows.Close()
	granted := map[string]map[string]bool{} // table ("" for every table) -> privilege
	inconclusive := false
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, false, fmt.Errorf("check privileges: %w", err)
		}
		m := grantLine.FindStringSubmatch(line)
		if m == nil {
			if strings.HasPrefix(line, "GRANT ") && !strings.Contains(line, " ON ") {
				inconclusive = true // a role granted: its privileges are not listed here
			}
			continue
		}
		dbPat, table := unquote(m[2]), unquote(m[3])
		if dbPat != "*" && !mysqlNameMatch(dbPat, dbName) {
			continue
		}
		if table == "*" {
			table = ""
		}
		if granted[table] == nil {
			granted[table] = map[string]bool{}
		}
		for _, p := range strings.Split(m[1], ",") {
			p = strings.TrimSpace(p)
			if strings.Contains(p, "(") {
				continue // column privileges: not enough for whole rows
			}
			if p == "ALL PRIVILEGES" || p == "ALL" {
				p = "ALL"
			}
			granted[table][p] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("check privileges: %w", err)
	}
	has := func(table, p string) bool {
		return granted[""][p] || granted[""]["ALL"] || granted[table][p] || granted[table]["ALL"]
	}
	var missing []string
	want := wanted()
	for _, t := range sortedTables(want) {
		var lacking []string
		for _, p := range want[t] {
			if !has(t, p) {
				lacking = append(lacking, p)
			}
		}
		if len(lacking) > 0 {
			missing = append(missing, strings.Join(lacking, ", ")+" on "+t)
		}
	}
	if needCreate && !has("", "CREATE") {
		missing = append(missing, "CREATE on database "+dbName+" (to create the service's own tables)")
	}
	return missing, inconclusive, nil
}

func unquote(name string) string {
	if name == "*" {
		return name
	}
	return strings.ReplaceAll(strings.Trim(name, "`"), "``", "`")
}

// mysqlNameMatch matches a database name against a GRANT's pattern: %
// and _ are wildcards there unless escaped with a backslash.
func mysqlNameMatch(pattern, name string) bool {
	var re strings.Builder
	re.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '\\' && i+1 < len(pattern):
			i++
			re.WriteString(regexp.QuoteMeta(string(pattern[i])))
		case c == '%':
			re.WriteString(".*")
		case c == '_':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	ok, _ := regexp.MatchString(re.String(), name)
	return ok
}

func sortedTables(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for t := range m {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

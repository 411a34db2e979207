package store

import (
	"context"
	"slices"
	"strings"
)

// Privileges the service needs, by table. The Open edX tables it only reads
// need SELECT; those it writes, and its own tables, SELECT, INSERT, UPDATE
// and DELETE (docs/operations.md lists the same).
var (
	readTables      = []string{UserTable, FlagTable, CourseOverrideTable, OrgOverrideTable, CourseOverviewTable}
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
	return db.driver.missingGrants(ctx, db.SQL, needCreate)
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

// lackedPrivileges lists, per table the service uses, the privileges has
// says the account lacks: "DELETE, UPDATE on t".
func lackedPrivileges(has func(table, privilege string) (bool, error)) ([]string, error) {
	var missing []string
	want := wanted()
	for _, t := range sortedTables(want) {
		var lacking []string
		for _, p := range want[t] {
			ok, err := has(t, p)
			if err != nil {
				return nil, err
			}
			if !ok {
				lacking = append(lacking, p)
			}
		}
		if len(lacking) > 0 {
			missing = append(missing, strings.Join(lacking, ", ")+" on "+t)
		}
	}
	return missing, nil
}

func sortedTables(m map[string][]string) []string {
	out := make([]string, 0, len(m))
	for t := range m {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

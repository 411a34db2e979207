// Command bench measures the migration engine: forward and
// rollback of one org with 1k, 10k and 100k legacy rows on SQLite, MariaDB
// and PostgreSQL, in rows per second, against the same data change written
// by hand as bulk SQL on the same server in the same run, with the peak RSS
// of each phase. Each size runs in a child process so peak RSS is its own.
//
//	go run ./cmd/bench [-sizes 1000,10000,100000] [-repeat 3] [-dialects sqlite,mysql,postgres]
//
// MariaDB and PostgreSQL come from AUTHZ_TEST_MYSQL_URL / AUTHZ_TEST_POSTGRES_URL
// (scripts/services.sh env); scripts/bench.sh starts them.
package main

import (
	"authz-flag-consumer/internal/authz"

	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/store"
)

const org = "BenchOrg"

type result struct {
	Dialect   string  `json:"dialect"`
	Rows      int     `json:"rows"`
	Forward   float64 `json:"forward_s"`
	Rollback  float64 `json:"rollback_s"`
	BulkFwd   float64 `json:"bulk_forward_s"`
	BulkRb    float64 `json:"bulk_rollback_s"`
	RSSFwdMiB float64 `json:"rss_forward_mib"`
	RSSRbMiB  float64 `json:"rss_rollback_mib"`
}

func main() {
	child := flag.Bool("child", false, "run one case (internal)")
	dialect := flag.String("dialect", "", "one dialect (child)")
	rows := flag.Int("rows", 0, "rows (child)")
	sizes := flag.String("sizes", "1000,10000,100000", "legacy row counts")
	dialects := flag.String("dialects", "sqlite,mysql,postgres", "dialects")
	repeat := flag.Int("repeat", 3, "repetitions per case; the median is reported")
	flag.Parse()
	ctx := context.Background()
	if *child {
		res, err := runCase(ctx, *dialect, *rows)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	self, err := os.Executable()
	if err != nil {
		fatal(err)
	}
	fmt.Printf("Migration of one org, engine vs hand-written bulk SQL on the same server, median of %d (rows/s; ratio = engine / bulk; peak RSS of the phase's process)\n\n", *repeat)
	fmt.Printf("| %-8s | %7s | %12s | %12s | %5s | %12s | %12s | %5s | %9s | %9s |\n", "dialect", "rows", "forward r/s", "bulk fwd r/s", "ratio", "rollback r/s", "bulk rb r/s", "ratio", "RSS fwd", "RSS rb")
	fmt.Println("|----------|---------|--------------|--------------|-------|--------------|--------------|-------|-----------|-----------|")
	for _, d := range strings.Split(*dialects, ",") {
		for _, s := range strings.Split(*sizes, ",") {
			n, _ := strconv.Atoi(s)
			var runs []result
			for i := 0; i < *repeat; i++ {
				var out bytes.Buffer
				cmd := exec.CommandContext(ctx, self, "-child", "-dialect", d, "-rows", strconv.Itoa(n))
				cmd.Stdout, cmd.Stderr = &out, os.Stderr
				if err := cmd.Run(); err != nil {
					fatal(fmt.Errorf("%s %d rows: %w", d, n, err))
				}
				var r result
				if err := json.Unmarshal(out.Bytes(), &r); err != nil {
					fatal(err)
				}
				runs = append(runs, r)
			}
			m := median(runs)
			rate := func(sec float64) float64 { return float64(n) / sec }
			fmt.Printf("| %-8s | %7d | %12.0f | %12.0f | %5.2f | %12.0f | %12.0f | %5.2f | %6.1f MiB | %6.1f MiB |\n", d, n,
				rate(m.Forward), rate(m.BulkFwd), m.BulkFwd/m.Forward, rate(m.Rollback), rate(m.BulkRb), m.BulkRb/m.Rollback, m.RSSFwdMiB, m.RSSRbMiB)
		}
	}
}

func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return result{
		Forward: pick(func(r result) float64 { return r.Forward }), Rollback: pick(func(r result) float64 { return r.Rollback }),
		BulkFwd: pick(func(r result) float64 { return r.BulkFwd }), BulkRb: pick(func(r result) float64 { return r.BulkRb }),
		RSSFwdMiB: pick(func(r result) float64 { return r.RSSFwdMiB }), RSSRbMiB: pick(func(r result) float64 { return r.RSSRbMiB }),
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

// runCase loads n legacy rows into a fresh database, times the engine's
// forward and rollback, then the same change by bulk SQL on the same data.
func runCase(ctx context.Context, dialect string, n int) (result, error) {
	url, cleanup, err := freshDatabase(ctx, dialect)
	if err != nil {
		return result{}, err
	}
	defer cleanup()
	db, err := store.Open(ctx, url)
	if err != nil {
		return result{}, err
	}
	defer db.Close()
	if err := db.CreateSchema(ctx); err != nil {
		return result{}, err
	}
	res := result{Dialect: dialect, Rows: n}
	if err := load(ctx, db, n); err != nil {
		return res, err
	}
	analyze(ctx, db)
	eng := migrator.New(db, migrator.Options{LockTimeout: time.Minute})
	phase := func(dir migrator.Direction) (float64, float64, error) {
		resetPeakRSS()
		start := time.Now()
		run, err := eng.Run(ctx, migrator.Request{Direction: dir, ScopeType: migrator.OrgScope, Org: org, Delete: true})
		if err != nil {
			return 0, 0, err
		}
		if run.Status != migrator.StatusCompleted || int(run.Metadata["success_count"].(float64)) != n {
			return 0, 0, fmt.Errorf("%s run %s: %v of %d", dir, run.Status, run.Metadata["success_count"], n)
		}
		return time.Since(start).Seconds(), peakRSSMiB(), nil
	}
	if res.Forward, res.RSSFwdMiB, err = phase(migrator.Forward); err != nil {
		return res, err
	}
	if res.Rollback, res.RSSRbMiB, err = phase(migrator.Rollback); err != nil {
		return res, err
	}
	// Same data again for the bulk SQL: the legacy rows are back; clear what
	// the engine left (companions, audit, runs).
	for _, t := range []string{store.ExtendedRuleTable, store.PolicyTable, store.UserSubjectTable, store.SubjectTable,
		store.CourseScopeTable, store.ScopeTable, store.AuditTable} {
		if _, err := db.SQL.ExecContext(ctx, "DELETE FROM "+t); err != nil {
			return res, err
		}
	}
	var legacy int
	db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+store.LegacyRoleTable).Scan(&legacy)
	if legacy != n {
		return res, fmt.Errorf("after rollback %d legacy rows, want %d", legacy, n)
	}
	analyze(ctx, db)
	if res.BulkFwd, err = timed(ctx, db, bulkForward(db.Driver())); err != nil {
		return res, fmt.Errorf("bulk forward: %w", err)
	}
	if res.BulkRb, err = timed(ctx, db, bulkRollback(db.Driver())); err != nil {
		return res, fmt.Errorf("bulk rollback: %w", err)
	}
	db.SQL.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+store.LegacyRoleTable).Scan(&legacy)
	if legacy != n {
		return res, fmt.Errorf("after bulk rollback %d legacy rows, want %d", legacy, n)
	}
	return res, nil
}

// load inserts n users and one legacy role each: 20 per course, every
// mapped role, plus org-wide rows.
func load(ctx context.Context, db *store.DB, n int) error {
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := time.Now().UTC()
	const batch = 500
	for i := 0; i < n; i += batch {
		var users, roles []string
		var uargs, rargs []any
		for j := i; j < min(i+batch, n); j++ {
			users = append(users, "('!', ?, ?, '', '', '', ?, ?, ?)")
			uargs = append(uargs, false, fmt.Sprintf("user%07d", j), false, true, now)
		}
		if _, err := tx.ExecContext(ctx, db.Rebind("INSERT INTO "+store.UserTable+" (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined) VALUES "+strings.Join(users, ",")), uargs...); err != nil {
			return err
		}
		for j := i; j < min(i+batch, n); j++ {
			course := fmt.Sprintf("course-v1:%s+C%05d+2026", org, j/20)
			if j%50 == 49 {
				course = ""
			}
			roles = append(roles, "((SELECT id FROM "+store.UserTable+" WHERE username = ?), ?, ?, ?)")
			rargs = append(rargs, fmt.Sprintf("user%07d", j), org, course, authz.LegacyRoles[rand.IntN(len(authz.LegacyRoles))])
		}
		if _, err := tx.ExecContext(ctx, db.Rebind("INSERT INTO "+store.LegacyRoleTable+" (user_id, org, course_id, role) VALUES "+strings.Join(roles, ",")), rargs...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// analyze refreshes the planner's statistics after a bulk change (as
// autovacuum would, given time): without them PostgreSQL may plan the bulk
// statements' joins as nested loops over 100k rows. Not timed.
func analyze(ctx context.Context, db *store.DB) {
	if db.Driver().Dialect() != store.MySQL {
		db.SQL.ExecContext(ctx, "ANALYZE")
	}
}

func timed(ctx context.Context, db *store.DB, stmts []string) (float64, error) {
	start := time.Now()
	tx, err := db.SQL.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	if db.Driver().Dialect() == store.Postgres {
		// As a DBA would tune a one-off bulk migration: the tables it joins
		// were just filled, so their statistics say empty and the planner
		// would pick nested loops over 100k rows.
		if _, err := tx.ExecContext(ctx, "SET LOCAL enable_nestloop = off"); err != nil {
			return 0, err
		}
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return 0, fmt.Errorf("%s: %w", s, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return time.Since(start).Seconds(), nil
}

const roleCase = `CASE r.role WHEN 'instructor' THEN 'course_admin' WHEN 'staff' THEN 'course_staff' WHEN 'limited_staff' THEN 'course_limited_staff'
	WHEN 'data_researcher' THEN 'course_data_researcher' WHEN 'beta_testers' THEN 'course_beta_tester' WHEN 'ccx_coach' THEN 'ccx_coach' END`

// bulkForward is the forward change by hand: the same rows (rules, scopes,
// subjects, extended rules, audit) in set-based statements, legacy deleted.
func bulkForward(d store.Driver) []string {
	now := "CURRENT_TIMESTAMP"
	scope := "CASE WHEN r.course_id = '' THEN " + d.Concat("'course-v1:'", "r.org", "'+*'") + " ELSE r.course_id END"
	where := "r.org = '" + org + "' AND (r.course_id = '' OR r.course_id LIKE 'course-v1:%')"
	orgRules := "c.ptype = 'g' AND c.v2 LIKE 'course-v1^course-v1:" + org + "+%'"
	return []string{
		`INSERT INTO ` + store.PolicyTable + ` (ptype, v0, v1, v2, v3, v4, v5)
		 SELECT 'g', ` + d.Concat("'user^'", "u.username") + `, ` + d.Concat("'role^'", roleCase) + `, ` + d.Concat("'course-v1^'", scope) + `, '', '', ''
		 FROM ` + store.LegacyRoleTable + ` r JOIN ` + store.UserTable + ` u ON u.id = r.user_id WHERE ` + where,
		`INSERT INTO ` + store.ScopeTable + ` (external_key) SELECT DISTINCT r.course_id FROM ` + store.LegacyRoleTable + ` r WHERE r.org = '` + org + `' AND r.course_id LIKE 'course-v1:%'`,
		`INSERT INTO ` + store.CourseScopeTable + ` (scope_ptr_id) SELECT id FROM ` + store.ScopeTable,
		`INSERT INTO ` + store.SubjectTable + ` (id) SELECT DISTINCT r.user_id FROM ` + store.LegacyRoleTable + ` r WHERE ` + where,
		`INSERT INTO ` + store.UserSubjectTable + ` (subject_ptr_id, user_id) SELECT id, id FROM ` + store.SubjectTable,
		`INSERT INTO ` + store.ExtendedRuleTable + ` (casbin_rule_key, casbin_rule_id, created_at, updated_at, scope_id, subject_id)
		 SELECT ` + d.Concat("'g,'", "c.v0", "','", "c.v1", "','", "c.v2", "','") + `, c.id, ` + now + `, ` + now + `, s.id, us.subject_ptr_id
		 FROM ` + store.PolicyTable + ` c JOIN ` + store.UserTable + ` u ON u.username = substr(c.v0, 6)
		 JOIN ` + store.UserSubjectTable + ` us ON us.user_id = u.id
		 LEFT JOIN ` + store.ScopeTable + ` s ON s.external_key = substr(c.v2, 11) WHERE ` + orgRules,
		`INSERT INTO ` + store.AuditTable + ` (operation, subject, role, scope, timestamp)
		 SELECT 'created', c.v0, c.v1, c.v2, ` + now + ` FROM ` + store.PolicyTable + ` c WHERE ` + orgRules,
		`DELETE FROM ` + store.LegacyRoleTable + ` WHERE org = '` + org + `' AND (course_id = '' OR course_id LIKE 'course-v1:%')`,
	}
}

// bulkRollback is the rollback by hand: legacy rows back, rules and
// extended rules removed, deleted audit rows written.
func bulkRollback(d store.Driver) []string {
	orgRules := "c.ptype = 'g' AND c.v2 LIKE 'course-v1^course-v1:" + org + "+%'"
	legacyRole := `CASE substr(c.v1, 6) WHEN 'course_admin' THEN 'instructor' WHEN 'course_staff' THEN 'staff' WHEN 'course_limited_staff' THEN 'limited_staff'
		WHEN 'course_data_researcher' THEN 'data_researcher' WHEN 'course_beta_tester' THEN 'beta_testers' WHEN 'ccx_coach' THEN 'ccx_coach' END`
	return []string{
		`INSERT INTO ` + store.LegacyRoleTable + ` (user_id, org, course_id, role)
		 SELECT u.id, '` + org + `', CASE WHEN c.v2 = 'course-v1^course-v1:` + org + `+*' THEN '' ELSE substr(c.v2, 11) END, ` + legacyRole + `
		 FROM ` + store.PolicyTable + ` c JOIN ` + store.UserTable + ` u ON u.username = substr(c.v0, 6) WHERE ` + orgRules,
		`DELETE FROM ` + store.ExtendedRuleTable + ` WHERE casbin_rule_id IN (SELECT c.id FROM ` + store.PolicyTable + ` c WHERE ` + orgRules + `)`,
		`INSERT INTO ` + store.AuditTable + ` (operation, subject, role, scope, timestamp)
		 SELECT 'deleted', c.v0, c.v1, c.v2, CURRENT_TIMESTAMP FROM ` + store.PolicyTable + ` c WHERE ` + orgRules,
		`DELETE FROM ` + store.PolicyTable + ` WHERE ptype = 'g' AND v2 LIKE 'course-v1^course-v1:` + org + `+%'`,
	}
}

// freshDatabase makes an empty database for one case.
func freshDatabase(ctx context.Context, dialect string) (string, func(), error) {
	name := fmt.Sprintf("authz_bench_%d_%d", os.Getpid(), rand.IntN(1e6))
	switch dialect {
	case "sqlite":
		dir, err := os.MkdirTemp("", "authz-bench")
		if err != nil {
			return "", nil, err
		}
		return "sqlite:///" + filepath.Join(dir, "bench.db"), func() { os.RemoveAll(dir) }, nil
	case "mysql", "postgres":
		env := map[string]string{"mysql": "AUTHZ_TEST_MYSQL_URL", "postgres": "AUTHZ_TEST_POSTGRES_URL"}[dialect]
		admin := os.Getenv(env)
		if admin == "" {
			return "", nil, fmt.Errorf("%s is not set: run scripts/services.sh start && eval \"$(scripts/services.sh env)\" (or make bench)", env)
		}
		adb, err := store.Open(ctx, admin)
		if err != nil {
			return "", nil, err
		}
		if _, err := adb.SQL.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			adb.Close()
			return "", nil, err
		}
		u, _ := url.Parse(admin)
		u.Path = "/" + name
		return u.String(), func() {
			adb.SQL.ExecContext(context.Background(), "DROP DATABASE "+name)
			adb.Close()
		}, nil
	}
	return "", nil, fmt.Errorf("unknown dialect %q", dialect)
}

// resetPeakRSS resets the kernel's high-water mark of this process.
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSSMiB reads VmHWM, the peak resident set since the last reset.
func peakRSSMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

var _ = sql.ErrNoRows

package migrator_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

// dialects runs fn once per database the service supports, each on a fresh
// database of a real server (SQLite file, MariaDB, PostgreSQL).
func dialects(t *testing.T, fn func(t *testing.T, fx *fixture)) {
	for _, d := range testenv.Databases {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			fn(t, newFixture(t, d))
		})
	}
}

type fixture struct {
	t     *testing.T
	ctx   context.Context
	url   string
	dbase testenv.Database // what the tests expect of the database
	db    *store.DB
	eng   *migrator.Engine
	users map[string]int64
	clock time.Time
}

func newFixture(t *testing.T, d testenv.Database) *fixture {
	url := d.URL(t)
	ctx := context.Background()
	db, err := store.Open(ctx, url)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, db.CreateSchema(ctx))
	fx := &fixture{t: t, ctx: ctx, url: url, dbase: d, db: db, users: map[string]int64{}, clock: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	fx.eng = fx.engine(migrator.Options{AutoMigrate: true})
	return fx
}

func (fx *fixture) engine(o migrator.Options) *migrator.Engine {
	if o.BatchSize == 0 {
		o.BatchSize = 7 // small, so every test crosses batch boundaries
	}
	return migrator.New(fx.db, o)
}

func (fx *fixture) exec(q string, args ...any) {
	fx.t.Helper()
	_, err := fx.db.SQL.ExecContext(fx.ctx, fx.db.Rebind(q), args...)
	require.NoError(fx.t, err, q)
}

func (fx *fixture) user(name string) int64 {
	fx.t.Helper()
	if id, ok := fx.users[name]; ok {
		return id
	}
	fx.exec(`INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff, is_active, date_joined)
		VALUES ('!', ?, ?, '', '', ?, ?, ?, ?)`, false, name, name+"@example.com", false, true, fx.clock)
	var id int64
	require.NoError(fx.t, fx.db.SQL.QueryRowContext(fx.ctx, fx.db.Rebind("SELECT id FROM auth_user WHERE username = ?"), name).Scan(&id))
	fx.users[name] = id
	return id
}

// legacy inserts a student_courseaccessrole row.
func (fx *fixture) legacy(username, org, course, role string) {
	fx.t.Helper()
	fx.exec("INSERT INTO student_courseaccessrole (user_id, org, course_id, role) VALUES (?, ?, ?, ?)", fx.user(username), org, course, role)
}

// legacyRows lists legacy rows as "user|org|course|role", sorted.
func (fx *fixture) legacyRows() []string {
	return fx.strings(`SELECT u.username, r.org, r.course_id, r.role FROM student_courseaccessrole r JOIN auth_user u ON u.id = r.user_id`)
}

// rules lists policy rows as "ptype|v0|v1|v2|v3|v4|v5", sorted.
func (fx *fixture) rules() []string {
	return fx.strings("SELECT ptype, v0, v1, v2, v3, v4, v5 FROM casbin_rule")
}

func (fx *fixture) strings(q string, args ...any) []string {
	fx.t.Helper()
	rows, err := fx.db.SQL.QueryContext(fx.ctx, fx.db.Rebind(q), args...)
	require.NoError(fx.t, err)
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(fx.t, rows.Scan(ptrs...))
		parts := make([]string, len(vals))
		for i, v := range vals {
			switch x := v.(type) {
			case nil:
				parts[i] = "NULL"
			case []byte:
				parts[i] = string(x)
			default:
				parts[i] = fmt.Sprint(x)
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	require.NoError(fx.t, rows.Err())
	sort.Strings(out)
	return out
}

func (fx *fixture) count(table string, where string, args ...any) int {
	fx.t.Helper()
	q := "SELECT COUNT(*) FROM " + table
	if where != "" {
		q += " WHERE " + where
	}
	var n int
	require.NoError(fx.t, fx.db.SQL.QueryRowContext(fx.ctx, fx.db.Rebind(q), args...).Scan(&n))
	return n
}

// override appends an override row, as Django's ConfigurationModel does on save.
func (fx *fixture) override(st migrator.ScopeType, key string, enabled bool, choice string) int64 {
	fx.t.Helper()
	fx.clock = fx.clock.Add(time.Minute)
	table, col := "waffle_utils_waffleflagcourseoverridemodel", "course_id"
	if st == migrator.OrgScope {
		table, col = "waffle_utils_waffleflagorgoverridemodel", "org"
	}
	fx.exec(fmt.Sprintf("INSERT INTO %s (change_date, enabled, waffle_flag, %s, override_choice, note) VALUES (?, ?, ?, ?, ?, '')", table, col),
		fx.clock, enabled, authz.DefaultFlag, key, choice)
	var id int64
	require.NoError(fx.t, fx.db.SQL.QueryRowContext(fx.ctx, fx.db.Rebind("SELECT MAX(id) FROM "+table)).Scan(&id))
	return id
}

func (fx *fixture) run(dir migrator.Direction, st migrator.ScopeType, key string) *migrator.Run {
	fx.t.Helper()
	req := migrator.Request{Direction: dir, ScopeType: st, Delete: true, Trigger: migrator.Trigger{Kind: "manual"}}
	if st == migrator.OrgScope {
		req.Org = key
	} else {
		req.CourseKeys = []string{key}
	}
	run, err := fx.eng.Run(fx.ctx, req)
	require.NoError(fx.t, err)
	return run
}

// event hands the engine the event of an override row.
func (fx *fixture) event(id string, st migrator.ScopeType, key string, record int64) migrator.Result {
	fx.t.Helper()
	org := key
	if st == migrator.CourseScope {
		org, _ = authz.CourseV1Org(key)
	}
	res, err := fx.eng.Handle(fx.ctx, migrator.Source{EventID: id, Topic: "t", Partition: 0, Offset: 1},
		migrator.Change{Flag: authz.DefaultFlag, ScopeType: st, ScopeKey: key, Org: org, RecordID: record, Enabled: true})
	require.NoError(fx.t, err)
	return res
}

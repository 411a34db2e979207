package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

// partitions of every test topic (the 6-partition topic).
const partitions = 6

// Scope is one course or org whose override the tests toggle.
type Scope struct {
	Type string // course or org
	Key  string // course key or org
	Org  string
}

// Toggle is one save of a scope's override (one event).
type Toggle struct {
	Scope    Scope
	Choice   string // on or off
	Disabled bool   // enabled=false: defers to the next level (the global flag, off)
}

// on is the scope's effective state right after this save: the tests'
// scopes never share an org with another toggled scope, and the global
// flag stays off, so only the scope's own newest row counts.
func (tg Toggle) on() bool { return !tg.Disabled && tg.Choice == "on" }

// Plan is a data set and the toggles played on it: course scopes (three
// per org, each with a course team) and org scopes (an org with two
// courses and org-wide roles), toggled in rounds, one toggle per scope per
// round. No org holds both a toggled course and a toggled org, so each
// scope's final state depends only on its own last toggle, whatever the
// timing, and the final tables can be computed (expectFinal).
type Plan struct {
	Scopes []Scope
	Roles  []demo.Role
	Rounds [][]Toggle
}

// sequences of choices, one per scope in turn: forward and rollback,
// no-op saves (same state again), a disabled save (back to the global off).
var sequences = [][]Toggle{
	{{Choice: "on"}, {Choice: "off"}, {Choice: "on"}, {Choice: "off"}, {Choice: "on"}},
	{{Choice: "on"}, {Choice: "off"}, {Choice: "on"}, {Choice: "off"}, {Choice: "off"}},
	{{Choice: "on"}, {Choice: "on"}, {Choice: "off"}, {Choice: "on"}, {Choice: "on", Disabled: true}},
	{{Choice: "off"}, {Choice: "on"}, {Choice: "off"}, {Choice: "on"}, {Choice: "on"}},
}

// newPlan builds courseScopes course scopes, orgScopes org scopes and
// rounds (at most 5) rounds of toggles.
func newPlan(courseScopes, orgScopes, rounds int) Plan {
	var p Plan
	for i := range courseScopes {
		org := fmt.Sprintf("KtC%d", i/3+1)
		course := fmt.Sprintf("course-v1:%s+K%d+2024", org, i%3+1)
		p.Scopes = append(p.Scopes, Scope{Type: "course", Key: course, Org: org})
		p.Roles = append(p.Roles, demo.Team(fmt.Sprintf("c%d_", i+1), course, 6)...)
		p.Roles = append(p.Roles, demo.Role{Username: fmt.Sprintf("c%d_fin", i+1), Org: org, CourseID: course, Role: "finance_admin"})
	}
	for i := range orgScopes {
		org := fmt.Sprintf("KtO%d", i+1)
		p.Scopes = append(p.Scopes, Scope{Type: "org", Key: org, Org: org})
		for k := 1; k <= 2; k++ {
			course := fmt.Sprintf("course-v1:%s+K%d+2024", org, k)
			p.Roles = append(p.Roles, demo.Team(fmt.Sprintf("o%dk%d_", i+1, k), course, 3)...)
		}
		p.Roles = append(p.Roles,
			demo.Role{Username: fmt.Sprintf("o%d_staff", i+1), Org: org, Role: "staff"},
			demo.Role{Username: fmt.Sprintf("o%d_support", i+1), Org: org, Role: "support"})
	}
	for r := range min(rounds, len(sequences[0])) {
		var round []Toggle
		for i, s := range p.Scopes {
			tg := sequences[i%len(sequences)][r]
			tg.Scope = s
			round = append(round, tg)
		}
		p.Rounds = append(p.Rounds, round)
	}
	return p
}

// Toggles lists every toggle in publishing order (round by round).
func (p Plan) Toggles() []Toggle {
	var out []Toggle
	for _, r := range p.Rounds {
		out = append(out, r...)
	}
	return out
}

// final is each scope's effective state after the given toggles.
func final(toggles []Toggle) map[Scope]bool {
	out := map[Scope]bool{}
	for _, tg := range toggles {
		out[tg.Scope] = tg.on()
	}
	return out
}

// transitions counts the toggles that change their scope's effective
// state, in publishing order: the runs a consumer makes when it keeps up
// (a consumer that lags reconciles several saves at once and makes fewer).
func transitions(toggles []Toggle) int {
	state, n := map[Scope]bool{}, 0
	for _, tg := range toggles {
		if tg.on() != state[tg.Scope] {
			n++
		}
		state[tg.Scope] = tg.on()
	}
	return n
}

// authzRoles is the legacy role to authz role mapping.
var authzRoles = map[string]string{
	"instructor": "course_admin", "staff": "course_staff", "limited_staff": "course_limited_staff",
	"data_researcher": "course_data_researcher", "beta_testers": "course_beta_tester", "ccx_coach": "ccx_coach",
}

// testDB is a database with the Open edX tables and a plan's roles.
type testDB struct {
	url string // what the processes get
	db  *store.DB
}

// newTestDB creates a fresh database (kind "sqlite" or "mysql") with
// `consumer schema create` and seeds the plan's roles through internal/demo.
func newTestDB(t testing.TB, kind string, p Plan) *testDB {
	t.Helper()
	var dbURL string
	switch kind {
	case "sqlite":
		dbURL = testenv.SQLiteURL(t)
	case "mysql":
		dbURL = testenv.MySQLURL(t)
	default:
		t.Fatalf("unknown database kind %q", kind)
	}
	code, out := run(t, settings{}, "schema", "create", "--database-url", dbURL)
	require.Equal(t, 0, code, "consumer schema create: %s", out)
	ctx := context.Background()
	db, err := store.Open(ctx, dbURL)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	require.NoError(t, demo.EnsureFlag(ctx, db, authz.DefaultFlag))
	require.NoError(t, demo.AddRoles(ctx, db, p.Roles...))
	return &testDB{url: dbURL, db: db}
}

// strings runs a query and renders each row as its columns joined by "|".
func (d *testDB) strings(t testing.TB, q string, args ...any) []string {
	t.Helper()
	rows, err := d.db.SQL.QueryContext(context.Background(), d.db.Rebind(q), args...)
	require.NoError(t, err, q)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		parts := make([]string, len(cols))
		for i, v := range vals {
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
			if v == nil {
				v = ""
			}
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	require.NoError(t, rows.Err())
	return out
}

// save saves an override row as Django does.
func (d *testDB) save(t testing.TB, o demo.Override) demo.Override {
	t.Helper()
	o, err := demo.Save(context.Background(), d.db, o)
	require.NoError(t, err)
	return o
}

func (d *testDB) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	_, err := d.db.SQL.ExecContext(context.Background(), d.db.Rebind(q), args...)
	require.NoError(t, err, q)
}

func (d *testDB) count(t testing.TB, q string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, d.db.SQL.QueryRowContext(context.Background(), d.db.Rebind(q), args...).Scan(&n), q)
	return n
}

// outcome is one row of authz_consumer_event.
type outcome struct {
	EventID   string
	Partition int
	Offset    int64
	ScopeType string
	ScopeKey  string
	RecordID  int64
	Outcome   string
	RunID     int64
}

func (d *testDB) outcomes(t testing.TB) map[string]outcome {
	t.Helper()
	rows, err := d.db.SQL.QueryContext(context.Background(),
		`SELECT event_id, partition_no, offset_no, scope_type, scope_key, record_id, outcome, COALESCE(run_id, 0) FROM authz_consumer_event`)
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]outcome{}
	for rows.Next() {
		var o outcome
		require.NoError(t, rows.Scan(&o.EventID, &o.Partition, &o.Offset, &o.ScopeType, &o.ScopeKey, &o.RecordID, &o.Outcome, &o.RunID))
		out[o.EventID] = o
	}
	require.NoError(t, rows.Err())
	return out
}

// waitOutcomes waits until every published event has its outcome row.
func (d *testDB) waitOutcomes(t testing.TB, pubs []published) map[string]outcome {
	t.Helper()
	var got map[string]outcome
	eventually(t, fmt.Sprintf("an outcome row for each of %d events", len(pubs)), func() (bool, string) {
		got = d.outcomes(t)
		var missing []string
		for _, p := range pubs {
			if _, ok := got[p.EventID]; !ok {
				missing = append(missing, fmt.Sprintf("%s(%s %s record %d, partition %d)", p.EventID, p.Scope.Type, p.Scope.Key, p.RecordID, p.Partition))
			}
		}
		return len(missing) == 0, fmt.Sprintf("%d missing, e.g. %v", len(missing), missing[:min(len(missing), 3)])
	})
	return got
}

// runRow is one row of the openedx-authz run table.
type runRow struct {
	ID        int64
	Type      string
	ScopeType string
	ScopeKey  string
	Status    string
	EventID   string // metadata.event.id
	RecordID  int64  // metadata.event.record_id
}

func (d *testDB) runs(t testing.TB) []runRow {
	t.Helper()
	rows, err := d.db.SQL.QueryContext(context.Background(),
		`SELECT id, migration_type, scope_type, scope_key, status, metadata FROM openedx_authz_authzcourseauthoringmigrationrun ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var out []runRow
	for rows.Next() {
		var (
			r  runRow
			md []byte
		)
		require.NoError(t, rows.Scan(&r.ID, &r.Type, &r.ScopeType, &r.ScopeKey, &r.Status, &md))
		var m struct {
			Event struct {
				ID       string `json:"id"`
				RecordID int64  `json:"record_id"`
			} `json:"event"`
		}
		require.NoError(t, json.Unmarshal(md, &m), "metadata of run %d: %s", r.ID, md)
		r.EventID, r.RecordID = m.Event.ID, m.Event.RecordID
		out = append(out, r)
	}
	require.NoError(t, rows.Err())
	return out
}

// tally is what a test reports: the counts of the closing note.
type tally struct {
	Published  int
	Runs       int
	Duplicates int            // override records with more than one run
	Outcomes   map[string]int // stored outcome rows by outcome
}

func (c tally) String() string {
	keys := make([]string, 0, len(c.Outcomes))
	for k := range c.Outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, c.Outcomes[k]))
	}
	return fmt.Sprintf("events published: %d, runs created: %d, duplicates: %d, outcomes: %s",
		c.Published, c.Runs, c.Duplicates, strings.Join(parts, " "))
}

// checkRuns checks "effects happen once" over every published
// event, all of which must have their outcome: one outcome row per event
// (other rows only for parked messages),
// at most one run per override record (a second run for a record is a
// duplicate effect), every run finished (none running, none failed), and
// the runs are exactly those the ran outcomes point at.
func (d *testDB) checkRuns(t testing.TB, pubs []published) tally {
	t.Helper()
	outs := d.waitOutcomes(t, pubs)
	runs := d.runs(t)
	c := tally{Published: len(pubs), Runs: len(runs), Outcomes: map[string]int{}}
	published := map[string]bool{}
	for _, p := range pubs {
		published[p.EventID] = true
	}
	ranRuns := map[int64]string{}
	for _, o := range outs {
		c.Outcomes[o.Outcome]++
		if !published[o.EventID] {
			require.Equal(t, "parked", o.Outcome, "event %s was never published: only a malformed message may have an outcome of its own", o.EventID)
		}
		if o.Outcome == "ran" {
			require.NotZero(t, o.RunID, "ran outcome of %s has no run", o.EventID)
			ranRuns[o.RunID] = o.EventID
		}
	}
	perRecord := map[string][]int64{}
	for _, r := range runs {
		require.NotEqual(t, "running", r.Status, "run %d of %s is still running", r.ID, r.ScopeKey)
		require.Contains(t, []string{"completed", "partial_success"}, r.Status, "run %d of %s %s", r.ID, r.ScopeType, r.ScopeKey)
		require.Equal(t, r.EventID, ranRuns[r.ID], "run %d is the run of event %s", r.ID, r.EventID)
		key := fmt.Sprintf("%s %s record %d", r.ScopeType, r.ScopeKey, r.RecordID)
		perRecord[key] = append(perRecord[key], r.ID)
	}
	for key, ids := range perRecord {
		if len(ids) > 1 {
			c.Duplicates += len(ids) - 1
			t.Errorf("%s has %d runs %v: its effect happened more than once", key, len(ids), ids)
		}
	}
	require.Len(t, ranRuns, len(runs), "every run is the run of one ran outcome")
	return c
}

// expectFinal checks the legacy roles and role assignments against the
// plan's final states: a scope whose flag ends on has every mapped role as
// a g rule (with its extended rule) and keeps only unmapped legacy roles;
// a scope that ends off has its legacy roles back and no g rule.
func (d *testDB) expectFinal(t testing.TB, p Plan, toggles []Toggle) {
	t.Helper()
	state := final(toggles)
	owner := map[string]Scope{} // org or course key -> toggled scope
	for _, s := range p.Scopes {
		owner[s.Key] = s
	}
	var wantLegacy, wantG []string
	for _, r := range p.Roles {
		s, ok := owner[r.CourseID]
		if !ok {
			s = owner[r.Org]
		}
		authz, mapped := authzRoles[r.Role]
		if !state[s] || !mapped {
			wantLegacy = append(wantLegacy, strings.Join([]string{r.Username, r.Org, r.CourseID, r.Role}, "|"))
			continue
		}
		scope := "course-v1^" + r.CourseID
		if r.CourseID == "" {
			scope = "course-v1^course-v1:" + r.Org + "+*"
		}
		wantG = append(wantG, strings.Join([]string{"user^" + r.Username, "role^" + authz, scope}, "|"))
	}
	gotLegacy := d.strings(t, `SELECT u.username, r.org, r.course_id, r.role FROM student_courseaccessrole r JOIN auth_user u ON u.id = r.user_id`)
	gotG := d.strings(t, `SELECT v0, v1, v2 FROM casbin_rule WHERE ptype = 'g'`)
	require.ElementsMatch(t, wantLegacy, gotLegacy, "legacy roles (student_courseaccessrole)")
	require.ElementsMatch(t, wantG, gotG, "role assignments (casbin g rules)")
	require.Equal(t, len(wantG), d.count(t, `SELECT COUNT(*) FROM openedx_authz_extendedcasbinrule`), "one extended rule per assignment")
}

// roleTables is the Dump of the tables that hold roles, to compare two
// databases that played the same toggles (ids and times left out).
func (d *testDB) roleTables(t testing.TB) demo.Dump {
	t.Helper()
	all, err := demo.TakeDump(context.Background(), d.db)
	require.NoError(t, err)
	out := demo.Dump{}
	for _, name := range []string{"student_courseaccessrole", "casbin_rule", "openedx_authz_extendedcasbinrule"} {
		out[name] = all[name]
	}
	return out
}

// mysqlUser creates a MariaDB user that may use only d's database and
// returns d's URL with that user: each consumer process gets its own, so
// a test can find (and kill) exactly its connections.
func (d *testDB) mysqlUser(t testing.TB, name string) string {
	t.Helper()
	u, err := url.Parse(d.url)
	require.NoError(t, err)
	dbName := strings.TrimPrefix(u.Path, "/")
	user := fmt.Sprintf("kt_%s_%s", name, dbName[len(dbName)-6:])
	ctx := context.Background()
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY 'kt'", user),
		fmt.Sprintf("GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%'", dbName, user),
	} {
		_, err := d.db.SQL.ExecContext(ctx, q)
		require.NoError(t, err, q)
	}
	t.Cleanup(func() {
		d.killConnections(t, user)
		_, err := d.db.SQL.ExecContext(context.Background(), fmt.Sprintf("DROP USER IF EXISTS '%s'@'%%'", user))
		require.NoError(t, err)
	})
	u.User = url.UserPassword(user, "kt")
	return u.String()
}

// userOf is the user name of a database URL.
func userOf(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return ""
	}
	return u.User.Username()
}

// killConnections kills every MariaDB session of user (KILL CONNECTION),
// as a server restart or a network cut would end them, and returns how
// many there were.
func (d *testDB) killConnections(t testing.TB, user string) int {
	t.Helper()
	ids := d.strings(t, `SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?`, user)
	for _, id := range ids {
		// A session may end on its own in between: ignore "unknown thread".
		_, _ = d.db.SQL.ExecContext(context.Background(), "KILL CONNECTION "+id)
	}
	return len(ids)
}

// lockTable takes a WRITE lock on table from a session of the test, so
// that a run touching it waits in the middle of its transaction; the
// returned func releases it.
func (d *testDB) lockTable(t testing.TB, table string) (unlock func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := d.db.SQL.Conn(ctx)
	require.NoError(t, err)
	_, err = conn.ExecContext(ctx, "LOCK TABLES "+table+" WRITE")
	require.NoError(t, err)
	released := false
	unlock = func() {
		if released {
			return
		}
		released = true
		_, err := conn.ExecContext(ctx, "UNLOCK TABLES")
		require.NoError(t, err)
		conn.Close()
	}
	t.Cleanup(unlock)
	return unlock
}

// sessions returns what the sessions of user are doing: the statement of
// one that waits on a table lock (its run is in the middle of its
// transaction), and whether one waits for an advisory lock (GET_LOCK).
func (d *testDB) sessions(t testing.TB, user string) (tableWait string, lockWait bool) {
	t.Helper()
	for _, row := range d.strings(t, `SELECT COALESCE(STATE, ''), COALESCE(INFO, '') FROM information_schema.PROCESSLIST WHERE USER = ?`, user) {
		state, info, _ := strings.Cut(row, "|")
		switch {
		case strings.HasPrefix(state, "Waiting for table"):
			tableWait = info
		case state == "User lock":
			lockWait = true
		}
	}
	return tableWait, lockWait
}

// waitMidRun waits until a run of user waits on a table the test holds
// locked, in the middle of its transaction, and returns its statement.
func (d *testDB) waitMidRun(t testing.TB, user string) string {
	t.Helper()
	var stmt string
	eventually(t, "a run of "+user+" waiting on the locked table", func() (bool, string) {
		stmt, _ = d.sessions(t, user)
		return stmt != "", "no session of " + user + " waits on a table lock"
	})
	return stmt
}

// blockMidRun holds a WRITE lock on the role-assignment table until a run
// of user waits on it, in the middle of its transaction (after its run
// row is written), and returns that statement and the unlock func. Every
// run touches that table, so other consumers' runs wait too; when one of
// them holds the org lock user's run needs, the lock is let go until user
// has handled another event (progress counts them), and taken again.
func (d *testDB) blockMidRun(t testing.TB, user string, progress func() int) (stmt string, unlock func()) {
	t.Helper()
	for attempt := 1; attempt <= 20; attempt++ {
		unlock = d.lockTable(t, "casbin_rule")
		var lockWait bool
		eventually(t, "a run of "+user+" waiting on the locked table", func() (bool, string) {
			stmt, lockWait = d.sessions(t, user)
			return stmt != "" || lockWait, "no session of " + user + " waits on a lock"
		})
		if stmt != "" {
			return stmt, unlock
		}
		unlock()
		n := progress()
		eventually(t, user+" handling another event", func() (bool, string) {
			return progress() > n, fmt.Sprintf("%d events handled", n)
		})
	}
	t.Fatalf("no run of %s waited on the locked table in 20 attempts", user)
	return "", nil
}

// newTopic creates a topic with 6 partitions on brokers (its dead-letter
// topic is left to auto-creation) and deletes both at the end.
func newTopic(t testing.TB, brokers []string, prefix string) string {
	t.Helper()
	topic := testenv.KafkaTopic(t, prefix)
	createTopic(t, brokers, topic)
	return topic
}

// createTopic creates topic with 6 partitions and waits until each has a
// leader.
func createTopic(t testing.TB, brokers []string, topic string) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 30 * time.Second}
	ctx := context.Background()
	resp, err := client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1},
	}})
	require.NoError(t, err, "create topic %s", topic)
	require.NoError(t, resp.Errors[topic], "create topic %s", topic)
	t.Cleanup(func() {
		// Best effort: the broker may be gone (outage tests) and names are unique.
		_, _ = client.DeleteTopics(context.Background(), &kafka.DeleteTopicsRequest{Topics: []string{topic, topic + ".parked"}})
	})
	eventually(t, "topic "+topic+" with a leader for each partition", func() (bool, string) {
		md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return false, err.Error()
		}
		for _, tp := range md.Topics {
			if tp.Error != nil {
				return false, tp.Error.Error()
			}
			led := 0
			for _, p := range tp.Partitions {
				if p.Error == nil && p.Leader.Host != "" {
					led++
				}
			}
			return led == partitions, fmt.Sprintf("%d of %d partitions have a leader", led, partitions)
		}
		return false, "topic not in metadata"
	})
}

// offsets is the admin view of a group on a topic.
func offsets(brokers []string, group, topic string) consumer.Offsets {
	return consumer.Offsets{
		Client: &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second},
		Group:  group,
		Topic:  topic,
	}
}

// committedAndEnd reads the group's committed offsets and the log ends.
func committedAndEnd(t testing.TB, o consumer.Offsets) (committed, end map[int]int64, err error) {
	t.Helper()
	ctx := context.Background()
	parts, err := o.Partitions(ctx)
	if err != nil {
		return nil, nil, err
	}
	if committed, err = o.Committed(ctx, parts); err != nil {
		return nil, nil, err
	}
	_, end, err = o.Bounds(ctx, parts)
	return committed, end, err
}

// waitCommittedToEnd waits until the group has committed every partition
// up to its end: every event is settled and acknowledged.
func waitCommittedToEnd(t testing.TB, o consumer.Offsets) {
	t.Helper()
	eventually(t, "group "+o.Group+" committed to the end of "+o.Topic, func() (bool, string) {
		committed, end, err := committedAndEnd(t, o)
		if err != nil {
			return false, err.Error()
		}
		for p, e := range end {
			if e > 0 && committed[p] != e {
				return false, fmt.Sprintf("partition %d committed %d, end %d", p, committed[p], e)
			}
		}
		return true, ""
	})
}

// consumerSettings are the settings of `consumer run` and `consumer
// publish` for one test: the real broker, the test's topic and group, the
// shared registry, automatic migration on, ops server on a free port.
func consumerSettings(brokers []string, topic, group, dbURL string) settings {
	return settings{
		"BROKERS":             strings.Join(brokers, ","),
		"TOPIC":               topic,
		"GROUP_ID":            group,
		"DATABASE_URL":        dbURL,
		"SCHEMA_REGISTRY_URL": registryURL,
		"AUTO_MIGRATE":        "true",
		"HTTP_ADDR":           "127.0.0.1:0",
		"LOG_FORMAT":          "json",
		"LOG_LEVEL":           "info",
		"RETRY_MAX_BACKOFF":   "1s",
	}
}

// startConsumer runs `consumer run` with group timings short enough for
// tests (the broker's minimum session timeout is 6s) and extra flags.
func startConsumer(t testing.TB, name string, s settings, extra ...string) *proc {
	t.Helper()
	args := append([]string{"run",
		"--session-timeout=6s", "--heartbeat-interval=1s", "--rebalance-timeout=10s", "--min-backoff=50ms",
	}, extra...)
	return start(t, name, s, args...)
}

// waitReady waits until /readyz of p answers 200.
func waitReady(t testing.TB, p *proc) {
	t.Helper()
	eventually(t, p.name+" ready", func() (bool, string) {
		if !p.running() {
			t.Fatalf("%s exited: %v", p.name, p.err)
		}
		r := p.readyz()
		return r.Status == 200 && r.Ready, fmt.Sprintf("/readyz %d: %s", r.Status, r.failing())
	})
}

// outcomesLogged counts p's "event handled" lines by outcome.
func outcomesLogged(p *proc) map[string]int {
	out := map[string]int{}
	for _, l := range p.handled() {
		out[l.str("outcome")]++
	}
	return out
}

package crash

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

const (
	sweepKills    = 20
	sweepInterval = "200ms"
)

// roleTables are the tables that hold role data: the comparison of this
// test leaves out run records and event outcomes, which may legitimately
// differ in which trigger (an event or a sweep) made a run.
var roleTables = []string{
	"student_courseaccessrole",
	"casbin_rule",
	"openedx_authz_extendedcasbinrule",
	"openedx_authz_scope",
	"openedx_authz_usersubject",
}

// TestSIGKILLDuringSweepsHealsLostEvents: the sweep's watermarks are set
// (the floor) before the override rows are saved; about a fifth of the
// saves lose their event (saved, never published). The consumer runs with a
// short --sweep-interval and is killed with SIGKILL over and over, also
// right after and in the middle of sweeps. Once it has caught up and swept,
// the role data must equal that of an uninterrupted run (whose sweeps heal
// the same lost events) and that of an oracle computed from the saves alone.
func TestSIGKILLDuringSweepsHealsLostEvents(t *testing.T) {
	testenv.SkipShort(t, "a minute of SIGKILLs")
	ctx := context.Background()
	dir := t.TempDir()
	bin := buildConsumer(t, dir)
	interval := sweepInterval
	if v := os.Getenv("CRASH_SWEEP_INTERVAL"); v != "" {
		interval = v // e.g. 0: the sweep off, to see this test fail
	}
	flags := []string{"--sweep-interval", interval}

	h := newHarness(t, bin, dir)
	brokers, regURL := h.brokers, h.regURL

	seed := uint64(7)
	if v := os.Getenv("CRASH_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err)
	}
	t.Logf("seed %d (CRASH_SEED replays it)", seed)
	rng := rand.New(rand.NewPCG(seed, 11))
	s := newStream(rng)

	// Some saves lose their event: the row is saved, nothing is published.
	lost := map[int]bool{}
	published := s
	published.plan = nil
	for _, it := range s.plan {
		if it.save >= 0 && rng.IntN(5) == 0 {
			lost[it.save] = true
			continue
		}
		published.plan = append(published.plan, it)
	}

	// Data first, then one start of each consumer: the sweep's first
	// watermarks (the floor) are set before any override row exists.
	cleanURL := "sqlite:///" + filepath.ToSlash(filepath.Join(dir, "clean.db"))
	crashURL := "sqlite:///" + filepath.ToSlash(filepath.Join(dir, "crash.db"))
	cleanDB := open(t, ctx, cleanURL)
	crashDB := open(t, ctx, crashURL)
	for _, c := range []struct {
		group, url string
		db         *store.DB
	}{{"clean", cleanURL, cleanDB}, {"crash", crashURL, crashDB}} {
		prepareData(t, ctx, c.url, s)
		p := h.start(c.group, c.url, 0, flags...)
		p.waitReady()
		if interval != "0" {
			deadline := time.Now().Add(waitLimit)
			for _, ok := readMark(c.db); !ok; _, ok = readMark(c.db) {
				p.sleep(10 * time.Millisecond)
				require.True(t, time.Now().Before(deadline), "no sweep watermarks after the first start; log %s:\n%s", p.log, tail(p.log))
			}
			m, _ := readMark(c.db)
			require.Zero(t, m.course+m.org, "the floor must be set before any override row")
		}
		p.terminate()
	}
	var saved []demo.Override
	for _, u := range []string{cleanURL, crashURL} {
		saved = saveOverrides(t, ctx, u, s)
	}
	publishStream(t, ctx, brokers, regURL, published, saved)

	// What the sweep alone must heal: watched scopes whose every event was
	// lost and whose final state is on (an off scope that was never touched
	// just keeps its legacy rows).
	oracle := newOracle(saved)
	var maxCourse, maxOrg int64
	allLost := map[string]bool{}
	for i, o := range saved {
		if o.Flag != authz.DefaultFlag {
			continue
		}
		if o.ScopeType == "course" && strings.HasPrefix(o.ScopeKey, authz.CourseV1Prefix) {
			maxCourse = max(maxCourse, o.ID)
		} else if o.ScopeType == "org" {
			maxOrg = max(maxOrg, o.ID)
		} else {
			continue
		}
		k := o.ScopeType + " " + o.ScopeKey
		if _, seen := allLost[k]; !seen {
			allLost[k] = true
		}
		allLost[k] = allLost[k] && lost[i]
	}
	sweepOnly := 0
	for k, all := range allLost {
		st, key, _ := strings.Cut(k, " ")
		if all && oracle.on(st, key) {
			sweepOnly++
		}
	}
	t.Logf("stream: %d override rows, %d events lost (%d published messages), %d scopes only the sweep can move, %d legacy roles",
		len(saved), len(lost), len(published.plan), sweepOnly, len(s.roles))
	require.Positive(t, sweepOnly, "some scopes must depend on the sweep; change the seed or the loss rate")

	healed := func(db *store.DB) bool {
		m, ok := readMark(db)
		return ok && m.course >= maxCourse && m.org >= maxOrg
	}
	// catchUp waits until the group has committed the whole topic and a
	// sweep has reconciled every changed scope (its watermark written after
	// them), then for one more sweep of this incarnation.
	catchUp := func(group string, db *store.DB, p *proc) {
		t.Helper()
		h.waitCommitted(group)
		if interval == "0" {
			return // nothing heals what was lost: the oracle must fail
		}
		deadline := time.Now().Add(waitLimit)
		for !healed(db) {
			if time.Now().After(deadline) {
				m, _ := readMark(db)
				t.Fatalf("%s: sweep watermarks %+v never reached course %d, org %d; log %s:\n%s", group, m, maxCourse, maxOrg, p.log, tail(p.log))
			}
			p.sleep(20 * time.Millisecond)
		}
		n := sweepsDone(p.log)
		for sweepsDone(p.log) <= n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no sweep done; log %s:\n%s", group, p.log, tail(p.log))
			}
			p.sleep(20 * time.Millisecond)
		}
	}

	// The uninterrupted run.
	began := time.Now()
	clean := h.start("clean", cleanURL, 1, flags...)
	clean.waitReady()
	catchUp("clean", cleanDB, clean)
	clean.terminate()
	t.Logf("clean run: %s, sweeps took %v", time.Since(began).Round(time.Millisecond), sweepTimes(clean.log))

	// The crashed run.
	sweepWait := 30 * time.Second
	if interval == "0" {
		sweepWait = time.Second
	}
	kills, inSweep, afterMark, midStream := 0, 0, 0, 0
	began = time.Now()
	for kills < sweepKills {
		p := h.start("crash", crashURL, kills+1, flags...)
		var how string
		switch mode := kills % 4; {
		case mode == 0:
			// During start-up.
			how = "start-up"
			p.sleep(time.Duration(rng.Int64N(int64(300 * time.Millisecond))))
		case mode == 1 && h.lag("crash") > 0:
			// While events are handled (sweeps run beside them).
			how = "events"
			n := outcomes(t, crashDB)
			deadline := time.Now().Add(10 * time.Second)
			for outcomes(t, crashDB) == n && time.Now().Before(deadline) && h.lag("crash") > 0 && p.alive() {
				time.Sleep(5 * time.Millisecond)
			}
			p.sleep(time.Duration(rng.Int64N(int64(80 * time.Millisecond))))
		case mode == 2:
			// Right after a sweep wrote its watermarks (before it logs,
			// releases its lock or starts the next one).
			how = "watermark written"
			before, _ := readMark(crashDB)
			deadline := time.Now().Add(sweepWait)
			for {
				m, _ := readMark(crashDB)
				if m.updatedAt != before.updatedAt {
					afterMark++
					break
				}
				if time.Now().After(deadline) {
					how = "watermark never moved"
					break
				}
				p.sleep(2 * time.Millisecond)
			}
		default:
			// Inside a sweep: after this incarnation's first "sweep done",
			// at a random point of the next one, which starts at the next
			// tick (at once when the last one took longer than the interval).
			how = "sweep done, then inside the next"
			deadline := time.Now().Add(sweepWait)
			for sweepsDone(p.log) == 0 && time.Now().Before(deadline) {
				p.sleep(5 * time.Millisecond)
			}
			if sweepsDone(p.log) == 0 {
				how = "no sweep done"
				break
			}
			took := sweepTimes(p.log)
			d := took[len(took)-1]
			if d < 20*time.Millisecond {
				d = 20 * time.Millisecond
			}
			wait := time.Duration(rng.Int64N(int64(d)))
			n := sweepsDone(p.log)
			p.sleep(wait)
			if sweepsDone(p.log) == n {
				inSweep++ // no sweep finished in between
			} else {
				how += " (a sweep finished first)"
			}
		}
		lag := h.lag("crash")
		if lag > 0 {
			midStream++
		}
		p.kill()
		kills++
		m, _ := readMark(crashDB)
		t.Logf("kill %d (%s): %d messages not committed, %d outcome rows, %d sweeps done by this incarnation, watermarks course %d org %d",
			kills, how, lag, outcomes(t, crashDB), sweepsDone(p.log), m.course, m.org)
	}
	last := h.start("crash", crashURL, kills+1, flags...)
	last.waitReady()
	catchUp("crash", crashDB, last)
	last.terminate()
	t.Logf("crash run: %d SIGKILLs (%d right after a watermark write, %d inside a later sweep, %d with events left), %s",
		kills, afterMark, inSweep, midStream, time.Since(began).Round(time.Millisecond))
	require.GreaterOrEqual(t, kills, sweepKills)
	if interval != "0" {
		require.GreaterOrEqual(t, afterMark+inSweep, sweepKills/4, "kills must land around sweeps")
	}

	var running int
	require.NoError(t, crashDB.SQL.QueryRowContext(ctx,
		"SELECT COUNT(*) FROM openedx_authz_authzcourseauthoringmigrationrun WHERE status = 'running'").Scan(&running))
	require.Zero(t, running, "no run may be left running")

	want, err := demo.TakeDump(ctx, cleanDB)
	require.NoError(t, err)
	got, err := demo.TakeDump(ctx, crashDB)
	require.NoError(t, err)
	t.Logf("clean runs by trigger %v; crash runs by trigger %v", runsByTrigger(t, cleanDB), runsByTrigger(t, crashDB))

	// The oracle first: it knows nothing of runs, only the saves.
	for name, d := range map[string]demo.Dump{"clean": want, "crashed": got} {
		legacy, assigned := oracle.expect(s.roles)
		diff := demo.Diff(demo.Dump{"legacy": legacy, "assignments": assigned},
			demo.Dump{"legacy": d["student_courseaccessrole"], "assignments": gRules(d["casbin_rule"])})
		require.Empty(t, diff, "the %s database's roles are not where the saves put them (seed %d):\n%s", name, seed, strings.Join(diff, "\n"))
	}
	diff := demo.Diff(only(want, roleTables), only(got, roleTables))
	require.Empty(t, diff, "the crashed database's role data differs from the clean one (seed %d):\n%s", seed, strings.Join(diff, "\n"))
	t.Logf("equal role data, as the oracle has it: %d legacy rows, %d role assignments, %d runs (clean), %d runs (crashed)",
		len(want["student_courseaccessrole"]), len(gRules(want["casbin_rule"])),
		len(want["openedx_authz_authzcourseauthoringmigrationrun"]), len(got["openedx_authz_authzcourseauthoringmigrationrun"]))
}

// sweepMark is the sweep's durable state.
type sweepMark struct {
	course, org int64
	updatedAt   string
}

// readMark reads the sweep's watermarks; ok is false when there are none
// yet (or the table does not exist yet).
func readMark(db *store.DB) (sweepMark, bool) {
	var m sweepMark
	err := db.SQL.QueryRow("SELECT course_mark, org_mark, CAST(updated_at AS TEXT) FROM authz_consumer_sweep WHERE id = 1").
		Scan(&m.course, &m.org, &m.updatedAt)
	return m, err == nil
}

var sweepDoneLine = regexp.MustCompile(`msg="sweep done".* took=(\S+)`)

// sweepTimes lists how long each sweep logged in path took.
func sweepTimes(path string) []time.Duration {
	b, _ := os.ReadFile(path)
	var out []time.Duration
	for _, m := range sweepDoneLine.FindAllStringSubmatch(string(b), -1) {
		d, _ := time.ParseDuration(m[1])
		out = append(out, d)
	}
	return out
}

func sweepsDone(path string) int { return len(sweepTimes(path)) }

// only keeps the named tables of d.
func only(d demo.Dump, tables []string) demo.Dump {
	out := demo.Dump{}
	for _, n := range tables {
		out[n] = d[n]
	}
	return out
}

// gRules reduces the casbin_rule lines to the role assignments, as
// "subject | role | scope".
func gRules(lines []string) []string {
	var out []string
	for _, l := range lines {
		f := strings.Split(l, " | ")
		if f[0] == "g" {
			out = append(out, strings.Join(f[1:4], " | "))
		}
	}
	sort.Strings(out)
	return out
}

// runsByTrigger counts the runs by the trigger in their metadata.
func runsByTrigger(t *testing.T, db *store.DB) map[string]int {
	t.Helper()
	rows, err := db.SQL.Query("SELECT metadata FROM openedx_authz_authzcourseauthoringmigrationrun")
	require.NoError(t, err)
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var md string
		require.NoError(t, rows.Scan(&md))
		var m struct {
			Trigger any `json:"trigger"`
		}
		_ = json.Unmarshal([]byte(md), &m)
		switch v := m.Trigger.(type) {
		case string:
			out[v]++
		case map[string]any:
			out[fmt.Sprint(v["kind"])]++
		default:
			out[fmt.Sprint(v)]++
		}
	}
	require.NoError(t, rows.Err())
	return out
}

// oracle is the flag as the saves leave it: the newest save of each scope
// of the watched flag (the instance-wide flag stays off).
type oracle struct {
	course, org map[string]demo.Override
}

func newOracle(saved []demo.Override) oracle {
	o := oracle{course: map[string]demo.Override{}, org: map[string]demo.Override{}}
	for _, s := range saved {
		if s.Flag != authz.DefaultFlag {
			continue
		}
		if s.ScopeType == "org" {
			o.org[s.ScopeKey] = s
		} else {
			o.course[s.ScopeKey] = s
		}
	}
	return o
}

// forces says whether a save forces the state, and to what.
func forces(s demo.Override, ok bool) (on, forced bool) {
	if !ok || !s.Enabled || (s.Choice != "on" && s.Choice != "off") {
		return false, false
	}
	return s.Choice == "on", true
}

// on is the effective state of a scope: its own enabled override, for a
// course else its org's, else off.
func (o oracle) on(scopeType, key string) bool {
	if scopeType == "course" {
		s, ok := o.course[key]
		if on, forced := forces(s, ok); forced {
			return on
		}
		key = demo.OrgOf(key)
	}
	s, ok := o.org[key]
	on, _ := forces(s, ok)
	return on
}

// expect renders where each legacy role must be: its legacy row (as the
// student_courseaccessrole dump renders it) or its assignment (as gRules
// renders it). Mappable roles of course-v1 courses and org-wide roles move
// to assignments when their scope is on; the others never move.
func (o oracle) expect(roles []demo.Role) (legacy, assigned []string) {
	for _, r := range roles {
		a, mappable := authz.AuthzRole(r.Role)
		scope, _ := authz.ScopeOf(r.Org, r.CourseID)
		var on bool
		switch {
		case r.CourseID == "":
			on = o.on("org", r.Org)
		case strings.HasPrefix(r.CourseID, authz.CourseV1Prefix):
			on = o.on("course", r.CourseID)
		}
		if mappable && on {
			assigned = append(assigned, strings.Join([]string{authz.UserNS + r.Username, authz.RoleNS + a, authz.CourseNS + scope}, " | "))
		} else {
			legacy = append(legacy, strings.Join([]string{r.Username, r.Org, r.CourseID, r.Role}, " | "))
		}
	}
	sort.Strings(legacy)
	sort.Strings(assigned)
	return legacy, assigned
}

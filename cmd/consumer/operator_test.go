package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/devstack"
	"authz-flag-consumer/internal/lock"
	"authz-flag-consumer/internal/store"
	"authz-flag-consumer/internal/testenv"
)

// Tests of what an operator sees: messages and exit codes of the built
// binary.

// result is what one run of the binary showed.
type result struct {
	stdout, stderr string
	code           int
}

// runBinary runs the built binary with args in a clean environment plus env
// ("K=V" entries) and returns what it printed and its exit code.
func runBinary(t *testing.T, env []string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(consumerBinary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Dir = t.TempDir()
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		r.code = exit.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return r
}

// waitForOutput waits until out holds want, or fails the test with out
// after 30s (killing cmd).
func waitForOutput(t *testing.T, out *syncBuffer, want string, cmd *exec.Cmd) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("no %q within 30s; output:\n%s", want, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// seededSQLite returns the URL of an SQLite database with the Open edX
// tables and the demo data.
func seededSQLite(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	url := testenv.SQLiteURL(t)
	db, err := store.Open(ctx, url)
	require.NoError(t, err)
	defer db.Close()
	require.NoError(t, db.CreateSchema(ctx))
	require.NoError(t, demo.Seed(ctx, db))
	return url
}

func TestHelpListsOnlyTheCommandsOwnFlags(t *testing.T) {
	t.Parallel()
	for args, absent := range map[string][]string{
		"publish --help":        {"--auto-migrate", "--group-id", "--http-addr", "--sweep-interval", "--dead-letter-topic", "--lock-timeout"},
		"replay --help":         {"--database-url", "--auto-migrate", "--schema-registry-url", "--http-addr", "--watched-flag"},
		"parked redrive --help": {"--topic", "--group-id", "--auto-migrate", "--http-addr", "--sweep-interval"},
		"runs list --help":      {"--brokers", "--lock-timeout"},
	} {
		r := runBinary(t, nil, strings.Fields(args)...)
		require.Zero(t, r.code, args)
		for _, f := range absent {
			require.NotContains(t, r.stdout, f+" ", args)
		}
	}
	r := runBinary(t, nil, "run", "--help")
	for _, f := range []string{"--lock-timeout", "--session-timeout", "--commit-interval", "--min-backoff"} {
		require.Contains(t, r.stdout, f+" ", "run documents its timings")
	}
	require.Contains(t, r.stdout, "[env AUTHZ_CONSUMER_LOCK_TIMEOUT]")
}

func TestPublishChoiceMustBeOnOrOff(t *testing.T) {
	t.Parallel()
	for _, choice := range []string{"maybe", "ON"} {
		r := runBinary(t, nil, "publish", "--scope-type", "org", "--scope-key", "DemoX", "--choice", choice, "--json")
		require.Equal(t, 1, r.code)
		require.Contains(t, r.stderr, `--choice "`+choice+`": want on or off`)
	}
}

// A registry that does not answer is found before the override row is
// saved: nothing is saved, and the message says so.
func TestPublishRegistryDownSavesNothing(t *testing.T) {
	t.Parallel()
	st := testenv.Stack(t, devstack.Options{Dir: t.TempDir(), Seed: true, Topic: "waffle-flag-override-lifecycle", Partitions: 3})
	url, addr := st.DatabaseURL, st.Brokers[0]

	r := runBinary(t, nil, "publish", "--scope-type", "org", "--scope-key", "DemoX", "--choice", "on",
		"--database-url", url, "--brokers", addr, "--schema-registry-url", "http://127.0.0.1:1")
	require.Equal(t, 1, r.code, r.stderr)
	require.Contains(t, r.stderr, "(nothing saved)")
	db, err := store.Open(context.Background(), url)
	require.NoError(t, err)
	defer db.Close()
	var n int
	require.NoError(t, db.SQL.QueryRow("SELECT COUNT(*) FROM waffle_utils_waffleflagorgoverridemodel").Scan(&n))
	require.Zero(t, n, "no override row without its event")
}

func TestMigrateUnknownCourseRecordsNothing(t *testing.T) {
	t.Parallel()
	url := seededSQLite(t)
	r := runBinary(t, nil, "migrate", "--course-id-list", "course-v1:DemoX+NoSuch+2024", "--force", "--database-url", url)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `course "course-v1:DemoX+NoSuch+2024" is unknown here`)
	r = runBinary(t, nil, "runs", "list", "--database-url", url)
	require.Equal(t, "no runs\n", r.stdout)
}

// A manual run against the scope's effective flag state is refused without
// --force, and warned about with it.
func TestManualRunAgainstTheFlagNeedsForce(t *testing.T) {
	t.Parallel()
	url := seededSQLite(t)
	r := runBinary(t, nil, "migrate", "--org-id", "DemoX", "--database-url", url)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "a forward run goes against the effective flag state: org DemoX is off (global flag)")
	require.Contains(t, r.stderr, "would move the roles back")
	require.Contains(t, r.stderr, "give --force to run anyway (nothing was run)")
	require.Empty(t, r.stdout)

	r = runBinary(t, nil, "migrate", "--org-id", "DemoX", "--force", "--database-url", url)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stderr, "warning: a forward run goes against the effective flag state")
	require.Regexp(t, `run 1 +forward +org +DemoX`, r.stdout)

	// In the direction of the flag: no warning.
	r = runBinary(t, nil, "rollback", "--org-id", "DemoX", "--database-url", url)
	require.Zero(t, r.code, r.stderr)
	require.NotContains(t, r.stderr, "warning")
}

func TestRunsListTableAndJSON(t *testing.T) {
	t.Parallel()
	url := seededSQLite(t)
	r := runBinary(t, nil, "migrate", "--org-id", "DemoX", "--force", "--database-url", url)
	require.Zero(t, r.code, r.stderr)

	r = runBinary(t, nil, "runs", "list", "--database-url", url)
	require.Zero(t, r.code, r.stderr)
	require.Regexp(t, `^ID +SCOPE +TYPE +STATUS +MOVED +ERRORS +TRIGGER +STARTED \(UTC\) +DURATION\n1 +org DemoX +forward +partial_success +\d+ of \d+ +\d+ +manual +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d +\d`, r.stdout)

	r = runBinary(t, nil, "runs", "list", "--status", "bogus", "--database-url", url)
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, `--status "bogus" is not one of running, completed, partial_success, failed, skipped`)

	r = runBinary(t, nil, "runs", "list", "--json", "--database-url", url)
	require.Zero(t, r.code, r.stderr)
	var runs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &runs), r.stdout)
	require.Len(t, runs, 1)
	require.Equal(t, "manual", runs[0]["trigger"])
	require.Equal(t, "DemoX", runs[0]["scope_key"])

	r = runBinary(t, nil, "runs", "show", "1", "--json", "--database-url", url)
	require.Zero(t, r.code, r.stderr)
	var run map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.stdout), &run), r.stdout)
	require.Equal(t, "partial_success", run["status"])
	r = runBinary(t, nil, "runs", "show", "1", "--database-url", url)
	require.Regexp(t, `(?s)^ID .*\n1 +org DemoX .*\nmetadata:\n\{.*"trigger": "manual"`, r.stdout)

	r = runBinary(t, nil, "parked", "list", "--json", "--database-url", url)
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "[]\n", r.stdout)
}

// A manual run that waits on a held lock says so, names the holder, and
// exits 1 when it gives up (its run recorded skipped).
func TestManualRunWaitingOnAHeldLock(t *testing.T) {
	eachDatabase(t, func(t *testing.T, url string, db *store.DB) {
		if db.Driver().SingleWriter() != "" {
			return // one writer: the run waits in SQLite itself, there is no lock to name
		}
		ctx := context.Background()
		conn, err := db.SQL.Conn(ctx)
		require.NoError(t, err)
		defer conn.Close()
		release, err := lock.Acquire(ctx, db.Driver(), conn, "DemoX", time.Second)
		require.NoError(t, err)
		defer release(ctx) //nolint:errcheck

		r := runBinary(t, nil, "migrate", "--org-id", "DemoX", "--force", "--lock-timeout", "1s", "--log-format", "text", "--database-url", url)
		require.Equal(t, 1, r.code, r.stdout+r.stderr)
		require.Regexp(t, `msg="waiting for the org's advisory lock: another run of the org holds it" org=demox held_by="database (connection \d+|backend pid \d+) \(authz`, r.stderr)
		require.Regexp(t, `run 1 +forward +org +DemoX +skipped`, r.stdout)
		require.Contains(t, r.stderr, "1 of 1 runs skipped: another run of the org held its lock longer than --lock-timeout (1s)")

		// reconcile too: the org is on now, its legacy roles drift.
		_, err = demo.Save(ctx, db, demo.Override{Flag: authz.DefaultFlag, ScopeType: "org", ScopeKey: demo.OrgDemo, Enabled: true, Choice: "on"})
		require.NoError(t, err)
		r = runBinary(t, nil, "reconcile", "--org-id", "DemoX", "--lock-timeout", "1s", "--log-format", "text", "--database-url", url)
		require.Equal(t, 1, r.code, r.stdout+r.stderr)
		require.Contains(t, r.stderr, "waiting for the org's advisory lock")
		require.Contains(t, r.stderr, "runs skipped: another run of the org held its lock longer than --lock-timeout (1s)")
	})
}

// make clean removes what make build and make dev leave: bin/, dev-data/
// and the default SQLite database.
func TestMakeCleanRemovesDevData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mk, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "Makefile"), mk, 0o644))
	for _, p := range []string{"bin/consumer", "dev-data/dev.db", "authz-consumer.db", "authz-consumer.db-wal", "go.mod"} {
		require.NoError(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, p), nil, 0o644))
	}
	out, err := exec.Command("make", "-C", dir, "clean").CombinedOutput()
	require.NoError(t, err, string(out))
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	require.ElementsMatch(t, []string{"Makefile", "go.mod"}, left)
}

// Read-only commands never create a database; a file SQLite cannot open
// is explained, not reported as "out of memory (14)".
func TestReadOnlyCommandsCreateNoDatabase(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := "sqlite:///" + filepath.ToSlash(filepath.Join(dir, "missing.db"))
	for _, args := range []string{"runs list", "runs show 1", "schema check", "verify", "parked list"} {
		r := runBinary(t, nil, append(strings.Fields(args), "--database-url", missing)...)
		require.Equal(t, 1, r.code, args)
		require.Contains(t, r.stderr, "does not exist; this command only reads and creates nothing", args)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Empty(t, entries, "no file created")

	r := runBinary(t, nil, "schema", "create", "--database-url", "sqlite:///no/such/dir/x.db")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "directory")
	require.Contains(t, r.stderr, "/no/such/dir does not exist")
	require.Contains(t, r.stderr, "sqlite:/// is relative to the working directory; sqlite://// starts an absolute path")
	require.NotContains(t, r.stderr, "out of memory")
	r = runBinary(t, nil, "runs", "list", "--database-url", "sqlite:///"+filepath.ToSlash(dir))
	require.Contains(t, r.stderr, "is a directory, not a SQLite file")
}

func TestMisspelledVariableIsWarnedAbout(t *testing.T) {
	t.Parallel()
	url := seededSQLite(t)
	r := runBinary(t, []string{"AUTHZ_CONSUMER_DATABSE_URL=" + url, "AUTHZ_CONSUMER_DATABASE_URL=" + url, "AUTHZ_CONSUMER_BROKERS=k:9092"}, "runs", "list")
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "warning: AUTHZ_CONSUMER_DATABSE_URL is not a setting and is ignored (did you mean AUTHZ_CONSUMER_DATABASE_URL?)\n", r.stderr,
		"a setting of another command (BROKERS) is no warning")
}

// What `consumer run` shows an operator: the scope key in logs (not the
// framed key bytes), authz_consumer_lag and authz_consumer_build_info.
func TestRunLogsKeysAndServesBuildInfo(t *testing.T) {
	t.Parallel()
	const topic = "ops-waffle-flag-override-lifecycle"
	st := testenv.Stack(t, devstack.Options{Dir: t.TempDir(), Seed: true, Topic: topic, DeadLetterTopic: topic + ".parked"})
	url, addr := st.DatabaseURL, st.Brokers[0]
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	httpAddr := l.Addr().String()
	l.Close()
	common := []string{"--database-url", url, "--brokers", addr, "--topic", topic, "--schema-registry-url", st.RegistryURL}

	var stderr syncBuffer
	cmd := exec.Command(consumerBinary(t), append([]string{"run", "--auto-migrate", "--http-addr", httpAddr, "--log-format", "text"}, common...)...)
	cmd.Env = cleanEnv()
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	r := runBinary(t, nil, append([]string{"publish", "--scope-type", "org", "--scope-key", "DemoX", "--choice", "on"}, common...)...)
	require.Zero(t, r.code, r.stderr)
	// An event whose override row is not there yet is retried; the retry
	// log names the key, registry-framed on the wire, as text.
	r = runBinary(t, nil, append([]string{"publish", "--scope-type", "org", "--scope-key", "DemoX", "--choice", "on", "--record-id", "999"}, common...)...)
	require.Zero(t, r.code, r.stderr)
	waitForOutput(t, &stderr, "key=DemoX", cmd)
	require.Regexp(t, `msg="override row not visible yet; set aside, the partition goes on" .*key=DemoX`, stderr.String())
	require.NotContains(t, stderr.String(), `key="\x00`)

	resp, err := http.Get("http://" + httpAddr + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Regexp(t, `(?m)^authz_consumer_build_info\{goversion="go[^"]+",revision="[^"]*",version="[^"]+"\} 1$`, string(body))
	require.Regexp(t, `(?m)^authz_consumer_lag\{partition="0"\} \d+$`, string(body))
	require.NotContains(t, string(body), "consumer_consumer")

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), stderr.String())
}

// syncBuffer is a bytes.Buffer a process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Running a schema command twice says what the second one did: nothing.
func TestSchemaCommandsTwice(t *testing.T) {
	t.Parallel()
	url := "sqlite:///" + filepath.ToSlash(filepath.Join(t.TempDir(), "s.db"))
	r := runBinary(t, nil, "schema", "create", "--database-url", url)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "created 15 Open edX tables")
	r = runBinary(t, nil, "schema", "create", "--database-url", url)
	require.Equal(t, 1, r.code)
	require.Empty(t, r.stdout, "no second 'created'")
	require.Contains(t, r.stderr, "already holds Open edX tables")
	r = runBinary(t, nil, "schema", "migrate", "--database-url", url)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "own tables already at version")
	require.Contains(t, r.stdout, "nothing to do")

	fresh := "sqlite:///" + filepath.ToSlash(filepath.Join(t.TempDir(), "m.db"))
	r = runBinary(t, nil, "schema", "migrate", "--database-url", fresh)
	require.Zero(t, r.code, r.stderr)
	require.Contains(t, r.stdout, "created the service's own tables (version")
}

func TestTopicsCreate(t *testing.T) {
	t.Parallel()
	addr := testenv.Stack(t, devstack.Options{}).Brokers[0]
	args := []string{"topics", "create", "--topic-prefix", "prod", "--partitions", "6", "--brokers", addr}
	r := runBinary(t, nil, args...)
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "created topic prod-waffle-flag-override-lifecycle: 6 partitions, retention 168h0m0s\n"+
		"created topic prod-waffle-flag-override-lifecycle.parked: 6 partitions, retention 168h0m0s\n", r.stdout)
	r = runBinary(t, nil, args...)
	require.Zero(t, r.code, r.stderr)
	require.Equal(t, "topic prod-waffle-flag-override-lifecycle exists already (6 partitions); left as it is\n"+
		"topic prod-waffle-flag-override-lifecycle.parked exists already (6 partitions); left as it is\n", r.stdout)
	r = runBinary(t, nil, "topics", "create", "--partitions", "0")
	require.Equal(t, 1, r.code)
	require.Contains(t, r.stderr, "--partitions 0: must be 1 or more")
}

// A long run logs its progress (rows done of the total) every
// --progress-interval, and a last line when it ends.
func TestLongRunLogsProgress(t *testing.T) {
	t.Parallel()
	url := seededSQLite(t)
	r := runBinary(t, nil, "migrate", "--org-id", "DemoX", "--force", "--progress-interval", "1ns", "--log-format", "text", "--database-url", url)
	require.Zero(t, r.code, r.stderr)
	require.Regexp(t, `msg="run progress" run_id=1 type=forward scope_type=org scope=DemoX rows_done=(\d+) rows_total=(\d+) elapsed=\S+ rows_per_second=\d+`, r.stderr)
	m := regexp.MustCompile(`rows_done=(\d+) rows_total=(\d+)`).FindStringSubmatch(r.stderr)
	require.Equal(t, m[1], m[2], "one page: all rows done")
	require.Regexp(t, `msg="run finished" run_id=1 .* status=partial_success`, r.stderr)

	r = runBinary(t, nil, "rollback", "--org-id", "DemoX", "--log-format", "text", "--database-url", url)
	require.Zero(t, r.code, r.stderr)
	require.NotContains(t, r.stderr, "run progress", "a short run (default 5s interval) logs no progress")
}

// make dev says what it does while it downloads and builds, then runs
// the demo from the binary it built.
func TestMakeDevSaysWhatItDoes(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	cmd := exec.Command("bash", filepath.Join("..", "..", "scripts", "dev.sh"), "--help")
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Run(), out.String())
	for _, want := range []string{
		"make dev: 1/3 Go modules: downloading what go.mod needs",
		"make dev: 2/3 compiling bin/consumer: up to ",
		"make dev: 3/3 running bin/consumer dev --help",
		"Usage:\n  consumer dev",
	} {
		require.Contains(t, out.String(), want)
	}
}

// On SQLite the one writer lock is the lock: a run waiting for it says so.
func TestManualRunWaitingOnSQLitesWriter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := seededSQLite(t)
	db, err := store.Open(ctx, url)
	require.NoError(t, err)
	defer db.Close()
	holder, err := db.SQL.BeginTx(ctx, nil) // BEGIN IMMEDIATE: holds the write lock
	require.NoError(t, err)
	defer holder.Rollback() //nolint:errcheck

	var stderr syncBuffer
	cmd := exec.Command(consumerBinary(t), "migrate", "--org-id", "DemoX", "--force", "--log-format", "text", "--database-url", url)
	cmd.Env = cleanEnv()
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	waitForOutput(t, &stderr, "waiting for SQLite's write lock", cmd)
	require.NoError(t, holder.Rollback())
	require.NoError(t, cmd.Wait(), stderr.String())
}

// A publish whose event the broker refuses after the row was saved says
// the row is saved and how to publish its event.
func TestPublishRefusedAfterSaveSaysTheRowIsSaved(t *testing.T) {
	t.Parallel()
	st := testenv.Stack(t, devstack.Options{Dir: t.TempDir(), Seed: true, Topic: "waffle-flag-override-lifecycle", Partitions: 3})
	url, addr, cluster := st.DatabaseURL, st.Brokers[0], st.Kafka
	cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.TopicAuthorizationFailed.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	r := runBinary(t, nil, "publish", "--json", "--scope-type", "org", "--scope-key", "DemoX", "--choice", "on",
		"--database-url", url, "--brokers", addr)
	require.Equal(t, 1, r.code, r.stdout+r.stderr)
	require.Contains(t, r.stdout, "saved org override row 1 of DemoX")
	require.Contains(t, r.stderr, "override row 1 is saved without an event: publish it with --record-id 1")
}

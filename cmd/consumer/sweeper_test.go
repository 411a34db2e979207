package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/devstack"
	"authz-flag-consumer/internal/testenv"
)

// `consumer run` sweeps: the first start only sets the watermarks (an
// override saved before the service ran moves nothing), then a save whose
// event is lost is reconciled by the next sweep, recorded with the
// trigger "sweep".
func TestRunSweepHealsALostEvent(t *testing.T) {
	t.Parallel()
	bin := consumerBinary(t)

	ctx := context.Background()
	const topic = "sweep-waffle-flag-override-lifecycle"
	st := testenv.Stack(t, devstack.Options{Dir: t.TempDir(), Seed: true, Topic: topic, DeadLetterTopic: topic + ".parked"})
	db, dbURL := st.DB, st.DatabaseURL
	_, err := demo.Save(ctx, db, demo.Override{Flag: authz.DefaultFlag, ScopeType: "course", ScopeKey: demo.CourseAdv, Enabled: true, Choice: "on"})
	require.NoError(t, err)

	var stderr bytes.Buffer
	cmd := exec.Command(bin, "run", "--database-url", dbURL, "--brokers", st.Brokers[0], "--topic", topic,
		"--auto-migrate", "--sweep-interval", "300ms", "--http-addr", "127.0.0.1:0", "--log-format", "text")
	cmd.Env = cleanEnv()
	cmd.Stderr = &stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	runs := func() []string {
		rows, err := db.SQL.QueryContext(ctx, "SELECT scope_key, migration_type, json_extract(metadata, '$.trigger') FROM openedx_authz_authzcourseauthoringmigrationrun ORDER BY id")
		require.NoError(t, err)
		defer rows.Close()
		var out []string
		for rows.Next() {
			var k, typ, trig string
			require.NoError(t, rows.Scan(&k, &typ, &trig))
			out = append(out, k+" "+typ+" "+trig)
		}
		return out
	}
	waitFor := func(what string, cond func() bool) {
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 30s; log:\n%s", what, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor("watermarks set", func() bool { return strings.Contains(stderr.String(), "sweep watermarks set") })
	time.Sleep(time.Second) // a few sweeps: the override saved before the start moves nothing
	require.Empty(t, runs(), "deploying the service moves nothing by itself")

	// An org saved on, its event lost: the next sweep moves the org.
	_, err = demo.Save(ctx, db, demo.Override{Flag: authz.DefaultFlag, ScopeType: "org", ScopeKey: demo.OrgOther, Enabled: true, Choice: "on"})
	require.NoError(t, err)
	waitFor("the sweep reconciles the org", func() bool { return len(runs()) > 0 })
	require.Equal(t, []string{demo.OrgOther + " forward sweep"}, runs())
	counts, err := demo.CountByScope(ctx, db)
	require.NoError(t, err)
	require.Equal(t, demo.ScopeCounts{Assignments: 2}, counts[demo.CourseBio])

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	require.NoError(t, cmd.Wait(), stderr.String())
	require.Contains(t, stderr.String(), "sweep done")
}

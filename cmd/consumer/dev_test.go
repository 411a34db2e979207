package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// The one-command demo runs end to end: every toggle gets its outcome and
// the summary shows the runs and what moved.
func TestDevPlaysTheScript(t *testing.T) {
	var out bytes.Buffer
	err := runDev(context.Background(), &out, devOptions{dir: t.TempDir(), partitions: 3, httpAddr: "127.0.0.1:0"})
	require.NoError(t, err, out.String())
	for _, want := range []string{
		"ran: forward run #1",
		"ran: rollback run #3",
		"noop: effective state is on (course override) and the roles are already there",
		"ignored: flag \"studio.some_other_flag\"",
		"ignored: not a course-v1 course key",
		"8. course course-v1:OtherU+Bio+2024 off, then on (two quick saves)           ran: forward run #5",
		"parked (framing)",
		"ran: rollback run #6 partial_success, moved 6 of 10; errors: skipped_for_flag_override 4",
	} {
		require.Contains(t, out.String(), want)
	}
	// The org went on and off again; the course with its own "on" stayed moved.
	require.Regexp(t, `course-v1:DemoX\+Adv\+2024 +3 → 3 +0 → 0 `, out.String())
	require.Regexp(t, `course-v1:DemoX\+Intro\+2024 +5 → 1 +0 → 4 +moved`, out.String())
}

package shutdown_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/consumer/shutdown"
)

const childEnv = "SHUTDOWN_TEST_CHILD"

// The child is this test binary. A SIGTERM arrives while it is still
// "initializing" (the sleep before main's handlers exist, as when the
// consumer's packages initialize on a busy node): without this package it
// would die by the signal; with it, main's handler gets the signal at
// Handoff, and the child exits 0.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "" {
		os.Exit(m.Run())
	}
	os.Stdout.WriteString("initializing\n")
	time.Sleep(time.Second) // the slow start; the parent signals meanwhile
	ctx, stop := signal.NotifyContext(context.Background(), shutdown.Signals...)
	defer stop()
	shutdown.Handoff()
	select {
	case <-ctx.Done():
		os.Exit(0)
	case <-time.After(10 * time.Second):
		os.Exit(3) // the early signal was lost
	}
}

func TestSignalBeforeMainReachesMainsHandler(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^$")
			cmd.Env = append(os.Environ(), childEnv+"=1")
			out, err := cmd.StdoutPipe()
			require.NoError(t, err)
			require.NoError(t, cmd.Start())
			buf := make([]byte, len("initializing\n"))
			_, err = out.Read(buf) // the child runs Go code: this package's init is done
			require.NoError(t, err)
			require.NoError(t, cmd.Process.Signal(sig))
			err = cmd.Wait()
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				t.Fatalf("child: %v (signaled: %v), want exit 0", err, exit.Sys().(syscall.WaitStatus).Signaled())
			}
			require.NoError(t, err)
		})
	}
}

func TestHandoffWithoutSignalDoesNothing(t *testing.T) {
	ctx, stop := signal.NotifyContext(context.Background(), shutdown.Signals...)
	defer stop()
	shutdown.Handoff()
	shutdown.Handoff() // a second call is harmless
	require.NoError(t, ctx.Err())
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/devstack"
	"authz-flag-consumer/internal/testenv"
)

// SIGTERM while `consumer run` is still starting (before it joined its
// group: waiting for a database or a broker that does not answer, or for
// the topic to appear) is a stop like any other: exit 0, with a log line
// saying so. It used to end the process by the signal (before main had
// asked for it) or with exit 1 (the interrupted connection reported as an
// error).
func TestSIGTERMWhileStartingExitsZero(t *testing.T) {
	t.Parallel()
	bin := consumerBinary(t)

	st := testenv.Stack(t, devstack.Options{Dir: t.TempDir()}) // the Open edX tables, and a broker without the topic
	dbURL := st.DatabaseURL
	silent := silentServer(t) // accepts connections, never answers

	scenarios := map[string][]string{
		"database does not answer": {"--database-url", "mysql://authz:authz@" + silent + "/edxapp", "--brokers", silent},
		"broker does not answer":   {"--database-url", dbURL, "--brokers", silent},
		"topic does not exist yet": {"--database-url", dbURL, "--brokers", st.Brokers[0]},
	}
	// One process at a time: nine Go processes starting at once on a small
	// machine would stretch each one's start (the few milliseconds before
	// any Go code can ask for SIGTERM) past the delays below.
	for name, args := range scenarios {
		for _, delay := range []time.Duration{100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond} {
			t.Run(fmt.Sprintf("%s, SIGTERM after %s", name, delay), func(t *testing.T) {
				var stderr bytes.Buffer
				cmd := exec.Command(bin, append([]string{"run", "--http-addr", "127.0.0.1:0"}, args...)...)
				cmd.Env = cleanEnv()
				cmd.Stderr = &stderr
				require.NoError(t, cmd.Start())
				time.Sleep(delay) // the point of the test: a signal at this moment of the start
				require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
				done := make(chan error, 1)
				go func() { done <- cmd.Wait() }()
				var err error
				select {
				case err = <-done:
				case <-time.After(60 * time.Second):
					_ = cmd.Process.Kill()
					t.Fatalf("no exit within 60s of SIGTERM; log:\n%s", stderr.String())
				}
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					t.Fatalf("exit after SIGTERM: %v (signaled: %v); want code 0; log:\n%s", err, exit.Sys().(syscall.WaitStatus).Signaled(), stderr.String())
				}
				require.NoError(t, err)
				require.Contains(t, messages(stderr.String()), "stopped while starting", "log:\n%s", stderr.String())
			})
		}
	}
}

// silentServer returns the 127.0.0.1 address of a server that accepts
// connections and never says anything, like a host whose service hangs.
func silentServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var conns []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-accepted
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

// messages returns the msg of every JSON log line.
func messages(log string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var l struct{ Msg string }
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			out = append(out, l.Msg)
		}
	}
	return out
}

// cleanEnv is the test's environment without AUTHZ_CONSUMER_* settings.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AUTHZ_CONSUMER_") {
			env = append(env, kv)
		}
	}
	return env
}

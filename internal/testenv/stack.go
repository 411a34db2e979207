package testenv

import (
	"context"
	"testing"

	"authz-flag-consumer/internal/devstack"
)

// Stack starts the in-process stack of o (a SQLite file in o.Dir, the kfake
// broker with the topics, the schema registry; see internal/devstack) and
// stops it when the test ends. It needs no server, so it runs under -short.
func Stack(t testing.TB, o devstack.Options) *devstack.Stack {
	t.Helper()
	st, err := devstack.Start(context.Background(), o)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("testenv: close the stack: %v", err)
		}
	})
	return st
}

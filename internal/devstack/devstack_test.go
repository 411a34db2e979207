package devstack_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/devstack"
)

// A started stack serves Kafka with the topics, the registry and a seeded
// database; Close stops all three.
func TestStartServesEverythingAndCloseStopsIt(t *testing.T) {
	ctx := context.Background()
	st, err := devstack.Start(ctx, devstack.Options{Dir: t.TempDir(), Seed: true, Topic: "t-events", Partitions: 3, DeadLetterTopic: "t-events.parked"})
	require.NoError(t, err)

	conn, err := kafka.DialContext(ctx, "tcp", st.Brokers[0])
	require.NoError(t, err)
	parts, err := conn.ReadPartitions()
	require.NoError(t, err)
	conn.Close()
	byTopic := map[string]int{}
	for _, p := range parts {
		byTopic[p.Topic]++
	}
	require.Equal(t, map[string]int{"t-events": 3, "t-events.parked": 1}, byTopic)

	resp, err := http.Get(st.RegistryURL + "/subjects")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	counts, err := demo.CountByScope(ctx, st.DB)
	require.NoError(t, err)
	require.Equal(t, 5, counts[demo.CourseIntro].Legacy, "the demo data is there")

	require.NoError(t, st.Close())
	for _, addr := range []string{st.Brokers[0], st.RegistryURL[len("http://"):]} {
		require.Eventually(t, func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err != nil
		}, 10*time.Second, 20*time.Millisecond, "%s still accepts connections after Close", addr)
	}
}

// Each start in a directory gets a fresh database: what an earlier run
// wrote there is gone.
func TestStartRecreatesTheDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := devstack.Start(ctx, devstack.Options{Dir: dir, Seed: true})
	require.NoError(t, err)
	require.NoError(t, demo.AddRoles(ctx, st.DB, demo.Role{Username: "zed", Org: demo.OrgDemo, CourseID: demo.CourseData, Role: "staff"}))
	first := st.DatabaseURL
	require.NoError(t, st.Close())

	st, err = devstack.Start(ctx, devstack.Options{Dir: dir})
	require.NoError(t, err)
	defer st.Close()
	require.Equal(t, first, st.DatabaseURL, "the same file")
	counts, err := demo.CountByScope(ctx, st.DB)
	require.NoError(t, err)
	require.Empty(t, counts, "no rows of the earlier start, and no demo data without Seed")
}

// A start that fails stops what it had started.
func TestFailedStartLeavesNothingRunning(t *testing.T) {
	ctx := context.Background()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	kafkaPort := freePort(t)
	st, err := devstack.Start(ctx, devstack.Options{KafkaPort: kafkaPort, RegistryPort: port})
	require.ErrorContains(t, err, "start schema registry")
	require.Nil(t, st)
	require.Eventually(t, func() bool {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", kafkaPort))
		if err == nil {
			l.Close()
		}
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "the broker started before the registry failed is stopped")

	_, err = devstack.Start(ctx, devstack.Options{Dir: t.TempDir(), DatabaseURL: "nosuch://x"})
	require.Error(t, err)
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

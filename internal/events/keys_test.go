package events_test

import (
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/events"
)

func TestParseTime(t *testing.T) {
	utc := func(ns int) time.Time { return time.Date(2024, 5, 1, 12, 30, 45, ns, time.UTC) }
	for s, want := range map[string]time.Time{
		"2024-05-01T12:30:45+00:00":        utc(0),
		"2024-05-01T12:30:45.123456+00:00": utc(123456000),
		"2024-05-01T12:30:45Z":             utc(0),
		"2024-05-01T12:30:45.5Z":           utc(500000000),
		"2024-05-01 12:30:45.000001+00:00": utc(1000),
		"2024-05-01T14:30:45+02:00":        utc(0),
		"2024-05-01T12:30:45+0000":         utc(0),
		"2024-05-01T12:30:45":              utc(0),
	} {
		got, err := events.ParseTime(s)
		require.NoError(t, err, s)
		require.True(t, want.Equal(got), "%s: got %v", s, got)
		require.Equal(t, time.UTC, got.Location())
	}
	for _, s := range []string{"", "2024-05-01", "yesterday", "2024-13-01T00:00:00Z", "2024-05-01T12:30:45+25:00"} {
		_, err := events.ParseTime(s)
		require.Error(t, err, s)
	}
}

func TestFormatTimeIsPythonIsoformat(t *testing.T) {
	require.Equal(t, "2024-05-01T12:30:45+00:00", events.FormatTime(time.Date(2024, 5, 1, 12, 30, 45, 0, time.UTC)))
	require.Equal(t, "2024-05-01T12:30:45.000100+00:00", events.FormatTime(time.Date(2024, 5, 1, 12, 30, 45, 100999, time.UTC)))
	require.Equal(t, "2024-05-01T10:30:45.500000+00:00",
		events.FormatTime(time.Date(2024, 5, 1, 12, 30, 45, 5e8, time.FixedZone("CEST", 7200))))
}

// Partition is librdkafka's consistent_random for non-empty keys: CRC32 of
// the key bytes modulo the partition count. kafka-go's CRC32Balancer agrees
// with it both in its default (consistent_random) and Consistent modes.
func TestPartitionMatchesKafkaGoCRC32Balancer(t *testing.T) {
	f := newFixture(t)
	// crc32("123456789") is the standard CRC-32 check value.
	require.Equal(t, uint32(0xCBF43926), crc32.ChecksumIEEE([]byte("123456789")))
	require.Equal(t, int(0xCBF43926%6), events.Partition([]byte("123456789"), 6))

	var keys [][]byte
	for i := range 300 {
		o := courseOverride()
		o.ScopeKey, o.Org = fmt.Sprintf("course-v1:Org%d+C%d+R", i%17, i), fmt.Sprintf("Org%d", i%17)
		keys = append(keys, f.encode(o).Key)
	}
	for _, n := range []int{1, 2, 3, 6, 12, 50} {
		partitions := make([]int, n)
		for i := range partitions {
			partitions[i] = i
		}
		for _, key := range keys {
			want := events.Partition(key, n)
			require.Equal(t, want, kafka.CRC32Balancer{}.Balance(kafka.Message{Key: key}, partitions...))
			require.Equal(t, want, kafka.CRC32Balancer{Consistent: true}.Balance(kafka.Message{Key: key}, partitions...))
		}
	}
	require.Equal(t, 0, events.Partition([]byte("x"), 0))
}

func TestNames(t *testing.T) {
	require.Equal(t, "t-string", events.KeySubject("t"))
	require.Equal(t, "t-org.openedx.platform.waffle_flag_override.changed.v1.CloudEvent", events.ValueSubject("t"))
}

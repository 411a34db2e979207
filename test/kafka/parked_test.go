package kafka_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/testenv"
)

// TestMalformedEventsParked: a message that is not an event, on every
// partition ahead of real events, is parked on the real broker (copied to
// the dead-letter topic with its reason, recorded for `consumer parked
// list`) and blocks nothing: the events behind it are handled and every
// offset is committed.
func TestMalformedEventsParked(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	p := newPlan(3, 1, 1)
	db := newTestDB(t, "sqlite", p)
	topic := newTopic(t, brokers, "parked")
	group := topic + "-group"
	s := consumerSettings(brokers, topic, group, db.url)
	c := startConsumer(t, "consumer", s)
	waitReady(t, c)

	ctx := context.Background()
	for part := range partitions {
		conn, err := kafka.DialLeader(ctx, "tcp", brokers[0], topic, part)
		require.NoError(t, err)
		_, err = conn.WriteMessages(kafka.Message{
			Key:   []byte("not-framed"),
			Value: []byte("not an event"),
			Headers: []kafka.Header{
				{Key: "ce_type", Value: []byte("org.openedx.platform.waffle_flag_override.changed.v1")},
				{Key: "content-type", Value: []byte("application/avro")},
			},
		})
		conn.Close()
		require.NoError(t, err, "write to partition %d", part)
	}
	pubs := publishNow(t, s, p.Rounds[0])
	tl := db.checkRuns(t, pubs)
	waitCommittedToEnd(t, offsets(brokers, group, topic))
	db.expectFinal(t, p, p.Rounds[0])

	parked := db.strings(t, `SELECT partition_no, offset_no, reason FROM authz_consumer_parked ORDER BY partition_no`)
	require.Len(t, parked, partitions, "one parked row per malformed message: %v", parked)
	code, out := run(t, s, "parked", "list")
	require.Equal(t, 0, code, out)
	for part := range partitions {
		require.Contains(t, out, fmt.Sprintf("%s/%d/0", topic, part), "consumer parked list names each parked message")
	}

	dead := readAll(t, brokers, topic+".parked", partitions)
	for _, m := range dead {
		require.Equal(t, "not an event", string(m.Value))
		require.NotEmpty(t, consumer.Header(m, consumer.HeaderParkedReason), "dead-letter copy has its reason")
		require.Equal(t, topic, consumer.Header(m, consumer.HeaderOriginalTopic))
	}
	c.stop()
	t.Logf("malformed events: %d parked (reason %q), then %s", len(parked), consumer.Header(dead[0], consumer.HeaderParkedReason), tl)
}

// readAll reads n messages of topic from its start, with a group of its own.
func readAll(t testing.TB, brokers []string, topic string, n int) []kafka.Message {
	t.Helper()
	return testenv.ReadMessages(t, kafka.ReaderConfig{Brokers: brokers, Topic: topic, GroupID: topic + "-check", StartOffset: kafka.FirstOffset, MaxWait: 200 * time.Millisecond}, n, waitLimit)
}

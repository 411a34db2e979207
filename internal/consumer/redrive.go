package consumer

import (
	"sort"

	"github.com/segmentio/kafka-go"

	"authz-flag-consumer/internal/eventid"
	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/migrator"
)

// HeaderRedriveOf names the message a re-driven copy was parked from
// ("<topic>/<partition>/<offset>").
const HeaderRedriveOf = "x-redrive-of"

// Redrive is the message that re-drives a parked event: its original key,
// value and headers, to its original topic and partition (see
// OriginalPartition), so it keeps its place in its scope's order and its
// ce_id. The headers of a parked event are kept as a map, so their order
// is not restored; a duplicate header keeps its last value.
func Redrive(p migrator.ParkedEvent) kafka.Message {
	keys := make([]string, 0, len(p.Headers))
	for k := range p.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	hs := make([]kafka.Header, 0, len(keys)+1)
	for _, k := range keys {
		hs = append(hs, kafka.Header{Key: k, Value: []byte(p.Headers[k])})
	}
	hs = append(hs, kafka.Header{Key: HeaderRedriveOf, Value: []byte(eventid.Format(p.Topic, p.Partition, p.Offset))})
	return kafka.Message{Topic: p.Topic, Partition: p.Partition, Key: p.Key, Value: p.Value, Headers: hs}
}

// OriginalPartition is a kafka.Balancer that writes a message to the
// partition set in its Partition field (kafka-go's writer otherwise ignores
// it), or by key as the Open edX producer does when the topic no longer has
// that partition.
type OriginalPartition struct{}

// Balance implements kafka.Balancer.
func (OriginalPartition) Balance(m kafka.Message, partitions ...int) int {
	for _, p := range partitions {
		if p == m.Partition {
			return p
		}
	}
	return partitions[events.Partition(m.Key, len(partitions))]
}

// KeyPartitioner is a kafka.Balancer that maps a message's key to a
// partition as the Open edX producer (librdkafka's default partitioner)
// does, so events that `consumer publish` writes for a scope land on the
// same partition as the LMS's, and stay in order with them.
type KeyPartitioner struct{}

// Balance implements kafka.Balancer.
func (KeyPartitioner) Balance(m kafka.Message, partitions ...int) int {
	return partitions[events.Partition(m.Key, len(partitions))]
}

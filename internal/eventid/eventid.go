// Package eventid holds the one form of a message's place in Kafka,
// "<topic>/<partition>/<offset>". It is the idempotency key of an event
// whose message carries no ce_id, the x-redrive-of header of a re-driven
// copy, and how the commands show where a parked event came from.
package eventid

import (
	"fmt"
	"strconv"
	"strings"
)

// Format returns "<topic>/<partition>/<offset>".
func Format(topic string, partition int, offset int64) string {
	return topic + "/" + strconv.Itoa(partition) + "/" + strconv.FormatInt(offset, 10)
}

// Parse reads what Format wrote. Kafka topic names never hold a slash, but
// the last two slashes are taken as the separators all the same.
func Parse(id string) (topic string, partition int, offset int64, err error) {
	j := strings.LastIndexByte(id, '/')
	i := -1
	if j > 0 {
		i = strings.LastIndexByte(id[:j], '/')
	}
	if i <= 0 {
		return "", 0, 0, fmt.Errorf("event id %q is not <topic>/<partition>/<offset>", id)
	}
	if partition, err = strconv.Atoi(id[i+1 : j]); err != nil || partition < 0 {
		return "", 0, 0, fmt.Errorf("event id %q: partition %q is not a partition number", id, id[i+1:j])
	}
	if offset, err = strconv.ParseInt(id[j+1:], 10, 64); err != nil || offset < 0 {
		return "", 0, 0, fmt.Errorf("event id %q: offset %q is not an offset", id, id[j+1:])
	}
	return id[:i], partition, offset, nil
}

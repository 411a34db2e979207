package eventid_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/eventid"
)

func TestFormatThenParse(t *testing.T) {
	for _, c := range []struct {
		topic     string
		partition int
		offset    int64
		want      string
	}{
		{"dev-waffle-flag-override-lifecycle", 2, 17, "dev-waffle-flag-override-lifecycle/2/17"},
		{"t", 0, 0, "t/0/0"},
		{"a.b_c-d", 31, 9007199254740993, "a.b_c-d/31/9007199254740993"},
	} {
		id := eventid.Format(c.topic, c.partition, c.offset)
		require.Equal(t, c.want, id)
		topic, partition, offset, err := eventid.Parse(id)
		require.NoError(t, err)
		require.Equal(t, c.topic, topic)
		require.Equal(t, c.partition, partition)
		require.Equal(t, c.offset, offset)
	}
}

func TestParseRejectsOtherIDs(t *testing.T) {
	for _, id := range []string{
		"",
		"f47ac10b-58cc-11ef-8f3a-0242ac120002", // a ce_id
		"topic/3",
		"/3/4",
		"topic/x/4",
		"topic/3/",
		"topic/-1/4",
		"topic/3/-4",
		"sha256:ab12",
	} {
		_, _, _, err := eventid.Parse(id)
		require.Error(t, err, "Parse(%q)", id)
	}
}

package consumer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"

	"authz-flag-consumer/internal/eventid"
	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/migrator"
)

// What the loop hands to the engine ends up in the outcome and parked
// tables, whose text columns are varchar(255) on MariaDB and PostgreSQL and
// hold only valid text (MariaDB's utf8mb4 refuses invalid UTF-8, PostgreSQL
// refuses NUL). A message whose values would not fit made the insert of its
// outcome fail for ever, and its partition with it. So values are made
// storable here, before the engine sees them, and marked where they were
// changed.

// maxStored is the width, in characters, of the varchar columns the event
// id and the event's strings are stored in.
const maxStored = 255

// ReasonBadEventID is the park reason of a message whose ce_id cannot be
// stored as an event id (invalid UTF-8, a NUL byte, longer than 255
// characters). Such a ce_id is no Open edX event id (a UUID), and the
// event cannot be recognized by it later: it is parked, under the sha256 of
// the ce_id's bytes, for an operator to look at.
const ReasonBadEventID = "bad_event_id"

// eventID is the idempotency key as it is stored: ce_id when
// present, else topic/partition/offset. A ce_id that cannot be stored is
// replaced by "sha256:<hex>" of its bytes, the same on every redelivery,
// and why says so; why is "" otherwise.
func eventID(m kafka.Message) (id, why string) {
	raw := Header(m, events.HeaderID)
	if raw == "" {
		if id = eventid.Format(m.Topic, m.Partition, m.Offset); unstorable(id) != "" {
			return hashID(id), "" // a topic name near Kafka's 249-character limit
		}
		return id, ""
	}
	if reason := unstorable(raw); reason != "" {
		id = hashID(raw)
		return id, fmt.Sprintf("ce_id of %d bytes cannot be stored (%s); recorded as %s, the sha256 of its bytes", len(raw), reason, id)
	}
	return raw, ""
}

func hashID(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// unstorable says why s cannot be stored as it is in a varchar(255)
// column, or "".
func unstorable(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "invalid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "a NUL byte"
	case utf8.RuneCountInString(s) > maxStored:
		return fmt.Sprintf("longer than %d characters", maxStored)
	}
	return ""
}

// fit returns s unchanged when it can be stored in a varchar(255) column.
// Otherwise it returns s cleaned (invalid bytes and NULs replaced by U+FFFD)
// and cut so that, with a marker naming what was done and the original's
// length and sha256 appended, it fits; changed is then true.
func fit(s string) (_ string, changed bool) {
	if unstorable(s) == "" {
		return s, false
	}
	clean := storableText(s)
	what := "truncated"
	if utf8.RuneCountInString(clean) <= maxStored {
		what = "invalid text replaced"
	}
	sum := sha256.Sum256([]byte(s))
	marker := fmt.Sprintf("…[%s: %d bytes, sha256:%s]", what, len(s), hex.EncodeToString(sum[:8]))
	keep := []rune(clean)
	keep = keep[:min(len(keep), maxStored-utf8.RuneCountInString(marker))]
	return string(keep) + marker, true
}

// storableText is s with invalid UTF-8 and NUL bytes replaced by U+FFFD,
// for text columns without a length limit (a parked event's detail).
func storableText(s string) string {
	return strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
}

// storableChange returns ch with every string fitted for storage, and the
// names of the fields that had to change.
func storableChange(ch migrator.Change) (migrator.Change, []string) {
	var changed []string
	for _, f := range []struct {
		name string
		v    *string
	}{
		{"waffle_flag", &ch.Flag}, {"scope_key", &ch.ScopeKey}, {"org", &ch.Org},
		{"override_choice", &ch.OverrideChoice}, {"changed_by", &ch.ChangedBy},
	} {
		if v, ok := fit(*f.v); ok {
			*f.v = v
			changed = append(changed, f.name)
		}
	}
	return ch, changed
}

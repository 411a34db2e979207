package events

import (
	"fmt"
	"strings"
	"time"
)

// isoLayouts are the ISO 8601 forms accepted for change_date and ce_time:
// Python's datetime.isoformat() ("+00:00", optional microseconds), the "Z"
// form, compact offsets, and naive times (taken as UTC, as Django stores
// UTC). Go accepts a fractional second after the seconds field even when
// the layout has none.
var isoLayouts = []string{
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05Z0700",
	"2006-01-02T15:04:05Z07",
	"2006-01-02T15:04:05",
}

// ParseTime parses an ISO 8601 date-time and returns it in UTC. The date
// and time may be separated by 'T' or a space, as Python's
// datetime.fromisoformat allows.
func ParseTime(s string) (time.Time, error) {
	v := strings.TrimSpace(s)
	if len(v) > 10 && (v[10] == ' ' || v[10] == 't') {
		v = v[:10] + "T" + v[11:]
	}
	for _, layout := range isoLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("not an ISO 8601 date-time: %q", s)
}

// FormatTime formats t as Python's datetime.isoformat() does for a UTC
// time: microsecond precision, the fraction left out when zero, "+00:00".
func FormatTime(t time.Time) string {
	t = t.UTC().Truncate(time.Microsecond)
	if t.Nanosecond() == 0 {
		return t.Format("2006-01-02T15:04:05") + "+00:00"
	}
	return t.Format("2006-01-02T15:04:05.000000") + "+00:00"
}

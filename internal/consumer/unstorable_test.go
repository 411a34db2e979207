package consumer_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/migrator"
	"authz-flag-consumer/internal/testenv"
)

// Messages whose values the outcome and parked tables cannot hold as they
// are (varchar(255) columns; MariaDB refuses invalid UTF-8 and PostgreSQL
// NUL) used to fail their outcome's insert for ever and stop the partition.
// Each now ends ignored or parked, with the value cut or hashed and marked,
// and the good event after them on the same partition is handled.
func TestUnstorableValuesEndIgnoredOrParked(t *testing.T) {
	t.Parallel()
	for name, dbURL := range map[string]func(testing.TB) string{"sqlite": testenv.SQLiteURL, "mariadb": testenv.MySQLURL} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fx := newFixtureURL(t, dbURL(t))
			fx.startDefault()

			good := fx.save(course(demo.CourseIntro, "on"))
			key := fx.encode(good).Key // every message below goes to good's partition
			otherFlag := func(flag string) events.Message {
				o := good
				o.Flag = flag
				return fx.encode(o)
			}
			withCEID := func(id string) events.Message {
				return withHeader(fx.encode(good), "ce_id", id)
			}
			cases := []struct {
				name string
				msg  events.Message
				flag string // the flag sent, for the ignored ones
				ceID string // the ce_id sent, for the parked ones
			}{
				{name: "waffle_flag of 300 characters", flag: "studio." + strings.Repeat("f", 293)},
				{name: "waffle_flag of 10 KB", flag: strings.Repeat("g", 10<<10)},
				{name: "ce_id of 300 characters", ceID: strings.Repeat("i", 300)},
				{name: "ce_id of 10 KB", ceID: strings.Repeat("j", 10<<10)},
				{name: "ce_id with NUL bytes and invalid UTF-8", ceID: "id-\x00-\xff\xfe-\x00"},
			}
			for i := range cases {
				if cases[i].flag != "" {
					cases[i].msg = otherFlag(cases[i].flag)
				} else {
					cases[i].msg = withCEID(cases[i].ceID)
				}
				cases[i].msg.Key = key
				fx.write(cases[i].msg)
			}
			goodID := fx.publish(good)
			fx.waitCommitted()

			outcome, runID := fx.outcome(goodID)
			require.Equal(t, "ran", outcome, "the event after them on the partition is handled")
			require.NotZero(t, runID)

			eng := fx.engine(migrator.Options{})
			parked, err := eng.Parked(fx.ctx, false)
			require.NoError(t, err)
			var parkedIDs, parkedCEIDs []string
			for _, c := range cases {
				if c.flag != "" {
					id, _ := c.msg.Header("ce_id")
					outcome, _ := fx.outcome(id)
					require.Equal(t, "ignored", outcome, c.name)
					flag, detail := fx.outcomeText(id)
					require.LessOrEqual(t, utf8.RuneCountInString(flag), 255, "%s: stored flag fits its column", c.name)
					require.True(t, strings.HasPrefix(flag, c.flag[:100]), "%s: stored flag starts as sent", c.name)
					require.Contains(t, flag, "truncated", c.name)
					require.Contains(t, detail, "truncated", "%s: the detail says the flag was cut", c.name)
					continue
				}
				sum := sha256.Sum256([]byte(c.ceID))
				id := "sha256:" + hex.EncodeToString(sum[:])
				parkedIDs, parkedCEIDs = append(parkedIDs, id), append(parkedCEIDs, c.ceID)
				outcome, _ := fx.outcome(id)
				require.Equal(t, "parked", outcome, c.name)
				_, detail := fx.outcomeText(id)
				require.Contains(t, detail, consumer.ReasonBadEventID, c.name)
				require.Contains(t, detail, id, "%s: the detail names the hash", c.name)
				require.Contains(t, detail, "cannot be stored", c.name)
			}
			require.Len(t, parked, len(parkedIDs))
			for i, p := range parked {
				require.Equal(t, parkedIDs[i], p.EventID)
				require.Equal(t, consumer.ReasonBadEventID, p.Reason)
				require.Contains(t, p.Detail, parkedIDs[i])
				require.Equal(t, key, p.Key)
			}
			dl := fx.deadLetters(len(parkedIDs))
			for i, m := range dl {
				require.Equal(t, consumer.ReasonBadEventID, consumer.Header(m, consumer.HeaderParkedReason))
				require.Equal(t, parkedCEIDs[i], consumer.Header(m, "ce_id"), "the dead-letter copy keeps the original ce_id")
			}
		})
	}
}

// encode is the Avro form of o's event, as the Open edX producer sends it.
func (fx *fixture) encode(o demo.Override) events.Message {
	fx.t.Helper()
	m, err := fx.enc.Encode(fx.ctx, testTopic, o.Event())
	require.NoError(fx.t, err)
	return m
}

// outcomeText returns the flag and detail recorded for an event.
func (fx *fixture) outcomeText(eventID string) (flag, detail string) {
	fx.t.Helper()
	err := fx.db.SQL.QueryRowContext(fx.ctx, fx.db.Rebind("SELECT flag, detail FROM authz_consumer_event WHERE event_id = ?"), eventID).Scan(&flag, &detail)
	require.NoError(fx.t, err, "outcome of event %s", eventID)
	return flag, detail
}

// withHeader returns m with its header key (all of them) replaced by one
// with value.
func withHeader(m events.Message, key, value string) events.Message {
	hs := make([]events.Header, 0, len(m.Headers))
	for _, h := range m.Headers {
		if h.Key != key {
			hs = append(hs, h)
		}
	}
	m.Headers = append(hs, events.Header{Key: key, Value: []byte(value)})
	return m
}

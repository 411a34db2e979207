package kafka_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/testenv"
)

// TestLagThenNoopSave: a consumer that lags behind the saves must still
// end where the flag says. The course is switched on and its roles move
// forward; then, while no consumer runs, it is switched off and saved off
// once more (a no-op save, e.g. a note edited). The first off event finds
// the flag off and the roles in authz and rolls them back; the second finds
// nothing to do. (Edge-triggered decisions, from "the row before", called
// the second a no-op and the first superseded, and left the roles in the
// wrong system.)
func TestLagThenNoopSave(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	p := newPlan(1, 0, 0)
	course := p.Scopes[0]
	db := newTestDB(t, "sqlite", p)
	topic := newTopic(t, brokers, "lag")
	s := consumerSettings(brokers, topic, topic+"-group", db.url)

	c := startConsumer(t, "consumer", s)
	waitReady(t, c)
	on := []Toggle{{Scope: course, Choice: "on"}}
	pubs := publishNow(t, s, on)
	db.waitOutcomes(t, pubs)
	c.stop()
	db.expectFinal(t, p, on)

	later := []Toggle{{Scope: course, Choice: "off"}, {Scope: course, Choice: "off"}}
	pubs = append(pubs, publishNow(t, s, later)...)
	c = startConsumer(t, "consumer-again", s)
	outs := db.waitOutcomes(t, pubs)
	c.stop()
	require.Equal(t, "ran", outs[pubs[1].EventID].Outcome, "the first off event reconciles: rollback")
	require.Equal(t, "noop", outs[pubs[2].EventID].Outcome, "the second finds the roles where they belong")
	db.expectFinal(t, p, append(on, later...))
}

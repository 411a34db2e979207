package kafka_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/testenv"
)

// TestLagThenNoopSave: a consumer that lags behind the saves must still
// end where the flag says. The course is switched on and its roles move
// forward; then, while no consumer runs, it is switched off and saved off
// once more (a no-op save, e.g. a note edited). The off event is
// superseded by the second save's, and that one must roll the roles back:
// the data is on, the flag is off. Deciding from "the row before" (which
// is the superseded off row) instead of from the state the data is in
// would call it a no-op and leave the roles in the wrong system.
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
	require.Equal(t, "superseded", outs[pubs[1].EventID].Outcome, "the off save is superseded by the second off save")
	db.expectFinal(t, p, append(on, later...))
}

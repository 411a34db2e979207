package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/stretchr/testify/require"

	"authz-flag-consumer/internal/authz"
	"authz-flag-consumer/internal/consumer"
	"authz-flag-consumer/internal/demo"
	"authz-flag-consumer/internal/events"
	"authz-flag-consumer/internal/testenv"
	"authz-flag-consumer/internal/testenv/flagcase"
)

// TestDatabaseOutageMidBacklog: two consumers work through a backlog of
// saves (reordered, duplicated, some events lost and left to the sweep) on
// MariaDB, and the database goes away (the consumers' account locked and
// their sessions killed) for 20 s at about 30% of the backlog. While it is
// away, and at the end, no committed offset passes a message whose event
// has no outcome (nothing skipped); once it is back, the consumers catch
// up and every case's roles are where the oracle puts them, with no more
// runs than effective-state changes and no run left running or failed.
// OUTAGE_CASES sets the number of cases (200), PROPERTY_SEED the seed.
func TestDatabaseOutageMidBacklog(t *testing.T) {
	began := time.Now()
	brokers := testenv.KafkaBrokers(t)
	cases := propEnvInt("OUTAGE_CASES", 200)
	seed := uint64(propEnvInt("PROPERTY_SEED", int(time.Now().UnixNano()%1_000_000)))
	var plans []*flagcase.Case
	var roles []demo.Role
	for i := range cases {
		c := flagcase.New(seed, i, "KB")
		plans = append(plans, c)
		roles = append(roles, c.Roles...)
	}
	db := newTestDB(t, "mysql", Plan{Roles: roles})
	userURL := db.mysqlUser(t, "c")
	user := userOf(userURL)
	topic := newTopic(t, brokers, "backlog")
	group := topic + "-group"
	s := consumerSettings(brokers, topic, group, db.url).with("DATABASE_URL", userURL)

	// A first start sets the sweep's watermarks below every save; then the
	// consumers are away while the backlog piles up.
	first := startConsumer(t, "first", s, "--sweep-interval=500ms")
	waitReady(t, first)
	eventually(t, "the sweep's watermarks set", func() (bool, string) {
		return len(first.logs("sweep watermarks set to the newest override rows; nothing moved (`consumer reconcile` catches up deliberately)")) > 0, "no watermark line yet"
	})
	first.stop()

	pub := newKPublisher(t, brokers, topic)
	save := func(o demo.Override) demo.Override { return db.save(t, o) }
	sent := 0
	send := func(o demo.Override, times int) { pub.send(t, o, times); sent += times }
	for active := true; active; {
		active = false
		for _, pc := range plans {
			if pc.Step(save, send) {
				active = true
			}
		}
	}
	log := byOffset(readAll(t, brokers, topic, sent))
	off := offsets(brokers, group, topic)

	a := startConsumer(t, "a", s, "--sweep-interval=500ms")
	b := startConsumer(t, "b", s, "--sweep-interval=500ms")
	eventually(t, "30% of the backlog handled", func() (bool, string) {
		n := len(db.outcomes(t))
		return n*10 >= sent*3, fmt.Sprintf("%d of %d messages have an outcome", n, sent)
	})
	handledAtOutage := len(db.outcomes(t))
	db.exec(t, fmt.Sprintf("ALTER USER '%s'@'%%' ACCOUNT LOCK", user))
	killed := db.killConnections(t, user)
	outageEnds := time.Now().Add(20 * time.Second)
	checks := 0
	for time.Now().Before(outageEnds) {
		require.True(t, a.running() && b.running(), "a consumer exited while the database was away: %v %v", a.err, b.err)
		requireNothingSkipped(t, db, off, log)
		checks++
		time.Sleep(500 * time.Millisecond)
	}
	handledInOutage := len(db.outcomes(t)) - handledAtOutage
	db.exec(t, fmt.Sprintf("ALTER USER '%s'@'%%' ACCOUNT UNLOCK", user))

	waitCommittedToEnd(t, off)
	requireNothingSkipped(t, db, off, log)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !allHold(plans, readPropState(t, db)) {
		time.Sleep(250 * time.Millisecond)
	}
	st := readPropState(t, db)
	var runs, changes, lost int
	for _, pc := range plans {
		require.Empty(t, mismatch(pc, st), "roles not where the oracle puts them; %s", pc.Describe(seed))
		r, ch := pc.RunsAndChanges(st.runs)
		require.LessOrEqual(t, r, ch, "more runs than effective-state changes; %s", pc.Describe(seed))
		runs, changes, lost = runs+r, changes+ch, lost+pc.Lost
	}
	require.Empty(t, db.strings(t, `SELECT id, scope_key, status FROM openedx_authz_authzcourseauthoringmigrationrun WHERE status NOT IN ('completed', 'partial_success')`),
		"every run finished")
	retries := len(a.logs("handle failed, retrying")) + len(b.logs("handle failed, retrying"))
	a.stop()
	b.stop()
	t.Logf("database outage mid-backlog: %d cases (seed %d), %d saves, %d messages (%d events lost and left to the sweep); database away 20s after %d messages, "+
		"%d sessions killed, %d messages settled while it was away (nothing committed past an event without its outcome in %d checks), %d handle retries; "+
		"%d runs for %d effective-state changes; test took %s",
		cases, seed, countSaves(plans), sent, lost, handledAtOutage, killed, handledInOutage, checks, retries, runs, changes, time.Since(began).Round(time.Millisecond))
}

func allHold(plans []*flagcase.Case, st propState) bool {
	for _, pc := range plans {
		if mismatch(pc, st) != "" {
			return false
		}
	}
	return true
}

// byOffset indexes messages by partition and offset.
func byOffset(msgs []kafka.Message) map[int]map[int64]kafka.Message {
	out := map[int]map[int64]kafka.Message{}
	for _, m := range msgs {
		if out[m.Partition] == nil {
			out[m.Partition] = map[int64]kafka.Message{}
		}
		out[m.Partition][m.Offset] = m
	}
	return out
}

// requireNothingSkipped fails when a committed offset passes a message
// whose event has no outcome row: its effect would never happen.
func requireNothingSkipped(t testing.TB, db *testDB, off consumer.Offsets, log map[int]map[int64]kafka.Message) {
	t.Helper()
	parts := make([]int, 0, len(log))
	for p := range log {
		parts = append(parts, p)
	}
	committed, err := off.Committed(context.Background(), parts)
	require.NoError(t, err)
	outs := db.outcomes(t) // read after the commits: an outcome is durable before its offset is committed
	for p, msgs := range log {
		for o, m := range msgs {
			if o >= committed[p] {
				continue
			}
			id := consumer.Header(m, "ce_id")
			_, ok := outs[id]
			require.True(t, ok, "partition %d committed to %d past offset %d (event %s) that has no outcome", p, committed[p], o, id)
		}
	}
}

// newKPublisher writes events as the LMS does (see kPublisher).
func newKPublisher(t testing.TB, brokers []string, topic string) *kPublisher {
	t.Helper()
	rc, err := events.NewRegistryClient(registryURL, events.RegistryOptions{})
	require.NoError(t, err)
	pub := &kPublisher{
		ctx:   context.Background(),
		topic: topic,
		enc:   events.NewEncoder(rc, events.EncoderOptions{}),
		w: &kafka.Writer{
			Addr:         kafka.TCP(brokers...),
			Balancer:     consumer.KeyPartitioner{},
			BatchTimeout: time.Millisecond,
			RequiredAcks: kafka.RequireAll,
		},
	}
	t.Cleanup(func() { pub.w.Close() })
	return pub
}

// TestFloodOfMalformedAndFailingEvents: 2,000 malformed or hostile
// messages of 16 kinds, spread over every partition before, between and
// after the plan's events, and the events of one course whose runs the
// database refuses (a trigger: an error no retry cures). Every malformed
// message is parked with its reason (in the parked table and on the
// dead-letter topic), the hostile flag name is ignored, the refused
// course's events that need a run are parked as handler_error, every
// offset is committed to the end, and the other scopes end where their
// flags put them.
func TestFloodOfMalformedAndFailingEvents(t *testing.T) {
	began := time.Now()
	brokers := testenv.KafkaBrokers(t)
	p := newPlan(6, 2, 3)
	db := newTestDB(t, "mysql", p)
	refused := p.Scopes[0]
	require.Equal(t, "course", refused.Type)
	db.exec(t, `CREATE TRIGGER refuse_runs BEFORE INSERT ON openedx_authz_authzcourseauthoringmigrationrun FOR EACH ROW
		BEGIN IF NEW.scope_key = '`+refused.Key+`' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'runs of this course are refused'; END IF; END`)
	topic := newTopic(t, brokers, "flood")
	group := topic + "-group"
	s := consumerSettings(brokers, topic, group, db.url)
	c := startConsumer(t, "consumer", s, "--sweep-interval=0") // the events alone
	waitReady(t, c)

	pub := newKPublisher(t, brokers, topic)
	kinds := floodKinds(t, pub)
	const flood = 2000
	want := map[string]int{} // reason (or outcome "ignored") -> messages
	writeFlood := func(from, to int) {
		var batch []kafka.Message
		for i := from; i < to; i++ {
			k := kinds[i%len(kinds)]
			m := k.make(i)
			m.Topic = topic
			batch = append(batch, m)
			want[k.want]++
		}
		require.NoError(t, pub.w.WriteMessages(context.Background(), batch...))
	}
	writeFlood(0, flood/2)
	pubs := publishNow(t, s, p.Rounds[0])
	pubs = append(pubs, publishNow(t, s, p.Rounds[1])...)
	writeFlood(flood/2, flood)
	pubs = append(pubs, publishNow(t, s, p.Rounds[2])...)

	off := offsets(brokers, group, topic)
	waitCommittedToEnd(t, off)
	outs := db.waitOutcomes(t, pubs)

	// The refused course: each of its events that needed a run is parked;
	// nothing of it moved.
	var refusedParked int
	for _, pb := range pubs {
		if pb.Scope == refused && outs[pb.EventID].Outcome == "parked" {
			refusedParked++
		}
	}
	require.Positive(t, refusedParked, "the refused course's events that needed a run are parked")
	var others []Toggle
	for _, tg := range p.Toggles() {
		if tg.Scope != refused {
			others = append(others, tg)
		}
	}
	db.expectFinal(t, p, others) // the refused course keeps its legacy roles

	got := map[string]int{}
	for _, r := range db.strings(t, `SELECT reason FROM authz_consumer_parked`) {
		got[r]++
	}
	got["ignored"] = db.count(t, `SELECT COUNT(*) FROM authz_consumer_event WHERE outcome = 'ignored'`)
	wantAll := map[string]int{consumer.ReasonHandlerError: refusedParked}
	for k, n := range want {
		wantAll[k] += n
	}
	require.Equal(t, wantAll, got, "parked rows by reason (and ignored outcomes)")
	parked := flood - want["ignored"] + refusedParked
	dead := readAll(t, brokers, topic+".parked", parked)
	byReason := map[string]int{}
	for _, m := range dead {
		byReason[consumer.Header(m, consumer.HeaderParkedReason)]++
	}
	delete(wantAll, "ignored")
	require.Equal(t, wantAll, byReason, "dead-letter copies by reason")
	c.stop()

	reasons := make([]string, 0, len(wantAll))
	for r, n := range wantAll {
		reasons = append(reasons, fmt.Sprintf("%s=%d", r, n))
	}
	sort.Strings(reasons)
	t.Logf("flood: %d malformed or hostile messages of %d kinds and %d events (%d of the refused course parked as handler_error); parked by reason: %s; %d ignored; every offset committed; test took %s",
		flood, len(kinds), len(pubs), refusedParked, strings.Join(reasons, " "), want["ignored"], time.Since(began).Round(time.Millisecond))
}

// floodKind makes the i-th message of one kind of bad input; want is the
// park reason it must get (or "ignored").
type floodKind struct {
	want string
	make func(i int) kafka.Message
}

func floodKinds(t testing.TB, pub *kPublisher) []floodKind {
	t.Helper()
	o := demo.Override{ID: 1, ScopeType: "course", ScopeKey: "course-v1:Flood+C1+2024", Org: "Flood", Flag: authz.DefaultFlag,
		Enabled: true, Choice: "on", ChangeDate: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)}
	avroMsg, err := pub.enc.Encode(pub.ctx, pub.topic, o.Event())
	require.NoError(t, err)
	jsonMsg, err := pub.enc.EncodeJSON(pub.topic, o.Event())
	require.NoError(t, err)
	base := func(m events.Message, i int) kafka.Message {
		km := consumer.KafkaMessage(m)
		km.Key = fmt.Appendf(nil, "flood-%d", i) // spread over the partitions
		return withCEID(km, fmt.Sprintf("flood-%d", i))
	}
	withJSON := func(mutate func(map[string]any)) func(int) kafka.Message {
		return func(i int) kafka.Message {
			v := map[string]any{
				"waffle_flag": authz.DefaultFlag, "scope_type": "course", "scope_key": o.ScopeKey, "org": o.Org,
				"enabled": true, "override_choice": "on", "record_id": 1, "change_date": "2024-05-01T12:00:00Z", "changed_by": "",
			}
			mutate(v)
			body, err := json.Marshal(map[string]any{"override": v})
			require.NoError(t, err)
			m := base(jsonMsg, i)
			m.Value = body
			return m
		}
	}
	withAvro := func(mutate func(*kafka.Message)) func(int) kafka.Message {
		return func(i int) kafka.Message {
			m := base(avroMsg, i)
			m.Value = append([]byte(nil), m.Value...)
			mutate(&m)
			return m
		}
	}
	return []floodKind{
		{events.ReasonFraming, withAvro(func(m *kafka.Message) { m.Value = []byte("not avro") })},
		{events.ReasonUnknownSchemaID, withAvro(func(m *kafka.Message) { m.Value[3], m.Value[4] = 0x7f, 0x7f })},
		{events.ReasonBadAvro, withAvro(func(m *kafka.Message) { m.Value = m.Value[:8] })},
		{events.ReasonBadCEType, withAvro(func(m *kafka.Message) { setHeader(m, "ce_type", events.EventTypeBase+".v2") })},
		{events.ReasonBadContentType, withAvro(func(m *kafka.Message) { setHeader(m, "content-type", "text/plain") })},
		{events.ReasonBadJSON, func(i int) kafka.Message { m := withJSON(func(map[string]any) {})(i); m.Value = []byte("{"); return m }},
		{events.ReasonMissingField, withJSON(func(v map[string]any) { delete(v, "record_id") })},
		{events.ReasonBadScopeType, withJSON(func(v map[string]any) { v["scope_type"] = "global" })},
		{events.ReasonBadCourseKey, withJSON(func(v map[string]any) { v["scope_key"] = "course-v1:nonsense" })},
		{events.ReasonScopeOrgMismatch, withJSON(func(v map[string]any) { v["org"] = "Other" })},
		{events.ReasonBadRecordID, withJSON(func(v map[string]any) { v["record_id"] = -1 })},
		{events.ReasonBadChangeDate, withJSON(func(v map[string]any) { v["change_date"] = "yesterday" })},
		{consumer.ReasonBadEventID, withAvro(func(m *kafka.Message) { setHeader(m, "ce_id", "nul\x00"+consumer.Header(*m, "ce_id")) })},
		{consumer.ReasonBadEventID, withAvro(func(m *kafka.Message) {
			setHeader(m, "ce_id", strings.Repeat("x", 10_000)+consumer.Header(*m, "ce_id"))
		})},
		{consumer.ReasonBadEventID, withAvro(func(m *kafka.Message) { setHeader(m, "ce_id", "\xff\xfe"+consumer.Header(*m, "ce_id")) })},
		{"ignored", withJSON(func(v map[string]any) { v["waffle_flag"] = strings.Repeat("f", 10_000) })},
	}
}

// withCEID returns m with its ce_id header set to id.
func withCEID(m kafka.Message, id string) kafka.Message {
	m.Headers = append([]kafka.Header(nil), m.Headers...)
	setHeader(&m, "ce_id", id)
	return m
}

func setHeader(m *kafka.Message, key, value string) {
	for i := range m.Headers {
		if m.Headers[i].Key == key {
			m.Headers[i].Value = []byte(value)
			return
		}
	}
	m.Headers = append(m.Headers, kafka.Header{Key: key, Value: []byte(value)})
}

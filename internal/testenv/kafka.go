package testenv

import (
	"context"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// ReadMessages reads n messages with a reader made from cfg, failing the
// test when they have not all arrived within limit.
func ReadMessages(t testing.TB, cfg kafka.ReaderConfig, n int, limit time.Duration) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(cfg)
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	out := make([]kafka.Message, 0, n)
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("read %s: %d of %d messages: %v", cfg.Topic, len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}

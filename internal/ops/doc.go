// Package ops is what a platform sees of the service: Prometheus metrics
// named authz_consumer_* (Metrics) and the HTTP server with /healthz,
// /readyz and /metrics (Server). It knows nothing of Kafka or the database:
// the readiness checks are functions handed in by cmd/consumer.
package ops

// Package kafka holds the real-Kafka tier of the tests: the built
// `consumer` binary runs as separate processes against a real Apache Kafka
// 4 broker in KRaft mode and a real database, and the tests check the
// delivery promises from the outside: events published with `consumer publish`
// produce the expected runs; two consumers of one group share a 6-partition
// topic and the survivor of a SIGKILL finishes every event without a second
// run; `consumer replay` re-reads and changes nothing; a broker that is down
// or goes away, a database that goes away mid-run and SIGTERM during a run
// lose, skip and repeat nothing; malformed messages are parked and block
// nothing; a consumer that lags behind the saves, or starts before its
// topic exists, still ends where the flag says; and the reconciliation
// property holds for random saves whose events are reordered, duplicated and
// lost (healed by the binary's sweep), then replayed.
//
// The package has only tests. They need the servers the repo scripts start:
//
//	scripts/kafka.sh start && eval "$(scripts/kafka.sh env)"
//	scripts/services.sh start && eval "$(scripts/services.sh env)"
//
// The broker-outage test starts a private broker of its own from the jars
// scripts/kafka.sh caches, so it can stop and restart it.
package kafka

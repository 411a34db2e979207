"""
End-to-end settings: the test LMS of tests/settings.py, publishing through the real
edx-event-bus-kafka producer to a real Kafka broker and a Confluent-compatible schema registry.

Environment (scripts/python.sh e2e sets both): AUTHZ_TEST_KAFKA_BROKERS (scripts/kafka.sh env),
AUTHZ_TEST_SCHEMA_REGISTRY_URL (the Go dev-registry, or any Confluent-compatible registry).
"""
import os
import time

from tests.settings import *  # noqa: F401,F403  pylint: disable=wildcard-import,unused-wildcard-import

EVENT_BUS_PRODUCER = "edx_event_bus_kafka.create_producer"
EVENT_BUS_KAFKA_BOOTSTRAP_SERVERS = os.environ.get("AUTHZ_TEST_KAFKA_BROKERS") or None
EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL = os.environ.get("AUTHZ_TEST_SCHEMA_REGISTRY_URL") or None
EVENT_BUS_KAFKA_POLL_INTERVAL_SEC = 0.2
# A fresh topic per run, so a re-run never reads an earlier run's messages.
EVENT_BUS_TOPIC_PREFIX = os.environ.get("AUTHZ_E2E_TOPIC_PREFIX") or f"e2e{os.getpid()}x{int(time.time())}"

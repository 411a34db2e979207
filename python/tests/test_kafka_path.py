"""
A saved override through the real edx-event-bus-kafka producer (KafkaEventProducer, confluent-kafka
AvroSerializer): the bytes it hands to the Kafka client decode to the saved row, and a producer
that cannot reach its schema registry does not break the save.
"""
import logging
import socket
import zlib

import pytest
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import MockSchemaRegistryClient
from django.db import transaction
from edx_event_bus_kafka.internal import producer as kafka_producer
from openedx_events.event_bus import get_producer
from opaque_keys.edx.keys import CourseKey

from tests import recording
from tests.waffle_utils.models import WaffleFlagCourseOverrideModel
from tests.wire import decode

pytestmark = pytest.mark.django_db(transaction=True)

KAFKA_PRODUCERS = []


def make_kafka_producer_with_recorder():
    """EVENT_BUS_PRODUCER factory: edx-event-bus-kafka's producer around a recording client."""
    producer = kafka_producer.KafkaEventProducer(recording.RecordingKafkaProducer())
    KAFKA_PRODUCERS.append(producer)
    return producer


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_saved_override_becomes_confluent_framed_avro(settings, monkeypatch):
    registry = MockSchemaRegistryClient({"url": "mock://tests"})
    monkeypatch.setattr(kafka_producer, "get_schema_registry_client", lambda: registry)
    settings.EVENT_BUS_PRODUCER = "tests.test_kafka_path.make_kafka_producer_with_recorder"
    settings.EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL = "mock://tests"
    with transaction.atomic():
        row = WaffleFlagCourseOverrideModel.objects.create(
            waffle_flag="authz.enable_course_authoring", course_id=CourseKey.from_string("course-v1:MITx+6.002x+2025"),
            override_choice="off", enabled=True)
    sent = KAFKA_PRODUCERS[-1].producer.sent
    assert len(sent) == 1
    msg = sent[0]
    assert msg["topic"] == "test-waffle-flag-override-lifecycle"
    headers = {k: v.decode() for k, v in msg["headers"].items()}
    schemas = {str(i): registry.get_schema(i).schema_str for i in (1, 2)}
    key, fields = decode(msg["key"], msg["value"], headers, schemas)
    row.refresh_from_db()
    assert key == "course-v1:MITx+6.002x+2025"
    assert fields == {
        "waffle_flag": "authz.enable_course_authoring", "scope_type": "course",
        "scope_key": "course-v1:MITx+6.002x+2025", "org": "MITx", "enabled": True, "override_choice": "off",
        "record_id": row.pk, "change_date": row.change_date.isoformat(), "changed_by": "",
    }
    assert headers["ce_type"] == "org.openedx.platform.waffle_flag_override.changed.v1"
    assert headers["ce_time"] == row.change_date.isoformat()
    assert headers["ce_source"] == "openedx/lms/web"
    assert msg["key"][:5] == b"\x00\x00\x00\x00\x01" and msg["value"][:5] == b"\x00\x00\x00\x00\x02"
    assert 0 <= zlib.crc32(msg["key"]) % 6 < 6


def test_unreachable_registry_does_not_break_the_save(settings, caplog):
    """The real create_producer(): the registry refuses connections; the row is saved, the error is logged
    by edx-event-bus-kafka with the event data (which holds the override id)."""
    settings.EVENT_BUS_PRODUCER = "edx_event_bus_kafka.create_producer"
    settings.EVENT_BUS_KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{closed_port()}"
    settings.EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL = f"http://127.0.0.1:{closed_port()}"
    with caplog.at_level(logging.ERROR):
        with transaction.atomic():
            row = WaffleFlagCourseOverrideModel.objects.create(
                waffle_flag="authz.enable_course_authoring", course_id=CourseKey.from_string("course-v1:A+B+C"),
                enabled=True)
        producer = get_producer()
        assert isinstance(producer, kafka_producer.KafkaEventProducer)
        producer.prepare_for_shutdown()  # nothing was queued: returns at once
    assert WaffleFlagCourseOverrideModel.objects.filter(pk=row.pk).exists()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(f'"record_id": {row.pk}' in m for m in errors), errors

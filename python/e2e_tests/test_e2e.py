"""
End to end: a saved override -> the plugin -> openedx-events -> edx-event-bus-kafka -> a real Kafka
broker and schema registry -> consumed back with confluent-kafka: the same fields, the scope key as
the record key, the partition librdkafka's default partitioner picks (crc32 of the framed key).

The consumed messages are written, in the test vector format, to AUTHZ_E2E_CAPTURED (default
.cache/python-e2e/captured.json) for the Go decoder to check.
"""
import json
import os
import time
import urllib.error
import urllib.request
import uuid
import zlib

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from edx_event_bus_kafka.internal.config import get_full_topic
from openedx_events.event_bus import get_producer
from opaque_keys.edx.keys import CourseKey

from authz_flag_events.signals import EVENT_TYPE
from tests.waffle_utils.models import WaffleFlagCourseOverrideModel, WaffleFlagOrgOverrideModel
from tests.wire import REPO, VALUE_AVSC, decode, load_json, load_vectors

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PARTITIONS = 6
BASE_TOPIC = "waffle-flag-override-lifecycle"
CAPTURED = os.environ.get("AUTHZ_E2E_CAPTURED") or os.path.join(REPO, ".cache", "python-e2e", "captured.json")
START_KAFKA = 'scripts/kafka.sh start && eval "$(scripts/kafka.sh env)" (scripts/python.sh e2e does the eval)'
START_REGISTRY = ("scripts/python.sh e2e (it runs `go run ./cmd/consumer dev-registry`), or set "
                  "AUTHZ_TEST_SCHEMA_REGISTRY_URL to a Confluent-compatible registry")


def brokers():
    value = settings.EVENT_BUS_KAFKA_BOOTSTRAP_SERVERS
    if not value:
        pytest.fail(f"AUTHZ_TEST_KAFKA_BROKERS is not set: start Kafka with {START_KAFKA}")
    return value


def registry_get(path):
    url = settings.EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL
    if not url:
        pytest.fail(f"AUTHZ_TEST_SCHEMA_REGISTRY_URL is not set: start a registry with {START_REGISTRY}")
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/{path}", timeout=10) as resp:
            return json.loads(resp.read())
    except (urllib.error.URLError, OSError) as exc:
        pytest.fail(f"schema registry {url} unreachable ({exc}): start one with {START_REGISTRY}")


@pytest.fixture(scope="module")
def admin():
    client = AdminClient({"bootstrap.servers": brokers()})
    try:
        client.list_topics(timeout=15)
    except KafkaException as exc:
        pytest.fail(f"Kafka at {brokers()} unreachable ({exc}): start it with {START_KAFKA}")
    registry_get("subjects")
    return client


def create_topic(admin, name):
    for fut in admin.create_topics([NewTopic(name, num_partitions=PARTITIONS, replication_factor=1)]).values():
        fut.result(timeout=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        md = admin.list_topics(name, timeout=10).topics.get(name)
        if md is not None and md.error is None and len(md.partitions) == PARTITIONS:
            return
    pytest.fail(f"topic {name} did not get {PARTITIONS} partitions")


def consume_all(topic, want, timeout=60):
    consumer = Consumer({"bootstrap.servers": brokers(), "group.id": f"e2e-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < want and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                raise KafkaException(msg.error())
            got.append(msg)
        total = sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    for p in range(PARTITIONS))
        return got, total
    finally:
        consumer.close()


def expected_fields(row, scope_type):
    if scope_type == "course":
        scope_key, org = str(row.course_id), row.course_id.org
    else:
        scope_key = org = row.org
    return {
        "waffle_flag": row.waffle_flag, "scope_type": scope_type, "scope_key": scope_key, "org": org,
        "enabled": row.enabled, "override_choice": row.override_choice, "record_id": row.pk,
        "change_date": row.change_date.isoformat(),
        "changed_by": row.changed_by.username if row.changed_by_id else "",
    }


def test_saved_overrides_reach_kafka_and_decode_to_the_same_fields(admin, caplog):
    topic = get_full_topic(BASE_TOPIC)
    create_topic(admin, topic)
    staff = User.objects.create(username="admin")
    unicode_user = User.objects.create(username="José_管理者")
    flag = "authz.enable_course_authoring"

    rows = []
    with transaction.atomic():
        rows.append((WaffleFlagCourseOverrideModel.objects.create(
            waffle_flag=flag, course_id=CourseKey.from_string("course-v1:OpenedX+DemoX+2025"),
            override_choice="on", enabled=True, changed_by=staff), "course"))
    with transaction.atomic():
        rows.append((WaffleFlagCourseOverrideModel.objects.create(
            waffle_flag=flag, course_id=CourseKey.from_string("course-v1:OpenedX+DemoX+2025"),
            override_choice="off", enabled=True, changed_by=staff), "course"))
    rows.append((WaffleFlagOrgOverrideModel.objects.create(
        waffle_flag=flag, org="MITx", override_choice="on", enabled=True, changed_by=unicode_user), "org"))
    rows.append((WaffleFlagCourseOverrideModel.objects.create(
        waffle_flag=flag, course_id=CourseKey.from_string("course-v1:MITx+6.002x+2025_T2"),
        override_choice="on", enabled=False), "course"))
    # not watched: must not be published
    WaffleFlagOrgOverrideModel.objects.create(waffle_flag="some_app.other_flag", org="MITx", enabled=True)

    producer = get_producer()
    remaining = producer.producer.flush(30)
    assert remaining == 0, f"{remaining} messages not delivered to {brokers()}"
    assert not [r for r in caplog.records if r.name.startswith("edx_event_bus_kafka") and r.levelname == "ERROR"]

    messages, total = consume_all(topic, len(rows))
    assert len(messages) == len(rows) and total == len(rows), (len(messages), total)

    value_ids, captured = set(), []
    by_record = {(scope, row.pk): (row, scope) for row, scope in rows}
    for msg in messages:
        headers = {k: v.decode("utf-8") for k, v in msg.headers()}
        key, value = msg.key(), msg.value()
        ids = {int.from_bytes(key[1:5], "big"), int.from_bytes(value[1:5], "big")}
        schemas = {str(i): registry_get(f"schemas/ids/{i}")["schema"] for i in ids}
        scope_key, fields = decode(key, value, headers, schemas)
        row, scope = by_record[(fields["scope_type"], fields["record_id"])]
        row.refresh_from_db()
        expected = expected_fields(row, scope)
        assert fields == expected
        assert scope_key == expected["scope_key"]
        assert msg.partition() == zlib.crc32(key) % PARTITIONS, "not librdkafka's consistent_random partition"
        assert headers["ce_type"] == EVENT_TYPE
        assert headers["content-type"] == headers["ce_datacontenttype"] == "application/avro"
        assert headers["ce_source"] == "openedx/lms/web" and headers["ce_specversion"] == "1.0"
        assert headers["ce_time"] == expected["change_date"]
        uuid.UUID(headers["ce_id"])
        value_ids.add(int.from_bytes(value[1:5], "big"))
        captured.append({
            "name": f"e2e_{scope}_{row.pk}", "topic": msg.topic(), "key_hex": key.hex(), "value_hex": value.hex(),
            "headers": headers, "schemas": schemas, "partition_6": msg.partition(), "offset": msg.offset(),
            "expected": expected, "expected_key": scope_key,
        })

    # One scope's events: one partition, in save order.
    demo = [c for c in captured if c["expected_key"] == "course-v1:OpenedX+DemoX+2025"]
    assert len({c["partition_6"] for c in demo}) == 1
    assert [c["expected"]["override_choice"] for c in sorted(demo, key=lambda c: c["offset"])] == ["on", "off"]

    # What the producer auto-registered (TopicRecordNameStrategy) and the registry returns.
    subjects = set(registry_get("subjects"))
    # confluent-kafka names the key's subject after the primitive type: fastavro drops the
    # "name" of {"name": "scope_key", "type": "string"}, so the record name is "string".
    assert {f"{topic}-string", f"{topic}-{EVENT_TYPE}.CloudEvent"} == {s for s in subjects if s.startswith(topic)}
    assert len(value_ids) == 1
    assert json.loads(registry_get(f"schemas/ids/{value_ids.pop()}")["schema"]) == load_json(VALUE_AVSC)

    os.makedirs(os.path.dirname(CAPTURED), exist_ok=True)
    with open(CAPTURED, "w", encoding="utf-8") as fh:
        json.dump(sorted(captured, key=lambda c: c["name"]), fh, indent=2, ensure_ascii=False)
        fh.write("\n")


def test_vector_partitions_match_a_real_librdkafka_producer(admin):
    """partition_6 in schemas/testdata/vectors.json is what librdkafka's default partitioner picks."""
    topic = get_full_topic("vector-partitions")
    create_topic(admin, topic)
    vectors = [v for v in load_vectors() if v["key_hex"]]
    producer = Producer({"bootstrap.servers": brokers()})
    results = []
    for v in vectors:
        producer.produce(topic, key=bytes.fromhex(v["key_hex"]), value=bytes.fromhex(v["value_hex"]),
                         headers=list(v["headers"].items()),
                         on_delivery=lambda err, msg, name=v["name"]: results.append((name, err, msg.partition())))
    assert producer.flush(30) == 0
    by_name = {name: (err, part) for name, err, part in results}
    for v in vectors:
        err, part = by_name[v["name"]]
        assert err is None, (v["name"], err)
        assert part == v["partition_6"], (v["name"], part, v["partition_6"])

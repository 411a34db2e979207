#!/usr/bin/env python
"""
Generate schemas/testdata/vectors.json: the wire test vectors both the Python producer tests and
the Go consumer tests check against.

Run with the plugin's venv:  scripts/python.sh vectors

Valid Avro vectors go through the real production code path: edx-event-bus-kafka's
``KafkaEventProducer.send`` (header building, key extraction with ``override.scope_key``,
openedx-events' ``AvroSignalSerializer`` schema + ``to_dict``, confluent-kafka's
``AvroSerializer`` with ``topic_record_subject_name_strategy`` and Confluent framing). Only two
things are replaced: confluent-kafka's ``Producer`` by an object that records what ``produce()``
was given (no broker), and the schema registry client by confluent-kafka's own in-memory
``MockSchemaRegistryClient`` (it assigns ids 1, 2, 3... in registration order, as a fresh
registry does). Event metadata (ce_id, ce_time, sourcehost) is fixed so the output is stable.

Malformed vectors are derived from those bytes (framing, unknown schema id), produced through
the same path with bad field values (the data class does not validate), or serialized with
confluent-kafka's AvroSerializer under a different writer schema (unresolvable schemas).

Each vector: name, topic, key_hex, value_hex, headers, schemas (id -> schema string, what the
registry returns for GET /schemas/ids/{id}), partition_6 (librdkafka consistent_random:
crc32(key bytes as sent) % 6), and either expected (decoded fields + expected_key) or
expected_error (framing | unknown_schema_id | unresolvable_schema | missing_field | bad_ce_type |
bad_scope_type | bad_course_key | scope_org_mismatch).
"""
import copy
import json
import os
import sys
import uuid
import zlib
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # python/ (the plugin package)

import django  # noqa: E402
from django.conf import settings  # noqa: E402

TOPIC_PREFIX = "dev"
BASE_TOPIC = "waffle-flag-override-lifecycle"

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=[],
        EVENTS_SERVICE_NAME="lms",
        EVENT_BUS_TOPIC_PREFIX=TOPIC_PREFIX,
        EVENT_BUS_KAFKA_SCHEMA_REGISTRY_URL="mock://vectors",
        EVENT_BUS_KAFKA_AUDIT_LOGGING_ENABLED=False,
        EVENT_BUS_KAFKA_POLL_INTERVAL_SEC=3600,
        USE_TZ=True,
    )
    django.setup()

import attr  # noqa: E402
import openedx_events  # noqa: E402
from confluent_kafka.schema_registry import Schema, topic_record_subject_name_strategy  # noqa: E402
from confluent_kafka.schema_registry.avro import AvroSerializer  # noqa: E402
from confluent_kafka.schema_registry._sync.mock_schema_registry_client import MockSchemaRegistryClient  # noqa: E402
from confluent_kafka.serialization import MessageField, SerializationContext  # noqa: E402
from edx_event_bus_kafka.internal import producer as kafka_producer  # noqa: E402
from edx_event_bus_kafka.internal.utils import _get_headers_from_metadata  # noqa: E402
from opaque_keys import InvalidKeyError  # noqa: E402
from opaque_keys.edx.keys import CourseKey  # noqa: E402
from openedx_events.data import EventsMetadata  # noqa: E402
from openedx_events.event_bus.avro.serializer import AvroSignalSerializer  # noqa: E402
from openedx_events.tooling import OpenEdxPublicSignal  # noqa: E402

from authz_flag_events.data import WaffleFlagOverrideData  # noqa: E402
from authz_flag_events.signals import EVENT_KEY_FIELD, WAFFLE_FLAG_OVERRIDE_CHANGED  # noqa: E402

FULL_TOPIC = f"{TOPIC_PREFIX}-{BASE_TOPIC}"
CE_TIME = datetime(2025, 6, 1, 10, 15, 31, 250000, tzinfo=timezone.utc)
SOURCEHOST = "lms-vectors"
FLAG = "authz.enable_course_authoring"
PARTITIONS = 6

# A second signal, same data, next major version: what a future v2 producer would send.
V2_SIGNAL = OpenEdxPublicSignal(
    event_type="org.openedx.platform.waffle_flag_override.changed.v2",
    data={"override": WaffleFlagOverrideData},
)


class RecordingProducer:
    """Stands in for confluent_kafka.Producer: records produce() calls, needs no broker."""

    def __init__(self):
        self.sent = []

    def produce(self, topic, key=None, value=None, headers=None, on_delivery=None):
        self.sent.append({"topic": topic, "key": key, "value": value, "headers": dict(headers)})

    def poll(self, timeout=0):  # pylint: disable=unused-argument
        return 0

    def flush(self, timeout=-1):  # pylint: disable=unused-argument
        return 0


REGISTRY = MockSchemaRegistryClient({"url": "mock://vectors"})
kafka_producer.get_schema_registry_client = lambda: REGISTRY  # the only seam replaced
RECORDER = RecordingProducer()
PRODUCER = kafka_producer.KafkaEventProducer(RECORDER)


def ce_id(name):
    return uuid.uuid5(uuid.NAMESPACE_URL, f"authz-flag-consumer/vectors/{name}")


def metadata(name, signal):
    return EventsMetadata(
        event_type=signal.event_type,
        id=ce_id(name),
        time=CE_TIME,
        sourcehost=SOURCEHOST,
        minorversion=signal.minor_version,
    )


def override(**fields):
    base = dict(
        waffle_flag=FLAG,
        scope_type="course",
        scope_key="course-v1:OpenedX+DemoX+2025",
        org="OpenedX",
        enabled=True,
        override_choice="on",
        record_id=41,
        change_date=datetime(2025, 6, 1, 10, 15, 30, 123456, tzinfo=timezone.utc),
        changed_by="admin",
    )
    base.update(fields)
    return WaffleFlagOverrideData(**base)


def produce(name, data, signal=WAFFLE_FLAG_OVERRIDE_CHANGED):
    """Send through edx-event-bus-kafka exactly as the plugin does; return the recorded message."""
    before = len(RECORDER.sent)
    PRODUCER.send(
        signal=signal,
        topic=BASE_TOPIC,
        event_key_field=EVENT_KEY_FIELD,
        event_data={"override": data},
        event_metadata=metadata(name, signal),
    )
    if len(RECORDER.sent) != before + 1:
        raise RuntimeError(f"{name}: KafkaEventProducer.send produced nothing (see the log above)")
    return RECORDER.sent[-1]


def schema_id_of(framed):
    assert framed[0] == 0, framed[:5]
    return int.from_bytes(framed[1:5], "big")


def registry_schemas(*framed_values):
    out = {}
    for framed in framed_values:
        sid = schema_id_of(framed)
        out[str(sid)] = REGISTRY.get_schema(sid).schema_str
    return out


def decoded_fields(data):
    """The fields as they appear on the wire (openedx-events' to_dict of the data class)."""
    return AvroSignalSerializer(WAFFLE_FLAG_OVERRIDE_CHANGED).to_dict({"override": data})["override"]


def partition_of(key):
    return zlib.crc32(key) % PARTITIONS


def vector(name, msg, *, expected=None, expected_error=None, schemas=None, note=None, value=None,
           headers=None, key=None):
    key = msg["key"] if key is None else key
    value = msg["value"] if value is None else value
    hdrs = {k: v.decode("utf-8") for k, v in msg["headers"].items()} if headers is None else headers
    if schemas is None:
        framed = [b for b in (key, value) if len(b) >= 5 and b[0] == 0]
        schemas = registry_schemas(*framed)
    out = {
        "name": name,
        "topic": msg["topic"],
        "key_hex": key.hex(),
        "value_hex": value.hex(),
        "headers": hdrs,
        "schemas": schemas,
        "partition_6": partition_of(key),
    }
    if note:
        out["note"] = note
    if expected is not None:
        out["expected"] = expected
        out["expected_key"] = expected["scope_key"]
    if expected_error is not None:
        out["expected_error"] = expected_error
    return out


def valid(name, data, note=None):
    if data.scope_type == "course":
        key = CourseKey.from_string(data.scope_key)
        assert key.org == data.org, (name, key.org, data.org)
    msg = produce(name, data)
    return vector(name, msg, expected=decoded_fields(data), note=note), msg


def long_course_key():
    prefix, run = "course-v1:LongOrgX+", "+2025_T1"
    key = prefix + "C" * (255 - len(prefix) - len(run)) + run
    assert len(key) == 255
    CourseKey.from_string(key)
    return key


def canonical_schema(schema_str):
    """
    What a real Confluent Schema Registry returns for a schema it stored: Avro Java's
    Schema.toString() (compact JSON; a primitive with extra attributes such as our key's
    {"name": "scope_key", "type": "string"} becomes just "string").
    """
    obj = json.loads(schema_str)
    if isinstance(obj, dict) and obj.get("type") in ("string", "long", "int", "boolean"):
        return json.dumps(obj["type"])

    def order(node, is_field=False):
        if isinstance(node, dict):
            keys = (["name", "type", "doc", "default"] if is_field else
                    ["type", "name", "namespace", "doc", "fields", "items", "values"])
            out = {k: node[k] for k in keys if k in node}
            out.update({k: v for k, v in node.items() if k not in keys})
            if isinstance(out.get("type"), (dict, list)):
                out["type"] = order(out["type"])
            if "fields" in out:
                out["fields"] = [order(f, is_field=True) for f in out["fields"]]
            return out
        if isinstance(node, list):
            return [order(x) for x in node]
        return node
    return json.dumps(order(obj), separators=(",", ":"), ensure_ascii=False)


def avro_with_writer_schema(writer_schema, record):
    """Serialize with confluent-kafka's AvroSerializer under another writer schema (registered too)."""
    ser = AvroSerializer(
        REGISTRY, json.dumps(writer_schema, sort_keys=True),
        conf={"subject.name.strategy": topic_record_subject_name_strategy},
    )
    return ser(record, SerializationContext(FULL_TOPIC, MessageField.VALUE))


def main(out_path):
    vectors = []

    course_on, course_on_msg = valid("course_on", override())
    vectors.append(course_on)
    vectors.append(valid("course_off", override(override_choice="off", record_id=42,
                                                changed_by="staff_user"))[0])
    vectors.append(valid("course_override_disabled", override(
        scope_key="course-v1:edX+DemoX+Demo_Course", org="edX", enabled=False, record_id=43),
                         note="a disabled override row (enabled=false): the scope has no override")[0])
    vectors.append(valid("org_on", override(scope_type="org", scope_key="OpenedX", org="OpenedX",
                                            record_id=7))[0])
    vectors.append(valid("org_off_large_record_id", override(
        scope_type="org", scope_key="MITx", org="MITx", override_choice="off",
        record_id=3_000_000_000), note="record_id beyond 32 bits (Avro long)")[0])
    vectors.append(valid("unicode_changed_by", override(
        scope_key="course-v1:UniX+Eco101+2025", org="UniX", record_id=44,
        changed_by="José_管理者"))[0])
    vectors.append(valid("unicode_course_key", override(
        scope_key="course-v1:UniX+Éco_管理+2025", org="UniX", record_id=60),
        note="opaque-keys allows any Unicode word character (\\w) in key parts")[0])
    vectors.append(valid("slash_course_key", override(
        scope_key="OpenedX/DemoX/2025", org="OpenedX", record_id=61),
        note="old slash-separated course key: a valid event the consumer ignores (not course-v1)")[0])
    vectors.append(valid("empty_changed_by", override(
        scope_key="course-v1:MITx+6.002x+2025_T2", org="MITx", record_id=45, changed_by=""),
                         note="changed_by empty: the row's changed_by was null")[0])
    vectors.append(valid("course_key_255_chars", override(
        scope_key=long_course_key(), org="LongOrgX", record_id=46))[0])
    vectors.append(valid("other_flag", override(waffle_flag="some_app.other_flag", record_id=47),
                         note="valid event for a flag the consumer does not act on")[0])
    vectors.append(valid("change_date_whole_seconds", override(
        record_id=48, change_date=datetime(2025, 12, 31, 23, 59, 59, tzinfo=timezone.utc)),
        note="change_date without microseconds: isoformat gives 2025-12-31T23:59:59+00:00")[0])

    # Same bytes as course_on, with the schemas as a real Confluent registry would return them.
    canonical = copy.deepcopy(course_on)
    canonical["name"] = "course_on_registry_canonical_schemas"
    canonical["note"] = ("same message as course_on; schemas as a real Confluent Schema Registry returns "
                         "them (Avro Java toString: key schema is just \"string\")")
    canonical["schemas"] = {sid: canonical_schema(s) for sid, s in course_on["schemas"].items()}
    vectors.append(canonical)

    # JSON form: no registry, content-type application/json, value = openedx-events' to_dict
    # of the event data ({"override": {...}}), key = the scope key's UTF-8 bytes.
    json_data = override(record_id=49, override_choice="off")
    json_meta_headers = {k: v.decode("utf-8") for k, v in
                         _get_headers_from_metadata(metadata("json_course_off", WAFFLE_FLAG_OVERRIDE_CHANGED)).items()}
    json_meta_headers["content-type"] = "application/json"
    json_meta_headers["ce_datacontenttype"] = "application/json"
    json_value = json.dumps(AvroSignalSerializer(WAFFLE_FLAG_OVERRIDE_CHANGED).to_dict({"override": json_data}),
                            ensure_ascii=False).encode("utf-8")
    json_msg = {"topic": FULL_TOPIC, "key": json_data.scope_key.encode("utf-8"), "value": json_value,
                "headers": {}}
    vectors.append(vector("json_course_off", json_msg, headers=json_meta_headers, schemas={},
                          expected=decoded_fields(json_data),
                          note="JSON form: value is {\"override\": {...}}, key is the raw scope key"))

    # ---- malformed ----
    good_value = course_on_msg["value"]
    vectors.append(vector("framing_bad_magic", course_on_msg, value=b"\x01" + good_value[1:],
                          expected_error="framing", note="magic byte 1 instead of 0"))
    vectors.append(vector("framing_too_short", course_on_msg, value=good_value[:3],
                          expected_error="framing", note="3 bytes: shorter than the 5-byte header"))
    vectors.append(vector("framing_empty_value", course_on_msg, value=b"",
                          expected_error="framing", note="empty value (tombstone) with Avro content type"))
    vectors.append(vector("unknown_schema_id", course_on_msg,
                          value=b"\x00" + (99).to_bytes(4, "big") + good_value[5:],
                          schemas=course_on["schemas"], expected_error="unknown_schema_id",
                          note="schema id 99 is not in the registry (schemas has no 99)"))

    value_schema = json.loads(AvroSignalSerializer(WAFFLE_FLAG_OVERRIDE_CHANGED).schema_string())
    rec = {"override": decoded_fields(override(record_id=50))}

    bad_type = copy.deepcopy(value_schema)
    for f in bad_type["fields"][0]["type"]["fields"]:
        if f["name"] == "record_id":
            f["type"] = "string"
    bad_rec = copy.deepcopy(rec)
    bad_rec["override"]["record_id"] = "fifty"
    bad_val = avro_with_writer_schema(bad_type, bad_rec)
    vectors.append(vector("writer_record_id_string", course_on_msg, value=bad_val,
                          expected_error="unresolvable_schema",
                          note="writer schema has record_id: string; reader has long (no promotion)"))

    no_field = copy.deepcopy(value_schema)
    no_field["fields"][0]["type"]["fields"] = [
        f for f in no_field["fields"][0]["type"]["fields"] if f["name"] != "changed_by"]
    nf_rec = copy.deepcopy(rec)
    del nf_rec["override"]["changed_by"]
    nf_val = avro_with_writer_schema(no_field, nf_rec)
    vectors.append(vector("writer_without_changed_by", course_on_msg, value=nf_val,
                          expected_error="unresolvable_schema",
                          note="writer schema lacks changed_by and the reader has no default for it"))

    json_missing = json.loads(json_value)
    del json_missing["override"]["record_id"]
    vectors.append(vector("json_missing_record_id", json_msg, headers=json_meta_headers, schemas={},
                          value=json.dumps(json_missing).encode("utf-8"), expected_error="missing_field",
                          note="JSON form without override.record_id"))

    v2 = produce("ce_type_v2", override(record_id=51), signal=V2_SIGNAL)
    vectors.append(vector("ce_type_v2", v2, expected_error="bad_ce_type",
                          note="ce_type ...changed.v2 (unknown major version); schema namespace v2"))

    bad_scope = produce("bad_scope_type", override(scope_type="site", record_id=52))
    vectors.append(vector("bad_scope_type", bad_scope, expected_error="bad_scope_type",
                          note="scope_type 'site'"))

    bad_key = "course-v1:OpenedX+DemoX"
    try:
        CourseKey.from_string(bad_key)
        raise AssertionError(f"{bad_key} parsed as a course key")
    except InvalidKeyError:
        pass
    bk = produce("bad_course_key", override(scope_key=bad_key, record_id=53))
    vectors.append(vector("bad_course_key", bk, expected_error="bad_course_key",
                          note="course-v1 key without a run"))

    mm = produce("course_org_mismatch", override(org="HarvardX", record_id=54))
    vectors.append(vector("course_org_mismatch", mm, expected_error="scope_org_mismatch",
                          note="course key org OpenedX, org field HarvardX"))
    mo = produce("org_scope_org_mismatch", override(scope_type="org", scope_key="OpenedX", org="MITx",
                                                    record_id=55))
    vectors.append(vector("org_scope_org_mismatch", mo, expected_error="scope_org_mismatch",
                          note="org scope OpenedX, org field MITx"))

    names = [v["name"] for v in vectors]
    assert len(names) == len(set(names)), names
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(vectors, fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    versions = ", ".join(f"{d} {_version(d)}" for d in
                         ("openedx-events", "edx-event-bus-kafka", "confluent-kafka", "fastavro"))
    print(f"produced with {versions}")
    print(f"wrote {len(vectors)} vectors to {out_path}")


def _version(dist):
    from importlib.metadata import version
    return version(dist)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "schemas", "testdata",
                                                            "vectors.json"))

"""The Avro schemas in schemas/ are exactly what openedx-events / edx-event-bus-kafka derive."""
import json

from edx_event_bus_kafka.internal.producer import extract_key_schema
from openedx_events.event_bus.avro.schema import schema_from_signal
from openedx_events.event_bus.avro.serializer import AvroSignalSerializer
from openedx_events.tooling import OpenEdxPublicSignal

from authz_flag_events.signals import EVENT_KEY_FIELD, EVENT_TYPE, WAFFLE_FLAG_OVERRIDE_CHANGED
from tests.wire import KEY_AVSC, VALUE_AVSC, load_json


def test_value_schema_is_what_openedx_events_derives():
    derived = AvroSignalSerializer(WAFFLE_FLAG_OVERRIDE_CHANGED).schema
    assert derived == load_json(VALUE_AVSC)
    assert schema_from_signal(WAFFLE_FLAG_OVERRIDE_CHANGED) == load_json(VALUE_AVSC)
    fields = [f["name"] for f in derived["fields"][0]["type"]["fields"]]
    assert fields == ["waffle_flag", "scope_type", "scope_key", "org", "enabled", "override_choice",
                      "record_id", "change_date", "changed_by"]


def test_key_schema_is_what_edx_event_bus_kafka_derives():
    key_schema = extract_key_schema(AvroSignalSerializer(WAFFLE_FLAG_OVERRIDE_CHANGED), EVENT_KEY_FIELD)
    assert json.loads(key_schema) == load_json(KEY_AVSC)
    with open(KEY_AVSC, encoding="utf-8") as fh:
        assert fh.read().strip() == key_schema  # byte for byte: the string the producer registers


def test_signal_is_registered_under_its_event_type():
    assert EVENT_TYPE == "org.openedx.platform.waffle_flag_override.changed.v1"
    assert OpenEdxPublicSignal.get_signal_by_type(EVENT_TYPE) is WAFFLE_FLAG_OVERRIDE_CHANGED
    assert WAFFLE_FLAG_OVERRIDE_CHANGED.init_data.keys() == {"override"}

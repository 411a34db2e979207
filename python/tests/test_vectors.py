"""
The shared wire test vectors (schemas/testdata/vectors.json), checked from the Python side.
The Go consumer's tests read the same file.
"""
import copy
import json
import subprocess
import sys
import zlib
from datetime import datetime

import openedx_events
import pytest
from openedx_events.event_bus.avro.deserializer import AvroSignalDeserializer

from authz_flag_events.data import WaffleFlagOverrideData
from authz_flag_events.signals import WAFFLE_FLAG_OVERRIDE_CHANGED
from tests.wire import REPO, VECTORS, WireError, decode_vector, load_vectors

ALL = load_vectors()
VALID = [v for v in ALL if "expected" in v]
MALFORMED = [v for v in ALL if "expected_error" in v]
ERROR_KINDS = {"framing", "unknown_schema_id", "unresolvable_schema", "missing_field", "bad_ce_type",
               "bad_scope_type", "bad_course_key", "scope_org_mismatch"}


def ids(vectors):
    return [v["name"] for v in vectors]


def without_sourcelib(vectors):
    """The vectors with the ``sourcelib`` header (the producing openedx-events version) set aside."""
    out = copy.deepcopy(vectors)
    for v in out:
        v["headers"].pop("sourcelib", None)
    return out


def test_vector_file_is_what_the_generator_makes(tmp_path):
    """
    The committed file is reproducible with the pinned packages (the real serializers), byte for
    byte, under every tested openedx-events (requirements-test.txt and requirements-min.txt).
    Only ``sourcelib`` may differ: edx-event-bus-kafka writes the running openedx-events version
    there, an informational header no consumer reads.
    """
    out = tmp_path / "vectors.json"
    subprocess.run([sys.executable, "tools/make_vectors.py", str(out)], cwd=f"{REPO}/python", check=True,
                   capture_output=True)
    made = json.loads(out.read_text("utf-8"))
    assert {v["headers"].get("sourcelib") for v in made} == {openedx_events.__version__}
    assert without_sourcelib(made) == without_sourcelib(ALL)


def test_vector_set_covers_the_contract():
    assert len(ALL) == len(set(ids(ALL)))
    assert {v["expected_error"] for v in MALFORMED} == ERROR_KINDS
    assert all(("expected" in v) != ("expected_error" in v) for v in ALL)
    names = set(ids(VALID))
    for required in ("course_on", "course_off", "org_on", "unicode_changed_by", "empty_changed_by",
                     "course_key_255_chars", "json_course_off"):
        assert required in names
    assert any(len(v["expected"]["scope_key"]) == 255 for v in VALID)


@pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
def test_valid_vector_decodes_to_expected_fields(vector):
    key, fields = decode_vector(vector)
    assert fields == vector["expected"]
    assert key == vector["expected_key"] == fields["scope_key"]
    headers = vector["headers"]
    assert headers["ce_type"] == "org.openedx.platform.waffle_flag_override.changed.v1"
    assert headers["ce_specversion"] == "1.0"
    assert headers["content-type"] == headers["ce_datacontenttype"]
    assert headers["content-type"] in ("application/avro", "application/json")


@pytest.mark.parametrize("vector", VALID, ids=ids(VALID))
def test_valid_vector_round_trips_through_openedx_events(vector):
    """openedx-events' own deserializer turns the decoded record back into the data class."""
    _, fields = decode_vector(vector)
    event = AvroSignalDeserializer(WAFFLE_FLAG_OVERRIDE_CHANGED).from_dict({"override": fields})
    data = event["override"]
    assert isinstance(data, WaffleFlagOverrideData)
    assert data.change_date == datetime.fromisoformat(vector["expected"]["change_date"])
    assert data.change_date.utcoffset().total_seconds() == 0
    assert data.record_id == vector["expected"]["record_id"]


@pytest.mark.parametrize("vector", MALFORMED, ids=ids(MALFORMED))
def test_malformed_vector_is_rejected_with_its_class(vector):
    with pytest.raises(WireError) as err:
        decode_vector(vector)
    assert err.value.kind == vector["expected_error"], str(err.value)


@pytest.mark.parametrize("vector", ALL, ids=ids(ALL))
def test_partition_is_crc32_of_the_key_bytes(vector):
    assert vector["partition_6"] == zlib.crc32(bytes.fromhex(vector["key_hex"])) % 6

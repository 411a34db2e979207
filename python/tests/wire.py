"""
A reference decoder for the section 9 wire format, used to check the test vectors from the
Python side (the Go consumer is the production decoder; both must agree on every vector).
"""
import io
import json
import os

import fastavro
from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCHEMAS_DIR = os.path.join(REPO, "schemas")
VECTORS = os.path.join(SCHEMAS_DIR, "testdata", "vectors.json")
VALUE_AVSC = os.path.join(SCHEMAS_DIR, "waffle_flag_override_changed.v1.value.avsc")
KEY_AVSC = os.path.join(SCHEMAS_DIR, "waffle_flag_override_changed.v1.key.avsc")

TYPE_PREFIX = "org.openedx.platform.waffle_flag_override.changed.v"
FIELDS = {
    "waffle_flag": str, "scope_type": str, "scope_key": str, "org": str, "enabled": bool,
    "override_choice": str, "record_id": int, "change_date": str, "changed_by": str,
}


class WireError(Exception):
    def __init__(self, kind, detail):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


def load_vectors():
    with open(VECTORS, encoding="utf-8") as fh:
        return json.load(fh)


def load_json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _reader_schema():
    return fastavro.parse_schema(load_json(VALUE_AVSC))


def _unframe(data, schemas, what):
    if len(data) < 5 or data[0] != 0:
        raise WireError("framing", f"{what}: {len(data)} bytes, first byte {data[:1].hex() or 'none'}")
    sid = str(int.from_bytes(data[1:5], "big"))
    if sid not in schemas:
        raise WireError("unknown_schema_id", f"{what}: schema id {sid}")
    return json.loads(schemas[sid]), data[5:]


def _missing_fields(writer):
    """Required override fields the writer schema does not have (the reader has no defaults)."""
    try:
        (override,) = [f for f in writer["fields"] if f["name"] == "override"]
        names = {f["name"] for f in override["type"]["fields"]}
    except (KeyError, TypeError, ValueError):
        return []  # not our shape at all: left to schema resolution
    return [name for name in FIELDS if name not in names]


def decode(key, value, headers, schemas):
    """Return (scope key, override fields) or raise WireError naming the class of problem."""
    ce_type = headers.get("ce_type", "")
    if not ce_type.startswith(TYPE_PREFIX) or ce_type[len(TYPE_PREFIX):] != "1":
        raise WireError("bad_ce_type", ce_type)

    if headers.get("content-type") == "application/json":
        try:
            doc = json.loads(value.decode("utf-8"))
        except ValueError as exc:
            raise WireError("framing", f"JSON value: {exc}") from exc
        fields = doc.get("override") if isinstance(doc, dict) else None
        if not isinstance(fields, dict):
            raise WireError("missing_field", "override")
        for name, typ in FIELDS.items():
            if name not in fields:
                raise WireError("missing_field", name)
            if not isinstance(fields[name], typ) or (typ is int and isinstance(fields[name], bool)):
                raise WireError("missing_field", f"{name} has type {type(fields[name]).__name__}")
        scope_key = key.decode("utf-8")
    else:
        writer, body = _unframe(value, schemas, "value")
        missing = _missing_fields(writer)
        if missing:  # the writer cannot supply a required field: the schema does not resolve
            raise WireError("unresolvable_schema", f"writer schema has no override.{missing[0]}")
        try:
            rec = fastavro.schemaless_reader(io.BytesIO(body), fastavro.parse_schema(writer), _reader_schema())
        except Exception as exc:  # fastavro raises SchemaResolutionError and friends
            raise WireError("unresolvable_schema", f"{type(exc).__name__}: {exc}") from exc
        fields = rec["override"]
        key_writer, key_body = _unframe(key, schemas, "key")
        scope_key = fastavro.schemaless_reader(
            io.BytesIO(key_body), fastavro.parse_schema(key_writer), fastavro.parse_schema(load_json(KEY_AVSC)))

    if fields["scope_type"] == "course":
        try:
            course = CourseKey.from_string(fields["scope_key"])
        except InvalidKeyError as exc:
            raise WireError("bad_course_key", fields["scope_key"]) from exc
        if course.org != fields["org"]:
            raise WireError("scope_org_mismatch", f"{fields['scope_key']} vs org {fields['org']}")
    elif fields["scope_type"] == "org":
        if fields["scope_key"] != fields["org"]:
            raise WireError("scope_org_mismatch", f"{fields['scope_key']} vs org {fields['org']}")
    else:
        raise WireError("bad_scope_type", fields["scope_type"])
    return scope_key, fields


def decode_vector(v):
    return decode(bytes.fromhex(v["key_hex"]), bytes.fromhex(v["value_hex"]), v["headers"], v["schemas"])

"""
Data attributes of the waffle flag override event.

Follows Open edX's OEP-49 data pattern (attrs classes), so openedx-events derives the Avro
schema in ``schemas/waffle_flag_override_changed.v1.value.avsc`` from it: str -> string,
bool -> boolean, int -> long, datetime -> string (ISO 8601, ``datetime.isoformat()``).
Field order is part of the wire contract: do not reorder.
"""
from datetime import datetime

import attr


@attr.s(frozen=True)
class WaffleFlagOverrideData:
    """
    One saved course or org override row of a waffle flag.

    Attributes:
        waffle_flag (str): the flag name, e.g. ``authz.enable_course_authoring``.
        scope_type (str): ``course`` or ``org``.
        scope_key (str): the course key (``course-v1:Org+Course+Run``) or the org short name.
        org (str): the scope's org (the course key's org for a course override).
        enabled (bool): the override row's ``enabled`` (a disabled row means "no override").
        override_choice (str): ``on`` or ``off``.
        record_id (int): the override row's primary key.
        change_date (datetime): the row's ``change_date`` in UTC.
        changed_by (str): username of the user who saved the row; empty when unknown.
    """

    waffle_flag = attr.ib(type=str)
    scope_type = attr.ib(type=str)
    scope_key = attr.ib(type=str)
    org = attr.ib(type=str)
    enabled = attr.ib(type=bool)
    override_choice = attr.ib(type=str)
    record_id = attr.ib(type=int)
    change_date = attr.ib(type=datetime)
    changed_by = attr.ib(type=str)

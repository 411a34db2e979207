"""
Turn committed saves of waffle flag override rows into WAFFLE_FLAG_OVERRIDE_CHANGED events.

Flow: post_save of a course/org override row of a watched flag -> build the event data inside
the transaction -> transaction.on_commit -> WAFFLE_FLAG_OVERRIDE_CHANGED.send_event(). The event
bus part is openedx-events' own config-driven producer: for every enabled topic under this event
type in EVENT_BUS_PRODUCER_CONFIG, its handler calls ``get_producer().send(...)`` (the
EVENT_BUS_PRODUCER implementation, e.g. ``edx_event_bus_kafka.create_producer``).

Nothing here may break the admin save: errors are logged with the override id and swallowed.
"""
import logging
from datetime import datetime, timezone

from django.apps import apps
from django.db import transaction
from django.db.models.signals import post_save
from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey

from . import conf
from .data import WaffleFlagOverrideData
from .signals import WAFFLE_FLAG_OVERRIDE_CHANGED

log = logging.getLogger(__name__)

SCOPES = (
    ("course", "AUTHZ_FLAG_EVENTS_COURSE_OVERRIDE_MODEL"),
    ("org", "AUTHZ_FLAG_EVENTS_ORG_OVERRIDE_MODEL"),
)


def connect_receivers():
    """Connect post_save receivers to the override models that are installed (lazy lookup)."""
    connected = []
    for scope_type, setting in SCOPES:
        label = conf.get(setting)
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            log.warning("authz_flag_events: override model %s (%s) is not installed; %s overrides "
                        "will not be published", label, setting, scope_type)
            continue
        post_save.connect(
            _receiver_for(scope_type), sender=model, weak=False,
            dispatch_uid=f"authz_flag_events.{scope_type}_override_saved",
        )
        connected.append(label)
    return connected


def _receiver_for(scope_type):
    def on_override_saved(sender, instance, using=None, raw=False, **kwargs):  # pylint: disable=unused-argument
        override_saved(scope_type, instance, using=using, raw=raw)
    return on_override_saved


def override_saved(scope_type, instance, using=None, raw=False):
    """Schedule the event for a saved override row; never raises."""
    if raw:  # loaddata fixtures
        return
    try:
        if not conf.watched(instance.waffle_flag):
            return
        data = override_data(scope_type, instance)
    except Exception:  # pylint: disable=broad-except
        log.exception("authz_flag_events: could not build the event for %s override id=%s",
                      scope_type, getattr(instance, "pk", None))
        return
    transaction.on_commit(lambda: publish(data), using=using, robust=True)


def override_data(scope_type, instance):
    """The event data for an override row (a ConfigurationModel row of either override table)."""
    if scope_type == "course":
        scope_key, org = _course_scope(instance.course_id)
    else:
        scope_key = org = str(instance.org)
    return WaffleFlagOverrideData(
        waffle_flag=str(instance.waffle_flag),
        scope_type=scope_type,
        scope_key=scope_key,
        org=org,
        enabled=bool(instance.enabled),
        override_choice=str(instance.override_choice),
        record_id=int(instance.pk),
        change_date=_utc(instance.change_date),
        changed_by=instance.changed_by.username if instance.changed_by_id else "",
    )


def _course_scope(course_id):
    if isinstance(course_id, CourseKey):
        return str(course_id), course_id.org
    key = str(course_id)
    try:
        return key, CourseKey.from_string(key).org
    except InvalidKeyError:
        # Published as is: the consumer parks it with its reason.
        log.warning("authz_flag_events: course override with an invalid course key %r", key)
        return key, ""


def _utc(value):
    if value is None:
        return datetime.now(timezone.utc)
    if value.tzinfo is None:  # USE_TZ = False: Open edX stores UTC
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def publish(data):
    """
    Send the event (after commit). Logs, never raises.

    ``send_event`` uses Django's ``send_robust`` unless settings.DEBUG is on, so a failing
    receiver (e.g. the event bus producer) comes back as an exception in the responses.
    """
    try:
        responses = WAFFLE_FLAG_OVERRIDE_CHANGED.send_event(time=data.change_date, override=data)
    except Exception:  # pylint: disable=broad-except
        log.exception("authz_flag_events: failed to publish %s override id=%s (flag %s, scope %s)",
                      data.scope_type, data.record_id, data.waffle_flag, data.scope_key)
        return
    for receiver, response in responses or []:
        if isinstance(response, BaseException):
            log.error("authz_flag_events: failed to publish %s override id=%s (flag %s, scope %s): "
                      "receiver %s raised %r", data.scope_type, data.record_id, data.waffle_flag,
                      data.scope_key, getattr(receiver, "__qualname__", receiver), response,
                      exc_info=(type(response), response, response.__traceback__))

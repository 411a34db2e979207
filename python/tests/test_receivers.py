"""
Saving an override row publishes one event after the transaction commits, through openedx-events'
config-driven producer (EVENT_BUS_PRODUCER_CONFIG -> get_producer().send).
"""
import logging
from datetime import timezone

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import override_settings
from opaque_keys.edx.keys import CourseKey

from authz_flag_events import receivers
from authz_flag_events.data import WaffleFlagOverrideData
from authz_flag_events.signals import EVENT_TYPE, WAFFLE_FLAG_OVERRIDE_CHANGED
from tests import recording
from tests.waffle_utils.models import WaffleFlagCourseOverrideModel, WaffleFlagOrgOverrideModel

pytestmark = pytest.mark.django_db(transaction=True)

FLAG = "authz.enable_course_authoring"
COURSE = "course-v1:OpenedX+DemoX+2025"


def course_override(flag=FLAG, course=COURSE, choice="on", enabled=True, user=None):
    return WaffleFlagCourseOverrideModel.objects.create(
        waffle_flag=flag, course_id=CourseKey.from_string(course), override_choice=choice,
        enabled=enabled, changed_by=user)


def test_course_override_sends_one_event_after_commit():
    admin = User.objects.create(username="admin")
    with transaction.atomic():
        row = course_override(user=admin)
        assert recording.SENT == [], "sent before the transaction committed"
    assert len(recording.SENT) == 1
    sent = recording.SENT[0]
    assert sent["signal"] is WAFFLE_FLAG_OVERRIDE_CHANGED
    assert sent["topic"] == "waffle-flag-override-lifecycle"  # the producer adds EVENT_BUS_TOPIC_PREFIX
    assert sent["event_key_field"] == "override.scope_key"
    row.refresh_from_db()
    assert sent["event_data"] == {"override": WaffleFlagOverrideData(
        waffle_flag=FLAG, scope_type="course", scope_key=COURSE, org="OpenedX", enabled=True,
        override_choice="on", record_id=row.pk, change_date=row.change_date, changed_by="admin")}
    meta = sent["event_metadata"]
    assert meta.event_type == EVENT_TYPE
    assert meta.time == row.change_date and meta.time.tzinfo == timezone.utc
    assert meta.source == "openedx/lms/web"


def test_org_override_sends_event():
    row = WaffleFlagOrgOverrideModel.objects.create(waffle_flag=FLAG, org="MITx", override_choice="off",
                                                    enabled=True)
    assert len(recording.SENT) == 1
    data = recording.SENT[0]["event_data"]["override"]
    assert (data.scope_type, data.scope_key, data.org, data.override_choice, data.record_id,
            data.changed_by) == ("org", "MITx", "MITx", "off", row.pk, "")


def test_every_save_sends_in_order_after_commit():
    with transaction.atomic():
        first = course_override(choice="on")
        second = course_override(choice="off")
        third = course_override(choice="on", enabled=False)
        assert recording.SENT == []
    got = [(s["event_data"]["override"].record_id, s["event_data"]["override"].override_choice,
            s["event_data"]["override"].enabled) for s in recording.SENT]
    assert got == [(first.pk, "on", True), (second.pk, "off", True), (third.pk, "on", False)]


def test_not_sent_on_rollback():
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with transaction.atomic():
            course_override()
            raise Boom()
    assert WaffleFlagCourseOverrideModel.objects.count() == 0
    assert recording.SENT == []


def test_not_sent_when_inner_savepoint_rolls_back():
    with transaction.atomic():
        kept = course_override(choice="off")
        try:
            with transaction.atomic():
                course_override(choice="on")
                raise ValueError("roll back the savepoint")
        except ValueError:
            pass
    assert [s["event_data"]["override"].record_id for s in recording.SENT] == [kept.pk]


def test_unwatched_flag_not_sent():
    course_override(flag="some_app.other_flag")
    WaffleFlagOrgOverrideModel.objects.create(waffle_flag="some_app.other_flag", org="MITx", enabled=True)
    assert recording.SENT == []


def test_watched_flags_setting(settings):
    settings.AUTHZ_FLAG_EVENTS_WATCHED_FLAGS = ["some_app.other_flag"]
    course_override()
    course_override(flag="some_app.other_flag")
    assert [s["event_data"]["override"].waffle_flag for s in recording.SENT] == ["some_app.other_flag"]
    settings.AUTHZ_FLAG_EVENTS_WATCHED_FLAGS = ["*"]
    course_override(flag="anything.at_all")
    assert recording.SENT[-1]["event_data"]["override"].waffle_flag == "anything.at_all"


def test_disabled_in_producer_config_not_sent(settings):
    settings.EVENT_BUS_PRODUCER_CONFIG = {
        EVENT_TYPE: {"waffle-flag-override-lifecycle": {"event_key_field": "override.scope_key", "enabled": False}},
    }
    course_override()
    assert recording.SENT == []


def test_edited_override_is_a_new_row_and_a_new_event():
    """ConfigurationModel.save() inserts on every save (the admin's edit too): one event per row."""
    row = course_override(choice="on")
    first_id = row.pk
    row.override_choice = "off"
    row.save()
    assert row.pk != first_id
    got = [(s["event_data"]["override"].record_id, s["event_data"]["override"].override_choice)
           for s in recording.SENT]
    assert got == [(first_id, "on"), (row.pk, "off")]


def test_unicode_and_missing_changed_by():
    user = User.objects.create(username="José_管理者")
    course_override(user=user)
    course_override(user=None)
    assert [s["event_data"]["override"].changed_by for s in recording.SENT] == ["José_管理者", ""]


@pytest.mark.parametrize("debug", [False, True])
def test_failing_producer_does_not_break_the_save_and_logs_the_override_id(settings, caplog, debug):
    # DEBUG=False: openedx-events uses send_robust (the error comes back in the responses);
    # DEBUG=True: it uses send (the error propagates to our on_commit callback).
    settings.DEBUG = debug
    settings.EVENT_BUS_PRODUCER = "tests.recording.make_failing_producer"
    with caplog.at_level(logging.ERROR, logger="authz_flag_events"):
        with transaction.atomic():
            row = course_override()
    assert WaffleFlagCourseOverrideModel.objects.filter(pk=row.pk).exists()
    ours = [r for r in caplog.records if r.name.startswith("authz_flag_events")]
    assert any(f"override id={row.pk}" in r.getMessage() and "event bus is down" in r.getMessage() + str(r.exc_info)
               for r in ours), [r.getMessage() for r in ours]
    # the next save still works and is still attempted
    settings.EVENT_BUS_PRODUCER = "tests.recording.make_recording_producer"
    course_override(choice="off")
    assert len(recording.SENT) == 1


def test_event_data_failure_is_logged_not_raised(caplog, monkeypatch):
    def broken(scope_type, instance):
        raise RuntimeError("cannot build")

    monkeypatch.setattr(receivers, "override_data", broken)
    with caplog.at_level(logging.ERROR, logger="authz_flag_events"):
        row = course_override()
    assert WaffleFlagCourseOverrideModel.objects.filter(pk=row.pk).exists()
    assert any(f"override id={row.pk}" in r.getMessage() for r in caplog.records)
    assert recording.SENT == []


def test_connect_receivers_skips_missing_models(settings, caplog):
    settings.AUTHZ_FLAG_EVENTS_ORG_OVERRIDE_MODEL = "waffle_utils.NoSuchModel"
    with caplog.at_level(logging.WARNING, logger="authz_flag_events"):
        connected = receivers.connect_receivers()
    assert connected == ["waffle_utils.WaffleFlagCourseOverrideModel"]
    assert any("waffle_utils.NoSuchModel" in r.getMessage() for r in caplog.records)
    # connecting again does not duplicate receivers (dispatch_uid)
    course_override()
    assert len(recording.SENT) == 1

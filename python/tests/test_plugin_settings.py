"""The plugin's settings defaults and the EVENT_BUS_PRODUCER_CONFIG entry it adds."""
import types

from django.conf import settings

from authz_flag_events import apps
from authz_flag_events.settings import common, production
from authz_flag_events.signals import EVENT_TYPE

ENTRY = {"event_key_field": "override.scope_key", "enabled": True}


def test_installed_as_an_lms_plugin():
    # tests/settings.py installs it the way edx-platform does (get_plugin_apps / add_plugins).
    assert "authz_flag_events.apps.AuthzFlagEventsConfig" in settings.INSTALLED_APPS
    assert settings.AUTHZ_FLAG_EVENTS_WATCHED_FLAGS == ["authz.enable_course_authoring"]
    assert settings.EVENT_BUS_PRODUCER_CONFIG[EVENT_TYPE] == {"waffle-flag-override-lifecycle": ENTRY}
    config = apps.AuthzFlagEventsConfig.plugin_app["settings_config"]
    assert set(config) == {"lms.djangoapp", "cms.djangoapp"}


def test_defaults_and_entry_added():
    s = types.SimpleNamespace(EVENT_BUS_PRODUCER_CONFIG={"other.event.v1": {"t": ENTRY}})
    common.plugin_settings(s)
    assert s.AUTHZ_FLAG_EVENTS_TOPIC == "waffle-flag-override-lifecycle"
    assert s.EVENT_BUS_PRODUCER_CONFIG == {
        "other.event.v1": {"t": ENTRY},
        EVENT_TYPE: {"waffle-flag-override-lifecycle": ENTRY},
    }


def test_operator_entry_is_kept_as_written():
    mine = {"my-topic": {"event_key_field": "override.scope_key", "enabled": False}}
    s = types.SimpleNamespace(EVENT_BUS_PRODUCER_CONFIG={EVENT_TYPE: mine}, AUTHZ_FLAG_EVENTS_WATCHED_FLAGS=["x"])
    common.plugin_settings(s)
    production.plugin_settings(s)
    assert s.EVENT_BUS_PRODUCER_CONFIG == {EVENT_TYPE: mine}
    assert s.AUTHZ_FLAG_EVENTS_WATCHED_FLAGS == ["x"]


def test_production_topic_change_reaches_the_entry():
    s = types.SimpleNamespace()
    common.plugin_settings(s)
    s.AUTHZ_FLAG_EVENTS_TOPIC = "authz-overrides"  # e.g. from the operator's YAML
    production.plugin_settings(s)
    assert s.EVENT_BUS_PRODUCER_CONFIG == {EVENT_TYPE: {"authz-overrides": ENTRY}}

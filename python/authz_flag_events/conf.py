"""
The plugin's settings, their defaults, and the EVENT_BUS_PRODUCER_CONFIG entry it adds.

Settings (all optional):

``AUTHZ_FLAG_EVENTS_WATCHED_FLAGS``
    Flag names whose course/org overrides are published. ``["*"]`` publishes every flag.
    Default ``["authz.enable_course_authoring"]``.
``AUTHZ_FLAG_EVENTS_TOPIC``
    Base topic (without ``EVENT_BUS_TOPIC_PREFIX``) of the producer config entry the plugin adds.
    Default ``"waffle-flag-override-lifecycle"``.
``AUTHZ_FLAG_EVENTS_COURSE_OVERRIDE_MODEL`` / ``AUTHZ_FLAG_EVENTS_ORG_OVERRIDE_MODEL``
    ``app_label.ModelName`` of the override models; defaults are Open edX's
    ``waffle_utils.WaffleFlagCourseOverrideModel`` and ``waffle_utils.WaffleFlagOrgOverrideModel``.
"""
from django.conf import settings

from .signals import EVENT_KEY_FIELD, EVENT_TYPE

DEFAULTS = {
    "AUTHZ_FLAG_EVENTS_WATCHED_FLAGS": ["authz.enable_course_authoring"],
    "AUTHZ_FLAG_EVENTS_TOPIC": "waffle-flag-override-lifecycle",
    "AUTHZ_FLAG_EVENTS_COURSE_OVERRIDE_MODEL": "waffle_utils.WaffleFlagCourseOverrideModel",
    "AUTHZ_FLAG_EVENTS_ORG_OVERRIDE_MODEL": "waffle_utils.WaffleFlagOrgOverrideModel",
}

# Remembers the EVENT_BUS_PRODUCER_CONFIG entry the plugin itself added, so a later settings
# phase may refresh it (e.g. a topic changed in production settings) without ever replacing an
# entry the operator wrote.
_MARKER = "AUTHZ_FLAG_EVENTS_DEFAULT_PRODUCER_ENTRY"


def get(name):
    """Return a plugin setting, or its default."""
    return getattr(settings, name, DEFAULTS[name])


def watched(flag_name):
    """Whether overrides of this flag are published."""
    flags = get("AUTHZ_FLAG_EVENTS_WATCHED_FLAGS")
    return "*" in flags or flag_name in flags


def apply_plugin_settings(settings_module):
    """
    Fill in defaults and the event bus producer entry on a settings module (or object).

    The entry is ``{EVENT_TYPE: {topic: {"event_key_field": "override.scope_key", "enabled": True}}}``.
    If the operator's EVENT_BUS_PRODUCER_CONFIG already has an entry for the event type, it is
    left exactly as written (that is how to disable publishing or choose other topics).
    """
    for name, default in DEFAULTS.items():
        if not hasattr(settings_module, name):
            setattr(settings_module, name, list(default) if isinstance(default, list) else default)

    config = dict(getattr(settings_module, "EVENT_BUS_PRODUCER_CONFIG", None) or {})
    ours = {settings_module.AUTHZ_FLAG_EVENTS_TOPIC: {"event_key_field": EVENT_KEY_FIELD, "enabled": True}}
    current = config.get(EVENT_TYPE)
    if current is None or current == getattr(settings_module, _MARKER, None):
        config[EVENT_TYPE] = ours
        setattr(settings_module, _MARKER, ours)
    settings_module.EVENT_BUS_PRODUCER_CONFIG = config

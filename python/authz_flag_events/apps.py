"""
Django app configuration: an Open edX plugin app for the LMS and the CMS.
"""
import logging

from django.apps import AppConfig

# Define the public signal now (app-module import time): openedx_events' ready() validates
# EVENT_BUS_PRODUCER_CONFIG against the signals defined so far, and Django imports every app
# module before it calls any ready().
from . import signals  # noqa: F401  pylint: disable=unused-import

log = logging.getLogger(__name__)

_SETTINGS = {"relative_path": "settings.common"}
_PRODUCTION = {"relative_path": "settings.production"}


class AuthzFlagEventsConfig(AppConfig):
    """Publishes waffle flag course/org override changes to the Open edX event bus."""

    name = "authz_flag_events"
    verbose_name = "Authz flag override events"
    default_auto_field = "django.db.models.BigAutoField"

    # edx-django-utils plugin configuration (keys are edx_django_utils.plugins constants:
    # PluginSettings.CONFIG, ProjectType.LMS/CMS, SettingsType.COMMON/PRODUCTION/...).
    plugin_app = {
        "settings_config": {
            "lms.djangoapp": {"common": _SETTINGS, "test": _SETTINGS, "devstack": _SETTINGS,
                              "production": _PRODUCTION},
            "cms.djangoapp": {"common": _SETTINGS, "test": _SETTINGS, "devstack": _SETTINGS,
                              "production": _PRODUCTION},
        },
    }

    def ready(self):
        from .receivers import connect_receivers  # pylint: disable=import-outside-toplevel

        connect_receivers()

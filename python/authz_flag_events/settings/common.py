"""Common settings for the LMS and CMS, injected by edx-django-utils' plugin framework."""
from ..conf import apply_plugin_settings


def plugin_settings(settings):
    """Add the plugin's defaults and its EVENT_BUS_PRODUCER_CONFIG entry."""
    apply_plugin_settings(settings)

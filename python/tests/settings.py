"""
Minimal Django settings standing in for the LMS: the plugin is installed the way Open edX
installs plugins (edx-django-utils' get_plugin_apps / add_plugins over the lms.djangoapp entry
points), and ``tests.waffle_utils`` supplies the two override models shaped like edx-platform's
(django-config-models ConfigurationModel subclasses, same app label, tables and columns).
"""
import os
import tempfile

from edx_django_utils.plugins import add_plugins, get_plugin_apps

SECRET_KEY = "authz-flag-events-tests"
USE_TZ = True
TIME_ZONE = "UTC"
DEBUG = False

_DB_DIR = tempfile.mkdtemp(prefix="authz-flag-events-")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(_DB_DIR, "lms.sqlite3"),
        "TEST": {"NAME": os.path.join(_DB_DIR, "test_lms.sqlite3")},
    }
}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "openedx_events",
    "config_models",  # django-config-models, as in the LMS/CMS: ConfigurationModel
    "tests.waffle_utils",
    *get_plugin_apps("lms.djangoapp"),
]

EVENTS_SERVICE_NAME = "lms"
EVENT_BUS_TOPIC_PREFIX = "test"
# openedx-events' config-driven producer: tests record what it is asked to send.
EVENT_BUS_PRODUCER = "tests.recording.make_recording_producer"

LOGGING_CONFIG = None

add_plugins(__name__, "lms.djangoapp", "common")

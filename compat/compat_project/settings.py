"""Settings of the Open edX compatibility tier.

A minimal Django project whose INSTALLED_APPS make the tables this service works on with the
real Django migrations: django.contrib.auth, django-waffle, django-config-models,
casbin-django-orm-adapter (through openedx-authz's CasbinAdapterConfig, as edx-platform
installs it), openedx-authz itself, and our own stand-ins for edx-platform's `student`,
`course_overviews`, `content_libraries` and `waffle_utils` apps (compat/common/...,
compat/openedx/...), laid out under edx-platform's dotted module paths because openedx-authz
imports them by those paths.

The database comes from env COMPAT_DB_URL (sqlite:////abs/path.db or
mysql://user:pass@host:port/dbname).
"""
import os
from pathlib import Path

from openedx_authz import ROOT_DIRECTORY as AUTHZ_ROOT

from compat_project import dburl

BASE_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = BASE_DIR.parent

SECRET_KEY = "compat-tier-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]

COMPAT_DB_URL = os.environ.get("COMPAT_DB_URL") or f"sqlite:///{REPO_ROOT}/.cache/compat/dev.db"
DATABASES = {"default": dburl.django_database(COMPAT_DB_URL)}

# Order matters for one thing: openedx-authz's 0004/0007 migrations point foreign keys at the
# content-library and course-overview models without declaring a dependency on their apps, so
# those apps come first (edx-platform has them long migrated before openedx-authz arrives).
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.admin",
    "waffle",
    "config_models",
    "organizations",
    "common.djangoapps.student",
    "openedx.core.djangoapps.content.course_overviews",
    "openedx.core.djangoapps.content_libraries",
    "openedx.core.djangoapps.waffle_utils",
    "openedx_authz.engine.apps.CasbinAdapterConfig",
    "openedx_authz.apps.OpenedxAuthzConfig",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "edx_django_utils.cache.middleware.RequestCacheMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

ROOT_URLCONF = "compat_project.urls"
USE_TZ = True
TIME_ZONE = "UTC"
# edx-platform keeps int primary keys for its own apps; openedx-authz sets BigAutoField itself.
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- openedx-authz, as its settings/common.py plugin_settings() and its test settings set it ---
CASBIN_MODEL = os.path.join(AUTHZ_ROOT, "engine", "config", "model.conf")
CASBIN_AUTO_LOAD_POLICY_INTERVAL = 0
CASBIN_AUTO_SAVE_POLICY = True
CASBIN_LOG_LEVEL = "WARNING"
OPENEDX_AUTHZ_CONTENT_LIBRARY_MODEL = "content_libraries.ContentLibrary"
OPENEDX_AUTHZ_COURSE_OVERVIEW_MODEL = "course_overviews.CourseOverview"
# Our Go service is the migrator: openedx-authz's post_save handler on the override models must
# not move roles behind its back. Tests call openedx-authz's migration functions explicitly.
ENABLE_AUTOMATIC_AUTHZ_COURSE_AUTHORING_MIGRATION = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("COMPAT_LOG_LEVEL", "WARNING")},
}

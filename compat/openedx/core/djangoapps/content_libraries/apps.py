from django.apps import AppConfig


class ContentLibrariesConfig(AppConfig):
    name = "openedx.core.djangoapps.content_libraries"
    label = "content_libraries"
    default_auto_field = "django.db.models.AutoField"

from django.apps import AppConfig


class WaffleUtilsConfig(AppConfig):
    name = "openedx.core.djangoapps.waffle_utils"
    label = "waffle_utils"
    default_auto_field = "django.db.models.AutoField"

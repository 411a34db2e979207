"""
Stand-ins for edx-platform's two override models
(``openedx/core/djangoapps/waffle_utils/models.py``), shaped like the real ones:

- subclasses of django-config-models' real ``ConfigurationModel`` (the package edx-platform
  uses): ``change_date`` (auto_now_add), ``changed_by`` (nullable FK to the user, PROTECT),
  ``enabled``, and its ``save()`` that always inserts a new row (an edited override is a new row
  with a new id, never an UPDATE);
- the same fields, ``KEY_FIELDS``, choices and ``Meta`` (a plain ``Meta``, so no default
  ordering; the org model's ``waffle_org_and_waffle_flag`` index); ``course_id`` is
  opaque-keys' ``CourseKeyField``;
- the same app label and so the same tables, ``waffle_utils_waffleflagcourseoverridemodel`` and
  ``waffle_utils_waffleflagorgoverridemodel``, with ``AutoField`` ids as edx-platform's
  migrations create them.

Left out: what the plugin never touches (``ALL_CHOICES``, the ``override_value`` class methods
with edx-platform's request cache, ``__str__``). tests/test_models_shape.py pins this shape.
"""
from config_models.models import ConfigurationModel
from django.db.models import CharField, Index, TextField
from django.utils.translation import gettext_lazy as _
from model_utils import Choices
from opaque_keys.edx.django.models import CourseKeyField

NOTE_HELP = "e.g. why this exists and when/if it can be dropped"


class WaffleFlagCourseOverrideModel(ConfigurationModel):
    """Forces a waffle flag on or off for a course (edx-platform's model of the same name)."""

    OVERRIDE_CHOICES = Choices(("on", _("Force On")), ("off", _("Force Off")))

    KEY_FIELDS = ("waffle_flag", "course_id")

    waffle_flag = CharField(max_length=255, db_index=True)
    course_id = CourseKeyField(max_length=255, db_index=True)
    override_choice = CharField(choices=OVERRIDE_CHOICES, default=OVERRIDE_CHOICES.on, max_length=3)
    note = TextField(blank=True, help_text=NOTE_HELP)

    class Meta:
        app_label = "waffle_utils"
        verbose_name = "Waffle flag course override"
        verbose_name_plural = "Waffle flag course overrides"


class WaffleFlagOrgOverrideModel(ConfigurationModel):
    """Forces a waffle flag on or off for an organization (edx-platform's model of the same name)."""

    OVERRIDE_CHOICES = Choices(("on", _("Force On")), ("off", _("Force Off")))

    KEY_FIELDS = ("waffle_flag", "org")

    waffle_flag = CharField(max_length=255, db_index=True)
    org = CharField(max_length=255, db_index=True)
    override_choice = CharField(choices=OVERRIDE_CHOICES, default=OVERRIDE_CHOICES.on, max_length=3)
    note = TextField(blank=True, help_text=NOTE_HELP)

    class Meta:
        app_label = "waffle_utils"
        verbose_name = "Waffle flag org override"
        verbose_name_plural = "Waffle flag org overrides"
        indexes = [
            Index(name="waffle_org_and_waffle_flag", fields=["org", "waffle_flag"]),
        ]

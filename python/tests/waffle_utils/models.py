"""
The two Open edX override models, as edx-platform defines them (ConfigurationModel rows:
append-only, ``change_date`` auto_now_add, ``changed_by`` FK to the user, ``enabled``).

Tables: waffle_utils_waffleflagcourseoverridemodel / waffle_utils_waffleflagorgoverridemodel,
columns id, change_date, changed_by_id, enabled, waffle_flag, course_id|org, override_choice, note.
"""
from django.contrib.auth.models import User
from django.db import models
from opaque_keys.edx.django.models import CourseKeyField

OVERRIDE_CHOICES = (("on", "Force On"), ("off", "Force Off"))


class ConfigurationModel(models.Model):
    """The columns of django-config-models' ConfigurationModel."""

    change_date = models.DateTimeField(auto_now_add=True)
    changed_by = models.ForeignKey(User, editable=False, null=True, on_delete=models.PROTECT)
    enabled = models.BooleanField(default=False)

    class Meta:
        abstract = True
        ordering = ("-change_date",)


class WaffleFlagCourseOverrideModel(ConfigurationModel):
    waffle_flag = models.CharField(max_length=255, db_index=True)
    course_id = CourseKeyField(max_length=255, db_index=True)
    override_choice = models.CharField(choices=OVERRIDE_CHOICES, default="on", max_length=3)
    note = models.TextField(blank=True)

    class Meta(ConfigurationModel.Meta):
        app_label = "waffle_utils"


class WaffleFlagOrgOverrideModel(ConfigurationModel):
    waffle_flag = models.CharField(max_length=255, db_index=True)
    org = models.CharField(max_length=255, db_index=True)
    override_choice = models.CharField(choices=OVERRIDE_CHOICES, default="on", max_length=3)
    note = models.TextField(blank=True)

    class Meta(ConfigurationModel.Meta):
        app_label = "waffle_utils"

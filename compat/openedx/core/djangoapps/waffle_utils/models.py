"""edx-platform's waffle flag override models (openedx/core/djangoapps/waffle_utils/models.py).

Both are django-config-models ConfigurationModels: append-only, `change_date`, `changed_by`,
`enabled`, plus:
    course: waffle_flag CharField(255, db_index), course_id CourseKeyField(255, db_index),
            override_choice CharField(3, choices on/off, default on), note TextField(blank)
    org:    waffle_flag CharField(255, db_index), org CharField(255, db_index), same choice and
            note, and Index(['org', 'waffle_flag'], name='waffle_org_and_waffle_flag')
"""
from config_models.models import ConfigurationModel
from django.db import models
from opaque_keys.edx.django.models import CourseKeyField

OVERRIDE_CHOICES = [("on", "Force On"), ("off", "Force Off")]
UNSET = "unset"


class _OverrideValue:
    @classmethod
    def _override_value(cls, waffle_flag, **key):
        if not waffle_flag or not all(key.values()):
            return UNSET
        newest = cls.objects.filter(waffle_flag=waffle_flag, **key).order_by("-change_date").first()
        if newest and newest.enabled:
            return newest.override_choice
        return UNSET


class WaffleFlagCourseOverrideModel(_OverrideValue, ConfigurationModel):
    """Forces a waffle flag on or off for one course."""

    KEY_FIELDS = ("waffle_flag", "course_id")

    waffle_flag = models.CharField(max_length=255, db_index=True)
    course_id = CourseKeyField(max_length=255, db_index=True)
    override_choice = models.CharField(choices=OVERRIDE_CHOICES, default="on", max_length=3)
    note = models.TextField(blank=True, help_text="e.g. why this exists and when/if it can be dropped")

    class Meta:
        app_label = "waffle_utils"
        verbose_name = "Waffle flag course override"
        verbose_name_plural = "Waffle flag course overrides"

    @classmethod
    def override_value(cls, waffle_flag, course_id):
        return cls._override_value(waffle_flag, course_id=course_id)


class WaffleFlagOrgOverrideModel(_OverrideValue, ConfigurationModel):
    """Forces a waffle flag on or off for one organization."""

    KEY_FIELDS = ("waffle_flag", "org")

    waffle_flag = models.CharField(max_length=255, db_index=True)
    org = models.CharField(max_length=255, db_index=True)
    override_choice = models.CharField(choices=OVERRIDE_CHOICES, default="on", max_length=3)
    note = models.TextField(blank=True, help_text="e.g. why this exists and when/if it can be dropped")

    class Meta:
        app_label = "waffle_utils"
        verbose_name = "Waffle flag org override"
        verbose_name_plural = "Waffle flag org overrides"
        indexes = [models.Index(fields=["org", "waffle_flag"], name="waffle_org_and_waffle_flag")]

    @classmethod
    def override_value(cls, waffle_flag, org):
        return cls._override_value(waffle_flag, org=org)

"""edx-platform's CourseOverview, reduced to the columns that identify a course.

edx-platform (openedx/core/djangoapps/content/course_overviews/models.py) declares it as a
model_utils TimeStampedModel (created, modified) whose primary key is the course key:
    id = CourseKeyField(db_index=True, primary_key=True, max_length=255)
and some fifty cache columns (dates, urls, certificate and catalog settings). We keep the key,
the timestamps, the identification columns and a few nullable/defaulted ones; the rest only
cache course content and nothing here reads them.
"""
from django.db import models
from model_utils.models import TimeStampedModel
from opaque_keys.edx.django.models import CourseKeyField, UsageKeyField


class CourseOverview(TimeStampedModel):
    """Cached basic information about a course run."""

    VERSION = 19

    version = models.IntegerField()
    id = CourseKeyField(db_index=True, primary_key=True, max_length=255)
    _location = UsageKeyField(max_length=255)
    org = models.TextField(max_length=255, default="outdated_entry")
    display_name = models.TextField(null=True)
    display_number_with_default = models.TextField()
    display_org_with_default = models.TextField()
    start = models.DateTimeField(null=True)
    end = models.DateTimeField(null=True)
    course_image_url = models.TextField()
    visible_to_staff_only = models.BooleanField(default=False)
    invitation_only = models.BooleanField(default=False)
    catalog_visibility = models.TextField(null=True)
    self_paced = models.BooleanField(default=False)
    language = models.TextField(null=True)

    class Meta:
        app_label = "course_overviews"

    @classmethod
    def get_from_id(cls, course_id):
        """The overview of a course, or CourseOverview.DoesNotExist.

        edx-platform falls back to the modulestore when the row is missing; there is no
        modulestore here, so a missing row is a course that does not exist. Like edx-platform's
        query, the lookup follows the database collation (case-insensitive on MySQL); callers
        that need the exact key compare it themselves, as openedx-authz does.
        """
        return cls.objects.get(id=course_id)

    def __str__(self):
        return str(self.id)

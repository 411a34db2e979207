"""edx-platform's CourseAccessRole, declared as edx-platform declares it.

edx-platform (common/djangoapps/student/models/user.py):
    user      FK(AUTH_USER_MODEL, CASCADE)
    org       CharField(max_length=64, db_index=True, blank=True)
    course_id CourseKeyField(max_length=255, db_index=True, blank=True)
    role      CharField(max_length=64, db_index=True)
    unique_together = ('user', 'org', 'course_id', 'role')
with a manager that turns `field=None` filters into the field's empty value.
"""
from django.conf import settings
from django.db import models
from opaque_keys.edx.django.models import CourseKeyField


class NoneToEmptyQuerySet(models.query.QuerySet):
    """Filters on `x=None` for a key field mean `x=<empty value>`, as in edx-platform."""

    def _filter_or_exclude(self, negate, args, kwargs):
        for f in self.model._meta.get_fields():
            if (not f.auto_created or f.concrete) and hasattr(f, "Empty"):
                for key in (f.name, f"{f.name}__exact"):
                    if key in kwargs and kwargs[key] is None:
                        kwargs[key] = f.Empty
        return super()._filter_or_exclude(negate, args, kwargs)


class NoneToEmptyManager(models.Manager):
    def get_queryset(self):
        return NoneToEmptyQuerySet(self.model, using=self._db)


class CourseAccessRole(models.Model):
    """Maps users to org, courses and roles; an empty course_id is an org-wide role."""

    objects = NoneToEmptyManager()

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    org = models.CharField(max_length=64, db_index=True, blank=True)
    course_id = CourseKeyField(max_length=255, db_index=True, blank=True)
    role = models.CharField(max_length=64, db_index=True)

    class Meta:
        app_label = "student"
        unique_together = ("user", "org", "course_id", "role")

    def __str__(self):
        return f"[CourseAccessRole] user: {self.user_id} role: {self.role} org: {self.org} course: {self.course_id}"

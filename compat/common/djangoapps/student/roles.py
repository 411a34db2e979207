"""The one helper of edx-platform's student.roles that openedx-authz imports."""
from openedx.core.toggles import AUTHZ_COURSE_AUTHORING_FLAG


def enable_authz_course_authoring(course_key=None):
    """Whether the course-authoring flag is on for a course (or globally when no key)."""
    return AUTHZ_COURSE_AUTHORING_FLAG.is_enabled(course_key)

"""edx-platform's AUTHZ_COURSE_AUTHORING_FLAG, as far as openedx-authz uses it.

In edx-platform it is a CourseWaffleFlag named `authz.enable_course_authoring`; openedx-authz
reads its `.name`. is_enabled() evaluates it as edx-platform evaluates course waffle flags:
course override, else org override, else the global waffle flag.
"""


class _CourseWaffleFlag:
    def __init__(self, name):
        self.name = name

    def is_enabled(self, course_key=None):
        from waffle.models import Flag  # pylint: disable=import-outside-toplevel

        from openedx.core.djangoapps.waffle_utils.models import (  # pylint: disable=import-outside-toplevel
            WaffleFlagCourseOverrideModel,
            WaffleFlagOrgOverrideModel,
        )

        if course_key is not None:
            choice = WaffleFlagCourseOverrideModel.override_value(self.name, course_key)
            if choice in ("on", "off"):
                return choice == "on"
            org = getattr(course_key, "org", None) or str(course_key).split(":", 1)[-1].split("+", 1)[0]
            choice = WaffleFlagOrgOverrideModel.override_value(self.name, org)
            if choice in ("on", "off"):
                return choice == "on"
        flag = Flag.objects.filter(name=self.name).first()
        return bool(flag and flag.everyone)


AUTHZ_COURSE_AUTHORING_FLAG = _CourseWaffleFlag("authz.enable_course_authoring")

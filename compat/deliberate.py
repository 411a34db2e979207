"""Deliberate differences between the Go service and openedx-authz 1.35.0's own migration.

The differential test (compat/tests/test_differential.py) runs the same manual steps through
openedx-authz's migration functions and through the Go binary on identical databases and
compares the resulting tables and run records. A difference fails the test unless an entry
here excuses it. Each is also explained, for users, in docs/openedx-compatibility.md.

Both entries are of one kind: a legacy row on which openedx-authz fails the *whole* run, where
the service reports that row alone and moves the rest. The test checks them precisely instead
of ignoring them: openedx-authz runs on its copy of the database *without* the rows the entry
names, the Go binary on its copy *with* them, and then the Go side must equal the openedx-authz
side once those rows are taken out of it (they stay in student_courseaccessrole, and each is one
per-row error, `reason` with `details` containing `details_has`, in the run that selected it;
or `unknown_role`, which both report first for a role that is not mapped).

Each entry:
    id           short name, shown in the test output
    row          predicate on a legacy row (username, org, course_id, role): the rows concerned
    reason       the per-row error reason Go reports for such a row
    details_has  a substring of its `details`
    why          why the service differs on purpose
"""
import re

from opaque_keys import InvalidKeyError
from opaque_keys.edx.keys import CourseKey

MAPPED = {"instructor", "staff", "limited_staff", "data_researcher", "beta_testers", "ccx_coach"}


def _invalid_course_v1(course_id: str) -> bool:
    if not course_id.startswith("course-v1:"):
        return False
    try:
        CourseKey.from_string(course_id)
    except InvalidKeyError:
        return True
    return False


# openedx-authz's OrgGlobData.ORG_NAME_VALID_PATTERN
_GLOB_ORG = re.compile(r"^[a-zA-Z0-9._-]+$")

DELIBERATE = [
    {
        "id": "invalid-course-key-per-row",
        "row": lambda user, org, course_id, role: _invalid_course_v1(course_id),
        "reason": "no_scope",
        "details_has": "is not a valid course-v1 key",
        "why": "openedx-authz loads the row through CourseKeyField, which raises InvalidKeyError and "
               "fails the whole run: one bad row holds back every role of the org. The service reports "
               "the row as no_scope, leaves it in place, and moves the rest.",
    },
    {
        "id": "org-glob-openedx-authz-cannot-hold",
        "row": lambda user, org, course_id, role: course_id == "" and role in MAPPED and not _GLOB_ORG.match(org),
        "reason": "no_scope",
        "details_has": "cannot hold an org-wide scope",
        "why": "openedx-authz's org globs accept only ASCII letters, digits, '.', '_' and '-', and its "
               "assign raises ValueError for any other org (e.g. 'Örg'), failing the whole run. The "
               "service reports the org-wide row as no_scope, leaves it in place, and moves the rest "
               "(course keys of such an org are valid, and move).",
    },
]


def _ci_colliding_course_keys(fx) -> bool:
    """Two spellings of one course key (equal case-insensitively, different as written)."""
    keys = {c for _, _, c, _ in fx.legacy if c.startswith("course-v1:")}
    keys |= {s for _, _, s in fx.preassigned if not s.endswith("+*")}
    keys |= set(fx.overviews)
    return len({k.lower() for k in keys}) < len(keys)


# Fixtures that cannot be compared row for row, checked by invariants instead (see
# test_differential.check_invariants): what must hold of the Go side whatever openedx-authz did.
FIXTURE_LEVEL = [
    {
        "id": "mysql-course-key-spellings",
        "backend": "mysql",
        "applies": _ci_colliding_course_keys,
        "why": "On MySQL's case-insensitive collation two spellings of one course key "
               "(course-v1:OrgX+C1+2024, course-v1:orgx+C1+2024) are one course: one overview row, "
               "one scope row (external_key is unique case-insensitively). openedx-authz then either "
               "fails the whole run with a duplicate external_key IntegrityError (it creates a scope "
               "by the overview link, then collides with the other spelling's scope), or names the "
               "shared scope after whichever spelling its unordered query returns first. The "
               "service finds the existing scope by the database's comparison and links it, so "
               "both spellings share one scope and the run goes on. Checked: no Go run fails, no "
               "two scope rows for one course, every assignment has its extended rule and subject.",
    },
]

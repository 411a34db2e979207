"""The Go binary on a database made by the real Django migrations, checked with openedx-authz's
own public API.

Every test: a fresh migrated database, data seeded through the Django ORM and committed, the Go
binary run as a subprocess, then openedx-authz (in this process) reads what Go wrote.
"""
import pytest
from django.db import connections

from tests import compat_env as env
from tests.compat_env import go, legacy, legacy_rows, overview, user

ROLE_MAP = {
    "instructor": "course_admin",
    "staff": "course_staff",
    "limited_staff": "course_limited_staff",
    "data_researcher": "course_data_researcher",
    "beta_testers": "course_beta_tester",
    "ccx_coach": "ccx_coach",
}

ORG = "CompatX"
K1 = f"course-v1:{ORG}+C1+2024"  # has an overview row
K2 = f"course-v1:{ORG}+C2+2024"  # has an overview row
K3 = f"course-v1:{ORG}+NoOverview+2024"  # no overview row (course not published yet)
OTHER_ORG = "OtherX"
KO = f"course-v1:{OTHER_ORG}+C1+2024"

# (user, org, course_id, legacy role)
SEED = [
    ("alice", ORG, K1, "instructor"),
    ("bob", ORG, K1, "staff"),
    ("carol", ORG, K1, "limited_staff"),
    ("dave", ORG, K1, "data_researcher"),
    ("erin", ORG, K1, "beta_testers"),
    ("frank", ORG, K1, "ccx_coach"),
    ("gina", ORG, K1, "finance_admin"),  # unmapped: never migrated
    ("bob", ORG, K2, "staff"),
    ("alice", ORG, K3, "staff"),
    ("hank", ORG, "", "instructor"),  # org-wide
    ("iris", ORG, "", "staff"),  # org-wide
    ("gina", ORG, "", "sales_admin"),  # org-wide, unmapped
    ("olga", OTHER_ORG, KO, "instructor"),  # another org: never touched
    ("olga", OTHER_ORG, "", "staff"),
]
USERS = sorted({r[0] for r in SEED})


def seed():
    for key in (K1, K2, KO):
        overview(key)
    for row in SEED:
        legacy(*row)
    return legacy_rows()


def expected_authz(rows):
    """{(user, authz role, scope external key)} that a forward of `rows` produces."""
    out = set()
    for username, org, course_id, role in rows:
        if role in ROLE_MAP:
            out.add((username, ROLE_MAP[role], course_id or f"course-v1:{org}+*"))
    return out


def rows_of(org=None, course=None):
    return {r for r in SEED if (org is None or r[1] == org) and (course is None or r[2] == course)}


def api_view():
    """Assignments as a freshly started LMS process sees them through openedx-authz's API."""
    env.fresh_process_view()
    return env.assignments_via_api(USERS + ["ivan", "jules"])


def course_scope_rows(key):
    from openedx_authz.models.scopes import CourseScope  # pylint: disable=import-outside-toplevel

    return [
        (s.external_key, None if s.course_overview_id is None else str(s.course_overview_id))
        for s in CourseScope.objects.filter(external_key=key)
    ]


def all_scope_rows():
    from openedx_authz.models.core import Scope  # pylint: disable=import-outside-toplevel

    return sorted(s.external_key or "" for s in Scope.objects.all())


def companions_consistent():
    """Every `g` rule has its extended rule, user subject and (for course scopes) scope row."""
    from casbin_adapter.models import CasbinRule  # pylint: disable=import-outside-toplevel
    from openedx_authz.models.core import ExtendedCasbinRule  # pylint: disable=import-outside-toplevel

    problems = []
    for rule in CasbinRule.objects.filter(ptype="g"):
        key = f"g,{rule.v0},{rule.v1},{rule.v2},{rule.v3}"
        ext = ExtendedCasbinRule.objects.filter(casbin_rule=rule).select_related("scope", "subject").first()
        if ext is None:
            problems.append(f"no extended rule for {key}")
            continue
        if ext.casbin_rule_key != key:
            problems.append(f"extended rule key {ext.casbin_rule_key!r} != {key!r}")
        username = rule.v0.split("^", 1)[1]
        if ext.subject is None or getattr(getattr(ext.subject, "usersubject", None), "user", None) is None:
            problems.append(f"{key}: no user subject")
        elif ext.subject.usersubject.user.username != username:
            problems.append(f"{key}: subject is user {ext.subject.usersubject.user.username}")
        scope_key = rule.v2.split("^", 1)[1]
        if scope_key.endswith("+*"):
            if ext.scope_id is not None:
                problems.append(f"{key}: org glob has a scope row")
        elif ext.scope is None or ext.scope.external_key != scope_key:
            problems.append(f"{key}: scope row {getattr(ext.scope, 'external_key', None)!r}")
    return problems


def audit_rows():
    from openedx_authz.models.core import RoleAssignmentAudit  # pylint: disable=import-outside-toplevel

    return sorted((a.operation, a.subject, a.role, a.scope, a.actor_id) for a in RoleAssignmentAudit.objects.all())


# ------------------------------------------------------------------------------------ schema


def test_schema_check_on_django_made_database(db):
    """`schema check` passes on the Django-made database as it is (the service's own tables not
    created yet are warnings only); `schema migrate` adds only those; `schema check` then passes
    with no warning; `schema create` refuses the database."""
    before = _schema_without_own(db)
    first = go(db, "schema", "check", check=False)
    print(f"schema check before `schema migrate`: exit {first.returncode}\n{first.output}")
    assert first.returncode == 0, first.output
    lines = [l for l in first.output.splitlines() if l.strip() and not l.startswith("schema check:")]
    assert lines and all(l.startswith("warning: authz_consumer_") for l in lines), first.output
    refused = go(db, "schema", "create", check=False)
    assert refused.returncode != 0 and "already holds Open edX tables" in refused.output, refused.output
    assert _schema_without_own(db) == before, "a refused `schema create` changed nothing"
    go(db, "schema", "migrate")
    after = _schema_without_own(db)
    assert after == before, "`consumer schema migrate` changed Open edX tables"
    res = go(db, "schema", "check", check=False)
    print(f"schema check after `schema migrate`:\n{res.output}")
    assert res.returncode == 0, f"schema check on the Django-made database:\n{res.output}"
    assert "(0 warnings)" in res.output, res.output


def _schema_without_own(db):
    import io  # pylint: disable=import-outside-toplevel

    import dbtool  # pylint: disable=import-outside-toplevel

    buf = io.StringIO()
    connections.close_all()
    dbtool.schema(db.url, buf)
    stmts = [s for s in buf.getvalue().split(";\n") if "authz_consumer_" not in s and not s.startswith("-- server")]
    return sorted(s.strip() for s in stmts if s.strip())


# ------------------------------------------------------------------------------ Go forward


def test_go_forward_course_then_openedx_authz_api(db):
    original = seed()
    env.go_prepare(db)
    go(db, "migrate", "--course-id-list", K1, "--delete")

    moved = {r for r in rows_of(course=K1) if r[3] in ROLE_MAP}
    assert legacy_rows() == original - moved, "legacy rows left after a course forward with --delete"
    assert api_view() == expected_authz(moved)

    from openedx_authz.api import users as users_api  # pylint: disable=import-outside-toplevel

    env.fresh_process_view()
    in_scope = {
        (a.subject.external_key, r.external_key) for a in users_api.get_all_user_role_assignments_in_scope(K1)
        for r in a.roles
    }
    assert in_scope == {(u, ROLE_MAP[role]) for u, _o, _c, role in moved}
    assert course_scope_rows(K1) == [(K1, K1)], "course scope row must carry external_key and course_overview_id"
    assert companions_consistent() == []
    assert audit_rows() == sorted(
        ("created", f"user^{u}", f"role^{ROLE_MAP[role]}", f"course-v1^{c}", None) for u, _o, c, role in moved
    )

    run = [r for r in env.runs() if r.scope_key == K1]
    assert len(run) == 1, [str(r) for r in env.runs()]
    run = run[0]
    assert (run.migration_type, run.scope_type, run.status) == ("forward", "course", "partial_success")
    md = run.metadata
    assert (md["total"], md["success_count"], md["error_count"]) == (7, 6, 1)
    assert sorted((s["subject"], s["role"], s["scope"]) for s in md["successes"]) == sorted(
        (u, role, c) for u, _o, c, role in moved
    )
    assert [(e["subject"], e["role"]) for e in md["errors"]["unknown_role"]] == [("gina", "finance_admin")]
    assert "scope" not in md["errors"]["unknown_role"][0], "openedx-authz leaves empty fields out"


def test_assign_new_user_in_go_migrated_course(db):
    """What broke before: a scope row without its course_overview_id link made openedx-authz's
    next assignment in that course fail with a duplicate external_key IntegrityError."""
    seed()
    env.go_prepare(db)
    go(db, "migrate", "--course-id-list", K1, "--delete")

    from openedx_authz.api import users as users_api  # pylint: disable=import-outside-toplevel

    env.fresh_process_view()
    user("ivan")
    assert users_api.assign_role_to_user_in_scope("ivan", "course_staff", K1) is True
    assert ("ivan", "course_staff", K1) in api_view()
    assert course_scope_rows(K1) == [(K1, K1)], "still exactly one scope row for the course"
    assert companions_consistent() == []


def test_is_user_allowed_after_go_forward(db):
    seed()
    env.go_prepare(db)
    go(db, "migrate", "--course-id-list", K1, "--delete")
    go(db, "migrate", "--org-id", ORG, "--delete")

    from openedx_authz.api import users as users_api  # pylint: disable=import-outside-toplevel

    env.fresh_process_view()
    allowed = users_api.is_user_allowed
    assert allowed("alice", "courses.manage_course_team", K1)
    assert allowed("bob", "courses.edit_course_content", K1)
    assert not allowed("bob", "courses.manage_course_team", K1)
    assert allowed("carol", "courses.legacy_limited_staff_role_permissions", K1)
    assert allowed("dave", "courses.legacy_data_researcher_permissions", K1)
    assert allowed("erin", "courses.legacy_beta_tester_permissions", K1)
    assert not allowed("gina", "courses.view_course", K1), "unmapped legacy role gives nothing"
    assert not allowed("alice", "courses.manage_course_team", KO), "other org untouched"
    # org-wide roles reach every course of the org through the glob
    assert allowed("hank", "courses.manage_course_team", K2)
    assert allowed("iris", "courses.edit_course_content", K3)
    assert not allowed("iris", "courses.manage_course_team", K2)
    assert not allowed("hank", "courses.manage_course_team", KO)


def test_go_forward_org_then_openedx_authz_api(db):
    original = seed()
    env.go_prepare(db)
    go(db, "migrate", "--org-id", ORG, "--delete")

    moved = {r for r in rows_of(org=ORG) if r[3] in ROLE_MAP}
    assert legacy_rows() == original - moved
    assert api_view() == expected_authz(moved)
    assert course_scope_rows(K1) == [(K1, K1)]
    assert course_scope_rows(K2) == [(K2, K2)]
    assert course_scope_rows(K3) == [(K3, None)], "no overview yet: scope keyed by external_key, link null"
    assert f"course-v1:{ORG}+*" not in all_scope_rows(), "org globs have no scope row"
    assert companions_consistent() == []

    org_runs = [r for r in env.runs() if r.scope_type == "org"]
    assert [(r.migration_type, r.scope_key, r.status) for r in org_runs] == [("forward", ORG, "partial_success")]
    md = org_runs[0].metadata
    assert md["success_count"] == len(moved)
    assert sorted(e["role"] for e in md["errors"]["unknown_role"]) == ["finance_admin", "sales_admin"]

    # The course gets published: openedx-authz's post_save handler links the pending scope,
    # and a new assignment there works.
    overview(K3)
    assert course_scope_rows(K3) == [(K3, K3)]
    from openedx_authz.api import users as users_api  # pylint: disable=import-outside-toplevel

    env.fresh_process_view()
    user("jules")
    assert users_api.assign_role_to_user_in_scope("jules", "course_admin", K3) is True
    assert course_scope_rows(K3) == [(K3, K3)]


# ------------------------------------------------- mixed: Go one way, openedx-authz the other


def test_openedx_authz_rollback_of_go_forward(db):
    original = seed()
    env.go_prepare(db)
    go(db, "migrate", "--course-id-list", K1, "--delete")
    go(db, "migrate", "--org-id", ORG, "--delete")
    assert legacy_rows() != original

    run = env.openedx_authz_run("rollback", "org", ORG)
    assert run.status == "completed", run.metadata
    assert legacy_rows() == original, "openedx-authz's rollback of Go's forward gives back the legacy rows"
    assert api_view() == set()
    assert env.g_rules() == set()


def test_go_rollback_of_openedx_authz_forward(db):
    original = seed()
    env.go_prepare(db)
    run_c = env.openedx_authz_run("forward", "course", K1)
    run_o = env.openedx_authz_run("forward", "org", ORG)
    assert (run_c.status, run_o.status) == ("partial_success", "partial_success")
    assert api_view() == expected_authz(rows_of(org=ORG))

    go(db, "rollback", "--course-id-list", K1, "--delete")
    assert api_view() == expected_authz(rows_of(org=ORG) - rows_of(course=K1))
    go(db, "rollback", "--org-id", ORG, "--delete")
    assert legacy_rows() == original, "Go's rollback of openedx-authz's forward gives back the legacy rows"
    assert api_view() == set()
    assert env.g_rules() == set()
    from openedx_authz.models.core import ExtendedCasbinRule  # pylint: disable=import-outside-toplevel

    assert ExtendedCasbinRule.objects.count() == 0, "extended rules go with their assignments"
    deleted = [a for a in audit_rows() if a[0] == "deleted"]
    assert len(deleted) == len(expected_authz(rows_of(org=ORG)))


# ---------------------------------------------------------- a running LMS process (cache)


@pytest.mark.parametrize("direction", ["forward", "rollback"])
def test_running_lms_enforcer_sees_go_changes(db, direction):
    """An LMS/CMS process that loaded its Casbin policy before a Go run must see the run.

    openedx-authz reloads its in-memory policy only when openedx_authz_policycachecontrol's
    version changes (AuthzEnforcer.load_policy_if_needed; its own writes call
    invalidate_policy_cache()). A writer that changes casbin_rule without bumping it leaves every
    running process on the old policy: new team members are refused, and, after a rollback,
    removed ones keep their Studio permissions until something else bumps the version.
    """
    from openedx_authz.api import users as users_api  # pylint: disable=import-outside-toplevel

    seed()
    env.go_prepare(db)
    if direction == "rollback":
        go(db, "migrate", "--course-id-list", K1, "--delete")
    env.fresh_process_view()  # the LMS starts and loads the policy now
    before = users_api.is_user_allowed("alice", "courses.manage_course_team", K1)
    assert before is (direction == "rollback")

    if direction == "forward":
        go(db, "migrate", "--course-id-list", K1, "--delete")
    else:
        go(db, "rollback", "--course-id-list", K1, "--delete")
    # no reset of this process's caches: a long-running LMS worker
    after = users_api.is_user_allowed("alice", "courses.manage_course_team", K1)
    assert after is (direction == "forward"), (
        f"a running openedx-authz process still answers {after} after Go's {direction}: "
        "the run did not bump openedx_authz_policycachecontrol.version"
    )

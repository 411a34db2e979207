"""Shared machinery of the compatibility-tier tests.

One Python process plays the part of the LMS/CMS: it holds Django (our compat project) and
openedx-authz, pointed at one database at a time. The Go binary runs as a subprocess against
the same database. Every write is committed (Django autocommit; no test transactions) so the
other side sees it.

Backends: env COMPAT_BACKEND = sqlite (default) or mysql. MariaDB needs AUTHZ_TEST_MYSQL_URL
(scripts/services.sh env), a user that may create databases.

A database is made once per process by the real Django migrations plus openedx-authz's
`load_policies` (as an Open edX deployment runs it), the "template"; each test gets a copy
(SQLite: file copy; MariaDB: the template's SHOW CREATE TABLE replayed in a new database and
its rows copied), so every test starts from the same migrated state quickly.
"""
from __future__ import annotations

import atexit
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

COMPAT_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = COMPAT_DIR.parent
if str(COMPAT_DIR) not in sys.path:
    sys.path.insert(0, str(COMPAT_DIR))

BACKEND = os.environ.get("COMPAT_BACKEND", "sqlite")
if BACKEND not in ("sqlite", "mysql"):
    raise SystemExit(f"COMPAT_BACKEND must be sqlite or mysql, not {BACKEND!r}")

_WORKDIR = Path(tempfile.mkdtemp(prefix="compat-tests-"))
_counter = itertools.count(1)


def _mysql_base() -> str:
    url = os.environ.get("AUTHZ_TEST_MYSQL_URL", "")
    if not url:
        raise RuntimeError(
            "MariaDB is not reachable: AUTHZ_TEST_MYSQL_URL is unset. Start it with: "
            'bash scripts/services.sh start && eval "$(bash scripts/services.sh env)"'
        )
    url = url.rstrip("/")
    scheme, rest = url.split("://", 1)
    if "/" in rest:
        rest = rest.split("/", 1)[0]
    return f"{scheme}://{rest}"


def _new_url(tag: str) -> str:
    n = next(_counter)
    if BACKEND == "sqlite":
        return f"sqlite:///{_WORKDIR}/{tag}-{n}.db"
    return f"{_mysql_base()}/compat_{os.getpid()}_{tag}_{n}"


# Django is configured before anything imports models: the settings read COMPAT_DB_URL once.
_BOOT_URL = _new_url("boot")
os.environ["COMPAT_DB_URL"] = _BOOT_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "compat_project.settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connections  # noqa: E402

import dbtool  # noqa: E402
from compat_project import dburl  # noqa: E402

CONSUMER_BIN = os.environ.get("AUTHZ_CONSUMER_BIN") or str(REPO_ROOT / "bin" / "consumer")


@dataclass
class Database:
    """One database the tests use; `url` is both Django's and the Go binary's."""

    url: str

    @property
    def kind(self) -> str:
        return dburl.parse(self.url)[0]

    @property
    def info(self) -> dict:
        return dburl.parse(self.url)[1]

    @property
    def label(self) -> str:
        return self.url.split("@")[-1] if "@" in self.url else self.url

    def activate(self) -> "Database":
        """Point this process's Django (and so openedx-authz) at this database."""
        connections.close_all()
        settings = connections["default"].settings_dict
        settings["NAME"] = self.info["path"] if self.kind == "sqlite" else self.info["name"]
        reset_process_caches()
        return self

    def drop(self) -> None:
        connections.close_all()
        try:
            dbtool.dropdb(self.url)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            print(f"compat: could not drop {self.label}: {exc}")


def reset_process_caches() -> None:
    """Forget what this process cached about the previous database (a fresh LMS process)."""
    from django.core.cache import cache  # pylint: disable=import-outside-toplevel
    from edx_django_utils.cache import RequestCache  # pylint: disable=import-outside-toplevel
    from openedx_authz.engine.enforcer import AuthzEnforcer  # pylint: disable=import-outside-toplevel

    cache.clear()
    RequestCache.clear_all_namespaces()
    AuthzEnforcer._last_policy_loaded_version = None  # pylint: disable=protected-access


def fresh_process_view() -> None:
    """What a process that starts now would see: its enforcer loads the policy from the DB.

    openedx-authz caches the Casbin policy in memory and reloads it only when
    openedx_authz_policycachecontrol.version changes (AuthzEnforcer.load_policy_if_needed).
    API checks that are about the data (not about cache invalidation) start from here;
    test_enforcer_cache_* checks the invalidation itself.
    """
    reset_process_caches()


_template: Database | None = None


def _cleanup() -> None:
    """At exit: drop the template database (MariaDB) and the temp directory (SQLite files)."""
    if _template is not None and BACKEND == "mysql":
        _template.drop()
    if os.environ.get("COMPAT_KEEP_DATABASES") != "1":
        shutil.rmtree(_WORKDIR, ignore_errors=True)


atexit.register(_cleanup)


def template() -> Database:
    """The migrated-and-policies-loaded database every test copies (made once per process)."""
    global _template  # pylint: disable=global-statement
    if _template is None:
        db = Database(_new_url("template"))
        dbtool.reset(db.url)
        db.activate()
        t0 = time.monotonic()
        call_command("migrate", interactive=False, verbosity=0)
        call_command("load_policies", verbosity=0)
        connections.close_all()
        print(f"compat: template {db.label} migrated in {time.monotonic() - t0:.1f}s")
        _template = db
    return _template


def fresh_database(tag: str = "t") -> Database:
    """A new database, a copy of the template, activated."""
    src = template()
    dst = Database(_new_url(tag))
    connections.close_all()
    if BACKEND == "sqlite":
        shutil.copyfile(src.info["path"], dst.info["path"])
    else:
        _clone_mysql(src, dst)
    return dst.activate()


def copy_database(src: Database, tag: str = "copy") -> Database:
    """A copy of src as it is now (schema and rows), not activated."""
    dst = Database(_new_url(tag))
    connections.close_all()
    if BACKEND == "sqlite":
        shutil.copyfile(src.info["path"], dst.info["path"])
    else:
        _clone_mysql(src, dst)
    return dst


def _clone_mysql(src: Database, dst: Database) -> None:
    dbtool.reset(dst.url)
    conn = dbtool._mysql_server(src.info)  # pylint: disable=protected-access
    try:
        cur = conn.cursor()
        s, d = src.info["name"], dst.info["name"]
        cur.execute(f"SHOW FULL TABLES FROM `{s}` WHERE Table_type = 'BASE TABLE'")
        tables = [r[0] for r in cur.fetchall()]
        cur.execute("SET FOREIGN_KEY_CHECKS = 0")
        cur.execute(f"USE `{d}`")
        for t in tables:
            cur.execute(f"SHOW CREATE TABLE `{s}`.`{t}`")
            cur.execute(cur.fetchone()[1])
            cur.execute(f"INSERT INTO `{d}`.`{t}` SELECT * FROM `{s}`.`{t}`")
        cur.execute("SET FOREIGN_KEY_CHECKS = 1")
        conn.commit()
    finally:
        conn.close()


# ---------------------------------------------------------------- the Go binary


@dataclass
class GoResult:
    args: list
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


def go(db: Database, *args: str, check: bool = True, timeout: float = 120) -> GoResult:
    """Run the consumer binary against db; print its output into the test log."""
    if not os.path.exists(CONSUMER_BIN):
        raise RuntimeError(
            f"Go binary {CONSUMER_BIN} missing: build it with `go build -o bin/consumer ./cmd/consumer` "
            "(scripts/compat.sh test does) or set AUTHZ_CONSUMER_BIN"
        )
    connections.close_all()  # no open SQLite read transaction in our way
    extra = []
    if args and args[0] in ("migrate", "rollback") and "--dry-run" not in args:
        # openedx-authz's management commands do not look at the flag; the binary refuses a run
        # against the scope's effective state without --force.
        extra = ["--force"]
    cmd = [CONSUMER_BIN, *args, *extra, "--database-url", db.url, "--log-format", "text", "--log-level", "warn"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    res = GoResult(cmd, proc.returncode, proc.stdout, proc.stderr)
    print(f"$ consumer {' '.join(args)}  -> exit {proc.returncode}")
    if res.output:
        print("  " + res.output.replace("\n", "\n  "))
    if check and proc.returncode != 0:
        raise AssertionError(f"consumer {' '.join(args)} exited {proc.returncode}:\n{res.output}")
    return res


def go_prepare(db: Database) -> None:
    """The service's own tables (authz_consumer_*), as a deployment's `schema migrate` makes them."""
    go(db, "schema", "migrate")


# ---------------------------------------------------------------- seeding (Django ORM, committed)


def user(username: str):
    from django.contrib.auth import get_user_model  # pylint: disable=import-outside-toplevel

    u, _ = get_user_model().objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    return u


def overview(course_key: str):
    from opaque_keys.edx.keys import CourseKey  # pylint: disable=import-outside-toplevel

    from openedx.core.djangoapps.content.course_overviews.models import (  # pylint: disable=import-outside-toplevel
        CourseOverview,
    )

    key = CourseKey.from_string(course_key)
    obj = CourseOverview(
        id=key,
        version=CourseOverview.VERSION,
        _location=key.make_usage_key("course", "course"),
        org=key.org,
        display_name=f"Course {key.course}",
        display_number_with_default=key.course,
        display_org_with_default=key.org,
        course_image_url="",
    )
    obj.save()  # post_save: openedx-authz links any pending CourseScope to it
    return obj


def legacy(username: str, org: str, course_id: str, role: str):
    from common.djangoapps.student.models import CourseAccessRole  # pylint: disable=import-outside-toplevel

    return CourseAccessRole.objects.create(user=user(username), org=org, course_id=course_id, role=role)


def legacy_rows() -> set:
    """{(username, org, course_id, role)} of student_courseaccessrole."""
    from common.djangoapps.student.models import CourseAccessRole  # pylint: disable=import-outside-toplevel

    return {
        (r.user.username, r.org, str(r.course_id) if r.course_id else "", r.role)
        for r in CourseAccessRole.objects.select_related("user").all()
    }


def g_rules() -> set:
    """{(v0, v1, v2)} of the `g` rules in casbin_rule."""
    from casbin_adapter.models import CasbinRule  # pylint: disable=import-outside-toplevel

    return set(CasbinRule.objects.filter(ptype="g").values_list("v0", "v1", "v2"))


def assignments_via_api(usernames) -> set:
    """{(username, role, scope external key)} as openedx-authz's public API returns them."""
    from openedx_authz.api import users as users_api  # pylint: disable=import-outside-toplevel

    out = set()
    for name in usernames:
        for a in users_api.get_user_role_assignments(user_external_key=name):
            for role in a.roles:
                out.add((a.subject.external_key, role.external_key, a.scope.external_key))
    return out


def runs() -> list:
    from openedx_authz.models.authz_migration import (  # pylint: disable=import-outside-toplevel
        AuthzCourseAuthoringMigrationRun,
    )

    return list(AuthzCourseAuthoringMigrationRun.objects.order_by("id"))


def openedx_authz_run(migration_type: str, scope_type: str, scope_key: str, *, delete: bool = True,
                      excluded: frozenset = frozenset()):
    """openedx-authz's own migration of one course or org: run_course_authoring_migration, the
    function its flag handler calls (unlike its management commands, it records a run)."""
    from common.djangoapps.student.models import CourseAccessRole  # pylint: disable=import-outside-toplevel
    from openedx_authz.engine.utils import run_course_authoring_migration  # pylint: disable=import-outside-toplevel
    from openedx_authz.models.subjects import UserSubject  # pylint: disable=import-outside-toplevel

    fresh_process_view()
    run = run_course_authoring_migration(
        migration_type=migration_type,
        scope_type=scope_type,
        scope_key=scope_key,
        course_access_role_model=CourseAccessRole,
        user_subject_model=UserSubject,
        course_id_list=[scope_key] if scope_type == "course" else None,
        org_id=scope_key if scope_type == "org" else None,
        excluded_course_ids=excluded,
        delete_after_migration=delete,
    )
    connections.close_all()
    return run

"""Event-driven: the Go consumer on a real Kafka broker and the Django-made database.

`consumer run --auto-migrate` in the background; `consumer publish --json` saves the override
row (as Django's save would) and publishes its event; the consumer reconciles the scope and
records a run in openedx-authz's run table; openedx-authz's API then reads the result.
"""
import os
import signal
import socket
import subprocess
import time
import uuid

import pytest
from django.db import connections

from tests import compat_env as env
from tests.compat_env import go, legacy, legacy_rows, overview
from tests.test_api import ORG, ROLE_MAP, api_view, companions_consistent, course_scope_rows, expected_authz

K = f"course-v1:{ORG}+Events+2024"
SEED = [
    ("alice", ORG, K, "instructor"),
    ("bob", ORG, K, "staff"),
    ("carol", ORG, K, "beta_testers"),
    ("gina", ORG, K, "finance_admin"),
]


def _brokers():
    brokers = os.environ.get("AUTHZ_TEST_KAFKA_BROKERS", "")
    if not brokers:
        pytest.fail(
            "no Kafka broker: AUTHZ_TEST_KAFKA_BROKERS is unset. Start one with: "
            'bash scripts/kafka.sh start && eval "$(bash scripts/kafka.sh env)"'
        )
    host, port = brokers.split(",")[0].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as exc:
        pytest.fail(f"Kafka at {brokers} unreachable ({exc}); start it with: bash scripts/kafka.sh start")
    return brokers


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_run(migration_type, scope_key, count, timeout=60):
    """Wait for `count` finished runs of this type for the scope; return the newest."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connections.close_all()
        done = [
            r for r in env.runs()
            if r.migration_type == migration_type and r.scope_key == scope_key and r.status != "running"
        ]
        if len(done) >= count:
            return done[-1]
        time.sleep(0.3)
    raise AssertionError(
        f"no finished {migration_type} run for {scope_key} within {timeout}s; runs: {[str(r) for r in env.runs()]}"
    )


def test_event_driven_forward_and_rollback(db, tmp_path):
    brokers = _brokers()
    overview(K)
    for row in SEED:
        legacy(*row)
    original = legacy_rows()
    env.go_prepare(db)

    topic = f"compat-{uuid.uuid4().hex[:10]}"
    common = ["--brokers", brokers, "--topic", topic, "--database-url", db.url]
    log_path = tmp_path / "consumer.log"
    connections.close_all()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            [env.CONSUMER_BIN, "run", "--auto-migrate", *common, "--group-id", f"g-{topic}",
             "--http-addr", f"127.0.0.1:{_free_port()}", "--log-format", "text"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(1.0)
        assert proc.poll() is None, f"consumer run exited early:\n{log_path.read_text()}"

        go(db, "publish", "--json", "--scope-type", "course", "--scope-key", K, "--choice", "on",
           "--brokers", brokers, "--topic", topic)
        run = _wait_run("forward", K, 1)
        assert run.status == "partial_success", run.metadata  # finance_admin: unknown_role
        assert run.scope_type == "course"
        moved = {r for r in SEED if r[3] in ROLE_MAP}
        assert legacy_rows() == original - moved
        assert api_view() == expected_authz(moved)
        assert course_scope_rows(K) == [(K, K)]
        assert companions_consistent() == []
        from openedx_authz.api import users as users_api  # pylint: disable=import-outside-toplevel

        env.fresh_process_view()
        assert users_api.is_user_allowed("alice", "courses.manage_course_team", K)

        go(db, "publish", "--json", "--scope-type", "course", "--scope-key", K, "--choice", "off",
           "--brokers", brokers, "--topic", topic)
        run = _wait_run("rollback", K, 1)
        assert run.status == "completed", run.metadata
        assert legacy_rows() == original
        assert api_view() == set()
        env.fresh_process_view()
        assert not users_api.is_user_allowed("alice", "courses.manage_course_team", K)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        print(f"consumer run exited {rc}; its log:\n{log_path.read_text()}")
    assert rc == 0, "SIGTERM drains and exits 0"

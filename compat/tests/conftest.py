"""pytest wiring of the compatibility tier: one backend per pytest process (COMPAT_BACKEND)."""
import pytest

from tests import compat_env


def pytest_report_header(config):  # pylint: disable=unused-argument
    return [
        f"compat backend: {compat_env.BACKEND}",
        f"consumer binary: {compat_env.CONSUMER_BIN}",
    ]


@pytest.fixture
def db():
    """A fresh copy of the migrated Open edX database, active in this process's Django."""
    database = compat_env.fresh_database("t")
    print(f"compat: database {database.label}")
    yield database
    if compat_env.BACKEND == "mysql":
        database.drop()

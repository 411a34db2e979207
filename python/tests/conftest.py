import pytest

from tests import recording


@pytest.fixture(autouse=True)
def _clear_recorded():
    recording.SENT.clear()
    yield
    recording.SENT.clear()

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import pynn  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_names():
    """Every test starts from `dense`, `sequential`, ... as a new process would."""
    pynn.backend.clear_session()
    yield

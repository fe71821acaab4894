import os
import sys

import pytest

# tests import the float64 oracles as `import reference`
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture
def float64():
    """nncore in float64 for one test (finite-difference gradient checks), floatx restored after."""
    import nncore
    old = nncore.floatx()
    nncore.set_floatx("float64")
    yield
    nncore.set_floatx(old)

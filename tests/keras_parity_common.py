"""What the Keras 3 parity tests share (tests/test_keras_parity*.py import it first).

Keras on the torch backend, the installed one: a test module importing this is skipped when keras is
not installed or was imported earlier with another backend. `float64_both` (autouse once imported)
runs Keras and nncore in float64 for the module; `pytestmark` silences the NumPy 2 warning Keras's
torch backend raises on every np.array(tensor).
"""
import contextlib
import os

os.environ["KERAS_BACKEND"] = "torch"   # before keras is imported

import pytest  # noqa: E402

keras = pytest.importorskip("keras")
if keras.backend.backend() != "torch":
    pytest.skip("keras parity tests need KERAS_BACKEND=torch", allow_module_level=True)

import nncore  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")


@contextlib.contextmanager
def floatx_both(dtype):
    """Keras's floatx and dtype policy and nncore's floatx set to `dtype`, restored afterwards."""
    old_k, old_p, old_n = keras.config.floatx(), keras.config.dtype_policy(), nncore.floatx()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    nncore.set_floatx(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(old_k)
        keras.config.set_dtype_policy(old_p)
        nncore.set_floatx(old_n)


@pytest.fixture(scope="module", autouse=True)
def float64_both():
    with floatx_both("float64"):
        yield

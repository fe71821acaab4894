"""nncore: neural-network training on the CPU with our own OpenMP C kernels
under a Keras-like Python API."""
import os as _os

# Idle OpenMP threads sleep instead of spinning: on a machine whose other cores
# are busy, spinning threads steal the time the working ones need. Only a
# default; must be set before the OpenMP runtime loads.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from nncore._threads import get_num_threads, set_num_threads  # noqa: E402
from nncore._config import floatx, set_floatx, show_config  # noqa: E402
from nncore._config import get_simd_level, set_simd_level  # noqa: E402
from nncore._random import set_seed  # noqa: E402
from nncore import ops  # noqa: E402  (loads every kernel extension in this process: see csrc/runtime.c)

from nncore._version import __version__  # noqa: E402  (the one place the version is written)

__all__ = ["get_num_threads", "set_num_threads", "show_config", "floatx", "set_floatx", "set_seed", "ops", "__version__"]
__all__ += ["set_simd_level", "get_simd_level"]

# --- public names added by the model, optimizer and saving work go below ---
from nncore import activations, layers, losses, models, optimizers  # noqa: E402
from nncore import callbacks, initializers, metrics, regularizers, saving  # noqa: E402
from nncore.models import Sequential  # noqa: E402
from nncore.saving import load_model  # noqa: E402
from nncore.layers import Input  # noqa: E402
from nncore.models import Model  # noqa: E402
from nncore import mixed_precision  # noqa: E402

__all__ += [
    "Input", "Model", "Sequential", "load_model", "activations", "callbacks", "initializers", "layers", "losses",
    "metrics", "models", "optimizers", "regularizers", "saving",
]
__all__ += ["mixed_precision"]

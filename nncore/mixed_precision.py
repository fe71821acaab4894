"""Mixed precision: Keras 3's dtype policies, ``set_global_policy("mixed_bfloat16")``.

A policy names two dtypes: the *variable* dtype (the model's flat parameter buffer, the
gradients and the optimizer state) and the *compute* dtype (what a layer's products run in and
its outputs hold). nncore has three:

- ``"float32"``, ``"float64"``: both dtypes that float (the model's dtype, `nncore.floatx`).
- ``"mixed_bfloat16"``: float32 variables and optimizer state, bfloat16 compute. Dense, Conv1D
  and Conv2D run their three products (``z = x W + b``, ``dW = x^T delta``, ``dx = delta W^T``)
  on the bf16 GEMM (csrc/bf16.c; a 3x3 stride-1 convolution where the shapes pick Winograd: its bf16
  form, csrc/winograd.c, the same numbers up to float32 summation order, docs/models.md):
  operands rounded to bfloat16 (nearest even), products summed in
  float32 as ``vdpbf16ps`` sums them, the bias and the activation added in float32 and the
  result rounded to bfloat16 once, as PyTorch's ``torch.autocast`` bfloat16 ``addmm`` does
  (Keras rounds the product before the bias add too; the difference is within one bfloat16
  rounding). The gradients dW and db are bfloat16 values too (autocast casts the bfloat16
  gradient of the cast weight back to float32) before they reach the float32 optimizer.
  SimpleRNN, LSTM and GRU: x W and h U with bfloat16 operands and float32 sums (the LSTM's fused
  step loops on the bf16 micro-kernel, the rest on the float32 GEMM: a product of two bfloat16
  values is exact in float32), the gates and the cell state in float32, h (the output) and delta
  rounded as the cells write them (docs/models.md).
  Losses, softmax and every other layer (pooling, normalization, merges, activations) compute in
  float32 on those values.

Activations between layers are float32 arrays holding bfloat16 values, not uint16 buffers:
NumPy has no bfloat16; every other kernel of nncore (activations, losses, pooling,
normalization) takes float32 unchanged; a bfloat16 value is exactly a float32 whose low 16 bits
are zero, so the numbers are those of a uint16 buffer (rounding again is the identity), and the
bf16 GEMM's packing converts each operand to bfloat16 pairs once per panel anyway. The price is
memory traffic: twice the bytes of a uint16 activation.

``"mixed_float16"`` is refused: no CPU has a float16 GEMM worth having (and float16 needs loss
scaling); use ``"mixed_bfloat16"``.

Speed: bfloat16 pays only on CPUs with AVX512_BF16 (``vdpbf16ps``: AMD Zen 4 and later, Intel
Cooper Lake, Sapphire Rapids and later). Elsewhere the same bits come from an emulation on float32
FMAs, slower than float32 (`nncore.show_config` names the kernel; a warning says so once). The
convolutions that take Winograd, and the Dense layers and convolutions of a short kernel matrix (k < 64,
e.g. kh kw c of a first convolution, or a Dense on a few features), run their bf16
products on float32 kernels (operands rounded to bfloat16 first: exact products, float32 sums) on every
CPU: there the policy costs about what float32 costs (nncore/layers/conv.py, docs/models.md).
"""
import warnings

from nncore._config import floatx

__all__ = ["Policy", "DTypePolicy", "set_global_policy", "global_policy", "set_dtype_policy", "dtype_policy"]

_POLICIES = {"float32": ("float32", "float32"), "float64": ("float64", "float64"),
             "mixed_bfloat16": ("bfloat16", "float32")}
_REFUSED = {
    "mixed_float16": "nncore has no float16 compute (no CPU has a float16 GEMM worth having, and float16 needs "
                     "loss scaling); use 'mixed_bfloat16'",
    "float16": "nncore keeps float32 or float64 variables; for float16 compute use 'mixed_bfloat16' instead",
    "bfloat16": "nncore keeps its variables (the flat parameter buffer) and optimizer state in float32; "
                "use 'mixed_bfloat16' (bfloat16 compute, float32 variables)",
}
_global = None            # None: the policy named by floatx()
_warned = False


class Policy:
    """A dtype policy: the dtype a layer's variables live in and the dtype it computes in.

    Parameters
    ----------
    name : {'float32', 'float64', 'mixed_bfloat16'} or None
        None: the global policy's name.

    Attributes
    ----------
    name : str
    compute_dtype : str
        'float32', 'float64' or 'bfloat16'.
    variable_dtype : str
        'float32' or 'float64'.
    """

    def __init__(self, name=None):
        if name is None:
            name = global_policy().name
        if not isinstance(name, str):
            raise TypeError(f"Policy: name must be a string such as 'mixed_bfloat16', got {name!r} "
                            f"({type(name).__name__})")
        if name in _REFUSED:
            raise ValueError(f"Policy {name!r} is not supported: {_REFUSED[name]}")
        if name not in _POLICIES:
            raise ValueError(f"Cannot convert {name!r} to a dtype policy; valid policies: {sorted(_POLICIES)}")
        self.name = name
        self.compute_dtype, self.variable_dtype = _POLICIES[name]

    @property
    def quantization_mode(self):
        return None

    def get_config(self):
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return isinstance(other, Policy) and other.name == self.name

    def __hash__(self):
        return hash(self.name)

    def __repr__(self):
        return f'<DTypePolicy "{self.name}">'


DTypePolicy = Policy


def get(identifier):
    """A Policy from a name, a Policy, a Keras-style config dict ({'class_name': 'DTypePolicy', 'config':
    {'name': ...}}) or None (the global policy)."""
    if isinstance(identifier, Policy):
        return identifier
    if isinstance(identifier, dict):
        try:
            identifier = identifier["config"]["name"]
        except (KeyError, TypeError):
            raise ValueError(f"a dtype policy config must be {{'class_name': 'DTypePolicy', 'config': "
                             f"{{'name': ...}}}}, got {identifier!r}") from None
    return Policy(identifier)


def set_global_policy(policy):
    """Set the policy of the layers created from now on (Keras 3's
    ``keras.mixed_precision.set_global_policy`` / ``keras.config.set_dtype_policy``).

    Parameters
    ----------
    policy : str, Policy or None
        'mixed_bfloat16', 'float32', 'float64', or None to go back to the default (floatx()).
    """
    global _global
    _global = None if policy is None else get(policy)
    if _global is not None and _global.compute_dtype == "bfloat16":
        _warn_if_emulated()


def global_policy():
    """The policy new layers take (default: the policy named by `nncore.floatx()`)."""
    return _global if _global is not None else Policy(floatx())


set_dtype_policy = set_global_policy
dtype_policy = global_policy


def bf16_kernel():
    """Name of the bf16 GEMM micro-kernel in use: 'avx512bf16' (vdpbf16ps) or an emulation."""
    from nncore._kernels import gemm

    return gemm.bf16_kernel()


def _warn_if_emulated():
    """Once per process: the bf16 products are emulated here, so mixed_bfloat16 gives no speed-up."""
    global _warned
    kernel = bf16_kernel()
    if not _warned and kernel != "avx512bf16":
        _warned = True
        warnings.warn(f"mixed_bfloat16: this CPU (or the SIMD level in use) has no AVX512_BF16, so the bfloat16 "
                      f"products run on the {kernel!r} emulation of vdpbf16ps: the same numbers, but slower than "
                      "float32 (no speed-up from the policy here)", RuntimeWarning, stacklevel=3)

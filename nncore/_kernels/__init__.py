"""Compiled kernels (Cython wrappers over csrc/). Internal: use nncore.ops.

Activation codes match `enum nc_act` in csrc/nncore.h.
"""
ACT_CODES = {
    "linear": 0,
    "step": 1,
    "sigmoid": 2,
    "tanh": 3,
    "relu": 4,
    "leaky_relu": 5,
    "elu": 6,
    "selu": 7,
    "gelu": 8,
    "gelu_tanh": 9,
    "softplus": 10,
    "hard_sigmoid": 11,
    "swish": 12,
}
ACT_CODES["silu"] = ACT_CODES["swish"]
# a modifier of any code (float32, mixed_bfloat16): the result rounded to bfloat16 after the activation
ACT_BF16 = 0x100

# default `alpha` parameter of the activations that have one (Keras 3)
ACT_DEFAULT_ALPHA = {"leaky_relu": 0.2, "elu": 1.0}

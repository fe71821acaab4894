"""The int8 form of Dense, the convolutions and Embedding: ``layer.quantize("int8")`` (nncore.quantizers).

A quantized layer holds its int8 weight and that weight's scale itself (``Layer._hold_weight``:
outside the flat float buffers, never trained); its bias stays in the model's flat buffer.
Weights, in Keras's order: ``[bias, kernel, kernel_scale]`` (Dense, Conv1D/2D) and
``[embeddings, embeddings_scale]`` (Embedding), as ``get_weights`` returns and files store them.
The layer's config says ``dtype="int8_from_float32"`` (Keras's name of the policy) and its
input quantizer, so ``from_config`` and ``load_model`` rebuild the int8 form directly.
"""
import re

import numpy as np

from nncore import mixed_precision, quantizers
from nncore._kernels import int8 as _int8
from nncore._kernels.int8 import MAX_K

_POLICY = re.compile(r"int8_from_(float32|float64)")


class Int8Quantizable:
    """Mixin of the layers with an int8 form. A class sets ``_int8_weight`` (the weight that
    becomes int8) and ``_int8_per_row`` (one scale per row of it, as Embedding; otherwise one
    per output channel, its last axis), and declares that weight with `_declare_int8able`."""

    _int8_weight = "kernel"
    _int8_per_row = False
    def _int8_pays(self, qmax):
        """Whether model.quantize's default selection (no filters) takes the layer: its int8 form, on inputs
        in [-qmax, qmax], is faster than its float form here (Dense, Embedding: always; convolutions: by
        their cost, `nncore.layers.conv.int8_gain`)."""
        return True

    def _init_quantization(self, dtype, quantization_config):
        """Read the constructor's ``dtype`` (None, or an int8 policy name) and ``quantization_config``."""
        self.quantization_mode = None
        self._dtype_policy = None
        self._act_qmax = quantizers.DEFAULT_ACTIVATION_RANGE
        if not isinstance(dtype, str) or not _POLICY.fullmatch(dtype):   # a float policy (None: the global one)
            if quantization_config is not None:
                raise ValueError(f"{type(self).__name__}: quantization_config is given without an int8 dtype")
            if dtype is not None:
                try:
                    self._policy = mixed_precision.get(dtype)
                except (TypeError, ValueError) as exc:
                    raise ValueError(f"{type(self).__name__}: dtype must be None, a dtype policy ('float32', "
                                     f"'float64', 'mixed_bfloat16') or an int8 policy 'int8_from_float32' / "
                                     f"'int8_from_float64' (set by quantize), got {dtype!r}: {exc}") from None
            return
        self.quantization_mode, self._dtype_policy = "int8", dtype
        if quantization_config is not None:
            try:
                act = quantization_config["activation_quantizer"]
                q = quantizers.AbsMaxQuantizer(value_range=act["value_range"], epsilon=act["epsilon"])
            except (KeyError, TypeError):
                raise ValueError(f"{type(self).__name__}: quantization_config must be "
                                 "{'activation_quantizer': {'value_range': [-Q, Q], 'epsilon': 1e-07}}, got "
                                 f"{quantization_config!r}") from None
            self._act_qmax = quantizers.Int8QuantizationConfig(activation_quantizer=q).activation_range

    def _declare_int8able(self, shape, initializer, regularizer):
        """Declare the weight `_int8_weight`: a float weight, or in the int8 form the int8 array
        and its scale (ones until set, as Keras initializes them)."""
        name = self._int8_weight
        if self.quantization_mode is None:
            self.add_weight(name, shape, initializer, regularizer)
            return
        self._check_k(shape)
        self._hold_weight(name, shape, np.int8)
        self._hold_weight(name + "_scale", (shape[0] if self._int8_per_row else shape[-1],), None, fill=1)

    def _check_k(self, shape):
        k = int(np.prod(shape[:-1]))
        if not self._int8_per_row and k > MAX_K:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}): an int8 form sums {k} products per "
                             f"output, more than {MAX_K}, past which an int32 sum may overflow")

    @property
    def _float_dtype(self):
        """The dtype the layer computes in (its float weights' dtype)."""
        w = getattr(self, self._int8_weight)
        return getattr(self, self._int8_weight + "_scale").dtype if w.dtype == np.int8 else w.dtype

    def quantize(self, mode=None, type_check=True, config=None):
        """Replace the float weight by its int8 form (Keras 3's ``Layer.quantize``); see nncore.quantizers.

        Parameters
        ----------
        mode : {'int8'}
        type_check : bool, default=True
            As Keras: subclasses of nncore's layers are not quantized (they may compute otherwise).
        config : nncore.quantizers.Int8QuantizationConfig, optional
        """
        where = f"layer {self.name!r} ({type(self).__name__})"
        if type_check and type(self).__module__.split(".")[0] != "nncore":
            raise NotImplementedError(f"{where}: quantize is implemented for nncore's own layers, not subclasses")
        if not self.built or not self.weights:
            raise ValueError(f"{where}: cannot quantize a layer that isn't built yet")
        if self.quantization_mode is not None:
            raise ValueError(f"{where}: is already quantized (dtype {self._dtype_policy!r}); got mode={mode!r}")
        config = quantizers._config(mode, config, where)
        name = self._int8_weight
        w = getattr(self, name)
        self._check_k(w.shape)
        wq = config.weight_quantizer
        if self._int8_per_row:   # Embedding: one scale per row of the table
            q, scale = quantizers.abs_max_quantize(w, -1, wq.value_range, wq.epsilon)
        else:                    # per output channel: over all axes but the last
            q, scale = quantizers.abs_max_quantize(w.reshape(-1, w.shape[-1]), 0, wq.value_range, wq.epsilon)
        self.quantization_mode, self._dtype_policy = "int8", f"int8_from_{w.dtype.name}"
        self._act_qmax = config.activation_range
        self._specs, self._held = [], []
        self.build(self.input_shape)            # the int8 declarations; the bias view keeps its value
        for attr, value in ((name, q.reshape(w.shape)), (name + "_scale", scale.reshape(-1).astype(w.dtype))):
            value.flags.writeable = False       # held weights are read-only (`Layer._hold_weight`)
            self._put_weight(attr, value)
        self._bufs = {}
        self._int8_views()
        self._held_changed()

    def _held_changed(self):
        """The int8 weight was set: its packed forms are dropped (`_int8_packed` makes them again)."""
        self._int8_packs = {}

    def _int8_packed(self):
        """The int8 weight as a (k, n) matrix packed for the int8 GEMM kernel that runs this layer's
        inputs now (`nncore._kernels.int8.pack`), made once per value of the weight and kernel in use.
        The weight is read-only and changes through set_weights / quantize only, which call
        `_held_changed`; one found writeable (its flag set by hand, a copy put in its place) or not the
        array packed (another one put in its place) is taken as changed and made read-only."""
        w = getattr(self, self._int8_weight)
        packs = self.__dict__.get("_int8_packs")
        if packs is None or w.flags.writeable or self.__dict__.get("_int8_packed_of") is not w:
            w.flags.writeable = False            # (the last test: another array put in the weight's place)
            packs = self._int8_packs = {}
            self._int8_packed_of = w
        kernel = _int8.kernel(self._act_qmax)
        packed = packs.get(kernel)
        if packed is None:
            packed = packs[kernel] = _int8.pack(w.reshape(-1, w.shape[-1]), self._act_qmax)
        return packed

    def _int8_views(self):
        """Views of the weights a class keeps (a convolution's 2-D kernel); made again after quantize."""

    def _int8_config(self, cfg):
        """Add the dtype policy (when one was set) or the int8 entries to a config."""
        if self.quantization_mode is None and self._policy is not None:
            cfg["dtype"] = self._policy.name
        if self.quantization_mode is not None:
            cfg["dtype"] = self._dtype_policy
            if not self._int8_per_row:
                cfg["quantization_config"] = {"activation_quantizer": {
                    "value_range": [-self._act_qmax, self._act_qmax], "epsilon": quantizers.EPSILON}}
        return cfg

    def _refuse_training(self):
        if self.quantization_mode is not None:
            raise ValueError(f"layer {self.name!r} ({type(self).__name__}) is quantized to int8 and runs inference "
                             "only; train the float layer, then quantize")

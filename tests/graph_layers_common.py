"""Test layers for the graph protocol (nncore/_graph.py), shared by the functional-model and ONNX tests:
a layer with two outputs and a layer taking a tensor through a keyword argument."""
import numpy as np

from nncore import layers as L


class Split(L.Layer):
    """A test layer with two outputs: the first k features and the rest (the multi-output protocol)."""

    def __init__(self, k, **kw):
        super().__init__(**kw)
        self.k = k

    def compute_output_shape(self, input_shape):
        return [input_shape[:-1] + (self.k,), input_shape[:-1] + (input_shape[-1] - self.k,)]

    def forward(self, x, training=False):
        return [np.ascontiguousarray(x[:, :self.k]), np.ascontiguousarray(x[:, self.k:])]

    def backward(self, dy):
        return np.concatenate(dy, axis=1) if self._need_dx else None


@L.register_layer
class Shift(L.Layer):
    """A test layer taking a tensor through a keyword argument: y = x + shift (the tensor-kwargs protocol)."""
    _tensor_kwargs = ("shift",)

    def forward(self, x, training=False):
        if not self._call_kwargs:
            return x
        (j,) = self._call_kwargs["shift"]
        return x[0] + x[j]

    def backward(self, dy):
        return [dy, dy] if self._call_kwargs else dy

"""Layers: forward and backward side by side, building lazily from the input shape.

Layer classes resolve by name only through `get_layer_class` (nncore's own
plus those added with `register_layer`).
"""
from nncore._graph import SymbolicTensor
from nncore.layers.base import Input, InputLayer, Layer
from nncore.layers.bidirectional import Bidirectional
from nncore.layers.conv import (AveragePooling1D, AveragePooling2D, Conv1D, Conv2D, GlobalAveragePooling1D,
                                 GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D, MaxPooling1D,
                                 MaxPooling2D)
from nncore.layers.core import Activation, Dense, Dropout, Flatten
from nncore.layers.embedding import Embedding
from nncore.layers.masking import Masking
from nncore.layers.merge import Add, Average, Concatenate, Dot, Maximum, Minimum, Multiply, Subtract
from nncore.layers.recurrent import GRU, LSTM, SimpleRNN
from nncore.layers.normalization import BatchNormalization, LayerNormalization
from nncore.layers.noise import GaussianDropout, GaussianNoise, SpatialDropout1D, SpatialDropout2D
from nncore.layers.reshaping import (Cropping1D, Cropping2D, Permute, RepeatVector, Reshape, UpSampling1D,
                                     UpSampling2D, ZeroPadding1D, ZeroPadding2D)

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Activation", "Dropout", "Flatten",
           "Conv1D", "Conv2D", "MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D",
           "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
           "SimpleRNN", "LSTM", "GRU", "Embedding", "get_layer_class", "register_layer",
           "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot", "SymbolicTensor",
           "Masking", "Bidirectional"]
__all__ += ["BatchNormalization", "LayerNormalization", "Reshape", "Permute", "RepeatVector", "ZeroPadding1D",
            "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D", "SpatialDropout1D",
            "SpatialDropout2D", "GaussianNoise", "GaussianDropout"]

_REGISTRY = {cls.__name__: cls for cls in (InputLayer, Dense, Activation, Dropout, Flatten, Conv1D, Conv2D,
                                           MaxPooling1D, MaxPooling2D, AveragePooling1D, AveragePooling2D,
                                           GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalAveragePooling1D,
                                           GlobalAveragePooling2D, SimpleRNN, LSTM, GRU, Embedding,
                                           Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot,
                                           Masking, Bidirectional)}
_REGISTRY.update({cls.__name__: cls for cls in (BatchNormalization, LayerNormalization, Reshape, Permute,
                                                RepeatVector, ZeroPadding1D, ZeroPadding2D, Cropping1D, Cropping2D,
                                                UpSampling1D, UpSampling2D, SpatialDropout1D, SpatialDropout2D,
                                                GaussianNoise, GaussianDropout)})


def get_layer_class(name):
    """The layer class registered under `name` (a closed list: no arbitrary imports)."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown layer class {name!r}; registered: {sorted(_REGISTRY)}") from None


def register_layer(cls):
    """Register a Layer subclass so configs may name it (usable as a decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise TypeError(f"register_layer: expected a Layer subclass, got {cls!r}")
    _REGISTRY[cls.__name__] = cls
    return cls

"""Optimizers (Keras 3 names, defaults and update rules) and learning-rate schedules.

Each optimizer's rule is in its docstring; the production implementation is
one fused C kernel per rule (csrc/optim_body.h). ``get`` resolves what
``compile(optimizer=...)`` accepts: a name, a config dict or an instance.
"""
from nncore.optimizers import schedules
from nncore.optimizers.adam import Adam, Adamax, AdamW, Nadam
from nncore.optimizers.adaptive import Adadelta, Adagrad, RMSprop
from nncore.optimizers.ftrl import Ftrl
from nncore.optimizers.optimizer import Optimizer
from nncore.optimizers.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "Adadelta", "Adamax", "Nadam", "Ftrl",
           "schedules", "get", "serialize", "deserialize"]

_CLASSES = {c.__name__: c for c in (SGD, Adagrad, RMSprop, Adam, AdamW, Adadelta, Adamax, Nadam, Ftrl)}
_BY_LOWER = {k.lower(): v for k, v in _CLASSES.items()}


def serialize(optimizer):
    """``{"class_name": ..., "config": ...}`` for an optimizer (JSON-able)."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer: expected an Optimizer, got {type(optimizer).__name__}")
    return {"class_name": type(optimizer).__name__, "config": optimizer.get_config()}


def deserialize(config, custom_objects=None):
    """Rebuild an optimizer from ``serialize``'s dict (nncore's classes, or those
    in ``custom_objects``: name -> class)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"config: expected {{'class_name': ..., 'config': ...}}, got {config!r}")
    known = dict(_BY_LOWER)
    for k, v in (custom_objects or {}).items():
        known[k.lower()] = v
    name = config["class_name"]
    cls = known.get(str(name).lower())
    if cls is None:
        raise ValueError(f"class_name: unknown optimizer {name!r}; known: {sorted(_CLASSES)}")
    return cls.from_config(dict(config.get("config", {})), custom_objects)


def get(identifier):
    """An Optimizer from a name ('adam', 'SGD', ...: defaults), a config dict or an instance.

    Raises
    ------
    ValueError
        For an unknown name or a malformed dict.
    TypeError
        For anything else.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _BY_LOWER.get(identifier.lower())
        if cls is None:
            from nncore.validation import unknown_name

            raise unknown_name("optimizer", identifier, _BY_LOWER)
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise TypeError(f"optimizer: expected a name, a config dict or an Optimizer, got {type(identifier).__name__}")

"""A closed table of built-in classes by name: lookup, ``{"class_name", "config"}`` round trips,
and errors that suggest the closest known name. Used by initializers and regularizers."""
from nncore.validation import closest_names


class Registry:
    def __init__(self, kind, classes, names):
        self.kind = kind          # "initializer", "regularizer", ...
        self.classes = classes    # class name -> class
        self.names = names        # lower-case alias -> class

    def unknown(self, name):
        close = closest_names(str(name), sorted(set(self.names) | set(self.classes)))
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return ValueError(f"Unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(sorted(self.names))}")

    def lookup(self, name):
        cls = self.names.get(name.lower()) or self.classes.get(name)
        if cls is None:
            raise self.unknown(name)
        return cls

    def serialize(self, obj):
        name = type(obj).__name__
        if self.classes.get(name) is not type(obj):
            raise ValueError(f"serialize: {name} is not a built-in {self.kind} class")
        return {"class_name": name, "config": obj.get_config()}

    def deserialize(self, config):
        if not isinstance(config, dict) or "class_name" not in config:
            raise ValueError(f"{self.kind}s.deserialize: expected a dict with 'class_name', got {config!r}")
        cls = self.classes.get(config["class_name"]) or self.names.get(str(config["class_name"]).lower())
        if cls is None:
            raise self.unknown(config["class_name"])
        return cls.from_config(dict(config.get("config") or {}))


# Model classes by name, for nncore.saving (which so needs no import of nncore.models): nncore.models
# registers Model and Sequential when it is imported.
MODEL_CLASSES = {}


def register_model_class(cls):
    """Let saved models name `cls` (a model class with get_config / from_config); usable as a decorator."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls

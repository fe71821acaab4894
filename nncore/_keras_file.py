"""Reading Keras 3 ``.keras`` files into nncore models (`nncore.saving.load_keras`).

A ``.keras`` file is a zip archive of ``config.json`` (the architecture and the compile settings, as
Keras's ``serialize_keras_object`` writes them), ``metadata.json`` and ``model.weights.h5`` (one HDF5
group per layer, ``layers/<path>/vars/0..n-1``, nested ``cell``, ``forward_layer`` and ``backward_layer``
groups for the recurrent layers and Bidirectional; the ``vars`` group names the layer).

nncore's layer configs use Keras's names and meanings, so the translation is mostly a cleaning: Keras's
bookkeeping keys (``module``, ``registered_name``, ``build_config``, dtype policies) are dropped, its
serialized objects (initializers, regularizers, losses, optimizers) become nncore's ``{"class_name",
"config"}`` form, its symbolic tensors in ``inbound_nodes`` become ``[layer, node, index]`` references.
A Keras option nncore does not have is refused by name unless it is set to its neutral value (None,
False, ``groups=1``...): nothing is silently dropped.

Safety as in nncore.saving: the archive is data (JSON and HDF5 through h5py; no pickle, no code), the
archive's members are size-checked before they are read, every weight's shape is checked against the
nncore layer's before it is read, and a malformed file raises ValueError naming the file and the reason.
"""
import inspect
import json
import os
import shutil
import tempfile
import zipfile

import numpy as np

from nncore._config import using_floatx

_MAX_CONFIG = 64 << 20          # bytes of config.json: far beyond any real architecture
_MAX_WEIGHTS = 64 << 30         # bytes of model.weights.h5
_BOOKKEEPING = {"module", "registered_name", "build_config", "shared_object_id", "dtype"}
# Keras options nncore has no equivalent for, accepted at these values only (anything else is refused)
_NEUTRAL = {"groups": (1,), "data_format": ("channels_last", None), "sparse": (False,), "ragged": (False,), "optional": (False,),
            "synchronized": (False,), "renorm": (False,), "renorm_clipping": (None,),
            "activity_regularizer": (None,), "use_ema": (False,), "jit_compile": (False, True, "auto"),
            "run_eagerly": (False,), "steps_per_execution": (1,), "weighted_metrics": (None, [])}
# options that change no result (how Keras computes, not what): accepted at any value
_IRRELEVANT = {"unroll", "renorm_momentum", "ema_momentum", "ema_overwrite_frequency", "auto_scale_loss"}
_FLOATS = {"float32", "float64"}


def load_keras(path, compile=True):
    """Read a Keras 3 ``.keras`` file into the equivalent nncore model.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by Keras 3's ``model.save("name.keras")`` (a Sequential or functional model).
    compile : bool, default=True
        Compile the model with the file's optimizer (with its config), loss(es), loss weights and
        metrics when the file has compile settings. The optimizer's state is not read: training
        resumes from fresh moments.

    Returns
    -------
    Sequential or Model
        With the layers' names, configs and weights of the Keras model, in float32 (or float64 when the
        Keras model computed in float64).

    Raises
    ------
    ValueError
        For a file that is not a Keras 3 archive, a layer class nncore lacks or a Keras option without an
        nncore equivalent (named), weights that do not fit, a mixed-precision policy.
    ImportError
        Without h5py (``pip install "nncore[keras]"``).
    """
    where = repr(os.fspath(path))

    def bad(reason):
        raise ValueError(f"load_keras({where}): {reason}")

    try:
        import h5py
    except ImportError as exc:
        raise ImportError('nncore.saving.load_keras needs h5py: pip install "nncore[keras]"') from exc
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        bad(f"not a .keras archive (a zip file): {exc}")
    with archive, tempfile.TemporaryDirectory() as tmp:
        config = json.loads(_member(archive, "config.json", _MAX_CONFIG, bad))
        if not isinstance(config, dict):
            bad("config.json does not hold an object")
        model_cfg, dtype = _model_config(config, bad)
        with using_floatx(dtype):
            model = _build(config.get("class_name"), model_cfg, bad)
        # the weights streamed to a file of their own (never the whole archive member in memory), then
        # read dataset by dataset, each after its shape is checked
        weights = os.path.join(tmp, "model.weights.h5")
        _extract(archive, "model.weights.h5", _MAX_WEIGHTS, weights, bad)
        try:
            h5 = h5py.File(weights, "r")
        except OSError as exc:
            bad(f"model.weights.h5 is not an HDF5 file: {exc}")
        with h5:
            _place_weights(model, h5, bad)
    if compile and config.get("compile_config"):
        _compile(model, config["compile_config"], bad)
    return model


def _info(archive, name, limit, bad):
    """An archive member's entry, its declared size checked before anything is read."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        bad(f"the archive has no {name} (members: {archive.namelist()[:8]})")
    if info.file_size > limit:
        bad(f"{name} declares {info.file_size} bytes, more than the {limit} accepted")
    return info


def _member(archive, name, limit, bad):
    """The bytes of one (small) archive member."""
    info = _info(archive, name, limit, bad)
    try:
        return archive.read(info)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        bad(f"{name} cannot be read: {exc}")


def _extract(archive, name, limit, path, bad):
    """Copy one archive member to `path` in 1 MiB pieces (zipfile checks its size and CRC as it reads)."""
    info = _info(archive, name, limit, bad)
    try:
        with archive.open(info) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        bad(f"{name} cannot be read: {exc}")


# ---------------------------------------------------------------------------------- architecture
def _model_config(config, bad):
    """nncore's config of the Keras model, and the float dtype it computes in."""
    kind = config.get("class_name")
    if kind not in ("Sequential", "Functional", "Model"):
        bad(f"the model is a {kind!r}: only Sequential and functional models can be read (a subclassed "
            "model's call() is Python code, which a file does not hold)")
    cfg = config.get("config")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("layers"), list):
        bad("config.json has no layer list")
    dtypes = set()
    layers = [_layer(spec, dtypes, bad) for spec in cfg["layers"]]
    if kind == "Sequential" and not any(spec.get("class_name") == "InputLayer" for spec in cfg["layers"]):
        bad("the Sequential model was saved unbuilt (no input shape): build it in Keras before saving")
    out = {"name": cfg.get("name", "model"), "layers": layers}
    for key in ("input_layers", "output_layers"):
        if key in cfg:
            out[key] = _tensors(cfg[key])
    if len(dtypes) > 1:
        bad(f"the layers compute in several dtypes {sorted(dtypes)}; nncore models have one")
    dtype = dtypes.pop() if dtypes else "float32"
    if dtype not in _FLOATS:
        bad(f"the model's dtype policy is {dtype!r}: nncore reads float32 and float64 models (a mixed-precision "
            "model would need its float32 variables to be read the same way: save it from a float32 policy)")
    return out, dtype


def _layer(spec, dtypes, bad):
    """{"class_name", "config"[, "name", "inbound_nodes"]} of one layer, in nncore's terms."""
    from nncore import layers as L

    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str) \
            or not isinstance(spec.get("config"), dict):
        bad(f"a layer entry is malformed: {str(spec)[:120]}")
    cls_name, cfg = spec["class_name"], spec["config"]
    name = cfg.get("name", "?")
    try:
        cls = L.get_layer_class(cls_name)
    except (KeyError, ValueError):
        bad(f"layer {name!r} is a Keras {cls_name}, which nncore does not have")
    if cls_name != "InputLayer":
        policy = cfg.get("dtype")
        if isinstance(policy, dict):
            policy = (policy.get("config") or {}).get("name")
        if isinstance(policy, str):
            dtypes.add(policy)
    accepted = _init_params(cls)
    out = {}
    for key, value in cfg.items():
        if key in _BOOKKEEPING:
            continue
        if key in ("layer", "backward_layer") and isinstance(value, dict) and "class_name" in value:
            inner = _layer(value, dtypes, bad)
            out[key] = {"class_name": inner["class_name"], "config": inner["config"]}
            continue
        value = _plain(value)
        if key not in accepted:
            if key in _IRRELEVANT or value in _NEUTRAL.get(key, (None, False)):
                continue
            bad(f"layer {name!r} ({cls_name}): the Keras option {key}={value!r} has no nncore equivalent")
        out[key] = _object(key, value, name, cls_name, bad)
    result = {"class_name": cls_name, "config": out}
    if "name" in spec:
        result["name"] = spec["name"]
    if "inbound_nodes" in spec:
        result["inbound_nodes"] = [{"args": _tensors(node.get("args", [])),
                                    "kwargs": {k: _tensors(v) for k, v in (node.get("kwargs") or {}).items()
                                               if v is not None}}
                                   for node in spec["inbound_nodes"] if isinstance(node, dict)]
    return result


def _init_params(cls):
    """The keyword arguments a layer class takes (its __init__ and its bases')."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is not None:
            names.update(p for p in inspect.signature(init).parameters if p != "self")
    return names


def _plain(value):
    """Keras's serialized objects without their bookkeeping keys (module, registered_name, ...)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k not in ("module", "registered_name",
                                                                     "shared_object_id", "build_config")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _object(key, value, name, cls_name, bad):
    """An option's value in nncore's form: initializers and regularizers as nncore resolves them."""
    if not (isinstance(value, dict) and "class_name" in value):
        return value
    from nncore import initializers, regularizers

    spec = {"class_name": value["class_name"], "config": {k: v for k, v in (value.get("config") or {}).items()
                                                          if v is not None}}
    if key.endswith("_initializer"):
        # the weights come from the file; an initializer only matters for a later re-initialization:
        # its class, with the options nncore has
        try:
            initializers.get(spec)
            return spec
        except (KeyError, TypeError, ValueError):
            return {"class_name": spec["class_name"], "config": {}}
    if key.endswith("_regularizer"):
        try:
            regularizers.get(spec)
        except (KeyError, TypeError, ValueError) as exc:
            bad(f"layer {name!r} ({cls_name}): the Keras {key} {value['class_name']} has no nncore equivalent "
                f"({exc})")
        return spec
    bad(f"layer {name!r} ({cls_name}): the Keras option {key}={value!r} has no nncore equivalent")


def _tensors(value):
    """Keras's symbolic tensors (``__keras_tensor__`` with a keras_history) as [layer, node, index]."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return list((value.get("config") or {}).get("keras_history", []))
        return {k: _tensors(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_tensors(v) for v in value]
    return value


def _build(kind, cfg, bad):
    from nncore.models import Model, Sequential

    try:
        if kind == "Sequential":
            return Sequential.from_config(cfg)
        return Model.from_config(cfg)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        bad(f"cannot build the model: {type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------------------- weights
def _vars_by_layer(h5, bad):
    """{layer name: [h5 datasets in Keras's weight order]} from the file's ``layers`` group."""
    if "layers" not in h5:
        bad("model.weights.h5 has no 'layers' group")
    found = {}
    for key in h5["layers"]:
        group = h5["layers"][key]
        names = group["vars"].attrs.get("name") if "vars" in group else None
        if isinstance(names, bytes):
            names = names.decode()
        found[names if isinstance(names, str) else key] = _collect(group)
    return found


def _collect(group):
    """The datasets of a layer's group: its own vars, then those of its cell, forward and backward layers."""
    out = []
    if "vars" in group:
        v = group["vars"]
        out += [v[str(i)] for i in range(len(v))]
    for child in ("cell", "layer", "forward_layer", "backward_layer"):
        if child in group:
            out += _collect(group[child])
    return out


def _place_weights(model, h5, bad):
    found = _vars_by_layer(h5, bad)
    for layer in model.layers:
        mine = layer.get_weights()
        theirs = found.pop(layer.name, [])
        if len(theirs) != len(mine):
            bad(f"layer {layer.name!r} ({type(layer).__name__}) has {len(mine)} weight arrays in nncore, the file "
                f"holds {len(theirs)}")
        arrays = []
        for k, (w, d) in enumerate(zip(mine, theirs)):
            if tuple(d.shape) != tuple(w.shape) or d.dtype.kind not in "fiu":
                bad(f"layer {layer.name!r} weight {k}: the file holds shape {tuple(d.shape)} dtype {d.dtype}, "
                    f"nncore expects {tuple(w.shape)}")
            arrays.append(np.asarray(d[()], dtype=w.dtype))
        if arrays:
            layer.set_weights(arrays)
    left = [name for name, ds in found.items() if ds]
    if left:
        bad(f"the file holds weights of layers the model does not have: {left}")


# ---------------------------------------------------------------------------------- compile settings
def _compile(model, cfg, bad):
    from nncore import optimizers

    if not isinstance(cfg, dict):
        bad("the compile settings are not an object")
    cfg = _plain(cfg)
    for key, value in cfg.items():
        if key not in ("optimizer", "loss", "loss_weights", "metrics") and key not in _IRRELEVANT \
                and value not in _NEUTRAL.get(key, (None, False)):
            bad(f"the compile setting {key}={value!r} has no nncore equivalent")
    opt = cfg.get("optimizer")
    if isinstance(opt, dict):
        opt_cfg = {k: v for k, v in (opt.get("config") or {}).items()
                   if k not in _IRRELEVANT and not (v in _NEUTRAL.get(k, ()) or v is None)}
        opt = {"class_name": opt.get("class_name"), "config": opt_cfg}
    try:
        model.compile(optimizer=optimizers.get(opt if opt is not None else "rmsprop"), loss=cfg.get("loss"),
                      loss_weights=cfg.get("loss_weights"), metrics=cfg.get("metrics"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        bad(f"cannot compile with the file's settings: {type(exc).__name__}: {exc}")

"""Reading Keras 3 ``.keras`` files into nncore models (`nncore.saving.load_keras`), and writing them
(`nncore.saving.save_keras`, ``model.save("m.keras")``).

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
import re
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
        metrics when the file has compile settings, and restore the optimizer's variables (iterations
        and slots) when the file holds them, so that training resumes where Keras stopped.

    Returns
    -------
    Sequential or Model
        With the layers' names, configs and weights of the Keras model, in float32 (or float64 when the
        Keras model computed in float64).

    Raises
    ------
    ValueError
        For a file that is not a Keras 3 archive, a layer class nncore lacks or a Keras option without an
        nncore equivalent (named), weights that do not fit, a policy other than float32, float64 and
        mixed_bfloat16.
    ImportError
        Without h5py (``pip install "nncore[keras]"``).
    """
    h5py, bad = _h5py_and_bad("load_keras", path)
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
            opt_vars = _read_optimizer(h5, bad) if compile and config.get("compile_config") else None
    if compile and config.get("compile_config"):
        _compile(model, config["compile_config"], bad)
        if opt_vars:
            _restore_optimizer(model, opt_vars, bad)
    return model


def _h5py_and_bad(fn, path):
    """h5py (an ImportError naming the extra without it) and the ValueError raiser of `fn` on `path`."""
    where = repr(os.fspath(path))

    def bad(reason):
        raise ValueError(f"{fn}({where}): {reason}")

    try:
        import h5py
    except ImportError as exc:
        raise ImportError(f'nncore.saving.{fn} needs h5py: pip install "nncore[keras]"') from exc
    return h5py, bad


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
        bad(f"the model's dtype policy is {dtype!r}: nncore reads float32, float64 and mixed_bfloat16 models")
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
            dtypes.add("float32" if policy == "mixed_bfloat16" else policy)   # the variables' dtype
    accepted = _init_params(cls)
    out = {}
    if cls_name != "InputLayer" and policy == "mixed_bfloat16" and "dtype" in accepted:
        out["dtype"] = policy      # Dense, Conv: bfloat16 compute (the other layers compute in float32)
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


# ================================================================================== writing
_KERAS_FORMAT = "3.0.0"      # the oldest Keras whose .keras format these files follow (metadata.json)


def save_keras(model, path):
    """Write a model as a Keras 3 ``.keras`` file that ``keras.saving.load_model`` reads.

    Parameters
    ----------
    model : Sequential or Model
        A built model (Keras needs the input shape). int8-quantized models are refused: Keras's int8
        layers use another kernel layout.
    path : str or os.PathLike
        The file, written atomically (a temporary file in the same directory, renamed over it).

    Notes
    -----
    The archive holds ``config.json`` (the architecture in Keras's layout, with the dtype policy of
    the model's float type and the compile settings), ``metadata.json`` and ``model.weights.h5``, its
    groups named as Keras names them when it loads the file (the snake-case class name, ``_1``,
    ``_2``... in Keras's layer order) and the optimizer's variables (iterations, learning rate, its
    slots in Keras's order) for the optimizers Keras has, so that Keras trains on where nncore stopped.

    Raises
    ------
    ValueError
        An unbuilt or quantized model, or a layer Keras lacks.
    ImportError
        Without h5py (``pip install "nncore[keras]"``).
    """
    from nncore import saving

    h5py, bad = _h5py_and_bad("save_keras", path)
    if not getattr(model, "built", False):
        bad(f"model {model.name!r} is not built: Keras files need the input shape (call the model, fit it, "
            "or start it with an Input)")
    if getattr(model, "quantized", None):
        bad(f"model {model.name!r} has int8-quantized layers {model.quantized}: save the float model, or use "
            "nncore's own format")
    dtype = np.dtype(model._dtype).name
    config = _keras_model_config(model, dtype, bad)
    metadata = {"keras_version": _KERAS_FORMAT, "saved_by": f"nncore {saving._nncore_version()}"}
    with tempfile.TemporaryDirectory() as tmp:
        weights = os.path.join(tmp, "model.weights.h5")
        with h5py.File(weights, "w") as h5:
            _write_weights(model, h5)
            _write_optimizer(model, h5)
        archive = os.path.join(tmp, "model.keras")
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("metadata.json", json.dumps(metadata))
            z.writestr("config.json", json.dumps(config))
            z.write(weights, "model.weights.h5")

        def chunks():
            with open(archive, "rb") as f:
                while True:
                    piece = f.read(1 << 20)
                    if not piece:
                        return
                    yield piece

        saving.atomic_write(path, chunks())


def _policy(dtype):
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": dtype}, "registered_name": None}


def _keras_object(module, spec):
    """nncore's {"class_name", "config"} of an initializer, regularizer, loss, optimizer or schedule as Keras
    serializes it (strings, Keras's short names, stay strings)."""
    if not (isinstance(spec, dict) and "class_name" in spec):
        return spec
    cfg = {k: (_keras_object("keras.optimizers.schedules", v) if isinstance(v, dict) else v)
           for k, v in (spec.get("config") or {}).items()}
    return {"module": module, "class_name": spec["class_name"], "config": cfg, "registered_name": None}


def _keras_layer_config(class_name, cfg, dtype):
    """One layer's config in Keras's terms: the dtype policy added, nested layers and objects serialized."""
    if class_name == "InputLayer":
        return {"batch_shape": list(cfg["batch_shape"]), "dtype": dtype, "sparse": False, "ragged": False,
                "name": cfg["name"]}
    out = {}
    for key, value in cfg.items():
        if key in ("layer", "backward_layer") and isinstance(value, dict) and "class_name" in value:
            value = {"module": "keras.layers", "class_name": value["class_name"],
                     "config": _keras_layer_config(value["class_name"], value["config"], dtype),
                     "registered_name": None}
        elif key.endswith("_initializer"):
            value = _keras_object("keras.initializers", value)
        elif key.endswith("_regularizer"):
            value = _keras_object("keras.regularizers", value)
        out[key] = value
    out["dtype"] = _policy("mixed_bfloat16" if cfg.get("dtype") == "mixed_bfloat16" else dtype)
    return out


def _keras_model_config(model, dtype, bad):
    from nncore import layers as L
    from nncore.models import Sequential

    for layer in model.layers:
        if type(layer).__name__.startswith("_") or not hasattr(L, type(layer).__name__):
            bad(f"layer {layer.name!r} is an nncore {type(layer).__name__}, which Keras does not have")
    cfg = model.get_config()
    shapes = {} if isinstance(model, Sequential) else _tensor_shapes(model)

    def tensor(ref):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(shapes[tuple(ref)]), "dtype": dtype, "keras_history": list(ref)}}

    def tensors(value):
        if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
            return tensor(value)
        if isinstance(value, dict):
            return {k: tensors(v) for k, v in value.items()}
        if isinstance(value, list):
            return [tensors(v) for v in value]
        return value

    layers = []
    for entry in cfg["layers"]:
        out = {"module": "keras.layers", "class_name": entry["class_name"],
               "config": _keras_layer_config(entry["class_name"], entry["config"], dtype), "registered_name": None}
        if "inbound_nodes" in entry:
            out["name"] = entry["name"]
            out["inbound_nodes"] = [{"args": tensors(node["args"]), "kwargs": tensors(node["kwargs"])}
                                    for node in entry["inbound_nodes"]]
        layers.append(out)
    inner = {"name": cfg["name"], "trainable": True, "layers": layers}
    if isinstance(model, Sequential):
        config = {"module": "keras", "class_name": "Sequential", "config": {**inner, "dtype": _policy(dtype)},
                  "registered_name": None}
    else:
        inner["input_layers"], inner["output_layers"] = cfg["input_layers"], cfg["output_layers"]
        config = {"module": "keras.src.models.functional", "class_name": "Functional", "config": inner,
                  "registered_name": "Functional"}
    compiled = getattr(model, "_compile_config", None)
    if compiled:
        losses = compiled["loss"]
        per_output = isinstance(losses, dict) and "class_name" not in losses
        loss = ({k: _keras_object("keras.losses", v) for k, v in losses.items()} if per_output
                else _keras_object("keras.losses", losses))
        config["compile_config"] = {"optimizer": _keras_object("keras.optimizers", compiled["optimizer"]),
                                    "loss": loss, "loss_weights": compiled.get("loss_weights"),
                                    "metrics": compiled.get("metrics") or None}
    return config


def _tensor_shapes(model):
    """{(layer name, node index, tensor index): shape} of every tensor of a functional model's graph,
    indexed as its get_config refers to them."""
    from nncore._graph import topological_nodes

    ref = model._ref()
    return {tuple(ref(t)): t.shape for node in topological_nodes(model.outputs) for t in node.outputs}


def _keras_layer_order(model):
    """The layers in the order of the ``layers`` of the model Keras builds from the file: a Sequential's
    layers as they are (no InputLayer); a functional model's as Keras's graph mapping orders them (by
    depth from the outputs, deepest first; within a depth in the order a depth-first walk from the
    outputs meets them), InputLayers included."""
    from nncore.models import Sequential

    if isinstance(model, Sequential):
        return [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    post, first, done = [], {}, set()

    def visit(node):                      # recursion depth = the graph's depth, as in Keras
        if id(node) in done:
            return
        first.setdefault(id(node.layer), (len(first), node.layer))
        done.add(id(node))
        for t in node.inputs:
            visit(t.node)
        post.append(node)

    for t in model.outputs:
        visit(t.node)
    node_depth, layer_depth = {}, {}
    for node in reversed(post):
        depth = max(node_depth.setdefault(id(node), 0), layer_depth.get(id(node.layer), 0))
        layer_depth[id(node.layer)] = node_depth[id(node)] = depth
        for t in node.inputs:
            node_depth[id(t.node)] = max(depth + 1, node_depth.get(id(t.node), 0))
    order = sorted(first.values(), key=lambda item: (-layer_depth[id(item[1])], item[0]))
    return [layer for _, layer in order]


def _write_weights(model, h5):
    """``layers/<key>/vars/0..n-1`` per layer (recurrent layers: under ``cell``; Bidirectional: under
    ``forward_layer`` and ``backward_layer``), keys as Keras's loader computes them."""
    from nncore.layers import Bidirectional
    from nncore.layers.recurrent import _Recurrent

    def write(group, name, arrays):
        v = group.create_group("vars")
        v.attrs["name"] = name
        for i, a in enumerate(arrays):
            v.create_dataset(str(i), data=a)

    def layer_group(group, layer, arrays):
        if isinstance(layer, Bidirectional):
            write(group, layer.name, [])
            n = len(layer.forward_layer.get_weights())
            layer_group(group.create_group("forward_layer"), layer.forward_layer, arrays[:n])
            layer_group(group.create_group("backward_layer"), layer.backward_layer, arrays[n:])
        elif isinstance(layer, _Recurrent):
            write(group, layer.name, [])
            write(group.create_group("cell"), f"{type(layer).__name__.lower()}_cell", arrays)
        else:
            write(group, layer.name, arrays)

    write(h5, model.name, [])
    root, used = h5.create_group("layers"), {}
    for layer in _keras_layer_order(model):
        key = _snake(type(layer).__name__)
        if key in used:
            used[key] += 1
            key = f"{key}_{used[key]}"
        else:
            used[key] = 0
        layer_group(root.create_group(key), layer, [np.asarray(w) for w in layer.get_weights()])


def _snake(name):
    """Keras's snake case of a class name (naming.to_snake_case): 'BatchNormalization' -> 'batch_normalization'."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


# ---------------------------------------------------------------------------------- optimizer state
# Keras 3's optimizer variables after ``iteration`` (and ``learning_rate`` unless it is a schedule): per
# group, for each trainable variable in the model's order, the group's slots (nncore's names) in turn;
# groups one after the other (Adam's velocity_hat, RMSprop's momentum and average_gradient come as
# blocks of their own). Nadam adds its u_product last. A slot the configuration lacks is skipped.
_KERAS_SLOTS = {"SGD": [("momentum",)], "Adam": [("m", "v"), ("vhat",)], "AdamW": [("m", "v"), ("vhat",)],
                "Adamax": [("m", "u")], "Nadam": [("m", "v")],
                "RMSprop": [("velocity",), ("momentum",), ("average_gradient",)], "Adagrad": [("accumulator",)],
                "Adadelta": [("accumulated_grad", "accumulated_delta_var")], "Ftrl": [("accumulator", "linear")]}


def _keras_variable_order(model):
    """(nncore segment index, shape) of each trained weight, in the order of the Keras model's
    ``trainable_variables`` (layers in Keras's order, each layer's trainable weights in declaration order)."""
    layout = model._layout
    base, size = layout.params.__array_interface__["data"][0], layout.params.itemsize
    segment = {start: i for i, (start, _) in enumerate(layout.segments)}
    order = []
    for layer in _keras_layer_order(model):
        views = layout.views.get(id(layer), ({}, {}))[0]
        for attr, shape, *_ in layer._specs:
            if attr in layer._non_trainable or attr not in views:
                continue
            start = (views[attr].__array_interface__["data"][0] - base) // size
            if start in segment:             # a trained weight (a frozen layer's are no segment)
                order.append((segment[start], tuple(shape)))
    return order


def _keras_optimizer_slots(opt, n_vars):
    """[(nncore slot name, variable position)] in Keras's order, or None for an optimizer Keras lacks."""
    groups = _KERAS_SLOTS.get(type(opt).__name__)
    if groups is None:
        return None
    have = set(opt._slot_names())
    return [(name, i) for group in groups for i in range(n_vars) for name in group if name in have]


def _write_optimizer(model, h5):
    """``optimizer/vars``: iteration, learning_rate, the slots in Keras's order (nothing when the model is
    not compiled, or the optimizer has no Keras equivalent)."""
    from nncore.optimizers import schedules

    opt = getattr(model, "optimizer", None)
    if opt is None or not getattr(model, "_compile_config", None) or not model._layout.segments:
        return
    order = _keras_variable_order(model)
    slots = _keras_optimizer_slots(opt, len(order))
    if slots is None or len(order) != len(model._layout.segments):
        return
    state = opt.get_state()
    if slots and f"0/{slots[0][0]}" not in state:
        return                                # the optimizer has not laid its slots over the buffer
    values = [np.asarray(min(int(state["iterations"]), 2**31 - 1), np.int32)]
    if not isinstance(opt.learning_rate, schedules.LearningRateSchedule):
        values.append(np.asarray(opt.learning_rate, np.float32))
    values += [state[f"{order[i][0]}/{name}"].reshape(order[i][1]) for name, i in slots]
    if "u_product" in state:
        values.append(np.asarray(state["u_product"], np.float32))
    v = h5.create_group("optimizer").create_group("vars")
    v.attrs["name"] = opt.name
    for i, a in enumerate(values):
        v.create_dataset(str(i), data=a)


def _read_optimizer(h5, bad):
    """The arrays of ``optimizer/vars`` (None without them), each size-checked by h5py's header."""
    if "optimizer" not in h5 or "vars" not in h5["optimizer"]:
        return None
    group = h5["optimizer"]["vars"]
    try:
        return [np.asarray(group[str(i)][()]) for i in range(len(group))]
    except KeyError as exc:
        bad(f"the optimizer's variables are not numbered 0..{len(group) - 1}: {exc}")


def _restore_optimizer(model, values, bad):
    """Keras's optimizer variables into the compiled nncore optimizer (see _write_optimizer for the order)."""
    from nncore.optimizers import schedules

    opt = model.optimizer
    if not model.built or not model._layout.segments:
        return
    order = _keras_variable_order(model)
    slots = _keras_optimizer_slots(opt, len(order))
    if slots is None:
        return
    lr = not isinstance(opt.learning_rate, schedules.LearningRateSchedule)
    extra = list(opt._extra_state())
    want = 1 + lr + len(slots) + len(extra)
    if len(values) == 1 + lr:
        return               # an optimizer Keras never built (compiled, not trained): nothing to restore
    if len(values) != want:
        bad(f"the file's {type(opt).__name__} has {len(values)} variables; nncore's with this configuration "
            f"and model has {want} (iteration{', learning_rate' if lr else ''}, {len(slots)} slots"
            f"{', ' + ', '.join(extra) if extra else ''})")
    state = {"iterations": int(values[0])}
    dtype = model._layout.params.dtype
    for value, (name, i) in zip(values[1 + lr:], slots):
        seg, shape = order[i]
        if tuple(value.shape) != shape or value.dtype.kind != "f":
            bad(f"optimizer slot {name} of trained weight {i}: the file holds shape {value.shape} dtype "
                f"{value.dtype}, nncore expects {shape}")
        state[f"{seg}/{name}"] = value.astype(dtype).ravel()
    for name, value in zip(extra, values[1 + lr + len(slots):]):
        state[name] = float(value)
    opt.set_state(state)

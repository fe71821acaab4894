"""Model files: safe to open from strangers, written atomically.

File format (version 1), all integers little-endian::

    offset 0   8 bytes   magic b"NNCORE\\x00\\x01"
    offset 8   8 bytes   uint64 H: length of the JSON header
    offset 16  H bytes   UTF-8 JSON header (see below)
    then       P bytes   payload: the raw arrays, each 64-byte aligned, P = header["payload_bytes"]
    then       40 bytes  b"NNCSHA25" + SHA-256 of every byte before it

The header holds ``format_version``, ``kind`` ("model" or "weights"), the
architecture (``{"class_name", "config"}``), the compile settings, the
optimizer state, and an ``arrays`` table of ``{"dtype", "shape", "offset",
"nbytes"}``. Python objects refer to arrays as ``{"__ndarray__": index}``.

Why it is safe: no pickle and no code execution (JSON + raw bytes only);
classes are resolved only from nncore's own closed registries plus classes the
user registers with `register_serializable` or passes in ``custom_objects``;
the file length must equal 16 + H + P + 40 exactly and every array's extent
is checked against P, with Python integers, BEFORE anything is allocated;
the SHA-256 trailer detects truncation, bit flips, zero-filling and appended
bytes. Every problem raises ValueError naming the file and the reason.

Why it is atomic: `atomic_write` writes a temporary file in the target's
directory, flushes and fsyncs it, renames it over the target (atomic on POSIX)
and fsyncs the directory. A process killed at any moment leaves either the
old file or the new one, never a mix.
"""
import hashlib
import json
import math
import os
import struct
import tempfile

import numpy as np

from nncore._config import floatx, using_floatx

__all__ = [
    "save_model",
    "load_model",
    "save_weights",
    "load_weights",
    "model_to_bytes",
    "model_from_bytes",
    "load_keras",
    "save_keras",
    "register_serializable",
    "get_registered_object",
    "atomic_write",
    "write_file",
    "read_file",
    "write_bytes",
    "read_bytes",
    "FORMAT_VERSION",
]

FORMAT_VERSION = 1
MAGIC = b"NNCORE\x00\x01"
TRAILER_TAG = b"NNCSHA25"
_PREFIX = 16
_TRAILER = len(TRAILER_TAG) + 32
_ALIGN = 64
_MAX_HEADER = 1 << 28  # 256 MiB of JSON is far beyond any real architecture
_MAX_NDIM = 32
_MAX_DEPTH = 64  # nesting of the JSON objects we decode
# the only dtypes a file may name: explicit little-endian, no objects
_DTYPES = {
    "<f4": np.dtype("<f4"),
    "<f8": np.dtype("<f8"),
    "<f2": np.dtype("<f2"),
    "<i8": np.dtype("<i8"),
    "<i4": np.dtype("<i4"),
    "|u1": np.dtype("|u1"),
    "|i1": np.dtype("|i1"),      # int8 kernels (quantize)
    "|b1": np.dtype("|b1"),
}

_REGISTERED = {}


# ---- registry of user classes ------------------------------------------------------------------
def register_serializable(cls=None, *, name=None):
    """Allow `load_model` to rebuild a user class (a Layer, loss, metric...) by name.

    Usable as ``register_serializable(MyLayer)`` or as a decorator
    ``@register_serializable(name="MyLayer")``. The class must provide
    ``get_config()`` and a ``from_config(config)`` classmethod.
    """

    def _register(c):
        if not isinstance(c, type):
            raise TypeError(f"register_serializable: expected a class, got {type(c).__name__}")
        key = name or c.__name__
        if not isinstance(key, str) or not key:
            raise TypeError(f"register_serializable: name must be a non-empty str, got {key!r}")
        if not callable(getattr(c, "from_config", None)):
            raise TypeError(f"register_serializable: {c.__name__} has no from_config classmethod")
        old = _REGISTERED.get(key)
        if old is not None and old is not c:
            raise ValueError(f"register_serializable: the name {key!r} is already registered for {old!r}")
        _REGISTERED[key] = c
        from nncore import layers

        if issubclass(c, layers.Layer):  # Sequential.from_config resolves layers through this registry
            if key != c.__name__:
                raise ValueError(f"register_serializable: a layer is registered under its class name "
                                 f"{c.__name__!r}, got name={key!r}")
            layers.register_layer(c)
        return c

    if cls is None:
        return _register
    return _register(cls)


def get_registered_object(name, custom_objects=None):
    """The class registered (or passed in custom_objects) under `name`, or None."""
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    return _REGISTERED.get(name)


# ---- atomic writes -----------------------------------------------------------------------------
def _umask():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on this platform (Windows): the rename is what we can do
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, chunks):
    """Write the byte strings in `chunks` to `path` atomically (temp file, fsync, rename, fsync dir)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: the directory {directory!r} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"save: {path!r} is a directory")
    try:
        mode = os.stat(path).st_mode & 0o777
    except OSError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


# ---- encoding Python objects with arrays inside --------------------------------------------------
def _encode(obj, arrays, where="header"):
    """JSON-able copy of obj; ndarrays go to `arrays` and are replaced by {"__ndarray__": i}."""
    if isinstance(obj, np.ndarray):
        arrays.append(obj)
        return {"__ndarray__": len(arrays) - 1}
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj)
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"save: {where} has a non-str key {k!r}; configs must be JSON-able")
            if k == "__ndarray__":
                raise ValueError(f"save: {where} uses the reserved key '__ndarray__'")
            out[k] = _encode(v, arrays, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    raise TypeError(
        f"save: {where} holds a {type(obj).__name__}, which a model file cannot store "
        "(only JSON values and numpy arrays; give the object a get_config())"
    )


def _decode(obj, arrays, bad, depth=0):
    if depth > _MAX_DEPTH:
        bad("the header nests too deeply")
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            i = obj["__ndarray__"]
            if len(obj) != 1 or type(i) is not int or not 0 <= i < len(arrays):
                bad(f"bad array reference {obj!r}")
            return arrays[i]
        return {k: _decode(v, arrays, bad, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, arrays, bad, depth + 1) for v in obj]
    return obj


# ---- the container: header + arrays ------------------------------------------------------------
def _pack(header):
    """The byte strings of a model file holding `header` (JSON values and numpy arrays, nested freely)."""
    arrays = []
    header = _encode(header, arrays)
    if not isinstance(header, dict):
        raise TypeError("save: the header must be a dict")
    table = []
    blobs = []
    offset = 0
    for a in arrays:
        a = np.asarray(a)
        key = a.dtype.newbyteorder("<").str if a.dtype.byteorder not in "|" else a.dtype.str
        if key not in _DTYPES:
            raise TypeError(f"save: cannot store an array of dtype {a.dtype}")
        a = np.asarray(a, dtype=_DTYPES[key], order="C")
        pad = (-offset) % _ALIGN
        if pad:
            blobs.append(b"\x00" * pad)
            offset += pad
        table.append({"dtype": key, "shape": list(a.shape), "offset": offset, "nbytes": a.nbytes})
        blobs.append(memoryview(a).cast("B") if a.nbytes else b"")
        offset += a.nbytes
    header = dict(header)
    header["format_version"] = FORMAT_VERSION
    header["arrays"] = table
    header["payload_bytes"] = offset
    text = json.dumps(header, allow_nan=True, separators=(",", ":")).encode("utf-8")
    prefix = MAGIC + struct.pack("<Q", len(text))
    h = hashlib.sha256()
    for part in [prefix, text] + blobs:
        h.update(part)
    return [prefix, text] + blobs + [TRAILER_TAG + h.digest()]


def write_file(path, header):
    """Atomically write a model file holding `header`: JSON values and numpy arrays, nested freely.
    In an MPI job (nncore.distributed) only rank 0 writes; the other ranks return at once."""
    from nncore import distributed
    if distributed.rank() != 0:
        return
    atomic_write(path, _pack(header))


def write_bytes(header):
    """The bytes of the model file `write_file` would write for `header`."""
    return b"".join(_pack(header))


def read_file(path):
    """Read and verify a model file; return its header with the arrays in place. ValueError on any problem."""
    path = os.fspath(path)

    def bad(reason):
        raise ValueError(f"{path!r} is not a valid nncore model file: {reason}")

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < _PREFIX + _TRAILER:
            bad(f"it is {size} bytes long, shorter than the smallest valid file ({_PREFIX + _TRAILER} bytes)")
        prefix = f.read(_PREFIX)
        _check_prefix(prefix, size, bad)
        # The size was checked against the real file length: reading it allocates at most `size`.
        data = prefix + f.read(size - _PREFIX)
    if len(data) != size:
        bad("the file changed size while being read")
    return _unpack(data, bad)


def read_bytes(data):
    """Verify and decode the bytes of a model file (as `write_bytes` gives them), with every check
    `read_file` makes; return the header with the arrays in place. ValueError on any problem."""
    def bad(reason):
        raise ValueError(f"the bytes are not a valid nncore model file: {reason}")

    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"read_bytes: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < _PREFIX + _TRAILER:
        bad(f"they are {len(data)} bytes long, shorter than the smallest valid file "
            f"({_PREFIX + _TRAILER} bytes)")
    _check_prefix(data[:_PREFIX], len(data), bad)
    return _unpack(data, bad)


def _check_prefix(prefix, size, bad):
    if prefix[:6] != MAGIC[:6]:
        bad("wrong magic bytes (not written by nncore, or the start of the file is damaged)")
    if prefix[6:8] != MAGIC[6:8]:
        bad(f"unknown container version {prefix[6:8]!r} (written by a newer nncore?)")
    (hlen,) = struct.unpack("<Q", prefix[8:16])
    if hlen > min(_MAX_HEADER, size - _PREFIX - _TRAILER):
        bad(f"the header claims {hlen} bytes but the file is {size} bytes long (truncated or damaged)")


def _unpack(data, bad):
    """Checksum, header and array table of a whole file held in `data` (its prefix already checked)."""
    size = len(data)
    (hlen,) = struct.unpack("<Q", data[8:16])
    body, trailer = memoryview(data)[: size - _TRAILER], data[size - _TRAILER:]
    if trailer[: len(TRAILER_TAG)] != TRAILER_TAG:
        bad("the checksum trailer is missing (truncated, or bytes were appended)")
    if hashlib.sha256(body).digest() != trailer[len(TRAILER_TAG):]:
        bad("checksum mismatch (the file is damaged: truncated, bit-flipped or overwritten)")
    try:
        header = json.loads(bytes(body[_PREFIX: _PREFIX + hlen]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        bad(f"the header is not valid JSON ({type(exc).__name__})")
    if not isinstance(header, dict):
        bad("the header is not a JSON object")
    version = header.get("format_version")
    if type(version) is not int:
        bad(f"format_version must be an int, got {version!r}")
    if version > FORMAT_VERSION:
        bad(
            f"format version {version} was written by a newer nncore; this nncore "
            f"({_nncore_version()}) reads versions up to {FORMAT_VERSION}: upgrade nncore"
        )
    if version < 1:
        bad(f"unknown format version {version}")
    payload = header.get("payload_bytes")
    if type(payload) is not int or payload != size - _PREFIX - hlen - _TRAILER:
        bad(f"payload_bytes {payload!r} does not match the file length {size}")
    table = header.get("arrays")
    if not isinstance(table, list):
        bad("the array table is missing")
    start = _PREFIX + hlen
    arrays = []
    end_prev = 0
    for i, entry in enumerate(table):
        if not isinstance(entry, dict):
            bad(f"array {i}: entry is not an object")
        dtype = _DTYPES.get(entry.get("dtype")) if isinstance(entry.get("dtype"), str) else None
        shape, offset, nbytes = entry.get("shape"), entry.get("offset"), entry.get("nbytes")
        if dtype is None:
            bad(f"array {i}: dtype {entry.get('dtype')!r} is not one nncore writes")
        if (
            not isinstance(shape, list)
            or len(shape) > _MAX_NDIM
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            bad(f"array {i}: bad shape {shape!r}")
        if type(offset) is not int or type(nbytes) is not int:
            bad(f"array {i}: offset and nbytes must be ints")
        # Python ints: no overflow, and nothing is allocated before these hold
        if nbytes != math.prod(shape) * dtype.itemsize:
            bad(f"array {i}: {nbytes} bytes do not hold shape {shape} of {dtype}")
        if offset < end_prev or offset + nbytes > payload:
            bad(f"array {i}: bytes [{offset}, {offset + nbytes}) lie outside the payload or overlap")
        end_prev = offset + nbytes
        a = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=start + offset)
        arrays.append(a.reshape(shape).astype(dtype.newbyteorder("="), copy=True))
    return _decode(header, arrays, bad)


def _nncore_version():
    import nncore

    return nncore.__version__


# ---- models ------------------------------------------------------------------------------------
def _check_finite_weights(weights, what):
    for i, w in enumerate(weights):
        if w.dtype.kind == "f" and not np.isfinite(w).all():
            raise ValueError(
                f"save: {what} {i} (shape {w.shape}) holds NaN or inf; refusing to write a poisoned "
                "model (pass allow_nonfinite=True to save it anyway)"
            )


def _model_header(model, kind):
    return {
        "format": "nncore",
        "kind": kind,
        "nncore_version": _nncore_version(),
        "model": {"class_name": type(model).__name__, "config": model.get_config()},
    }


def _optimizer_state(model):
    opt = getattr(model, "optimizer", None)
    if opt is None or not hasattr(opt, "get_state"):
        return None
    return opt.get_state()


def save_model(model, path, include_optimizer=True, allow_nonfinite=False):
    """Write the architecture, weights, compile settings and optimizer state to one file, atomically.

    Parameters
    ----------
    model : Sequential
    path : str or os.PathLike
    include_optimizer : bool, default=True
        Store the optimizer's state (slots and iteration count) so that training resumes bit-identically.
    allow_nonfinite : bool, default=False
        By default weights holding NaN/inf are refused with a ValueError.
    """
    write_file(path, _model_file_header(model, include_optimizer, allow_nonfinite))


def model_to_bytes(model, include_optimizer=True, allow_nonfinite=False):
    """The bytes of the file `save_model` would write (same format, same checks), in memory.

    `model_from_bytes` reads them back; a model pickles (and deep-copies) through this pair.
    """
    return write_bytes(_model_file_header(model, include_optimizer, allow_nonfinite))


def _model_file_header(model, include_optimizer, allow_nonfinite):
    weights = [np.asarray(w) for w in model.get_weights()]
    if not allow_nonfinite:
        _check_finite_weights(weights, "weight")
    header = _model_header(model, "model")
    compile_config = getattr(model, "_compile_config", None)
    header["weights"] = weights
    header["compile"] = compile_config or None
    # an unbuilt model has no optimizer state yet (its slots are laid over the built buffer)
    built = getattr(model, "built", True)
    state = _optimizer_state(model) if include_optimizer and compile_config and built else None
    if state is not None and not allow_nonfinite:
        for key, value in state.items():
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ValueError(
                    f"save: optimizer state {key!r} holds NaN or inf (a non-finite gradient reached it); "
                    "save with include_optimizer=False to keep the weights only, or allow_nonfinite=True"
                )
    header["optimizer_state"] = state
    header["extra"] = _model_extra(model)
    return header


def _all_layers(model):
    """(path, layer) for every layer of the model, nested ones (a Bidirectional's two) as 'outer/inner'."""
    todo = [(layer.name, layer) for layer in getattr(model, "layers", [])]
    while todo:
        path, layer = todo.pop(0)
        yield path, layer
        todo[:0] = [(f"{path}/{sub.name}", sub) for sub in getattr(layer, "_sublayers", ())]


def _model_extra(model):
    """Training state beyond weights and optimizer that a resumed fit needs to be bit-identical:
    the state of each layer's own random generator (Dropout and the recurrent layers' dropout draw
    their masks from one) and the states a stateful recurrent layer carries between batches."""
    rngs, carried = {}, {}
    for path, layer in _all_layers(model):
        rng = getattr(layer, "_rng", None)
        if isinstance(rng, np.random.Generator):
            rngs[path] = rng.bit_generator.state
        if getattr(layer, "stateful", False) and getattr(layer, "_states", None) is not None:
            carried[path] = [np.ascontiguousarray(v) for v in layer._states]
    extra = {"rng_states": rngs}
    if carried:
        extra["rnn_states"] = carried
    return extra


def _restore_extra(model, extra, bad):
    if not isinstance(extra, dict):
        bad("the model state entry is malformed")
    states = extra.get("rng_states", {})
    carried = extra.get("rnn_states", {})
    if not isinstance(states, dict) or not isinstance(carried, dict):
        bad("rng_states or rnn_states is malformed")
    by_path = dict(_all_layers(model))
    for name, state in states.items():
        rng = getattr(by_path.get(name), "_rng", None)
        if not isinstance(rng, np.random.Generator):
            bad(f"rng_states names layer {name!r}, which has no random generator")
        try:
            rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            bad(f"layer {name!r}: bad random generator state ({exc})")
    for name, values in carried.items():
        layer = by_path.get(name)
        if not getattr(layer, "stateful", False) or not isinstance(values, list) \
                or not all(isinstance(v, np.ndarray) for v in values):
            bad(f"rnn_states names layer {name!r}, which is not a stateful recurrent layer, or is malformed")
        try:
            layer._set_states(values)
        except (TypeError, ValueError, IndexError) as exc:
            bad(f"layer {name!r}: bad carried states ({exc})")


def _resolve_model_class(name, custom_objects, bad):
    """A model class by name: registered by the user (or in custom_objects), else one of nncore's own
    (nncore._registry.MODEL_CLASSES, filled by nncore.models)."""
    from nncore._registry import MODEL_CLASSES

    cls = get_registered_object(name, custom_objects) or MODEL_CLASSES.get(name)
    if cls is None:
        from nncore.validation import unknown_name

        bad(str(unknown_name("model class", name, list(MODEL_CLASSES) + list(_REGISTERED))))
    return cls


def _check_layer_classes(config, custom_objects, bad):
    """Every class named in the architecture must be one of nncore's or an explicitly registered one."""
    from nncore import layers

    for i, spec in enumerate(config.get("layers", []) if isinstance(config, dict) else []):
        if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
            bad(f"layer {i}: expected {{'class_name': str, 'config': dict}}, got {spec!r:.80}")
        name = spec["class_name"]
        if get_registered_object(name, custom_objects) is not None:
            continue
        try:
            layers.get_layer_class(name)
        except (KeyError, ValueError) as exc:
            bad(f"layer {i}: unknown layer class {name!r} ({exc}); register it with "
                "nncore.saving.register_serializable or pass custom_objects")


def _check_parameter_count(cls, config, weights, bad):
    """Declare the architecture's parameters WITHOUT allocating them (the model class's
    ``_config_param_count``) and compare their number with the weights the file really holds: a
    hostile config (Dense(units=10**12)) must not make load_model allocate more than the file's own size."""
    if not isinstance(weights, list) or not all(isinstance(w, np.ndarray) for w in weights):
        bad("the weights entry is malformed")
    count = getattr(cls, "_config_param_count", None)
    if count is None:
        return
    stored = sum(w.size for w in weights)
    try:
        declared = count(config, limit=stored)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        bad(f"cannot rebuild the architecture: {type(exc).__name__}: {exc}")
    if declared is not None and declared != stored:   # None: an unbuilt model (nothing allocated yet)
        bad(f"the architecture declares {'at least ' if declared > stored else ''}{declared} parameters, "
            f"the file holds {stored}")


def _build_model(header, custom_objects, bad):
    spec = header.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str) or not isinstance(
        spec.get("config"), dict
    ):
        bad("the architecture entry is missing or malformed")
    cls = _resolve_model_class(spec["class_name"], custom_objects, bad)
    _check_layer_classes(spec["config"], custom_objects, bad)
    with _custom_scope(custom_objects):
        _check_parameter_count(cls, spec["config"], header.get("weights"), bad)
    try:
        with _custom_scope(custom_objects):
            return cls.from_config(spec["config"])
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        bad(f"cannot rebuild the architecture: {type(exc).__name__}: {exc}")


class _custom_scope:
    """Make the layer classes in `custom_objects` visible to nncore.layers.get_layer_class while a
    model is rebuilt, and only then (the registry has no per-call argument)."""

    def __init__(self, custom_objects):
        self.custom = dict(custom_objects or {})
        self.added = []

    def __enter__(self):
        from nncore import layers

        registry = layers._REGISTRY
        for k, c in self.custom.items():
            if isinstance(c, type) and issubclass(c, layers.Layer) and k not in registry:
                registry[k] = c
                self.added.append(k)
        return self

    def __exit__(self, *exc):
        from nncore import layers

        for k in self.added:
            layers._REGISTRY.pop(k, None)


def _set_weights(model, weights, bad):
    if not isinstance(weights, list) or not all(isinstance(w, np.ndarray) for w in weights):
        bad("the weights entry is malformed")
    try:
        model.set_weights(weights)
    except (ValueError, TypeError) as exc:
        bad(f"the stored weights do not fit the architecture: {exc}")


def load_model(path, custom_objects=None, compile=True):
    """Rebuild a model saved by `save_model`: architecture, weights, compile settings, optimizer state.

    Only nncore's own classes, classes registered with `register_serializable`
    and those in `custom_objects` ({name: class}) can be named by the file.
    Raises ValueError for damaged files, unknown versions and unknown classes.
    The model is rebuilt in the float dtype of its stored weights. A Keras 3 ``.keras`` archive (a zip
    file, as `save_keras` or Keras writes) is read by `load_keras`.
    """
    if _is_zip(path):                     # a Keras 3 .keras archive
        return load_keras(path, compile)
    return _model_from_header(read_file(path), repr(os.fspath(path)), custom_objects, compile)


def _is_zip(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def model_from_bytes(data, custom_objects=None, compile=True):
    """`load_model` for the bytes `model_to_bytes` gave (every check of `load_model` holds)."""
    return _model_from_header(read_bytes(data), "model bytes", custom_objects, compile)


def load_keras(path, compile=True):
    """Read a Keras 3 ``.keras`` file (config.json and model.weights.h5, through h5py) into the
    equivalent nncore Sequential or functional Model, compiled with its settings (and the optimizer's
    variables) when it has them. A layer class or an option nncore lacks is refused by name. See nncore._keras_file.load_keras."""
    from nncore._keras_file import load_keras as _load_keras

    return _load_keras(path, compile)


def save_keras(model, path):
    """Write `model` as a Keras 3 ``.keras`` file (config.json, model.weights.h5 through h5py) that
    ``keras.saving.load_model`` reads and trains on (the optimizer's variables included), atomically.
    See nncore._keras_file.save_keras."""
    from nncore._keras_file import save_keras as _save_keras

    return _save_keras(model, path)


def _model_from_header(header, where, custom_objects, compile):
    def bad(reason):
        raise ValueError(f"{where}: {reason}")

    if header.get("kind") != "model":
        bad(f"expected a saved model, got a file of kind {header.get('kind')!r} (use load_weights)")
    weights = header.get("weights")
    floats = [w.dtype.name for w in weights or () if isinstance(w, np.ndarray) and w.dtype.kind == "f"]
    with using_floatx(floats[0] if floats and floats[0] in ("float32", "float64") else floatx()):
        model = _build_model(header, custom_objects, bad)
    _set_weights(model, weights, bad)
    compile_config = header.get("compile")
    if compile and compile_config:
        try:
            with _custom_scope(custom_objects):
                _compile_from_config(model, compile_config)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            bad(f"cannot restore the compile settings: {type(exc).__name__}: {exc}")
        state = header.get("optimizer_state")
        if state is not None:
            try:
                _restore_optimizer(model, state)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                bad(f"cannot restore the optimizer state: {type(exc).__name__}: {exc}")
    extra = header.get("extra")
    if extra is not None:
        _restore_extra(model, extra, bad)
    return model


def _compile_from_config(model, cfg):
    from nncore import optimizers

    if not isinstance(cfg, dict):
        raise ValueError("the compile settings are not an object")
    kwargs = {k: v for k, v in cfg.items() if k != "optimizer"}
    model.compile(optimizer=optimizers.get(cfg.get("optimizer")), **kwargs)


def _restore_optimizer(model, state):
    opt = model.optimizer
    prepare = getattr(model, "_prepare_optimizer", None)
    if callable(prepare):  # the model builds the optimizer's slots over its flat buffer
        prepare()
    opt.set_state(state)


def save_weights(model, path, allow_nonfinite=False):
    """Write the model's weights only (with the layer layout, to check on load), atomically."""
    weights = [np.asarray(w) for w in model.get_weights()]
    if not allow_nonfinite:
        _check_finite_weights(weights, "weight")
    header = _model_header(model, "weights")
    header["weights"] = weights
    write_file(path, header)


def load_weights(model, path):
    """Load weights written by `save_weights` (or `save_model`) into a model of the same architecture."""
    header = read_file(path)

    def bad(reason):
        raise ValueError(f"{os.fspath(path)!r}: {reason}")

    if header.get("kind") not in ("weights", "model"):
        bad(f"unknown file kind {header.get('kind')!r}")
    weights = header.get("weights")
    if not isinstance(weights, list) or not all(isinstance(w, np.ndarray) for w in weights):
        bad("the weights entry is malformed")
    mine = model.get_weights()
    if len(mine) != len(weights):
        bad(f"the file holds {len(weights)} weight arrays, the model has {len(mine)}")
    for i, (a, b) in enumerate(zip(mine, weights)):
        if tuple(a.shape) != tuple(b.shape):
            bad(f"weight {i}: the file holds shape {tuple(b.shape)}, the model expects {tuple(a.shape)}")
    model.set_weights([w.astype(np.asarray(m).dtype, copy=False) for m, w in zip(mine, weights)])
    return model

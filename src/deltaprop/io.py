"""Model files: safetensors tensors plus JSON metadata, safe to open from a stranger.

A model file is one safetensors file (https://github.com/huggingface/safetensors):
an 8-byte little-endian header length ``n``, ``n`` bytes of JSON describing
each tensor (dtype, shape, byte range in the data section) plus a
string-to-string ``__metadata__`` map, then the data section, every byte of
which belongs to exactly one tensor.

Tensors: ``layers.{i}.W`` (n_out, n_in) and ``layers.{i}.b`` (n_out,) for each
layer ``i`` from 0, plus ``preprocessing.{name}`` arrays. Metadata (each value
a JSON string): ``format`` ("deltaprop.model"), ``format_version``,
``architecture`` (layers with activation, initializer and dropout by name and
hyperparameters, the loss, the dtype), ``preprocessing`` (a
:class:`deltaprop.data.Scaler` config), ``classes`` (class labels, in output
order), ``config`` (the run's effective configuration), ``library_version``.

Loading never runs code from the file and never unpickles. It validates
everything before it allocates anything the file asks for: the header's
declared length against the file's size and a 16 MiB limit; the header's JSON
(no duplicate keys); every tensor's dtype, shape and byte range (ranges must
tile the data section exactly, so a truncated or padded file is caught); every
metadata field's type; the architecture (registered names, sizes that chain
and match the tensors' shapes); finite values; the class count against the
outputs; the preprocessing arrays. Any problem is a :class:`ModelFileError`
that names the file and the problem. Memory used is bounded by the file's
size: a header that declares a 2**60-byte tensor is rejected by arithmetic on
the declared sizes.

Writes are atomic: a temporary file in the same folder (created with the
umask's permissions), written, flushed and fsynced, then renamed over the
target; the folder is fsynced after the rename. A crash or a kill at any
moment leaves the old file or the new one, never a mixture; an error
(full disk, read-only folder) is a :class:`SaveError` and leaves the old
file untouched and no temporary file behind.
"""

import errno as _errno
import json
import math
import os
import secrets
import stat
import struct

import numpy as np

from .errors import (
    DeltapropError,
    InvalidArgumentError,
    InvalidTypeError,
    ModelFileError,
    SaveError,
    UnknownNameError,
    describe,
)

__all__ = ["save", "load", "read_file", "write_file", "MODEL_FORMAT", "MODEL_FORMAT_VERSION"]

MODEL_FORMAT = "deltaprop.model"
MODEL_FORMAT_VERSION = 1
#: refuse headers larger than this (safetensors itself allows 100 MB)
MAX_HEADER_BYTES = 16 * 2**20
MAX_LAYERS = 1000
MAX_UNITS = 10**7
MAX_NDIM = 8
#: integers in metadata that count things (epochs, steps) stay exact in a float64
MAX_COUNT = 2**53
#: safetensors dtype name -> NumPy dtype (always little-endian in the file)
_DTYPES = {
    "F16": np.dtype("<f2"), "F32": np.dtype("<f4"), "F64": np.dtype("<f8"),
    "I8": np.dtype("i1"), "I16": np.dtype("<i2"), "I32": np.dtype("<i4"), "I64": np.dtype("<i8"),
    "U8": np.dtype("u1"), "U16": np.dtype("<u2"), "U32": np.dtype("<u4"), "U64": np.dtype("<u8"),
}
_WRITABLE = {np.dtype(d).newbyteorder("=") for d in _DTYPES.values()}
_RESERVED = ("format", "format_version", "architecture", "library_version", "preprocessing", "classes", "config")


def _version():
    from . import __version__

    return __version__


# ------------------------------------------------------------------ JSON
def _to_json(value):
    """``default`` hook for ``json.dumps``: NumPy scalars and arrays become plain values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value, what):
    """``value`` as a JSON string; anything that has no JSON form is an :class:`InvalidTypeError` naming ``what``."""
    try:
        return json.dumps(value, default=_to_json)
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(f"{what} must be JSON-serialisable (numbers, strings, lists, dicts): {exc}") from None


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _loads(text):
    """Parse JSON text; every failure (syntax, duplicate keys, nesting depth, huge ints) is a ValueError."""
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise ValueError("nested too deeply") from None


# --------------------------------------------------------------- raw files
def write_file(path, tensors, metadata):
    """Write ``tensors`` (name -> ndarray) and ``metadata`` (name -> str) as one safetensors file, atomically.

    Parameters
    ----------
    path : str or path-like
    tensors : dict of str to ndarray
        Real or integer arrays (float16/32/64, int8..64, uint8..64), written
        C-contiguous and little-endian.
    metadata : dict of str to str

    Raises
    ------
    SaveError
        When the folder is missing or read-only, the disk is full, ...; the
        previous file at ``path`` is left intact and no temporary file stays.
    InvalidTypeError
        A tensor or metadata entry of a type that cannot be stored.
    """
    from safetensors.numpy import save as _serialize

    path = os.fspath(path)
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidTypeError(f"metadata must map strings to strings, got {describe(key)}: {describe(value)}")
    arrays = {}
    for name, value in tensors.items():
        a = np.asarray(value)
        if a.dtype.newbyteorder("=") not in _WRITABLE:
            raise InvalidTypeError(f"tensor {name!r} has dtype {a.dtype}, which a model file cannot hold")
        arrays[name] = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    payload = _serialize(arrays, metadata=metadata)
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    created = False
    try:
        # Mode 0o666 minus the umask, as open() would give: mkstemp's 0o600
        # would make a saved model unreadable to everyone else.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        created = True
        try:
            f = os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise
        with f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        created = False
        _fsync_folder(folder)
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        code = f" [{_errno.errorcode.get(exc.errno, exc.errno)}]" if exc.errno else ""
        raise SaveError(f"cannot write {path}: {reason}{code}; the previous file, if any, is intact") from None
    finally:
        if created:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _fsync_folder(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder; the rename is done
    finally:
        os.close(fd)


def read_file(path, max_bytes=None):
    """Read and validate a safetensors file: ``(tensors, metadata)``.

    The header is checked before anything is allocated from it: its declared
    length must fit in the file and be at most 16 MiB; it must be a JSON
    object (without duplicate keys) whose tensors have supported dtypes,
    shapes of at most 8 non-negative integers, and byte ranges that match
    their shapes and tile the data section exactly (no gap, no overlap, no
    trailing bytes).

    Parameters
    ----------
    path : str or path-like
    max_bytes : int, optional
        Refuse files larger than this.

    Returns
    -------
    tensors : dict of str to ndarray
        Native byte order, writable, backed by one buffer the size of the
        data section.
    metadata : dict of str to str

    Raises
    ------
    ModelFileError
        For a missing or unreadable file, or anything malformed in it.
    """
    path = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
        # rejected as not a regular file); it changes nothing for files.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
    except OSError as exc:
        os.close(fd)
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        what = "it is a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise ModelFileError(f"cannot read {path}: {what}")
    with open(fd, "rb", closefd=True) as f:
        try:
            size = st.st_size
            if max_bytes is not None and size > max_bytes:
                raise ModelFileError(f"{path}: file is {size} bytes, more than the allowed {max_bytes}")
            if size < 8:
                raise ModelFileError(f"{path}: file is {size} bytes, too short for a safetensors header")
            (n,) = struct.unpack("<Q", _read_exactly(f, 8, path))
            if n > MAX_HEADER_BYTES or n > size - 8:
                raise ModelFileError(
                    f"{path}: header declares {n} bytes but the file has {size - 8} after the length field "
                    f"(limit {MAX_HEADER_BYTES}); the file is truncated or not a safetensors file"
                )
            header, metadata = _parse_header(path, _read_exactly(f, n, path), size - 8 - n)
            body = bytearray(size - 8 - n)
            if f.readinto(body) != len(body) or f.read(1):
                raise ModelFileError(f"{path}: file changed size while being read")
        except OSError as exc:
            raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    tensors = {}
    for name, (dtype, shape, start, end) in header.items():
        if end == start:
            a = np.zeros(shape, dtype=dtype)
        else:
            a = np.frombuffer(body, dtype=dtype, count=(end - start) // dtype.itemsize, offset=start).reshape(shape)
        if not a.dtype.isnative:
            a = a.astype(a.dtype.newbyteorder("="))
        tensors[name] = a
    return tensors, metadata


def _read_exactly(f, n, path):
    data = f.read(n)
    if len(data) != n:
        raise ModelFileError(f"{path}: file ended after {len(data)} of {n} expected bytes")
    return data


def _parse_header(path, raw, body):
    """``({name: (dtype, shape, start, end)}, metadata)`` from the header bytes; ``body`` is the data size."""
    try:
        header = _loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"{path}: header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ModelFileError(f"{path}: __metadata__ must be an object mapping strings to strings")
    out, spans = {}, []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ModelFileError(
                f"{path}: tensor {name!r} must have exactly 'dtype', 'shape' and 'data_offsets', got {describe(info)}"
            )
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _DTYPES:
            raise ModelFileError(
                f"{path}: tensor {name!r} has unsupported dtype {describe(dtype)} (supported: {', '.join(_DTYPES)})"
            )
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise ModelFileError(
                f"{path}: tensor {name!r} has a malformed shape {describe(shape)} "
                f"(a list of at most {MAX_NDIM} non-negative integers)"
            )
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets):
            raise ModelFileError(f"{path}: tensor {name!r} has malformed data_offsets {describe(offsets)}")
        start, end = offsets
        nbytes = math.prod(shape) * _DTYPES[dtype].itemsize  # exact integers: no overflow, no allocation
        if not 0 <= start <= end <= body or end - start != nbytes:
            raise ModelFileError(
                f"{path}: tensor {name!r} of shape {tuple(shape)} needs {nbytes} bytes but declares bytes "
                f"{start}..{end} of a data section of {body}; the file is truncated or corrupt"
            )
        out[name] = (_DTYPES[dtype], tuple(shape), start, end)
        spans.append((start, end, name))
    spans.sort()
    position = 0
    for start, end, name in spans:
        if start != position:
            what = "overlaps another tensor" if start < position else f"leaves a gap at byte {position}"
            raise ModelFileError(f"{path}: tensor {name!r} {what} in the data section")
        position = end
    if position != body:
        raise ModelFileError(f"{path}: {body - position} bytes after the last tensor: the file is corrupt")
    return out, metadata


# --------------------------------------------------------------- metadata
def json_field(path, metadata, key, types, required=True):
    """Parse metadata entry ``key`` as JSON and check its type; None when absent and not required."""
    if key not in metadata:
        if required:
            raise ModelFileError(f"{path}: metadata lacks {key!r}")
        return None
    try:
        value = _loads(metadata[key])
    except ValueError as exc:
        raise ModelFileError(f"{path}: metadata {key!r} is not valid JSON ({exc})") from None
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
        names = "/".join(t.__name__ for t in _as_tuple(types))
        raise ModelFileError(f"{path}: metadata {key!r} must be a JSON {names}, got {type(value).__name__}")
    return value



def _as_tuple(types):
    return types if isinstance(types, tuple) else (types,)


def check_format(path, metadata, expected, version):
    """Check ``format`` and ``format_version`` in the metadata."""
    fmt = metadata.get("format")
    if fmt != expected:
        hint = ""
        if fmt == "deltaprop.checkpoint":
            hint = "; it is a training checkpoint: continue it with fit(..., resume_from=...)"
        elif fmt == MODEL_FORMAT:
            hint = "; it is a model file: open it with deltaprop.load"
        raise ModelFileError(f"{path}: not a {expected} file (format is {describe(fmt)}){hint}")
    raw = metadata.get("format_version")
    if not isinstance(raw, str) or not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise ModelFileError(f"{path}: format_version must be a positive integer, got {describe(raw)}")
    found = int(raw)
    if found > version:
        raise ModelFileError(
            f"{path}: format version {found} is newer than this deltaprop ({_version()}) reads "
            f"(up to {version}); upgrade deltaprop to open it"
        )
    if found < 1:
        raise ModelFileError(f"{path}: format version {found} is not valid")


def _int_in(value, low, high):
    return type(value) is int and low <= value <= high


def check_architecture(path, arch):
    """Validate an architecture dict from a file (types, bounds, sizes that chain) and return it.

    Names are resolved later, by :func:`build_network`.
    """
    if not isinstance(arch, dict) or not isinstance(arch.get("layers"), list):
        raise ModelFileError(f"{path}: architecture must be an object with a 'layers' list")
    layers = arch["layers"]
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise ModelFileError(f"{path}: architecture has {len(layers)} layers (allowed 1..{MAX_LAYERS})")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ModelFileError(f"{path}: layer {i} must be an object, got {type(layer).__name__}")
        if layer.get("type", "Dense") != "Dense":
            raise ModelFileError(f"{path}: layer {i} has unknown type {describe(layer.get('type'))}")
        for key in ("n_in", "n_out"):
            v = layer.get(key)
            if not _int_in(v, 1, MAX_UNITS):
                raise ModelFileError(
                    f"{path}: layer {i} has invalid {key} {describe(v)} (an integer in 1..{MAX_UNITS})"
                )
        if i and layers[i - 1]["n_out"] != layer["n_in"]:
            raise ModelFileError(
                f"{path}: layer {i} has n_in={layer['n_in']} but layer {i - 1} has n_out={layers[i - 1]['n_out']}"
            )
        act = layer.get("activation")
        if not isinstance(act, dict) or not isinstance(act.get("name"), str):
            raise ModelFileError(f"{path}: layer {i} activation must be an object with a 'name' string")
        d = layer.get("dropout", 0.0)
        if type(d) not in (int, float) or not 0 <= d < 1:
            raise ModelFileError(f"{path}: layer {i} has invalid dropout {describe(d)} (a number in [0, 1))")
        if i == len(layers) - 1 and d:
            raise ModelFileError(f"{path}: the output layer has dropout {d}")
        init = layer.get("initializer")
        if init is not None and not isinstance(init, str):
            raise ModelFileError(f"{path}: layer {i} has an invalid initializer {describe(init)}")
    loss = arch.get("loss")
    if not isinstance(loss, dict) or not isinstance(loss.get("name"), str):
        raise ModelFileError(f"{path}: architecture loss must be an object with a 'name' string")
    if arch.get("dtype") not in ("float32", "float64"):
        raise ModelFileError(
            f"{path}: architecture dtype must be 'float32' or 'float64', got {describe(arch.get('dtype'))}"
        )
    return arch


def n_params(arch):
    """Number of parameters of a checked architecture: ``Σ n_out (n_in + 1)``."""
    return sum(layer["n_out"] * (layer["n_in"] + 1) for layer in arch["layers"])


def build_network(path, arch):
    """Build a Network from a checked architecture, turning every failure into a clear ModelFileError.

    Only call this once the architecture's sizes are known to match tensors
    present in the file, so that a file cannot make it allocate more memory
    than its own size.
    """
    from .network import Network

    try:
        return Network.from_config(arch, seed=0)
    except UnknownNameError as exc:
        raise ModelFileError(
            f"{path}: {exc}. If the model uses your own activation, loss or initializer, register it under "
            f"the saved name before loading (deltaprop.activations.register(name, cls), "
            f"deltaprop.losses.register, deltaprop.initializers.register)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a registered class may reject the file's hyperparameters any way
        raise ModelFileError(f"{path}: architecture is invalid: {exc}") from None


def network_tensors(network):
    """``layers.{i}.W`` and ``layers.{i}.b`` views for every layer."""
    out = {}
    for i, layer in enumerate(network.layers):
        out[f"layers.{i}.W"] = layer.W
        out[f"layers.{i}.b"] = layer.b
    return out


def _expected_tensors(arch):
    """``{name: shape}`` of the ``layers.*`` tensors an architecture needs."""
    out = {}
    for i, layer in enumerate(arch["layers"]):
        out[f"layers.{i}.W"] = (layer["n_out"], layer["n_in"])
        out[f"layers.{i}.b"] = (layer["n_out"],)
    return out


def check_tensor(path, name, tensor, shape, dtype, finite=True):
    """Check one tensor from a file against the shape and dtype its metadata implies."""
    if tensor.shape != tuple(shape):
        raise ModelFileError(f"{path}: tensor {name!r} has shape {tensor.shape}, the metadata says {tuple(shape)}")
    if tensor.dtype != np.dtype(dtype):
        raise ModelFileError(f"{path}: tensor {name!r} has dtype {tensor.dtype}, the metadata says {np.dtype(dtype)}")
    if finite and tensor.dtype.kind == "f" and not np.isfinite(tensor).all():
        bad = int(np.count_nonzero(~np.isfinite(tensor)))
        raise ModelFileError(f"{path}: tensor {name!r} contains {bad} NaN or infinite values")


# ------------------------------------------------------------- model files
def _check_classes(classes, n_out, where, error):
    """Labels must be distinct strings, integers, finite floats or booleans, one per class."""
    if not isinstance(classes, list):
        raise error(f"{where}classes must be a list, got {type(classes).__name__}")
    for c in classes:
        if not (isinstance(c, (str, int)) or (isinstance(c, float) and math.isfinite(c))):
            raise error(f"{where}class label {describe(c)} is not a string, an integer or a finite number")
    n_cls = 2 if n_out == 1 else n_out
    if len(classes) != n_cls:
        raise error(f"{where}{len(classes)} class labels for a network with {n_out} output"
                    f"{'s' if n_out > 1 else ''} ({n_cls} classes)")
    keyed = [(type(c) is bool, c) for c in classes]  # True and 1 are different labels
    if len(set(keyed)) != len(keyed):
        raise error(f"{where}class labels repeat: {describe(classes)}")


def _scaler(config, arrays, n_in):
    from .data import Scaler

    scaler = Scaler.from_state(config, arrays)
    if scaler.n_features_in_ != n_in:
        raise InvalidArgumentError(
            f"preprocessing is for {scaler.n_features_in_} features but the network has {n_in} inputs"
        )
    extra = set(arrays) - {"offset", "scale"}
    if extra:
        raise InvalidArgumentError(f"preprocessing has unexpected arrays {sorted(extra)}")
    return scaler


def save(network, path, preprocessing=None, classes=None, config=None, extra=None):
    """Save a network to one safetensors file, atomically.

    Parameters
    ----------
    network : Network
        Its activations and loss are stored by name and hyperparameters
        (``get_config()``); one of your own must be registered under that
        name before the file can be loaded.
    path : str or path-like
    preprocessing : (dict, dict of ndarray), optional
        A fitted :class:`deltaprop.data.Scaler`'s ``state()``, applied to
        inputs by ``deltaprop evaluate`` and ``predict``.
    classes : sequence, optional
        Class labels in output order (distinct strings or numbers; two for a
        network with one output).
    config : dict, optional
        The run's effective configuration (shown by ``deltaprop info``).
    extra : dict, optional
        More metadata entries (JSON-serialisable values) under names other
        than the reserved ones.

    Raises
    ------
    SaveError
        The file could not be written; a previous file at ``path`` is intact.
    InvalidArgumentError, InvalidTypeError
        Preprocessing, classes, config or extra that a file could not hold
        or that a load would reject (checked before anything is written).
    """
    tensors = dict(network_tensors(network))
    if not np.all(np.isfinite(network.params)):
        raise InvalidArgumentError("cannot save a network whose parameters contain NaN or infinity")
    metadata = {
        "format": MODEL_FORMAT,
        "format_version": str(MODEL_FORMAT_VERSION),
        "architecture": dumps(network.get_config(), "the network's configuration"),
        "library_version": json.dumps(_version()),
    }
    if preprocessing is not None:
        if not isinstance(preprocessing, tuple) or len(preprocessing) != 2:
            raise InvalidTypeError(
                f"preprocessing must be a (config, arrays) pair from Scaler.state(), got {describe(preprocessing)}"
            )
        pconfig, parrays = preprocessing
        _scaler(pconfig, parrays, network.n_in)
        metadata["preprocessing"] = dumps(pconfig, "preprocessing config")
        for k, v in parrays.items():
            tensors[f"preprocessing.{k}"] = np.asarray(v)
    if classes is not None:
        labels = [c.item() if isinstance(c, np.generic) else c for c in classes]
        _check_classes(labels, network.n_out, "", InvalidArgumentError)
        metadata["classes"] = dumps(labels, "classes")
    if config is not None:
        if not isinstance(config, dict):
            raise InvalidTypeError(f"config must be a dict, got {describe(config)}")
        metadata["config"] = dumps(config, "config")
    for k, v in (extra or {}).items():
        if not isinstance(k, str) or k in _RESERVED:
            raise InvalidArgumentError(f"extra metadata key {k!r} is reserved or not a string")
        metadata[k] = dumps(v, f"extra metadata {k!r}")
    write_file(path, tensors, metadata)


def load(path):
    """Load a model file written by :func:`save`.

    Returns
    -------
    Network
        With extra attributes ``preprocessing`` ((config, arrays) or None),
        ``classes`` (list or None), ``run_config`` (dict or None) and
        ``metadata`` (the raw string map).

    Raises
    ------
    ModelFileError
        For anything wrong with the file, naming the problem; also when it
        names an activation or loss that is not registered (register yours
        under the saved name first).
    """
    path = os.fspath(path)
    tensors, metadata = read_file(path)
    check_format(path, metadata, MODEL_FORMAT, MODEL_FORMAT_VERSION)
    arch = check_architecture(path, json_field(path, metadata, "architecture", dict))
    expected = _expected_tensors(arch)
    pconfig = json_field(path, metadata, "preprocessing", dict, required=False)
    parrays = {k[len("preprocessing."):]: v for k, v in tensors.items() if k.startswith("preprocessing.")}
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise ModelFileError(f"{path}: tensors {missing[:5]} are missing (the architecture has "
                             f"{len(arch['layers'])} layers)")
    unexpected = sorted(set(tensors) - set(expected) - {f"preprocessing.{k}" for k in parrays})
    if unexpected:
        raise ModelFileError(f"{path}: unexpected tensors {unexpected[:5]}")
    # Shapes and dtypes before building: the network is then no larger than the file.
    for name, shape in expected.items():
        check_tensor(path, name, tensors[name], shape, arch["dtype"])
    if parrays and pconfig is None:
        raise ModelFileError(f"{path}: preprocessing tensors without a preprocessing config")
    if pconfig is not None:
        try:
            _scaler(pconfig, parrays, arch["layers"][0]["n_in"])
        except DeltapropError as exc:
            raise ModelFileError(f"{path}: preprocessing is invalid: {exc}") from None
    classes = json_field(path, metadata, "classes", list, required=False)
    if classes is not None:
        _check_classes(classes, arch["layers"][-1]["n_out"], f"{path}: ", ModelFileError)
    run_config = json_field(path, metadata, "config", dict, required=False)
    net = build_network(path, arch)
    for name, target in network_tensors(net).items():
        np.copyto(target, tensors[name])
    net.preprocessing = None if pconfig is None else (pconfig, parrays)
    net.classes = classes
    net.run_config = run_config
    net.metadata = dict(metadata)
    return net

"""Model files: safetensors tensors plus JSON metadata, safe to open from a stranger.

A model file is one safetensors file (https://github.com/huggingface/safetensors):
an 8-byte header length, a JSON header describing each tensor (dtype, shape,
byte range) and a string-to-string ``__metadata__`` map, then the raw bytes.
Loading never runs code and never unpickles.

Tensors: ``layers.{i}.W`` (n_out, n_in) and ``layers.{i}.b`` (n_out,) for each
layer ``i`` from 0, plus ``preprocessing.{name}`` arrays. Metadata (each value
a JSON string): ``format`` ("deltaprop.model"), ``format_version``,
``architecture`` (layers with activation, initializer and dropout by name and
hyperparameters, the loss, the dtype), ``preprocessing`` (config), ``classes``
(class labels), ``config`` (the run's effective configuration),
``library_version``.

Loading validates everything before building the network: the header's size
and JSON, every metadata field's type, the architecture (known names, sizes
that chain, bounded counts), the exact set of tensors with their shapes and
dtypes, and finite values. Anything else is a :class:`ModelFileError` that
names the problem.

Writes are atomic: a temporary file in the same folder, flushed and fsynced,
then renamed over the target; a crash at any moment leaves the old file.
"""

import json
import os
import struct
import tempfile

import numpy as np

from . import activations as _activations
from . import losses as _losses
from .errors import DeltapropError, ModelFileError, SaveError, UnknownNameError

__all__ = ["save", "load", "read_file", "write_file", "MODEL_FORMAT", "MODEL_FORMAT_VERSION"]

MODEL_FORMAT = "deltaprop.model"
MODEL_FORMAT_VERSION = 1
#: refuse headers larger than this (safetensors itself allows 100 MB)
MAX_HEADER_BYTES = 16 * 2**20
MAX_LAYERS = 1000
MAX_UNITS = 10**7
_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "U8": np.uint8, "I32": np.int32,
           "U32": np.uint32, "F16": np.float16, "I8": np.int8, "I16": np.int16, "BOOL": np.bool_,
           "U16": np.uint16, "U64": np.uint64}


def _version():
    from . import __version__

    return __version__


# --------------------------------------------------------------- raw files
def write_file(path, tensors, metadata):
    """Write ``tensors`` (name -> ndarray) and ``metadata`` (name -> str) atomically.

    Raises
    ------
    SaveError
        When the folder is missing or read-only, the disk is full, ...; the
        previous file at ``path`` is left intact.
    """
    from safetensors.numpy import save

    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    payload = save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=metadata)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        try:
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError:
            pass  # some file systems cannot fsync a folder; the rename is done
    except OSError as exc:
        raise SaveError(f"cannot write {path}: {exc.strerror or exc} (the previous file, if any, is intact)") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def read_file(path, max_bytes=None):
    """Read and validate a safetensors file: ``(tensors, metadata)``.

    The header is checked before anything is allocated from it: its declared
    length must fit in the file and be at most 16 MiB, it must be a JSON
    object whose tensors have known dtypes, shapes of non-negative integers
    and byte ranges that match them, lie inside the file and do not overlap.
    """
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        if max_bytes is not None and size > max_bytes:
            raise ModelFileError(f"{path}: file is {size} bytes, more than the allowed {max_bytes}")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ModelFileError(f"cannot read {path}: {exc.strerror or exc}") from None
    header, metadata = _parse_header(path, data)
    from safetensors.numpy import load

    try:
        tensors = load(data)
    except Exception as exc:  # the Rust parser's own errors
        raise ModelFileError(f"{path}: not a valid safetensors file ({exc})") from None
    if set(tensors) != set(header):
        raise ModelFileError(f"{path}: tensor table does not match its header")
    return tensors, metadata


def _parse_header(path, data):
    if len(data) < 8:
        raise ModelFileError(f"{path}: file is {len(data)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES or n > len(data) - 8:
        raise ModelFileError(
            f"{path}: header declares {n} bytes but the file has {len(data) - 8} after the length "
            f"(limit {MAX_HEADER_BYTES}); the file is truncated or not a safetensors file"
        )
    try:
        header = json.loads(data[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"{path}: header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{path}: header must be a JSON object, got {type(header).__name__}")
    metadata = header.pop("__metadata__", {}) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ModelFileError(f"{path}: __metadata__ must map strings to strings")
    body = len(data) - 8 - n
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ModelFileError(f"{path}: tensor {name!r} has a malformed entry")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPES:
            raise ModelFileError(f"{path}: tensor {name!r} has unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            raise ModelFileError(f"{path}: tensor {name!r} has a malformed shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise ModelFileError(f"{path}: tensor {name!r} has malformed data_offsets")
        start, end = offsets
        nbytes = int(np.prod(shape, dtype=object)) * np.dtype(_DTYPES[dtype]).itemsize
        if not 0 <= start <= end <= body or end - start != nbytes:
            raise ModelFileError(
                f"{path}: tensor {name!r} declares {nbytes} bytes at {start}..{end} but the data section "
                f"has {body} bytes"
            )
        spans.append((start, end))
    spans.sort()
    for (s0, e0), (s1, _) in zip(spans, spans[1:]):
        if s1 < e0:
            raise ModelFileError(f"{path}: tensors overlap in the data section")
    return header, metadata


def _json_field(path, metadata, key, types, required=True):
    if key not in metadata:
        if required:
            raise ModelFileError(f"{path}: metadata lacks {key!r}")
        return None
    try:
        value = json.loads(metadata[key])
    except ValueError:
        raise ModelFileError(f"{path}: metadata {key!r} is not valid JSON") from None
    if not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else "/".join(t.__name__ for t in types)
        raise ModelFileError(f"{path}: metadata {key!r} must be a JSON {names}, got {type(value).__name__}")
    return value


def check_format(path, metadata, expected, version):
    """Check ``format`` and ``format_version`` in the metadata."""
    fmt = metadata.get("format")
    if fmt != expected:
        raise ModelFileError(f"{path}: not a {expected} file (format is {fmt!r})")
    raw = metadata.get("format_version")
    try:
        found = int(raw)
    except (TypeError, ValueError):
        raise ModelFileError(f"{path}: format_version must be an integer, got {raw!r}") from None
    if found > version:
        raise ModelFileError(
            f"{path}: format version {found} is newer than this deltaprop reads ({version}); upgrade deltaprop"
        )
    if found < 1:
        raise ModelFileError(f"{path}: format version {found} is not valid")


def check_architecture(path, arch):
    """Validate an architecture dict from a file and return it (names resolved lazily)."""
    if not isinstance(arch, dict) or not isinstance(arch.get("layers"), list):
        raise ModelFileError(f"{path}: architecture must be an object with a 'layers' list")
    layers = arch["layers"]
    if not 1 <= len(layers) <= MAX_LAYERS:
        raise ModelFileError(f"{path}: architecture has {len(layers)} layers (allowed 1..{MAX_LAYERS})")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise ModelFileError(f"{path}: layer {i} must be an object")
        for key in ("n_in", "n_out"):
            v = layer.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_UNITS:
                raise ModelFileError(f"{path}: layer {i} has invalid {key} {v!r}")
        if i and layers[i - 1]["n_out"] != layer["n_in"]:
            raise ModelFileError(f"{path}: layer {i} has n_in={layer['n_in']} but layer {i - 1} has n_out={layers[i - 1]['n_out']}")
        act = layer.get("activation")
        if not isinstance(act, dict) or not isinstance(act.get("name"), str):
            raise ModelFileError(f"{path}: layer {i} activation must be an object with a name")
        d = layer.get("dropout", 0.0)
        if not isinstance(d, (int, float)) or isinstance(d, bool) or not 0 <= d < 1:
            raise ModelFileError(f"{path}: layer {i} has invalid dropout {d!r}")
        if layer.get("initializer") is not None and not isinstance(layer.get("initializer"), str):
            raise ModelFileError(f"{path}: layer {i} has an invalid initializer")
    loss = arch.get("loss")
    if not isinstance(loss, dict) or not isinstance(loss.get("name"), str):
        raise ModelFileError(f"{path}: architecture loss must be an object with a name")
    if arch.get("dtype") not in ("float32", "float64"):
        raise ModelFileError(f"{path}: architecture dtype must be 'float32' or 'float64', got {arch.get('dtype')!r}")
    return arch


def build_network(path, arch):
    """Build a Network from a checked architecture, turning unknown names into clear errors."""
    from .network import Network

    try:
        return Network.from_config(arch, seed=0)
    except UnknownNameError as exc:
        raise ModelFileError(
            f"{path}: {exc}. If the model uses your own activation or loss, register it first "
            f"(deltaprop.activations.register / deltaprop.losses.register) under the saved name"
        ) from None
    except DeltapropError as exc:
        raise ModelFileError(f"{path}: architecture is invalid: {exc}") from None


def network_tensors(network):
    """``layers.{i}.W`` and ``layers.{i}.b`` views for every layer."""
    out = {}
    for i, layer in enumerate(network.layers):
        out[f"layers.{i}.W"] = layer.W
        out[f"layers.{i}.b"] = layer.b
    return out


def load_network_tensors(path, network, tensors):
    """Copy ``layers.*`` tensors into ``network`` after checking names, shapes, dtypes and finiteness."""
    expected = network_tensors(network)
    for name, target in expected.items():
        if name not in tensors:
            raise ModelFileError(f"{path}: tensor {name!r} is missing")
        t = tensors[name]
        if t.shape != target.shape:
            raise ModelFileError(f"{path}: tensor {name!r} has shape {t.shape}, the architecture says {target.shape}")
        if t.dtype != target.dtype:
            raise ModelFileError(f"{path}: tensor {name!r} has dtype {t.dtype}, the architecture says {target.dtype}")
        if not np.all(np.isfinite(t)):
            raise ModelFileError(f"{path}: tensor {name!r} contains NaN or infinity")
        target[...] = t
    return set(expected)


# ------------------------------------------------------------- model files
def save(network, path, preprocessing=None, classes=None, config=None, extra=None):
    """Save a network to one safetensors file, atomically.

    Parameters
    ----------
    network : Network
    path : str or path-like
    preprocessing : (dict, dict of ndarray), optional
        A scaler's ``state()``: JSON config and arrays, applied to inputs by
        ``deltaprop evaluate`` and ``predict``.
    classes : list, optional
        Class labels, in output order (strings or numbers).
    config : dict, optional
        The run's effective configuration (shown by ``deltaprop info``).
    extra : dict of str, optional
        More metadata entries (JSON-serialisable values).
    """
    tensors = dict(network_tensors(network))
    metadata = {
        "format": MODEL_FORMAT,
        "format_version": str(MODEL_FORMAT_VERSION),
        "architecture": json.dumps(network.get_config()),
        "library_version": json.dumps(_version()),
    }
    if preprocessing is not None:
        pconfig, parrays = preprocessing
        metadata["preprocessing"] = json.dumps(pconfig)
        for k, v in parrays.items():
            tensors[f"preprocessing.{k}"] = np.asarray(v)
    if classes is not None:
        metadata["classes"] = json.dumps([c.item() if hasattr(c, "item") else c for c in classes])
    if config is not None:
        metadata["config"] = json.dumps(config)
    for k, v in (extra or {}).items():
        metadata[k] = json.dumps(v)
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
        For anything wrong with the file, naming the problem.
    """
    path = os.fspath(path)
    tensors, metadata = read_file(path)
    check_format(path, metadata, MODEL_FORMAT, MODEL_FORMAT_VERSION)
    arch = check_architecture(path, _json_field(path, metadata, "architecture", dict))
    net = build_network(path, arch)
    used = load_network_tensors(path, net, tensors)
    pconfig = _json_field(path, metadata, "preprocessing", dict, required=False)
    parrays = {k[len("preprocessing."):]: v for k, v in tensors.items() if k.startswith("preprocessing.")}
    used |= {f"preprocessing.{k}" for k in parrays}
    extra = set(tensors) - used
    if extra:
        raise ModelFileError(f"{path}: unexpected tensors {sorted(extra)[:5]}")
    if parrays and pconfig is None:
        raise ModelFileError(f"{path}: preprocessing tensors without a preprocessing config")
    classes = _json_field(path, metadata, "classes", list, required=False)
    if classes is not None:
        if not all(isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in classes):
            raise ModelFileError(f"{path}: classes must be a list of strings or numbers")
        n_cls = 2 if net.n_out == 1 else net.n_out
        if len(classes) != n_cls:
            raise ModelFileError(f"{path}: {len(classes)} class labels for a network with {net.n_out} outputs")
    net.preprocessing = None if pconfig is None else (pconfig, parrays)
    net.classes = classes
    net.run_config = _json_field(path, metadata, "config", dict, required=False)
    net.metadata = dict(metadata)
    return net

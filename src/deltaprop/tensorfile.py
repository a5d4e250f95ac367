"""The tensor-file codec: safetensors files with JSON metadata, safe to open from a stranger.

A file is one safetensors file (https://github.com/huggingface/safetensors):
an 8-byte little-endian header length ``n``, ``n`` bytes of JSON describing
each tensor (dtype, shape, byte range in the data section) plus a
string-to-string ``__metadata__`` map, then the data section, every byte of
which belongs to exactly one tensor. Model files (:mod:`deltaprop.io`) and
checkpoints (:mod:`deltaprop.checkpoint`) are both such files; this module
knows neither, and no network: it reads and writes tensors and strings.

Reading never runs code from the file and never unpickles. It validates
everything before it allocates anything the file asks for: the header's
declared length against the file's size and a 16 MiB limit; the header's JSON
(no duplicate keys); every tensor's dtype, shape and byte range (ranges must
tile the data section exactly, so a truncated or padded file is caught). Any
problem is a :class:`~deltaprop.errors.ModelFileError` that names the file and
the problem. Memory used is bounded by the file's size: a header that
declares a 2**60-byte tensor is rejected by arithmetic on the declared sizes.

Writes are atomic, through :func:`deltaprop.atomic.atomic_write`: a
temporary file in the same folder (with the old file's permission bits, or
the umask's for a new file), written, flushed and fsynced, then renamed over
the target; the folder is fsynced after the rename. A crash or a kill at any
moment leaves the old file or the new one, never a mixture; an error (full
disk, read-only folder) is a :class:`~deltaprop.errors.SaveError` and leaves
the old file untouched and no temporary file behind.

The metadata helpers (:func:`json_field`, :func:`check_format`,
:func:`check_tensor`) check one field or tensor against what the reader
expects and name the file in every message; :func:`dumps` and :func:`loads`
are the one JSON encoding of deltaprop's files (NumPy values become plain
numbers, duplicate keys and deep nesting are refused).
"""

import json
import math
import os
import re
import stat
import struct

import numpy as np

from ._version import __version__
from .atomic import atomic_write
from .errors import InvalidTypeError, ModelFileError, describe

__all__ = [
    "read_file",
    "write_file",
    "dumps",
    "loads",
    "json_default",
    "json_field",
    "check_format",
    "check_tensor",
    "MAX_COUNT",
]

#: refuse headers larger than this (safetensors itself allows 100 MB)
MAX_HEADER_BYTES = 16 * 2**20
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
#: the format names of deltaprop's files, for the hint when one is opened as the other
MODEL_FORMAT = "deltaprop.model"
CHECKPOINT_FORMAT = "deltaprop.checkpoint"


# ------------------------------------------------------------------ JSON
def json_default(value):
    """``default`` hook for ``json.dumps``: NumPy scalars and arrays become plain values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value, what):
    """``value`` as a JSON string; anything that has no JSON form is an :class:`InvalidTypeError` naming ``what``."""
    try:
        return json.dumps(value, default=json_default)
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(f"{what} must be JSON-serialisable (numbers, strings, lists, dicts): {exc}") from None


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def loads(text):
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
    with atomic_write(path, "wb") as f:
        f.write(payload)


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


#: JSON objects, arrays and elements a header may hold (outside strings): a tensor entry takes about 8,
#: so about 16,000 tensors; this bounds the parse at about 4 × the header's size + 64 MiB
MAX_HEADER_TOKENS = 2**17
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def _parse_header(path, raw, body):
    """``({name: (dtype, shape, start, end)}, metadata)`` from the header bytes; ``body`` is the data size.

    Before parsing, the JSON's objects, arrays and elements (``{``, ``[`` and
    ``,`` outside strings) are counted and more than
    :data:`MAX_HEADER_TOKENS` are refused: parsed, each costs up to a few
    hundred bytes, while strings cost about their length. Peak memory is
    thus a small multiple of the header (measured: under 4 × its size +
    64 MiB for a 16 MiB header).
    """
    skeleton = _JSON_STRING.sub(b"", raw)
    tokens = skeleton.count(b"{") + skeleton.count(b"[") + skeleton.count(b",")
    del skeleton
    if tokens > MAX_HEADER_TOKENS:
        raise ModelFileError(
            f"{path}: header holds {tokens} JSON values, more than the {MAX_HEADER_TOKENS} a tensor file "
            f"may hold (about 16,000 tensors); the file is corrupt or hostile"
        )
    try:
        header = loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        if str(exc) == "nested too deeply":
            raise ModelFileError(f"{path}: header metadata nested too deeply") from None
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
        value = loads(metadata[key])
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
        if fmt == CHECKPOINT_FORMAT:
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
            f"{path}: format version {found} is newer than this deltaprop ({__version__}) reads "
            f"(up to {version}); upgrade deltaprop to open it"
        )
    if found < 1:
        raise ModelFileError(f"{path}: format version {found} is not valid")


def check_tensor(path, name, tensor, shape, dtype, finite=True):
    """Check one tensor from a file against the shape and dtype its metadata implies."""
    if tensor.shape != tuple(shape):
        raise ModelFileError(f"{path}: tensor {name!r} has shape {tensor.shape}, the metadata says {tuple(shape)}")
    if tensor.dtype != np.dtype(dtype):
        raise ModelFileError(f"{path}: tensor {name!r} has dtype {tensor.dtype}, the metadata says {np.dtype(dtype)}")
    if finite and tensor.dtype.kind == "f" and not np.isfinite(tensor).all():
        bad = int(np.count_nonzero(~np.isfinite(tensor)))
        raise ModelFileError(f"{path}: tensor {name!r} contains {bad} NaN or infinite values")

"""IDX files, the MNIST family's format, gzipped or not."""

import math
import os

import numpy as np

from ..checks import MAX_DATA_BYTES, check_inflation, inflation_limit, input_file, open_binary, path_str
from ..errors import DataError

__all__ = ["load_idx", "is_idx_magic", "IDX_DTYPES", "GZIP_MAGIC"]


#: IDX type codes: NumPy dtype (big-endian in the file).
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

GZIP_MAGIC = b"\x1f\x8b"
_READ_BLOCK = 1 << 20


def load_idx(path):
    """Read an IDX file (the MNIST family's format), gzipped or not.

    Layout: two zero bytes, a type code, the number of dimensions ``k``, then
    ``k`` big-endian uint32 sizes, then the values in C order, big-endian.
    Gzip is recognised by its magic bytes (1f 8b), not by the file name.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    ndarray of shape dims
        Native byte order; dtype uint8, int8, int16, int32, float32 or float64
        as the type code (0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E) says.

    Raises
    ------
    DataError
        Bad magic number or type code, no dimensions, a corrupt gzip stream,
        or a file that does not hold exactly the ``prod(dims)`` values its
        header declares (the message names the path and the expected and
        found byte counts).

    Notes
    -----
    Nothing is allocated from the declared sizes until they are checked: a
    plain file's size is compared first (and capped at
    :data:`deltaprop.checks.MAX_DATA_BYTES`); a gzip stream's declared size
    is decompressed block by block, never beyond one byte past the declared
    size nor past :func:`deltaprop.checks.inflation_limit` of the compressed
    size (100:1 plus 1 MiB, and 4 GiB): a declared size beyond that limit is
    inflated without keeping anything, to tell a short stream (named as
    such) from a bomb (refused where it stopped). A pipe is read once (:func:`deltaprop.checks.input_file`).
    """
    path = path_str(path)
    with input_file(path) as real:
        return _load_idx(real, path)


def _load_idx(real, path):
    with open_binary(real, "data file", MAX_DATA_BYTES) as f:
        gzipped = f.read(2) == GZIP_MAGIC
        f.seek(0)
        if not gzipped:
            return _read_idx_plain(path, f)
        compressed = os.fstat(f.fileno()).st_size
    import gzip
    import zlib

    decompressed = 0
    try:
        with gzip.open(real, "rb") as g:
            header, (dims, dtype, expected) = _read_idx_header(path, g)
            decompressed = len(header)
            limit = inflation_limit(compressed) - len(header)
            if expected > limit:  # inflate without keeping anything: a short stream is named as such
                decompressed += _drain(g, limit + 1)
                if decompressed - len(header) > limit:
                    check_inflation(path, compressed, len(header) + expected, "IDX data",
                                    stopped=decompressed)
                _short(path, dims, dtype, expected, decompressed - len(header))
            buf = bytearray()
            while len(buf) <= expected:
                block = g.read(min(_READ_BLOCK, expected + 1 - len(buf)))
                if not block:
                    break
                buf += block
                decompressed = len(header) + len(buf)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(
            f"{path}: truncated or corrupt gzip stream after {decompressed} bytes of decompressed "
            f"data ({exc})"
        ) from None
    if len(buf) != expected:
        _short(path, dims, dtype, expected, len(buf))
    return np.frombuffer(buf, dtype=dtype).astype(dtype.newbyteorder("="), copy=False).reshape(dims)


def _short(path, dims, dtype, expected, found):
    found = f"more than {expected}" if found > expected else str(found)
    raise DataError(
        f"{path}: the IDX header declares shape {dims} of {dtype.name}, which needs {expected} "
        f"bytes of data, but the gzip stream holds {found}"
    )


def _drain(g, n):
    """Inflate and discard up to ``n`` bytes of ``g``, a block at a time; the count."""
    count = 0
    while count < n:
        block = g.read(min(_READ_BLOCK, n - count))
        if not block:
            break
        count += len(block)
    return count


def _read_idx_plain(path, f):
    size = os.fstat(f.fileno()).st_size
    header, (dims, dtype, expected) = _read_idx_header(path, f)
    found = size - len(header)
    if found != expected:
        raise DataError(
            f"{path}: the IDX header declares shape {dims} of {dtype.name}, which needs {expected} "
            f"bytes of data, but the file holds {found}"
        )
    n = math.prod(dims)
    data = np.fromfile(f, dtype=dtype, count=n)
    if data.size != n:  # the file shrank while we read it
        raise DataError(f"{path}: expected {expected} bytes of data, read {data.size * dtype.itemsize}")
    return data.astype(dtype.newbyteorder("="), copy=False).reshape(dims)


def _read_idx_header(path, f):
    """Read and check the IDX header; returns (header bytes, (dims, dtype, data bytes))."""
    magic = f.read(4)
    if len(magic) < 4:
        raise DataError(f"{path}: too short for an IDX file ({len(magic)} bytes; the header alone needs 4+)")
    if magic[0] != 0 or magic[1] != 0:
        raise DataError(
            f"{path}: bad IDX magic number 0x{magic.hex()} (expected 0x0000TTNN: two zero bytes, "
            f"a type code and the number of dimensions)"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        codes = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(f"{path}: unknown IDX type code 0x{code:02X} (expected one of {codes})")
    if ndim == 0:
        raise DataError(f"{path}: the IDX header declares 0 dimensions")
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(
            f"{path}: truncated IDX header: {ndim} dimensions need {4 + 4 * ndim} header bytes, "
            f"the file holds {4 + len(raw_dims)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    dtype = IDX_DTYPES[code]
    return magic + raw_dims, (dims, dtype, math.prod(dims) * dtype.itemsize)


def is_idx_magic(head):
    """Whether the first bytes ``head`` are an IDX header's: two zero bytes, a known type code, dimensions."""
    return len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in IDX_DTYPES and head[3] >= 1

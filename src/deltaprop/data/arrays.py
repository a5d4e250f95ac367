"""NPY and NPZ files, never unpickled; an NPY array is memory-mapped by default."""

import math
import os

import numpy as np

from ..checks import MAX_DATA_BYTES, check_inflation, input_file, open_binary, path_str
from ..errors import DataError

__all__ = ["load_array", "load_npz", "NPY_MAGIC", "ZIP_MAGICS"]


NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def _read_npy_header(fp, source):
    """Read an NPY header from ``fp``: (shape, fortran_order, dtype).

    Refuses object dtypes before any data is read.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(fp)
        else:  # 2.0 and 3.0 share the header layout (3.0 allows utf-8 names)
            shape, fortran, dtype = fmt.read_array_header_2_0(fp)
    except (ValueError, EOFError) as exc:
        raise DataError(f"{source}: not a valid NPY array ({exc})") from None
    if dtype.hasobject:
        raise DataError(
            f"{source}: holds an object array (dtype {dtype}), which could only be read by "
            f"unpickling; deltaprop never unpickles data. Save a numeric array instead"
        )
    return shape, fortran, dtype


def _nbytes(shape, dtype):
    return math.prod(int(d) for d in shape) * dtype.itemsize


def load_array(path, mmap=True):
    """Load one array from an ``.npy`` file, memory-mapped by default.

    Parameters
    ----------
    path : str or os.PathLike
        An NPY file.
    mmap : bool, default True
        Return a read-only ``np.memmap`` (``mmap_mode="r"``): data is read from
        disk as it is touched, so files larger than memory work. With False the
        whole array is read into memory.

    Returns
    -------
    ndarray or np.memmap
        The stored array, any shape and dtype.

    Raises
    ------
    DataError
        Not an NPY file (an NPZ archive is pointed to :func:`load_npz`), an
        object array (never unpickled), or a file shorter than its header
        declares.
    """
    path = path_str(path)
    with input_file(path) as real:
        return _load_array(real, path, mmap)


def _load_array(real, path, mmap):
    with open_binary(real, "data file", MAX_DATA_BYTES) as f:
        head = f.read(len(NPY_MAGIC))
        if head[:4] in ZIP_MAGICS:
            raise DataError(f"{path}: is an NPZ (zip) archive, not an NPY array; use load_npz or load_xy")
        if head != NPY_MAGIC:
            raise DataError(f"{path}: not an NPY file (it does not start with the NPY magic string)")
        f.seek(0)
        shape, _, dtype = _read_npy_header(f, path)
        offset = f.tell()
        size = os.fstat(f.fileno()).st_size
    expected = _nbytes(shape, dtype)
    if size - offset < expected:
        raise DataError(
            f"{path}: truncated NPY file: its header declares shape {shape} of {dtype} "
            f"({expected} bytes of data) but the file holds {size - offset}"
        )
    use_mmap = mmap and expected > 0  # a zero-byte region cannot be mapped
    try:
        return np.load(real, mmap_mode="r" if use_mmap else None, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: cannot read the NPY array ({exc})") from None


def load_npz(path):
    """Load every array of an ``.npz`` archive into memory.

    NPZ members are zip members and cannot be memory-mapped; for data larger
    than memory use one ``.npy`` file per array and :func:`load_array`.

    Parameters
    ----------
    path : str or os.PathLike
        An archive written by ``np.savez`` or ``np.savez_compressed``.

    Returns
    -------
    dict of str to ndarray
        Keyed by the names given to ``np.savez`` (without ``.npy``), in archive
        order.

    Raises
    ------
    DataError
        Not a zip archive, a corrupt or truncated member, a member that is not
        an NPY array, an object array (never unpickled), or members whose
        declared sizes pass the inflation caps
        (:func:`deltaprop.checks.inflation_limit`: 100:1 plus 1 MiB, 4 GiB in
        all), refused from the zip directory before anything is inflated.
        Reading never produces more than a member's declared size (zipfile
        stops there and checks the CRC).
    """
    import zipfile

    path = path_str(path)
    with input_file(path) as real, open_binary(real, "data file", MAX_DATA_BYTES) as f:
        head = f.read(4)
        if head not in ZIP_MAGICS:
            hint = "; use load_array for a .npy file" if head == NPY_MAGIC[:4] else ""
            raise DataError(f"{path}: not an NPZ archive (not a zip file){hint}")
        return _read_members(f, path, zipfile)


def _read_members(f, path, zipfile):
    """Every member of the open archive ``f``, after checking the declared sizes against the inflation caps."""
    arrays = {}
    try:
        with zipfile.ZipFile(f) as zf:
            infos = zf.infolist()
            packed = [i for i in infos if i.compress_type != zipfile.ZIP_STORED]
            check_inflation(path, sum(i.compress_size for i in packed), sum(i.file_size for i in packed),
                            "NPZ members")
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise DataError(f"{path}: member {info.filename!r} is not an NPY array")
                if info.compress_type != zipfile.ZIP_STORED:
                    check_inflation(f"{path}, member {info.filename[:-4]!r}", info.compress_size,
                                    info.file_size, "data")
                key = info.filename[: -len(".npy")]
                source = f"{path}, member {key!r}"
                with zf.open(info) as member:
                    shape, _, dtype = _read_npy_header(member, source)
                    expected = _nbytes(shape, dtype)
                    available = info.file_size - member.tell()
                    if available < expected:
                        raise DataError(
                            f"{source}: truncated: its header declares shape {shape} of {dtype} "
                            f"({expected} bytes) but the member holds {available}"
                        )
                with zf.open(info) as member:
                    arrays[key] = np.lib.format.read_array(member, allow_pickle=False)
    except zipfile.BadZipFile as exc:
        raise DataError(f"{path}: corrupt NPZ archive ({exc})") from None
    except (ValueError, EOFError, OSError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: cannot read the NPZ archive ({exc})") from None
    return arrays

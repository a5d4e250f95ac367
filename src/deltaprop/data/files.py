"""Any data file, recognised by its first bytes: features and targets, or features alone."""

import os

import numpy as np

from ..checks import MAX_DATA_BYTES, input_file, open_binary, path_str
from ..errors import DataError, InvalidArgumentError, InvalidTypeError, describe
from .arrays import NPY_MAGIC, ZIP_MAGICS, load_array, load_npz
from .csvfile import load_csv, read_table, resolve_column
from .dataset import Dataset
from .idx import GZIP_MAGIC, is_idx_magic, load_idx

__all__ = ["detect_format", "load_xy", "load_features", "data_file"]


_XY_KEYS = (("X", "y"), ("x", "y"), ("data", "target"))


def detect_format(path):
    """The format of a data file, recognised by its first bytes (never its name).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    {"npy", "npz", "idx", "csv"}
        ``"npy"`` starts with the NPY magic string, ``"npz"`` with a zip
        signature, ``"idx"`` with an IDX header (two zero bytes, a known type
        code, at least one dimension), plain or gzipped; anything else is
        taken for CSV text.

    Raises
    ------
    DataError
        A missing file, a folder, a pipe or device (reading a pipe's first
        bytes would use them up: :func:`load_xy` and :func:`load_features`
        read a pipe once, through :func:`data_file`), or a gzip file that
        does not hold IDX data (decompress other formats first).
    """
    path = path_str(path)
    with open_binary(path, "data file") as f:
        head = f.read(len(NPY_MAGIC))
    if head == NPY_MAGIC:
        return "npy"
    if head[:4] in ZIP_MAGICS:
        return "npz"
    if head[:2] == GZIP_MAGIC:
        import gzip
        import zlib

        try:
            with gzip.open(path, "rb") as g:
                head = g.read(4)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip stream ({exc})") from None
        if is_idx_magic(head):
            return "idx"
        raise DataError(
            f"{path}: a gzip-compressed file that does not hold IDX data; only IDX files are read "
            f"compressed (decompress CSV, NPY and NPZ files first)"
        )
    if is_idx_magic(head):
        return "idx"
    return "csv"



def _flat_rows(a):
    """An array of samples (n, ...) as a 2-D (n, features) array; 1-D becomes one feature."""
    if a.ndim == 1:
        return a.reshape(-1, 1)
    return a.reshape(a.shape[0], -1)


def _load_targets_file(path):
    """y from a separate NPY or IDX file (read into memory)."""
    path = path_str(path)
    fmt = detect_format(path)
    if fmt == "npy":
        return load_array(path, mmap=False)
    if fmt == "idx":
        return load_idx(path)
    raise DataError(f"{path}: a targets (labels) file must be an NPY or IDX array, got a {fmt.upper()} file")


def load_xy(path, target=None, targets=None, mmap=True):
    """Load features and targets from a CSV, NPY, NPZ or IDX file.

    The format is recognised by the file's first bytes, not its extension
    (see :func:`detect_format`).

    - NPZ: the archive holds keys ``X`` and ``y`` (or ``x``/``y``, or
      ``data``/``target``). Everything is read into memory.
    - NPY or IDX with ``targets`` given: ``path`` holds X and ``targets`` is
      a second NPY or IDX file with y. An NPY X stays memory-mapped when
      ``mmap`` (the way to handle data larger than memory); an IDX X is read
      into memory (gzipped or not). Samples with more than one dimension
      (images of shape (n, 28, 28)) are flattened to (n, 784).
    - NPY alone: a 2-D array of shape (n_samples, n_features + 1); column
      ``target`` (default -1, the last) is y and the others are X. When the
      target is the first or last column X is a view (still memory-mapped);
      any other column means X is copied into memory.
    - IDX alone is an error: an IDX file holds images or labels, not both.
    - Anything else is read as CSV with :func:`load_csv` (``target`` default -1).

    Parameters
    ----------
    path : str or os.PathLike
    target : str, int or None
        The target column (CSV: name or index; NPY: index). Not used with NPZ
        or with ``targets``.
    targets : str, os.PathLike or None
        An NPY or IDX file holding y, when ``path`` holds X alone.
    mmap : bool, default True
        Memory-map NPY features (see :func:`load_array`).

    Returns
    -------
    Dataset
    """
    path = path_str(path)
    with data_file(path) as real:
        ds = _load_xy(real, target, targets, mmap)
    ds.name = os.path.basename(path)
    return ds


def data_file(path):
    """The one entry point of the file loaders: a regular file holding the bytes of ``path``.

    A regular file is used in place; a pipe (``--data <(cat f.csv)``, a FIFO,
    ``/dev/stdin``) is copied once into a temporary file, at most
    :data:`deltaprop.checks.MAX_DATA_BYTES`, removed when the block ends
    (see :func:`deltaprop.checks.input_file`), so that format detection and
    the reader see the same bytes; devices such as ``/dev/zero`` and folders
    are refused. Messages name ``path``, never the temporary copy.

    Returns
    -------
    context manager yielding str
        The path to read: ``with data_file(path) as real: ...``.
    """
    return input_file(path, "data file", MAX_DATA_BYTES)


def _load_xy(path, target, targets, mmap):
    name = os.path.basename(path)
    fmt = detect_format(path)
    if targets is not None:
        if target is not None:
            raise InvalidArgumentError("give either target (a column of path) or targets (a file), not both")
        if fmt == "npy":
            X = load_array(path, mmap=mmap)
            if X.ndim > 2:
                X = _flat_rows(X)
        elif fmt == "idx":
            X = _flat_rows(load_idx(path))
        else:
            raise DataError(
                f"{path}: a separate targets file goes with NPY or IDX features, not with a {fmt.upper()} file"
            )
        with data_file(targets) as real:
            y = _load_targets_file(real)
        _check_xy_file(path, X, y)
        return Dataset(X=X, y=y, name=name)
    if fmt == "idx":
        raise DataError(
            f"{path}: an IDX file holds one array (the images or the labels); give the labels file too "
            f"(targets=..., or --labels on the command line)"
        )
    if fmt == "npz":
        if target is not None:
            raise InvalidArgumentError(
                f"target is not used with an NPZ archive, got target={describe(target)}"
            )
        arrays = load_npz(path)
        for kx, ky in _XY_KEYS:
            if kx in arrays and ky in arrays:
                X, y = arrays[kx], arrays[ky]
                _check_xy_file(path, X, y)
                return Dataset(X=X, y=y, name=name)
        raise DataError(
            f"{path}: expected arrays named 'X' and 'y' (or 'x'/'y', 'data'/'target'), found {sorted(arrays)}"
        )
    if fmt == "npy":
        data = load_array(path, mmap=mmap)
        if data.ndim != 2 or data.shape[1] < 2:
            raise DataError(
                f"{path}: expected a 2-D array of shape (n_samples, n_features + 1) with the target "
                f"in one column, got shape {data.shape}; or pass targets='y.npy'"
            )
        t = -1 if target is None else target
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise InvalidTypeError(f"target must be a column index (int) for an NPY file, got {describe(t)}")
        d = data.shape[1]
        if not -d <= t < d:
            raise InvalidArgumentError(f"target column index {int(t)} is out of range for {d} columns")
        t = int(t) % d
        return Dataset(X=_without_column(data, t), y=np.array(data[:, t]), name=name)
    return load_csv(path, target=-1 if target is None else target)


def _without_column(data, t):
    """``data`` without column ``t``: a view (memory-mapped stays so) for the first or last column."""
    d = data.shape[1]
    if t == d - 1:
        return data[:, :-1]
    if t == 0:
        return data[:, 1:]
    return np.delete(data, t, axis=1)


def load_features(path, n_features=None, target=None, mmap=True):
    """Load features alone (for prediction) from a CSV, NPY, NPZ or IDX file.

    A file may carry the target column or not: with ``n_features`` given, a
    file of ``n_features`` columns is all features, and a file of
    ``n_features + 1`` columns has its target column (``target``, default the
    last) dropped. Without ``n_features`` the target column is dropped only
    when ``target`` is given.

    - CSV: a header row, then numbers (see :func:`load_csv`).
    - NPY: a 2-D array, memory-mapped when ``mmap`` (a dropped first or last
      column keeps it so); a 1-D array is one feature.
    - NPZ: the array named ``X`` (or ``x``, or ``data``), or the only array.
    - IDX (gzipped or not): samples along the first axis, flattened to 2-D.

    Parameters
    ----------
    path : str or os.PathLike
    n_features : int or None
        The number of features the model expects.
    target : str, int or None
        The target column to drop when the file has one column too many
        (CSV: name or index; NPY: index).
    mmap : bool, default True

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    feature_names : list of str or None
        The CSV header's names of the kept columns; None for other formats.

    Raises
    ------
    DataError
        A malformed file, a feature count that matches neither
        ``n_features`` nor ``n_features + 1`` (both named), or a target
        column that does not exist.
    """
    path = path_str(path)
    with data_file(path) as real:
        return _load_features(real, n_features, target, mmap)


def _load_features(path, n_features, target, mmap):
    fmt = detect_format(path)
    if fmt == "csv":
        header, t, X, _ = read_table(path, ",", lambda h: _feature_drop(path, len(h), n_features, target, h), path)
        return X, [name for j, name in enumerate(header) if j != t]
    if fmt == "npy":
        X = load_array(path, mmap=mmap)
        if X.ndim != 2:
            X = _flat_rows(X)
        t = _feature_drop(path, X.shape[1], n_features, target, None)
        return (X if t is None else _without_column(X, t)), None
    if fmt == "npz":
        arrays = load_npz(path)
        keys = [k for k in ("X", "x", "data") if k in arrays] or (list(arrays) if len(arrays) == 1 else [])
        if not keys:
            raise DataError(f"{path}: expected an array named 'X' (or 'x', 'data'), found {sorted(arrays)}")
        X = _flat_rows(arrays[keys[0]])
    else:
        X = _flat_rows(load_idx(path))
    if n_features is not None and X.shape[1] != n_features:
        raise DataError(f"{path}: the samples have {X.shape[1]} features; expected {n_features}")
    return X, None


def _feature_drop(path, n_cols, n_features, target, header):
    """Index of the column ``load_features`` drops as the target, or None."""
    if n_features is not None and n_cols == n_features:
        return None
    if n_features is not None and n_cols != n_features + 1:
        raise DataError(
            f"{path}: the file has {n_cols} columns; expected {n_features} (features) or "
            f"{n_features + 1} (features and the target)"
        )
    if target is None:
        return None if n_features is None else n_cols - 1
    if isinstance(target, bool) or not isinstance(target, (str, int, np.integer)):
        raise InvalidTypeError(f"target must be a column name (str) or index (int), got {describe(target)}")
    if header is None and isinstance(target, str):
        raise InvalidTypeError(f"target must be a column index (int) for an NPY file, got {describe(target)}")
    if header is None:
        if not -n_cols <= target < n_cols:
            raise DataError(f"{path}: target column index {int(target)} is out of range for {n_cols} columns")
        return int(target) % n_cols
    return resolve_column(path, header, target)


def _check_xy_file(path, X, y):
    if X.ndim != 2:
        raise DataError(f"{path}: X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise DataError(f"{path}: X has {X.shape[0]} samples but y has shape {y.shape}")

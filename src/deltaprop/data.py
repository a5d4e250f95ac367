"""Data: loaders, built-in data sets, labels, splits, scalers and validation.

Everything a training run needs before the first forward pass:

- loaders for CSV (:func:`load_csv`), NPY and NPZ (:func:`load_array`,
  :func:`load_npz`) and IDX, the MNIST family's format (:func:`load_idx`);
  any of them by its first bytes (:func:`detect_format`), as features and
  targets (:func:`load_xy`) or as features alone (:func:`load_features`);
- the built-in data sets (:func:`load_builtin`, :data:`BUILTIN_DATASETS`);
- class labels to indices and back (:func:`encode_labels`, :class:`Labels`);
- train/test splits, plain or stratified (:func:`train_test_split`,
  :func:`split_indices`);
- feature scaling fitted on the training split (:class:`Scaler`);
- the validation the rest of the library uses (:func:`check_array`,
  :func:`check_targets`).

Samples are rows: ``X`` has shape ``(n_samples, n_features)``.

Nothing here unpickles: every ``np.load`` passes ``allow_pickle=False`` and a
file holding an object array is refused with a :class:`DataError`.

Large data and memory maps
--------------------------
An ``.npy`` file opened with :func:`load_array` (the default ``mmap=True``) is
a read-only ``np.memmap``: rows are read from disk only when touched. The
functions here that scan a whole array (:func:`check_array`'s finiteness check,
:meth:`Scaler.fit`, :meth:`Scaler.transform`) work on blocks of rows, so their
memory use stays bounded whatever the file size. To train from a memmap, read
one mini-batch at a time: ``X[sorted_batch_indices]`` (sorted indices make the
reads close to sequential) or a contiguous slice ``X[i:i + m]``, and transform
that batch. NPZ members cannot be memory-mapped by NumPy (they are zip
members); for data larger than memory save features and targets as two
``.npy`` files and load them with ``load_xy("X.npy", targets="y.npy")``.

Importing this module imports only NumPy and the standard library's light
modules; scikit-learn, ``csv``, ``gzip`` and ``zipfile`` are imported inside the
functions that need them.
"""

import dataclasses
import math
import os

import numpy as np

from .errors import DataError, InvalidArgumentError, InvalidTypeError, UnknownNameError, describe

__all__ = [
    "BUILTIN_DATASETS",
    "Dataset",
    "Labels",
    "Scaler",
    "check_array",
    "check_targets",
    "encode_labels",
    "infer_task",
    "load_array",
    "load_builtin",
    "detect_format",
    "load_csv",
    "load_features",
    "load_idx",
    "load_npz",
    "load_xy",
    "split_indices",
    "train_test_split",
]

#: Elements per block when scanning a large array (finiteness checks, scaler
#: statistics and transforms): about 8 MiB of float64 per block.
CHUNK_ELEMENTS = 1 << 20

#: A target with at most this many distinct integer values is a classification
#: target (see :func:`infer_task`).
MAX_CLASSES_INFERRED = 50

TASKS = ("classification", "regression")


def _chunk_rows(n_features):
    """Rows per block so that one block holds about ``CHUNK_ELEMENTS`` values."""
    return max(1, CHUNK_ELEMENTS // max(1, int(n_features)))


def _path_str(path):
    """A path argument as ``str``, or an InvalidTypeError naming what was given."""
    try:
        return os.fspath(path)
    except TypeError:
        raise InvalidTypeError(f"path must be a str or os.PathLike, got {describe(path)}") from None


def _open_binary(path):
    """Open ``path`` for reading bytes; a missing file is a DataError."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None


# ---------------------------------------------------------------------------
# Dataset and task inference
# ---------------------------------------------------------------------------


def infer_task(y):
    """Guess whether targets ``y`` call for classification or regression.

    The rule, kept simple on purpose: ``y`` of string (or object), boolean or
    integer dtype is ``"classification"``; floating ``y`` whose values are all whole numbers
    with at most ``MAX_CLASSES_INFERRED`` (50) distinct values is
    ``"classification"``; anything else is ``"regression"``.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)

    Returns
    -------
    task : {"classification", "regression"}
    """
    y = np.asarray(y)
    if y.dtype.kind in "USbiuO":
        return "classification"
    if y.dtype.kind != "f" or y.size == 0:
        return "regression"
    if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
        return "regression"
    if np.unique(y).size <= MAX_CLASSES_INFERRED:
        return "classification"
    return "regression"


@dataclasses.dataclass(repr=False)
class Dataset:
    """Features and targets, with what is known about them.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Training features (possibly a read-only ``np.memmap``).
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        Targets: class labels (str), class indices (int) or real values (float).
    X_test, y_test : ndarray or None
        An official test split where the data set has one (Fashion-MNIST),
        else None.
    feature_names : list of str or None
        One name per column of ``X``.
    target_name : str or None
        The name of the target column.
    class_names : list of str or None
        For classification: ``class_names[k]`` names class index ``k`` (or,
        for string labels, the sorted distinct labels, as :func:`encode_labels`
        orders them). None for regression.
    task : {"classification", "regression"} or None
        None means "infer from ``y``" with :func:`infer_task`.
    name : str or None
        A short name for messages and reports.
    """

    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray = None
    y_test: np.ndarray = None
    feature_names: list = None
    target_name: str = None
    class_names: list = None
    task: str = None
    name: str = None

    def __post_init__(self):
        if self.task is None:
            self.task = infer_task(self.y)
        elif self.task not in TASKS:
            raise InvalidArgumentError(
                f"task must be one of {', '.join(map(repr, TASKS))}, got {describe(self.task)}"
            )

    @property
    def n_samples(self):
        """Number of training samples (rows of ``X``)."""
        return self.X.shape[0]

    @property
    def n_features(self):
        """Number of features (columns of ``X``)."""
        return self.X.shape[1]

    def __repr__(self):
        parts = [f"name={self.name!r}", f"X={_shape_dtype(self.X)}", f"y={_shape_dtype(self.y)}"]
        if self.X_test is not None:
            parts.append(f"X_test={_shape_dtype(self.X_test)}")
            parts.append(f"y_test={_shape_dtype(self.y_test)}")
        parts.append(f"task={self.task!r}")
        if self.class_names is not None:
            parts.append(f"n_classes={len(self.class_names)}")
        return f"Dataset({', '.join(parts)})"


def _shape_dtype(a):
    return f"<{a.dtype} {tuple(a.shape)}>" if hasattr(a, "dtype") else describe(a)


# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------


def load_csv(path, target=-1, delimiter=","):
    """Read a CSV file with a header row into a :class:`Dataset`.

    Parameters
    ----------
    path : str or os.PathLike
        A UTF-8 text file (a byte-order mark and Windows line endings are
        fine; quoted fields follow the ``csv`` module's rules). Blank lines are
        skipped.
    target : str or int, default -1
        The target column: its name in the header, or its index (negative
        counts from the end; the default is the last column).
    delimiter : str, default ","
        One character.

    Returns
    -------
    Dataset
        ``X``: float64 array of shape (n_rows, n_columns - 1), the other
        columns in file order. ``y``: shape (n_rows,); float64 if every target
        value reads as a number, else an array of str (class labels kept as
        written, surrounding spaces removed; ``class_names`` is then their
        sorted distinct values).

    Raises
    ------
    DataError
        Empty file, a header and no data rows, fewer than two columns,
        duplicate column names, no such target column, a row with the wrong
        number of fields (the message names the line, counting the header as
        line 1, and the field counts), a missing or non-numeric feature value
        or a NaN or infinity among the features (the message names the line,
        the column and the value), a missing or non-finite target value.
    """
    path = _path_str(path)
    if isinstance(target, bool) or not isinstance(target, (str, int, np.integer)):
        raise InvalidTypeError(f"target must be a column name (str) or index (int), got {describe(target)}")
    header, rows, lines = _read_csv(path, delimiter)
    n_cols = len(header)
    if n_cols < 2:
        raise DataError(
            f"{path}: the header has {n_cols} column {header!r}; expected at least two "
            f"(features and a target) separated by {delimiter!r}"
        )

    t = _resolve_column(path, header, target)
    feature_cols = [j for j in range(n_cols) if j != t]
    feature_names = [header[j] for j in feature_cols]
    cells = [row[:t] + row[t + 1 :] for row in rows]
    X = _parse_features(path, cells, lines, feature_names)

    raw_y = [row[t].strip() for row in rows]
    for value, line in zip(raw_y, lines):
        if not value:
            raise DataError(f"{path}, line {line}, column {header[t]!r}: missing target value (empty field)")
    try:
        y = np.array(raw_y, dtype=np.float64)
    except ValueError:
        y = np.array(raw_y, dtype=str)
        class_names = [str(c) for c in np.unique(y)]
    else:
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"{path}, line {lines[i]}, column {header[t]!r}: "
                f"target value {raw_y[i]!r} is not a finite number"
            )
        class_names = None
    return Dataset(
        X=X,
        y=y,
        feature_names=feature_names,
        target_name=header[t],
        class_names=class_names,
        name=os.path.basename(path),
    )


def _read_csv(path, delimiter):
    """Header, data rows and their line numbers of a CSV file, checked for shape.

    Returns ``(header, rows, lines)``: the header's names (stripped), every
    non-blank data row as a list of str, and each row's line number (the
    header counting as line 1). Raises a DataError for an unreadable file, an
    empty file, duplicate column names, no data rows, or a row whose field
    count differs from the header's.
    """
    import csv

    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise InvalidArgumentError(f"delimiter must be a single character, got {describe(delimiter)}")
    header, header_line, rows, lines = None, 0, [], []
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                if header is None:
                    header, header_line = [name.strip() for name in row], reader.line_num
                else:
                    rows.append(row)
                    lines.append(reader.line_num)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: {exc}") from None

    if header is None:
        raise DataError(f"{path}: the file is empty (expected a header row and data rows)")
    seen = {}
    for j, name in enumerate(header):
        if name in seen:
            raise DataError(
                f"{path}: duplicate column name {name!r} in the header (columns {seen[name] + 1} and {j + 1})"
            )
        seen[name] = j
    if not rows:
        raise DataError(f"{path}: the file has a header (line {header_line}) but no data rows")
    n_cols = len(header)
    for row, line in zip(rows, lines):
        if len(row) != n_cols:
            raise DataError(
                f"{path}, line {line}: expected {n_cols} fields (as in the header), found {len(row)}"
            )
    return header, rows, lines


def _resolve_column(path, header, target):
    """Index of the target column named or numbered by ``target``."""
    if isinstance(target, str):
        if target not in header:
            raise DataError(f"{path}: no column named {target!r}; the columns are {header}")
        return header.index(target)
    n_cols = len(header)
    if not -n_cols <= target < n_cols:
        raise DataError(
            f"{path}: target column index {int(target)} is out of range for {n_cols} columns {header}"
        )
    return int(target) % n_cols


def _parse_features(path, cells, lines, names):
    """Parse a list of rows of strings into a finite float64 array."""
    try:
        X = np.array(cells, dtype=np.float64)
    except ValueError:
        # Find the first cell that does not parse, to name it. Python's float()
        # is the reference; if it accepts every cell, its values stand.
        X = np.empty((len(cells), len(names)), dtype=np.float64)
        for i, row in enumerate(cells):
            for j, value in enumerate(row):
                try:
                    X[i, j] = float(value)
                except ValueError:
                    where = f"{path}, line {lines[i]}, column {names[j]!r}"
                    if not value.strip():
                        raise DataError(f"{where}: missing value (empty field)") from None
                    raise DataError(f"{where}: cannot read {value!r} as a number") from None
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(
            f"{path}, line {lines[i]}, column {names[j]!r}: {cells[i][j].strip()!r} is not a finite number "
            f"({int(bad.sum())} NaN or infinite feature value(s) in the file)"
        )
    return X


# ---------------------------------------------------------------------------
# NPY and NPZ
# ---------------------------------------------------------------------------

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


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
    path = _path_str(path)
    with _open_binary(path) as f:
        head = f.read(len(_NPY_MAGIC))
        if head[:4] in _ZIP_MAGICS:
            raise DataError(f"{path}: is an NPZ (zip) archive, not an NPY array; use load_npz or load_xy")
        if head != _NPY_MAGIC:
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
        return np.load(path, mmap_mode="r" if use_mmap else None, allow_pickle=False)
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
        an NPY array, or an object array (never unpickled).
    """
    import zipfile

    path = _path_str(path)
    with _open_binary(path) as f:
        head = f.read(4)
    if head not in _ZIP_MAGICS:
        hint = "; use load_array for a .npy file" if head == _NPY_MAGIC[:4] else ""
        raise DataError(f"{path}: not an NPZ archive (not a zip file){hint}")
    arrays = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise DataError(f"{path}: member {info.filename!r} is not an NPY array")
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
        A missing file, a folder, or a gzip file that does not hold IDX data
        (decompress other formats first).
    """
    path = _path_str(path)
    with _open_binary(path) as f:
        head = f.read(len(_NPY_MAGIC))
    if head == _NPY_MAGIC:
        return "npy"
    if head[:4] in _ZIP_MAGICS:
        return "npz"
    if head[:2] == _GZIP_MAGIC:
        import gzip
        import zlib

        try:
            with gzip.open(path, "rb") as g:
                head = g.read(4)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt gzip stream ({exc})") from None
        if _is_idx_magic(head):
            return "idx"
        raise DataError(
            f"{path}: a gzip-compressed file that does not hold IDX data; only IDX files are read "
            f"compressed (decompress CSV, NPY and NPZ files first)"
        )
    if _is_idx_magic(head):
        return "idx"
    return "csv"


def _is_idx_magic(head):
    return len(head) >= 4 and head[0] == 0 and head[1] == 0 and head[2] in IDX_DTYPES and head[3] >= 1


def _flat_rows(a):
    """An array of samples (n, ...) as a 2-D (n, features) array; 1-D becomes one feature."""
    if a.ndim == 1:
        return a.reshape(-1, 1)
    return a.reshape(a.shape[0], -1)


def _load_targets_file(path):
    """y from a separate NPY or IDX file (read into memory)."""
    path = _path_str(path)
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
    path = _path_str(path)
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
        y = _load_targets_file(targets)
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
    path = _path_str(path)
    fmt = detect_format(path)
    if fmt == "csv":
        header, rows, lines = _read_csv(path, ",")
        t = _feature_drop(path, len(header), n_features, target, header)
        keep = [j for j in range(len(header)) if j != t]
        names = [header[j] for j in keep]
        cells = rows if t is None else [row[:t] + row[t + 1 :] for row in rows]
        return _parse_features(path, cells, lines, names), names
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
    return _resolve_column(path, header, target)


def _check_xy_file(path, X, y):
    if X.ndim != 2:
        raise DataError(f"{path}: X must be 2-D (n_samples, n_features), got shape {X.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise DataError(f"{path}: X has {X.shape[0]} samples but y has shape {y.shape}")


# ---------------------------------------------------------------------------
# IDX (MNIST family)
# ---------------------------------------------------------------------------

#: IDX type codes: NumPy dtype (big-endian in the file).
IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"
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
    plain file's size is compared first; a gzip stream is decompressed block
    by block and never beyond one byte past the declared size.
    """
    path = _path_str(path)
    with _open_binary(path) as f:
        gzipped = f.read(2) == _GZIP_MAGIC
        f.seek(0)
        if not gzipped:
            return _read_idx_plain(path, f)
    import gzip
    import zlib

    decompressed = 0
    try:
        with gzip.open(path, "rb") as g:
            header, (dims, dtype, expected) = _read_idx_header(path, g)
            decompressed = len(header)
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
        found = f"more than {expected}" if len(buf) > expected else str(len(buf))
        raise DataError(
            f"{path}: the IDX header declares shape {dims} of {dtype.name}, which needs {expected} "
            f"bytes of data, but the gzip stream holds {found}"
        )
    return np.frombuffer(buf, dtype=dtype).astype(dtype.newbyteorder("="), copy=False).reshape(dims)


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


# ---------------------------------------------------------------------------
# Built-in data sets
# ---------------------------------------------------------------------------

#: Names accepted by :func:`load_builtin` (underscores work too).
BUILTIN_DATASETS = ("digits", "iris", "wine", "breast-cancer", "diabetes", "fashion-mnist")

#: Where to look for the four Fashion-MNIST IDX files when the environment
#: variable ``DELTAPROP_FASHION_MNIST_DIR`` is not set (Debian's
#: ``dataset-fashion-mnist`` installs them in the first).
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_ENV = "DELTAPROP_FASHION_MNIST_DIR"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_FASHION_FILES = {
    "X": "train-images-idx3-ubyte",
    "y": "train-labels-idx1-ubyte",
    "X_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}

# name: (sklearn loader, task, target name)
_SKLEARN_SETS = {
    "digits": ("load_digits", "classification", "digit"),
    "iris": ("load_iris", "classification", "species"),
    "wine": ("load_wine", "classification", "cultivar"),
    "breast-cancer": ("load_breast_cancer", "classification", "diagnosis"),
    "diabetes": ("load_diabetes", "regression", "disease_progression"),
}


def load_builtin(name):
    """Load a built-in data set by name; nothing is downloaded.

    ================  =======  ========  ==============  ==========================
    name              samples  features  task            source
    ================  =======  ========  ==============  ==========================
    "digits"          1,797    64        10 classes      scikit-learn (bundled)
    "iris"            150      4         3 classes       scikit-learn (bundled)
    "wine"            178      13        3 classes       scikit-learn (bundled)
    "breast-cancer"   569      30        2 classes       scikit-learn (bundled)
    "diabetes"        442      10        regression      scikit-learn (bundled)
    "fashion-mnist"   60,000   784       10 classes      Debian dataset-fashion-mnist
                      +10,000 test
    ================  =======  ========  ==============  ==========================

    Features are raw, never scaled here (fit a :class:`Scaler` on the training
    split): the scikit-learn sets give float64 ``X`` (diabetes unscaled, as
    ``load_diabetes(scaled=False)``); Fashion-MNIST gives float32 pixel values
    0..255, ``X`` of shape (60000, 784) and the official test split in
    ``X_test`` (10000, 784) and ``y_test``. Classification targets are int64
    class indices into ``class_names``; diabetes targets are float64.

    Fashion-MNIST is read from the folder named by the environment variable
    ``DELTAPROP_FASHION_MNIST_DIR`` if set, else from ``FASHION_MNIST_DIRS``;
    the four files may be gzipped (``*.gz``) or not.

    Parameters
    ----------
    name : str
        One of ``BUILTIN_DATASETS``; ``"breast_cancer"`` and ``"fashion_mnist"``
        work too.

    Returns
    -------
    Dataset

    Raises
    ------
    UnknownNameError
        Not a built-in name (the message lists them).
    DataError
        scikit-learn or the Fashion-MNIST files are missing (the message says
        how to install them), or the files are malformed.
    """
    if not isinstance(name, str):
        raise InvalidTypeError(f"name must be a str, got {describe(name)}")
    key = name.strip().lower().replace("_", "-")
    if key == "fashion-mnist":
        return _load_fashion_mnist()
    if key not in _SKLEARN_SETS:
        raise UnknownNameError(
            f"unknown built-in data set {name!r}; the built-in data sets are {', '.join(BUILTIN_DATASETS)}"
        )
    loader, task, target_name = _SKLEARN_SETS[key]
    try:
        import sklearn.datasets
    except ImportError:
        raise DataError(
            f"the built-in data set {key!r} comes with scikit-learn, which is not installed: "
            f"pip install 'deltaprop[sklearn]'"
        ) from None
    kwargs = {"scaled": False} if key == "diabetes" else {}
    bunch = getattr(sklearn.datasets, loader)(**kwargs)
    X = np.asarray(bunch.data, dtype=np.float64)
    if task == "classification":
        y = np.asarray(bunch.target, dtype=np.int64)
        class_names = [str(c) for c in bunch.target_names]
    else:
        y = np.asarray(bunch.target, dtype=np.float64)
        class_names = None
    return Dataset(
        X=X,
        y=y,
        feature_names=[str(c) for c in bunch.feature_names],
        target_name=target_name,
        class_names=class_names,
        task=task,
        name=key,
    )


def _fashion_mnist_paths():
    """The four IDX paths, or a DataError that says how to install them."""
    env = os.environ.get(FASHION_MNIST_ENV)
    folders = [env] if env else list(FASHION_MNIST_DIRS)
    for folder in folders:
        paths = {}
        for key, stem in _FASHION_FILES.items():
            for candidate in (stem + ".gz", stem):
                if os.path.isfile(os.path.join(folder, candidate)):
                    paths[key] = os.path.join(folder, candidate)
                    break
        if len(paths) == len(_FASHION_FILES):
            return paths
    where = f"{FASHION_MNIST_ENV}={env!r} does not hold them" if env else f"looked in {', '.join(folders)}"
    raise DataError(
        "Fashion-MNIST is not installed: run `sudo apt-get install dataset-fashion-mnist` or set "
        f"{FASHION_MNIST_ENV} to a folder with the four IDX files "
        f"({', '.join(_FASHION_FILES.values())}, optionally .gz); {where}"
    )


def _load_fashion_mnist():
    paths = _fashion_mnist_paths()
    parts = {}
    for split in ("", "_test"):
        images, labels = load_idx(paths["X" + split]), load_idx(paths["y" + split])
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise DataError(
                f"{paths['X' + split]}: expected uint8 images of shape (n, 28, 28), "
                f"got {images.dtype} {images.shape}"
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise DataError(
                f"{paths['y' + split]}: expected {images.shape[0]} labels (one per image), "
                f"got shape {labels.shape}"
            )
        if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
            raise DataError(f"{paths['y' + split]}: label {int(labels.max())} is not a class index 0..9")
        parts["X" + split] = images.reshape(images.shape[0], -1).astype(np.float32)
        parts["y" + split] = labels.astype(np.int64)
    return Dataset(
        **parts,
        feature_names=[f"pixel_{i // 28}_{i % 28}" for i in range(28 * 28)],
        target_name="item",
        class_names=list(FASHION_MNIST_CLASSES),
        task="classification",
        name="fashion-mnist",
    )


# ---------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------


def _as_labels(y, name="y"):
    """``y`` as a 1-D array of numbers or str; object arrays of str become str."""
    if y is None:
        raise InvalidTypeError(f"{name} must be an array of labels, got None")
    y = np.asarray(y)
    if y.dtype.kind == "O":
        if not all(isinstance(v, str) for v in y.ravel()):
            raise InvalidTypeError(
                f"{name} has dtype object with values that are not all str; "
                f"labels must be numbers or strings (e.g. {name}.astype(str))"
            )
        y = y.astype(str)
    if y.dtype.kind not in "USbiuf":
        raise InvalidTypeError(f"{name} must hold numbers or strings, got dtype {y.dtype}")
    if y.ndim != 1:
        raise InvalidArgumentError(
            f"{name} must be 1-D (one label per sample), got shape {y.shape}; try {name}.ravel()"
        )
    if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
        i = int(np.flatnonzero(~np.isfinite(y))[0])
        raise DataError(f"{name} holds a non-finite label {y[i].item()!r} at index {i}")
    return y


def encode_labels(y):
    """Map labels to class indices 0..n_classes-1 in sorted label order.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Labels: strings, integers, booleans or whole-number floats.

    Returns
    -------
    classes : ndarray of shape (n_classes,)
        The distinct labels, sorted (``np.unique``).
    indices : ndarray of int64, shape (n_samples,)
        ``classes[indices]`` equals ``y``.
    """
    y = _as_labels(y)
    classes, indices = np.unique(y, return_inverse=True)
    return classes, indices.reshape(-1).astype(np.int64, copy=False)


class Labels:
    """Maps class labels to indices and back, like scikit-learn's LabelEncoder.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The sorted distinct labels seen by :meth:`fit`; class index ``k`` is
        label ``classes_[k]``.

    Examples
    --------
    >>> labels = Labels().fit(["cat", "dog", "cat"])
    >>> labels.transform(["dog", "cat"])
    array([1, 0])
    >>> labels.inverse_transform([0, 1]).tolist()
    ['cat', 'dog']
    """

    def __init__(self):
        self.classes_ = None

    def __repr__(self):
        return "Labels()" if self.classes_ is None else f"Labels(classes_={self.classes_.tolist()!r})"

    def _check_fitted(self):
        if self.classes_ is None:
            raise InvalidArgumentError("this Labels object is not fitted yet: call fit(y) first")

    def fit(self, y):
        """Learn the classes from labels ``y`` of shape (n_samples,); returns self."""
        self.classes_, _ = encode_labels(y)
        return self

    def fit_transform(self, y):
        """``fit(y)`` then ``transform(y)``: int64 indices of shape (n_samples,)."""
        self.classes_, indices = encode_labels(y)
        return indices

    def transform(self, y):
        """Class indices of labels ``y``.

        Parameters
        ----------
        y : array-like of shape (n_samples,)

        Returns
        -------
        indices : ndarray of int64, shape (n_samples,)

        Raises
        ------
        DataError
            Some labels were never seen by :meth:`fit` (up to 10 are named).
        """
        self._check_fitted()
        y = _as_labels(y)
        classes = self.classes_
        if (classes.dtype.kind in "US") != (y.dtype.kind in "US"):
            known = np.zeros(y.shape, dtype=bool)  # strings never equal numbers
            indices = np.zeros(y.shape, dtype=np.int64)
        else:
            indices = np.searchsorted(classes, y).astype(np.int64)
            np.clip(indices, 0, len(classes) - 1, out=indices)
            known = classes[indices] == y
        if not known.all():
            unseen = np.unique(y[~known])
            shown = ", ".join(repr(v.item()) for v in unseen[:10])
            more = f" and {unseen.size - 10} more" if unseen.size > 10 else ""
            raise DataError(
                f"labels never seen in training: {shown}{more}; the known labels are "
                f"{describe(classes.tolist(), 200)}"
            )
        return indices

    def inverse_transform(self, indices):
        """Labels of class ``indices`` (int array of shape (n_samples,)): ``classes_[indices]``."""
        self._check_fitted()
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise InvalidTypeError(f"indices must be integers, got dtype {indices.dtype}")
        n = len(self.classes_)
        bad = (indices < 0) | (indices >= n)
        if bad.any():
            raise InvalidArgumentError(
                f"class index {int(indices[bad].flat[0])} is out of range for {n} classes (0..{n - 1})"
            )
        return self.classes_[indices]


# ---------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------


def _largest_remainder(counts, total, rng):
    """Split ``total`` over classes in proportion to ``counts``.

    Each class gets the floor or the ceiling of its exact share
    ``total * counts / counts.sum()``; the leftover units go to the largest
    remainders, ties broken at random (scikit-learn's ``_approximate_mode``).
    """
    exact = total * counts / counts.sum()
    alloc = np.floor(exact).astype(np.int64)
    left = total - int(alloc.sum())
    if left:
        remainder = exact - alloc
        order = np.lexsort((rng.random(len(counts)), -remainder))  # largest remainder first
        alloc[order[:left]] += 1
    return alloc


def split_indices(n_samples, test_size=0.25, stratify=None, seed=0):
    """Row indices of a train/test split, each sorted ascending.

    ``n_test = ceil(test_size * n_samples)``, as scikit-learn counts it. With
    ``stratify`` each class gets the floor or ceiling of its proportional
    share of the test rows (so the class proportions of both sides match the
    whole to within one sample per class); a class with a single sample goes
    to one side only. The permutation is drawn from
    ``np.random.default_rng(seed)`` and is not scikit-learn's.

    Parameters
    ----------
    n_samples : int
    test_size : float in (0, 1), default 0.25
    stratify : array-like of shape (n_samples,) or None
        Class labels to keep in proportion.
    seed : int, np.random.Generator or None, default 0

    Returns
    -------
    train_idx : ndarray of int64, shape (n_samples - n_test,)
    test_idx : ndarray of int64, shape (n_test,)
    """
    if isinstance(test_size, bool) or not isinstance(test_size, (float, int, np.floating, np.integer)):
        raise InvalidTypeError(f"test_size must be a float in (0, 1), got {describe(test_size)}")
    if not 0 < test_size < 1:
        raise InvalidArgumentError(f"test_size must be a float in (0, 1), got {describe(test_size)}")
    n = int(n_samples)
    n_test = math.ceil(float(test_size) * n)
    if n_test == 0 or n_test == n:
        side = "test" if n_test == 0 else "training"
        raise InvalidArgumentError(
            f"test_size={test_size} with {n} sample(s) leaves the {side} side empty"
        )
    rng = np.random.default_rng(seed)
    if stratify is None:
        perm = rng.permutation(n)
        return np.sort(perm[n_test:]), np.sort(perm[:n_test])
    _, codes = encode_labels(_as_labels(stratify, "stratify"))
    if codes.shape[0] != n:
        raise InvalidArgumentError(f"stratify has {codes.shape[0]} labels but there are {n} samples")
    counts = np.bincount(codes)
    test_counts = _largest_remainder(counts, n_test, rng)
    order = np.argsort(codes, kind="stable")  # rows grouped by class
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    test_parts, train_parts = [], []
    for start, count, k in zip(starts, counts, test_counts):
        rows = order[start : start + count][rng.permutation(count)]
        test_parts.append(rows[:k])
        train_parts.append(rows[k:])
    return np.sort(np.concatenate(train_parts)), np.sort(np.concatenate(test_parts))


def train_test_split(X, y, test_size=0.25, stratify=None, seed=0):
    """Split ``X`` and ``y`` into random training and test parts.

    See :func:`split_indices` for how rows are drawn. Rows keep their original
    order within each part (indices are sorted), so reading a memory-mapped
    ``X`` stays close to sequential; each part is an in-memory copy. For data
    larger than memory, use :func:`split_indices` and read batches instead.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
    test_size : float in (0, 1), default 0.25
    stratify : array-like of shape (n_samples,) or None
        Class labels (usually ``y``) whose proportions both parts keep.
    seed : int, np.random.Generator or None, default 0

    Returns
    -------
    X_train, X_test, y_train, y_test : ndarray

    Raises
    ------
    InvalidArgumentError
        ``test_size`` not in (0, 1), a part left empty, or X, y and stratify
        of different lengths.
    """
    if not hasattr(X, "shape") or not hasattr(X, "__getitem__"):
        X = np.asarray(X)
    y = np.asarray(y)
    n = X.shape[0] if X.ndim else 0
    if y.ndim == 0 or y.shape[0] != n:
        raise InvalidArgumentError(f"X has {n} samples but y has {y.shape[0] if y.ndim else 0}")
    train_idx, test_idx = split_indices(n, test_size, stratify=stratify, seed=seed)
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------


def _first_nonfinite(X, name):
    """Raise a DataError naming how many values of X are NaN or infinite and the first.

    Scans in blocks of rows; call only when ``X`` is known to hold one.
    """
    X2 = X.reshape(X.shape[0], -1) if X.ndim != 1 else X.reshape(-1, 1)
    step = _chunk_rows(X2.shape[1])
    count, first = 0, None
    for start in range(0, X2.shape[0], step):
        bad = ~np.isfinite(X2[start : start + step])
        n_bad = int(np.count_nonzero(bad))
        if n_bad and first is None:
            r, c = np.argwhere(bad)[0]
            first = (start + int(r), int(c))
        count += n_bad
    if first is None:
        return
    where = f"index {first[0]}" if X.ndim == 1 else f"(row, column) {first}"
    raise DataError(f"{name} holds {count} NaN or infinite value(s); the first is at {where}")


def _check_finite(X, name):
    """DataError if a float array holds NaN or inf; scans blocks of rows."""
    if X.dtype.kind != "f" or X.size == 0:
        return
    step = _chunk_rows(X.size // max(1, X.shape[0]))
    for start in range(0, X.shape[0], step):
        if not np.isfinite(X[start : start + step]).all():
            _first_nonfinite(X, name)


def _check_numeric_dtype(X, name):
    kind = X.dtype.kind
    if kind == "c":
        raise InvalidTypeError(f"{name} has complex dtype {X.dtype}; only real numbers are supported")
    if kind not in "biuf":
        hint = f"; if the values are numbers, convert with {name}.astype(float)" if kind in "OUS" else ""
        raise InvalidTypeError(f"{name} must hold numbers, got dtype {X.dtype}{hint}")


def check_array(X, name="X", dtype=None, allow_empty=False):
    """Validate a feature matrix; optionally convert it to a float dtype.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Numbers (bool, int or float). A ``np.memmap`` is scanned in blocks of
        rows and returned as is when no conversion is needed.
    name : str, default "X"
        The argument's name in error messages.
    dtype : {None, np.float32, np.float64}
        Convert to this float dtype (no copy when ``X`` already has it).
    allow_empty : bool, default False
        Accept zero samples.

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Raises
    ------
    InvalidTypeError
        Not numbers (object, str, ...) or complex; the message names the dtype.
    InvalidArgumentError
        Not 2-D (a 1-D array gets a hint to ``reshape(-1, 1)``), or no
        features.
    DataError
        No samples (unless ``allow_empty``), or NaN or infinity (the message
        names how many and the first (row, column)).
    """
    if X is None:
        raise InvalidTypeError(f"{name} must be an array of shape (n_samples, n_features), got None")
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except ValueError as exc:
            raise DataError(f"{name} cannot be made into an array (ragged rows?): {exc}") from None
    _check_numeric_dtype(X, name)
    if X.ndim != 2:
        if X.ndim == 1:
            hint = (
                f"; use {name}.reshape(-1, 1) if it is one feature, "
                f"or {name}.reshape(1, -1) if it is one sample"
            )
        elif X.ndim > 2:
            hint = f"; use {name}.reshape(len({name}), -1) to flatten each sample"
        else:
            hint = ""
        raise InvalidArgumentError(
            f"{name} must be 2-D (n_samples, n_features), got a {X.ndim}-D array of shape {X.shape}{hint}"
        )
    if X.shape[0] == 0 and not allow_empty:
        raise DataError(f"{name} has 0 samples (shape {X.shape}); at least one is needed")
    if X.shape[1] == 0:
        raise InvalidArgumentError(f"{name} has 0 features (shape {X.shape}); at least one is needed")
    _check_finite(X, name)
    if dtype is not None:
        dtype = _float_dtype(dtype, "dtype")
        if X.dtype != dtype:
            X = np.array(X, dtype=dtype)  # a plain ndarray, also when X is a memmap
    return X


def _float_dtype(dtype, name):
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InvalidTypeError(f"{name} must be a float dtype, got {describe(dtype)}") from None
    if dt.kind != "f":
        raise InvalidArgumentError(f"{name} must be a float dtype (np.float32 or np.float64), got {dt}")
    return dt


def check_targets(y, n_samples, name="y"):
    """Validate targets against the number of samples in X.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Class labels (str, bool, int) or real values (float). An object array
        is accepted only if every value is a str (it becomes a str array).
    n_samples : int
        Rows of the matching X.
    name : str, default "y"

    Returns
    -------
    ndarray of shape (n_samples,) or (n_samples, n_outputs)

    Raises
    ------
    InvalidTypeError
        Complex, or objects that are not all str.
    InvalidArgumentError
        Not 1-D or 2-D.
    DataError
        A length different from ``n_samples`` (both are named), or NaN or
        infinity among float targets.
    """
    if y is None:
        raise InvalidTypeError(f"{name} must be an array of targets, got None")
    y = np.asarray(y)
    if y.dtype.kind == "O":
        if not all(isinstance(v, str) for v in y.ravel()):
            raise InvalidTypeError(f"{name} has dtype object; targets must be numbers or strings")
        y = y.astype(str)
    if y.dtype.kind == "c":
        raise InvalidTypeError(f"{name} has complex dtype {y.dtype}; only real numbers are supported")
    if y.dtype.kind not in "USbiuf":
        raise InvalidTypeError(f"{name} must hold numbers or strings, got dtype {y.dtype}")
    if y.ndim not in (1, 2):
        raise InvalidArgumentError(
            f"{name} must be 1-D (n_samples,) or 2-D (n_samples, n_outputs), got shape {y.shape}"
        )
    if y.shape[0] != n_samples:
        raise DataError(f"{name} has {y.shape[0]} samples but X has {n_samples}; they must match")
    _check_finite(y, name)
    return y


# ---------------------------------------------------------------------------
# Scaling
# ---------------------------------------------------------------------------

SCALER_KINDS = ("standard", "minmax", "none")


class Scaler:
    """Per-feature affine scaling ``x' = (x - offset) / scale``, fitted on training data.

    - ``"standard"``: offset = mean, scale = standard deviation (population,
      ``ddof=0``), so each feature of the training data gets mean 0 and
      variance 1.
    - ``"minmax"``: offset = min, scale = max - min, so the training data
      spans [0, 1].
    - ``"none"``: offset 0, scale 1 (only the dtype conversion and the
      feature-count check remain).

    A constant feature (max == min in the training data) gets scale 1, as in
    scikit-learn, so it becomes 0 and never a division by zero.

    Parameters
    ----------
    kind : {"standard", "minmax", "none"}, default "standard"

    Attributes
    ----------
    offset_ : ndarray of float64, shape (n_features,)
    scale_ : ndarray of float64, shape (n_features,)
        Positive and finite.
    n_features_in_ : int
    """

    def __init__(self, kind="standard"):
        if kind not in SCALER_KINDS:
            raise UnknownNameError(
                f"unknown scaler kind {describe(kind)}; the kinds are {', '.join(map(repr, SCALER_KINDS))}"
            )
        self.kind = kind
        self.offset_ = None
        self.scale_ = None
        self.n_features_in_ = None

    def __repr__(self):
        fitted = "" if self.n_features_in_ is None else f", n_features={self.n_features_in_}"
        return f"Scaler(kind={self.kind!r}{fitted})"

    def fit(self, X, chunk_rows=None):
        """Compute offset and scale from training features ``X``.

        Reads ``X`` once, in blocks of rows (``chunk_rows`` each; by default
        about a million values), so a memory-mapped ``X`` never has to fit in
        memory. Statistics accumulate in float64: the mean and variance with
        Chan et al.'s pairwise update of (count, mean, M2), which stays accurate
        over many blocks, and min/max exactly.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        chunk_rows : int or None

        Returns
        -------
        self

        Raises
        ------
        DataError
            NaN or infinity in ``X``, or no samples.
        """
        X = _check_array_shape(X, "X")
        n_samples, n_features = X.shape
        step = _chunk_rows(n_features) if chunk_rows is None else _positive_int(chunk_rows, "chunk_rows")
        count = 0
        mean = np.zeros(n_features)
        m2 = np.zeros(n_features)
        lo = np.full(n_features, np.inf)
        hi = np.full(n_features, -np.inf)
        for start in range(0, n_samples, step):
            block = np.asarray(X[start : start + step], dtype=np.float64)
            if not np.isfinite(block).all():
                _first_nonfinite(X, "X")
            np.minimum(lo, block.min(axis=0), out=lo)
            np.maximum(hi, block.max(axis=0), out=hi)
            if self.kind != "standard":
                continue
            n_b = block.shape[0]
            mean_b = block.mean(axis=0)
            centred = block - mean_b  # never in place: block may be a view of X
            m2_b = np.einsum("ij,ij->j", centred, centred)
            total = count + n_b
            delta = mean_b - mean
            mean += delta * (n_b / total)
            m2 += m2_b + delta**2 * (count * n_b / total)
            count = total
        constant = hi == lo
        if self.kind == "standard":
            offset = np.where(constant, lo, mean)
            scale = np.sqrt(m2 / n_samples)
        elif self.kind == "minmax":
            offset = lo
            scale = hi - lo
        else:
            offset = np.zeros(n_features)
            scale = np.ones(n_features)
        scale[constant | (scale == 0)] = 1.0
        self.offset_, self.scale_, self.n_features_in_ = offset, scale, n_features
        return self

    def transform(self, X, dtype=np.float32, out=None):
        """Scale ``X`` with the fitted offset and scale.

        Works in blocks of rows; a memory-mapped ``X`` is read block by block
        and only the result is held in memory (or written into ``out``).

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
        dtype : float dtype, default np.float32
        out : ndarray of shape (n_samples, n_features) and dtype ``dtype``, optional
            Where to write the result (may be ``X`` itself when the dtypes match).

        Returns
        -------
        ndarray of shape (n_samples, n_features) and dtype ``dtype``

        Raises
        ------
        InvalidArgumentError
            Not fitted, or a feature count different from fit's (both named),
            or a bad ``out``.
        DataError
            NaN or infinity in ``X``.
        """
        if self.n_features_in_ is None:
            raise InvalidArgumentError("this Scaler is not fitted yet: call fit(X_train) first")
        X = _check_array_shape(X, "X", allow_empty=True)
        if X.shape[1] != self.n_features_in_:
            raise InvalidArgumentError(
                f"X has {X.shape[1]} features, but this Scaler was fitted on {self.n_features_in_} features"
            )
        dtype = _float_dtype(dtype, "dtype")
        if out is None:
            out = np.empty(X.shape, dtype=dtype)
        elif not isinstance(out, np.ndarray) or out.shape != X.shape or out.dtype != dtype:
            got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else describe(out)
            raise InvalidArgumentError(
                f"out must be an ndarray of dtype {dtype} and shape {X.shape}, got {got} "
                f"(pass dtype= to match out's dtype)"
            )
        identity = self.kind == "none"
        offset, scale = self.offset_, self.scale_
        step = _chunk_rows(X.shape[1])
        for start in range(0, X.shape[0], step):
            block = X[start : start + step]
            if block.dtype.kind == "f" and not np.isfinite(block).all():
                _first_nonfinite(X, "X")
            target = out[start : start + step]
            if identity:
                target[...] = block
            else:
                # Computed in float64 (offset and scale are float64), rounded once into out.
                np.subtract(block, offset, out=target, casting="same_kind")
                np.divide(target, scale, out=target, casting="same_kind")
        return out

    def fit_transform(self, X, dtype=np.float32, out=None):
        """``fit(X)`` then ``transform(X, dtype, out)``."""
        return self.fit(X).transform(X, dtype=dtype, out=out)

    def state(self):
        """Everything needed to rebuild this fitted scaler, for model files.

        Returns
        -------
        config : dict
            JSON-serialisable: ``{"kind": str, "n_features": int}``.
        arrays : dict of str to ndarray
            ``{"offset": float64 (n_features,), "scale": float64 (n_features,)}``
            (copies).
        """
        if self.n_features_in_ is None:
            raise InvalidArgumentError("this Scaler is not fitted yet: call fit(X_train) before state()")
        config = {"kind": self.kind, "n_features": int(self.n_features_in_)}
        return config, {"offset": self.offset_.copy(), "scale": self.scale_.copy()}

    @classmethod
    def from_state(cls, config, arrays):
        """Rebuild a fitted scaler from :meth:`state`'s output, validating every field.

        Raises
        ------
        InvalidArgumentError
            A config that is not a dict, an unknown kind, a bad feature count.
        DataError
            Arrays missing, of the wrong shape, not finite, scale not positive,
            or (kind "none") not offset 0 and scale 1.
        """
        if not isinstance(config, dict):
            raise InvalidArgumentError(f"scaler config must be a dict, got {describe(config)}")
        if not isinstance(arrays, dict):
            raise InvalidArgumentError(f"scaler arrays must be a dict, got {describe(arrays)}")
        scaler = cls(config.get("kind"))
        n = config.get("n_features")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidArgumentError(f"scaler n_features must be a positive int, got {describe(n)}")
        loaded = {}
        for key in ("offset", "scale"):
            if key not in arrays:
                raise DataError(f"scaler state lacks the array {key!r} (found {sorted(arrays)})")
            a = np.asarray(arrays[key])
            if a.dtype.kind not in "iuf" or a.shape != (n,):
                raise DataError(
                    f"scaler array {key!r} must be real numbers of shape ({n},), got {a.dtype} {a.shape}"
                )
            a = a.astype(np.float64)
            if not np.isfinite(a).all():
                raise DataError(f"scaler array {key!r} holds NaN or infinite values")
            loaded[key] = a
        if not (loaded["scale"] > 0).all():
            raise DataError(f"scaler array 'scale' must be positive, got minimum {loaded['scale'].min()}")
        if scaler.kind == "none" and (loaded["offset"].any() or (loaded["scale"] != 1).any()):
            raise DataError("a scaler of kind 'none' must have offset 0 and scale 1")
        scaler.offset_, scaler.scale_, scaler.n_features_in_ = loaded["offset"], loaded["scale"], n
        return scaler


def _check_array_shape(X, name, allow_empty=False):
    """check_array without the finiteness scan (the caller scans while it reads)."""
    if not isinstance(X, np.ndarray):
        X = np.asarray(X)
    _check_numeric_dtype(X, name)
    if X.ndim != 2:
        return check_array(X, name)  # raises with the full message
    if X.shape[0] == 0 and not allow_empty:
        raise DataError(f"{name} has 0 samples (shape {X.shape}); at least one is needed")
    if X.shape[1] == 0:
        raise InvalidArgumentError(f"{name} has 0 features (shape {X.shape}); at least one is needed")
    return X


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {describe(value)}")
    return int(value)

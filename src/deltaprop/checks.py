"""One validator for what users hand deltaprop: numbers, arrays, weights, paths.

Every public function and constructor checks its arguments through these, so a
mistake gets the same error type and the same wording wherever it is made:

- a value of the wrong type is an :class:`~deltaprop.errors.InvalidTypeError`
  (also a ``TypeError``): ``batch_size must be a positive integer, got 2.5``;
- a value of the right type outside its range is an
  :class:`~deltaprop.errors.InvalidArgumentError` (also a ``ValueError``):
  ``learning_rate must be a finite number > 0, got -1.0``;
- data that cannot be used (wrong shape, NaN, no samples) is a
  :class:`~deltaprop.errors.DataError` that names the argument, the problem
  and where it is: ``X holds 1 NaN or infinite value(s); the first is at
  (row, column) (7, 2)``.

Arrays that may be larger than memory (``np.memmap``) are scanned in blocks of
rows (:data:`CHUNK_ELEMENTS` values each), so a check never holds a second
copy of the data.

This module imports NumPy and deltaprop's errors only.
"""

import contextlib
import math
import numbers
import os
import stat

import numpy as np

from .errors import DataError, InvalidArgumentError, InvalidTypeError, describe

__all__ = [
    "CHUNK_ELEMENTS",
    "check_int",
    "check_positive_int",
    "check_number",
    "check_bool",
    "check_dtype",
    "check_float_dtype",
    "check_array",
    "check_finite",
    "too_large",
    "check_targets",
    "check_sample_weight",
    "sample_scale",
    "chunk_rows",
    "path_str",
    "open_binary",
    "open_input",
    "read_text_bounded",
    "input_file",
    "inflation_limit",
    "check_inflation",
    "size_str",
    "MAX_CONFIG_BYTES",
    "MAX_DATA_BYTES",
    "MAX_INFLATED_BYTES",
    "MAX_INFLATION_RATIO",
    "INFLATION_ALLOWANCE",
]

#: Values per block when scanning a large array (finiteness checks, scaler
#: statistics and transforms): about 8 MiB of float64 per block.
CHUNK_ELEMENTS = 1 << 20


# ------------------------------------------------------------------ numbers
def check_int(value, name, low=None):
    """``value`` as an int if it is an integer (not a bool) ``>= low``; otherwise a clear error.

    Raises
    ------
    InvalidTypeError
        Not an integer (a float, a bool, a string, ...).
    InvalidArgumentError
        Below ``low``.
    """
    if low == 1:
        what = "a positive integer"
    elif low is None:
        what = "an integer"
    else:
        what = f"an integer >= {low}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidTypeError(f"{name} must be {what}, got {describe(value)}")
    if low is not None and value < low:
        raise InvalidArgumentError(f"{name} must be {what}, got {value!r}")
    return int(value)


def check_positive_int(value, name):
    """``value`` as an int if it is an integer >= 1 (not a bool); see :func:`check_int`."""
    return check_int(value, name, low=1)


def check_number(value, name, low=None, high=None, low_open=False, high_open=False, allow_none=False):
    """``value`` as a float if it is a finite real number in the given range.

    Parameters
    ----------
    value : object
    name : str
        The argument's name, for the message.
    low, high : float, optional
        Bounds; ``low_open``/``high_open`` exclude them.
    allow_none : bool
        Pass ``None`` through.

    Raises
    ------
    InvalidTypeError
        Not a real number (a string, a bool, ...).
    InvalidArgumentError
        NaN, infinite, or out of range; the message states the range.
    """
    if value is None and allow_none:
        return None
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    what = "a finite number" + (" " + " and ".join(bounds) if bounds else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidTypeError(f"{name} must be {what}, got {describe(value)}")
    value = float(value)
    ok = math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise InvalidArgumentError(f"{name} must be {what}, got {value!r}")
    return value


def check_bool(value, name):
    """``value`` as a bool if it is ``True`` or ``False`` (NumPy's too); otherwise an InvalidTypeError."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidTypeError(f"{name} must be True or False, got {describe(value)}")
    return bool(value)


def check_dtype(dtype, name="dtype"):
    """``"float32"``/``"float64"`` (or the NumPy types) as an ``np.dtype``: the dtypes a network computes in."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InvalidTypeError(f"{name} must be 'float32' or 'float64', got {describe(dtype)}") from None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise InvalidArgumentError(f"{name} must be 'float32' or 'float64', got {describe(dtype)}")
    return dt


def check_float_dtype(dtype, name="dtype"):
    """Any floating-point dtype, as an ``np.dtype``."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise InvalidTypeError(f"{name} must be a float dtype, got {describe(dtype)}") from None
    if dt.kind != "f":
        raise InvalidArgumentError(f"{name} must be a float dtype (np.float32 or np.float64), got {dt}")
    return dt


# ------------------------------------------------------------------- arrays
def chunk_rows(n_features):
    """Rows per block so that one block holds about :data:`CHUNK_ELEMENTS` values."""
    return max(1, CHUNK_ELEMENTS // max(1, int(n_features)))


def _first_nonfinite(X, name):
    """Raise a DataError naming how many values of ``X`` are NaN or infinite and where the first is.

    Scans in blocks of rows; call only when ``X`` is known to hold one.
    """
    X2 = X.reshape(X.shape[0], -1) if X.ndim != 1 else X.reshape(-1, 1)
    step = chunk_rows(X2.shape[1])
    count, first = 0, None
    for start in range(0, X2.shape[0], step):
        bad = ~np.isfinite(X2[start:start + step])
        n_bad = int(np.count_nonzero(bad))
        if n_bad and first is None:
            r, c = np.argwhere(bad)[0]
            first = (start + int(r), int(c))
        count += n_bad
    if first is None:
        return
    where = f"index {first[0]}" if X.ndim == 1 else f"(row, column) {first}"
    raise DataError(f"{name} holds {count} NaN or infinite value(s); the first is at {where}")


def check_finite(X, name="X"):
    """DataError if a float array holds NaN or infinity (count and first position named); scans blocks of rows."""
    if X.dtype.kind != "f" or X.size == 0:
        return
    step = chunk_rows(X.size // max(1, X.shape[0]))
    for start in range(0, X.shape[0], step):
        if not np.isfinite(X[start:start + step]).all():
            _first_nonfinite(X, name)


def _check_numeric_dtype(X, name):
    kind = X.dtype.kind
    if kind == "c":
        raise InvalidTypeError(f"{name} has complex dtype {X.dtype}; only real numbers are supported")
    if kind not in "biuf":
        hint = f"; if the values are numbers, convert with {name}.astype(float)" if kind in "OUS" else ""
        raise InvalidTypeError(f"{name} must hold numbers, got dtype {X.dtype}{hint}")


def check_array(X, name="X", n_features=None, dtype=None, allow_empty=False, finite=True):
    """Validate a feature matrix; optionally convert it to a float dtype.

    The one check of ``X`` in deltaprop: the network, the training loop,
    gradcheck, the scaler and the data loaders all call it.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Numbers (bool, int or float). A ``np.memmap`` is scanned in blocks of
        rows and returned as it is when no conversion is needed.
    name : str, default "X"
        The argument's name in error messages.
    n_features : int, optional
        The number of columns required (a network's ``n_in``); a 1-D ``X``
        is then taken as one column when ``n_features == 1``.
    dtype : {None, np.float32, np.float64}
        Convert to this float dtype, C-contiguous (no copy when ``X``
        already is).
    allow_empty : bool, default False
        Accept zero samples.
    finite : bool, default True
        Scan for NaN and infinity (a caller that scans while it reads
        passes False).

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Raises
    ------
    InvalidTypeError
        Not numbers (object, str, ...) or complex; the message names the dtype.
    DataError
        Not 2-D (a 1-D array gets a hint to ``reshape``), no samples (unless
        ``allow_empty``), no features, another number of features than
        ``n_features``, NaN or infinity (the count and the first (row,
        column) are named), or values too large for ``dtype``.
    """
    if X is None:
        raise InvalidTypeError(f"{name} must be an array of shape (n_samples, n_features), got None")
    if not isinstance(X, np.ndarray):
        try:
            X = np.asarray(X)
        except ValueError as exc:
            raise DataError(f"{name} cannot be made into an array (ragged rows?): {exc}") from None
    _check_numeric_dtype(X, name)
    if X.ndim == 1 and n_features == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2:
        if X.ndim == 1:
            hint = f"; use {name}.reshape(-1, 1) if it is one feature, or {name}.reshape(1, -1) if it is one sample"
        elif X.ndim > 2:
            hint = f"; use {name}.reshape(len({name}), -1) to flatten each sample"
        else:
            hint = ""
        raise DataError(f"{name} must be 2-D (n_samples, n_features), got a {X.ndim}-D array of shape {X.shape}{hint}")
    if n_features is not None and X.shape[1] != n_features:
        raise DataError(f"{name} has {X.shape[1]} features but the network expects {n_features}")
    if X.shape[0] == 0 and not allow_empty:
        raise DataError(f"{name} has 0 samples (shape {X.shape}); at least one is needed")
    if X.shape[1] == 0:
        raise DataError(f"{name} has 0 features (shape {X.shape}); at least one is needed")
    if dtype is not None:
        dtype = check_float_dtype(dtype)
        source = X
        if not (type(X) is np.ndarray and X.dtype == dtype and X.flags.c_contiguous):  # else X is kept at once
            with np.errstate(over="ignore"):  # a value too large becomes inf here and is named just below
                X = np.ascontiguousarray(X, dtype=dtype)  # no copy when X already is
        if finite and X is not source and source.dtype.kind == "f" and source.dtype.itemsize > dtype.itemsize:
            _check_cast(source, X, name)
    if finite:
        check_finite(X, name)
    return X


def _check_cast(source, X, name):
    """After narrowing ``source`` into ``X``: values that became infinite are named as too large, with their column."""
    step = chunk_rows(X.shape[1])
    for start in range(0, X.shape[0], step):
        if np.isfinite(X[start:start + step]).all():
            continue
        check_finite(source, name)  # NaN or infinity already in the input: say so
        big = np.zeros(source.shape[1])
        for s0 in range(0, source.shape[0], step):
            np.maximum(big, np.abs(np.asarray(source[s0:s0 + step], dtype=np.float64)).max(axis=0), out=big)
        column = int(np.argmax(big > np.finfo(X.dtype).max))
        raise too_large(name, column, big[column], X.dtype)


def too_large(name, column, value, dtype, what="holds"):
    """The DataError for a finite ``value`` in ``column`` beyond what ``dtype`` holds, with both remedies."""
    return DataError(
        f"{name} column {column} {what} {value:.6g}, too large for {dtype} (largest "
        f"{np.finfo(dtype).max:.2g}); train in float64 (dtype='float64', --dtype float64) or rescale the column"
    )


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
    check_finite(y, name)
    return y


# ------------------------------------------------------------ sample weights
def check_sample_weight(sample_weight, n_samples, name="sample_weight", positive_sum=False):
    """Per-sample weights as a float64 vector: ``n_samples`` finite, non-negative numbers.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,)
    n_samples : int
    name : str
    positive_sum : bool
        Also refuse weights that are all zero (no sample would count).

    Raises
    ------
    DataError
        Another length (both named), a negative, NaN or infinite weight, or
        (with ``positive_sum``) a zero sum.
    """
    try:
        w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise InvalidTypeError(f"{name} must be numbers, got {describe(sample_weight)}") from None
    if w.shape[0] != n_samples:
        raise DataError(f"{name} has {w.shape[0]} entries for {n_samples} samples")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise DataError(f"{name} must be finite and non-negative")
    if positive_sum and not w.sum() > 0:
        raise DataError(f"{name} sums to 0: no sample would count")
    return w


def sample_scale(n_samples, sample_weight, dtype, total=None):
    r"""The weights ``s_i`` of the batch loss ``L = Σ s_i ℓ_i``: ``1/total``, or ``w_i / total``.

    ``total`` is ``n_samples`` (or ``Σ w``) by default, so ``Σ s_i = 1`` and
    the loss is a (weighted) mean; a data-parallel rank passes its global
    batch's total instead, so the ranks' shares add up to the mean.

    Parameters
    ----------
    n_samples : int
    sample_weight : ndarray of shape (n_samples,) or None
        Checked weights (:func:`check_sample_weight`).
    dtype : np.dtype
        The network's dtype.
    total : float, optional

    Returns
    -------
    scalar of ``dtype``, or ndarray of shape (n_samples, 1)
    """
    if sample_weight is None:
        return dtype.type(1.0 / (n_samples if total is None else total))
    if total is None:
        total = sample_weight.sum()
    return (sample_weight / total).astype(dtype).reshape(-1, 1)


# -------------------------------------------------------------------- paths
def path_str(path, name="path"):
    """A path argument as ``str``, or an InvalidTypeError naming what was given."""
    try:
        return os.fspath(path)
    except TypeError:
        raise InvalidTypeError(f"{name} must be a str or os.PathLike, got {describe(path)}") from None


def open_binary(path, what="file", max_bytes=None):
    """Open a regular file for reading bytes: :func:`open_input` without streams."""
    return open_input(path, what, max_bytes)


# ----------------------------------------------------------- bounded inputs
#: size caps per kind of input (bytes); see :func:`open_input`
MAX_CONFIG_BYTES = 1 << 20
MAX_DATA_BYTES = 16 << 30
#: decompression caps (gzip IDX, NPZ members): the inflated size is at most
#: ``min(MAX_INFLATED_BYTES, MAX_INFLATION_RATIO * compressed + INFLATION_ALLOWANCE)``
MAX_INFLATED_BYTES = 4 << 30
MAX_INFLATION_RATIO = 100
INFLATION_ALLOWANCE = 1 << 20
_COPY_BLOCK = 1 << 20


def size_str(n):
    """A byte count for a message: ``"123 bytes"``, ``"1.5 MiB"``, ``"16 GiB"``."""
    n, units = int(n), ["KiB", "MiB", "GiB", "TiB"]
    if n < 1024:
        return f"{n} byte{'s' if n != 1 else ''}"
    while n >= 1024 and units:
        n, unit = n / 1024, units.pop(0)
    return f"{n:.3g} {unit}"


def _kind(mode):
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a pipe"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def open_input(path, what="file", max_bytes=None, stream=False, error=DataError):
    """Open an input for reading bytes (binary, at position 0), refusing what could never end or is too large.

    ``path`` must be a regular file; with ``stream`` also a pipe (a FIFO,
    ``<(cmd)``, ``/dev/stdin`` from a pipe) or a terminal. Other devices
    (``/dev/zero``, ``/dev/urandom``), folders and sockets are always
    refused. A regular file larger than ``max_bytes`` (None: no cap) is
    refused before anything is read, naming its size and the cap; a stream's
    reader must stop at ``max_bytes`` itself (:func:`read_text_bounded` and
    :func:`input_file` do). ``what`` names the input in messages (``"data
    file"``); every refusal is an ``error`` (default :class:`DataError`).
    The caller closes the returned file.
    """
    path = path_str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    regular = stat.S_ISREG(st.st_mode)
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a folder, not a file")
    if not regular and not (stream and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode))):
        raise error(f"{path}: is {_kind(st.st_mode)}; the {what} must be a regular file")
    # A regular file is opened without blocking, so one swapped for a FIFO meanwhile cannot hang us.
    flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | (getattr(os, "O_NONBLOCK", 0) if regular else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode) != regular or (stat.S_ISCHR(st.st_mode) and not os.isatty(fd)):
            raise error(f"{path}: is {_kind(st.st_mode)}; the {what} must be a regular file or a pipe")
        if regular and max_bytes is not None and st.st_size > max_bytes:
            raise error(
                f"{path}: the {what} is {size_str(st.st_size)} ({st.st_size} bytes), more than the "
                f"{size_str(max_bytes)} allowed"
            )
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_text_bounded(path, max_bytes=MAX_CONFIG_BYTES, what="configuration file", error=DataError):
    """The UTF-8 text of a small input (a TOML configuration), read once and at most ``max_bytes``.

    A regular file or a pipe (``--config <(cmd)``); reading stops after
    ``max_bytes + 1`` bytes and refuses, so ``/dev/zero``-like inputs never
    grow memory (devices are refused outright by :func:`open_input`).

    Returns ``str`` (without a byte-order mark). Raises ``error`` for what
    :func:`open_input` refuses, more than ``max_bytes`` bytes (the cap is
    named) or bytes that are not UTF-8 (the offset is named).
    """
    with open_input(path, what, max_bytes, stream=True, error=error) as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise error(f"{path}: the {what} is larger than the {size_str(max_bytes)} allowed; stopped reading there")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: the {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


@contextlib.contextmanager
def input_file(path, what="data file", max_bytes=MAX_DATA_BYTES):
    """A regular file with the bytes of ``path``: ``path`` itself, or a pipe's bytes copied once.

    A pipe (``<(cat f.csv)``, a FIFO, ``/dev/stdin``) can be read only once,
    but format detection and some readers (NPY memory maps, IDX) need to read
    twice or to seek. A pipe is therefore copied once into a temporary file
    (in the system's temporary folder, at most ``max_bytes``; removed when the
    block ends, while an ``np.memmap`` of it stays valid) and the block works
    on that. Messages that name the temporary file are rewritten to name
    ``path``.

    Yields the path of a regular file. Raises a DataError for what
    :func:`open_input` refuses (``stream=True``) or a pipe that delivers
    more than ``max_bytes`` (the copy is removed).
    """
    import tempfile

    path = path_str(path)
    with open_input(path, what, max_bytes, stream=True) as f:
        if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            tmp = None
        else:
            fd, tmp = tempfile.mkstemp(prefix="deltaprop-input-")
            try:
                _copy_bounded(f, fd, path, what, max_bytes)
            except BaseException:
                os.unlink(tmp)
                raise
    if tmp is None:
        yield path
        return
    try:
        yield tmp
    except DataError as exc:
        raise DataError(str(exc).replace(tmp, path)) from None
    finally:
        os.unlink(tmp)


def _copy_bounded(f, fd, path, what, max_bytes):
    copied = 0
    with os.fdopen(fd, "wb") as out:
        while True:
            try:
                block = f.read(_COPY_BLOCK)
            except OSError as exc:
                raise DataError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
            copied += len(block)
            if not block:
                return
            if copied > max_bytes:
                raise DataError(f"{path}: the {what} read from a pipe passed the {size_str(max_bytes)} allowed; "
                                f"stopped reading there")
            out.write(block)


def inflation_limit(compressed):
    """The most bytes a compressed input of ``compressed`` bytes may inflate to (see :data:`MAX_INFLATED_BYTES`)."""
    return min(MAX_INFLATED_BYTES, MAX_INFLATION_RATIO * int(compressed) + INFLATION_ALLOWANCE)


def check_inflation(path, compressed, declared, what="data", stopped=None):
    """Refuse ``declared`` bytes inflated from ``compressed`` above :func:`inflation_limit`; ``stopped``: where."""
    limit = inflation_limit(compressed)
    if declared > limit:
        ratio = f"{MAX_INFLATION_RATIO}:1 plus {size_str(INFLATION_ALLOWANCE)}, {size_str(limit)}"
        cap = f"the {size_str(MAX_INFLATED_BYTES)} cap" if limit == MAX_INFLATED_BYTES else ratio
        where = "refused before inflating" if stopped is None else f"stopped after inflating {stopped} bytes"
        raise DataError(
            f"{path}: {size_str(compressed)} of compressed {what} ({compressed} bytes) would inflate to "
            f"{declared} bytes, beyond {cap}; {where} (decompress it yourself if it is genuine)"
        )

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

import math
import numbers
import os

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
    "check_targets",
    "check_sample_weight",
    "sample_scale",
    "chunk_rows",
    "path_str",
    "open_binary",
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
        X = np.ascontiguousarray(X, dtype=dtype)  # no copy when X already is
        if finite and X is not source and source.dtype.kind == "f" and source.dtype.itemsize > dtype.itemsize:
            _check_cast(source, X, name)
    if finite:
        check_finite(X, name)
    return X


def _check_cast(source, X, name):
    """After narrowing ``source`` into ``X``: values that became infinite are named as too large."""
    step = chunk_rows(X.shape[1])
    for start in range(0, X.shape[0], step):
        block = X[start:start + step]
        if np.isfinite(block).all():
            continue
        check_finite(source, name)  # NaN or infinity already in the input: say so
        big = np.abs(np.asarray(source, dtype=np.float64)).max(axis=0)
        column = int(np.argmax(big))
        raise DataError(
            f"{name} holds values too large for {X.dtype} (largest magnitude {big[column]:.6g} in column "
            f"{column}; {X.dtype} ends at {np.finfo(X.dtype).max:.6g}); scale the data or use float64"
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


def open_binary(path):
    """Open ``path`` for reading bytes; a missing file or a folder is a DataError."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None

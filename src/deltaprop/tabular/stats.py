"""Statistics of training columns that cannot overflow for finite input, and the categories of a column."""

import math

import numpy as np

from ..errors import DataError
from .sources import category_str

__all__ = ["mean", "median", "std", "scaling", "category_codes", "few_codes", "FEW_ROWS"]

#: Rows up to which :func:`few_codes` looks categories up one by one instead of sorting them
FEW_ROWS = 64


def mean(x):
    """Mean of finite float64 ``x``, without overflow: scaled by max |x| when the plain sum overflows."""
    with np.errstate(over="ignore", invalid="ignore"):
        m = float(np.mean(x))
    if math.isfinite(m):
        return m
    s = float(np.max(np.abs(x)))
    return s * float(np.mean(x / s))


def median(x):
    """Median of finite float64 ``x``; the two middle values are halved before adding (no overflow)."""
    x = np.sort(x)
    n = x.size
    if n % 2:
        return float(x[n // 2])
    return float(0.5 * x[n // 2 - 1] + 0.5 * x[n // 2])


def std(x, center):
    """Population standard deviation of ``x`` about ``center`` (its mean), without overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        sd = float(np.sqrt(np.mean((x - center) ** 2)))
    if math.isfinite(sd):
        return sd
    s = float(np.max(np.abs(x)))
    y = x / s
    return s * float(np.sqrt(np.mean((y - center / s) ** 2)))


def scaling(x, kind, name):
    """``(offset, scale)`` of ``x`` as :class:`deltaprop.data.Scaler` has them; constant -> scale 1."""
    lo, hi = float(np.min(x)), float(np.max(x))
    if kind == "none":
        return 0.0, 1.0
    if lo == hi:
        return lo, 1.0
    if kind == "minmax":
        with np.errstate(over="ignore"):
            scale = hi - lo
        if not math.isfinite(scale):
            raise DataError(
                f"the values of {name!r} span {lo!r} to {hi!r}, more than a float64 can hold; "
                f"use scale='standard' or rescale the column"
            )
        return lo, scale
    m = mean(x)
    scale = std(x, m)
    return m, (scale if scale > 0 else 1.0)


def category_codes(values):
    """Distinct present values as str, each row's index into them, and the missing mask.

    Returns ``(labels, inverse, missing)``: ``labels`` a sorted list of str,
    ``inverse`` int array over the present rows, ``missing`` bool (n_rows,).
    A numeric column's values are named by :func:`category_str`.
    """
    if values.dtype.kind == "f":
        missing = np.isnan(values)
        uniq, inverse = np.unique(values[~missing], return_inverse=True)
        return [category_str(u) for u in uniq.tolist()], inverse.reshape(-1), missing
    missing = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    present = values[~missing]
    if present.size == 0:
        return [], np.zeros(0, dtype=np.intp), missing
    uniq, inverse = np.unique(present.astype(str), return_inverse=True)
    return uniq.tolist(), inverse.reshape(-1), missing


def few_codes(values, index):
    """For a few rows: :func:`category_codes` and a lookup of its labels in ``index``, without a sort of the rows.

    Parameters
    ----------
    values : ndarray of shape (n_rows,)
        A categorical column: an object array of str (None where missing),
        or float64 numbers (NaN where missing) named by :func:`category_str`.
    index : dict of str to int
        The trained categories' codes.

    Returns
    -------
    (present, missing, unseen) or None
        ``present``: intp (n_present,), each present row's code (-1 for a
        category not in ``index``); ``missing``: bool (n_rows,);
        ``unseen``: the distinct labels not in ``index``, in
        :func:`category_codes`' order (sorted text, or sorted numbers). The
        same as through :func:`category_codes`. None (the caller sorts) for
        more than :data:`FEW_ROWS` rows, another dtype, or a value that is
        not None or a str NumPy's text dtype keeps as it is (one ending in NUL).
    """
    kind = values.dtype.kind
    if kind not in "Of" or len(values) > FEW_ROWS:
        return None
    present, missing, unseen = [], [], set()
    for v in values.tolist():
        if v is None if kind == "O" else v != v:  # None in text, NaN in numbers
            missing.append(True)
            continue
        if kind == "O" and (type(v) is not str or v.endswith("\x00")):
            return None
        missing.append(False)
        code = index.get(v if kind == "O" else category_str(v), -1)
        if code < 0:
            unseen.add(v)
        present.append(code)
    labels = sorted(unseen) if kind == "O" else [category_str(u) for u in sorted(unseen)]
    return np.array(present, dtype=np.intp), np.array(missing, dtype=bool), labels

"""Train/test splits, plain or stratified, drawn from a seed."""

import math

import numpy as np

from ..errors import InvalidArgumentError, InvalidTypeError, describe
from .labels import as_labels, encode_labels

__all__ = ["split_indices", "train_test_split"]


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
    _, codes = encode_labels(as_labels(stratify, "stratify"))
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

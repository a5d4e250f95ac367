"""Class labels to indices and back."""

import numpy as np

from ..errors import DataError, InvalidArgumentError, InvalidTypeError, describe

__all__ = ["encode_labels", "Labels", "as_labels"]


def as_labels(y, name="y"):
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
    y = as_labels(y)
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
        y = as_labels(y)
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

"""A data set: features, targets and what is known about them, and the task they call for."""

import dataclasses

import numpy as np

from ..errors import InvalidArgumentError, describe

__all__ = ["Dataset", "infer_task", "TASKS", "MAX_CLASSES_INFERRED"]

#: A target with at most this many distinct integer values is a classification
#: target (see :func:`infer_task`).
MAX_CLASSES_INFERRED = 50

TASKS = ("classification", "regression")


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

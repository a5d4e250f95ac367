"""What the commands share: messages, BLAS thread limits, data loading, class targets and splits.

Importing this module imports NumPy and deltaprop's data package, nothing
heavy: scikit-learn (the built-in data sets) and threadpoolctl are imported
only when a command needs them.
"""

import contextlib
import os
import sys

import numpy as np

from ..data import BUILTIN_DATASETS, load_builtin, load_xy, split_indices
from ..errors import DataError, InvalidArgumentError
from .config import ConfigError
from .parser import PROG, UsageError  # defined with the parser, which is built without NumPy

__all__ = [
    "PROG",
    "UsageError",
    "Messenger",
    "thread_limit",
    "is_builtin",
    "load_dataset",
    "label_values",
    "split_rows",
    "gather",
    "parse_arg",
]

class Messenger:
    """Messages for a person, on standard error; silent with --quiet."""

    def __init__(self, quiet=False):
        self.quiet = quiet

    def __call__(self, message=""):
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)


def parse_arg(value, name, parse):
    """``parse(value, name)`` with a :class:`ConfigError` turned into a usage error."""
    try:
        return parse(value, name)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


# ---------------------------------------------------------------------------
# BLAS threads
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def thread_limit(n):
    """Limit BLAS (and OpenMP) threads to ``n`` for the duration of the block.

    threadpoolctl changes the limit of libraries already loaded, which is
    what works here: NumPy (and its BLAS) is loaded with deltaprop's package,
    before any option is read, so OPENBLAS_NUM_THREADS and OMP_NUM_THREADS
    set now reach only libraries loaded later. They are set anyway, and a
    warning says so when threadpoolctl is missing. ``"auto"`` changes
    nothing here: ``fit(threads="auto")`` chooses the count each epoch.
    """
    if n is None or n == "auto":  # auto: the training loop sets the count epoch by epoch (deltaprop.threads)
        yield
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if "numpy" in sys.modules:
            print(f"{PROG}: warning: --threads {n} needs threadpoolctl (pip install threadpoolctl) once NumPy "
                  f"is loaded; BLAS keeps its own thread count. Alternatively start with "
                  f"OPENBLAS_NUM_THREADS={n} OMP_NUM_THREADS={n} in the environment", file=sys.stderr)
        yield
        return
    with threadpool_limits(limits=n):
        yield


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def is_builtin(spec):
    """Whether ``spec`` names a built-in data set (``breast_cancer`` and ``Breast-Cancer`` alike)."""
    return spec.strip().lower().replace("_", "-") in BUILTIN_DATASETS


def load_dataset(spec, labels=None, target=None):
    """A built-in data set by name, or a file (CSV, NPY, NPZ, IDX) with an optional labels file.

    Returns
    -------
    deltaprop.data.Dataset
    """
    if not os.path.exists(spec) and is_builtin(spec):
        if labels is not None or target is not None:
            raise ConfigError(f"--labels and --target apply to data files, not to the built-in data set {spec!r}")
        return load_builtin(spec)
    if not os.path.exists(spec):
        raise DataError(
            f"{spec}: no such file, and not a built-in data set (the built-in ones are "
            f"{', '.join(BUILTIN_DATASETS)})"
        )
    if os.path.isdir(spec):
        raise DataError(f"{spec}: is a folder; give a CSV, NPY, NPZ or IDX file")
    ds = load_xy(spec, target=target, targets=labels)
    if ds.name is None:
        ds.name = os.path.basename(spec)
    return ds


# ---------------------------------------------------------------------------
# Classes and targets
# ---------------------------------------------------------------------------


def label_values(classes):
    """Class labels as plain JSON values: str, int (whole numbers and booleans) or float."""
    classes = np.asarray(classes)
    if classes.dtype.kind in "US":
        return [str(c) for c in classes]
    if classes.dtype.kind in "biu":
        return [int(c) for c in classes]
    return [int(c) if float(c).is_integer() else float(c) for c in classes]


# ---------------------------------------------------------------------------
# Splits
# ---------------------------------------------------------------------------


def split_rows(n, codes, cfg, has_test_set, max_validation=None):
    """Row indices ``(train, validation, test)`` of a run; deterministic in the seed.

    The test split is drawn first (stratified by class for classification),
    then the validation split from what is left, from a second stream of the
    same seed. ``has_test_set`` (Fashion-MNIST's official one) means no test
    split. ``max_validation`` caps the validation rows. ``validation`` and
    ``test`` are None when there is no such split.
    """
    seed = cfg["seed"]
    rows = np.arange(n)
    test = None
    if not has_test_set and cfg["test_split"] > 0:
        try:
            rows, test = split_indices(n, cfg["test_split"], stratify=codes, seed=seed)
        except InvalidArgumentError as exc:
            raise DataError(f"test_split={cfg['test_split']}: {exc}") from None
    validation = None
    fraction = cfg["validation_split"]
    if fraction > 0:
        if max_validation is not None and fraction * len(rows) > max_validation:
            fraction = max(max_validation, 1) / len(rows)
        stratify = None if codes is None else codes[rows]
        try:
            keep, val = split_indices(len(rows), fraction, stratify=stratify,
                                      seed=np.random.default_rng([seed, 1]))
        except InvalidArgumentError as exc:
            raise DataError(f"validation_split={cfg['validation_split']}: {exc}") from None
        rows, validation = rows[keep], rows[val]
    if codes is not None:
        rows, validation, test = _every_class_trained(rows, validation, test, codes)
    return rows, validation, test


def _every_class_trained(train, validation, test, codes):
    """Move one row of each class that has no training row back into training (from validation, else test).

    A class seen only in the held-out rows could never be learned: a
    stratified split of a class with one or two rows may put them all there.
    """
    missing = np.setdiff1d(codes, codes[train])
    for k in missing:
        for name in ("validation", "test"):
            held = validation if name == "validation" else test
            if held is None:
                continue
            where = np.flatnonzero(codes[held] == k)
            if where.size:
                train = np.sort(np.append(train, held[where[0]]))
                held = np.delete(held, where[0])
                held = held if held.size else None
                validation, test = (held, test) if name == "validation" else (validation, held)
                break
    return train, validation, test


def gather(X, rows, dtype, scratch=None, name=None):
    """Rows ``rows`` of ``X`` as a float array of ``dtype``, shape (len(rows), n_features).

    In memory, or a memory-mapped file ``{name}.bin`` in the folder
    ``scratch``, filled a block of rows at a time (sorted indices, so reads
    are nearly sequential), so memory stays bounded whatever the size.
    """
    if scratch is None:
        return np.asarray(X[rows], dtype=dtype)
    out = np.memmap(os.path.join(scratch, f"{name}.bin"), dtype=dtype, mode="w+", shape=(len(rows), X.shape[1]))
    step = max(1, (32 << 20) // max(1, X.shape[1] * max(X.dtype.itemsize, out.dtype.itemsize)))
    for start in range(0, len(rows), step):
        out[start:start + step] = X[rows[start:start + step]]
    return out

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

from ..checks import check_array, check_targets
from .arrays import load_array, load_npz
from .builtin import BUILTIN_DATASETS, load_builtin
from .csvfile import load_csv
from .dataset import Dataset, infer_task
from .files import detect_format, load_features, load_xy
from .idx import load_idx
from .labels import Labels, encode_labels
from .scaling import Scaler
from .splits import split_indices, train_test_split

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

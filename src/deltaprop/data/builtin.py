"""The built-in data sets: scikit-learn's bundled ones and Fashion-MNIST from Debian; nothing is downloaded."""

import os

import numpy as np

from ..errors import DataError, InvalidTypeError, UnknownNameError, describe
from .dataset import Dataset
from .idx import load_idx

__all__ = ["load_builtin", "BUILTIN_DATASETS", "FASHION_MNIST_DIRS", "FASHION_MNIST_ENV", "FASHION_MNIST_CLASSES"]


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

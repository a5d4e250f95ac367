"""deltaprop: feedforward neural networks trained by backpropagation.

::

    import deltaprop as dp
    net = dp.Network([dp.Dense(64, 128, activation="relu"),
                      dp.Dense(128, 10, activation="softmax")],
                     loss="categorical_crossentropy", seed=0)
    history = net.fit(X, y, epochs=20, batch_size=64, optimizer=dp.Adam(learning_rate=1e-3))
    P = net.predict(X)

The core needs NumPy alone; heavy packages (safetensors, tqdm, scikit-learn,
matplotlib) are imported only when the feature that needs them is used.
"""

from ._version import __version__
from . import activations, initializers, losses, metrics, optimizers, schedules
from .callbacks import Callback, EarlyStopping, JSONLogger, LambdaCallback, ProgressBar
from .gradcheck import gradcheck  # the function; the module stays importable as deltaprop.gradcheck
from .errors import (
    DataError,
    DeltapropError,
    DivergenceError,
    InvalidArgumentError,
    InvalidTypeError,
    ModelFileError,
    SaveError,
    UnknownNameError,
)
from .layers import Dense
from .model import Network
from .network import FeedForward
from .optimizers import SGD, AdaGrad, Adam, AdamW, RMSProp
from .run import History
from .schedules import Constant, CosineDecay, ExponentialDecay, LinearWarmup, StepDecay
from .training import evaluate, fit

__all__ = [
    "__version__",
    "Network",
    "FeedForward",
    "Dense",
    "SGD",
    "AdaGrad",
    "RMSProp",
    "Adam",
    "AdamW",
    "Constant",
    "StepDecay",
    "ExponentialDecay",
    "CosineDecay",
    "LinearWarmup",
    "Callback",
    "EarlyStopping",
    "ProgressBar",
    "JSONLogger",
    "LambdaCallback",
    "History",
    "fit",
    "evaluate",
    "save",
    "load",
    "DeltapropClassifier",
    "DeltapropRegressor",
    "gradcheck",
    "activations",
    "losses",
    "initializers",
    "optimizers",
    "schedules",
    "metrics",
    "DeltapropError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "UnknownNameError",
    "DataError",
    "ModelFileError",
    "SaveError",
    "DivergenceError",
]


_LAZY = {"DeltapropClassifier": "estimators", "DeltapropRegressor": "estimators"}


def __getattr__(name):
    # The scikit-learn estimators load scikit-learn: import them only when asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'deltaprop' has no attribute {name!r}")


def save(network, path, **kwargs):
    """Save ``network`` to a safetensors model file; see :func:`deltaprop.io.save`."""
    from .io import save as _save

    return _save(network, path, **kwargs)


def load(path):
    """Load a model file; see :func:`deltaprop.io.load`."""
    from .io import load as _load

    return _load(path)


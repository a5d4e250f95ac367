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
from .inspector import Inspector
from .gradcheck import gradcheck  # the function; the module stays importable as deltaprop.gradcheck
from .errors import (
    DataError,
    DeltapropError,
    DeltapropWarning,
    DivergenceError,
    InvalidArgumentError,
    InvalidTypeError,
    ModelFileError,
    SaveError,
    TrainingInterrupted,
    UnknownNameError,
)
from .blocks import Residual
from .embedding import Embedding
from .layers import Activation, Dense, Dropout, Layer
from .norms import BatchNorm, LayerNorm
from .model import Network
from .network import FeedForward
from .optimizers import SGD, AdaGrad, Adam, AdamW, RMSProp
from .run import History
from .schedules import Constant, CosineDecay, ExponentialDecay, LinearWarmup, StepDecay
from .training import evaluate, fit
from .walkthrough import walkthrough

__all__ = [
    "__version__",
    "Network",
    "FeedForward",
    "Layer",
    "Dense",
    "Dropout",
    "Activation",
    "LayerNorm",
    "BatchNorm",
    "Embedding",
    "Residual",
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
    "Inspector",
    "History",
    "fit",
    "evaluate",
    "save",
    "load",
    "export_onnx",
    "DeltapropClassifier",
    "DeltapropRegressor",
    "TabularModel",
    "read_table",
    "gradcheck",
    "walkthrough",
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
    "TrainingInterrupted",
    "DeltapropWarning",
]


_LAZY = {"DeltapropClassifier": "estimators", "DeltapropRegressor": "estimators", "TabularModel": "tabular",
         "read_table": "tabular", "export_onnx": "export"}


def __getattr__(name):
    # The scikit-learn estimators load scikit-learn, the tabular model its readers, export onnx: import them when
    # asked for.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'deltaprop' has no attribute {name!r}")


def save(model, path, **kwargs):
    """Save a Network (see :func:`deltaprop.io.save`) or a TabularModel (:meth:`TabularModel.save`) to one file."""
    if type(model).__name__ == "TabularModel":
        if kwargs:
            raise TypeError(f"a TabularModel is saved whole; unexpected arguments {sorted(kwargs)}")
        return model.save(path)
    from .io import save as _save

    return _save(model, path, **kwargs)


def load(path):
    """Load a model file: what was saved, a :class:`TabularModel` or a :class:`Network`.

    A file written by ``deltaprop train`` (or :meth:`TabularModel.save`) gives
    a TabularModel, whose ``predict`` takes raw rows (a CSV path, a DataFrame)
    and returns labels or values exactly as ``deltaprop predict`` does; a file
    of a network alone (:func:`deltaprop.save` of a Network) gives the Network.
    See :func:`deltaprop.tabular.load_model`.
    """
    from .tabular.files import load_model

    return load_model(path)

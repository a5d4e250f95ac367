"""deltaprop: feedforward neural networks trained by backpropagation.

::

    import deltaprop as dp
    net = dp.Network([dp.Dense(64, 128, activation="relu"),
                      dp.Dense(128, 10, activation="softmax")],
                     loss="categorical_crossentropy", seed=0)
    history = net.fit(X, y, epochs=20, batch_size=64, optimizer=dp.Adam(learning_rate=1e-3))
    P = net.predict(X)

The core needs NumPy alone; heavy packages (safetensors, tqdm, scikit-learn,
matplotlib) are imported only when the feature that needs them is used. The
package face itself is lazy (PEP 562, as SciPy's and scikit-image's are):
``import deltaprop`` imports no NumPy, and each public name imports its
module on first use, so ``deltaprop --help`` starts without NumPy.
"""

import sys as _sys
import types as _types
from importlib import import_module as _import_module

from ._version import __version__

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


#: public name -> the module (under deltaprop) that defines it, imported on first use
_HOMES = {
    **dict.fromkeys(("Callback", "EarlyStopping", "JSONLogger", "LambdaCallback", "ProgressBar"), "callbacks"),
    **dict.fromkeys(("DataError", "DeltapropError", "DeltapropWarning", "DivergenceError", "InvalidArgumentError",
                     "InvalidTypeError", "ModelFileError", "SaveError", "TrainingInterrupted", "UnknownNameError"),
                    "errors"),
    **dict.fromkeys(("Activation", "Dense", "Dropout", "Layer"), "layers"),
    **dict.fromkeys(("BatchNorm", "LayerNorm"), "norms"),
    **dict.fromkeys(("SGD", "AdaGrad", "Adam", "AdamW", "RMSProp"), "optimizers"),
    **dict.fromkeys(("Constant", "CosineDecay", "ExponentialDecay", "LinearWarmup", "StepDecay"), "schedules"),
    **dict.fromkeys(("evaluate", "fit"), "training"),
    **dict.fromkeys(("DeltapropClassifier", "DeltapropRegressor"), "estimators"),
    **dict.fromkeys(("TabularModel", "read_table"), "tabular"),
    "Inspector": "inspector", "gradcheck": "gradcheck", "walkthrough": "walkthrough", "Residual": "blocks",
    "Embedding": "embedding", "Network": "model", "FeedForward": "network", "History": "run",
    "export_onnx": "export",
}
#: submodules that are attributes of the package as well (``deltaprop.training.fit`` after ``import deltaprop``)
_SUBMODULES = frozenset((
    "activations", "initializers", "losses", "metrics", "optimizers", "schedules", "_kernels", "_version", "atomic",
    "attributions", "batches", "blocks", "callbacks", "checks", "embedding", "errors", "inspector", "layers",
    "model", "network", "norms", "registry", "run", "sparse", "training",
))
#: the functions named as their modules: ``deltaprop.gradcheck`` is the function, not the module
_FUNCTIONS = ("gradcheck", "walkthrough")


def __getattr__(name):
    # A public name imports its module when first asked for (and stays bound); the estimators load scikit-learn,
    # the tabular model its readers, export onnx only then.
    home = _HOMES.get(name)
    if home is not None:
        value = getattr(_import_module(f".{home}", __name__), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return _import_module(f".{name}", __name__)
    raise AttributeError(f"module 'deltaprop' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)


class _Package(_types.ModuleType):
    """The package's module type: importing ``deltaprop.gradcheck`` (or ``.walkthrough``) keeps the function.

    The import system sets a package's attribute to each submodule it loads;
    for these two, whose function has the module's name, the attribute is the
    function (as ``from .gradcheck import gradcheck`` left it before the face
    was lazy), whichever is imported first.
    """

    def __setattr__(self, name, value):
        if name in _FUNCTIONS and isinstance(value, _types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            value = getattr(value, name)
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


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

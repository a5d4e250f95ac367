"""Model files: a network, its preprocessing and its labels, in one safetensors file.

A model file is a tensor file (:mod:`deltaprop.tensorfile`: safetensors with
JSON metadata, validated before anything is allocated, written atomically).

Tensors: ``layers.{i}.{name}`` for each layer ``i`` from 0 and each of its
parameters and buffers: ``W`` (n_out, n_in) and ``b`` (n_out,) of a Dense
layer, ``gamma`` and ``beta`` of a norm, ``running_mean`` and ``running_var``
of a BatchNorm, ``tables.{k}`` of an Embedding, and a Residual block's
layers' as ``layers.{i}.layers.{j}.{name}``; plus ``preprocessing.{name}``
arrays. Metadata (each value
a JSON string): ``format`` ("deltaprop.model"), ``format_version``,
``architecture`` (layers with activation, initializer and dropout by name and
hyperparameters, the loss, the dtype), ``preprocessing`` (a
:class:`deltaprop.data.Scaler` config), ``classes`` (class labels, in output
order), ``config`` (the run's effective configuration), ``library_version``.

Loading never runs code from the file and never unpickles. Beyond the
codec's checks it validates every metadata field's type, the architecture
(registered names, sizes that chain and match the tensors' shapes, see
:mod:`deltaprop.architecture`), finite values, the class count against the
outputs and the preprocessing arrays. Any problem is a
:class:`~deltaprop.errors.ModelFileError` that names the file and the problem.
"""

import json
import math
import os

import numpy as np

from ._version import __version__
from .architecture import check_architecture, expected_tensors, plan, unregistered
from .data.scaling import Scaler
from .errors import DeltapropError, InvalidArgumentError, InvalidTypeError, ModelFileError, UnknownNameError, describe
from .model import Network
from .validate import validate_model_metadata
from .tensorfile import MODEL_FORMAT, check_format, check_tensor, dumps, json_field, read_file, write_file

__all__ = ["save", "load", "read_file", "write_file", "build_network", "MODEL_FORMAT", "MODEL_FORMAT_VERSION"]

#: The newest format version this deltaprop writes and reads: 1 for a network alone, 2 for a file that also
#: carries a data contract (:mod:`deltaprop.tabular.files`), which a reader of version 1 must refuse.
MODEL_FORMAT_VERSION = 2
_RESERVED = ("format", "format_version", "architecture", "library_version", "preprocessing", "classes", "config")


# ------------------------------------------------------------- networks
def build_network(path, arch):
    """Build a Network from a checked architecture, turning every failure into a clear ModelFileError.

    Only call this once the architecture's sizes are known to match tensors
    present in the file, so that a file cannot make it allocate more memory
    than its own size.
    """
    try:
        return Network.from_config(arch, seed=0)
    except UnknownNameError as exc:
        raise unregistered(path, exc) from None
    except Exception as exc:  # noqa: BLE001 - a registered class may reject the file's hyperparameters any way
        raise ModelFileError(f"{path}: architecture is invalid: {exc}") from None


# ------------------------------------------------------------- model files
def _check_classes(classes, n_out, where, error):
    """Labels must be distinct strings, integers, finite floats or booleans, one per class."""
    if not isinstance(classes, list):
        raise error(f"{where}classes must be a list, got {type(classes).__name__}")
    for c in classes:
        if not (isinstance(c, (str, int)) or (isinstance(c, float) and math.isfinite(c))):
            raise error(f"{where}class label {describe(c)} is not a string, an integer or a finite number")
    n_cls = 2 if n_out == 1 else n_out
    if len(classes) != n_cls:
        raise error(f"{where}{len(classes)} class labels for a network with {n_out} output"
                    f"{'s' if n_out > 1 else ''} ({n_cls} classes)")
    keyed = [(type(c) is bool, c) for c in classes]  # True and 1 are different labels
    if len(set(keyed)) != len(keyed):
        raise error(f"{where}class labels repeat: {describe(classes)}")


def _scaler(config, arrays, n_in):
    scaler = Scaler.from_state(config, arrays)
    if scaler.n_features_in_ != n_in:
        raise InvalidArgumentError(
            f"preprocessing is for {scaler.n_features_in_} features but the network has {n_in} inputs"
        )
    extra = set(arrays) - {"offset", "scale"}
    if extra:
        raise InvalidArgumentError(f"preprocessing has unexpected arrays {sorted(extra)}")
    return scaler


def save(network, path, preprocessing=None, classes=None, config=None, extra=None, format_version=1):
    """Save a network to one safetensors file, atomically.

    Parameters
    ----------
    network : Network
        Its activations and loss are stored by name and hyperparameters
        (``get_config()``); one of your own must be registered under that
        name before the file can be loaded.
    path : str or path-like
    preprocessing : (dict, dict of ndarray), optional
        A fitted :class:`deltaprop.data.Scaler`'s ``state()``, applied to
        inputs by ``deltaprop evaluate`` and ``predict``.
    classes : sequence, optional
        Class labels in output order (distinct strings or numbers; two for a
        network with one output).
    config : dict, optional
        The run's effective configuration (shown by ``deltaprop info``).
    extra : dict, optional
        More metadata entries (JSON-serialisable values) under names other
        than the reserved ones.
    format_version : {1, 2}, default 1
        2 for a file whose metadata a reader must understand to use it (a
        data contract): deltaprop versions that read only version 1 refuse it.

    Raises
    ------
    SaveError
        The file could not be written; a previous file at ``path`` is intact.
    InvalidArgumentError, InvalidTypeError
        Preprocessing, classes, config or extra that a file could not hold
        or that a load would reject (checked before anything is written).
    """
    tensors = dict(network.tensors())  # layers.{i}.{name}: W, b, gamma, running_mean...
    if not np.all(np.isfinite(network.params)):
        raise InvalidArgumentError("cannot save a network whose parameters contain NaN or infinity")
    metadata = {
        "format": MODEL_FORMAT,
        "format_version": str(_format_version(format_version)),
        "architecture": dumps(network.get_config(), "the network's configuration"),
        "library_version": json.dumps(__version__),
    }
    if preprocessing is not None:
        if not isinstance(preprocessing, tuple) or len(preprocessing) != 2:
            raise InvalidTypeError(
                f"preprocessing must be a (config, arrays) pair from Scaler.state(), got {describe(preprocessing)}"
            )
        pconfig, parrays = preprocessing
        _scaler(pconfig, parrays, network.n_in)
        metadata["preprocessing"] = dumps(pconfig, "preprocessing config")
        for k, v in parrays.items():
            tensors[f"preprocessing.{k}"] = np.asarray(v)
    if classes is not None:
        labels = [c.item() if isinstance(c, np.generic) else c for c in classes]
        _check_classes(labels, network.n_out, "", InvalidArgumentError)
        metadata["classes"] = dumps(labels, "classes")
    if config is not None:
        if not isinstance(config, dict):
            raise InvalidTypeError(f"config must be a dict, got {describe(config)}")
        metadata["config"] = dumps(config, "config")
    for k, v in (extra or {}).items():
        if not isinstance(k, str) or k in _RESERVED:
            raise InvalidArgumentError(f"extra metadata key {k!r} is reserved or not a string")
        metadata[k] = dumps(v, f"extra metadata {k!r}")
    write_file(path, tensors, metadata)


def _check_magnitude(path, net):
    """Refuse parameters so large that a forward pass would overflow the network's dtype.

    A product ``W a`` of a weight above ``sqrt(max)`` (1.8e19 in float32) with an
    input or activation above 1 can overflow; no trained network comes near it,
    so such a file is refused when it is loaded, not when its predictions are
    printed.
    """
    limit = float(np.sqrt(np.finfo(net.dtype).max))
    values = np.concatenate([net.params, net.buffers])
    largest = float(np.max(np.abs(values))) if values.size else 0.0
    if largest > limit:
        raise ModelFileError(f"{path}: a parameter of magnitude {largest:.3g} would overflow {net.dtype.name} in use "
                             f"(the largest accepted is {limit:.3g}); the file is corrupt or not a trained model")


def _format_version(version):
    if version not in (1, 2):
        raise InvalidArgumentError(f"format_version must be 1 or 2, got {describe(version)}")
    return version


def load(path):
    """Load a model file written by :func:`save`.

    Returns
    -------
    Network
        With extra attributes ``preprocessing`` ((config, arrays) or None),
        ``classes`` (list or None), ``run_config`` (dict or None) and
        ``metadata`` (the raw string map).

    Raises
    ------
    ModelFileError
        For anything wrong with the file, naming the problem; also when it
        names an activation or loss that is not registered (register yours
        under the saved name first).
    """
    path = os.fspath(path)
    tensors, metadata = read_file(path)
    check_format(path, metadata, MODEL_FORMAT, MODEL_FORMAT_VERSION)
    parsed = validate_model_metadata(path, metadata)  # every JSON entry bounded and typed before anything reads it
    arch = check_architecture(path, json_field(path, metadata, "architecture", dict))
    planned = plan(path, arch)
    expected = expected_tensors(arch, path, planned)
    pconfig = json_field(path, metadata, "preprocessing", dict, required=False)
    parrays = {k[len("preprocessing."):]: v for k, v in tensors.items() if k.startswith("preprocessing.")}
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise ModelFileError(f"{path}: tensors {missing[:5]} are missing (the architecture has "
                             f"{len(arch['layers'])} layers)")
    unexpected = sorted(set(tensors) - set(expected) - {f"preprocessing.{k}" for k in parrays})
    if unexpected:
        raise ModelFileError(f"{path}: unexpected tensors {unexpected[:5]}")
    # Shapes and dtypes before building: the network is then no larger than the file.
    for name, shape in expected.items():
        check_tensor(path, name, tensors[name], shape, arch["dtype"])
    if parrays and pconfig is None:
        raise ModelFileError(f"{path}: preprocessing tensors without a preprocessing config")
    if pconfig is not None:
        try:
            _scaler(pconfig, parrays, planned[0].n_in)
        except DeltapropError as exc:
            raise ModelFileError(f"{path}: preprocessing is invalid: {exc}") from None
    classes = json_field(path, metadata, "classes", list, required=False)
    if classes is not None:
        _check_classes(classes, planned[-1].n_out, f"{path}: ", ModelFileError)
    run_config = json_field(path, metadata, "config", dict, required=False)
    net = build_network(path, arch)
    for name, target in net.tensors().items():
        np.copyto(target, tensors[name])
    _check_magnitude(path, net)
    problem = net.buffers_problem()
    if problem:
        raise ModelFileError(f"{path}: {problem}")
    net.preprocessing = None if pconfig is None else (pconfig, parrays)
    net.classes = classes
    net.run_config = run_config
    net.metadata = dict(metadata)
    net.parsed_metadata = parsed
    return net

"""An estimator in a deltaprop model file: the network, plus the estimator's record in the metadata.

:func:`save` writes a plain model file (:func:`deltaprop.io.save`: it opens
with :func:`deltaprop.load` and the ``deltaprop`` command) whose metadata
entry ``"sklearn_estimator"`` holds the estimator's record: its class name,
its parameters as JSON (:func:`to_json`), the fitted attributes that are not
in the network (``n_features_in_``, the curves, the classifier's mode and
label dtype, ...) and, for an estimator fitted on a DataFrame through a data
contract, the contract (:meth:`deltaprop.tabular.DataContract.state`). :func:`load` checks the record and gives back the
estimator built from it, with its network; the estimator class finishes the
fitted state (``_restore_fitted``).

This module works on the estimator it is handed, through its class and a few
methods (``get_params``, ``_extra_state``, ``_file_classes``); it imports no
estimator class.
"""

import numbers
import os

import numpy as np

from ..errors import ModelFileError, describe
from ..io import load as load_model
from ..io import save as save_model
from ..tensorfile import json_field
from ._inputs import contract_from_state

__all__ = ["ESTIMATOR_KEY", "ESTIMATOR_FORMAT_VERSION", "to_json", "from_json", "save", "load"]

#: metadata key of a model file that holds the estimator's record
ESTIMATOR_KEY = "sklearn_estimator"
#: 2 adds ``"contract"`` (the data contract of an estimator fitted on a DataFrame); a file without one is
#: written as version 1, which older deltaprop versions read too
ESTIMATOR_FORMAT_VERSION = 2


# ------------------------------------------------------- parameters as JSON
def to_json(value):
    """A parameter value as JSON data, or raise TypeError (for the parameters in a model file).

    Tuples become ``{"__tuple__": [...]}`` and dicts with keys that are not
    all strings (``class_weight={0: 2.0}``) ``{"__items__": [[key, value], ...]}``,
    so that :func:`from_json` gives back equal values; objects with
    ``get_config`` (an optimizer, a schedule, a loss) become their config.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, tuple):
        return {"__tuple__": [to_json(v) for v in value]}
    if isinstance(value, (list, np.ndarray)):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and not {"__tuple__", "__items__"} & set(value):
            return {k: to_json(v) for k, v in value.items()}
        return {"__items__": [[to_json(k), to_json(v)] for k, v in value.items()]}
    if callable(getattr(value, "get_config", None)):
        return to_json(value.get_config())
    raise TypeError(f"not JSON data: {describe(value)}")


def from_json(value):
    """Inverse of :func:`to_json`; TypeError for a malformed marker."""
    if isinstance(value, list):
        return [from_json(v) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"__tuple__"}:
        if not isinstance(value["__tuple__"], list):
            raise TypeError("__tuple__ must hold a list")
        return tuple(from_json(v) for v in value["__tuple__"])
    if set(value) == {"__items__"}:
        items = value["__items__"]
        if not isinstance(items, list) or not all(isinstance(kv, list) and len(kv) == 2 for kv in items):
            raise TypeError("__items__ must hold [key, value] pairs")
        return {from_json(k): from_json(v) for k, v in items}  # an unhashable key raises TypeError
    return {k: from_json(v) for k, v in value.items()}


def _floats(values):
    return None if values is None else [float(v) for v in values]


# -------------------------------------------------------------------- save
def save(estimator, path):
    """Write the fitted ``estimator``'s network and record to ``path`` (see :meth:`_DeltapropMLP.save`)."""
    params, unsaved = {}, []
    for key, value in estimator.get_params(deep=False).items():
        try:
            params[key] = to_json(value)
        except TypeError:
            unsaved.append(key)
    names = getattr(estimator, "feature_names_in_", None)
    contract = getattr(estimator, "contract_", None)
    record = {
        "format_version": 1 if contract is None else 2,
        "estimator": type(estimator).__name__,
        "params": params,
        "unsaved_params": unsaved,
        "n_features_in": int(estimator.n_features_in_),
        "feature_names_in": None if names is None else [str(s) for s in names],
        "loss_curve": _floats(estimator.loss_curve_),
        "validation_scores": _floats(estimator.validation_scores_),
        "validation_loss_curve": _floats(estimator.validation_loss_curve_),
        **estimator._extra_state(),
    }
    if contract is not None:
        record["contract"] = contract.state()
    save_model(estimator.network_, path, classes=estimator._file_classes(), config=params,
               extra={ESTIMATOR_KEY: record})


# -------------------------------------------------------------------- load
def load(cls, path):
    """The estimator of class ``cls`` that ``path`` records, with its network and the rest of the record.

    Returns
    -------
    estimator : cls
        Built from the saved parameters, with ``n_features_in_`` (and
        ``feature_names_in_``) set; the caller sets up the rest of the
        fitted state.
    network : deltaprop.Network
    record : dict
        The estimator's record (for the class's own fields).
    curves : dict
        ``loss_curve``, ``validation_scores`` and ``validation_loss_curve``
        (lists of float; the last two may be None).

    Raises
    ------
    deltaprop.ModelFileError
        Not a model file, not saved by an estimator of class ``cls``, or a
        malformed record.
    """
    path = os.fspath(path)
    network = load_model(path)
    record = _read_record(cls, path, network)
    estimator = _build_estimator(cls, path, record)
    contract = contract_from_state(path, record.get("contract"), network)
    n_in = record.get("n_features_in")
    if not isinstance(n_in, int) or isinstance(n_in, bool) or n_in < 1:
        raise ModelFileError(f"{path}: n_features_in must be a positive int, got {describe(n_in)}")
    if contract is None and n_in != network.n_in:
        raise ModelFileError(f"{path}: n_features_in {n_in!r} does not match the network's {network.n_in} inputs")
    if contract is not None and n_in < len(contract.schema.names):
        raise ModelFileError(f"{path}: n_features_in {n_in!r} is less than the data contract's "
                             f"{len(contract.schema.names)} columns")
    names = record.get("feature_names_in")
    if names is not None:
        if not isinstance(names, list) or len(names) != n_in or not all(isinstance(s, str) for s in names):
            raise ModelFileError(f"{path}: feature_names_in must be a list of {n_in} strings")
        estimator.feature_names_in_ = np.asarray(names, dtype=object)
    estimator.n_features_in_ = n_in
    estimator.contract_ = contract
    if getattr(network, "preprocessing", None) is not None:
        raise ModelFileError(f"{path}: has preprocessing, which an estimator does not apply; use deltaprop.load")
    curves = {"loss_curve": _curve(path, record, "loss_curve", allow_none=False),
              "validation_scores": _curve(path, record, "validation_scores", allow_none=True),
              "validation_loss_curve": _curve(path, record, "validation_loss_curve", allow_none=True)}
    return estimator, network, record, curves


def _read_record(cls, path, network):
    """The estimator's record from the file's metadata, its version and class checked."""
    record = json_field(path, network.metadata, ESTIMATOR_KEY, dict, required=False)
    if record is None:
        raise ModelFileError(
            f"{path}: not saved by a deltaprop estimator (no {ESTIMATOR_KEY!r} metadata); load it with deltaprop.load"
        )
    version = record.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= ESTIMATOR_FORMAT_VERSION:
        raise ModelFileError(f"{path}: estimator format_version {version!r} is not one this deltaprop reads")
    if record.get("estimator") != cls.__name__:
        raise ModelFileError(f"{path}: saved by {record.get('estimator')!r}, not {cls.__name__}; "
                             f"load it with that class")
    return record


def _build_estimator(cls, path, record):
    """``cls(**saved parameters)``; parameters it does not take, or malformed ones, are a ModelFileError."""
    params = record.get("params")
    if not isinstance(params, dict):
        raise ModelFileError(f"{path}: estimator params must be a JSON object")
    unknown = set(params) - set(cls().get_params(deep=False))
    if unknown:
        raise ModelFileError(f"{path}: unknown estimator parameters {sorted(unknown)}")
    try:
        estimator = cls(**{k: from_json(v) for k, v in params.items()})
        estimator._check_params()  # what fit would refuse, refused when the file is loaded
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path}: malformed estimator parameters ({exc})") from None
    return estimator


def _curve(path, record, key, allow_none):
    value = record.get(key)
    if value is None and allow_none:
        return None
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise ModelFileError(f"{path}: {key} must be a list of numbers")
    return [float(v) for v in value]

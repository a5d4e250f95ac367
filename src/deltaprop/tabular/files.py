"""Model files that carry a data contract, and the one loader behind :func:`deltaprop.load`.

A file written by :meth:`TabularModel.save` (and ``deltaprop train``) is a
model file (:mod:`deltaprop.io`) of format version 2 with these metadata
entries beside the network's: ``data_contract`` (the schema, the target and the
missing-value tokens, :meth:`DataContract.state`), ``history`` and ``test``.
Every entry is validated before use (:func:`deltaprop.validate.validate_model_metadata`
and :meth:`DataContract.from_state`), so a file from a stranger is refused with a
:class:`~deltaprop.errors.ModelFileError` naming the problem, never half-used.

:func:`load_model` gives back what was saved: a :class:`TabularModel` for a
file with a data contract, the bare :class:`deltaprop.Network` for a file of a
network alone. A file written before data contracts existed (format version
1, by ``deltaprop train``) holds its feature scaling and labels in other
entries: it is read into a numeric contract, so it predicts as it always did.
"""

import os

import numpy as np

from .. import io
from ..data import Scaler
from ..errors import DeltapropError, ModelFileError
from ..tensorfile import json_field
from .contract import DataContract
from .model import CONTRACT_KEY, TabularModel
from .schema import NumericColumn, Schema, Target

__all__ = ["save_model", "load_model", "numeric_contract", "CONTRACT_KEY"]


def save_model(model, path):
    """Write ``model`` (a TabularModel) to ``path`` atomically; see the module's docstring."""
    model.save(path)


def load_model(path, as_tabular=False):
    """Load a model file: a TabularModel where it carries a data contract, else the Network.

    Parameters
    ----------
    path : str or path-like
    as_tabular : bool, default False
        Give a TabularModel for every file: a file of a network alone gets a
        numeric contract of ``n_in`` unnamed columns (matched by position) and
        no scaling (what the command line needs).
    """
    path = os.fspath(path)
    net = io.load(path)
    meta = net.metadata
    if CONTRACT_KEY in meta:
        state = json_field(path, meta, CONTRACT_KEY, dict)
        try:
            contract = DataContract.from_state(state)
            model = TabularModel(net, contract, config=net.run_config, history=_json(path, meta, "history", list),
                                 test=_json(path, meta, "test", dict),
                                 overrides=_json(path, meta, "overrides", list))
        except DeltapropError as exc:
            raise ModelFileError(f"{path}: the data contract is invalid: {exc}") from None
        _check_classes(path, model, net)
        model.written_by = _json(path, meta, "library_version", str)
        return model
    legacy = _legacy_contract(path, net)
    if legacy is None and not as_tabular:
        return net
    bare = legacy is None
    if bare:
        legacy = numeric_contract(None, None, net.n_in, "prediction", _task_of(net), _classes_of(net), None)
    try:
        model = TabularModel(net, legacy, config=net.run_config, history=_json(path, meta, "history", list),
                             test=_json(path, meta, "test", dict))
    except DeltapropError as exc:
        raise ModelFileError(f"{path}: its preprocessing metadata does not fit the network: {exc}") from None
    model.target_stored = not bare  # a network alone names no target: a data file's last column is taken
    model.written_by = _json(path, meta, "library_version", str)
    return model


def _json(path, meta, key, kind):
    return json_field(path, meta, key, kind, required=False)


def _check_classes(path, model, net):
    if model.task == "classification" and net.classes is not None and list(net.classes) != model.classes:
        raise ModelFileError(f"{path}: the classes entry and the data contract's labels differ")


def _task_of(net):
    return "classification" if getattr(net.loss, "task", None) == "classification" or net.classes is not None \
        else "regression"


def _classes_of(net):
    if net.classes is not None:
        return list(net.classes)
    if _task_of(net) == "classification":
        return list(range(2 if net.n_out == 1 else net.n_out))
    return None


def _legacy_contract(path, net):
    """The numeric contract of a format-1 file written by ``deltaprop train`` (None for a bare network)."""
    meta = net.metadata
    extra_keys = ("task", "target_scaling", "feature_names", "target_name", "class_names")
    if net.preprocessing is None and not any(k in meta for k in extra_keys):
        return None
    try:
        scaler = None if net.preprocessing is None else Scaler.from_state(*net.preprocessing)
        names = _json(path, meta, "feature_names", list)
        target_name = _json(path, meta, "target_name", str) or "prediction"
        task = _json(path, meta, "task", str) or _task_of(net)
        stored = _json(path, meta, "target_scaling", dict)
        target_scaler = None
        if stored is not None:
            target_scaler = Scaler.from_state({"kind": stored["kind"], "n_features": stored["n_features"]},
                                              {"offset": np.asarray(stored["offset"], dtype=np.float64),
                                               "scale": np.asarray(stored["scale"], dtype=np.float64)})
        return numeric_contract(scaler, names, net.n_in, target_name, task,
                                _classes_of(net) if task == "classification" else None, target_scaler,
                                class_names=_json(path, meta, "class_names", list))
    except (KeyError, TypeError, ValueError, DeltapropError) as exc:
        raise ModelFileError(f"{path}: its preprocessing metadata is invalid ({exc})") from None


def numeric_contract(scaler, names, n_features, target_name, task, classes, target_scaler, class_names=None):
    """A contract of numeric columns scaled by a fitted :class:`~deltaprop.data.Scaler` (or none).

    ``names`` None means the columns have no names (an NPY file, a bare
    network): they are called ``x0, x1, ...`` and matched by position.
    """
    if scaler is not None:
        n_features = scaler.n_features_in_
    offset = np.zeros(n_features) if scaler is None else scaler.offset_
    scale = np.ones(n_features) if scaler is None else scaler.scale_
    positional = names is None
    names = [f"x{j}" for j in range(n_features)] if positional else [str(n) for n in names]
    columns = [NumericColumn(name, 0.0, False, float(o), float(s)) for name, o, s in zip(names, offset, scale)]
    schema = Schema(columns, scale="none" if scaler is None else scaler.kind)
    schema.positional = positional
    target = Target.from_parts(target_name, task, classes=classes, class_names=class_names,
                               offset=None if target_scaler is None else float(target_scaler.offset_[0]),
                               scale=None if target_scaler is None else float(target_scaler.scale_[0]))
    return DataContract(schema, target)

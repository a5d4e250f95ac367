"""A model file as the commands use it, chunked prediction, and test scores.

:class:`LoadedModel` is a network loaded from a model file with what
``deltaprop train`` stored beside it (task, classes, feature and target
scaling, training configuration). :func:`predict` feeds raw features through
the feature scaler and the network a chunk of rows at a time, so a
memory-mapped input of any size works. :func:`evaluate_outputs` gives the numbers
``train`` and ``evaluate`` print: the loss, and accuracy or R², RMSE and MAE,
computed by :mod:`deltaprop.metrics`.
"""

import json
import math
import os

import numpy as np

from .. import metrics
from ..data import Scaler
from ..errors import DataError, DeltapropError
from ..io import load
from .common import loss_targets

__all__ = ["LoadedModel", "predict", "evaluate_outputs", "score_outputs", "format_scores"]

#: Rows scaled and predicted at once by :func:`predict`.
CHUNK_ROWS = 16384

#: Keys of the model file's metadata that ``deltaprop train`` writes as JSON.
_EXTRA_KEYS = ("task", "class_names", "target_scaling", "target_name", "feature_names", "history", "test")


def predict(net, scaler, X, rows=None, chunk=CHUNK_ROWS):
    """Network outputs for raw features ``X`` (or its rows ``rows``), scaled a chunk at a time.

    Parameters
    ----------
    net : Network
    scaler : Scaler or None
        The feature scaling fitted in training.
    X : array-like of shape (n_samples, n_in)
        Raw features; may be a ``numpy.memmap``: only ``chunk`` rows are in
        memory at once.
    rows : ndarray of int, optional
        The rows of ``X`` to predict (default: all).

    Returns
    -------
    ndarray of shape (n_rows, n_out), the network's dtype
    """
    n = X.shape[0] if rows is None else len(rows)
    out = np.empty((n, net.n_out), dtype=net.dtype)
    for start in range(0, n, chunk):
        block = X[start:start + chunk] if rows is None else X[rows[start:start + chunk]]
        block = scaler.transform(block, dtype=net.dtype) if scaler is not None else np.asarray(block, net.dtype)
        out[start:start + block.shape[0]] = net.predict(block)
    return out


def evaluate_outputs(net, task, target_encoding, outputs, y, codes, target_scaler):
    """The loss (in the network's units) and the scores (in the targets' units) of ``outputs`` for ``y``.

    Parameters
    ----------
    outputs : ndarray of shape (n_samples, n_out)
        The network's outputs (see :func:`predict`).
    y : ndarray of shape (n_samples,) or (n_samples, n_targets)
        The targets, in their original units (class labels or values).
    codes : ndarray of int of shape (n_samples,) or None
        Class indices of ``y`` (classification).
    target_scaler : Scaler or None
        The target standardisation of a regression model.

    Returns
    -------
    scores : dict
        See :func:`score_outputs`.
    predicted : ndarray of int of shape (n_samples,) or None
        Predicted class indices (classification).
    """
    T = loss_targets(task, target_encoding, net.n_out, net.dtype, y, codes, target_scaler)
    loss_value = float(np.mean(net.loss.value(outputs, net.prepare_targets(T))))
    if target_scaler is not None:
        outputs = target_scaler.inverse_transform(outputs)
    return score_outputs(task, outputs, y, codes, loss_value, net.loss.decision_threshold)


def score_outputs(task, P, y_true, codes, loss_value, threshold=0.5):
    """Test-set numbers: the loss and accuracy, or R², RMSE and MAE (original units).

    Parameters
    ----------
    P : ndarray of shape (n_samples, n_out)
        Outputs in the targets' units.
    threshold : float
        The loss's decision threshold for one output
        (:func:`deltaprop.metrics.predicted_classes`).

    Returns
    -------
    scores : dict
        ``{"loss", "samples", "accuracy"}`` or ``{"loss", "samples", "r2",
        "rmse", "mae"}``.
    predicted : ndarray of int of shape (n_samples,) or None
    """
    out = {"loss": loss_value, "samples": int(P.shape[0])}
    if task == "classification":
        pred = metrics.predicted_classes(P, threshold)
        out["accuracy"] = float(np.mean(pred == codes))
        return out, pred
    y = np.asarray(y_true, dtype=np.float64).reshape(P.shape[0], -1)
    P = P.astype(np.float64)
    w = np.ones(P.shape[0])
    found = {}
    for metric in (metrics.R2(), metrics.MeanSquaredError(), metrics.MeanAbsoluteError()):
        metric.reset(P.shape[1])
        metric.update(P, y, w)
        found[metric.name] = metric.result()
    out.update(r2=found["r2"], rmse=math.sqrt(found["mse"]), mae=found["mae"])
    return out, None


def format_scores(scores):
    """``loss 0.1234, accuracy 0.9600`` (or R², rmse and mae)."""
    parts = [f"loss {scores['loss']:.4f}"]
    for key in ("accuracy", "r2", "rmse", "mae"):
        if key in scores:
            parts.append(f"{'R²' if key == 'r2' else key} {scores[key]:.4f}")
    return ", ".join(parts)


class LoadedModel:
    """A loaded model file with what the command line stored beside the network.

    Parameters
    ----------
    path : str
        A model file written by ``deltaprop train`` or :func:`deltaprop.save`.

    Attributes
    ----------
    net : Network
    config : dict
        The training configuration (empty for a file saved by the library).
    extra : dict
        The JSON metadata ``deltaprop train`` writes (task, class names,
        target scaling, target and feature names, history, test scores).
    task : {"classification", "regression"}
    classes : list or None
        The class labels (``0..k-1`` when the file holds none).
    class_names : list of str or None
    scaler, target_scaler : Scaler or None
    """

    def __init__(self, path):
        if not os.path.exists(path):
            raise DataError(f"{path}: no such model file")
        self.path = path
        self.net = net = load(path)
        self.config = net.run_config or {}
        self.extra = {}
        for key in _EXTRA_KEYS:
            if key in net.metadata:
                try:
                    self.extra[key] = json.loads(net.metadata[key])
                except ValueError:
                    raise DataError(f"{path}: metadata {key!r} is not valid JSON") from None
        self.classes = net.classes
        task = self.extra.get("task")
        if task not in ("classification", "regression"):  # a file written by deltaprop.save alone
            classify = self.classes is not None or getattr(net.loss, "task", None) == "classification"
            task = "classification" if classify else "regression"
        self.task = task
        if task == "classification" and self.classes is None:
            self.classes = list(range(2 if net.n_out == 1 else net.n_out))
        self.scaler = None if net.preprocessing is None else Scaler.from_state(*net.preprocessing)
        self.target_scaler = self._target_scaler(self.extra.get("target_scaling"))
        names = self.extra.get("class_names")
        self.class_names = names if isinstance(names, list) and self.classes and len(names) == len(self.classes) \
            else None

    def _target_scaler(self, stored):
        if stored is None:
            return None
        try:
            return Scaler.from_state(
                {"kind": stored["kind"], "n_features": stored["n_features"]},
                {"offset": np.asarray(stored["offset"], dtype=np.float64),
                 "scale": np.asarray(stored["scale"], dtype=np.float64)},
            )
        except (KeyError, TypeError, DeltapropError) as exc:
            raise DataError(f"{self.path}: invalid target_scaling metadata ({exc})") from None

    def display_names(self):
        """Class labels for a person: ``"0 setosa"`` where a class has a name, else the label."""
        if self.classes is None:
            return None
        if self.class_names is not None:
            return [f"{c} {n}" if str(c) != str(n) else str(c) for c, n in zip(self.classes, self.class_names)]
        return [str(c) for c in self.classes]

    def target_encoding(self):
        """How the targets reach the loss (see :func:`deltaprop.losses.choose_output`)."""
        if self.task == "regression":
            return "real"
        return "index" if getattr(self.net.loss, "task", None) == "classification" else "onehot"

    def outputs(self, X):
        """Predictions (n_samples, n_out) in the target's units: probabilities/scores, or regression values."""
        P = predict(self.net, self.scaler, X)
        if self.target_scaler is not None:
            P = self.target_scaler.inverse_transform(P)
        return P

    def predicted_classes(self, P):
        """Class index of each row of outputs ``P`` (see :func:`deltaprop.metrics.predicted_classes`)."""
        return metrics.predicted_classes(P, self.net.loss.decision_threshold)

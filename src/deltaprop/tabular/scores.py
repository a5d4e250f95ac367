"""Test scores of a model: the loss in the network's units, accuracy or R², RMSE and MAE in the target's.

One home for the numbers ``deltaprop train`` prints after training, ``deltaprop
evaluate`` prints for a file and :meth:`TabularModel.evaluate` returns.
"""

import math

import numpy as np

from .. import metrics

__all__ = ["score_table", "score_encoded", "score_outputs", "format_scores", "class_targets", "loss_targets",
           "target_encoding"]


def target_encoding(network, task):
    """How targets reach ``network``'s loss: ``"real"``, ``"index"`` or ``"onehot"``."""
    if task == "regression":
        return "real"
    return "index" if getattr(network.loss, "task", None) == "classification" else "onehot"


def class_targets(encoding, n_out, codes, dtype):
    """Class indices ``codes`` (m,) as the loss takes them.

    Returns ``codes`` (m,) for ``"index"`` with several outputs, or as
    ``dtype`` 0/1 values (m,) for one output; one-hot rows (m, n_out) for
    ``"onehot"`` (a column (m, 1) of 0/1 for one output).
    """
    if encoding == "index":
        return codes if n_out > 1 else codes.astype(dtype)
    if n_out == 1:
        return codes.astype(dtype).reshape(-1, 1)
    return np.eye(n_out, dtype=dtype)[codes]


def loss_targets(network, task, encoded):
    """Encoded targets (class indices, or scaled values (m, k)) as ``network``'s loss takes them."""
    if task == "classification":
        return class_targets(target_encoding(network, task), network.n_out, encoded, network.dtype)
    return np.asarray(encoded, dtype=network.dtype).reshape(len(encoded), -1)


def target_column(y):
    """Raw target values as a table column: float64 numbers (NaN missing), or an object array of str."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind in "biuf":
        return y.astype(np.float64)
    return np.array([None if v is None else str(v) for v in y.ravel()], dtype=object).reshape(y.shape)


def network_outputs(model, table, report=None, chunk=16384):
    """The network's own outputs (scaled units for regression) for every row of ``table``, shape (n_rows, n_out).

    Rows are encoded and predicted ``chunk`` at a time, to bound memory; a table of one chunk (a few rows) is
    encoded whole, with no row selection, and its predictions are returned as they come.
    """
    net = model.network
    if table.n_rows <= chunk:
        return net.predict(model.contract.inputs(table, net.dtype, report=report))
    out = np.empty((table.n_rows, net.n_out), dtype=net.dtype)
    for start in range(0, table.n_rows, chunk):
        rows = np.arange(start, min(start + chunk, table.n_rows))
        out[start:start + len(rows)] = net.predict(model.contract.inputs(table, net.dtype, rows=rows,
                                                                         report=report))
    return out


def score_table(model, table, report=None, y=None):
    """Scores of ``model`` on a raw table that holds the target column (or on raw features and targets ``y``).

    ``table`` may be any raw input :func:`~deltaprop.tabular.read_table` takes
    (an array of features, a DataFrame, ...) when ``y`` is given.

    Returns
    -------
    scores : dict
        See :func:`score_outputs`.
    predicted : ndarray of int or None
        Predicted class indices (classification).
    codes : ndarray of int or None
        True class indices (classification).
    """
    if not hasattr(table, "named"):
        table = model.contract.read(table)
    encoded = model.contract.targets(table) if y is None else model.target.encode(target_column(y))
    outputs = network_outputs(model, table, report)
    return score_encoded(model.network, model.target, outputs, encoded)


def score_encoded(net, target, outputs, encoded):
    """Scores of the network's ``outputs`` (its own units) for encoded targets (class indices or scaled values).

    Returns ``(scores, predicted, codes)`` as :func:`score_table`.
    """
    loss_value = float(np.mean(net.loss.value(outputs, net.prepare_targets(loss_targets(net, target.task,
                                                                                         encoded)))))
    if target.task == "classification":
        scores, pred = score_outputs("classification", outputs, None, encoded, loss_value,
                                     net.loss.decision_threshold)
        return scores, pred, encoded
    values = target.decode(outputs)
    y_true = target.decode(np.asarray(encoded, dtype=np.float64).reshape(len(encoded), -1))
    scores, _ = score_outputs("regression", values, y_true, None, loss_value)
    return scores, None, None


def score_outputs(task, P, y_true, codes, loss_value, threshold=0.5):
    """Test-set numbers: the loss and accuracy, or R², RMSE and MAE (original units).

    Parameters
    ----------
    P : ndarray of shape (n_samples, n_out)
        Outputs in the targets' units.
    y_true : ndarray of shape (n_samples,) or (n_samples, n_targets) or None
        Regression targets in their units.
    codes : ndarray of int of shape (n_samples,) or None
        True class indices.
    threshold : float
        The loss's decision threshold for one output
        (:func:`deltaprop.metrics.predicted_classes`).

    Returns
    -------
    scores : dict
        ``{"loss", "samples", "accuracy"}`` or ``{"loss", "samples", "r2", "rmse", "mae"}``.
    predicted : ndarray of int of shape (n_samples,) or None
    """
    out = {"loss": loss_value, "samples": int(P.shape[0])}
    if task == "classification":
        pred = metrics.predicted_classes(P, threshold)
        out["accuracy"] = float(np.mean(pred == codes))
        return out, pred
    y = np.asarray(y_true, dtype=np.float64).reshape(P.shape[0], -1)
    P = P.astype(np.float64)
    # Squares of values near 1e200 overflow: score in units of the largest magnitude (R² has no unit), then
    # give RMSE and MAE back in the target's units. Ordinary targets (c = 1) are scored as they are.
    with np.errstate(over="ignore", invalid="ignore"):
        c = float(max(np.max(np.abs(y)), np.max(np.abs(P))))
    c = c if math.isfinite(c) and c > 1e100 else 1.0
    w = np.ones(P.shape[0])
    found = {}
    for metric in (metrics.R2(), metrics.MeanSquaredError(), metrics.MeanAbsoluteError()):
        metric.reset(P.shape[1])
        metric.update(P / c, y / c, w)
        found[metric.name] = metric.result()
    out.update(r2=found["r2"], rmse=math.sqrt(found["mse"]) * c, mae=found["mae"] * c)
    return out, None


def format_scores(scores):
    """``loss 0.1234, accuracy 0.9600`` (or R², rmse and mae)."""
    parts = [f"loss {scores['loss']:.4f}"]
    for key in ("accuracy", "r2", "rmse", "mae"):
        if key in scores:
            parts.append(f"{'R²' if key == 'r2' else key} {scores[key]:.4f}")
    return ", ".join(parts)

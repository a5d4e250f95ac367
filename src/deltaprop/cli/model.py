"""A model file as the commands use it, and chunked prediction.

Every model file opens as a :class:`deltaprop.tabular.TabularModel`, the
network with its data contract (:func:`deltaprop.tabular.load_model`): a file
written by ``deltaprop train`` carries one; an older file, or a bare network
saved with :func:`deltaprop.save`, is given a numeric contract read from what
it stores. :func:`array_outputs` predicts a large (memory-mapped) array a
chunk of rows at a time.
"""

import os

import numpy as np

from ..errors import DataError
from ..tabular import load_model, read_table

__all__ = ["open_model", "predict", "array_outputs", "display_names", "CHUNK_ROWS"]

#: Rows scaled and predicted at once.
CHUNK_ROWS = 16384


def open_model(path):
    """The model file at ``path`` as a TabularModel (a missing file is a DataError naming it)."""
    if not os.path.exists(path):
        raise DataError(f"{path}: no such model file")
    return load_model(path, as_tabular=True)


def predict(net, scaler, X, rows=None, chunk=CHUNK_ROWS):
    """Network outputs for features ``X`` (or its rows ``rows``), scaled a chunk at a time.

    Parameters
    ----------
    net : Network
    scaler : Scaler or None
        The feature scaling fitted in training (None: ``X`` is the network's input already).
    X : array-like of shape (n_samples, n_in)
        May be a ``numpy.memmap`` (only ``chunk`` rows are in memory at once)
        or a matrix-like input (OneHotMatrix).

    Returns
    -------
    ndarray of shape (n_rows, n_out), the network's dtype
    """
    n = X.shape[0] if rows is None else len(rows)
    out = np.empty((n, net.n_out), dtype=net.dtype)
    for start in range(0, n, chunk):
        block = X[start:start + chunk] if rows is None else X[rows[start:start + chunk]]
        if scaler is not None:
            block = scaler.transform(block, dtype=net.dtype)
        out[start:start + block.shape[0]] = net.predict(block)
    return out


def array_outputs(model, X, report=None, chunk=CHUNK_ROWS):
    """``model``'s outputs (target units) for a numeric array of raw features, a chunk of rows at a time."""
    n = X.shape[0]
    out = None
    for start in range(0, n, chunk):
        block = model.outputs(read_table(np.asarray(X[start:start + chunk])), report=report)
        if out is None:
            out = np.empty((n, block.shape[1]), dtype=block.dtype)
        out[start:start + block.shape[0]] = block
    if out is None:
        raise DataError("no rows to predict")
    return out


def display_names(model):
    """Class labels for a person: ``"0 setosa"`` where a class has a name, else the label."""
    classes = model.classes
    if classes is None:
        return None
    names = model.target.class_names
    if names is not None:
        return [f"{c} {n}" if str(c) != str(n) else str(c) for c, n in zip(classes, names)]
    return [str(c) for c in classes]

"""ONNX export: one file that predicts what the model predicts, its data contract included.

::

    import deltaprop as dp
    model = dp.load("penguins.safetensors")           # a TabularModel
    dp.export_onnx(model, "penguins.onnx")             # one input per column, labels and probabilities out

    import onnxruntime as ort
    session = ort.InferenceSession("penguins.onnx")
    label, proba = session.run(None, {"island": [["Biscoe"]], "bill_length_mm": [[45.1]], ...})

The command line: ``deltaprop export MODEL --onnx model.onnx``.

What is exported: a :class:`~deltaprop.tabular.TabularModel` (the network,
its data contract and its target: labels or values in the original units),
a :class:`~deltaprop.Network` (its outputs), and a fitted
:class:`~deltaprop.estimators.DeltapropClassifier` or
:class:`~deltaprop.estimators.DeltapropRegressor` (what ``predict`` and
``predict_proba`` give; inside a scikit-learn pipeline, use skl2onnx's
``to_onnx``, for which deltaprop registers converters:
:mod:`deltaprop.estimators._onnx`). Inputs and outputs are described in
:mod:`deltaprop.export.contract`; the layers and activations in
:mod:`deltaprop.export.network`.

The file is ONNX opset :data:`OPSET` (``ai.onnx.ml`` opset :data:`ML_OPSET`
where a categorical column needs ``LabelEncoder``), IR version 8, with a
dynamic batch dimension ``N``; ``opset=`` chooses another from 13 to 21. It
passes ``onnx.checker.check_model(..., full_check=True)`` before it is
written (atomically). A part with no exact ONNX form (a user's own
activation or layer) is refused with a message that names it.

``onnx`` (and ``onnxruntime`` to run the file) come with the ``onnx`` extra:
``pip install 'deltaprop[onnx]'``.
"""

import os

from ..atomic import atomic_write
from ..errors import InvalidTypeError, describe
from .contract import Head, default_inputs, describe_io, onnx_feeds, tabular_head, write_head, write_inputs
from .graph import ML_OPSET, OPSET, Graph, onnx_modules
from .network import network_graph, register_layer

__all__ = ["export_onnx", "to_onnx", "onnx_feeds", "register_layer", "model_parts", "build", "Head", "Graph",
           "OPSET", "ML_OPSET"]


def model_parts(model):
    """``(network, contract or None, head)`` of a TabularModel, a Network or a fitted estimator.

    An object with a ``_onnx_parts()`` method (the estimators) gives its own.
    """
    if hasattr(model, "_onnx_parts"):
        return model._onnx_parts()
    if hasattr(model, "contract") and hasattr(model, "network"):  # a TabularModel
        return model.network, model.contract, tabular_head(model.network, model.contract.target)
    if hasattr(model, "layers") and hasattr(model, "n_in") and hasattr(model, "dtype"):  # a Network
        return model, None, Head("outputs")
    raise InvalidTypeError(f"export_onnx takes a TabularModel (deltaprop.load), a Network or a fitted "
                           f"DeltapropClassifier/DeltapropRegressor, got {describe(model)}")


def build(g, x, network, contract, head, inputs):
    """Write inputs (unless ``x``, an existing value, is given), contract, network and head into graph ``g``."""
    if x is None:
        x = write_inputs(g, network, contract, inputs)
    write_head(g, network_graph(g, x, network), network, head)
    return g


def to_onnx(model, *, inputs=None, opset=OPSET):
    """The ONNX ``ModelProto`` of ``model``, checked by ``onnx.checker`` (see the module notes).

    Parameters
    ----------
    model : TabularModel, Network, DeltapropClassifier or DeltapropRegressor
    inputs : {"columns", "matrix"}, optional
        One input per feature column, or one matrix ``X`` (the only choice
        for a network or an estimator fitted on an array). Default: one
        matrix where every feature is a number, one input per column where
        some are categorical (:func:`~deltaprop.export.contract.default_inputs`).
    opset : int, default OPSET

    Raises
    ------
    InvalidArgumentError
        onnx is not installed; a layer or activation with no exact ONNX form;
        ``inputs="matrix"`` with categorical columns.
    """
    onnx, _, _ = onnx_modules()
    network, contract, head = model_parts(model)
    inputs = default_inputs(contract) if inputs is None else inputs
    g = build(Graph(opset, reserved=head.output_names()), None, network, contract, head, inputs)
    doc = (f"deltaprop {type(model).__name__}: {network!r}; inputs {inputs!r}. Computes what its predict "
           f"computes (tests/test_export_onnx.py).")
    proto = g.model(doc=doc, metadata={"deltaprop.io": describe_io(g, network, contract, head)})
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export_onnx(model, path, *, inputs=None, opset=OPSET):
    """Write ``model`` as an ONNX file at ``path`` (atomically); returns the ``ModelProto``.

    See :func:`to_onnx` for the parameters. The file opens in any ONNX
    runtime; ``onnxruntime.InferenceSession(path).run(None, feeds)`` gives
    the outputs described in :mod:`deltaprop.export.contract`.
    """
    proto = to_onnx(model, inputs=inputs, opset=opset)
    with atomic_write(os.fspath(path), "wb") as f:  # a folder or a failed write: a SaveError, the old file intact
        f.write(proto.SerializeToString())
    return proto

"""skl2onnx converters for :class:`DeltapropClassifier` and :class:`DeltapropRegressor`: pipelines convert unchanged.

::

    from skl2onnx import to_onnx
    from deltaprop.estimators import DeltapropClassifier, register_skl2onnx

    register_skl2onnx()  # once per process, before to_onnx
    pipe = make_pipeline(ColumnTransformer(...), DeltapropClassifier(dtype="float32")).fit(X, y)
    onx = to_onnx(pipe, initial_types=[...], options={id(pipe[-1]): {"zipmap": False}})

Registration. skl2onnx converts a model it knows a converter for, and it
has no plugin mechanism that finds deltaprop's by itself. Importing
:mod:`deltaprop.estimators` does not import skl2onnx (it is slow to import
and optional), so :func:`register_skl2onnx` registers the converters: call
it once before ``to_onnx``; it is idempotent. Where skl2onnx is already
imported when :mod:`deltaprop.estimators` is, the import registers them.
Otherwise a conversion without them stops at the estimator with an error
that says to call :func:`register_skl2onnx` (the estimators' ``onnx_parser``
hook, which skl2onnx calls while it reads a model), rather than skl2onnx's
general "unable to find a shape calculator".

What the converters write is :func:`deltaprop.export.to_onnx`'s network and
head (layers, activations and the class decision as ``predict`` computes
them: ``tests/test_export_sklearn.py`` measures how closely), written into
skl2onnx's container through :class:`ContainerGraph`, with skl2onnx's
conventions for the outputs, so that the file reads like one of any
scikit-learn model:

- the input may be float, double, int64 or bool (skl2onnx's choice from the
  initial types and the steps before); it is cast to the network's dtype,
  as ``predict`` does with its ``X``;
- a classifier has two outputs, ``label`` (N,) (as ``predict``: int64,
  string, double or bool labels; option ``nocl``: the class index) and
  ``probabilities`` (N, n_classes), which skl2onnx turns into a list of
  dicts (``ZipMap``) unless the option ``zipmap`` is False (or
  ``"columns"``: one output per class). A hinge loss has no probabilities:
  the second output holds the margins, ``[-m, m]`` for two classes (column 1
  is ``decision_function``), as skl2onnx writes a binary linear
  classifier. A multi-label classifier gives the indicator matrix (N, k) and
  each label's probability (N, k);
- a regressor has one output, (N, n_targets): (N, 1) for a 1-D ``y``,
  whose ``predict`` gives (N,), as skl2onnx writes every regressor;
- the probabilities, margins and predictions are in the input's float type
  (double for a double input, float otherwise), as skl2onnx writes any
  model's; the label is decided in the network's dtype, so it is
  ``predict``'s. A float64 network fed float inputs gives float outputs,
  and ONNX's ``ZipMap`` takes float probabilities only (use ``zipmap=False``
  with double inputs, as for any scikit-learn classifier).

An estimator fitted on a DataFrame through its data contract (``contract_``)
converts when skl2onnx hands it the raw columns: one input per column, named
as the column (``to_onnx(estimator, X=frame)`` declares them so; numeric
columns double, float or int64, categorical ones string), or, for a contract
whose columns are all numeric, one matrix of them in training order (the
output of the steps before). Anything else is refused with a message that
says why: the contract reads columns by name, which a matrix of encoded
features has lost.
"""

import copy
import sys

import numpy as np

from ..errors import InvalidArgumentError, describe
from ..export import build, model_parts
from ..export.contract import label_table
from ..export.graph import MAX_OPSET, MIN_OPSET, Graph

__all__ = ["register_skl2onnx", "register_if_loaded", "converted_by_skl2onnx", "onnx_parser_hook", "ContainerGraph",
           "CLASSIFIER_ALIAS", "REGRESSOR_ALIAS", "CLASSIFIER_OPTIONS"]

#: the names skl2onnx knows the converters by
CLASSIFIER_ALIAS, REGRESSOR_ALIAS = "DeltapropClassifier", "DeltapropRegressor"
#: the classifier's options, as every scikit-learn classifier's: ZipMap or not, labels or class indices
CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "nocl": [True, False]}

#: the ``ai.onnx.ml`` version of the nodes written (LabelEncoder with string keys), as skl2onnx's own converters
ML_VERSION = 2

_registered = False
_CONVERTED = {}  # alias -> estimator class (converted_by_skl2onnx)


# -------------------------------------------------------------- registration
def _skl2onnx():
    try:
        import skl2onnx
    except ImportError:
        raise InvalidArgumentError("converting a scikit-learn pipeline to ONNX needs skl2onnx: "
                                   "pip install 'deltaprop[onnx]' (onnx, onnxruntime and skl2onnx)") from None
    return skl2onnx


def register_skl2onnx():
    """Register the converters of DeltapropClassifier and DeltapropRegressor with skl2onnx (idempotent).

    After this, ``skl2onnx.to_onnx`` (and ``convert_sklearn``) converts the
    estimators, alone or in any pipeline, like a scikit-learn model (see the
    module notes for their inputs, outputs and options).

    Raises
    ------
    InvalidArgumentError
        skl2onnx is not installed.
    """
    global _registered
    skl2onnx = _skl2onnx()
    if _registered:
        return
    for alias, cls in _CONVERTED.items():
        if alias == CLASSIFIER_ALIAS:
            skl2onnx.update_registered_converter(cls, alias, _classifier_shapes, _convert, options=CLASSIFIER_OPTIONS)
        else:
            skl2onnx.update_registered_converter(cls, alias, _regressor_shapes, _convert)
    _registered = True


def converted_by_skl2onnx(alias):
    """Class decorator: :func:`register_skl2onnx` registers the class as ``alias``; it gets the ``onnx_parser`` hook.

    Used by the estimator modules, so that this one needs not import them.
    """
    if alias not in (CLASSIFIER_ALIAS, REGRESSOR_ALIAS):
        raise InvalidArgumentError(f"alias must be {CLASSIFIER_ALIAS!r} or {REGRESSOR_ALIAS!r}, got {describe(alias)}")

    def mark(cls):
        _CONVERTED[alias] = cls
        cls.onnx_parser = onnx_parser_hook
        return cls

    return mark


def register_if_loaded():
    """Register the converters when skl2onnx is already imported (it costs nothing then); else do nothing."""
    if "skl2onnx" in sys.modules:
        register_skl2onnx()


def onnx_parser_hook(estimator):
    """The estimators' ``onnx_parser`` method, which skl2onnx calls while it reads one: None (use skl2onnx's parser).

    Where skl2onnx knows no converter for the estimator's class (before
    :func:`register_skl2onnx`) it raises an error that says to call it,
    where skl2onnx would stop later on a missing shape calculator.
    """
    if not _registered and not _known_to_skl2onnx(type(estimator)):
        raise RuntimeError(f"skl2onnx has no converter for {type(estimator).__name__} yet: call "
                           f"deltaprop.estimators.register_skl2onnx() once before converting "
                           f"(from deltaprop.estimators import register_skl2onnx; register_skl2onnx())")
    return None


def _known_to_skl2onnx(cls):
    """Whether skl2onnx has a converter for ``cls`` (a user's own, registered without register_skl2onnx)."""
    try:
        _skl2onnx().get_model_alias(cls)
    except RuntimeError:
        return False
    return True


# --------------------------------------------------------------- the graph
class ContainerGraph(Graph):
    """A :class:`~deltaprop.export.graph.Graph` that writes into skl2onnx's container.

    Names come from skl2onnx's scope, constants become the container's
    initializers and nodes its nodes (each at the highest version the
    container's target opset allows); the head's outputs (``label``,
    ``probabilities`` or ``scores``, ``prediction``) are written into the
    operator's output variables, cast to the type their shape calculator
    declared; a data contract's inputs are the operator's inputs.

    Parameters
    ----------
    scope, operator, container : skl2onnx's
    outputs : dict of str to skl2onnx Variable
        The head's output name -> the operator's output variable.
    """

    def __init__(self, scope, operator, container, outputs):
        opset = container.target_opset
        if opset is None or opset < MIN_OPSET:
            raise InvalidArgumentError(f"deltaprop's converters need ONNX opset {MIN_OPSET} or later, got "
                                       f"target_opset={describe(opset)}")
        super().__init__(min(opset, MAX_OPSET))
        self.opset = opset  # later opsets keep the signatures of MAX_OPSET's for every operator written here
        self.scope, self.operator, self.container = scope, operator, container
        self.targets = outputs
        self.feeds = {}  # a data contract's input name -> the value that feeds it

    def name(self, hint):
        return self.scope.get_unique_variable_name(hint)

    def _add_initializer(self, name, array):
        if array.dtype.kind == "O":  # strings
            self.container.add_initializer(name, self.elem_type(str), list(array.shape),
                                           [str(v).encode("utf-8") for v in array.ravel()])
        else:
            tensor = self.numpy_helper.from_array(np.array(array, order="C"), name)
            self.container.add_initializer(name, tensor.data_type, list(array.shape), tensor)

    def _add_node(self, op_type, inputs, outputs, domain, version, attrs):
        if domain == "ai.onnx.ml" and version is None:
            version = ML_VERSION  # the container would take onnx's latest, which skl2onnx then refuses
        self.container.add_node(op_type, inputs, outputs, op_domain=domain, op_version=version,
                                name=self.scope.get_unique_operator_name(op_type), **attrs)

    def add_input(self, name, dtype, shape):
        """A data contract's input ``name``: the operator's input that feeds it (see :func:`_contract_feeds`)."""
        return self.feeds[name]

    def add_output(self, value, name, dtype, shape):
        """Write the head's output ``name`` into the operator's output variable, in its declared type."""
        target = self.targets[name]
        if name == "scores" and shape[-1] == 1:  # binary margins as skl2onnx writes them: [-m, m]
            value = self.op("Concat", self.op("Neg", value), value, axis=1, hint="scores")
        declared = target.type.to_onnx_type().tensor_type.elem_type
        if self.elem_type(dtype) != declared:
            value = self.op("Cast", value, to=declared)
        self._add_node("Identity", [value], [target.full_name], "", None, {})
        return target.full_name


# ------------------------------------------------------------------ inputs
def _elem_type(variable):
    return variable.type.to_onnx_type().tensor_type.elem_type


def _width(variable):
    shape = getattr(variable.type, "shape", None) or []
    return shape[1] if len(shape) == 2 and isinstance(shape[1], (int, np.integer)) else None


def _describe_inputs(operator):
    return ", ".join(f"{v.raw_name!r} {type(v.type).__name__}{list(getattr(v.type, 'shape', []) or [])}"
                     for v in operator.inputs)


def _plain_input(operator, network):
    """The one numeric input of an estimator without a data contract (checked against the network's width)."""
    name = type(operator.raw_operator).__name__
    if len(operator.inputs) != 1:
        raise InvalidArgumentError(f"{name} takes one input matrix (N, {network.n_in}); skl2onnx gave it "
                                   f"{len(operator.inputs)}: {_describe_inputs(operator)}")
    x = operator.inputs[0]
    width = _width(x)
    if width is not None and width != network.n_in:
        raise InvalidArgumentError(f"{name} was fitted on {network.n_in} features, but its input "
                                   f"{x.raw_name!r} has {width} columns")
    _check_numeric(operator, x)
    return x


def _check_numeric(operator, variable):
    onnx = sys.modules["onnx"]
    numeric = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.INT64, onnx.TensorProto.INT32,
               onnx.TensorProto.BOOL}
    if _elem_type(variable) not in numeric:
        raise InvalidArgumentError(f"{type(operator.raw_operator).__name__} takes numbers, but its input "
                                   f"{variable.raw_name!r} is {type(variable.type).__name__}")


def _contract_feeds(operator, contract):
    """How the operator's inputs feed a data contract: ``("columns", {column: variable})`` or ``("matrix", ...)``."""
    schema = contract.schema
    by_name = {v.raw_name: v for v in operator.inputs}
    names = [str(c.name) for c in schema.columns]
    if all(n in by_name for n in names):
        onnx = sys.modules["onnx"]
        for column, n in zip(schema.columns, names):
            if column.kind == "numeric":
                _check_numeric(operator, by_name[n])
            elif _elem_type(by_name[n]) != onnx.TensorProto.STRING:
                raise InvalidArgumentError(f"the categorical column {n!r} must be a string input, got "
                                           f"{type(by_name[n].type).__name__}")
        return "columns", {n: by_name[n] for n in names}
    if len(operator.inputs) == 1 and not schema.categorical and _width(operator.inputs[0]) in (None, len(names)):
        _check_numeric(operator, operator.inputs[0])
        return "matrix", {"X": operator.inputs[0]}
    shown = ", ".join(map(repr, names[:8])) + (", ..." if len(names) > 8 else "")
    raise InvalidArgumentError(
        f"{type(operator.raw_operator).__name__} was fitted on a DataFrame through its data contract (contract_), "
        f"which reads the raw columns by name ({shown}); skl2onnx gave it {_describe_inputs(operator)}. Give it "
        f"one input per column, named as the column (skl2onnx.to_onnx(estimator, X=frame) declares them), or "
        f"fit it on the numbers the steps before it produce (preprocess=None)"
    )


def _fed(g, variable, dtype):
    """The name of ``variable`` cast to ``dtype`` (a NumPy dtype or ``str``) when its type differs."""
    want = g.elem_type(dtype)
    return variable.full_name if _elem_type(variable) == want else g.op("Cast", variable.full_name, to=want)


# --------------------------------------------------------- shape calculators
def _float_type(operator):
    """skl2onnx's rule for a model's float outputs: double for a double input, float otherwise."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    double = any(isinstance(v.type, DoubleTensorType) for v in operator.inputs)
    return DoubleTensorType if double else FloatTensorType


def _tensor_type(dtype):
    """The skl2onnx tensor type of a NumPy dtype (``object``: strings)."""
    from skl2onnx.common import data_types as t

    dtype = np.dtype(dtype)
    if dtype.kind in "OUS":
        return t.StringTensorType
    table = {"bool": t.BooleanTensorType, "float64": t.DoubleTensorType, "float32": t.FloatTensorType,
             "int64": t.Int64TensorType, "int32": t.Int32TensorType, "int16": t.Int16TensorType,
             "int8": t.Int8TensorType, "uint8": t.UInt8TensorType, "uint16": t.UInt16TensorType,
             "uint32": t.UInt32TensorType, "uint64": t.UInt64TensorType}
    return table.get(dtype.name, t.Int64TensorType)


def _check_inputs(operator, network, contract):
    if contract is None:
        _plain_input(operator, network)
    else:
        _contract_feeds(operator, contract)


def _classifier_shapes(operator):
    """label (N,) in the labels' type ((N, k) for multi-label) and probabilities or margins (N, n_classes)."""
    if len(operator.outputs) != 2:
        raise InvalidArgumentError(f"DeltapropClassifier has 2 outputs (label, probabilities), skl2onnx "
                                   f"expected {len(operator.outputs)}")
    network, contract, head = _parts(operator, nocl=_nocl(operator.scope_inst, operator.raw_operator))
    _check_inputs(operator, network, contract)
    n = operator.inputs[0].get_first_dimension()
    if head.kind == "multilabel":
        operator.outputs[0].type = _tensor_type(head.dtype or np.int64)([n, network.n_out])
        operator.outputs[1].type = _float_type(operator)([n, network.n_out])
    else:
        operator.outputs[0].type = _tensor_type(label_table(head.classes).dtype)([n])
        operator.outputs[1].type = _float_type(operator)([n, max(network.n_out, 2)])


def _regressor_shapes(operator):
    """prediction (N, n_targets), in the input's float type."""
    if len(operator.outputs) != 1:
        raise InvalidArgumentError(f"DeltapropRegressor has 1 output, skl2onnx expected {len(operator.outputs)}")
    network, contract, _ = _parts(operator)
    _check_inputs(operator, network, contract)
    operator.outputs[0].type = _float_type(operator)([operator.inputs[0].get_first_dimension(), network.n_out])


def _nocl(scope, estimator):
    """skl2onnx's option ``nocl`` (class indices for labels) of a classifier; False for a regressor."""
    if type(estimator) is not _CONVERTED.get(CLASSIFIER_ALIAS):
        return False
    return bool(scope.get_options(estimator, dict(nocl=False))["nocl"])


def _parts(operator, nocl=False):
    """``(network, contract, head)`` of the operator's estimator, the head in skl2onnx's conventions."""
    network, contract, head = model_parts(operator.raw_operator)
    head = copy.copy(head)
    if head.kind == "values":
        head.squeeze = False  # skl2onnx writes a regressor's one target as (N, 1)
    if nocl and head.kind == "classes":
        head.classes = list(range(len(head.classes)))
    return network, contract, head


# ---------------------------------------------------------------- converter
def _convert(scope, operator, container):
    """Write the estimator's preprocessing (a data contract's), network and head into skl2onnx's container."""
    network, contract, head = _parts(operator, nocl=_nocl(container, operator.raw_operator))
    g = ContainerGraph(scope, operator, container, dict(zip(head.output_names(), operator.outputs)))
    if contract is None:
        x = _fed(g, _plain_input(operator, network), network.dtype)
        build(g, x, network, None, head, "matrix")
        return
    kind, feeds = _contract_feeds(operator, contract)
    if kind == "matrix":
        g.feeds = {"X": _fed(g, feeds["X"], np.float64)}
    else:
        g.feeds = {c.name: _fed(g, feeds[str(c.name)], np.float64 if c.kind == "numeric" else str)
                   for c in contract.schema.columns}
    build(g, None, network, contract, head, kind)

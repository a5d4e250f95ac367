"""A small ONNX graph builder: nodes, constants and unique names, for one opset.

:class:`Graph` is the one place that writes ONNX protobufs. The converters of
layers, activations and the data contract (:mod:`deltaprop.export.network`,
:mod:`deltaprop.export.contract`) call only its methods, so that the same
converters can write into a graph of their own (:meth:`Graph.model`) or into
another converter's graph: the scikit-learn route
(:mod:`deltaprop.estimators._onnx`) subclasses it to write into skl2onnx's
container, overriding :meth:`Graph.name`, :meth:`Graph.const` and
:meth:`Graph.op`.

Operators whose signature changed between opsets (the reductions) are
written for the graph's ``opset`` by :meth:`Graph.reduce`.
"""

import numpy as np

from ..errors import InvalidArgumentError, describe

__all__ = ["Graph", "OPSET", "ML_OPSET", "MIN_OPSET", "MAX_OPSET", "IR_VERSION", "check_opset", "onnx_modules"]

#: The default ONNX opset of an exported file (ONNX 1.12, 2022; every current runtime reads it).
OPSET = 17
#: The opset of the ``ai.onnx.ml`` domain (LabelEncoder with string keys), written beside ``OPSET``.
ML_OPSET = 3
#: The opsets the converters can write: 13 (ReduceSum's axes became an input) to 21.
MIN_OPSET, MAX_OPSET = 13, 21
#: The IR version written for an opset (ONNX's table: opset 13 -> IR 7, ..., 21 -> 10).
IR_VERSION = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}


def onnx_modules():
    """``onnx`` and ``onnx.helper``, or an InvalidArgumentError that says how to install them."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise InvalidArgumentError("ONNX export needs the onnx package: pip install 'deltaprop[onnx]' "
                                   "(onnx and onnxruntime)") from None
    return onnx, helper, numpy_helper


def check_opset(opset):
    """``opset`` as an int in ``[MIN_OPSET, MAX_OPSET]`` (InvalidArgumentError naming the value otherwise)."""
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise InvalidArgumentError(f"opset must be an int from {MIN_OPSET} to {MAX_OPSET}, got {describe(opset)}")
    return int(opset)


class Graph:
    """Nodes and constants of one ONNX graph, written for ``opset``.

    Parameters
    ----------
    opset : int, default OPSET
    reserved : iterable of str
        Names the graph must not give to its own values (the public input
        and output names).

    Attributes
    ----------
    nodes, initializers, inputs, outputs : list of onnx protobufs
    """

    def __init__(self, opset=OPSET, reserved=()):
        self.opset = check_opset(opset)
        self.onnx, self.helper, self.numpy_helper = onnx_modules()
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self._used = set(reserved)
        self._public = set(reserved)  # set aside for add_input/add_output, which claim each once
        self._consts = {}

    # ------------------------------------------------------------ naming
    def name(self, hint):
        """A value name not yet used in this graph: ``hint``, else ``hint_1``, ``hint_2``..."""
        name, k = hint, 0
        while name in self._used:
            k += 1
            name = f"{hint}_{k}"
        self._used.add(name)
        return name

    def reserve(self, name):
        """Claim ``name`` exactly (a public input or output, set aside by ``reserved``), refusing one taken."""
        if name in self._public:
            self._public.discard(name)
        elif name in self._used:
            raise InvalidArgumentError(f"the ONNX graph already has a value named {name!r}")
        self._used.add(name)
        return name

    # --------------------------------------------------------- contents
    def const(self, value, hint="const", dtype=None):
        """A constant tensor (an initializer) holding ``value``; the same value and dtype is stored once."""
        array = np.asarray(value, dtype=dtype)
        if array.dtype.kind == "U":
            array = array.astype(object)
        key = None
        if array.size <= 16 and array.dtype.kind != "O":
            key = (array.dtype.str, array.shape, array.tobytes())
            if key in self._consts:
                return self._consts[key]
        name = self.name(hint)
        self._add_initializer(name, array)
        if key is not None:
            self._consts[key] = name
        return name

    def _add_initializer(self, name, array):
        if array.dtype.kind == "O":  # strings
            tensor = self.helper.make_tensor(name, self.elem_type(str), array.shape,
                                             [str(v).encode("utf-8") for v in array.ravel()])
        else:
            tensor = self.numpy_helper.from_array(np.array(array, order="C"), name)  # 0-d stays 0-d
        self.initializers.append(tensor)

    def op(self, op_type, *inputs, hint=None, domain="", version=None, **attrs):
        """Append one node ``op_type(inputs)`` with attributes ``attrs``; returns its output's name."""
        out = self.name(hint or op_type.lower())
        self._add_node(op_type, [str(i) for i in inputs], [out], domain, version, attrs)
        return out

    def _add_node(self, op_type, inputs, outputs, domain, version, attrs):
        self.nodes.append(self.helper.make_node(op_type, inputs, outputs, name=self.name(f"node_{op_type}"),
                                                domain=domain, **attrs))

    def reduce(self, op_type, x, axis, keepdims=1):
        """``ReduceSum``/``ReduceMean``/``ReduceMax`` of ``x`` over ``axis``, in this opset's signature."""
        takes_input = op_type == "ReduceSum" or self.opset >= 18
        if takes_input:
            return self.op(op_type, x, self.const(np.array([axis], dtype=np.int64), "axes"), keepdims=keepdims)
        return self.op(op_type, x, axes=[axis], keepdims=keepdims)

    def cast(self, x, dtype):
        """``x`` cast to ``dtype`` (a NumPy dtype, or ``bool``, ``str``)."""
        return self.op("Cast", x, to=self.elem_type(dtype))

    def elem_type(self, dtype):
        """The ONNX element type of a NumPy dtype (``str`` for strings)."""
        if dtype is str or np.dtype(dtype).kind in "OU":
            return self.onnx.TensorProto.STRING
        return self.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))

    def add_input(self, name, dtype, shape):
        """A graph input named exactly ``name`` (reserved), of ``dtype`` and ``shape`` (``"N"``: any batch)."""
        self.inputs.append(self.helper.make_tensor_value_info(self.reserve(name), self.elem_type(dtype), shape))
        return name

    def add_output(self, value, name, dtype, shape):
        """Publish ``value`` as the graph output ``name`` (an Identity node renames it)."""
        self._add_node("Identity", [value], [self.reserve(name)], "", None, {})
        self.outputs.append(self.helper.make_tensor_value_info(name, self.elem_type(dtype), shape))
        return name

    # ------------------------------------------------------------ model
    def model(self, graph_name="deltaprop", doc="", metadata=None):
        """The ONNX ``ModelProto`` of this graph (opset ``self.opset`` and ``ai.onnx.ml`` ``ML_OPSET``)."""
        from .._version import __version__

        h = self.helper
        graph = h.make_graph(self.nodes, graph_name, self.inputs, self.outputs, self.initializers, doc_string=doc)
        opsets = [h.make_opsetid("", self.opset)]
        if any(node.domain == "ai.onnx.ml" for node in self.nodes):
            opsets.append(h.make_opsetid("ai.onnx.ml", ML_OPSET))
        model = h.make_model(graph, opset_imports=opsets, producer_name="deltaprop", producer_version=__version__,
                             ir_version=IR_VERSION[self.opset])
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = str(key), str(value)
        return model

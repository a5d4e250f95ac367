"""The data contract and the output head as ONNX operators: raw columns in, labels or values out.

Inputs (``inputs=``):

- ``"columns"`` (default for a model with a data contract): one input per
  feature column, named as the column, shape ``(N, 1)``: ``tensor(double)``
  for a numeric column (NaN is a missing value), ``tensor(string)`` for a
  categorical one (the empty string and the usual missing tokens, ``NA``,
  ``N/A``, ``NaN``, ``null``, ``None``, ``?`` in lower, upper or title case,
  and the contract's ``na_values`` are missing; cells are matched as given,
  so strip spaces first, as deltaprop's readers do);
- ``"matrix"``: one input ``X`` of shape ``(N, n_columns)``: ``tensor(double)``
  holding the feature columns in training order (only for a contract whose
  columns are all numeric), or, for a network without a contract, the
  network's input in its dtype.

The preprocessing is the contract's (:meth:`deltaprop.tabular.Schema.transform`):
the training fill where a value is missing, ``(x - offset) / scale`` computed in
float64 and rounded once to the network's dtype, the missing indicators,
then each categorical column's slot (a kept category, the "missing" slot,
or "other" for a rare or unseen one) as a one-hot block or a code for an
Embedding.

Outputs (the head):

- a classifier: ``label`` (N,), the class labels (strings, int64, double or
  bool, as trained), and ``probabilities`` (N, n_classes) for a softmax or
  sigmoid output (``scores`` (N, n_out), the margins, for a hinge loss);
- a regressor: ``prediction``, in the target's original units: (N,) for
  one target, (N, k) for several;
- a network alone: ``output`` (N, n_out), what :meth:`Network.predict` gives.
"""

import json

import numpy as np

from ..errors import InvalidArgumentError, describe
from ..tabular.schema import _parse_numbers
from ..tabular.sources import MISSING_TOKENS, category_str

__all__ = ["Head", "INPUT_KINDS", "write_inputs", "write_head", "tabular_head", "missing_tokens", "onnx_feeds",
           "default_inputs", "label_table"]

INPUT_KINDS = ("columns", "matrix")


class Head:
    """What the graph publishes after the network's output ``A^(L)``.

    Parameters
    ----------
    kind : {"outputs", "classes", "multilabel", "values"}
    classes : sequence, optional
        ``"classes"``: the label of each class index.
    threshold : float, default 0.5
        One output: class 1 where ``A[:, 0] > threshold`` (the loss's
        ``decision_threshold``); several outputs: the argmax (first of ties).
    probabilities : bool, default False
        Whether the output is a softmax or sigmoid (publish ``probabilities``,
        else ``scores``).
    offset, scale : float, default 0 and 1
        ``"values"``: ``y = A · scale + offset``.
    squeeze : bool, default False
        ``"values"``: one target as shape (N,).
    dtype : dtype, optional
        ``"values"``: the output dtype (default float64); ``"multilabel"``:
        the dtype of the 0/1 labels (default int64).
    """

    KINDS = ("outputs", "classes", "multilabel", "values")

    def __init__(self, kind, classes=None, threshold=0.5, probabilities=False, offset=0.0, scale=1.0,
                 squeeze=False, dtype=None):
        if kind not in self.KINDS:
            raise InvalidArgumentError(f"head kind must be one of {self.KINDS}, got {describe(kind)}")
        self.kind, self.threshold, self.probabilities = kind, float(threshold), bool(probabilities)
        self.classes = None if classes is None else list(classes)
        self.offset, self.scale, self.squeeze = float(offset), float(scale), bool(squeeze)
        self.dtype = None if dtype is None else np.dtype(dtype)

    def output_names(self):
        """The graph's output names, in order."""
        if self.kind == "outputs":
            return ["output"]
        if self.kind == "values":
            return ["prediction"]
        return ["label", "probabilities" if self.probabilities or self.kind == "multilabel" else "scores"]


def tabular_head(network, target):
    """The :class:`Head` of a model with a data contract's ``target`` (a TabularModel's)."""
    if target.task == "regression":
        return Head("values", offset=target.offset, scale=target.scale, squeeze=network.n_out == 1)
    act = getattr(network.layers[-1].activation, "name", None)
    return Head("classes", classes=target.classes, threshold=network.loss.decision_threshold,
                probabilities=act in ("softmax", "sigmoid"))


def missing_tokens(na_values):
    """The strings a categorical input reads as missing: the usual tokens in common casings, ``na_values`` as written.

    deltaprop's readers match the usual tokens in any case and ``na_values``
    as written (:func:`deltaprop.tabular.read_table`).
    """
    out = []
    for token in MISSING_TOKENS:
        for variant in (token, token.lower(), token.upper(), token.title()):
            if variant not in out:
                out.append(variant)
    return out + [t for t in na_values if t not in out]


# ------------------------------------------------------------------ inputs
def write_inputs(g, network, contract, inputs):
    """Declare the graph's inputs and write the contract's preprocessing; returns the network input's name."""
    if inputs not in INPUT_KINDS:
        raise InvalidArgumentError(f"inputs must be one of {', '.join(map(repr, INPUT_KINDS))}, "
                                   f"got {describe(inputs)}")
    dtype = network.dtype
    if contract is None:
        if inputs != "matrix":
            raise InvalidArgumentError("a network without a data contract has one input matrix: use "
                                       "inputs='matrix'")
        return g.add_input("X", dtype, ["N", network.n_in])
    schema = contract.schema
    if inputs == "matrix" and schema.categorical:
        names = ", ".join(repr(c.name) for c in schema.categorical[:5])
        raise InvalidArgumentError(f"inputs='matrix' needs numeric columns only; this model has categorical "
                                   f"columns ({names}): use inputs='columns' (one input per column)")
    if inputs == "matrix":
        values = g.add_input("X", np.float64, ["N", len(schema.columns)])
        sources = {}
    else:
        sources = {c.name: g.add_input(c.name, np.float64 if c.kind == "numeric" else str, ["N", 1])
                   for c in schema.columns}
        values = g.op("Concat", *[sources[c.name] for c in schema.numeric], axis=1, hint="numeric") \
            if schema.numeric else None
    parts = [_numeric_block(g, values, schema.numeric, dtype)] if schema.numeric else []
    tokens = missing_tokens(contract.na_values)
    for column in schema.categorical:
        code = _category_code(g, sources[column.name], column, tokens)
        if contract.categories_as == "codes":
            parts.append(g.cast(code, dtype))
        else:
            hit = g.op("Equal", code, g.const(np.arange(column.size, dtype=np.int64), "slots"))
            parts.append(g.cast(hit, dtype))
    return parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1, hint="network_input")


def _numeric_block(g, values, columns, dtype):
    """Fill, scale (float64, rounded once) and the missing indicators, in the schema's dense layout."""
    missing = g.op("IsNaN", values)
    fill = np.array([c.fill for c in columns])
    filled = g.op("Where", missing, g.const(fill, "fill"), values)
    offset, scale = np.array([c.offset for c in columns]), np.array([c.scale for c in columns])
    z = g.op("Div", g.op("Sub", filled, g.const(offset, "offset")), g.const(scale, "scale"), hint="scaled")
    # where x - offset overflowed, the same quotient as two terms (as Schema.transform)
    wide = g.op("Sub", g.op("Div", filled, g.const(scale, "scale")), g.const(offset / scale, "offset_over_scale"))
    z = g.op("Where", g.op("IsInf", z), wide, z, hint="scaled")
    z = g.cast(z, dtype) if np.dtype(dtype) != np.float64 else z
    flagged = [j for j, c in enumerate(columns) if c.indicator]
    if not flagged:
        return z
    indicators = g.cast(g.op("Gather", missing, g.const(np.array(flagged, dtype=np.int64), "flagged"), axis=1),
                        dtype)
    order, k = [], len(columns)
    for j, c in enumerate(columns):  # value j, then its indicator (column k + rank among the flagged)
        order.append(j)
        if c.indicator:
            order.append(k + flagged.index(j))
    both = g.op("Concat", z, indicators, axis=1)
    return g.op("Gather", both, g.const(np.array(order, dtype=np.int64), "layout"), axis=1, hint="dense")


def _category_code(g, text, column, tokens):
    """Each row's slot (N, 1) int64: its category's, the missing slot's, or "other" (rare or unseen)."""
    keys = list(column.categories)
    values = list(range(len(keys)))
    missing_slot = len(column.categories) if column.missing else column.other
    for token in tokens:
        if token not in column.index:
            keys.append(token)
            values.append(missing_slot)
    return g.op("LabelEncoder", text, domain="ai.onnx.ml", keys_strings=keys, values_int64s=values,
                default_int64=column.other, hint=f"code_{_ascii(column.name)}")


def _ascii(name):
    return "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in str(name))[:40] or "column"


# ------------------------------------------------------------------- head
def write_head(g, a, network, head):
    """Publish the head's outputs from the network output ``a`` (N, n_out)."""
    dtype, n_out = network.dtype, network.n_out
    if head.kind == "outputs":
        g.add_output(a, "output", dtype, ["N", n_out])
    elif head.kind == "values":
        out_dtype = head.dtype or np.dtype(np.float64)
        y = a if np.dtype(dtype) == out_dtype else g.cast(a, out_dtype)
        if head.scale != 1.0:
            y = g.op("Mul", y, g.const(head.scale, "target_scale", out_dtype))
        if head.offset != 0.0:
            y = g.op("Add", y, g.const(head.offset, "target_offset", out_dtype))
        if head.squeeze:
            y = g.op("Gather", y, g.const(np.int64(0), "first"), axis=1)
        g.add_output(y, "prediction", out_dtype, ["N"] if head.squeeze else ["N", n_out])
    elif head.kind == "multilabel":
        hit = g.op("Greater", a, g.const(head.threshold, "threshold", dtype))
        labels = g.cast(hit, head.dtype or np.int64)
        g.add_output(labels, "label", head.dtype or np.int64, ["N", n_out])
        g.add_output(a, "probabilities", dtype, ["N", n_out])
    else:
        _write_classes(g, a, network, head)


def _write_classes(g, a, network, head):
    dtype, n_out = network.dtype, network.n_out
    if n_out == 1:  # class 1 where the one output exceeds the threshold (metrics.predicted_classes)
        first = g.op("Gather", a, g.const(np.int64(0), "first"), axis=1)
        index = g.cast(g.op("Greater", first, g.const(head.threshold, "threshold", dtype)), np.int64)
    else:  # the argmax, first of ties (as NumPy's)
        index = g.op("ArgMax", a, axis=1, keepdims=0, select_last_index=0)
    labels = label_table(head.classes)
    g.add_output(g.op("Gather", g.const(labels, "classes"), index, axis=0), "label", labels.dtype, ["N"])
    if head.probabilities:
        probs = a if n_out > 1 else g.op("Concat", g.op("Sub", g.const(1, "one", dtype), a), a, axis=1)
        g.add_output(probs, "probabilities", dtype, ["N", max(n_out, 2)])
    else:
        g.add_output(a, "scores", dtype, ["N", n_out])


def label_table(classes):
    """The class labels as one array: object (strings), int64, float64 or bool."""
    kinds = {type(c.item() if isinstance(c, np.generic) else c) for c in classes}
    if kinds <= {bool}:
        return np.array(classes, dtype=bool)
    if kinds <= {int}:
        return np.array(classes, dtype=np.int64)
    if kinds <= {int, float}:
        return np.array(classes, dtype=np.float64)
    return np.array([str(c) for c in classes], dtype=object)


def describe_io(g, network, contract, head):
    """JSON for the model's metadata: each input's name, dtype and meaning, and the outputs."""
    inputs = [{"name": v.name, "type": _type_text(v)} for v in g.inputs]
    info = {"inputs": inputs, "outputs": [{"name": v.name, "type": _type_text(v)} for v in g.outputs]}
    if head.classes is not None:
        info["classes"] = [c.item() if isinstance(c, np.generic) else c for c in head.classes]
    if contract is not None:
        info["missing_tokens"] = missing_tokens(contract.na_values)
    return json.dumps(info)


def _type_text(value_info):
    t = value_info.type.tensor_type
    dims = [d.dim_param or d.dim_value for d in t.shape.dim]
    names = {1: "float", 7: "int64", 8: "string", 9: "bool", 11: "double"}
    return f"tensor({names.get(t.elem_type, t.elem_type)}) {dims}"


def onnx_feeds(model, raw, inputs=None):
    """The input dict for ``onnxruntime.InferenceSession.run`` that gives ``model``'s predictions for ``raw``.

    Parameters
    ----------
    model : TabularModel, Network or fitted estimator
    raw : path, DataFrame, dict of columns or ndarray
        As :meth:`TabularModel.predict` takes it (read by the model's data
        contract: columns matched by name, missing tokens as in training).
    inputs : {"columns", "matrix"}, optional
        As exported (default: as :func:`deltaprop.export.to_onnx` chooses).

    Returns
    -------
    dict of str to ndarray
        ``{column: (N, 1) float64 or str array}`` or ``{"X": (N, n) array}``.
    """
    from . import model_parts

    network, contract, _ = model_parts(model)
    if contract is None:
        return {"X": np.ascontiguousarray(raw, dtype=network.dtype)}
    table = contract.read(raw)
    columns = contract.schema._match(table, contract.new_report())
    tokens = missing_tokens(contract.na_values)
    feeds = {}
    for spec, (values, kind) in zip(contract.schema.columns, columns):
        if spec.kind == "numeric":  # text where numbers were trained: parsed, or refused as predict refuses it
            values = values if kind == "numeric" else _parse_numbers(values, spec.name, table)
            feeds[spec.name] = np.asarray(values, dtype=np.float64).reshape(-1, 1)
        else:  # a numeric column read as categories: each number named as in training ("3", "2.5")
            cells = values.tolist() if kind != "numeric" else [category_str(v) for v in values]
            feeds[spec.name] = _category_cells(cells, spec, tokens).reshape(-1, 1)
    if (inputs or default_inputs(contract)) == "matrix":
        return {"X": np.hstack([feeds[c.name] for c in contract.schema.columns])}
    return feeds


def _category_cells(cells, spec, tokens):
    """Cells as the graph must read them: a missing cell (None) as a token the graph reads as missing, and a
    present cell that spells a token (a category to deltaprop, unseen unless kept) as a string it reads as other."""
    kept = spec.index
    missing = next((t for t in tokens if t not in kept), None)
    other = "\x00other"
    while other in kept:
        other += "_"
    token_set = set(tokens)
    out = np.empty(len(cells), dtype=object)
    for i, v in enumerate(cells):
        if v is None:
            if missing is None:
                raise InvalidArgumentError(f"column {spec.name!r}: every missing-value token is a category, so "
                                           f"the ONNX graph cannot be told a cell is missing")
            out[i] = missing
        else:
            v = str(v)
            out[i] = other if v in token_set and v not in kept else v
    return out


def default_inputs(contract):
    """One matrix where every feature is a number (or there is no contract); one input per column otherwise."""
    return "columns" if contract is not None and contract.schema.categorical else "matrix"

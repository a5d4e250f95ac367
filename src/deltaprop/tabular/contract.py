"""The data contract: what a model expects of raw rows, and how it turns them into network inputs and targets.

A :class:`DataContract` holds, fitted on the training rows only:

- the feature :class:`~deltaprop.tabular.schema.Schema`: the columns by name and
  order, each column's kind, the categories seen, the imputation values and
  the scaling;
- the :class:`~deltaprop.tabular.schema.Target`: its name, the task, the class
  labels or the target scaling;
- the cell values read as missing (``na_values``).

:meth:`DataContract.inputs` maps a raw table to the network's input matrix
``A^(0)`` of shape (n_rows, n_inputs): numeric columns imputed and scaled,
``(x - offset) / scale``, then the categorical columns, encoded one of two
ways (``categories_as``):

- ``"onehot"``: one-hot blocks, never stored as zeros: they reach the first
  layer as a :class:`deltaprop.sparse.OneHotMatrix`, whose product with
  ``Wᵀ`` is a gather of rows of ``Wᵀ``;
- ``"codes"``: one column per categorical column holding its slot's code
  (0, 1, ...), which an :class:`deltaprop.embedding.Embedding` first layer
  turns into a learned vector (:meth:`DataContract.embedding_columns`).

The command line, :func:`deltaprop.load` and the estimators all use this one
object, so a model file predicts the same from every door.
"""

import numpy as np

from ..errors import DataError, InvalidArgumentError, describe
from ..sparse import OneHotMatrix
from .schema import Schema, Target, TransformReport
from .table import read_table

__all__ = ["DataContract", "drop_missing_targets"]

#: Version of the contract's record in a model file.
CONTRACT_VERSION = 1
#: How categorical columns reach the network: one-hot blocks, or one code column each (for an Embedding).
CATEGORIES_AS = ("onehot", "codes")


def drop_missing_targets(table, target_name):
    """``(table without the rows whose target is missing, number dropped)``."""
    values = table.columns[target_name]
    missing = Target.missing_mask(values)
    n = int(missing.sum())
    if n == 0:
        return table, 0
    if n == table.n_rows:
        raise DataError(f"{table.source}: every value of the target column {target_name!r} is missing")
    return table.take(np.flatnonzero(~missing)), n


class DataContract:
    """Feature schema + target + missing-value tokens: the data half of a model.

    Parameters
    ----------
    schema : Schema
    target : Target or None
        None for a contract of features alone.
    na_values : list of str
        Cell values read as missing, beyond the usual ones.
    """

    def __init__(self, schema, target=None, na_values=(), categories_as="onehot"):
        self.schema = schema
        self.target = target
        self.na_values = [str(v) for v in na_values]
        if categories_as not in CATEGORIES_AS:
            raise InvalidArgumentError(f"categories_as must be one of {CATEGORIES_AS}, got {describe(categories_as)}")
        self.categories_as = categories_as

    @property
    def n_inputs(self):
        """The network's input width: numeric block, then one-hot blocks or one code per categorical column."""
        if self.categories_as == "codes":
            return self.schema.n_dense + len(self.schema.categorical)
        return self.schema.n_inputs

    def embedding_columns(self, dim):
        """``[(index, n_categories, dim), ...]`` for an Embedding first layer over this contract's code columns."""
        n_dense = self.schema.n_dense
        return [(n_dense + k, size, dim) for k, size in enumerate(self.schema.sizes)]

    def check_network(self, network):
        """Refuse a network that would read this contract's inputs wrongly (InvalidArgumentError saying how).

        The widths must agree, and the category codes must meet an Embedding
        whose tables match the categories one for one (and one-hot blocks
        must not), so that no code is ever read as a number.
        """
        if self.n_inputs != network.n_in:
            raise InvalidArgumentError(f"the data contract has {self.n_inputs} inputs but the network has "
                                       f"{network.n_in}")
        first = network.layers[0]
        embeds = hasattr(first, "tables")
        codes = self.categories_as == "codes" and bool(self.schema.categorical)
        if codes != embeds:
            raise InvalidArgumentError(
                "the data contract gives category codes but the network's first layer is not an Embedding"
                if codes else "the network's first layer is an Embedding but the data contract gives no category codes")
        if codes:
            wanted = [(index, size) for index, size, _ in self.embedding_columns(1)]
            have = [(index, size) for index, size, _ in first.columns]
            if wanted != have:
                raise InvalidArgumentError(f"the Embedding reads (column, categories) {have} but the data contract "
                                           f"gives {wanted}")

    def silence_unused(self, network):
        """Zero what an unseen category would read: each "other" slot that pooled nothing in training.

        One-hot: the first layer's weights of those inputs (as
        ``OneHotEncoder(handle_unknown="ignore")``); codes: those rows of the
        embedding tables. No training row reaches them, so training never
        changes them.
        """
        first = network.layers[0]
        if self.categories_as == "onehot" or not self.schema.categorical:
            unused = self.schema.unused_inputs()
            if unused.size:
                first.W[:, unused] = 0
            return
        for table, column in zip(first.tables, self.schema.categorical):
            if column.n_rare == 0:
                table[column.other] = 0

    # ------------------------------------------------------------- fitting
    @classmethod
    def fit(cls, table, target_name, *, rows=None, task=None, categorical=None, scale="standard",
            scale_target="standard", max_categories=100, min_frequency=5, na_values=(), categories_as="onehot"):
        """Learn the contract from ``table``'s training rows ``rows`` (default: all).

        The class labels are taken from every row (so that a class seen only in
        the test rows is still known); everything else from ``rows``.
        ``categories_as`` is ``"onehot"`` or ``"codes"`` (for embeddings).
        """
        if target_name not in table.columns:
            raise DataError(f"{table.source}: no column named {target_name!r}; the columns are "
                            f"{_listing(table.names)}")
        features = table.without(target_name)
        train = features if rows is None else features.take(rows)
        schema = Schema.fit(train, categorical=categorical, scale=scale, max_categories=max_categories,
                            min_frequency=min_frequency)
        values = table.columns[target_name]
        target = Target.fit(values, target_name, task=task, scale_target=scale_target,
                            rows=rows)
        return cls(schema, target, na_values, categories_as)

    # ----------------------------------------------------------- transforms
    def read(self, source):
        """``source`` (path, DataFrame, dict, array) as a raw table, with this contract's missing tokens."""
        return read_table(source, na_values=self.na_values, categorical=[c.name for c in self.schema.categorical])

    def inputs(self, table, dtype, rows=None, report=None):
        """The network's input for ``table`` (its rows ``rows``): an ndarray, or a OneHotMatrix with categories.

        Columns are matched by name; the target column, when present, is
        not an input. ``report`` (a TransformReport) collects extra columns,
        unseen categories and missing cells.
        """
        if self.target is not None and self.target.name in table.columns and table.named:
            table = table.without(self.target.name)
        if rows is not None:
            table = table.take(rows)
        dense, codes, sizes = self.schema.transform(table, dtype=dtype, report=report)
        if not sizes:
            return dense
        if self.categories_as == "codes":
            return np.hstack([dense, codes.astype(dense.dtype)])
        return OneHotMatrix(dense, codes, sizes)

    def targets(self, table, rows=None):
        """Target values of ``table`` (its rows ``rows``), encoded: class indices (n,) or scaled values (n, k)."""
        if self.target is None:
            raise InvalidArgumentError("this contract has no target")
        name = self.target.name
        if name not in table.columns:
            raise DataError(f"{table.source}: no target column {name!r} (the model was trained to predict it); "
                            f"the columns are {_listing(table.names)}")
        values = table.columns[name]
        if rows is not None:
            values = values[rows]
        if Target.missing_mask(values).any():
            raise DataError(f"{table.source}: the target column {name!r} has missing values; drop those rows")
        return self.target.encode(values)

    def new_report(self):
        """A fresh :class:`TransformReport`."""
        return TransformReport()

    # ---------------------------------------------------------------- file
    def state(self):
        """The contract as JSON data (for the model file)."""
        state = {"version": CONTRACT_VERSION, "schema": self.schema.state(),
                 "target": None if self.target is None else self.target.state(), "na_values": list(self.na_values)}
        if self.categories_as != "onehot":  # absent in older files: one-hot; a reader that predates codes refuses it
            state["categories_as"] = self.categories_as
        return state

    @classmethod
    def from_state(cls, state):
        """Inverse of :meth:`state`; every field checked (InvalidArgumentError naming it)."""
        if not isinstance(state, dict):
            raise InvalidArgumentError(f"the data contract must be a JSON object, got {describe(state)}")
        if state.get("version") != CONTRACT_VERSION:
            raise InvalidArgumentError(f"data contract version {describe(state.get('version'))} is not one this "
                                       f"deltaprop reads ({CONTRACT_VERSION})")
        unknown = set(state) - {"version", "schema", "target", "na_values", "categories_as"}
        if unknown:
            raise InvalidArgumentError(f"data contract has unknown fields {sorted(unknown)}")
        na = state.get("na_values", [])
        if not isinstance(na, list) or len(na) > 100 or not all(isinstance(v, str) and len(v) <= 100 for v in na):
            raise InvalidArgumentError("data contract na_values must be a list of at most 100 short strings")
        schema = Schema.from_state(state.get("schema"))
        target = None if state.get("target") is None else Target.from_state(state["target"])
        return cls(schema, target, na, state.get("categories_as", "onehot"))


def _listing(names, limit=20):
    shown = ", ".join(repr(n) for n in names[:limit])
    return f"[{shown}{f', ... and {len(names) - limit} more' if len(names) > limit else ''}]"

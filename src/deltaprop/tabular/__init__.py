"""Tabular data: raw tables, the data contract (schema and target) and the model that carries it.

- :func:`read_table` reads raw rows (CSV, Parquet, Feather, pandas or polars
  DataFrames, dicts of columns, NumPy arrays) into named columns, numeric or
  categorical, with missing cells marked;
- :class:`Schema` and :class:`Target`, fitted on training rows, map them to the
  network's inputs and targets; :class:`DataContract` holds both;
- :class:`TabularModel` is a network with its contract: raw rows in, labels
  or values out; :func:`load_model` reads any model file.
"""

from .contract import DataContract, drop_missing_targets
from .files import load_model, numeric_contract, save_model
from .model import TabularModel
from .schema import Schema, Target, TransformReport
from .table import Table, read_table

__all__ = [
    "Table",
    "read_table",
    "Schema",
    "Target",
    "TransformReport",
    "DataContract",
    "drop_missing_targets",
    "TabularModel",
    "load_model",
    "save_model",
    "numeric_contract",
]

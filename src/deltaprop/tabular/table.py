"""Raw tables: named 1-D columns read from a file, a DataFrame, a dict or an array, nothing encoded yet.

A :class:`Table` holds each column as it came, in one of two forms:

- numeric: float64, NaN where a value is missing;
- categorical: an object array of ``str``, ``None`` where a value is missing.
  Booleans are categorical with the categories ``"False"`` and ``"True"``.

:func:`read_table` reads CSV, Parquet and Arrow/Feather files, pandas and
polars DataFrames, pyarrow tables, dicts of columns and 2-D NumPy arrays into
one. pandas, polars and pyarrow are imported only inside the functions that
read them.
"""

import os
import re

import numpy as np

from ..checks import path_str
from ..errors import DataError, InvalidArgumentError, InvalidTypeError, describe
from .sources import (
    CATEGORICAL, MISSING_TOKENS, NUMERIC, as_names, category_str, duplicates, na_set, name_list, read_array, read_arrow,
    read_dict, read_pandas, read_path, read_polars,
)

__all__ = ["Table", "read_table", "category_str", "name_list", "MISSING_TOKENS", "NUMERIC", "CATEGORICAL"]

_UNNAMED = re.compile(r"Unnamed: 0")

class Table:
    """Raw data as named 1-D columns of one length.

    Parameters
    ----------
    columns : dict of str to ndarray of shape (n_rows,)
        float64 (NaN missing) for a numeric column; object holding str
        (None missing) for a categorical one. The dict's order is the
        columns' order.
    kinds : dict of str to {"numeric", "categorical"}
    declared : dict of str to bool
        True where the source declared the column categorical (a pandas
        category, bool, object or string dtype; a polars or Arrow string,
        categorical, enum or boolean type) rather than it being inferred
        from text.
    source : str
        What the table was read from, for messages: a path, "DataFrame",
        "array", "dict", ...
    named : bool
        False when the names were made up (``x0``, ``x1``, ... for a bare
        array): columns are then matched by position.
    notes : list of str
        What a person should be told once (a dropped index column, ...).
    lines : ndarray of int, shape (n_rows,), or None
        For a CSV file, each row's line number (the header is line 1).

    Attributes
    ----------
    names : list of str
    n_rows : int
    """

    def __init__(self, columns, kinds, declared, *, source="table", named=True, notes=(), lines=None):
        self.names = list(columns)
        self.columns = dict(columns)
        self.kinds = {name: kinds[name] for name in self.names}
        self.declared = {name: bool(declared.get(name, False)) for name in self.names}
        self.source = str(source)
        self.named = bool(named)
        self.notes = list(notes)
        self.lines = lines
        lengths = {name: len(col) for name, col in self.columns.items()}
        if len(set(lengths.values())) > 1:
            raise DataError(f"{self.source}: the columns differ in length: {describe(lengths, 200)}")
        self.n_rows = next(iter(lengths.values()), 0)

    def __repr__(self):
        cols = ", ".join(f"{n}:{'num' if self.kinds[n] == NUMERIC else 'cat'}" for n in self.names[:10])
        more = f", ... {len(self.names) - 10} more" if len(self.names) > 10 else ""
        return f"Table({self.source!r}, n_rows={self.n_rows}, columns=[{cols}{more}])"

    def where(self, row=None):
        """``source`` (and ``, line L`` or ``, row R`` for row index ``row``), for a message."""
        if row is None:
            return self.source
        if self.lines is not None:
            return f"{self.source}, line {int(self.lines[row])}"
        return f"{self.source}, row {int(row)}"

    def _check_known(self, names, what):
        unknown = [n for n in names if n not in self.columns]
        if unknown:
            noun = "column" if len(unknown) == 1 else "columns"
            raise DataError(
                f"{self.source}: no {noun} named {name_list(unknown)} (given in {what}); "
                f"the columns are {name_list(self.names)}"
            )

    def column_or_error(self, name):
        """The column named ``name``, or a DataError naming it and listing the columns."""
        self._check_known([name], "a column name")
        return self.columns[name]

    def _subset(self, names):
        return Table(
            {n: self.columns[n] for n in names}, self.kinds, self.declared,
            source=self.source, named=self.named, notes=self.notes, lines=self.lines,
        )

    def take(self, rows):
        """A new Table of the rows ``rows`` (an int array or a bool mask), in that order; notes are kept."""
        rows = np.asarray(rows)
        if rows.dtype.kind == "b":
            rows = np.flatnonzero(rows)
        if rows.dtype.kind not in "iu" or rows.ndim != 1:
            raise InvalidArgumentError(f"rows must be a 1-D array of row indices, got {rows.dtype} {rows.shape}")
        columns = {n: col[rows] for n, col in self.columns.items()}
        lines = None if self.lines is None else self.lines[rows]
        return Table(columns, self.kinds, self.declared, source=self.source, named=self.named, notes=self.notes,
                     lines=lines)

    def without(self, name):
        """A new Table without the column ``name`` (which must exist)."""
        self._check_known([name], "a column name")
        return self._subset([n for n in self.names if n != name])

    def select(self, features=None, drop=None):
        """A new Table with the columns ``features`` (in that order), less those in ``drop``.

        Parameters
        ----------
        features : str or list of str, optional
            Keep exactly these columns, in this order.
        drop : str or list of str, optional
            Remove these columns.

        Raises
        ------
        DataError
            An unknown name (the message lists them and the columns), a name
            given twice in ``features``, or no column left.
        """
        names = self.names
        if features is not None:
            features = as_names(features, "features")
            self._check_known(features, "features")
            if len(set(features)) != len(features):
                twice = duplicates(features)
                raise DataError(f"features names {name_list(twice)} more than once")
            names = features
        if drop is not None:
            drop = as_names(drop, "drop")
            self._check_known(drop, "drop")
            names = [n for n in names if n not in set(drop)]
        if not names:
            raise DataError(f"{self.source}: no column is left after selecting features and dropping {drop}")
        return self._subset(names)


# ------------------------------------------------------------------ read_table
_ACCEPTED = (
    "a path to a CSV, Parquet or Arrow/Feather file, a pandas or polars DataFrame, a pyarrow Table, "
    "a dict of columns or a 2-D NumPy array"
)


def read_table(source, *, na_values=None, names=None, categorical=None):
    """Read raw rows into a :class:`Table`: named 1-D columns, numeric or categorical.

    Parameters
    ----------
    source : path, DataFrame, pyarrow Table, dict or ndarray
        - a ``str`` or ``os.PathLike`` path: Parquet (first bytes ``PAR1``) or
          Arrow IPC / Feather v2 (``ARROW1``) through pyarrow, else a CSV file
          with a header row (:func:`deltaprop.data.csvfile.read_csv`);
        - a pandas or polars DataFrame, a pyarrow Table: each column by its
          dtype (numbers numeric; bool, category, string and object of str
          categorical; dates refused);
        - a dict of columns (name to list or 1-D array): numbers numeric,
          strings read like CSV cells, bools categorical;
        - a 2-D ndarray (rows, columns), named ``x0``, ``x1``, ... unless
          ``names`` is given.
    na_values : str or list of str, optional
        Extra cell values read as missing (matched after stripping spaces,
        case-sensitive), beside the defaults for text: empty, NA, N/A, NaN,
        null, None and ? (in any case). Applied to string values of every
        source.
    names : list of str, optional
        Column names for a bare array; then ``named`` is True.
    categorical : list of str, optional
        Text columns to keep as categories even where most cells read as
        numbers. A text column of numbers with a few words among them is
        otherwise refused (a typo, or a missing-value token to add to
        ``na_values``): deltaprop never guesses.

    Returns
    -------
    Table
        An unnamed first column that holds distinct whole numbers such as
        0..n-1 (a saved pandas index) is dropped, with a note in ``notes``.

    Raises
    ------
    DataError
        Unreadable file, no rows, duplicate names, columns of different
        lengths, an infinite value, a date or other unusable column type
        (each message names the source, the column and the line or row).
    InvalidTypeError
        ``source`` of a kind not listed above.
    """
    na = na_set(na_values, categorical)
    if names is not None and not isinstance(source, np.ndarray):
        raise InvalidArgumentError("names= is only for a bare array; a file or a DataFrame carries its own names")
    named = True
    if isinstance(source, (str, os.PathLike)):
        where = path_str(source)
        parts = read_path(where, na)
    elif _module_of(source).startswith("pandas") and hasattr(source, "iloc") and hasattr(type(source), "dtypes"):
        where, parts = "DataFrame", read_pandas(source, na)
    elif _module_of(source).startswith("polars") and hasattr(source, "get_column"):
        where, parts = "DataFrame", read_polars(source, na)
    elif _module_of(source).startswith("pyarrow") and hasattr(source, "column_names"):
        where, parts = "Table", read_arrow(source, "Table", na)
    elif isinstance(source, dict):
        where, parts = "dict", read_dict(source, na)
    elif isinstance(source, np.ndarray):
        where, parts, named = "array", read_array(source, names, na), names is not None
    elif hasattr(source, "tocsr") and hasattr(source, "nnz"):
        raise InvalidTypeError(
            f"read_table takes no scipy sparse matrix ({type(source).__name__}): it would densify it; "
            f"pass the matrix to the network as it is"
        )
    else:
        raise InvalidTypeError(f"cannot read a table from a {type(source).__name__}; expected {_ACCEPTED}")
    columns, kinds, declared, lines = parts
    return _finish(columns, kinds, declared, lines, where, named)


def _module_of(obj):
    return type(obj).__module__ or ""


def _finish(columns, kinds, declared, lines, source, named):
    """Name unnamed columns, drop a saved index, refuse an empty table."""
    notes = []
    if not columns:
        raise DataError(f"{source}: the table has no columns")
    n_rows = len(next(iter(columns.values())))
    if n_rows == 0:
        raise DataError(f"{source}: the table has no rows")
    first = next(iter(columns))
    if first == "" or _UNNAMED.fullmatch(first):
        index = _saved_index(columns[first], kinds[first])
        if index is not None:
            del columns[first]
            notes.append(f"dropped the unnamed first column: it holds {index} (a saved index), not a feature")
            if not columns:
                raise DataError(f"{source}: the only column is an unnamed row index; there are no features")
    for j, name in enumerate(list(columns)):
        if name == "":
            new = f"column_{j}"
            while new in columns:
                new += "_"
            columns = {new if k == "" else k: v for k, v in columns.items()}
            kinds[new], declared[new] = kinds[name], declared.get(name, False)
            notes.append(
                f"column {j} has no name; it is used as a feature named {new!r} "
                f"(drop it with drop=[{new!r}] / --drop {new} if it is not one)"
            )
        elif _UNNAMED.fullmatch(name):
            notes.append(
                f"column {name!r} (an unnamed column as pandas names it) is used as a feature "
                f"(drop it with drop=[{name!r}] / --drop '{name}' if it is not one)"
            )
    return Table(columns, kinds, declared, source=source, named=named, notes=notes, lines=lines)


def _saved_index(col, kind):
    """How a column that looks like a saved row index reads ("the row numbers 0..9"), else None."""
    if kind != NUMERIC or np.isnan(col).any() or not (col == np.round(col)).all() or col.min() < 0:
        return None
    n = len(col)
    if np.array_equal(col, np.arange(n)) or np.array_equal(col, np.arange(1, n + 1)):
        return f"the row numbers {int(col[0])}..{int(col[-1])}"
    if np.unique(col).size == n:
        return (
            f"{n} distinct whole numbers from {int(col.min())} to {int(col.max())}, "
            f"like the index of a filtered or shuffled DataFrame"
        )
    return None

"""Readers of each kind of raw source into named 1-D columns (numeric float64 or categorical object of str).

Each ``read_*`` returns ``(columns, kinds, declared, lines)`` for
:func:`deltaprop.tabular.table.read_table`, which builds the Table.
"""

import math
import numbers


import numpy as np

from ..errors import DataError, InvalidArgumentError, InvalidTypeError, describe

__all__ = ["category_str", "name_list", "as_names", "duplicates", "na_set", "MISSING_TOKENS", "NUMERIC", "CATEGORICAL"]

NUMERIC, CATEGORICAL = "numeric", "categorical"

#: Cells of text (CSV, strings in a dict or an array) read as missing, in any case.
MISSING_TOKENS = ("", "NA", "N/A", "NaN", "null", "None", "?")
_MISSING = frozenset(token.lower() for token in MISSING_TOKENS)
_BOOLS = {"true": "True", "false": "False"}
_LISTED = 20  # names listed in a message before "... and N more"


def category_str(value):
    """The category a number stands for: ``3.0`` -> ``"3"``, ``2.5`` -> ``"2.5"``, NaN -> None.

    Whole numbers lose the ``.0`` so that a CSV cell ``3`` and a pandas ``3``
    name the same category.
    """
    v = float(value)
    if math.isnan(v):
        return None
    if v.is_integer() and abs(v) < 2.0**53:
        return str(int(v))
    return repr(v)


def name_list(names, limit=_LISTED):
    """``'a', 'b', ... and N more`` for a message."""
    names = list(names)
    shown = ", ".join(repr(str(n)) for n in names[:limit])
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")


def duplicates(names):
    """The names that occur more than once in ``names``, sorted."""
    seen, twice = set(), set()
    for n in names:
        (twice if n in seen else seen).add(n)
    return sorted(twice)


def as_names(names, what):
    if isinstance(names, str):
        return [names]
    try:
        names = list(names)
    except TypeError:
        raise InvalidTypeError(f"{what} must be a column name or a list of them, got {describe(names)}") from None
    for n in names:
        if not isinstance(n, str):
            raise InvalidTypeError(f"{what} must hold column names (str), got {describe(n)}")
    return names


# ------------------------------------------------------------------ columns
class Tokens(frozenset):
    """The extra missing-value tokens, carrying the columns named categorical (read as text, never as numbers)."""

    categorical = frozenset()


def na_set(na_values, categorical=None):
    tokens = _tokens(na_values)
    out = Tokens(tokens)
    out.categorical = frozenset(categorical or ())
    return out


def _tokens(na_values):
    if na_values is None:
        return frozenset()
    tokens = [na_values] if isinstance(na_values, str) else na_values
    try:
        tokens = [t.strip() if isinstance(t, str) else t for t in tokens]
    except TypeError:
        raise InvalidTypeError(f"na_values must be a list of str, got {describe(na_values)}") from None
    for t in tokens:
        if not isinstance(t, str):
            raise InvalidTypeError(f"na_values must hold str, got {describe(t)}")
    return frozenset(tokens)


def _numeric(values, name, table_where):
    """float64 copy of real values; an infinity is a DataError naming the row."""
    col = np.array(values, dtype=np.float64)
    bad = np.isinf(col)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{table_where(i)}, column {name!r}: {float(col[i])!r} is not a finite number "
            f"(a missing value is NaN or empty)"
        )
    return col


def _text_column(cells, name, na, where):
    """A column of stripped text cells: numeric if every present cell reads as a number, else categorical."""
    n = len(cells)
    missing = np.fromiter((c.lower() in _MISSING or c in na for c in cells), dtype=bool, count=n)
    present = [c for c, m in zip(cells, missing) if not m]
    if not present:
        return np.full(n, np.nan), NUMERIC
    values = None
    if name not in getattr(na, "categorical", ()):
        try:
            values = np.array(present, dtype=np.float64)
        except ValueError:
            _refuse_mixed(cells, missing, name, where)
    if values is not None:
        rows = np.flatnonzero(~missing)
        bad = np.isinf(values)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise DataError(f"{where(int(rows[k]))}, column {name!r}: {present[k]!r} is not a finite number")
        col = np.full(n, np.nan)
        col[rows] = values  # a "-nan" cell stays NaN: missing
        return col, NUMERIC
    if {c.lower() for c in set(present)} <= _BOOLS.keys():
        cells = [_BOOLS.get(c.lower(), c) for c in cells]
    col = np.empty(n, dtype=object)
    col[:] = [None if m else c for c, m in zip(cells, missing)]
    return col, CATEGORICAL


def _refuse_mixed(cells, missing, name, where):
    """A column of numbers with a few words among them is a typo or an unknown missing token: ask, never guess."""
    numbers, words = 0, []
    for i, (c, m) in enumerate(zip(cells, missing)):
        if m:
            continue
        try:
            float(c)
        except ValueError:
            words.append(i)
        else:
            numbers += 1
    if numbers and numbers >= len(words):
        i = words[0]
        raise DataError(
            f"{where(i)}, column {name!r}: {cells[i]!r} is not a number, while {numbers} other value"
            f"{'s' if numbers != 1 else ''} of the column are; if {cells[i]!r} means a missing value add it with "
            f"--na-values (na_values=[...]); if the column holds categories name it with --categorical {name} "
            f"(categorical=[...])")


def _is_na(v):
    return v is None or (isinstance(v, float) and v != v) or type(v).__name__ in ("NAType", "NaTType")


def _plain_text(values):
    """Whether ``values`` hold str (at least one; no subclass) and missing values alone: the usual text column."""
    types = set(map(type, values))
    if str not in types:
        return False
    for t in types - {str, type(None)}:
        if t is float:
            if any(v == v for v in values if type(v) is float):
                return False  # a number among the text
        elif t.__name__ not in ("NAType", "NaTType"):
            return False
    return True


def _object_column(values, name, na, where, text):
    """A column of Python objects (None/NaN/pd.NA missing).

    All bools: categorical "False"/"True". No str and all real numbers:
    numeric. All str and ``text``: read like CSV cells. Otherwise categorical,
    numbers written by :func:`category_str`. Any other type is a DataError.
    """
    n = len(values)
    if _plain_text(values):  # what the loops below make of text and gaps, without a type test per value
        if text:
            return _text_column(["" if type(v) is not str else v.strip() for v in values], name, na, where)
        col = np.empty(n, dtype=object)
        col[:] = [v if type(v) is str and not (na and v.strip() in na) else None for v in values]
        return col, CATEGORICAL
    kinds = set()
    for i, v in enumerate(values):
        if _is_na(v):
            continue
        if isinstance(v, (bool, np.bool_)):
            kinds.add("bool")
        elif isinstance(v, numbers.Real):
            kinds.add("number")
        elif isinstance(v, str):
            kinds.add("str")
        else:
            raise DataError(
                f"{where(i)}, column {name!r}: cannot use a value of type {type(v).__name__} "
                f"({describe(v)}); convert the column to numbers or strings first"
            )
    if kinds <= {"number"}:
        return _numeric([np.nan if _is_na(v) else float(v) for v in values], name, where), NUMERIC
    if kinds == {"str"} and text:
        return _text_column(["" if _is_na(v) else v.strip() for v in values], name, na, where)
    col = np.empty(n, dtype=object)
    col[:] = [_category_of(v, na) for v in values]
    return col, CATEGORICAL


def _category_of(v, na):
    if _is_na(v):
        return None
    if isinstance(v, (bool, np.bool_)):
        return "True" if v else "False"
    if isinstance(v, str):
        return None if v.strip() in na else str(v)
    return category_str(v)


def _array_column(values, name, na, where):
    """One column given as a list or a 1-D array (a dict's value, an array's column)."""
    if isinstance(values, np.ndarray):
        arr = values
    else:
        try:
            arr = np.empty(len(values), dtype=object)
        except TypeError:
            raise DataError(f"{where()}, column {name!r}: expected a list or 1-D array, got {describe(values)}") \
                from None
        arr[:] = list(values)
    if arr.ndim != 1:
        raise DataError(f"{where()}, column {name!r}: expected a 1-D column, got shape {arr.shape}")
    if arr.dtype.kind == "b":
        return _object_column(arr.tolist(), name, na, where, text=False)
    if arr.dtype.kind in "iuf":
        return _numeric(arr, name, where), NUMERIC
    if arr.dtype.kind in "US":
        return _text_column([str(v).strip() for v in arr.tolist()], name, na, where)
    if arr.dtype.kind == "O":
        return _object_column(arr.tolist(), name, na, where, text=True)
    raise DataError(_refuse_kind(where(), name, arr.dtype))


def _refuse_kind(where, name, dtype):
    return (
        f"{where}, column {name!r}: cannot use values of type {dtype} as a feature or target; "
        f"convert it to numbers (e.g. days since a date) or strings first"
    )


def _bool_column(values):
    col = np.empty(len(values), dtype=object)
    col[:] = [None if _is_na(v) else ("True" if v else "False") for v in values]
    return col


# ------------------------------------------------------------------ sources
def _csv_rows(real, path):
    """``(header, rows, lines)`` of a CSV file, checked for shape: every cell kept as text.

    A table keeps its cells as text until each column's kind is known, so it
    reads rows; :mod:`deltaprop.data.csvfile` reads numeric files (NPY-like
    data in CSV form, ``deltaprop.data.load_csv``) in blocks of parsed numbers
    instead, to bound memory on large files. Both use the ``csv`` module with
    the same rules (UTF-8 with an optional BOM, blank lines skipped, a field
    count checked against the header's).
    """
    import csv
    import io

    from ..checks import MAX_DATA_BYTES, open_binary

    header, rows, lines, reader = None, [], [], None
    try:
        with open_binary(real, "data file", MAX_DATA_BYTES) as raw, \
                io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                if header is None:
                    header = [name.strip() for name in row]
                    if len(set(header)) != len(header):
                        name = duplicates(header)[0]
                        first = header.index(name)
                        raise DataError(f"{path}: duplicate column name {name!r} in the header (columns "
                                        f"{first + 1} and {header.index(name, first + 1) + 1})")
                elif len(row) != len(header):
                    raise DataError(f"{path}, line {reader.line_num}: expected {len(header)} fields (as in the "
                                    f"header), found {len(row)}")
                else:
                    rows.append(row)
                    lines.append(reader.line_num)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num if reader else 1}: {exc}") from None
    if header is None:
        raise DataError(f"{path}: the file is empty (expected a header row and data rows)")
    if not rows:
        raise DataError(f"{path}: the file has a header but no data rows")
    return header, rows, lines


def read_csv_file(real, path, na):
    header, rows, lines = _csv_rows(real, path)
    lines = np.asarray(lines, dtype=np.int64)

    def where(i=None):
        return path if i is None else f"{path}, line {int(lines[i])}"

    columns, kinds = {}, {}
    for name, cells in zip(header, zip(*rows)):
        columns[name], kinds[name] = _text_column([c.strip() for c in cells], name, na, where)
    return columns, kinds, {}, lines


def read_arrow(table, source, na):
    import pyarrow as pa
    import pyarrow.types as pat

    def where(i=None):
        return source if i is None else f"{source}, row {i}"

    columns, kinds, declared = {}, {}, {}
    for name, col in zip(table.column_names, table.columns):
        t = col.type
        if pat.is_dictionary(t) or pat.is_string(t) or pat.is_large_string(t) or _is_string_view(t):
            values, is_declared = _object_column(col.to_pylist(), name, na, where, text=False), True
        elif pat.is_boolean(t):
            values, is_declared = (_bool_column(col.to_pylist()), CATEGORICAL), True
        elif pat.is_integer(t) or pat.is_floating(t) or pat.is_decimal(t):
            numeric = col.cast(pa.float64()).to_numpy(zero_copy_only=False)
            values, is_declared = (_numeric(numeric, name, where), NUMERIC), False
        elif pat.is_null(t):
            values, is_declared = (np.full(len(col), np.nan), NUMERIC), False
        else:
            raise DataError(_refuse_kind(source, name, t))
        (columns[name], kinds[name]), declared[name] = values, is_declared and values[1] == CATEGORICAL
    return columns, kinds, declared, None


def _is_string_view(t):
    import pyarrow.types as pat

    return hasattr(pat, "is_string_view") and pat.is_string_view(t)


def read_arrow_file(real, path, fmt, na):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise DataError(f"{path}: reading {fmt} needs pyarrow: pip install 'deltaprop[parquet]'") from None
    try:
        if fmt == "Parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(real)
        else:
            import pyarrow.feather as feather

            table = feather.read_table(real)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the {fmt} file ({exc})") from None
    return read_arrow(table, path, na)


def read_path(path, na):
    """A Parquet (``PAR1``), Arrow/Feather (``ARROW1``) or else CSV file, by its first bytes."""
    from ..checks import MAX_DATA_BYTES, input_file, open_binary

    with input_file(path) as real:
        with open_binary(real, "data file", MAX_DATA_BYTES) as f:
            head = f.read(6)
        if head[:4] == b"PAR1":
            return read_arrow_file(real, path, "Parquet", na)
        if head == b"ARROW1":
            return read_arrow_file(real, path, "Arrow/Feather", na)
        return read_csv_file(real, path, na)


def _pandas_name(name, j):
    if isinstance(name, str):
        return name
    if isinstance(name, (numbers.Integral, np.integer)) and not isinstance(name, bool):
        return str(int(name))
    raise DataError(f"DataFrame column {j} is named {describe(name)}; column names must be strings (or integers)")


def _numpy_kind(dtype):
    """A NumPy dtype's family as read_pandas sorts it ("numeric", "bool", "object"); None: pandas' tests decide."""
    if not isinstance(dtype, np.dtype):
        return None
    kind = dtype.kind
    return "numeric" if kind in "iuf" else "bool" if kind == "b" else "object" if kind == "O" else None


def read_pandas(df, na):
    import pandas as pd

    def where(i=None):
        return "DataFrame" if i is None else f"DataFrame, row {i}"

    columns, kinds, declared = {}, {}, {}
    # items() gives the columns by position (duplicate names too), without iloc's indexing machinery per column
    for j, (label, s) in enumerate(df.items()):
        name, dtype = _pandas_name(label, j), s.dtype
        if name in columns:
            raise DataError(f"DataFrame: duplicate column name {name!r} (columns {list(columns).index(name)} and {j})")
        family = _numpy_kind(dtype)  # plain NumPy dtypes: the answer pandas' tests below would give, sooner
        if family is None and isinstance(dtype, pd.CategoricalDtype):
            cats = [_category_of(c, na) for c in dtype.categories.tolist()] + [None]
            codes = s.cat.codes.to_numpy()
            col = np.empty(len(s), dtype=object)
            col[:] = [cats[c] for c in codes.tolist()]
            values, is_declared = (col, CATEGORICAL), True
        elif family == "bool" or (family is None and pd.api.types.is_bool_dtype(dtype)):
            values, is_declared = (_bool_column(s.tolist()), CATEGORICAL), True
        elif family == "numeric" or (family is None and pd.api.types.is_numeric_dtype(dtype)
                                     and not pd.api.types.is_complex_dtype(dtype)):
            values, is_declared = (_numeric(s.to_numpy(dtype=np.float64, na_value=np.nan), name, where),
                                   NUMERIC), False
        elif family == "object" or (family is None and (pd.api.types.is_object_dtype(dtype)
                                                        or pd.api.types.is_string_dtype(dtype))):
            values = _object_column(s.to_numpy(dtype=object).tolist(), name, na, where, text=False)
            is_declared = values[1] == CATEGORICAL
        else:
            raise DataError(_refuse_kind("DataFrame", name, dtype))
        (columns[name], kinds[name]), declared[name] = values, is_declared
    return columns, kinds, declared, None


def read_polars(df, na):
    import polars as pl

    def where(i=None):
        return "DataFrame" if i is None else f"DataFrame, row {i}"

    columns, kinds, declared = {}, {}, {}
    for name in df.columns:
        s = df.get_column(name)
        base = s.dtype.base_type()
        if base in (pl.String, pl.Categorical, pl.Enum):
            values, is_declared = _object_column(s.to_list(), name, na, where, text=False), True
        elif base == pl.Boolean:
            values, is_declared = (_bool_column(s.to_list()), CATEGORICAL), True
        elif s.dtype.is_numeric():
            values, is_declared = (_numeric(s.cast(pl.Float64).to_numpy(), name, where), NUMERIC), False
        elif base == pl.Null:
            values, is_declared = (np.full(len(s), np.nan), NUMERIC), False
        else:
            raise DataError(_refuse_kind("DataFrame", name, s.dtype))
        (columns[name], kinds[name]), declared[name] = values, is_declared and values[1] == CATEGORICAL
    return columns, kinds, declared, None


def read_dict(data, na):
    def where(i=None):
        return "dict" if i is None else f"dict, row {i}"

    columns, kinds = {}, {}
    for name, values in data.items():
        if not isinstance(name, str):
            raise DataError(f"dict: column names must be strings, got {describe(name)}")
        columns[name], kinds[name] = _array_column(values, name, na, where)
    lengths = {name: len(col) for name, col in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"dict: the columns differ in length: {describe(lengths, 300)}")
    return columns, kinds, {}, None


def read_array(X, names, na):
    if X.ndim != 2:
        hint = (
            "for one feature use X.reshape(-1, 1), for one sample X.reshape(1, -1)" if X.ndim == 1
            else "flatten each sample, e.g. X.reshape(len(X), -1)"
        )
        raise DataError(f"a table from an array needs 2-D (rows, columns), got shape {X.shape}: {hint}")
    d = X.shape[1]
    if names is None:
        names = [f"x{j}" for j in range(d)]
    else:
        names = as_names(names, "names")
        if len(names) != d:
            raise InvalidArgumentError(f"names has {len(names)} names for an array of {d} columns")
        if len(set(names)) != d:
            raise InvalidArgumentError(f"names holds duplicates: {name_list(duplicates(names))}")

    def where(i=None):
        return "array" if i is None else f"array, row {i}"

    columns, kinds = {}, {}
    for j, name in enumerate(names):
        columns[name], kinds[name] = _array_column(X[:, j], name, na, where)
    return columns, kinds, {}, None



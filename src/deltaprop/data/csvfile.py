"""CSV files with a header row: features by column, the target by name or index."""

import os

import numpy as np

from ..checks import path_str
from ..errors import DataError, InvalidArgumentError, InvalidTypeError, describe
from .dataset import Dataset

__all__ = ["load_csv", "read_csv", "resolve_column", "parse_features"]


def load_csv(path, target=-1, delimiter=","):
    """Read a CSV file with a header row into a :class:`Dataset`.

    Parameters
    ----------
    path : str or os.PathLike
        A UTF-8 text file (a byte-order mark and Windows line endings are
        fine; quoted fields follow the ``csv`` module's rules). Blank lines are
        skipped.
    target : str or int, default -1
        The target column: its name in the header, or its index (negative
        counts from the end; the default is the last column).
    delimiter : str, default ","
        One character.

    Returns
    -------
    Dataset
        ``X``: float64 array of shape (n_rows, n_columns - 1), the other
        columns in file order. ``y``: shape (n_rows,); float64 if every target
        value reads as a number, else an array of str (class labels kept as
        written, surrounding spaces removed; ``class_names`` is then their
        sorted distinct values).

    Raises
    ------
    DataError
        Empty file, a header and no data rows, fewer than two columns,
        duplicate column names, no such target column, a row with the wrong
        number of fields (the message names the line, counting the header as
        line 1, and the field counts), a missing or non-numeric feature value
        or a NaN or infinity among the features (the message names the line,
        the column and the value), a missing or non-finite target value.
    """
    path = path_str(path)
    if isinstance(target, bool) or not isinstance(target, (str, int, np.integer)):
        raise InvalidTypeError(f"target must be a column name (str) or index (int), got {describe(target)}")
    header, rows, lines = read_csv(path, delimiter)
    n_cols = len(header)
    if n_cols < 2:
        raise DataError(
            f"{path}: the header has {n_cols} column {header!r}; expected at least two "
            f"(features and a target) separated by {delimiter!r}"
        )

    t = resolve_column(path, header, target)
    feature_cols = [j for j in range(n_cols) if j != t]
    feature_names = [header[j] for j in feature_cols]
    cells = [row[:t] + row[t + 1 :] for row in rows]
    X = parse_features(path, cells, lines, feature_names)

    raw_y = [row[t].strip() for row in rows]
    for value, line in zip(raw_y, lines):
        if not value:
            raise DataError(f"{path}, line {line}, column {header[t]!r}: missing target value (empty field)")
    try:
        y = np.array(raw_y, dtype=np.float64)
    except ValueError:
        y = np.array(raw_y, dtype=str)
        class_names = [str(c) for c in np.unique(y)]
    else:
        bad = np.flatnonzero(~np.isfinite(y))
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"{path}, line {lines[i]}, column {header[t]!r}: "
                f"target value {raw_y[i]!r} is not a finite number"
            )
        class_names = None
    return Dataset(
        X=X,
        y=y,
        feature_names=feature_names,
        target_name=header[t],
        class_names=class_names,
        name=os.path.basename(path),
    )


def read_csv(path, delimiter):
    """Header, data rows and their line numbers of a CSV file, checked for shape.

    Returns ``(header, rows, lines)``: the header's names (stripped), every
    non-blank data row as a list of str, and each row's line number (the
    header counting as line 1). Raises a DataError for an unreadable file, an
    empty file, duplicate column names, no data rows, or a row whose field
    count differs from the header's.
    """
    import csv

    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise InvalidArgumentError(f"delimiter must be a single character, got {describe(delimiter)}")
    header, header_line, rows, lines = None, 0, [], []
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                if header is None:
                    header, header_line = [name.strip() for name in row], reader.line_num
                else:
                    rows.append(row)
                    lines.append(reader.line_num)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num}: {exc}") from None

    if header is None:
        raise DataError(f"{path}: the file is empty (expected a header row and data rows)")
    seen = {}
    for j, name in enumerate(header):
        if name in seen:
            raise DataError(
                f"{path}: duplicate column name {name!r} in the header (columns {seen[name] + 1} and {j + 1})"
            )
        seen[name] = j
    if not rows:
        raise DataError(f"{path}: the file has a header (line {header_line}) but no data rows")
    n_cols = len(header)
    for row, line in zip(rows, lines):
        if len(row) != n_cols:
            raise DataError(
                f"{path}, line {line}: expected {n_cols} fields (as in the header), found {len(row)}"
            )
    return header, rows, lines


def resolve_column(path, header, target):
    """Index of the target column named or numbered by ``target``."""
    if isinstance(target, str):
        if target not in header:
            raise DataError(f"{path}: no column named {target!r}; the columns are {header}")
        return header.index(target)
    n_cols = len(header)
    if not -n_cols <= target < n_cols:
        raise DataError(
            f"{path}: target column index {int(target)} is out of range for {n_cols} columns {header}"
        )
    return int(target) % n_cols


def parse_features(path, cells, lines, names):
    """Parse a list of rows of strings into a finite float64 array."""
    try:
        X = np.array(cells, dtype=np.float64)
    except ValueError:
        # Find the first cell that does not parse, to name it. Python's float()
        # is the reference; if it accepts every cell, its values stand.
        X = np.empty((len(cells), len(names)), dtype=np.float64)
        for i, row in enumerate(cells):
            for j, value in enumerate(row):
                try:
                    X[i, j] = float(value)
                except ValueError:
                    where = f"{path}, line {lines[i]}, column {names[j]!r}"
                    if not value.strip():
                        raise DataError(f"{where}: missing value (empty field)") from None
                    raise DataError(f"{where}: cannot read {value!r} as a number") from None
    bad = ~np.isfinite(X)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise DataError(
            f"{path}, line {lines[i]}, column {names[j]!r}: {cells[i][j].strip()!r} is not a finite number "
            f"({int(bad.sum())} NaN or infinite feature value(s) in the file)"
        )
    return X

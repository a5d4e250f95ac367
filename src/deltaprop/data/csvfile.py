"""CSV files with a header row: features by column, the target by name or index."""

import os

import numpy as np

from ..checks import MAX_DATA_BYTES, input_file, open_binary, path_str
from ..errors import DataError, InvalidArgumentError, InvalidTypeError, describe
from .dataset import Dataset

__all__ = ["load_csv", "read_table", "resolve_column", "parse_features"]


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
        the column and the value), a missing or non-finite target value;
        a file over :data:`deltaprop.checks.MAX_DATA_BYTES` (16 GiB).

    Notes
    -----
    A pipe (``<(cat f.csv)``) is read once (:func:`deltaprop.checks.input_file`).
    Memory is bounded by the file's size: rows are parsed in blocks (see
    :func:`read_table`); for numeric data the peak stays below
    8 × the file's size + 16 MiB.
    """
    path = path_str(path)
    if isinstance(target, bool) or not isinstance(target, (str, int, np.integer)):
        raise InvalidTypeError(f"target must be a column name (str) or index (int), got {describe(target)}")

    def choose(header):
        if len(header) < 2:
            raise DataError(
                f"{path}: the header has {len(header)} column {header!r}; expected at least two "
                f"(features and a target) separated by {delimiter!r}"
            )
        return resolve_column(path, header, target)

    with input_file(path) as real:
        header, t, X, y = read_table(real, delimiter, choose, path)
    feature_names = [name for j, name in enumerate(header) if j != t]
    class_names = [str(c) for c in np.unique(y)] if y.dtype.kind == "U" else None
    return Dataset(
        X=X,
        y=y,
        feature_names=feature_names,
        target_name=header[t],
        class_names=class_names,
        name=os.path.basename(path),
    )


#: cells per block of rows parsed at once (bounds the Python objects alive while reading)
_BLOCK_CELLS = 1 << 16


def read_table(real, delimiter, choose, path):
    """Read a CSV file block by block: ``(header, t, X, y)``.

    ``choose(header)`` returns the target column's index or None; ``X`` is
    float64 of the other columns, ``y`` float64 (every target value a
    number) or str (class labels, stripped), None when ``t`` is None. Rows
    are parsed in blocks of about 65,536 cells, so the Python objects alive
    at once are bounded; the arrays are joined at the end.

    Memory: at most about 2 × (8 bytes × cells + 4 × (longest label) × rows)
    plus a constant (about 16 MiB): a cell takes at least 2 bytes of the
    file, so for numbers the peak stays below 8 × the file's size + 16 MiB.
    Errors name ``path``, the line (the header is line 1), the column and
    the value.
    """
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise InvalidArgumentError(f"delimiter must be a single character, got {describe(delimiter)}")
    labels = False
    while True:
        try:
            return _read_blocks(real, delimiter, choose, path, labels)
        except _NotNumbers:
            labels = True  # a target value is not a number: read again, keeping the labels' text


class _NotNumbers(Exception):
    pass


def _read_blocks(real, delimiter, choose, path, labels):
    import csv
    import io

    header, t, xs, ys, reader = None, None, [], [], None
    try:
        with open_binary(real, "data file", MAX_DATA_BYTES) as raw, \
                io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)
            block, lines = [], []
            for row in reader:
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # a blank line
                if header is None:
                    header, header_line = _header(path, row), reader.line_num
                    t = choose(header)
                    size = max(1, _BLOCK_CELLS // len(header))
                    continue
                if len(row) != len(header):
                    raise DataError(
                        f"{path}, line {reader.line_num}: expected {len(header)} fields (as in the header), "
                        f"found {len(row)}"
                    )
                block.append(row)
                lines.append(reader.line_num)
                if len(block) == size:
                    _parse_block(path, header, t, block, lines, labels, xs, ys)
                    block, lines = [], []
            if block:
                _parse_block(path, header, t, block, lines, labels, xs, ys)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{path}, line {reader.line_num if reader else 1}: {exc}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the data file: {exc.strerror or exc}") from None
    if header is None:
        raise DataError(f"{path}: the file is empty (expected a header row and data rows)")
    if not xs:
        raise DataError(f"{path}: the file has a header (line {header_line}) but no data rows")
    X = xs[0] if len(xs) == 1 else np.concatenate(xs)
    del xs
    y = None if t is None else (ys[0] if len(ys) == 1 else np.concatenate(ys))
    return header, t, X, y


def _header(path, row):
    header, seen = [name.strip() for name in row], {}
    for j, name in enumerate(header):
        if name in seen:
            raise DataError(
                f"{path}: duplicate column name {name!r} in the header (columns {seen[name] + 1} and {j + 1})"
            )
        seen[name] = j
    return header


def _parse_block(path, header, t, block, lines, labels, xs, ys):
    """Parse one block of rows: features into ``xs``, targets into ``ys``."""
    if t is None:
        xs.append(parse_features(path, block, lines, header))
        return
    names = header[:t] + header[t + 1:]
    xs.append(parse_features(path, [row[:t] + row[t + 1:] for row in block], lines, names))
    raw_y = [row[t].strip() for row in block]
    for value, line in zip(raw_y, lines):
        if not value:
            raise DataError(f"{path}, line {line}, column {header[t]!r}: missing target value (empty field)")
    if labels:
        ys.append(np.array(raw_y, dtype=str))
        return
    try:
        y = np.array(raw_y, dtype=np.float64)
    except ValueError:
        raise _NotNumbers from None
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path}, line {lines[i]}, column {header[t]!r}: target value {raw_y[i]!r} is not a finite number"
        )
    ys.append(y)


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

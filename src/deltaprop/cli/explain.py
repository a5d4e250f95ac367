"""``deltaprop explain``: how much each column moved each row's prediction, as CSV.

For every row of ``--data`` it writes one attribution per original column of
the model (:meth:`deltaprop.tabular.TabularModel.attributions`): integrated
gradients by default, gradient × input, or the gradient itself, with a
numeric column's missing indicator, a one-hot block and an embedding's
dimensions summed back to their column. Then what was explained (the class, or
the target), its value ``f(x)`` (a probability, a score or a value in the
target's units), ``f`` at the baseline, and the completeness gap
``Σ attributions − (f(x) − f(baseline))``.
"""

import csv
import os
import sys

import numpy as np

from ..atomic import atomic_write
from ..checks import input_file
from ..data import load_builtin, load_features
from ..errors import InvalidArgumentError
from ..tabular.schema import plural
from . import config as C
from .commands import _check_paths, _notes, _once
from .common import UsageError, is_builtin, parse_arg
from .config import OPTIONS_BY_KEY
from .model import open_model
from .prepare import is_table_source

__all__ = ["add_explain", "cmd_explain"]

#: the command line's method names → :mod:`deltaprop.attributions`'
METHODS = {"integrated": "integrated_gradients", "gradxinput": "gradient_x_input", "gradient": "gradient"}


def cmd_explain(args):
    """``deltaprop explain MODEL --data ROWS``: attributions as CSV, on standard output or written atomically."""
    model = open_model(args.model)
    _check_paths(args, {"--out": args.out})
    steps = parse_arg(args.steps, "--steps", C.integer(1))
    target = None if args.target is None else OPTIONS_BY_KEY["target"].parse(args.target, "--target")
    with _once(args.data) as data:
        raw = _rows(data, model, target)
        try:
            att = model.attributions(raw, method=METHODS[args.method], output=args.output, steps=steps)
        except InvalidArgumentError as exc:   # --output names no class (or output) of the model
            raise UsageError(f"--output: {exc}") from None
    _notes(model.last_report)
    header, rows = att.table()
    digits = 9 if att.values.dtype.itemsize == 4 else 17   # enough to read the very value back
    if args.out:
        with atomic_write(args.out, "w", encoding="utf-8", newline="") as out:
            _write(csv.writer(out, lineterminator="\n"), header, rows, digits)
        gap = np.nanmax(np.abs(att.gap), initial=0.0)
        print(f"wrote {args.out}: {plural(len(rows), 'row')}, {len(att.columns)} columns "
              f"({att.method}{f', {steps} steps' if att.method == 'integrated_gradients' else ''}); "
              f"largest completeness gap {gap:.3g}")
    else:
        _write(csv.writer(sys.stdout, lineterminator="\n"), header, rows, digits)
        sys.stdout.flush()
    return 0


def _rows(data, model, target):
    """The raw rows of ``--data``: standard input, a built-in set, a table file (its target dropped) or arrays."""
    if data == "-":  # standard input, copied once and bounded like any pipe
        with input_file("/dev/stdin", "standard input") as tmp:
            return _file_rows(tmp, model, target)
    if not os.path.exists(data) and is_builtin(data):
        return np.asarray(load_builtin(data).X)
    return _file_rows(data, model, target)


def _file_rows(path, model, target):
    if is_table_source(path):
        table = model.contract.read(path)
        if target is not None:
            table = table.select(drop=[table.names[target] if isinstance(target, int) else target])
        return table
    X, _ = load_features(path, n_features=len(model.feature_names), target=target)
    return np.asarray(X)


def _write(writer, header, rows, digits):
    writer.writerow(header)
    writer.writerows([[f"{v:.{digits}g}" if isinstance(v, float) else v for v in row] for row in rows])


def add_explain(sub, formatter):
    """The ``explain`` sub-command's parser (its one-line help is in :mod:`deltaprop.cli.parser`)."""
    explain = sub.add_parser(
        "explain", formatter_class=formatter,
        epilog=EXPLAIN_EXAMPLES,
        description="Write, for every row, how much each column moved the model's prediction: integrated "
                    "gradients (exact input gradients by backpropagation, integrated from the baseline, the "
                    "network input 0), gradient x input, or the gradient. One-hot blocks, missing indicators "
                    "and embeddings are summed back to their column.")
    explain.add_argument("model", metavar="MODEL", help="a model file written by 'deltaprop train'")
    explain.add_argument("--data", metavar="NAME|PATH", required=True,
                         help="the rows: a CSV (or Parquet, Feather), NPY or NPZ file, or a built-in data set; "
                              "- reads CSV from standard input")
    explain.add_argument("--method", choices=tuple(METHODS), default="integrated",
                         help="integrated gradients, gradient x input, or the gradient (default: integrated)")
    explain.add_argument("--output", metavar="CLASS",
                         help="the class whose probability is explained (default: each row's predicted class); "
                              "for a regression of several outputs, its index")
    explain.add_argument("--steps", default="64", metavar="N",
                         help="intervals of the trapezoid rule of integrated gradients (default: 64)")
    explain.add_argument("--target", metavar="COLUMN",
                         help="a column to drop from the data (name or index; the model's own target column "
                              "is never read)")
    explain.add_argument("-o", "--out", metavar="PATH", help="write the CSV here (default: standard output)")
    explain.set_defaults(func=cmd_explain)


EXPLAIN_EXAMPLES = """\
examples:
  deltaprop explain penguins.safetensors --data new_penguins.csv
      one row per penguin: an attribution per column, the class explained, its probability f(x),
      f at the baseline and the completeness gap
  deltaprop explain model.safetensors --data rows.csv --output Gentoo --out attributions.csv
  deltaprop explain model.safetensors --data rows.csv --method gradxinput

Integrated gradients add up to f(x) - f(baseline) up to the quadrature error (the gap column),
which shrinks as --steps grows.
"""

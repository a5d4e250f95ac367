"""``deltaprop report``: a run's report as one self-contained HTML file (:mod:`deltaprop.report_html`).

The source is read by what it holds, never by its name:

- an inspector log (JSON, ``Inspector(path=...)`` or ``Inspector.save``):
  curves, per-layer flows, histograms, and every warning;
- a checkpoint (``--checkpoint-dir``'s files, or the folder: its newest
  checkpoint): the inspector's records when the run had one, else the
  history's curves; its weights for ``--gradcheck``;
- a JSON-lines log (``train --log``, :class:`~deltaprop.callbacks.JSONLogger`):
  the curves alone;
- a model file: its training history (curves alone) and its weights.

Anything else is refused with a message that names what was found. The
report never overwrites its source (:func:`deltaprop.cli.paths.check_outputs`).
"""

import json
import os
import sys
from collections import namedtuple

import numpy as np

from ..checkpoint import latest_checkpoint, load_checkpoint
from ..checks import read_text_bounded
from ..diagnosis import diagnose, with_history
from ..errors import DataError, DeltapropError, ModelFileError
from ..inspector import MAX_LOG_BYTES, load_log
from ..io import build_network
from ..report import printable
from ..report_html import GRADCHECK_TOL, write_report
from ..tabular.files import load_model
from ..tensorfile import CHECKPOINT_FORMAT, MODEL_FORMAT, read_file
from .common import PROG, UsageError
from .paths import check_outputs

__all__ = ["add_report", "cmd_report", "read_source", "network_gradcheck"]

REPORT_EXAMPLES = """\
examples:
  deltaprop train --data digits --report run.html
      trains with an Inspector and writes the report at the end (also of a failed run)
  deltaprop report inspector.json --out run.html
  deltaprop report ckpt --out run.html --gradcheck
      the newest checkpoint in the folder ckpt, with a gradient check of its weights
  deltaprop report train-log.jsonl --out run.html          (a --log file: the curves alone)
  deltaprop report model.safetensors --out run.html        (its training history: the curves alone)

The page holds its style and its SVG charts: it opens offline, loads nothing and
can be mailed. Warnings name the layer and the epoch where the trouble was seen.
"""

#: rows of random data, and entries of each parameter block, for --gradcheck
GRADCHECK_ROWS = 8
GRADCHECK_ENTRIES = 24

#: what a source gave: its kind in words, the inspector log (or None), the history rows (or None), the network
Source = namedtuple("Source", "kind log history network")


def add_report(sub, formatter):
    """``report``: its arguments (its one-line help is in :mod:`deltaprop.cli.parser`)."""
    parser = sub.add_parser(
        "report", formatter_class=formatter, epilog=REPORT_EXAMPLES,
        description="Write a self-contained HTML report of a run from an inspector log, a checkpoint, a "
                    "--log file or a model file: the curves, each layer's gradient flow as small multiples, "
                    "histograms, and warnings in words (vanishing or exploding gradients, dead units, an "
                    "update ratio far from 1e-3, a validation gap).")
    parser.add_argument("source", metavar="CHECKPOINT_OR_LOG",
                        help="an inspector log (JSON), a checkpoint or a checkpoint folder, a --log file "
                             "(JSON lines) or a model file")
    parser.add_argument("-o", "--out", default="report.html", metavar="PATH",
                        help="where to write the HTML report (default: report.html)")
    parser.add_argument("--gradcheck", action="store_true",
                        help="add a gradient check of the weights (a checkpoint or a model file) on "
                             f"{GRADCHECK_ROWS} random rows")
    parser.add_argument("--title", metavar="TEXT", help="the report's heading (default: names the source)")
    parser.set_defaults(func=cmd_report)


def cmd_report(args):
    """``deltaprop report SOURCE --out PATH``: read the source, write the report; returns 0."""
    check_outputs({"source": args.source}, {"--out": args.out})
    path = args.source
    if os.path.isdir(path):
        found = latest_checkpoint(path)
        if found is None:
            raise UsageError(f"{printable(path, 200)} is a folder without checkpoints; give a log, a checkpoint "
                             f"or a model file")
        path = found
    source = read_source(path)
    notes, gradcheck = [], None
    if args.gradcheck:
        gradcheck, why = network_gradcheck(source.network) if source.network is not None else \
            (None, f"{os.path.basename(path)} is {source.kind}, which holds no weights; give a checkpoint or a "
                   f"model file")
        if why:
            notes.append(f"No gradient check: {why}.")
            print(f"{PROG}: note: no gradient check: {printable(why, 300)}", file=sys.stderr)
    title = args.title or f"deltaprop report: {os.path.basename(path)}"
    findings = diagnose(with_history(source.log, source.history) if source.history is not None else source.log)
    write_report(args.out, source.log, title=title, gradcheck=gradcheck, history=source.history, notes=notes,
                 facts=[("source", f"{path} ({source.kind})")])
    for f in findings:
        where = f"epoch {f['epoch']}" + (f", {f['layer']}" if f["layer"] else "")
        print(f"{f['severity']} ({printable(where, 200)}): {printable(f['message'], None)}")
    counts = [sum(f["severity"] == s for f in findings) for s in ("warning", "note")]
    said = ", ".join(f"{n} {w}{'s' if n != 1 else ''}" for n, w in zip(counts, ("warning", "note")) if n)
    print(f"wrote {printable(args.out, 200)} ({said or 'no warnings'})", flush=True)
    return 0


def read_source(path):
    """What ``path`` holds, as a :data:`Source`: an inspector log, a checkpoint, a JSON-lines log or a model file.

    Raises
    ------
    DataError
        A file that is none of these, or a JSON-lines log with a bad line (its number named).
    ModelFileError
        A checkpoint, model file or inspector log that is malformed (from their readers).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(9)
            size = os.fstat(f.fileno()).st_size
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    # a safetensors file: 8 bytes of header length (little-endian), then the header's "{"
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        return _tensor_file(path)
    if head.lstrip()[:1] not in (b"{", b""):
        raise DataError(f"{path}: not an inspector log, a checkpoint, a JSON-lines log (--log) or a model file "
                        f"(it starts with {head[:8]!r})")
    text = read_text_bounded(path, MAX_LOG_BYTES, "log", error=DataError)
    try:
        whole = json.loads(text)
    except ValueError:
        whole = None  # several lines: a JSON-lines log
    if isinstance(whole, dict) and "format" in whole:
        return Source("an inspector log", load_log(path), None, None)
    return Source("a JSON-lines log", None, _history_lines(path, text), None)


def _history_lines(path, text):
    """The epoch rows of a JSONLogger's file (override lines skipped)."""
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path}: line {number} is not JSON ({exc.msg}); a --log file holds one JSON object "
                            f"per line") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {number} is not a JSON object, got {type(row).__name__}")
        if "override" in row:
            continue
        if not isinstance(row.get("epoch"), int) or isinstance(row["epoch"], bool):
            raise DataError(f"{path}: line {number} has no epoch number; a --log file holds one row per epoch")
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: the log holds no epoch")
    return rows


def _tensor_file(path):
    """A checkpoint (the inspector's records or the history; the weights) or a model file (history, weights)."""
    fmt = read_file(path)[1].get("format")
    if fmt == CHECKPOINT_FORMAT:
        tensors, arch, info = load_checkpoint(path)
        net = build_network(path, arch)
        net.params[...] = tensors["params"]
        if "buffers" in tensors and getattr(net, "buffers", None) is not None:
            net.buffers[...] = tensors["buffers"]
        log = load_log(path) if "inspector" in info["callbacks"] else None
        return Source("a checkpoint", log, info["history"], net)
    if fmt == MODEL_FORMAT:
        model = load_model(path, as_tabular=True)
        if not model.history:
            raise ModelFileError(f"{path}: the model file holds no training history to report on")
        return Source("a model file", None, list(model.history), model.network)
    raise ModelFileError(f"{path}: a safetensors file that is neither a deltaprop checkpoint nor a model file "
                         f"(format {fmt!r})")


def network_gradcheck(network, seed=0):
    """``(rows for the report, None)`` of :func:`deltaprop.gradcheck` on random rows, or ``(None, why not)``."""
    from ..gradcheck import gradcheck, random_targets

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((GRADCHECK_ROWS, network.n_in))
    y = random_targets(network.loss.name, network.n_out, GRADCHECK_ROWS, rng)
    try:
        rows = gradcheck(network, X, y, max_entries=GRADCHECK_ENTRIES, seed=seed)
    except DeltapropError as exc:
        return None, f"random rows do not fit this network ({exc})"
    about = (f"On {GRADCHECK_ROWS} random standard-normal rows and random targets (seed {seed}), in prediction "
             f"mode, at most {GRADCHECK_ENTRIES} entries of each block, float64.")
    return {"rows": rows, "tol": GRADCHECK_TOL, "about": about}, None

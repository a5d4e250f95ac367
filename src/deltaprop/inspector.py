r"""Look inside backpropagation while a network trains: per-layer statistics, epoch by epoch (:class:`Inspector`).

``Inspector`` is a callback. One batch in ``every`` (batch ``b`` of an epoch
is sampled when ``b % every == 0``, so the first batch of every epoch is) it
reads, after the optimizer step, what the step left in each
:class:`~deltaprop.layers.Dense` layer at any depth (inside
:class:`~deltaprop.blocks.Residual` blocks too), for a batch of ``m`` rows:

- ``delta_norm``: ``‖Δ‖_F`` of the layer's ``Δ = ∂L/∂Z``, shape ``(m, n_out)``,
  as backward computed it (the 1/m of the mean loss folded in, so that
  ``grad_W = Δᵀ A_prev``);
- ``grad_W_norm``, ``grad_b_norm``: ``‖∂L/∂W‖_F`` and ``‖∂L/∂b‖₂`` of the
  gradient the update rule was given (after the data-parallel all-reduce, and
  after the optimizer's coupled weight decay and clipping, which it applies to
  the gradient in place); ``grad_b_norm`` is null for a layer without bias;
- ``update_ratio``: ``‖W_after − W_before‖_F / ‖W_before‖_F`` of the sampled
  step. ``W_before`` is a copy of ``W`` taken just before that step: at the
  end of the batch before it, or at the epoch's beginning;
- ``dead_fraction`` (ReLU layers): the fraction of units with ``z ≤ 0`` on
  every row of every sampled batch of the epoch. ReLU only: a unit of leaky
  ReLU, ELU, GELU or softplus still passes a gradient for ``z ≤ 0``, so it is
  not dead;
- ``saturated_fraction`` (sigmoid and tanh layers): the fraction of units
  saturated (sigmoid ``a < 0.01`` or ``a > 0.99``; tanh ``|a| > 0.99``, where
  ``σ'`` is below 0.02) on at least 95 % of the epoch's sampled rows;
- histograms of ``z`` (the pre-activations of the last sampled batch) and of
  ``grad_W`` (of the last sampled batch).

At each epoch's end it adds ``weight_norm`` (``‖W‖_F``), a histogram of
``W`` and the epoch's row of the history (loss, metrics, learning rate...).
Norms and update ratios are means over the epoch's sampled batches. The
Inspector only reads: the weights are bit-identical with and without it.

Data-parallel runs (``fit(..., comm=MPIComm())``, an Inspector of the same
settings on every rank): a sampled batch's statistics are the global batch's
(``‖Δ‖``, dead and saturated units, the ``z`` histogram over all ranks'
rows, summed with the run's communicator), so every rank holds the same log;
rank 0 alone writes the file.

The log (:meth:`Inspector.log`, :meth:`Inspector.save`, :func:`load_log`) is
JSON; numbers that are not finite (a diverging run) are written as null::

    {"format": "deltaprop.inspector", "version": 1,
     "settings": {"every": k, "bins": b},
     "network": {"layers": [{"path": "layers.0", "kind": "Dense", "activation": "relu",
                             "n_in": 784, "n_out": 256}, ...]},
     "epochs": [{"epoch": 1,                      # from 1, as the history's rows
                 "logs": {"epoch": 1, "loss": ..., "accuracy": ..., "lr": ..., "time": ...},
                 "samples": n,                    # batches sampled in the epoch
                 "layers": [{"path": "layers.0", "delta_norm": x, "grad_W_norm": x, "grad_b_norm": x or null,
                             "weight_norm": x, "update_ratio": x or null,
                             "dead_fraction": x or null, "saturated_fraction": x or null,
                             "hist": {"W": {"edges": [b + 1 numbers], "counts": [b integers]},
                                      "z": {...}, "grad_W": {...}}}, ...]}, ...]}

Paths name layers as model files do: ``"layers.3"``; ``"layers.2.layers.1"``
is the second layer of the block ``layers.2``. A histogram has ``bins``
equal bins from the least to the greatest finite value (NumPy widens an
empty range by ±0.5); without any, its lists are empty. ``update_ratio`` is
also null when ``‖W_before‖ = 0`` or when the batch before every sampled one
took no step (all its weights 0); the batch statistics are null when the
epoch sampled none.
"""

import copy
import json
import math
import os

import numpy as np

from . import activations
from .atomic import atomic_write
from .callbacks import Callback
from .checks import check_positive_int, open_input, path_str, read_text_bounded
from .errors import InvalidArgumentError, ModelFileError, describe
from .layers import Dense

__all__ = ["Inspector", "load_log", "dense_layers", "FORMAT", "VERSION", "DEFAULT_EVERY"]

FORMAT = "deltaprop.inspector"
VERSION = 1
#: one batch in 50: well under the 5 % target of more time on Fashion-MNIST 784-256-128-10 at batch 128, with
#: room for machines whose steps are faster (measured: benchmarks/bench_inspector.py, results/inspector.md)
DEFAULT_EVERY = 50
MAX_BINS = 10_000
#: a log file larger than this is refused unread
MAX_LOG_BYTES = 1 << 30
#: saturation thresholds on a = σ(z): (low, high) per activation class
_SATURATION = ((activations.Sigmoid, (0.01, 0.99)), (activations.Tanh, (-0.99, 0.99)))
_LAYER_KEYS = ("path", "delta_norm", "grad_W_norm", "grad_b_norm", "weight_norm", "update_ratio", "dead_fraction",
               "saturated_fraction", "hist")
_HISTS = ("W", "z", "grad_W")


def dense_layers(layers, prefix="layers"):
    """``[(path, Dense)]`` of every Dense layer at any depth (inside blocks: a layer with ``layers``), in order.

    Paths are ``"{prefix}.{i}"`` and ``"{prefix}.{i}.layers.{j}"``, the names model files give them.
    """
    out = []
    for i, layer in enumerate(layers):
        path = f"{prefix}.{i}"
        if isinstance(layer, Dense):
            out.append((path, layer))
        inner = getattr(layer, "layers", None)
        if isinstance(inner, (list, tuple)):
            out += dense_layers(inner, f"{path}.layers")
    return out


def _sumsq(a):
    """``Σ a²`` as a Python float: a dot product in ``a``'s dtype, redone in float64 when that overflows."""
    v = np.ravel(a, order="K")  # a view of a C- or F-ordered array
    s = float(np.dot(v, v))
    if math.isinf(s):
        s = float(np.dot(w := v.astype(np.float64), w))
    return s


def _clean(x):
    """A JSON number: ``x`` as float, or None when it is not finite (JSON has no NaN)."""
    x = float(x)
    return x if math.isfinite(x) else None


def _json_value(value):
    """A history value as JSON data: a bool, int, finite float or str; None for the rest."""
    for kind, cast in (((bool, np.bool_), bool), ((int, np.integer), int), ((float, np.floating), _clean),
                       (str, str)):
        if isinstance(value, kind):
            return cast(value)
    return None


def _range(a):
    """``(min, max, all finite)`` of ``a``'s finite values; ``(inf, -inf, ...)`` when there is none."""
    if a.size == 0:
        return math.inf, -math.inf, True
    lo, hi = float(np.min(a)), float(np.max(a))
    if math.isfinite(lo) and math.isfinite(hi):
        return lo, hi, True
    finite = a[np.isfinite(a)]
    return (float(finite.min()), float(finite.max()), False) if finite.size else (math.inf, -math.inf, False)


def _counts(a, bins, lo, hi, finite=True):
    """``(counts as float64, edges)`` of ``a``'s finite values, all in ``[lo, hi]``, in ``bins`` equal bins.

    The bins of :func:`numpy.histogram` (the last one closed, a range of one value widened by ±0.5), counted
    by one ``bincount`` of ``⌊(a − lo) · bins / (hi − lo)⌋``: several times faster.
    """
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    if not math.isfinite(hi - lo):  # a range beyond float64's: no histogram
        return np.zeros(bins), None
    values = np.ravel(a, order="K")
    if not finite:
        values = values[np.isfinite(values)]
    scale, dtype = bins / (hi - lo), values.dtype if values.dtype.kind == "f" else np.dtype(np.float64)
    if not max(hi - lo, scale) < float(np.finfo(dtype).max):  # the range or scale overflows float32: use float64
        dtype = np.dtype(np.float64)
    t = np.subtract(values, dtype.type(lo), dtype=dtype)
    t *= dtype.type(scale)
    index = t.astype(np.intp)
    np.clip(index, 0, bins - 1, out=index)  # hi itself falls in the last bin; rounding can step just outside
    return np.bincount(index, minlength=bins).astype(np.float64), np.linspace(lo, hi, bins + 1)


def _hist(counts, edges):
    """``{"edges", "counts"}`` as JSON lists; empty without edges, or with edges beyond float64's range."""
    empty = edges is None or not np.all(np.isfinite(edges))
    return {"edges": [] if empty else [float(e) for e in edges], "counts": [] if empty else [int(c) for c in counts]}


def _local_hist(a, bins):
    """The histogram of one array (the same on every rank: weights, all-reduced gradients)."""
    lo, hi, finite = _range(a)
    if lo > hi:
        return _hist(None, None)
    return _hist(*_counts(a, bins, lo, hi, finite))


def _saturation(activation):
    return next((limits for cls, limits in _SATURATION if isinstance(activation, cls)), None)


def _unit_rows(layer):
    """Per unit, the batch rows it is active on (ReLU: ``z > 0``) or saturated on (sigmoid, tanh), as float64."""
    limits = _saturation(layer.activation)
    hit = layer.z > 0 if limits is None else (layer.a < limits[0]) | (layer.a > limits[1])
    return np.count_nonzero(hit, axis=0).astype(np.float64)


class _Epoch:
    """What the sampled batches of one epoch add up to, on every rank the same (global sums)."""

    def __init__(self, epoch, layers):
        n = len(layers)
        self.epoch, self.samples, self.rows, self.ratio_samples = epoch, 0, 0, 0
        self.delta, self.grad_W, self.grad_b, self.ratio = [0.0] * n, [0.0] * n, [0.0] * n, [0.0] * n
        self.z_hist = [None] * n
        #: per unit, the sampled rows it was active on (ReLU) or saturated on (sigmoid, tanh); None for the others
        self.units = [np.zeros(l.n_out) if isinstance(l.activation, activations.ReLU) or _saturation(l.activation)
                      else None for _, l in layers]
        #: the last sampled batch's grad_W, as ``grad_W.T`` (shape (n_in, n_out)): its histogram is the epoch's
        self.grads = [None] * n

    def state(self):
        """``(meta, arrays)`` for a checkpoint taken mid-epoch."""
        meta = {"epoch": self.epoch, "samples": self.samples, "rows": self.rows,
                "ratio_samples": self.ratio_samples, "z_hist": self.z_hist,
                **{k: [_clean(v) for v in getattr(self, k)] for k in ("delta", "grad_W", "grad_b", "ratio")}}
        arrays = {f"{name}.{i}": a for name in ("units", "grads") for i, a in enumerate(getattr(self, name))
                  if a is not None}
        return meta, arrays

    @classmethod
    def from_state(cls, meta, arrays, layers):
        """The sums a mid-epoch checkpoint kept (its arrays' shapes checked by :func:`_check_state_arrays`)."""
        acc = cls(meta["epoch"], layers)
        acc.samples, acc.rows, acc.ratio_samples, acc.z_hist = (meta[k] for k in ("samples", "rows",
                                                                                   "ratio_samples", "z_hist"))
        for k in ("delta", "grad_W", "grad_b", "ratio"):
            setattr(acc, k, [math.nan if v is None else float(v) for v in meta[k]])
        for name in ("units", "grads"):
            kept = getattr(acc, name)
            for i in range(len(layers)):
                a = arrays.get(f"{name}.{i}")
                if (a is None) == (kept[i] is not None or (name == "grads" and acc.samples > 0)):
                    what = "missing" if a is None else "unexpected"
                    raise ModelFileError(f"inspector state: array {name}.{i} is {what}")
                kept[i] = None if a is None else np.array(a)
        return acc


class Inspector(Callback):
    r"""A callback that records, per epoch and per Dense layer, the statistics of backpropagation.

    See :mod:`deltaprop.inspector` for what is recorded and the log's format.

    Parameters
    ----------
    every : int, default 50
        Sample one batch in ``every`` (batches ``0, every, 2·every, ...`` of
        each epoch; 1 samples every batch). The default keeps the overhead
        under 5 % on Fashion-MNIST's 784-256-128-10 network at batch 128; the
        measurement is in ``benchmarks/results/inspector.md``.
    bins : int, default 30
        Bins of each histogram.
    path : str or path-like, optional
        Where to write the log (:meth:`save`), atomically at each epoch's end,
        by rank 0 alone in a data-parallel run.

    Notes
    -----
    A resumed run (``fit(..., resume_from=...)``) keeps the epochs recorded
    before its checkpoint, and the sampled batches of the epoch in progress
    (checkpoint key ``"inspector"``), so its log is the one an uninterrupted
    run would have written. A fresh run starts a fresh log.
    """

    state_key = "inspector"

    def __init__(self, every=DEFAULT_EVERY, bins=30, path=None):
        self.every = check_positive_int(every, "every")
        self.bins = check_positive_int(bins, "bins")
        if self.bins > MAX_BINS:
            raise InvalidArgumentError(f"bins must be at most {MAX_BINS}, got {self.bins}")
        self.path = None if path is None else path_str(path)
        self.records, self._network, self._layers = [], [], []
        self._acc = self._comm = None
        self._pending, self._restored = None, False  # set_state's mid-epoch (meta, arrays), until the run begins
        self._before, self._before_step = None, None  # copies of each W.T before a sampled step; run.step then

    # ------------------------------------------------------------ the hooks
    def on_train_begin(self, run):
        self._layers = dense_layers(run.network.layers)
        names = [str(getattr(l.activation, "name", type(l.activation).__name__)) for _, l in self._layers]
        network = [{"path": p, "kind": "Dense", "activation": a, "n_in": int(l.n_in), "n_out": int(l.n_out)}
                   for (p, l), a in zip(self._layers, names)]
        fresh = getattr(run, "start_epoch", 0) == 0 and getattr(run, "start_batch", 0) == 0
        if fresh or not self._restored:  # a fresh run, or one resumed from a checkpoint without inspector records
            self.records, self._pending = [], None
        elif self._network != network:
            raise InvalidArgumentError(f"the inspector's records are of another network ({self._network[:2]} ...), "
                                       f"not of this one ({network[:2]} ...)")
        self._network, self._restored = network, False
        comm = getattr(run, "comm", None)
        self._comm = comm if comm is not None and getattr(comm, "size", 1) > 1 else None
        self._acc = None
        if self._pending is not None:
            self._acc = _Epoch.from_state(*self._pending, self._layers)
            self._pending = None
        self._before, self._before_step = [np.empty((l.n_in, l.n_out), dtype=l.W.dtype) for _, l in self._layers], None

    def on_epoch_begin(self, run, epoch):
        if self._acc is None or self._acc.epoch != epoch or run.batch == 0:
            self._acc = _Epoch(epoch, self._layers)
        if run.batch % self.every == 0:
            self._snapshot(run)

    def on_batch_end(self, run, batch, logs):
        if batch % self.every == 0:
            self._sample(run)
        if (batch + 1) % self.every == 0 and batch + 1 < run.batches_per_epoch:
            self._snapshot(run)

    def on_epoch_end(self, run, epoch, logs):
        if self._acc is None or self._acc.epoch != epoch:
            self._acc = _Epoch(epoch, self._layers)
        self.records.append(self._record(logs))
        self._acc = None
        if self.path is not None and getattr(run, "is_root", True):
            self.save(self.path)

    # ----------------------------------------------------------- the work
    def _snapshot(self, run):
        """Copy every W (as W.T, C-ordered) before the step of a sampled batch."""
        for before, (_, layer) in zip(self._before, self._layers):
            np.copyto(before, layer.W.T)
        self._before_step = run.step

    def _sum(self, a):
        """``a`` summed over the run's processes, in place (as it is with one process)."""
        return a if self._comm is None else self._comm.allreduce_sum(a)

    def _sample(self, run):
        """Add the batch just stepped on to the epoch's sums (global over the ranks)."""
        acc, layers, n = self._acc, self._layers, len(self._layers)
        if acc is None or not layers:
            return
        size, rank = (1, 0) if self._comm is None else (self._comm.size, self._comm.rank)
        dsq = np.array([_sumsq(l.delta) if getattr(l, "delta", None) is not None else 0.0 for _, l in layers])
        ranges = np.zeros((size, n, 2))
        local = [_range(l.z) for _, l in layers]
        ranges[rank] = [r[:2] for r in local]
        units = [_unit_rows(l) for i, (_, l) in enumerate(layers) if acc.units[i] is not None]
        rows = np.array([float(layers[0][1].z.shape[0])])
        parts = [dsq, rows, ranges.reshape(-1)] + units
        summed = self._sum(np.concatenate(parts))
        dsq, rows, ranges, *units = np.split(summed, np.cumsum([p.size for p in parts])[:-1])
        ranges = ranges.reshape(size, n, 2)
        lo, hi = ranges[:, :, 0].min(axis=0), ranges[:, :, 1].max(axis=0)
        counts = np.zeros((n, self.bins))
        edges = [None] * n
        for i, (_, layer) in enumerate(layers):
            if lo[i] <= hi[i]:
                counts[i], edges[i] = _counts(layer.z, self.bins, lo[i], hi[i], local[i][2])
        counts = self._sum(counts.reshape(-1)).reshape(n, self.bins)
        acc.z_hist = [_hist(c, e) for c, e in zip(counts, edges)]
        units = iter(units)
        for counted in acc.units:
            if counted is not None:
                counted += next(units)
        acc.rows += int(rows[0])
        self._add_step(run, acc, dsq)

    def _add_step(self, run, acc, dsq):
        """The gradients' norms, the update ratio and a copy of grad_W (the same on every rank)."""
        ratio = self._before_step is not None and self._before_step == run.step - 1
        for i, (_, layer) in enumerate(self._layers):
            acc.delta[i] += math.sqrt(dsq[i]) if dsq[i] >= 0 else math.nan
            acc.grad_W[i] += math.sqrt(_sumsq(layer.grad_W))
            acc.grad_b[i] += math.sqrt(_sumsq(layer.grad_b)) if layer.bias else 0.0
            if ratio:
                before = self._before[i]
                w2 = _sumsq(before)
                np.subtract(before, layer.W.T, out=before)  # the copy is spent: W_before - W_after
                acc.ratio[i] += math.sqrt(_sumsq(before) / w2) if w2 > 0 else math.nan
            if acc.grads[i] is None:
                acc.grads[i] = np.empty((layer.n_in, layer.n_out), dtype=layer.grad_W.dtype)
            np.copyto(acc.grads[i], layer.grad_W.T)
        acc.samples += 1
        acc.ratio_samples += ratio
        self._before_step = None

    def _record(self, logs):
        """The epoch's entry of the log."""
        acc, out = self._acc, []
        n = acc.samples
        for i, (path, layer) in enumerate(self._layers):
            dead = sat = None
            if acc.units[i] is not None and acc.rows:
                if _saturation(layer.activation) is None:
                    dead = float(np.mean(acc.units[i] == 0))
                else:  # saturated on at least 95 % (19/20) of the sampled rows
                    sat = float(np.mean(acc.units[i] * 20 >= 19 * acc.rows))
            out.append({
                "path": path,
                "delta_norm": _clean(acc.delta[i] / n) if n else None,
                "grad_W_norm": _clean(acc.grad_W[i] / n) if n else None,
                "grad_b_norm": _clean(acc.grad_b[i] / n) if n and layer.bias else None,
                "weight_norm": _clean(math.sqrt(_sumsq(layer.W.T))),
                "update_ratio": _clean(acc.ratio[i] / acc.ratio_samples) if acc.ratio_samples else None,
                "dead_fraction": dead,
                "saturated_fraction": sat,
                "hist": {"W": _local_hist(layer.W.T, self.bins),
                         "z": acc.z_hist[i] if acc.z_hist[i] is not None else _hist(None, None),
                         "grad_W": _local_hist(acc.grads[i], self.bins) if acc.grads[i] is not None and n
                         else _hist(None, None)},
            })
        logs = {str(k): _json_value(v) for k, v in logs.items()}
        return {"epoch": int(logs.get("epoch") or acc.epoch + 1), "logs": logs, "samples": n, "layers": out}

    # ------------------------------------------------------------ the log
    def log(self):
        """The log as a dict (a copy): see the module notes for its keys."""
        return {"format": FORMAT, "version": VERSION, "settings": {"every": self.every, "bins": self.bins},
                "network": {"layers": copy.deepcopy(self._network)}, "epochs": copy.deepcopy(self.records)}

    def save(self, path):
        """Write :meth:`log` to ``path`` as JSON, atomically (a temporary file renamed over it)."""
        text = json.dumps(self.log(), allow_nan=False, separators=(",", ":"))
        with atomic_write(path_str(path)) as f:
            f.write(text + "\n")

    def get_state(self):
        """``(the log with "current": the epoch in progress's sums or None, their arrays)``: what a checkpoint keeps."""
        current, arrays = self._acc.state() if self._acc is not None else self._pending or (None, {})
        return {**self.log(), "current": copy.deepcopy(current)}, arrays

    def set_state(self, meta, arrays):
        check_log(meta, "inspector state", state=True)
        _check_state_arrays(meta, arrays)
        settings = {"every": self.every, "bins": self.bins}
        if meta["settings"] != settings:
            raise InvalidArgumentError(
                f"the checkpoint's inspector has settings {meta['settings']}, this one {settings}; resume with "
                f"Inspector(every={meta['settings']['every']}, bins={meta['settings']['bins']})")
        self.records = copy.deepcopy(meta["epochs"])
        self._network = copy.deepcopy(meta["network"]["layers"])
        self._pending = None if meta["current"] is None else (copy.deepcopy(meta["current"]), dict(arrays))
        self._acc, self._restored = None, True


# ---------------------------------------------------------------- reading
def _fail(where, what, value):
    raise ModelFileError(f"{where}: {what}, got {describe(value)}")


def _is_int(v, low=0):
    return type(v) is int and v >= low


def _is_number(v, low=-math.inf, high=math.inf, null=True):
    if v is None:
        return null
    return type(v) in (int, float) and math.isfinite(v) and low <= v <= high


def _check_hist(h, where, bins):
    if not isinstance(h, dict) or set(h) != {"edges", "counts"}:
        _fail(where, "must be an object with 'edges' and 'counts'", h)
    edges, counts = h["edges"], h["counts"]
    if not isinstance(edges, list) or not isinstance(counts, list):
        _fail(where, "edges and counts must be lists", h)
    if edges or counts:
        if len(counts) != bins or len(edges) != bins + 1:
            _fail(where, f"must have {bins} counts and {bins + 1} edges", (len(counts), len(edges)))
        if not all(_is_number(e, null=False) for e in edges) or any(a > b for a, b in zip(edges, edges[1:])):
            _fail(where + ".edges", "must be finite numbers in increasing order", edges)
        if not all(_is_int(c) for c in counts):
            _fail(where + ".counts", "must be integers >= 0", counts)


def _check_layer_entry(entry, where, path, bins):
    if not isinstance(entry, dict) or set(entry) != set(_LAYER_KEYS):
        _fail(where, f"must be an object with the keys {', '.join(_LAYER_KEYS)}", entry)
    if entry["path"] != path:
        _fail(where + ".path", f"must be {path!r} (the network's layer at this place)", entry["path"])
    for key in ("delta_norm", "grad_W_norm", "grad_b_norm", "weight_norm", "update_ratio"):
        if not _is_number(entry[key], 0.0):
            _fail(f"{where}.{key}", "must be a finite number >= 0 or null", entry[key])
    for key in ("dead_fraction", "saturated_fraction"):
        if not _is_number(entry[key], 0.0, 1.0):
            _fail(f"{where}.{key}", "must be a number in [0, 1] or null", entry[key])
    hist = entry["hist"]
    if not isinstance(hist, dict) or set(hist) != set(_HISTS):
        _fail(where + ".hist", "must be an object with 'W', 'z' and 'grad_W'", hist)
    for key in _HISTS:
        _check_hist(hist[key], f"{where}.hist.{key}", bins)


def _check_epoch(rec, where, paths, bins):
    if not isinstance(rec, dict) or set(rec) != {"epoch", "logs", "samples", "layers"}:
        _fail(where, "must be an object with 'epoch', 'logs', 'samples' and 'layers'", rec)
    if not _is_int(rec["epoch"], 1) or not _is_int(rec["samples"]):
        _fail(where, "epoch must be an integer >= 1 and samples one >= 0", (rec["epoch"], rec["samples"]))
    logs = rec["logs"]
    if not isinstance(logs, dict) or not all(
            isinstance(v, (str, bool)) or _is_number(v) for v in logs.values()):
        _fail(where + ".logs", "must be an object of finite numbers, strings, booleans or nulls", logs)
    if not isinstance(rec["layers"], list) or len(rec["layers"]) != len(paths):
        _fail(where + ".layers", f"must be a list of {len(paths)} entries, one per layer", rec["layers"])
    for j, (entry, path) in enumerate(zip(rec["layers"], paths)):
        _check_layer_entry(entry, f"{where}.layers[{j}]", path, bins)


def _check_current(cur, where, n, bins):
    """A mid-epoch state's JSON part (its arrays: :func:`_check_state_arrays`)."""
    keys = {"epoch", "samples", "rows", "ratio_samples", "z_hist", "delta", "grad_W", "grad_b", "ratio"}
    if not isinstance(cur, dict) or set(cur) != keys:
        _fail(where, f"must be null or an object with the keys {', '.join(sorted(keys))}", cur)
    if not all(_is_int(cur[k]) for k in ("epoch", "samples", "rows", "ratio_samples")) \
            or cur["ratio_samples"] > cur["samples"]:
        _fail(where, "epoch, samples, rows and ratio_samples must be integers >= 0", cur)
    for key in ("delta", "grad_W", "grad_b", "ratio"):
        if not isinstance(cur[key], list) or len(cur[key]) != n or not all(_is_number(v, 0.0) for v in cur[key]):
            _fail(f"{where}.{key}", f"must be a list of {n} numbers >= 0 or nulls", cur[key])
    if not isinstance(cur["z_hist"], list) or len(cur["z_hist"]) != n:
        _fail(where + ".z_hist", f"must be a list of {n} histograms", cur["z_hist"])
    for j, h in enumerate(cur["z_hist"]):
        if h is not None:
            _check_hist(h, f"{where}.z_hist[{j}]", bins)


def check_log(log, where, state=False):
    """Check an inspector log (or, with ``state``, a checkpoint's inspector state); ModelFileError naming the field."""
    keys = {"format", "version", "settings", "network", "epochs"} | ({"current"} if state else set())
    if not isinstance(log, dict) or set(log) != keys:
        _fail(where, f"must be an object with the keys {', '.join(sorted(keys))}",
              sorted(log) if isinstance(log, dict) else log)
    if log["format"] != FORMAT:
        _fail(where, f"is not a {FORMAT} log (format)", log["format"])
    if log["version"] != VERSION or type(log["version"]) is not int:
        _fail(where, f"is version {describe(log['version'])} of the format; this deltaprop reads version {VERSION}",
              log["version"])
    settings = log["settings"]
    if not isinstance(settings, dict) or set(settings) != {"every", "bins"} or not _is_int(settings["every"], 1) \
            or not _is_int(settings["bins"], 1) or settings["bins"] > MAX_BINS:
        _fail(where + ".settings", f"must be {{'every': int >= 1, 'bins': int in 1..{MAX_BINS}}}", settings)
    layers = log["network"].get("layers") if isinstance(log["network"], dict) else None
    if not isinstance(layers, list) or set(log["network"]) != {"layers"}:
        _fail(where + ".network", "must be an object {'layers': [...]}", log["network"])
    for j, layer in enumerate(layers):
        if not isinstance(layer, dict) or set(layer) != {"path", "kind", "activation", "n_in", "n_out"} \
                or not all(isinstance(layer[k], str) for k in ("path", "kind", "activation")) \
                or not _is_int(layer["n_in"], 1) or not _is_int(layer["n_out"], 1):
            _fail(f"{where}.network.layers[{j}]", "must be {path, kind, activation: str; n_in, n_out: int >= 1}",
                  layer)
    paths = [layer["path"] for layer in layers]
    if not isinstance(log["epochs"], list):
        _fail(where + ".epochs", "must be a list", log["epochs"])
    for j, rec in enumerate(log["epochs"]):
        _check_epoch(rec, f"{where}.epochs[{j}]", paths, settings["bins"])
    if state and log["current"] is not None:
        _check_current(log["current"], where + ".current", len(paths), settings["bins"])


def _check_state_arrays(meta, arrays):
    """A mid-epoch state's arrays: ``units.{i}`` of shape (n_out,) and ``grads.{i}`` of shape (n_in, n_out)."""
    layers = meta["network"]["layers"]
    if arrays and meta["current"] is None:
        _fail("inspector state", "holds arrays but no epoch in progress", sorted(arrays))
    for key, a in arrays.items():
        name, _, index = key.partition(".")
        i = int(index) if index.isascii() and index.isdigit() and len(index) < 9 else -1
        if name not in ("units", "grads") or not 0 <= i < len(layers):
            _fail("inspector state", "has an unexpected array", key)
        shape = (layers[i]["n_in"], layers[i]["n_out"]) if name == "grads" else (layers[i]["n_out"],)
        if not isinstance(a, np.ndarray) or a.shape != shape or a.dtype.kind != "f" or not np.all(np.isfinite(a)):
            _fail(f"inspector state: array {key}", f"must be finite floats of shape {shape}", a)


def load_log(path):
    """Read an inspector log: a JSON file :meth:`Inspector.save` wrote, or a checkpoint of a run with an Inspector.

    Returns the log as a dict (the module notes give its keys); from a
    checkpoint, the epochs the run had completed. Every field is checked,
    nothing is unpickled or evaluated: a :class:`ModelFileError` names the
    file and what is wrong (not a log, malformed JSON, a field of the wrong
    type or range, a checkpoint without inspector records).
    """
    path = path_str(path)
    with open_input(path, "inspector log", MAX_LOG_BYTES, error=ModelFileError) as f:
        head = f.read(9)
        size = os.fstat(f.fileno()).st_size
    # A checkpoint (safetensors) starts with its header's length, 8 bytes little-endian, then the header's "{";
    # JSON text starts with printable bytes, whose 8 bytes read as a length are far beyond any file's size.
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") <= size - 8:
        from .checkpoint import load_checkpoint  # the file codec, only for a checkpoint

        info = load_checkpoint(path)[2]
        log = info["callbacks"].get(Inspector.state_key)
        if log is None:
            raise ModelFileError(f"{path}: the checkpoint holds no inspector records (its run had no Inspector)")
        check_log(log, path, state=True)
        return {k: v for k, v in log.items() if k != "current"}
    from .tensorfile import loads  # JSON without duplicate keys or runaway nesting; only when a file is read

    text = read_text_bounded(path, MAX_LOG_BYTES, "inspector log", error=ModelFileError)
    try:
        log = loads(text)
    except ValueError as exc:
        raise ModelFileError(f"{path}: not a JSON inspector log ({exc})") from None
    check_log(log, path)
    return log

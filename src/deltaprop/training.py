"""The training run: mini-batches, validation, metrics, callbacks, checkpoints.

One epoch visits every training sample once, in an order drawn from the run's
generator (``network.rng``) at the start of the epoch. Each step is

    forward → backward (fills network.grads with the gradient of the batch's
    weighted mean loss) → optimizer step with the schedule's learning rate

All randomness (the order, dropout masks) comes from that one generator, so
the same seed, data and thread count give bit-identical weights, and a
checkpoint that stores the generator's state, the epoch's order and the
position in it resumes a run exactly.

Data-parallel training plugs in through ``comm`` (see
:mod:`deltaprop.distributed`): every process takes its contiguous share of
each global batch, the gradients are scaled by the global batch's weights
and summed across processes, and every process takes the same step.
"""

import math
import os
import signal
import threading
import time

import numpy as np

from . import metrics as _metrics
from ._kernels import take_rows
from . import optimizers as _optimizers
from . import schedules as _schedules
from .callbacks import Callback, EarlyStopping, JSONLogger, ProgressBar
from .errors import check_positive_int as _positive_int
from .errors import DataError, DivergenceError, InvalidArgumentError, InvalidTypeError, describe

__all__ = ["fit", "evaluate", "History", "Run", "LocalComm", "class_weights"]

#: memory-mapped inputs larger than this are read batch by batch instead of
#: being permuted into memory once per epoch
STREAM_BYTES = 256 * 2**20


class History:
    """Per-epoch records of a run, as Keras's ``History``.

    ``history.history`` maps each key (``"loss"``, ``"accuracy"``,
    ``"val_loss"``, ``"val_accuracy"``, ``"lr"``, ``"time"``, ...) to a list
    with one value per epoch; ``history["loss"]`` is a shortcut.
    """

    def __init__(self, rows=None):
        self.rows = []
        for row in rows or []:
            self.append(row)

    def append(self, logs):
        self.rows.append(dict(logs))

    @property
    def history(self):
        keys = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        return {k: [row.get(k, float("nan")) for row in self.rows] for k in keys}

    @property
    def epoch(self):
        return [row["epoch"] for row in self.rows]

    def __getitem__(self, key):
        return self.history[key]

    def __len__(self):
        return len(self.rows)

    def to_list(self):
        return [dict(r) for r in self.rows]

    def __repr__(self):
        return f"History({len(self.rows)} epochs, keys={list(self.history)})"


class LocalComm:
    """The single-process communicator: every reduction is the identity."""

    rank = 0
    size = 1
    is_root = True

    def allreduce_sum(self, array):
        """Sum ``array`` (1-D float) across processes, in place; returns it."""
        return array

    def bcast(self, obj):
        return obj

    def barrier(self):
        pass


def class_weights(class_weight, class_index, n_classes):
    """Per-sample weights from a ``{class: weight}`` dict or ``"balanced"``.

    ``"balanced"`` gives class ``c`` the weight ``n / (k · n_c)`` (scikit-learn's
    rule), so every class carries the same total weight.
    """
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise InvalidArgumentError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
        counts = np.bincount(class_index, minlength=n_classes).astype(np.float64)
        present = counts > 0
        table = np.zeros(n_classes)
        table[present] = class_index.size / (present.sum() * counts[present])
        return table[class_index]
    if not isinstance(class_weight, dict):
        raise InvalidTypeError(f"class_weight must be a dict or 'balanced', got {describe(class_weight)}")
    table = np.ones(n_classes)
    for key, value in class_weight.items():
        if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key < n_classes:
            raise InvalidArgumentError(
                f"class_weight key {key!r} is not a class index in 0..{n_classes - 1}"
            )
        if not isinstance(value, (int, float, np.number)) or not math.isfinite(value) or value < 0:
            raise InvalidArgumentError(f"class_weight for class {key} must be a finite number >= 0, got {value!r}")
        table[int(key)] = float(value)
    return table[class_index]


def _class_index(Y):
    """True class of each prepared target row: argmax, or the 0/1 label of one output."""
    if Y.shape[1] == 1:
        return (Y[:, 0] >= 0.5).astype(np.int64), 2
    return Y.argmax(axis=1), Y.shape[1]


class _RowReader:
    """Reads rows of an ``.npy`` memmap with ``os.preadv`` into a reused buffer.

    Indexing an ``np.memmap`` maps the pages it touches into the process, and
    they stay resident: over an epoch of random batches the resident memory
    grows to the file's size. Reading rows with ``preadv`` goes through the
    page cache instead, which the kernel reclaims, so the process holds only
    the batch (a 4 GB file trains with a few tens of MB resident).

    Used for a C-ordered memmap of a file (or a row slice of one); anything
    else is gathered by indexing.
    """

    def __init__(self, X):
        import mmap

        root = X
        while isinstance(root, np.memmap) and not isinstance(root.base, mmap.mmap):
            root = root.base  # a view (e.g. the training part of a validation split)
        if not (isinstance(X, np.memmap) and isinstance(root, np.memmap) and X.flags.c_contiguous
                and X.filename and hasattr(os, "preadv")):
            raise ValueError("not a C-ordered memmap of a file")
        # file offset of X's first row: the root's offset plus how far into it X starts
        self.path = X.filename
        self.offset = int(root.offset) + (X.ctypes.data - root.ctypes.data)
        self.row_bytes = X.shape[1] * X.dtype.itemsize
        self.dtype, self.n_cols = X.dtype, X.shape[1]
        self._fd = None
        self._buf = None

    def read(self, idx):
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        k = idx.shape[0]
        if self._buf is None or self._buf.shape[0] < k:
            self._buf = np.empty((k, self.n_cols), dtype=self.dtype)
        out = self._buf[:k]
        rows = memoryview(out.reshape(-1).view(np.uint8))
        for i, r in enumerate(idx.tolist()):
            got = os.preadv(self._fd, [rows[i * self.row_bytes:(i + 1) * self.row_bytes]],
                            self.offset + r * self.row_bytes)
            if got != self.row_bytes:
                raise DataError(f"{self.path}: short read at row {r} (file truncated?)")
        return out

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class _Data:
    """Training arrays, in memory (gathered batch by batch) or streamed from a memmap."""

    def __init__(self, network, X, Y, w):
        self.network = network
        self.streaming = isinstance(X, np.memmap) and X.nbytes > STREAM_BYTES
        if self.streaming or isinstance(X, np.memmap):
            if X.ndim != 2 or X.shape[1] != network.n_in:
                raise DataError(f"X must have shape (n_samples, {network.n_in}), got {X.shape}")
            if X.dtype.kind not in "biuf":
                raise InvalidTypeError(f"X must be a numeric array, got dtype {X.dtype}")
        # In-memory X arrives checked and converted by fit; a small memmap is
        # read into memory here; a large one is checked batch by batch.
        self.X = network._check_X(X) if isinstance(X, np.memmap) and not self.streaming else X
        self.Y, self.w = Y, w
        self.n = self.X.shape[0]
        self._bufs = None
        self.reader = None
        if self.streaming:
            try:
                self.reader = _RowReader(X)
            except ValueError:
                self.reader = None  # a view or an F-ordered memmap: plain indexing

    def arrange(self, perm):
        """Order the epoch's data by ``perm``: each batch gathers its rows into reused buffers."""
        self.perm = perm

    def _gather(self, r0, r1):
        idx = self.perm[r0:r1]
        k = r1 - r0
        if self._bufs is None or self._bufs[0].shape[0] < k:
            self._bufs = (np.empty((k,) + self.X.shape[1:], self.X.dtype),
                          np.empty((k,) + self.Y.shape[1:], self.Y.dtype),
                          None if self.w is None else np.empty(k, self.w.dtype))
        bx, by, bw = self._bufs
        return (take_rows(self.X, idx, bx[:k]), take_rows(self.Y, idx, by[:k]),
                None if self.w is None else take_rows(self.w, idx, bw[:k]))

    def batch(self, r0, r1):
        """Rows ``r0:r1`` of the epoch's order: (X, Y, w or None)."""
        if r1 <= r0:  # a data-parallel rank with no rows of this batch
            X0 = np.empty((0, self.network.n_in), dtype=self.network.dtype)
            return X0, self.Y[:0], None if self.w is None else self.w[:0]
        if not self.streaming:
            if self.perm is None:
                return self.X[r0:r1], self.Y[r0:r1], None if self.w is None else self.w[r0:r1]
            return self._gather(r0, r1)
        idx = np.arange(r0, r1) if self.perm is None else self.perm[r0:r1]
        rows = self.reader.read(idx) if self.reader is not None else self.X[idx]
        xb = self.network._check_X(rows, name=f"X (rows of batch {r0}:{r1})")
        return xb, self.Y[idx], None if self.w is None else self.w[idx]

    def weight_sum(self, r0, r1):
        if self.w is None:
            return float(r1 - r0)
        idx = slice(r0, r1) if self.perm is None else self.perm[r0:r1]
        return float(self.w[idx].sum())


class Run:
    """The state of a training run, handed to every callback.

    Attributes
    ----------
    network, optimizer, schedule, rng
    epochs : int
        Epochs the run is to complete (counting resumed ones).
    epoch : int
        Current epoch, from 0.
    batch : int
        Index of the next batch in the current epoch.
    step : int
        Optimizer steps taken in this run.
    batches_per_epoch : int
    history : History
    stop_training : bool
        Set by a callback to end the run after this epoch.
    comm : communicator (``LocalComm`` for one process)
    """

    def __init__(self, network, optimizer, schedule, epochs, batch_size, data, metrics, comm):
        self.network = network
        self.optimizer = optimizer
        self.schedule = schedule
        self.rng = network.rng
        self.epochs = epochs
        self.batch_size = batch_size
        self.data = data
        self.metrics = metrics
        self.comm = comm
        self.is_root = comm.rank == 0
        self.batches_per_epoch = -(-data.n // batch_size)
        self.epoch = self.batch = self.step = 0
        self.start_epoch = self.start_batch = 0
        self.history = History()
        self.stop_training = False
        self.perm = None
        self.loss_sum = 0.0
        self.weight_sum = 0.0
        self.elapsed = 0.0  # seconds spent in the current epoch before a resume
        self.lr = optimizer.learning_rate
        self.checkpoint_path = None
        self.settings = {}

    def running_logs(self):
        """The epoch so far: mean loss and the training metrics."""
        logs = {"loss": f"{self.loss_sum / self.weight_sum:.4g}" if self.weight_sum else "nan"}
        for m in self.metrics:
            logs[m.name] = f"{m.result():.4g}"
        return logs

    def metric_sums(self):
        return {m.name: m.sums for m in self.metrics}


def _build_metrics(names, loss, n_out):
    if names is None:
        names = [_metrics.default_metric(loss)]
    elif isinstance(names, (str, dict)) or isinstance(names, _metrics.Metric):
        names = [names]
    out = []
    for spec in names:
        m = _metrics.get(spec)
        if isinstance(m, _metrics.Accuracy):
            if getattr(loss, "name", None) == "hinge" and n_out == 1:
                m.threshold = 0.0
            m.multilabel = getattr(loss, "name", None) == "binary_crossentropy" and n_out > 1
        m.reset(n_out)
        out.append(m)
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"metrics repeat a name: {names}")
    return out


def _evaluate_prepared(network, X, Y, w, metrics, batch_size=4096):
    """Weighted mean loss and metrics over (X, Y, w) with dropout off; weights untouched."""
    loss_sum = weight_sum = 0.0
    for m in metrics:
        m.reset(network.n_out)
    n = X.shape[0]
    for r0 in range(0, n, batch_size):
        r1 = min(r0 + batch_size, n)
        xb = network._check_X(X[r0:r1]) if isinstance(X, np.memmap) else X[r0:r1]
        a = network.forward(xb, training=False)
        yb = Y[r0:r1]
        wb = np.ones(r1 - r0) if w is None else w[r0:r1]
        per_sample = network.loss.value(a, yb)
        loss_sum += float(per_sample.astype(np.float64) @ wb)
        weight_sum += float(wb.sum())
        for m in metrics:
            m.update(a, yb, wb)
    logs = {"loss": loss_sum / weight_sum if weight_sum else float("nan")}
    for m in metrics:
        logs[m.name] = m.result()
    return logs


def evaluate(network, X, y, sample_weight=None, metrics=None, batch_size=4096):
    """Loss and metrics of ``network`` on ``(X, y)``, with dropout off; weights untouched.

    Parameters
    ----------
    network : Network
    X : array-like of shape (n_samples, n_in)
    y : array-like
        Targets in the loss's natural form.
    sample_weight : array-like of shape (n_samples,), optional
        The loss and metrics become weighted means.
    metrics : list of str or Metric, optional
        Default: the loss's natural metric (accuracy or R²).

    Returns
    -------
    dict
        ``{"loss": weighted mean loss, <metric>: value, ...}``
    """
    X = np.asarray(X) if not isinstance(X, np.memmap) else X
    if not isinstance(X, np.memmap):
        X = network._check_X(X)
    Y = network.prepare_targets(y)
    if Y.shape[0] != X.shape[0]:
        raise DataError(f"X has {X.shape[0]} samples but y has {Y.shape[0]}")
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if w.shape[0] != X.shape[0] or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DataError(f"sample_weight must be {X.shape[0]} finite non-negative numbers")
    ms = _build_metrics(metrics, network.loss, network.n_out)
    return _evaluate_prepared(network, X, Y, w, ms, batch_size=_positive_int(batch_size, "batch_size"))


class _InterruptFlag:
    """Turns the first Ctrl-C into a flag checked between steps (main thread only)."""

    def __init__(self):
        self.hit = False
        self._old = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            try:
                self._old = signal.signal(signal.SIGINT, self._handle)
            except ValueError:
                self._old = None
        return self

    def _handle(self, signum, frame):
        if self.hit:  # second Ctrl-C: stop at once
            raise KeyboardInterrupt
        self.hit = True

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def fit(network, X, y, *, epochs=10, batch_size=32, optimizer="adam", learning_rate=None, weight_decay=None,
        clipnorm=None, schedule=None, shuffle=True, validation_data=None, validation_split=0.0, metrics=None,
        callbacks=None, early_stopping=None, class_weight=None, sample_weight=None, checkpoint_dir=None,
        checkpoint_every=1, checkpoint_unit="epoch", keep_checkpoints=3, resume_from=None, verbose=1,
        log_path=None, comm=None, distributed=False):
    """Train ``network`` on ``(X, y)`` with mini-batch gradient descent.

    Parameters
    ----------
    network : Network
    X : array-like of shape (n_samples, n_in)
        A ``numpy.memmap`` larger than 256 MiB is read batch by batch.
    y : array-like
        Targets in the loss's natural form.
    epochs : int, default 10
        Passes over the training data (a resumed run counts its done epochs).
    batch_size : int, default 32
        Samples per step; the last batch of an epoch may be shorter.
    optimizer : str, dict or Optimizer, default "adam"
        Resolved by :func:`deltaprop.optimizers.get`; ``learning_rate``,
        ``weight_decay`` and ``clipnorm`` override its settings when given.
        An optimizer instance keeps its state across calls (warm start).
    schedule : str, dict or callable, optional
        Learning-rate schedule ``schedule(step, base_lr)``; default constant.
    shuffle : bool, default True
        Draw a new order of the samples each epoch from ``network.rng``.
    validation_data : (X_val, y_val) or (X_val, y_val, w_val), optional
    validation_split : float, default 0.0
        Fraction of the samples, taken from the end (as Keras), held out for
        validation when ``validation_data`` is not given.
    metrics : list of str or Metric, optional
        Default: the loss's natural metric.
    callbacks : list of Callback, optional
    early_stopping : bool, dict or EarlyStopping, optional
        ``True`` monitors ``val_loss`` (or ``loss`` without validation) with
        patience 5 and restores the best weights.
    class_weight : dict or "balanced", optional
        Weight of each class index; multiplies ``sample_weight``.
    sample_weight : array-like of shape (n_samples,), optional
        Each batch loss is ``Σ w_i ℓ_i / Σ w_i``.
    checkpoint_dir : path, optional
        Write checkpoints here every ``checkpoint_every`` epochs (or steps,
        with ``checkpoint_unit="step"``), keeping the last
        ``keep_checkpoints``; also on Ctrl-C.
    resume_from : path, optional
        A checkpoint (or a folder: its newest checkpoint) to continue from;
        the result is bit-identical to an uninterrupted run.
    verbose : int, default 1
        1 shows a progress bar per epoch; 0 nothing.
    log_path : path, optional
        Append one JSON line per epoch.
    comm : communicator, optional
        For data-parallel training (see :mod:`deltaprop.distributed`).
    distributed : bool, default False
        Shorthand for ``comm=deltaprop.distributed.MPIComm()`` (MPI_COMM_WORLD),
        for scripts started with ``mpiexec -n N``.

    Returns
    -------
    History
    """
    epochs = _positive_int(epochs, "epochs")
    batch_size = _positive_int(batch_size, "batch_size")
    if comm is None and distributed:
        from .distributed import MPIComm

        comm = MPIComm()
    comm = LocalComm() if comm is None else comm

    # ---------------------------------------------------------------- data
    X_is_mm = isinstance(X, np.memmap)
    # In-memory X is checked (numeric, 2-D, finite) and converted to the
    # network's dtype once, here; a memmap is checked batch by batch.
    Xa = X if X_is_mm else network._check_X(X)
    n_total = Xa.shape[0]
    Y = network.prepare_targets(y)
    if Y.shape[0] != n_total:
        raise DataError(f"X has {n_total} samples but y has {Y.shape[0]}")
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
        if w.shape[0] != n_total:
            raise DataError(f"sample_weight has {w.shape[0]} entries for {n_total} samples")
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DataError("sample_weight must be finite and non-negative")
    if class_weight is not None:
        cw = class_weights(class_weight, *_class_index(Y))
        w = cw if w is None else w * cw

    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise InvalidArgumentError("validation_data must be (X_val, y_val) or (X_val, y_val, sample_weight)")
        Xv = network._check_X(validation_data[0], name="X_val")
        Yv = network.prepare_targets(validation_data[1])
        if Yv.shape[0] != Xv.shape[0]:
            raise DataError(f"X_val has {Xv.shape[0]} samples but y_val has {Yv.shape[0]}")
        wv = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            wv = np.asarray(validation_data[2], dtype=np.float64).reshape(-1)
            if wv.shape[0] != Xv.shape[0]:
                raise DataError(f"validation sample weights have {wv.shape[0]} entries for {Xv.shape[0]} samples")
            if not np.all(np.isfinite(wv)) or np.any(wv < 0) or wv.sum() <= 0:
                raise DataError("validation sample weights must be finite, non-negative and not all zero")
        val = (Xv, Yv, wv)
    elif validation_split:
        if not isinstance(validation_split, (int, float)) or not 0 < validation_split < 1:
            raise InvalidArgumentError(f"validation_split must be in (0, 1), got {validation_split!r}")
        n_val = int(round(n_total * validation_split))
        if n_val < 1 or n_val >= n_total:
            raise InvalidArgumentError(
                f"validation_split={validation_split} leaves {n_total - n_val} training and {n_val} "
                f"validation samples of {n_total}; both need at least one"
            )
        cut = n_total - n_val
        Xv = network._check_X(Xa[cut:], name="X (validation part)")
        val = (Xv, Y[cut:], None if w is None else w[cut:])
        Xa, Y, w = Xa[:cut], Y[:cut], None if w is None else w[:cut]
    data = _Data(network, Xa, Y, w)

    # ------------------------------------------------------- optimization
    opt = _optimizers.get(optimizer, learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm)
    if isinstance(optimizer, _optimizers.Optimizer):
        for name, value in (("learning_rate", learning_rate), ("weight_decay", weight_decay), ("clipnorm", clipnorm)):
            if value is not None:
                setattr(opt, name, value)
    fresh_state = any(v.shape != network.params.shape for v in opt.state.values()) or (
        len(opt.state) != len(getattr(opt, "_state_names", ())))
    if fresh_state or getattr(opt, "_tmp", None) is None:
        opt.init(network.params, decay_mask=network.weight_mask())
    sched = _schedules.get(schedule)
    train_metrics = _build_metrics(metrics, network.loss, network.n_out)
    run = Run(network, opt, sched, epochs, batch_size, data, train_metrics, comm)
    if isinstance(sched, _schedules.Schedule):
        sched.steps_per_epoch = run.batches_per_epoch
        if isinstance(sched, _schedules.CosineDecay) and sched.total_steps is None:
            sched.run_steps = epochs * run.batches_per_epoch
    run.settings = {"batch_size": batch_size, "n_samples": data.n, "n_in": network.n_in, "n_out": network.n_out,
                    "shuffle": bool(shuffle), "optimizer": opt.get_config() if hasattr(opt, "get_config") else None}
    val_metrics = _build_metrics(metrics, network.loss, network.n_out) if val is not None else []

    # ------------------------------------------------------------ callbacks
    cbs = list(callbacks or [])
    for cb in cbs:
        if not isinstance(cb, Callback) and not any(hasattr(cb, h) for h in ("on_epoch_end", "on_batch_end")):
            raise InvalidTypeError(f"callbacks must be Callback objects, got {describe(cb)}")
    if early_stopping:
        if early_stopping is True:
            es = EarlyStopping(monitor="val_loss" if val is not None else "loss")
        elif isinstance(early_stopping, dict):
            es = EarlyStopping(**early_stopping)
        elif isinstance(early_stopping, EarlyStopping):
            es = early_stopping
        else:
            raise InvalidTypeError(f"early_stopping must be True, a dict or an EarlyStopping, got {describe(early_stopping)}")
        cbs.append(es)
    if log_path is not None and run.is_root:
        cbs.append(JSONLogger(log_path))
    if verbose and run.is_root:
        cbs.insert(0, ProgressBar())
    run.callbacks = cbs
    if checkpoint_dir is not None or resume_from is not None:
        from .checkpoint import Checkpointer, restore

        if checkpoint_dir is not None:
            cbs.append(Checkpointer(checkpoint_dir, every=checkpoint_every, unit=checkpoint_unit,
                                    keep=keep_checkpoints))
        if resume_from is not None:
            restore(run, resume_from, cbs)
    if comm.size > 1:
        # Parameters, optimizer state, generator state and position from rank 0:
        # replicas can never start apart.
        comm.sync_run(run, cbs)

    try:
        return _loop(run, data, val, val_metrics, cbs, shuffle)
    finally:
        if data.reader is not None:
            data.reader.close()


def _call(cbs, hook, *args):
    for cb in cbs:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


def _loop(run, data, val, val_metrics, cbs, shuffle):
    net, opt, comm = run.network, run.optimizer, run.comm
    rng, bs, n = run.rng, run.batch_size, data.n
    distributed = comm.size > 1
    ones = np.ones(bs)
    # one small all-reduce per step: [batch loss, Ctrl-C seen, each metric's sums]
    n_sums = [m.sums.size for m in run.metrics]
    step_box = np.zeros(2 + sum(n_sums))
    run.start_epoch, run.start_batch = run.epoch, run.batch
    _call(cbs, "on_train_begin", run)
    # Overflow inside a diverging step is reported once, as a DivergenceError
    # naming the epoch and step, instead of a stream of NumPy warnings.
    with _InterruptFlag() as interrupt, np.errstate(over="ignore", invalid="ignore"):
        while run.epoch < run.epochs and not run.stop_training:
            epoch = run.epoch
            if run.batch == 0:
                run.perm = rng.permutation(n) if shuffle else None
                run.loss_sum = run.weight_sum = run.elapsed = 0.0
                for m in run.metrics:
                    m.reset(net.n_out)
            data.arrange(run.perm)
            _call(cbs, "on_epoch_begin", run, epoch)
            t0 = time.perf_counter()
            for b in range(run.batch, run.batches_per_epoch):
                lo, hi = b * bs, min((b + 1) * bs, n)
                if distributed:
                    r0 = lo + (hi - lo) * comm.rank // comm.size
                    r1 = lo + (hi - lo) * (comm.rank + 1) // comm.size
                else:
                    r0, r1 = lo, hi
                batch_weight = data.weight_sum(lo, hi)  # the global batch's Σw (or its size)
                if batch_weight == 0:
                    # Every sample in this batch has weight 0: it carries no
                    # gradient, so no step is taken (as if it were not there).
                    run.batch = b + 1
                    continue
                xb, yb, wb = data.batch(r0, r1)
                if wb is None:
                    scale = net.dtype.type(1.0 / batch_weight)
                    wm = ones[: r1 - r0]
                else:
                    scale = (wb / batch_weight).astype(net.dtype).reshape(-1, 1)
                    wm = wb
                out = net.forward(xb, training=True, rng=rng,
                                  mask_rows=(r0 - lo, hi - lo) if distributed else None)
                if not distributed:
                    for m in run.metrics:
                        m.update(out, yb, wm)
                loss = net.backward(yb, scale)
                if distributed:
                    step_box[0], step_box[1] = loss, float(interrupt.hit)
                    at = 2
                    for m, k in zip(run.metrics, n_sums):
                        kept, m.sums = m.sums, step_box[at:at + k]
                        m.sums[...] = 0.0
                        m.update(out, yb, wm)
                        m.sums = kept
                        at += k
                    comm.allreduce_sum(net.grads)
                    comm.allreduce_sum(step_box)
                    loss, interrupted = float(step_box[0]), step_box[1] > 0  # the same on every rank
                    at = 2
                    for m, k in zip(run.metrics, n_sums):
                        m.sums += step_box[at:at + k]
                        at += k
                if not math.isfinite(loss):
                    raise DivergenceError(
                        f"training diverged: the loss is {loss} at epoch {epoch + 1}, step {run.step + 1} "
                        f"(batch {b + 1} of {run.batches_per_epoch}); lower the learning rate or clip gradients"
                        + (f"; the last good checkpoint is {run.checkpoint_path}" if run.checkpoint_path else "")
                    )
                run.lr = run.schedule(run.step, opt.learning_rate)
                opt.step(net.params, net.grads, learning_rate=run.lr)
                run.step += 1
                run.batch = b + 1
                run.loss_sum += loss * batch_weight
                run.weight_sum += batch_weight
                _call(cbs, "on_batch_end", run, b, {"loss": loss})
                if (interrupted if distributed else interrupt.hit):
                    run.elapsed += time.perf_counter() - t0
                    _call(cbs, "on_interrupt", run)
                    if distributed:
                        comm.barrier()  # rank 0's checkpoint is on disk before any rank stops
                    where = f"; checkpoint written to {run.checkpoint_path}" if run.checkpoint_path else ""
                    raise KeyboardInterrupt(
                        f"training interrupted at epoch {epoch + 1}, batch {b + 1}{where}"
                    )
            if not np.all(np.isfinite(net.params)):
                raise DivergenceError(
                    f"training diverged: parameters are not finite after epoch {epoch + 1} (step {run.step})"
                    + (f"; the last good checkpoint is {run.checkpoint_path}" if run.checkpoint_path else "")
                )
            logs = {"epoch": epoch + 1, "loss": run.loss_sum / run.weight_sum if run.weight_sum else float("nan")}
            for m in run.metrics:
                logs[m.name] = m.result()
            if val is not None:
                vlogs = _evaluate_prepared(net, *val, val_metrics)
                logs.update({f"val_{k}": v for k, v in vlogs.items()})
            logs["lr"] = float(run.lr)
            logs["time"] = run.elapsed + time.perf_counter() - t0
            run.history.append(logs)
            run.epoch = epoch + 1
            run.batch = 0
            _call(cbs, "on_epoch_end", run, epoch, logs)
    _call(cbs, "on_train_end", run)
    return run.history

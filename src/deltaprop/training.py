"""The training loop: mini-batches, validation, metrics, callbacks, checkpoints.

One epoch visits every training sample once, in an order drawn from the run's
generator (``network.rng``) at the start of the epoch. Each step is

    forward → backward (fills network.grads with the gradient of the batch's
    weighted mean loss) → optimizer step with the schedule's learning rate

All randomness (the order, dropout masks) comes from that one generator, so
the same seed, data and thread count give bit-identical weights, and a
checkpoint that stores the generator's state, the epoch's order and the
position in it resumes a run exactly.

The loop uses the network only through its methods (``check_X``,
``prepare_targets``, ``forward``, ``backward``, ``params``, ``grads``): it
imports no network class, and no MPI. Data-parallel training plugs in through
``comm`` (see :mod:`deltaprop.distributed`): every process takes its
contiguous share of each global batch, the gradients are scaled by the global
batch's weights and summed across processes, and every process takes the
same step.
"""

import math
import os
import signal
import threading
import time

import numpy as np

from . import _kernels
from . import metrics as _metrics
from . import optimizers as _optimizers
from . import schedules as _schedules
from .batches import EpochBatches, ShardRandom
from .callbacks import Callback, EarlyStopping, JSONLogger, ProgressBar
from .checks import check_number, check_positive_int, check_sample_weight, sample_scale
from .errors import (
    DataError,
    DivergenceError,
    InvalidArgumentError,
    InvalidTypeError,
    TrainingInterrupted,
    describe,
)
from . import run as _run
from .run import LocalComm, Run
from .threads import ThreadControl, check_threads

__all__ = ["fit", "evaluate", "class_weights"]


def class_weights(class_weight, class_index, n_classes, sample_weight=None, labels=None):
    """Per-sample weights from a ``{class: weight}`` dict or ``"balanced"``: the one rule of deltaprop.

    ``"balanced"`` gives class ``c`` the weight ``n / (k · n_c)``, where ``k``
    is the number of classes present and ``n`` and ``n_c`` count samples
    weighted by ``sample_weight`` (scikit-learn's rule, as of its 1.7), so
    every class carries the same total weight and weighting a sample by 2 is
    the same as repeating it.

    Parameters
    ----------
    class_weight : dict, "balanced" or None
        A dict maps class indices (or, with ``labels``, class labels) to
        weights; classes it leaves out weigh 1.
    class_index : ndarray of int, shape (n_samples,)
        Each sample's class index.
    n_classes : int
    sample_weight : ndarray of shape (n_samples,), optional
        Counts for ``"balanced"`` (the returned weights do not include it).
    labels : sequence, optional
        ``labels[i]`` is class ``i``'s label, for a dict keyed by label.

    Returns
    -------
    ndarray of shape (n_samples,) or None
        None when ``class_weight`` is None.
    """
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        if class_weight != "balanced":
            raise InvalidArgumentError(f"class_weight must be a dict or 'balanced', got {class_weight!r}")
        counts = np.bincount(class_index, weights=sample_weight, minlength=n_classes).astype(np.float64)
        present = counts > 0
        table = np.zeros(n_classes)
        table[present] = counts.sum() / (present.sum() * counts[present])
        return table[class_index]
    if not isinstance(class_weight, dict):
        raise InvalidTypeError(f"class_weight must be a dict or 'balanced', got {describe(class_weight)}")
    table = np.ones(n_classes)
    for key, value in class_weight.items():
        index = _class_key(key, n_classes, labels)
        table[index] = check_number(value, f"class_weight[{key!r}]", low=0.0)
    return table[class_index]


def _class_key(key, n_classes, labels):
    """The class index a ``class_weight`` key names."""
    if labels is not None:
        where = np.flatnonzero(np.asarray(labels) == key)
        if where.size != 1:
            raise InvalidArgumentError(
                f"class_weight has the label {key!r}, which is not a class (the classes are {describe(list(labels))})"
            )
        return int(where[0])
    if isinstance(key, bool) or not isinstance(key, (int, np.integer)) or not 0 <= key < n_classes:
        raise InvalidArgumentError(f"class_weight key {key!r} is not a class index in 0..{n_classes - 1}")
    return int(key)


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
    if not isinstance(X, np.memmap):
        X = network.check_X(X)
    Y = network.prepare_targets(y)
    if Y.shape[0] != X.shape[0]:
        raise DataError(f"X has {X.shape[0]} samples but y has {Y.shape[0]}")
    w = None if sample_weight is None else check_sample_weight(sample_weight, X.shape[0])
    ms = _metrics.build(metrics, network.loss, network.n_out)
    return _evaluate_prepared(network, X, Y, w, ms, batch_size=check_positive_int(batch_size, "batch_size"))


def _evaluate_prepared(network, X, Y, w, metrics, batch_size=4096):
    """Weighted mean loss and metrics over (X, Y, w) with dropout off; weights untouched."""
    loss_sum = weight_sum = 0.0
    for m in metrics:
        m.reset(network.n_out)
    n = X.shape[0]
    for r0 in range(0, n, batch_size):
        r1 = min(r0 + batch_size, n)
        xb = network.check_X(X[r0:r1]) if isinstance(X, np.memmap) else X[r0:r1]
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


#: the signals that stop training after the step in progress, with a checkpoint
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _InterruptFlag:
    """Turns the first Ctrl-C (SIGINT) or SIGTERM into a flag checked between steps (main thread only).

    ``hit`` is true once a signal came, ``signum`` says which. A second
    signal stops at once with :class:`TrainingInterrupted` (no checkpoint).
    The previous handlers are put back on exit.
    """

    def __init__(self, run=None):
        self.hit = False
        self.signum = 0
        self.run = run
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in _SIGNALS:
                try:
                    self._old[signum] = signal.signal(signum, self._handle)
                except (ValueError, OSError):
                    pass
        return self

    def _handle(self, signum, frame):
        signum = signal.Signals(signum)
        if self.hit:  # a second signal: stop at once
            where = f" at {self.run.position()}" if self.run is not None else ""
            raise TrainingInterrupted(f"training stopped at once by a second {signum.name}{where}; "
                                      f"no checkpoint written", signum=signum)
        self.hit = True
        self.signum = signum

    def __exit__(self, *exc):
        for signum, old in self._old.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)
        self._old = {}
        return False


def fit(network, X, y, *, epochs=10, batch_size=32, optimizer="adam", learning_rate=None, weight_decay=None,
        clipnorm=None, schedule=None, shuffle=True, validation_data=None, validation_split=0.0, metrics=None,
        callbacks=None, early_stopping=None, class_weight=None, sample_weight=None, checkpoint_dir=None,
        checkpoint_every=1, checkpoint_unit="epoch", keep_checkpoints=3, resume_from=None, verbose=1,
        log_path=None, comm=None, initial_step=0, run_settings=None, resume_overrides=None,
        interrupt_checkpoint=None, threads=None):
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
        Weight of each class index; multiplies ``sample_weight``. See
        :func:`class_weights` for the "balanced" rule.
    sample_weight : array-like of shape (n_samples,), optional
        Each batch loss is ``Σ w_i ℓ_i / Σ w_i``.
    checkpoint_dir : path, optional
        Write checkpoints here every ``checkpoint_every`` epochs (or steps,
        with ``checkpoint_unit="step"``), keeping the last
        ``keep_checkpoints``; also on Ctrl-C.
    resume_from : path, optional
        A checkpoint (or a folder: its newest good checkpoint) to continue
        from; the result is bit-identical to an uninterrupted run. Every
        setting that changes the result (the optimizer's and schedule's
        settings, batch size, shuffling, the data, the weights,
        ``run_settings``, ...) must be the checkpoint's, else an
        :class:`InvalidArgumentError` names it; ``epochs`` must be at least
        the epochs the checkpoint has done.
    verbose : int, default 1
        1 shows a progress bar per epoch, and on resume the checkpoint used
        (standard error); 0 nothing.
    log_path : path, optional
        One JSON line per epoch (the history's rows), rewritten atomically
        each epoch.
    comm : communicator, optional
        For data-parallel training: ``deltaprop.distributed.MPIComm()`` in a
        script started with ``mpiexec -n N`` (see :mod:`deltaprop.distributed`).
    initial_step : int, default 0
        Where the schedule's clock starts: the steps taken by earlier calls
        that this one continues (the scikit-learn estimators' ``partial_fit``).
    run_settings : dict, optional
        The caller's own settings that change the result (JSON: a command
        line's scaling, splits, seed, ...); kept in checkpoints and checked
        on resume like the built-in ones, under their own names.
    resume_overrides : iterable of str, optional
        Settings a resumed run may change on purpose (``"learning_rate"``,
        ``"schedule"``, a ``run_settings`` key, ...); each one that does
        differ is recorded in ``History.overrides``.
    interrupt_checkpoint : path, optional
        A folder: when training is interrupted and no ``checkpoint_dir`` is
        given, one checkpoint of the state is written there (resume with
        ``resume_from`` this folder).
    threads : None, int or "auto", default None
        BLAS threads, restored on return; None leaves the BLAS as it is. "auto" picks 1 or all cores each epoch
        from timed steps (float32 weights then depend on the load); see :mod:`deltaprop.threads`.

    Returns
    -------
    History

    Raises
    ------
    TrainingInterrupted
        On Ctrl-C (SIGINT) or SIGTERM, after the step in progress and a
        checkpoint (``checkpoint_dir`` or ``interrupt_checkpoint``); its
        ``signum``, ``epoch``, ``batch`` and ``checkpoint`` say how and where.
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    comm = LocalComm() if comm is None else comm
    threads = check_threads(threads, processes=comm.size)
    run_settings = _run.json_settings(run_settings, "run_settings")
    batches, val, data = _training_data(network, X, y, sample_weight, class_weight, validation_data,
                                        validation_split)
    if hasattr(network, "check_batch_plan"):
        network.check_batch_plan(batches.n, batch_size)  # BatchNorm: no batch of 1 row, refused before any work
    opt = _optimizer(network, optimizer, learning_rate, weight_decay, clipnorm)
    sched = _schedules.get(schedule)
    settings = {"batch_size": batch_size, "n_samples": batches.n, "n_in": network.n_in, "n_out": network.n_out,
                "shuffle": bool(shuffle), "optimizer": opt.get_config() if hasattr(opt, "get_config") else None,
                **data, "run_settings": run_settings}
    run = Run(network, opt, sched, epochs, batch_size, batches,
              _metrics.build(metrics, network.loss, network.n_out), comm, settings=settings,
              initial_step=initial_step)
    if hasattr(sched, "bind"):
        sched.bind(run.batches_per_epoch, run.step + epochs * run.batches_per_epoch)
    val_metrics = _metrics.build(metrics, network.loss, network.n_out) if val is not None else []
    run.callbacks = _callbacks(run, callbacks, early_stopping, val is not None, log_path, verbose)
    run.interrupt_checkpoint = None if interrupt_checkpoint is None else os.fspath(interrupt_checkpoint)
    if resume_overrides is not None:
        resume_overrides = run.check_overrides(resume_overrides)
    if checkpoint_dir is not None or resume_from is not None:
        # Checkpoints bring the file codec: loaded when a run uses them, so that
        # `import deltaprop` stays as light as NumPy (tests/test_architecture.py).
        from .checkpoint import Checkpointer, restore
    if checkpoint_dir is not None:
        run.callbacks.append(Checkpointer(checkpoint_dir, every=checkpoint_every, unit=checkpoint_unit,
                                          keep=keep_checkpoints))
    if resume_from is not None:
        restore(run, resume_from, overrides=resume_overrides or (), verbose=verbose)
    if comm.size > 1:
        # Parameters, optimizer state, generator state and position from rank 0:
        # replicas can never start apart.
        comm.sync_run(run)
    # numba's fused kernels (bit-identical to the NumPy passes) are loaded only for runs that repay their start-up
    per_sample = getattr(network, "flops_per_sample", None)
    _kernels.warm_for(float(per_sample() if callable(per_sample) else 0) * batches.n * epochs)
    run.threads = ThreadControl(threads)
    try:
        with run.threads:
            return _loop(run, val, val_metrics, shuffle)
    finally:
        batches.close()


def _training_data(network, X, y, sample_weight, class_weight, validation_data, validation_split):
    """The training batches, the validation set ``(X, Y, w)`` (or None) and the data's settings, checked once."""
    # In-memory X is checked (numeric, 2-D, finite) and converted to the
    # network's dtype once, here; a memmap is checked by EpochBatches.
    X = X if isinstance(X, np.memmap) else network.check_X(X)
    n_total = X.shape[0]
    Y = network.prepare_targets(y)
    if Y.shape[0] != n_total:
        raise DataError(f"X has {n_total} samples but y has {Y.shape[0]}")
    w = sw = None if sample_weight is None else check_sample_weight(sample_weight, n_total)
    cw = None
    if class_weight is not None:
        index, n_classes = _metrics.class_index(Y)
        cw = class_weights(class_weight, index, n_classes, sample_weight=w)
        w = cw if w is None else w * cw
    val = None
    if validation_data is not None:
        val = _validation_data(network, validation_data)
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
        val = (network.check_X(X[cut:], name="X (validation part)"), Y[cut:], None if w is None else w[cut:])
        X, Y, w = X[:cut], Y[:cut], None if w is None else w[:cut]
    data = _run.data_settings(X, Y, w, sw, cw, val)
    return EpochBatches(X, Y, w, network.n_in, network.dtype), val, data


def _validation_data(network, validation_data):
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise InvalidArgumentError("validation_data must be (X_val, y_val) or (X_val, y_val, sample_weight)")
    X_val = network.check_X(validation_data[0], name="X_val")
    Y_val = network.prepare_targets(validation_data[1])
    if Y_val.shape[0] != X_val.shape[0]:
        raise DataError(f"X_val has {X_val.shape[0]} samples but y_val has {Y_val.shape[0]}")
    w_val = None
    if len(validation_data) == 3 and validation_data[2] is not None:
        w_val = check_sample_weight(validation_data[2], X_val.shape[0], "validation sample weights",
                                    positive_sum=True)
    return X_val, Y_val, w_val


def _optimizer(network, spec, learning_rate, weight_decay, clipnorm):
    """The run's optimizer, ready for ``network.params`` (an instance's state is kept when it fits: a warm start)."""
    opt = _optimizers.get(spec, learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm)
    if isinstance(spec, _optimizers.Optimizer):
        opt.configure(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm)
    if hasattr(opt, "prepare"):
        opt.prepare(network.params, decay_mask=network.weight_mask())
    return opt


def _callbacks(run, callbacks, early_stopping, has_validation, log_path, verbose):
    """The run's callbacks: the user's, then early stopping and the log; a progress bar first."""
    cbs = list(callbacks or [])
    for cb in cbs:
        if not isinstance(cb, Callback) and not any(hasattr(cb, h) for h in ("on_epoch_end", "on_batch_end")):
            raise InvalidTypeError(f"callbacks must be Callback objects, got {describe(cb)}")
    if early_stopping:
        if early_stopping is True:
            es = EarlyStopping(monitor="val_loss" if has_validation else "loss")
        elif isinstance(early_stopping, dict):
            es = EarlyStopping(**early_stopping)
        elif isinstance(early_stopping, EarlyStopping):
            es = early_stopping
        else:
            raise InvalidTypeError(
                f"early_stopping must be True, a dict or an EarlyStopping, got {describe(early_stopping)}")
        cbs.append(es)
    if log_path is not None and run.is_root:
        cbs.append(JSONLogger(log_path))
    if verbose and run.is_root:
        cbs.insert(0, ProgressBar())
    return cbs


def _call(cbs, hook, *args):
    for cb in cbs:
        fn = getattr(cb, hook, None)
        if fn is not None:
            fn(*args)


def _diverged(what, run, where):
    last = ""
    if run.checkpoint_path:
        last = f"; the last good checkpoint is {run.checkpoint_path}"
    elif run.resumed_from:
        last = f"; the last good checkpoint is {run.resumed_from}, which this run resumed from"
    return DivergenceError(f"training diverged: {what} {where}{last}")


def _loop(run, val, val_metrics, shuffle):
    """Epochs of steps until ``run.epochs`` are done or a callback stops the run; returns the history."""
    net, cbs = run.network, run.callbacks
    run.start_epoch, run.start_batch = run.epoch, run.batch
    _call(cbs, "on_train_begin", run)
    step = _Step(run)
    # A layer of batch statistics (BatchNorm) sums them over the processes, so that the batch is the global one.
    set_reduce = getattr(net, "set_batch_reduce", None)
    if set_reduce is not None:
        set_reduce(run.comm.allreduce_sum if run.comm.size > 1 else None)
    try:
        return _epochs(run, val, val_metrics, shuffle, step)
    finally:
        if set_reduce is not None:
            set_reduce(None)


def _epochs(run, val, val_metrics, shuffle, step):
    net, cbs = run.network, run.callbacks
    # Overflow inside a diverging step is reported once, as a DivergenceError
    # naming the epoch and step, instead of a stream of NumPy warnings.
    with _InterruptFlag(run) as interrupt, np.errstate(over="ignore", invalid="ignore"):
        while run.epoch < run.epochs and not run.stop_training:
            epoch = run.epoch
            if run.batch == 0:
                run.perm = run.rng.permutation(run.batches.n) if shuffle else None
                run.loss_sum = run.weight_sum = run.elapsed = 0.0
                for m in run.metrics:
                    m.reset(net.n_out)
            run.batches.arrange(run.perm)
            _call(cbs, "on_epoch_begin", run, epoch)
            run.threads.begin_epoch(run.batches_per_epoch - run.batch)
            t0 = time.perf_counter()
            for b in range(run.batch, run.batches_per_epoch):
                signum = run.threads.step(step, b, interrupt)
                if signum:
                    run.elapsed += time.perf_counter() - t0
                    _interrupted(run, epoch, b, signum)
            if not np.all(np.isfinite(net.params)):
                raise _diverged("parameters are not finite", run, f"after epoch {epoch + 1} (step {run.step})")
            _end_epoch(run, epoch, val, val_metrics, time.perf_counter() - t0)
    _call(cbs, "on_train_end", run)
    return run.history


def _interrupted(run, epoch, b, signum):
    """Ctrl-C or SIGTERM was seen (on any rank): checkpoint, then stop with a TrainingInterrupted that says where."""
    _call(run.callbacks, "on_interrupt", run)
    written = None
    if any(getattr(cb, "writes_checkpoints", False) for cb in run.callbacks):
        written = run.checkpoint_path
    elif run.interrupt_checkpoint is not None:
        from .checkpoint import write_checkpoint  # the file codec, only now that it is needed

        written = write_checkpoint(run, run.interrupt_checkpoint)
    if run.comm.size > 1:
        run.comm.barrier()  # rank 0's checkpoint is on disk before any rank stops
    signum = signal.Signals(signum)
    where = f"; checkpoint written to {written}" if written else "; no checkpoint written"
    raise TrainingInterrupted(f"training interrupted at epoch {epoch + 1}, batch {b + 1} by {signum.name}{where}",
                              signum=signum, epoch=epoch + 1, batch=b + 1, checkpoint=written)


def _end_epoch(run, epoch, val, val_metrics, seconds):
    """The epoch's row of the history (training and validation loss and metrics), then ``on_epoch_end``."""
    logs = {"epoch": epoch + 1, "loss": run.loss_sum / run.weight_sum if run.weight_sum else float("nan")}
    for m in run.metrics:
        logs[m.name] = m.result()
    if val is not None:
        vlogs = _evaluate_prepared(run.network, *val, val_metrics)
        logs.update({f"val_{k}": v for k, v in vlogs.items()})
    logs["lr"] = float(run.lr)
    logs["time"] = run.elapsed + seconds
    logs.update(run.threads.end_epoch())
    run.history.append(logs)
    run.epoch = epoch + 1
    run.batch = 0
    _call(run.callbacks, "on_epoch_end", run, epoch, logs)


class _Step:
    """One optimizer step of a run: batch ``b`` of the epoch's order, on this process's share of its rows.

    Called as ``step(b, interrupt)``; returns the signal (SIGTERM before
    SIGINT, 0 for none) seen by ``interrupt`` on any process by the end of
    the step: all processes agree, so they stop at the same step.
    """

    def __init__(self, run):
        self.run = run
        self.comm = run.comm
        self.distributed = run.comm.size > 1
        self.ones = np.ones(run.batch_size)
        self.shard_rng = ShardRandom(run.rng) if self.distributed else None
        # one small all-reduce per step: [batch loss, SIGINT seen, SIGTERM seen, each metric's sums]
        self.n_sums = [m.sums.size for m in run.metrics]
        self.step_sums = np.zeros(3 + sum(self.n_sums))

    def __call__(self, b, interrupt):
        run, net, comm = self.run, self.run.network, self.comm
        bs, n = run.batch_size, run.batches.n
        lo, hi = b * bs, min((b + 1) * bs, n)
        batch_weight = run.batches.weight_sum(lo, hi)  # the global batch's Σw (or its size)
        if batch_weight == 0:
            # Every sample in this batch has weight 0: it carries no
            # gradient, so no step is taken (as if it were not there).
            run.batch = b + 1
            return 0
        if self.distributed:
            r0 = lo + (hi - lo) * comm.rank // comm.size
            r1 = lo + (hi - lo) * (comm.rank + 1) // comm.size
            rng = self.shard_rng.shard(r0 - lo, hi - lo)
        else:
            r0, r1, rng = lo, hi, run.rng
        xb, yb, wb = run.batches.batch(r0, r1)
        scale = sample_scale(r1 - r0, wb, net.dtype, total=batch_weight)
        metric_w = self.ones[: r1 - r0] if wb is None else wb
        out = net.forward(xb, training=True, rng=rng)
        if not self.distributed:
            for m in run.metrics:
                m.update(out, yb, metric_w)
        loss = net.backward(yb, scale)
        if self.distributed:
            loss, signum = self._reduce(out, yb, metric_w, loss, interrupt.signum if interrupt.hit else 0)
        if not math.isfinite(loss):
            raise _diverged(f"the loss is {loss}", run, f"at epoch {run.epoch + 1}, step {run.step + 1} "
                            f"(batch {b + 1} of {run.batches_per_epoch}); lower the learning rate or clip gradients")
        run.lr = run.schedule(run.step, run.optimizer.learning_rate)
        run.optimizer.step(net.params, net.grads, learning_rate=run.lr)
        run.step += 1
        run.batch = b + 1
        run.loss_sum += loss * batch_weight
        run.weight_sum += batch_weight
        _call(run.callbacks, "on_batch_end", run, b, {"loss": loss})
        if self.distributed:
            return signum
        return interrupt.signum if interrupt.hit else 0

    def _reduce(self, out, yb, metric_w, loss, signum):
        """Sum the gradient, the loss, the signal flags and the metrics' sums over the processes."""
        sums, run = self.step_sums, self.run
        sums[0], sums[1], sums[2] = loss, float(signum == signal.SIGINT), float(signum == signal.SIGTERM)
        at = 3
        for m, k in zip(run.metrics, self.n_sums):
            sums[at:at + k] = m.batch_sums(out, yb, metric_w)
            at += k
        self.comm.allreduce_sum(run.network.grads)
        self.comm.allreduce_sum(sums)
        at = 3
        for m, k in zip(run.metrics, self.n_sums):
            m.sums += sums[at:at + k]
            at += k
        signum = signal.SIGTERM if sums[2] > 0 else signal.SIGINT if sums[1] > 0 else 0
        return float(sums[0]), signum  # the same on every rank

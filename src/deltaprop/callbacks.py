"""Callbacks: the small interface the training loop calls, and the built-in ones.

A callback may define any of these methods (the base class defines them all
as no-ops); ``run`` is the :class:`~deltaprop.run.Run` in progress::

    on_train_begin(run)
    on_epoch_begin(run, epoch)          # epoch counts from 0
    on_batch_end(run, batch, logs)      # logs: {"loss": batch loss}
    on_epoch_end(run, epoch, logs)      # logs: the epoch's row of the history
    on_train_end(run)
    on_interrupt(run)                   # Ctrl-C, after the step in progress

A callback sets ``run.stop_training = True`` to end the run after the
current epoch. Callbacks with state that a resumed run needs define
``get_state() -> (dict, {name: ndarray})`` and ``set_state(dict, arrays)``;
checkpoints store it under the callback's ``state_key``.

The built-in features are callbacks too: :class:`EarlyStopping`,
:class:`ProgressBar`, :class:`JSONLogger`, and the checkpoint writer in
:mod:`deltaprop.checkpoint`.
"""

import json
import math
import os
import stat
import sys
import time

import numpy as np

from .atomic import atomic_write
from .checks import check_int, check_number
from .errors import InvalidArgumentError, describe

__all__ = ["Callback", "EarlyStopping", "ProgressBar", "JSONLogger", "LambdaCallback"]


class Callback:
    """Base class; every hook is a no-op."""

    #: key under which a checkpoint stores this callback's state (None: no state)
    state_key = None

    def on_train_begin(self, run):
        pass

    def on_epoch_begin(self, run, epoch):
        pass

    def on_batch_end(self, run, batch, logs):
        pass

    def on_epoch_end(self, run, epoch, logs):
        pass

    def on_train_end(self, run):
        pass


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=lambda run, epoch, logs: ...)``."""

    def __init__(self, **hooks):
        for name, fn in hooks.items():
            if not name.startswith("on_") or not hasattr(Callback, name):
                raise InvalidArgumentError(f"unknown callback hook {name!r}")
            setattr(self, name, fn)


class EarlyStopping(Callback):
    """Stop when a monitored quantity has stopped improving.

    Parameters
    ----------
    monitor : str, default "val_loss"
        A key of the epoch logs: ``"loss"``, ``"val_loss"``, ``"accuracy"``,
        ``"val_accuracy"``, ... (``"val_*"`` needs validation data).
    patience : int, default 5
        Epochs without improvement before stopping.
    min_delta : float, default 0.0
        An improvement must beat the best value by more than this.
    mode : {"auto", "min", "max"}
        Direction; "auto" is "max" for accuracy and R² and "min" otherwise.
    restore_best_weights : bool, default True
        At the end of the run, put back the parameters of the best epoch.

    Attributes
    ----------
    best, best_epoch, stopped_epoch
    """

    state_key = "early_stopping"

    def __init__(self, monitor="val_loss", patience=5, min_delta=0.0, mode="auto", restore_best_weights=True):
        patience = check_int(patience, "patience", low=0)
        min_delta = check_number(min_delta, "min_delta", low=0.0)
        if mode not in ("auto", "min", "max"):
            raise InvalidArgumentError(f"mode must be 'auto', 'min' or 'max', got {describe(mode)}")
        self.monitor = monitor
        self.patience = patience
        self.min_delta = float(min_delta)
        if mode == "auto":
            base = monitor[4:] if monitor.startswith("val_") else monitor
            mode = "max" if base in ("accuracy", "r2") or base.startswith("top") else "min"
        self.mode = mode
        self.restore_best_weights = restore_best_weights
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_epoch = -1
        self.wait = 0
        self.stopped_epoch = None
        self.best_params = None
        self.best_buffers = None

    def on_train_begin(self, run):
        if run.start_epoch == 0 and run.start_batch == 0:
            self._reset()

    def _improved(self, value):
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_epoch_end(self, run, epoch, logs):
        if self.monitor not in logs:
            raise InvalidArgumentError(
                f"early stopping monitors {self.monitor!r}, which this run does not log; "
                f"available: {', '.join(sorted(k for k in logs if k not in ('epoch', 'time', 'lr')))}"
            )
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                if self.best_params is None or self.best_params.shape != run.network.params.shape:
                    self.best_params = run.network.params.copy()
                else:
                    np.copyto(self.best_params, run.network.params)
                buffers = getattr(run.network, "buffers", None)
                if buffers is not None and buffers.size:  # BatchNorm's running statistics belong to the weights
                    self.best_buffers = buffers.copy()
        else:
            self.wait += 1
            if self.wait > self.patience:
                self.stopped_epoch = epoch
                run.stop_training = True

    def on_train_end(self, run):
        if self.restore_best_weights and self.best_params is not None:
            np.copyto(run.network.params, self.best_params)
            if self.best_buffers is not None:
                np.copyto(run.network.buffers, self.best_buffers)

    def get_state(self):
        meta = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait,
                "stopped_epoch": self.stopped_epoch}
        arrays = {"best_params": self.best_params} if self.best_params is not None else {}
        if self.best_buffers is not None:
            arrays["best_buffers"] = self.best_buffers
        return meta, arrays

    def set_state(self, meta, arrays):
        self.best = float(meta["best"])
        self.best_epoch = int(meta["best_epoch"])
        self.wait = int(meta["wait"])
        self.stopped_epoch = meta.get("stopped_epoch")
        bp = arrays.get("best_params")
        self.best_params = None if bp is None else np.array(bp, copy=True)
        bb = arrays.get("best_buffers")
        self.best_buffers = None if bb is None else np.array(bb, copy=True)


class ProgressBar(Callback):
    """A tqdm bar per epoch with the running loss and metric (on standard error)."""

    def __init__(self, file=None, refresh=0.2):
        self.file = file
        self.refresh = refresh
        self._bar = None

    def on_epoch_begin(self, run, epoch):
        from tqdm.auto import tqdm

        self._bar = tqdm(
            total=run.batches_per_epoch, initial=run.batch if epoch == run.start_epoch else 0,
            desc=f"epoch {epoch + 1}/{run.epochs}", unit="batch", leave=True, file=self.file or sys.stderr,
            dynamic_ncols=True, mininterval=self.refresh,
        )
        self._last = 0.0

    def on_batch_end(self, run, batch, logs):
        bar = self._bar
        if bar is None:
            return
        bar.update(1)
        now = time.perf_counter()
        if now - self._last >= self.refresh:
            self._last = now
            bar.set_postfix(run.running_logs(), refresh=False)

    def on_epoch_end(self, run, epoch, logs):
        if self._bar is None:
            return
        shown = {k: _fmt(v) for k, v in logs.items() if k not in ("epoch", "time", "lr")}
        self._bar.set_postfix(shown, refresh=False)
        self._bar.close()
        self._bar = None

    def on_train_end(self, run):
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    on_interrupt = on_train_end


def _fmt(value):
    return f"{value:.4g}" if isinstance(value, float) else value


class JSONLogger(Callback):
    """The run's history in ``path``, one JSON line per epoch, rewritten whole and atomically at each epoch's end.

    The file is never half-written: each epoch it is written to a temporary
    file in the same folder, fsynced and renamed over the old one
    (:func:`deltaprop.atomic.atomic_write`); a failure leaves the old file.
    Lines the file held before the run stay ahead of the run's own (as an
    appended log would); on a resumed run, the lines from the run's first
    epoch on are replaced by the history its checkpoint kept. A setting
    overridden on resume is a line ``{"override": {"setting", "was",
    "now", "epoch", "step"}}`` before the row of the epoch it starts. A
    FIFO or character device (no file to replace) gets each new line
    appended instead.

    Parameters
    ----------
    path : str or path-like
    append : bool, default True
        False: a fresh run's lines replace what the file held (Keras'
        ``CSVLogger(append=False)``), at its first epoch's end, so a run that
        fails before then leaves the old file as it was. A resumed run
        always keeps the lines before its checkpoint.
    """

    def __init__(self, path, append=True):
        self.path = os.fspath(path)
        self.append = bool(append)
        self._kept = []
        self._stream = False

    def on_train_begin(self, run):
        if not getattr(run, "is_root", True):
            return
        self._kept = []
        try:
            st = os.stat(self.path)
        except OSError:
            return
        self._stream = not stat.S_ISREG(st.st_mode)
        if self._stream:
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (OSError, UnicodeDecodeError):
            return  # unreadable: replaced by this run's log
        rows = getattr(getattr(run, "history", None), "rows", None)
        if not rows and not self.append:
            return  # a fresh run that replaces the log
        cut = len(lines)
        if rows:  # resumed: this run's earlier lines start at the last row of its first epoch
            first = rows[0].get("epoch")
            for i in range(len(lines) - 1, -1, -1):
                if _epoch_of(lines[i]) == first:
                    cut = i
                    while cut > 0 and _epoch_of(lines[cut - 1]) == "override":
                        cut -= 1
                    break
        self._kept = lines[:cut]

    def _lines(self, run):
        history = run.history
        overrides = list(getattr(history, "overrides", []))
        out = []
        for row in history.rows:
            while overrides and overrides[0].get("epoch", 0) <= row.get("epoch", 0):
                out.append(json.dumps({"override": overrides.pop(0)}, allow_nan=True))
            out.append(json.dumps(row, allow_nan=True))
        out += [json.dumps({"override": o}, allow_nan=True) for o in overrides]
        return out

    def on_epoch_end(self, run, epoch, logs):
        if not getattr(run, "is_root", True):
            return
        if self._stream or not hasattr(run, "history"):
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(logs, allow_nan=True) + "\n")
            return
        lines = self._kept + self._lines(run)
        with atomic_write(self.path) as f:
            f.write("".join(line + "\n" for line in lines))


def _epoch_of(line):
    """A log line's epoch number, ``"override"`` for an override line, None for anything else."""
    try:
        row = json.loads(line)
    except ValueError:
        return None
    if not isinstance(row, dict):
        return None
    return "override" if "override" in row else row.get("epoch")

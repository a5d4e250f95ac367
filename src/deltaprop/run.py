"""The state of a training run: its history, its position and the one snapshot of it.

:class:`Run` is what the training loop advances and every callback sees. Its
whole state (parameters, optimizer state, the generator, the position in the
epoch's order, the running sums, the history, the callbacks' state) goes in
and out through one pair of methods, :meth:`Run.state_dict` and
:meth:`Run.load_state_dict`, which a checkpoint writes to a file and a
data-parallel run broadcasts from rank 0; nothing else reads or writes those
fields one by one.

:class:`LocalComm` is the communicator interface with one process (every
reduction is the identity); :class:`deltaprop.distributed.MPIComm` is the
same interface over MPI. The loop is handed one and never imports MPI.

This module knows no network, optimizer or file class: it uses the objects it
is given through their methods (``params``, ``state_dict()``,
``get_config()``, ...), and imports NumPy alone.
"""

import json

import numpy as np

from .errors import InvalidArgumentError, InvalidTypeError, describe

__all__ = ["History", "Run", "LocalComm", "data_fingerprint", "data_difference"]

#: rows of X (and y) hashed by :func:`data_fingerprint`
SAMPLED_ROWS = 64


def sampled_rows(n):
    """The rows :func:`data_fingerprint` hashes: all of them up to 64, else 64 at most, the same for every call.

    32 evenly spaced rows (the first and the last among them) and 32 drawn by
    a generator of fixed seed; sorted, without repeats.
    """
    if n <= SAMPLED_ROWS:
        return np.arange(n)
    half = SAMPLED_ROWS // 2
    even = np.linspace(0, n - 1, half).round().astype(np.int64)
    drawn = np.random.default_rng(20261201).integers(0, n, half)
    return np.unique(np.concatenate([even, drawn]))


def _take_rows(A, rows):
    """``A[rows]`` as a C-ordered ndarray, for an ndarray, a memmap or a sparse matrix."""
    if isinstance(A, np.memmap):
        A = A.view(np.ndarray)  # the same pages, read without a subclass's indexing hooks
    xs = A[rows]
    xs = xs.toarray() if hasattr(xs, "toarray") else np.asarray(xs)
    return np.ascontiguousarray(xs)


def _digest(a):
    import hashlib  # only when a run starts: `import deltaprop` stays light (tests/test_architecture.py)

    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def data_fingerprint(X, Y, w=None):
    """What identifies a data set cheaply: its shape and dtype, and hashes of sampled rows and of the weights.

    Parameters
    ----------
    X : ndarray, memmap or sparse matrix of shape (n, d)
    Y : ndarray of shape (n,) or (n, k)
        The prepared targets.
    w : ndarray of shape (n,), optional
        The per-sample weights (hashed whole).

    Returns
    -------
    dict
        ``{"n_rows": n, "n_columns": d, "dtype": str, "rows": hex, "targets": hex, "weights": hex or None}``;
        ``rows`` and ``targets`` are BLAKE2b hashes of the rows :func:`sampled_rows` picks.
    """
    n = int(X.shape[0])
    rows = sampled_rows(n)
    return {
        "n_rows": n,
        "n_columns": int(X.shape[1]) if len(X.shape) > 1 else 1,
        "dtype": str(np.dtype(getattr(X, "dtype", np.float64))),
        "rows": _digest(_take_rows(X, rows)),
        "targets": _digest(_take_rows(Y, rows)),
        "weights": weights_hash(w),
    }


def weights_hash(w):
    """A BLAKE2b hash of per-sample weights (float64), or None for None."""
    return None if w is None else _digest(np.ascontiguousarray(w, dtype=np.float64))


def data_settings(X, Y, w, sample_weight, class_weight, validation):
    """The data's part of a run's settings: ``data``, ``sample_weight``, ``class_weight``, ``validation_data``.

    ``w`` is the training rows' combined weights, ``sample_weight`` and
    ``class_weight`` the per-sample arrays they came from (or None), and
    ``validation`` the validation set ``(X, Y, w)`` or None.
    """
    return {
        "data": data_fingerprint(X, Y, w),
        "sample_weight": weights_hash(sample_weight),
        "class_weight": weights_hash(class_weight),
        "validation_data": None if validation is None else data_fingerprint(*validation),
    }


def json_settings(settings, name):
    """``settings`` (a dict with string keys) as JSON gives it back, so that it compares equal to a stored copy."""
    if settings is None:
        return {}
    if not isinstance(settings, dict) or not all(isinstance(k, str) for k in settings):
        raise InvalidTypeError(f"{name} must be a dict with string keys, got {describe(settings)}")
    try:
        return json.loads(json.dumps(settings, allow_nan=False))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgumentError(f"{name} must be JSON data (finite numbers, strings, lists, dicts): {exc}") from None


def data_difference(theirs, ours):
    """How two :func:`data_fingerprint` results differ, in words (``""`` when they agree)."""
    if not isinstance(theirs, dict) or not isinstance(ours, dict):
        return "" if theirs == ours else "different data"
    shape_a = (theirs.get("n_rows"), theirs.get("n_columns"))
    shape_b = (ours.get("n_rows"), ours.get("n_columns"))
    if shape_a != shape_b:
        return f"shape {shape_a} against {shape_b}"
    same = f"same shape {shape_a}"
    if theirs.get("dtype") != ours.get("dtype"):
        return f"{same}, dtype {theirs.get('dtype')} against {ours.get('dtype')}"
    if theirs.get("rows") != ours.get("rows"):
        return f"{same}, different values in sampled rows"
    if theirs.get("targets") != ours.get("targets"):
        return f"{same}, different targets in sampled rows"
    if theirs.get("weights") != ours.get("weights"):
        given = [d.get("weights") is not None for d in (theirs, ours)]
        return f"{same}, different sample weights" if all(given) else f"{same}, sample weights given on one only"
    return ""


class History:
    """Per-epoch records of a run, as Keras's ``History``.

    ``history.history`` maps each key (``"loss"``, ``"accuracy"``,
    ``"val_loss"``, ``"val_accuracy"``, ``"lr"``, ``"time"``, ...) to a list
    with one value per epoch; ``history["loss"]`` is a shortcut.
    """

    def __init__(self, rows=None, overrides=None):
        self.rows = []
        for row in rows or []:
            self.append(row)
        #: settings a resumed run changed on purpose (``resume_overrides``):
        #: ``{"setting", "was", "now", "epoch"}`` each, ``epoch`` the first
        #: epoch (from 1) trained with the new value
        self.overrides = [dict(o) for o in overrides or []]

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
    """The single-process communicator: every reduction is the identity.

    A communicator has ``rank``, ``size`` and ``is_root``, and the methods
    below; the training loop calls ``allreduce_sum`` on the flat gradient and
    on a small vector of sums each step, ``sync_run`` once before the first
    step and ``barrier`` after an interruption.
    """

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

    def sync_run(self, run):
        """Make every process's run state the root's (nothing to do with one process)."""


class Run:
    """The state of a training run, handed to every callback.

    Attributes
    ----------
    network, optimizer, schedule
    rng : numpy.random.Generator
        The run's random source: the order of each epoch and the dropout
        masks (the network's ``rng``, which drew its initial weights).
    epochs : int
        Epochs the run is to complete (counting resumed ones).
    epoch : int
        Current epoch, from 0.
    batch : int
        Index of the next batch in the current epoch.
    step : int
        Optimizer steps taken (the schedule's clock; it starts at
        ``initial_step``).
    batches_per_epoch : int
    batches : deltaprop.batches.EpochBatches
        The training data, served a batch at a time.
    metrics : list of Metric
        The training metrics; their sums run over the epoch.
    history : History
    stop_training : bool
        Set by a callback to end the run after this epoch.
    comm : communicator (``LocalComm`` for one process)
    callbacks : list
        The callbacks of the run, in the order they are called.
    settings : dict
        What a resumed run must agree on (batch size, sample count, ...).
    checkpoint_path : str or None
        The newest checkpoint written (or resumed from).
    resumed_from : str or None
        The checkpoint this run continued.
    """

    def __init__(self, network, optimizer, schedule, epochs, batch_size, batches, metrics, comm, callbacks=(),
                 settings=None, initial_step=0):
        self.network = network
        self.optimizer = optimizer
        self.schedule = schedule
        self.rng = network.rng
        self.epochs = epochs
        self.batch_size = batch_size
        self.batches = batches
        self.metrics = metrics
        self.comm = comm
        self.callbacks = list(callbacks)
        self.settings = dict(settings or {})
        self.is_root = comm.rank == 0
        self.batches_per_epoch = -(-batches.n // batch_size)
        self.epoch = self.batch = 0
        self.step = initial_step
        self.start_epoch = self.start_batch = 0
        self.history = History()
        self.stop_training = False
        self.perm = None
        self.loss_sum = 0.0
        self.weight_sum = 0.0
        self.elapsed = 0.0  # seconds spent in the current epoch before a resume
        self.lr = optimizer.learning_rate
        self.checkpoint_path = None
        self.resumed_from = None

    def running_logs(self):
        """The epoch so far: mean loss and the training metrics."""
        logs = {"loss": f"{self.loss_sum / self.weight_sum:.4g}" if self.weight_sum else "nan"}
        for m in self.metrics:
            logs[m.name] = f"{m.result():.4g}"
        return logs

    def position(self):
        """Where the run is, for messages: ``"epoch 3, step 120"`` (both counted from 1)."""
        return f"epoch {self.epoch + 1}, step {self.step + 1}"

    # ------------------------------------------------------------ snapshot
    def _stateful_callbacks(self):
        """``{state_key: callback}`` of the callbacks whose state a resumed run needs (the last of a key wins)."""
        out = {}
        for cb in self.callbacks:
            key = getattr(cb, "state_key", None)
            if key and hasattr(cb, "get_state"):
                out[key] = cb
        return out

    def state_dict(self):
        """Everything needed to continue this run exactly: ``(meta, arrays)``.

        Returns
        -------
        meta : dict
            JSON data: ``epoch``, ``batch``, ``step``, ``epochs``, ``rng``
            (the generator's state), ``optimizer`` (``{"t": step count,
            "config": ...}``), ``schedule``, ``history``, ``loss_sum``,
            ``weight_sum``, ``elapsed``, ``lr``, ``stop_training``,
            ``callbacks`` (each stateful callback's JSON state),
            ``settings``, ``shuffled`` and ``overrides`` (the history's).
        arrays : dict of str to ndarray
            ``params``; ``buffers`` (the running statistics, when the
            network has any); ``optimizer.{name}`` (aligned with ``params``);
            ``perm`` (the epoch's order, when mid-epoch and shuffling);
            ``metrics.{name}`` (the epoch's running sums);
            ``callbacks.{key}.{name}``.
        """
        net, opt, sched = self.network, self.optimizer, self.schedule
        arrays = {"params": net.params}
        if getattr(net, "buffers", None) is not None and net.buffers.size:
            arrays["buffers"] = net.buffers
        opt_state = opt.state_dict() if hasattr(opt, "state_dict") else {"t": 0, "state": {}}
        for k, v in opt_state["state"].items():
            arrays[f"optimizer.{k}"] = v
        if self.batch > 0 and self.perm is not None:
            arrays["perm"] = np.asarray(self.perm, dtype=np.int64)
        for m in self.metrics:
            arrays[f"metrics.{m.name}"] = np.asarray(m.sums, dtype=np.float64)
        cb_meta = {}
        for key, cb in self._stateful_callbacks().items():
            meta, cb_arrays = cb.get_state()
            cb_meta[key] = meta
            for name, arr in cb_arrays.items():
                arrays[f"callbacks.{key}.{name}"] = arr
        meta = {
            "epoch": self.epoch,
            "batch": self.batch,
            "step": self.step,
            "epochs": self.epochs,
            "rng": self.rng.bit_generator.state,
            "optimizer": {"t": int(opt_state["t"]), "config": opt.get_config() if hasattr(opt, "get_config") else None},
            "schedule": sched.get_config() if hasattr(sched, "get_config") else None,
            "history": self.history.to_list(),
            "loss_sum": float(self.loss_sum),
            "weight_sum": float(self.weight_sum),
            "elapsed": float(self.elapsed),
            "lr": float(self.lr),
            "stop_training": bool(self.stop_training),
            "callbacks": cb_meta,
            "settings": self.settings,
            "shuffled": self.perm is not None,
            "overrides": [dict(o) for o in self.history.overrides],
        }
        return meta, arrays

    def load_state_dict(self, meta, arrays):
        """Continue from :meth:`state_dict`'s output (checked by the caller: it matches this run).

        Metric sums are taken only mid-epoch (at an epoch's start the loop
        resets them). A callback whose ``set_state`` rejects its state is an
        :class:`~deltaprop.errors.InvalidArgumentError` naming its key.
        """
        net, opt = self.network, self.optimizer
        np.copyto(net.params, arrays["params"])
        if "buffers" in arrays:
            np.copyto(net.buffers, arrays["buffers"])
        if hasattr(opt, "load_state_dict"):
            state = {k[len("optimizer."):]: v for k, v in arrays.items() if k.startswith("optimizer.")}
            opt.load_state_dict({"t": meta["optimizer"]["t"], "state": state})
        self.rng.bit_generator.state = meta["rng"]
        self.epoch, self.batch, self.step = meta["epoch"], meta["batch"], meta["step"]
        self.perm = arrays.get("perm")
        if self.batch > 0:
            for m in self.metrics:
                m.sums = np.array(arrays[f"metrics.{m.name}"], dtype=np.float64)
        self.history = History(meta["history"], meta.get("overrides"))
        self.loss_sum, self.weight_sum = float(meta["loss_sum"]), float(meta["weight_sum"])
        self.elapsed = float(meta["elapsed"])
        self.lr = float(meta["lr"]) if meta["lr"] is not None else opt.learning_rate
        self.stop_training = meta["stop_training"]
        for key, cb in self._stateful_callbacks().items():
            if key not in meta["callbacks"] or not hasattr(cb, "set_state"):
                continue
            prefix = f"callbacks.{key}."
            cb_arrays = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            try:
                cb.set_state(meta["callbacks"][key], cb_arrays)
            except Exception as exc:  # noqa: BLE001 - a user callback may reject its state any way
                raise InvalidArgumentError(f"callback state {key!r} is invalid: {exc}") from None

    def resume_settings(self):
        """The settings a resumed run must share with its checkpoint, and may override by name: ``{name: value}``.

        Each of the optimizer's settings but its name (``learning_rate``,
        ``weight_decay``, ``clipnorm``, ``momentum``, ``beta1``, ...),
        ``schedule`` (its config), ``sample_weight`` and ``class_weight``
        (hashes, or None), ``data`` and ``validation_data`` (fingerprints
        without the weights), and each key of the caller's ``run_settings``.
        The architecture, optimizer, batch size, sample count and shuffling
        are not here: they cannot be overridden.
        """
        opt, sched = self.optimizer, self.schedule
        config = opt.get_config() if hasattr(opt, "get_config") else {}
        out = {"learning_rate": None, "weight_decay": None, "clipnorm": None}
        out.update({k: v for k, v in config.items() if k != "name"})
        out["schedule"] = sched.get_config() if hasattr(sched, "get_config") else None
        for key in ("sample_weight", "class_weight"):
            out[key] = self.settings.get(key)
        for key in ("data", "validation_data"):
            fp = self.settings.get(key)
            out[key] = {k: v for k, v in fp.items() if k != "weights"} if isinstance(fp, dict) else fp
        for key, value in (self.settings.get("run_settings") or {}).items():
            out.setdefault(key, value)  # a built-in setting of the same name is the one compared
        return out

    def check_overrides(self, names):
        """``fit``'s ``resume_overrides`` as a set, each name one of :meth:`resume_settings`."""
        if isinstance(names, str):
            names = [names]
        try:
            names = set(names)
        except TypeError:
            raise InvalidTypeError(f"resume_overrides must be a list of setting names, got {describe(names)}") from None
        known = self.resume_settings()
        unknown = sorted(map(str, names - set(known)))
        if unknown:
            raise InvalidArgumentError(
                f"resume_overrides names {', '.join(map(repr, unknown))}, which "
                f"{'is' if len(unknown) == 1 else 'are'} not a setting of this run; the settings are "
                f"{', '.join(sorted(known))}"
            )
        return names

    @property
    def data_fingerprint(self):
        """The training data's :func:`data_fingerprint` (None when ``fit`` did not give one)."""
        return self.settings.get("data")

    def fingerprint(self):
        """What every process of a data-parallel run must agree on: the network, the data, the settings.

        The data (shape, dtype, hashes of sampled rows and of the weights) is
        under the key ``"data"`` (see :func:`data_fingerprint`).
        """
        net, opt = self.network, self.optimizer
        return {
            "the network": net.get_config(),
            "the number of parameters": int(net.params.size),
            **{k: v for k, v in self.settings.items() if k != "optimizer"},
            "epochs": self.epochs,
            "optimizer": opt.get_config() if hasattr(opt, "get_config") else type(opt).__name__,
            "optimizer state": {k: [list(v.shape), v.dtype.str] for k, v in sorted(getattr(opt, "state", {}).items())},
            "metrics": [m.name for m in self.metrics],
            "bit generator": type(self.rng.bit_generator).__name__,
        }

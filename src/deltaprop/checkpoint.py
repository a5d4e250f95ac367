"""Checkpoints: everything a run needs to continue bit-identically.

A checkpoint is a tensor file (see :mod:`deltaprop.tensorfile`) holding
the run's state as :meth:`deltaprop.run.Run.state_dict` gives it:

- tensors: ``params`` (the flat parameter store), ``optimizer.{name}`` (each
  state array, aligned with ``params``), ``perm`` (the current epoch's order,
  when mid-epoch and shuffling), ``metrics.{name}`` (the epoch's running
  metric sums), and ``callbacks.{key}.{name}`` (callback arrays, e.g. early
  stopping's best weights);
- metadata: ``format`` ("deltaprop.checkpoint"), ``format_version``,
  ``architecture`` and ``run`` (JSON: epoch, batch, step, the generator's
  state, optimizer step count and config, the schedule, history, running
  loss sums, callback states and the run's settings).

Files are named ``ckpt-e{epoch}-s{step}.safetensors`` and written atomically;
the newest is the one with the largest step. A kill at any moment leaves
every previous checkpoint intact (at worst a hidden ``.tmp`` file, removed by
the next :class:`Checkpointer`). A checkpoint is never written from
non-finite parameters or optimizer state, so the newest one is always a
good state to go back to after a divergence.

Resuming (:func:`restore`, used by ``fit(..., resume_from=...)``) validates
the whole file first, then checks it against the run (same architecture,
optimizer, batch size, sample count, shuffling, generator type; the same
settings, :meth:`deltaprop.run.Run.resume_settings`, unless overridden by
name; no more epochs done than asked for), and only then changes the run: a
rejected checkpoint leaves the network untouched. From a folder, a corrupt
newest checkpoint is skipped, with a :class:`DeltapropWarning`, for the
newest good one.
"""

import math
import os
import re
import sys
import warnings

import numpy as np

from .architecture import check_architecture, n_buffers, n_params
from .callbacks import Callback, EarlyStopping
from .checks import check_positive_int
from .errors import DeltapropWarning, DivergenceError, InvalidArgumentError, ModelFileError, SaveError, describe
from .run import data_difference
from .tensorfile import (
    CHECKPOINT_FORMAT,
    MAX_COUNT,
    check_format,
    check_tensor,
    dumps,
    json_field,
    read_file,
    write_file,
)

__all__ = ["Checkpointer", "restore", "latest_checkpoint", "load_checkpoint", "write_checkpoint", "CHECKPOINT_FORMAT"]

#: 2: each layer's W is stored transposed in the flat arrays (see Dense.bind);
#: version 1 files (W row by row) are converted on reading.
CHECKPOINT_FORMAT_VERSION = 2
_NAME = re.compile(r"^ckpt-e(\d+)-s(\d+)\.safetensors$")
_TMP = re.compile(r"^\.ckpt-e\d+-s\d+\.safetensors\.[0-9a-f]+\.tmp$")
#: NumPy bit generators whose state a checkpoint may hold
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


def _checkpoints(folder):
    """``[(step, epoch, path)]`` of the checkpoint files in ``folder``, oldest first."""
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return []
    found = []
    for entry in entries:
        match = _NAME.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(2)), int(match.group(1)), entry.path))
    found.sort()
    return found


def latest_checkpoint(folder):
    """Path of the newest checkpoint in ``folder`` (largest step, then epoch), or None."""
    found = _checkpoints(os.fspath(folder))
    return found[-1][2] if found else None


def _file_contents(run):
    """``(tensors, metadata)`` of a checkpoint of ``run`` as it stands now."""
    info, tensors = run.state_dict()
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "format_version": str(CHECKPOINT_FORMAT_VERSION),
        "architecture": dumps(run.network.get_config(), "the network's configuration"),
        "run": dumps(info, "the run's state"),
    }
    return tensors, metadata


class Checkpointer(Callback):
    """Write a checkpoint every ``every`` epochs (or steps), keeping the last ``keep``.

    Also writes one at the end of the run (or when a callback stops it) and
    when training is interrupted with Ctrl-C. Only the root process writes
    (data-parallel runs). A checkpoint is never written from non-finite
    parameters or optimizer state: that raises :class:`DivergenceError` and
    leaves the good checkpoints in place.

    Parameters
    ----------
    folder : path
        Created if missing. It must not hold checkpoints from beyond the
        step the run starts at (another timeline, whose files would shadow
        this run's): resume from them or use another folder.
    every : int, default 1
    unit : {"epoch", "step"}, default "epoch"
    keep : int, default 3
        Older checkpoints (by step) are deleted.
    """

    def __init__(self, folder, every=1, unit="epoch", keep=3):
        if unit not in ("epoch", "step"):
            raise InvalidArgumentError(f"checkpoint_unit must be 'epoch' or 'step', got {unit!r}")
        self.folder = os.fspath(folder)
        self.every = check_positive_int(every, "checkpoint_every")
        self.keep = check_positive_int(keep, "keep_checkpoints")
        self.unit = unit
        self.last_written = None

    def on_train_begin(self, run):
        if not run.is_root:
            return
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as exc:
            raise SaveError(f"cannot create checkpoint folder {self.folder}: {exc.strerror or exc}") from None
        with os.scandir(self.folder) as it:
            stale = [entry.path for entry in it if _TMP.match(entry.name)]
        for path in stale:
            try:
                os.unlink(path)  # left by a process killed mid-write
            except OSError:
                pass
        skipped = set(getattr(run, "skipped_checkpoints", ()))
        found = [f for f in _checkpoints(self.folder) if f[2] not in skipped]
        if found and found[-1][0] > run.step:
            raise InvalidArgumentError(
                f"checkpoint folder {self.folder} already holds {found[-1][2]} (step {found[-1][0]}), beyond "
                f"this run's start at step {run.step}; resume from it (resume_from={self.folder!r}) or use "
                f"another checkpoint_dir"
            )

    def _path(self, run):
        return os.path.join(self.folder, f"ckpt-e{run.epoch:04d}-s{run.step:09d}.safetensors")

    def write(self, run):
        """Write a checkpoint of ``run`` now (root process only) and prune old ones."""
        path = self._path(run)
        if run.is_root:
            state = getattr(run.optimizer, "state", None)
            arrays = [("parameters", run.network.params), ("running statistics", run.network.buffers)]
            arrays += [(f"optimizer state {k!r}", v) for k, v in state.items()] if isinstance(state, dict) else []
            bad = [name for name, a in arrays if not np.all(np.isfinite(a))]
            if bad:
                last = self.last_written or getattr(run, "resumed_from", None) or latest_checkpoint(self.folder)
                raise DivergenceError(
                    f"training diverged: {bad[0]} not finite at epoch {run.epoch + (run.batch > 0)}, "
                    f"step {run.step}; no checkpoint written"
                    + (f"; the last good checkpoint is {last}" if last else "")
                )
            tensors, metadata = _file_contents(run)
            write_file(path, tensors, metadata)
            self.last_written = path
            self._prune(run)
        run.checkpoint_path = path

    def _prune(self, run=None):
        skipped = set(getattr(run, "skipped_checkpoints", ()))  # corrupt files a resume went past: left alone
        found = [f for f in _checkpoints(self.folder) if f[2] not in skipped]
        for _, _, path in found[: max(0, len(found) - self.keep)]:
            try:
                os.unlink(path)
            except OSError:
                pass

    def on_batch_end(self, run, batch, logs):
        if self.unit == "step" and run.step % self.every == 0:
            self.write(run)

    def on_epoch_end(self, run, epoch, logs):
        if (self.unit == "epoch" and (epoch + 1) % self.every == 0) or run.stop_training or run.epoch == run.epochs:
            self.write(run)

    def on_interrupt(self, run):
        if self._path(run) == self.last_written:  # this very step is on disk already
            run.checkpoint_path = self.last_written
        else:
            self.write(run)

    #: the training loop's interrupt checkpoint is not needed beside this callback
    writes_checkpoints = True


def write_checkpoint(run, folder, keep=3):
    """Write one checkpoint of ``run`` as it stands into ``folder`` (created), as :class:`Checkpointer` does.

    For a run interrupted without a checkpoint folder (``fit``'s
    ``interrupt_checkpoint``). Older checkpoints there beyond the newest
    ``keep`` are deleted. Returns the path (on every process; the root
    writes it).
    """
    writer = Checkpointer(folder, keep=keep)
    if run.is_root:
        try:
            os.makedirs(writer.folder, exist_ok=True)
        except OSError as exc:
            raise SaveError(f"cannot create checkpoint folder {writer.folder}: {exc.strerror or exc}") from None
    writer.write(run)
    return run.checkpoint_path


# ------------------------------------------------------------------ loading
def _number(value, low=-math.inf):
    return type(value) in (int, float) and math.isfinite(value) and value >= low


def _count(value, low=0):
    return type(value) is int and low <= value <= MAX_COUNT


def _check_rng(path, state):
    """The generator state must be one NumPy accepts and reproduces exactly."""
    name = state.get("bit_generator")
    if not isinstance(name, str) or name not in _BIT_GENERATORS:
        raise ModelFileError(f"{path}: generator {describe(name)} is not one of {', '.join(_BIT_GENERATORS)}")
    bit_generator = getattr(np.random, name)(0)
    try:
        bit_generator.state = state
        same = dumps(bit_generator.state, "generator state") == dumps(state, "generator state")
    except Exception:  # noqa: BLE001 - NumPy's setters raise TypeError, ValueError, OverflowError, KeyError
        same = False
    if not same:
        raise ModelFileError(f"{path}: the generator state is invalid")


def load_checkpoint(path):
    """Read and validate a checkpoint file: ``(tensors, architecture, run_info)``.

    Everything is checked that does not depend on the run it will resume:
    field types and ranges, the generator state, the parameter count against
    the architecture, every tensor's shape, dtype and finiteness, the epoch's
    order being a permutation.

    Raises
    ------
    ModelFileError
        Naming the problem.
    """
    path = os.fspath(path)
    tensors, metadata = read_file(path)
    check_format(path, metadata, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION)
    arch = check_architecture(path, json_field(path, metadata, "architecture", dict))
    info = json_field(path, metadata, "run", dict)

    def need(key, ok, what, default=None, required=True):
        if key not in info and not required:
            info[key] = default
            return
        if not ok(info.get(key)):
            raise ModelFileError(f"{path}: run field {key!r} must be {what}, got {describe(info.get(key))}")

    need("epoch", _count, "an integer >= 0")
    need("batch", _count, "an integer >= 0")
    need("step", _count, "an integer >= 0")
    need("epochs", lambda v: _count(v, 1), "an integer >= 1")
    need("rng", lambda v: isinstance(v, dict), "an object")
    need("optimizer", lambda v: isinstance(v, dict) and _count(v.get("t"))
         and isinstance(v.get("config"), (dict, type(None))), "an object with a step count 't' and a 'config'")
    need("schedule", lambda v: isinstance(v, (dict, type(None))), "an object or null", required=False)
    need("history", lambda v: isinstance(v, list) and all(
        isinstance(r, dict) and all(type(x) in (int, float, str, bool, type(None)) for x in r.values()) for r in v),
        "a list of objects of numbers")
    need("loss_sum", _number, "a finite number")
    need("weight_sum", lambda v: _number(v, 0), "a finite number >= 0")
    need("elapsed", lambda v: _number(v, 0), "a finite number >= 0", 0.0, required=False)
    need("lr", _number, "a finite number", None, required=False)
    need("stop_training", lambda v: isinstance(v, bool), "true or false", False, required=False)
    need("callbacks", lambda v: isinstance(v, dict) and all(isinstance(c, dict) for c in v.values()),
         "an object of objects")
    need("settings", lambda v: isinstance(v, dict) and _count(v.get("batch_size"), 1)
         and _count(v.get("n_samples"), 1), "an object with batch_size and n_samples")
    need("shuffled", lambda v: isinstance(v, bool), "true or false", True, required=False)
    need("overrides", lambda v: isinstance(v, list) and all(
        isinstance(o, dict) and isinstance(o.get("setting"), str) and _count(o.get("epoch"), 1) for o in v),
        "a list of objects with a 'setting' and an 'epoch'", [], required=False)
    _check_rng(path, info["rng"])
    settings = info["settings"]
    batches = -(-settings["n_samples"] // settings["batch_size"])
    if info["batch"] > batches:
        raise ModelFileError(f"{path}: batch {info['batch']} is beyond the epoch's {batches} batches")

    dtype = arch["dtype"]
    if "params" not in tensors:
        raise ModelFileError(f"{path}: tensor 'params' is missing")
    n_flat = n_params(arch, path)  # the layers are built (unallocated) once for every size checked here
    check_tensor(path, "params", tensors["params"], (n_flat,), dtype)
    _check_buffers(path, tensors, arch)
    for name, tensor in tensors.items():
        if name.startswith("optimizer."):
            check_tensor(path, name, tensor, (n_flat,), dtype)
        elif name.startswith("metrics."):
            if tensor.ndim != 1:
                raise ModelFileError(f"{path}: tensor {name!r} must be 1-D, got shape {tensor.shape}")
            check_tensor(path, name, tensor, tensor.shape, np.float64)
        elif name.startswith("callbacks."):
            if name.split(".")[1] not in info["callbacks"]:
                raise ModelFileError(f"{path}: tensor {name!r} belongs to no callback in the run's state")
        elif name not in ("params", "perm", "buffers"):
            raise ModelFileError(f"{path}: unexpected tensor {name!r}")
    perm = tensors.get("perm")
    if perm is not None:
        n = settings["n_samples"]
        if info["batch"] == 0 or not info["shuffled"]:
            raise ModelFileError(f"{path}: tensor 'perm' is present but the run is not mid-epoch with shuffling")
        check_tensor(path, "perm", perm, (n,), np.int64)
        if n and (perm.min() < 0 or perm.max() >= n or not np.all(np.bincount(perm, minlength=n) == 1)):
            raise ModelFileError(f"{path}: tensor 'perm' is not a permutation of 0..{n - 1}")
    elif info["batch"] > 0 and info["shuffled"]:
        raise ModelFileError(f"{path}: the epoch's order (tensor 'perm') is missing from a mid-epoch checkpoint")
    if int(metadata["format_version"]) == 1:
        if any(layer.get("type", "Dense") != "Dense" or "bias" in layer for layer in arch["layers"]):
            raise ModelFileError(f"{path}: a version 1 checkpoint holds Dense layers with biases alone")
        for name in list(tensors):
            aligned = (name == "params" or name.startswith("optimizer.")
                       or name == "callbacks.early_stopping.best_params")
            if aligned and tensors[name].shape == (n_flat,):
                tensors[name] = _flat_from_version_1(tensors[name], arch)
    return tensors, arch, info


def _flat_from_version_1(flat, arch):
    """A flat array in version 1's layout (each ``W`` row by row) → the current one (``Wᵀ`` row by row)."""
    out = np.empty_like(flat)
    at = 0
    for layer in arch["layers"]:
        n_out, n_in = layer["n_out"], layer["n_in"]
        k = n_out * n_in
        out[at:at + k] = flat[at:at + k].reshape(n_out, n_in).T.ravel()
        out[at + k:at + k + n_out] = flat[at + k:at + k + n_out]
        at += k + n_out
    return out


def _check_buffers(path, tensors, arch):
    """The running statistics: present exactly when the architecture has some, with their size."""
    n_buf = n_buffers(arch, path)
    if n_buf and "buffers" not in tensors:
        raise ModelFileError(f"{path}: tensor 'buffers' (the running statistics) is missing")
    if "buffers" in tensors:
        check_tensor(path, "buffers", tensors["buffers"], (n_buf,), arch["dtype"])


def _check_buffer_values(path, net, buffers):
    """The checkpoint's running statistics, judged by the network's layers (a variance is never negative)."""
    problem = net.buffers_problem(buffers)
    if problem:
        raise ModelFileError(f"{path}: {problem}")


def _check_early_stopping(path, meta, arrays, params, buffers):
    ok = (type(meta.get("best")) in (int, float) and not math.isnan(meta["best"])
          and _count(meta.get("best_epoch"), -1) and _count(meta.get("wait"))
          and (meta.get("stopped_epoch") is None or _count(meta.get("stopped_epoch"))))
    if not ok:
        raise ModelFileError(f"{path}: early stopping state is malformed: {describe(meta)}")
    if set(arrays) - {"best_params", "best_buffers"}:
        raise ModelFileError(f"{path}: unexpected early stopping arrays {sorted(arrays)}")
    if "best_params" in arrays:
        check_tensor(path, "callbacks.early_stopping.best_params", arrays["best_params"], params.shape, params.dtype)
    if "best_buffers" in arrays:
        check_tensor(path, "callbacks.early_stopping.best_buffers", arrays["best_buffers"], buffers.shape,
                     buffers.dtype)


def _check_same_network(path, theirs, mine):
    """The checkpoint's architecture must be the one being trained; name the first difference."""
    if len(theirs["layers"]) != len(mine["layers"]):
        raise ModelFileError(f"cannot resume {path}: its network has {len(theirs['layers'])} layers, "
                             f"the network being trained has {len(mine['layers'])}")
    for i, (a, b) in enumerate(zip(theirs["layers"], mine["layers"], strict=True)):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                raise ModelFileError(f"cannot resume {path}: its layer {i} has {key}={describe(a.get(key))}, "
                                     f"the network being trained has {key}={describe(b.get(key))}")
    for key in ("loss", "dtype"):
        if theirs[key] != mine[key]:
            raise ModelFileError(f"cannot resume {path}: its network's {key} is {describe(theirs[key])}, "
                                 f"the network being trained has {describe(mine[key])}")


def restore(run, path, overrides=(), verbose=0):
    """Put a checkpoint's state into ``run`` (and its callbacks) so the loop continues it exactly.

    Parameters
    ----------
    run : deltaprop.run.Run
    path : path
        A checkpoint, or a folder: its newest checkpoint that reads; a
        corrupt newer one is skipped with a :class:`DeltapropWarning` (and,
        when ``verbose``, a note on standard error). A corrupt file named
        explicitly is an error.
    overrides : iterable of str
        Settings (:meth:`~deltaprop.run.Run.resume_settings` names) that may
        differ from the checkpoint's; each that does is appended to
        ``run.history.overrides``.
    verbose : int
        Non-zero: say on standard error which checkpoint the run resumes.

    Raises
    ------
    InvalidArgumentError
        A folder without checkpoints; a setting that differs from the
        checkpoint's and is not overridden (naming it, both values and the
        override); more epochs done than ``run.epochs``.
    ModelFileError
        A corrupt checkpoint (from a folder: every one, each named with its
        problem), or one that does not match this run (architecture,
        optimizer, batch size, number of samples, shuffling, generator type,
        metrics); nothing in the run is changed then.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path, (tensors, arch, info), skipped = _newest_good(path)
        run.skipped_checkpoints = [p for p, _ in skipped]
        if skipped:
            note = "; ".join(f"skipped {os.path.basename(p)}: {why}" for p, why in skipped)
            note += f"; resuming from {os.path.basename(path)}"
            warnings.warn(note, DeltapropWarning, stacklevel=3)
            if verbose and run.is_root:
                print(f"deltaprop: note: {note}", file=sys.stderr, flush=True)
    else:
        tensors, arch, info = load_checkpoint(path)
    used = _check_same_run(path, run, tensors, arch, info, set(overrides))
    try:
        run.load_state_dict(info, tensors)
    except InvalidArgumentError as exc:  # a callback rejected its state
        raise ModelFileError(f"{path}: {exc}") from None
    run.resumed_from = path
    for setting, was, now in used:
        run.history.overrides.append({"setting": setting, "was": was, "now": now, "epoch": run.epoch + 1,
                                      "step": run.step})
    if verbose and run.is_root:
        print(f"resuming from {path} (epoch {run.epoch + 1}, batch {run.batch})", file=sys.stderr, flush=True)


def _newest_good(folder):
    """``(path, load_checkpoint(path), [(skipped path, why)])`` of the newest checkpoint in ``folder`` that reads."""
    found = _checkpoints(folder)
    if not found:
        raise InvalidArgumentError(f"no checkpoint (ckpt-*.safetensors) to resume from in {folder}")
    skipped = []
    for _, _, path in reversed(found):
        try:
            return path, load_checkpoint(path), skipped
        except (ModelFileError, OSError) as exc:
            why = str(exc)
            why = why[len(path) + 2:] if why.startswith(f"{path}: ") else why
            skipped.append((path, " ".join(why.split())))
    raise ModelFileError(f"no checkpoint in {folder} can be resumed: "
                         + "; ".join(f"{os.path.basename(p)}: {why}" for p, why in skipped))


def _check_same_run(path, run, tensors, arch, info, overrides=frozenset()):
    """Everything checked against the run before anything changes; the message names the first difference.

    Returns the overridden settings that differ: ``[(name, checkpoint's value, run's value)]``.
    """
    net, opt = run.network, run.optimizer
    _check_same_network(path, arch, net.get_config())
    for key in ("batch_size", "n_samples", "n_in", "n_out", "shuffle"):
        theirs, ours = info["settings"].get(key), run.settings.get(key)
        if theirs != ours:
            raise ModelFileError(
                f"cannot resume {path}: it was made with {key}={theirs!r}, this run has {key}={ours!r}"
            )
    saved_opt = (info["optimizer"].get("config") or {}).get("name")
    our_opt = opt.get_config().get("name") if hasattr(opt, "get_config") else None
    if saved_opt != our_opt:
        raise ModelFileError(f"cannot resume {path}: it used optimizer {saved_opt!r}, this run uses {our_opt!r}")
    state = {k[len("optimizer."):] for k in tensors if k.startswith("optimizer.")}
    wanted = set(opt.state_dict()["state"]) if hasattr(opt, "state_dict") else state
    if state != wanted:
        raise ModelFileError(
            f"cannot resume {path}: it holds optimizer state {sorted(state)}, {our_opt!r} here needs {sorted(wanted)}"
        )
    rng_name = type(run.rng.bit_generator).__name__
    if info["rng"]["bit_generator"] != rng_name:
        raise ModelFileError(
            f"cannot resume {path}: its generator is {info['rng']['bit_generator']}, this run's is {rng_name}"
        )
    if info["batch"] > 0:
        for m in run.metrics:
            sums = tensors.get(f"metrics.{m.name}")
            if sums is None or sums.shape != np.shape(m.sums):
                raise ModelFileError(
                    f"cannot resume {path} mid-epoch: it lacks the running sums of metric {m.name!r} "
                    f"(or they have another shape)"
                )
    for cb in run.callbacks:
        key = getattr(cb, "state_key", None)
        if isinstance(cb, EarlyStopping) and key in info["callbacks"]:
            prefix = f"callbacks.{key}."
            arrays = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            _check_early_stopping(path, info["callbacks"][key], arrays, net.params, net.buffers)
            if "best_buffers" in arrays:
                _check_buffer_values(path, net, arrays["best_buffers"])
    if "buffers" in tensors:
        _check_buffer_values(path, net, tensors["buffers"])
    used = _check_settings(path, run, info, overrides)
    done = info["epoch"] + (info["batch"] > 0)
    if done > run.epochs:
        during = f" and {info['batch']} batches of epoch {info['epoch'] + 1}" if info["batch"] > 0 else ""
        raise InvalidArgumentError(
            f"cannot resume {_stem(path)}: it has done {info['epoch']} epochs{during}, more than epochs="
            f"{run.epochs}; ask for epochs >= {done}"
        )
    return used


def _stem(path):
    name = os.path.basename(path)
    return name[: -len(".safetensors")] if name.endswith(".safetensors") else name


def _saved_settings(info):
    """The checkpoint's :meth:`~deltaprop.run.Run.resume_settings` (what it holds of them: older files hold less)."""
    theirs = {}
    config = info["optimizer"].get("config")
    if isinstance(config, dict):
        theirs.update({"learning_rate": None, "weight_decay": None, "clipnorm": None})
        theirs.update({k: v for k, v in config.items() if k != "name"})
    if info.get("schedule") is not None:
        theirs["schedule"] = info["schedule"]
    settings = info["settings"]
    for key in ("sample_weight", "class_weight"):
        if key in settings:
            theirs[key] = settings[key]
    for key in ("data", "validation_data"):
        if key in settings:
            fp = settings[key]
            theirs[key] = {k: v for k, v in fp.items() if k != "weights"} if isinstance(fp, dict) else fp
    return theirs, settings.get("run_settings") if isinstance(settings.get("run_settings"), dict) else {}


def _check_settings(path, run, info, overrides):
    """Compare the run's settings with the checkpoint's; refuse the first difference not in ``overrides``."""
    ours = run.resume_settings()
    theirs, their_run_settings = _saved_settings(info)
    our_run_settings = run.settings.get("run_settings") or {}
    callers = {key: value for key, value in their_run_settings.items()
               if key in our_run_settings and key not in theirs}  # compared when both runs name it
    # The caller's settings first: a different scaling is named as the cause, before the data it changes.
    theirs = {**callers, **{k: v for k, v in theirs.items() if k not in ("data", "validation_data")},
              **{k: v for k, v in theirs.items() if k in ("data", "validation_data")}}
    used = []
    for key, was in theirs.items():
        now = ours.get(key)
        if was == now:
            continue
        implied = key in ("data", "validation_data") and any(name in callers for name, _, _ in used)
        if key not in overrides and not implied:  # an overridden caller setting may change the data it prepares
            raise InvalidArgumentError(
                f"cannot resume {_stem(path)}: {_difference(key, was, now)}; pass the same value, or override "
                f"it with resume_overrides=[{key!r}] (--override {key})"
            )
        used.append((key, was, now))
    return used


def _difference(key, was, now):
    """How setting ``key`` differs, in words, for a refused resume."""
    if key in ("data", "validation_data"):
        what = "training data" if key == "data" else "validation data"
        if was is None or now is None:
            return f"the checkpoint's run had {'no ' if was is None else ''}{what}, this one has " + \
                ("none" if now is None else "some")
        return f"the {what} differ from the checkpoint's ({data_difference(was, now)})"
    if key in ("sample_weight", "class_weight"):
        what = key.replace("_", " ") + "s"
        if was is None or now is None:
            return f"{what} were {'not ' if was is None else ''}given in the checkpoint's run, now " + \
                ("not" if now is None else "they are")
        return f"the {what} differ from the checkpoint's"
    return f"{key} was {describe(was)} in the checkpoint, now {describe(now)}"

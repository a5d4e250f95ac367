"""Checkpoints: everything a run needs to continue bit-identically.

A checkpoint is a safetensors file (see :mod:`deltaprop.io`) holding

- tensors: ``params`` (the flat parameter store), ``optimizer.{name}`` (each
  state array), ``perm`` (the current epoch's order, when mid-epoch),
  ``metrics.{name}`` (the epoch's running metric sums), and
  ``callbacks.{key}.{name}`` (callback arrays, e.g. early stopping's best
  weights);
- metadata: ``format`` ("deltaprop.checkpoint"), ``format_version``,
  ``architecture`` and ``run`` (JSON: epoch, batch, step, the generator's
  state, optimizer step count and config, the schedule, history, running
  loss sums, callback states and the run's settings).

Files are named ``ckpt-e{epoch}-s{step}.safetensors`` and written atomically;
the newest is the one with the largest step. A kill at any moment leaves
every previous checkpoint intact (at worst a hidden ``.tmp`` file, removed by
the next :class:`Checkpointer`).
"""

import glob
import json
import math
import os
import re

import numpy as np

from .callbacks import Callback
from .errors import DivergenceError, InvalidArgumentError, ModelFileError
from .io import _json_field, check_architecture, check_format, read_file, write_file

__all__ = ["Checkpointer", "restore", "latest_checkpoint", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = "deltaprop.checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
_NAME = re.compile(r"^ckpt-e(\d+)-s(\d+)\.safetensors$")


def latest_checkpoint(folder):
    """Path of the newest checkpoint in ``folder`` (largest step), or None."""
    best = None
    for path in glob.glob(os.path.join(os.fspath(folder), "ckpt-e*-s*.safetensors")):
        match = _NAME.match(os.path.basename(path))
        if match:
            key = (int(match.group(2)), int(match.group(1)))
            if best is None or key > best[0]:
                best = (key, path)
    return None if best is None else best[1]


def _state(run, cbs):
    net, opt = run.network, run.optimizer
    tensors = {"params": net.params}
    opt_state = opt.state_dict() if hasattr(opt, "state_dict") else {"t": 0, "state": {}}
    for k, v in opt_state["state"].items():
        tensors[f"optimizer.{k}"] = v
    mid_epoch = 0 < run.batch
    if mid_epoch and run.perm is not None:
        tensors["perm"] = run.perm.astype(np.int64)
    for m in run.metrics:
        tensors[f"metrics.{m.name}"] = np.asarray(m.sums, dtype=np.float64)
    cb_meta = {}
    for cb in cbs:
        key = getattr(cb, "state_key", None)
        if key and hasattr(cb, "get_state"):
            meta, arrays = cb.get_state()
            cb_meta[key] = meta
            for name, arr in arrays.items():
                tensors[f"callbacks.{key}.{name}"] = arr
    sched = run.schedule
    info = {
        "epoch": run.epoch,
        "batch": run.batch,
        "step": run.step,
        "epochs": run.epochs,
        "rng": run.rng.bit_generator.state,
        "optimizer": {"t": opt_state["t"], "config": opt.get_config() if hasattr(opt, "get_config") else None},
        "schedule": sched.get_config() if hasattr(sched, "get_config") else None,
        "history": run.history.to_list(),
        "loss_sum": run.loss_sum,
        "weight_sum": run.weight_sum,
        "elapsed": run.elapsed,
        "lr": float(run.lr),
        "stop_training": bool(run.stop_training),
        "callbacks": cb_meta,
        "settings": run.settings,
        "shuffled": run.perm is not None,
    }
    metadata = {
        "format": CHECKPOINT_FORMAT,
        "format_version": str(CHECKPOINT_FORMAT_VERSION),
        "architecture": json.dumps(net.get_config()),
        "run": json.dumps(info),
    }
    return tensors, metadata


class Checkpointer(Callback):
    """Write a checkpoint every ``every`` epochs (or steps), keeping the last ``keep``.

    Also writes one when training is interrupted with Ctrl-C. Only the root
    process writes (data-parallel runs). A checkpoint is never written from
    non-finite parameters, so the last one on disk is always a good state.
    """

    def __init__(self, folder, every=1, unit="epoch", keep=3):
        if unit not in ("epoch", "step"):
            raise InvalidArgumentError(f"checkpoint unit must be 'epoch' or 'step', got {unit!r}")
        for name, value in (("checkpoint_every", every), ("keep_checkpoints", keep)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
        self.folder = os.fspath(folder)
        self.every, self.unit, self.keep = every, unit, keep
        self._cbs = []

    def on_train_begin(self, run):
        self._cbs = getattr(run, "callbacks", [])
        if not run.is_root:
            return
        try:
            os.makedirs(self.folder, exist_ok=True)
        except OSError as exc:
            from .errors import SaveError

            raise SaveError(f"cannot create checkpoint folder {self.folder}: {exc.strerror or exc}") from None
        for tmp in glob.glob(os.path.join(self.folder, ".ckpt-*.tmp")):
            try:
                os.unlink(tmp)  # left by a process killed mid-write
            except OSError:
                pass

    def write(self, run):
        run.checkpoint_path = os.path.join(self.folder, f"ckpt-e{run.epoch:04d}-s{run.step:09d}.safetensors")
        if not run.is_root:
            return
        if not np.all(np.isfinite(run.network.params)):
            raise DivergenceError(
                f"parameters are not finite at step {run.step}; not overwriting good checkpoints"
            )
        tensors, metadata = _state(run, self._cbs)
        write_file(run.checkpoint_path, tensors, metadata)
        self._prune()

    def _prune(self):
        found = []
        for path in glob.glob(os.path.join(self.folder, "ckpt-e*-s*.safetensors")):
            match = _NAME.match(os.path.basename(path))
            if match:
                found.append((int(match.group(2)), int(match.group(1)), path))
        found.sort()
        for _, _, path in found[: max(0, len(found) - self.keep)]:
            try:
                os.unlink(path)
            except OSError:
                pass

    def on_batch_end(self, run, batch, logs):
        if self.unit == "step" and run.step % self.every == 0:
            self.write(run)

    def on_epoch_end(self, run, epoch, logs):
        if self.unit == "epoch" and (epoch + 1) % self.every == 0 or run.stop_training or run.epoch == run.epochs:
            self.write(run)

    def on_interrupt(self, run):
        self.write(run)


def load_checkpoint(path):
    """Read and validate a checkpoint file: ``(tensors, architecture, run_info)``."""
    path = os.fspath(path)
    tensors, metadata = read_file(path)
    check_format(path, metadata, CHECKPOINT_FORMAT, CHECKPOINT_FORMAT_VERSION)
    arch = check_architecture(path, _json_field(path, metadata, "architecture", dict))
    info = _json_field(path, metadata, "run", dict)
    for key, kind in (("epoch", int), ("batch", int), ("step", int), ("rng", dict), ("optimizer", dict),
                      ("history", list), ("loss_sum", (int, float)), ("weight_sum", (int, float)),
                      ("settings", dict), ("callbacks", dict)):
        if not isinstance(info.get(key), kind) or isinstance(info.get(key), bool):
            raise ModelFileError(f"{path}: run field {key!r} is missing or of the wrong type")
    if min(info["epoch"], info["batch"], info["step"]) < 0:
        raise ModelFileError(f"{path}: negative position in the run")
    if "params" not in tensors:
        raise ModelFileError(f"{path}: tensor 'params' is missing")
    return tensors, arch, info


def restore(run, path, cbs):
    """Put a checkpoint's state into ``run`` (and the callbacks) so the loop continues it."""
    path = os.fspath(path)
    if os.path.isdir(path):
        found = latest_checkpoint(path)
        if found is None:
            raise InvalidArgumentError(f"no checkpoint to resume from in {path}")
        path = found
    tensors, arch, info = load_checkpoint(path)
    net, opt = run.network, run.optimizer
    mine = net.get_config()
    if arch["layers"] != mine["layers"] or arch["loss"] != mine["loss"] or arch["dtype"] != mine["dtype"]:
        raise ModelFileError(f"{path}: the checkpoint's network differs from the one being trained")
    for key in ("batch_size", "n_samples", "n_in", "n_out", "shuffle"):
        theirs, ours = info["settings"].get(key), run.settings.get(key)
        if theirs != ours:
            raise InvalidArgumentError(
                f"cannot resume {path}: it was made with {key}={theirs!r}, this run has {key}={ours!r}"
            )
    saved_opt = (info["optimizer"].get("config") or {}).get("name")
    if saved_opt != opt.get_config().get("name"):
        raise InvalidArgumentError(f"cannot resume {path}: it used optimizer {saved_opt!r}, this run {opt.get_config().get('name')!r}")
    params = tensors["params"]
    if params.shape != net.params.shape or params.dtype != net.params.dtype or not np.all(np.isfinite(params)):
        raise ModelFileError(f"{path}: 'params' has shape {params.shape} and dtype {params.dtype}; expected "
                             f"{net.params.shape} {net.params.dtype}, all finite")
    np.copyto(net.params, params)
    state = {k[len("optimizer."):]: v for k, v in tensors.items() if k.startswith("optimizer.")}
    for k, v in state.items():
        if v.shape != net.params.shape:
            raise ModelFileError(f"{path}: optimizer state {k!r} has shape {v.shape}, expected {net.params.shape}")
    opt.load_state_dict({"t": info["optimizer"].get("t", 0), "state": state})
    try:
        run.rng.bit_generator.state = info["rng"]
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{path}: generator state is invalid ({exc})") from None
    run.epoch, run.batch, run.step = info["epoch"], info["batch"], info["step"]
    if run.batch > run.batches_per_epoch:
        raise ModelFileError(f"{path}: batch {run.batch} beyond the epoch's {run.batches_per_epoch}")
    run.perm = None
    if run.batch > 0 and info.get("shuffled", True):
        perm = tensors.get("perm")
        if perm is None or perm.shape != (run.data.n,) or not np.array_equal(np.sort(perm), np.arange(run.data.n)):
            raise ModelFileError(f"{path}: the epoch's order ('perm') is missing or not a permutation")
        run.perm = perm
    for m in run.metrics:
        sums = tensors.get(f"metrics.{m.name}")
        if sums is not None:
            if sums.shape != m.sums.shape:
                raise ModelFileError(f"{path}: metric sums for {m.name!r} have the wrong shape")
            m.sums = sums.astype(np.float64)
    from .training import History

    run.history = History(info["history"])
    run.loss_sum, run.weight_sum = float(info["loss_sum"]), float(info["weight_sum"])
    run.elapsed = float(info.get("elapsed", 0.0))
    run.lr = float(info.get("lr", opt.learning_rate))
    run.stop_training = bool(info.get("stop_training", False))
    for cb in cbs:
        key = getattr(cb, "state_key", None)
        if key and key in info["callbacks"] and hasattr(cb, "set_state"):
            arrays = {k[len(f"callbacks.{key}."):]: v for k, v in tensors.items() if k.startswith(f"callbacks.{key}.")}
            cb.set_state(info["callbacks"][key], arrays)
    run.resumed_from = path
    if not math.isfinite(run.loss_sum):
        raise ModelFileError(f"{path}: running loss is not finite")

"""Checkpoints: the files kept, a checkpoint's validation and its fit to the run, divergence, failed writes."""

import errno
import json
import os
import pathlib
import signal
import struct

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.checkpoint import Checkpointer, latest_checkpoint, load_checkpoint
from deltaprop.errors import DivergenceError, InvalidArgumentError, InvalidTypeError, ModelFileError, SaveError


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def _network(seed=0, hidden=8, dtype="float32"):
    return dp.Network([dp.Dense(4, hidden, activation="relu", dropout=0.2), dp.Dense(hidden, 2, activation="softmax")],
                      dtype=dtype, seed=seed)


FIT = dict(batch_size=8, optimizer={"name": "adam", "learning_rate": 0.01}, verbose=0)


def _names(folder):
    return sorted(n for n in os.listdir(folder))


class _CtrlC(dp.Callback):
    def __init__(self, step):
        self.step = step

    def on_batch_end(self, run, batch, logs):
        if run.step == self.step:
            signal.raise_signal(signal.SIGINT)


@pytest.fixture
def mid_epoch(tmp_path):
    """A checkpoint written by Ctrl-C after step 9 (mid-epoch 2 of 6 steps each), with Adam and shuffling."""
    X, y = _data()
    folder = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        _network().fit(X, y, epochs=4, callbacks=[_CtrlC(9)], checkpoint_dir=folder, checkpoint_unit="step",
                       checkpoint_every=100, **FIT)
    (path,) = folder.iterdir()
    return path


def _parts(path):
    data = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _rewrite(path, out, run=None, header=None, tensor=None):
    """Copy a checkpoint with edits: ``run(info)`` on the run JSON, ``header(h)``, ``tensor=(name, fn(array))``."""
    h, body = _parts(path)
    meta = h["__metadata__"]
    if run is not None:
        info = json.loads(meta["run"])
        run(info)
        meta["run"] = json.dumps(info)
    if header is not None:
        header(h)
    body = bytearray(body)
    if tensor is not None:
        name, fn = tensor
        entry = h[name]
        dtype = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}[entry["dtype"]]
        a, b = entry["data_offsets"]
        arr = np.frombuffer(bytes(body[a:b]), dtype=dtype).copy()
        fn(arr)
        body[a:b] = arr.tobytes()
    raw = json.dumps(h).encode()
    pathlib.Path(out).write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(body))
    return out


# ------------------------------------------------------------------ which files
def test_keep_the_last_k_per_epoch(tmp_path):
    X, y = _data()
    _network().fit(X, y, epochs=5, checkpoint_dir=tmp_path, keep_checkpoints=2, **FIT)
    assert _names(tmp_path) == ["ckpt-e0004-s000000024.safetensors", "ckpt-e0005-s000000030.safetensors"]
    _, _, info = load_checkpoint(tmp_path / "ckpt-e0005-s000000030.safetensors")
    assert (info["epoch"], info["batch"], info["step"]) == (5, 0, 30) and len(info["history"]) == 5


def test_keep_the_last_k_per_step(tmp_path):
    X, y = _data()
    _network().fit(X, y, epochs=3, checkpoint_dir=tmp_path, checkpoint_unit="step", checkpoint_every=4,
                   keep_checkpoints=3, **FIT)
    # steps 4, 8, 12 (the last of epoch 2, written at its batch end), 16, and the end of the run (18)
    assert _names(tmp_path) == ["ckpt-e0001-s000000012.safetensors", "ckpt-e0002-s000000016.safetensors",
                                "ckpt-e0003-s000000018.safetensors"]
    tensors, _, info = load_checkpoint(tmp_path / "ckpt-e0002-s000000016.safetensors")
    assert (info["epoch"], info["batch"], info["step"]) == (2, 4, 16)
    assert sorted(tensors) == ["metrics.accuracy", "optimizer.m", "optimizer.v", "params", "perm"]
    tensors, _, _ = load_checkpoint(tmp_path / "ckpt-e0003-s000000018.safetensors")
    assert "perm" not in tensors  # at an epoch boundary the next order comes from the generator


def test_latest_checkpoint_orders_by_step_and_ignores_other_files(tmp_path):
    folder = tmp_path / "odd [name] *"
    folder.mkdir()
    assert latest_checkpoint(folder) is None
    for name in ("ckpt-e0010-s000000009.safetensors", "ckpt-e0002-s000000100.safetensors",
                 ".ckpt-e0003-s000000200.safetensors.abc123.tmp", "ckpt-e9-s999999999.safetensors.bak", "notes.txt"):
        (folder / name).write_bytes(b"")
    (folder / "ckpt-e0001-s000000500.safetensors").mkdir()
    assert latest_checkpoint(folder) == str(folder / "ckpt-e0002-s000000100.safetensors")
    assert latest_checkpoint(tmp_path / "missing") is None


def test_partial_writes_are_cleaned_up_and_nothing_else(tmp_path):
    X, y = _data()
    stale = tmp_path / ".ckpt-e0000-s000000003.safetensors.0a1b2c.tmp"
    stale.write_bytes(b"partial")
    (tmp_path / "notes.txt").write_text("mine")
    _network().fit(X, y, epochs=1, checkpoint_dir=tmp_path, **FIT)
    assert _names(tmp_path) == ["ckpt-e0001-s000000006.safetensors", "notes.txt"]


def test_a_folder_with_a_later_timeline_is_refused(tmp_path):
    X, y = _data()
    _network().fit(X, y, epochs=2, checkpoint_dir=tmp_path, **FIT)
    with pytest.raises(InvalidArgumentError, match=r"already holds .*ckpt-e0002-s000000012.safetensors \(step 12\), "
                                                  r"beyond this run's start at step 0; resume from it"):
        _network().fit(X, y, epochs=2, checkpoint_dir=tmp_path, **FIT)
    # resuming from it is fine, and so is resuming from the older one into another folder
    _network().fit(X, y, epochs=3, checkpoint_dir=tmp_path, resume_from=tmp_path, **FIT)
    assert latest_checkpoint(tmp_path).endswith("ckpt-e0003-s000000018.safetensors")


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(unit="hour"), InvalidArgumentError, "checkpoint_unit must be 'epoch' or 'step', got 'hour'"),
    (dict(every=0), InvalidArgumentError, "checkpoint_every must be a positive integer, got 0"),
    (dict(keep=True), InvalidTypeError, "keep_checkpoints must be a positive integer, got True"),
    (dict(every=1.5), InvalidTypeError, "checkpoint_every must be a positive integer, got 1.5"),
])
def test_checkpointer_arguments(tmp_path, kwargs, error, message):
    with pytest.raises(error, match=message):
        Checkpointer(tmp_path, **kwargs)


def test_resume_from_a_folder_without_checkpoints(tmp_path):
    X, y = _data()
    with pytest.raises(InvalidArgumentError, match="no checkpoint .* to resume from in"):
        _network().fit(X, y, epochs=1, resume_from=tmp_path, **FIT)


# ------------------------------------------------------------------ a checkpoint's own validity
def _perm_duplicate(a):
    a[1] = a[0]


BAD = {
    "newer version": (dict(header=lambda h: h["__metadata__"].update(format_version="7")), "format version 7 is newer"),
    "a model file": (dict(header=lambda h: h["__metadata__"].update(format="deltaprop.model")),
                     "it is a model file: open it with deltaprop.load"),
    "no run": (dict(header=lambda h: h["__metadata__"].pop("run")), "metadata lacks 'run'"),
    "negative epoch": (dict(run=lambda i: i.update(epoch=-1)), "run field 'epoch' must be an integer >= 0, got -1"),
    "float step": (dict(run=lambda i: i.update(step=9.0)), "run field 'step' must be an integer >= 0, got 9.0"),
    "huge step": (dict(run=lambda i: i.update(step=2**70)), "run field 'step' must be an integer >= 0"),
    "batch beyond the epoch": (dict(run=lambda i: i.update(batch=7)), "batch 7 is beyond the epoch's 6 batches"),
    "history not rows": (dict(run=lambda i: i.update(history=[1, 2])), "run field 'history' must be a list"),
    "loss sum not finite": (dict(run=lambda i: i.update(loss_sum=float("nan"))),
                            "run field 'loss_sum' must be a finite number"),
    "no settings": (dict(run=lambda i: i.pop("settings")), "run field 'settings' must be an object"),
    "generator float state": (dict(run=lambda i: i["rng"]["state"].update(state=1.5)), "generator state is invalid"),
    "generator state too large": (dict(run=lambda i: i["rng"]["state"].update(state=2**130)),
                                  "generator state is invalid"),
    "generator unknown": (dict(run=lambda i: i["rng"].update(bit_generator="os.system")),
                          "generator 'os.system' is not one of PCG64"),
    "optimizer step count": (dict(run=lambda i: i["optimizer"].update(t=-2)), "run field 'optimizer' must be"),
    "perm not a permutation": (dict(tensor=("perm", _perm_duplicate)), "'perm' is not a permutation of 0..47"),
    "perm out of range": (dict(tensor=("perm", lambda a: a.__setitem__(0, 48))), "not a permutation"),
    "perm where none belongs": (dict(run=lambda i: i.update(shuffled=False)), "'perm' is present but"),
    "params not finite": (dict(tensor=("params", lambda a: a.__setitem__(3, np.inf))),
                          "tensor 'params' contains 1 NaN or infinite values"),
    "optimizer state not finite": (dict(tensor=("optimizer.v", lambda a: a.__setitem__(0, np.nan))),
                                   "tensor 'optimizer.v' contains 1 NaN"),
    "params of another size": (dict(header=lambda h: h["__metadata__"].update(
        architecture=h["__metadata__"]["architecture"].replace('"n_out": 8', '"n_out": 9').replace(
            '"n_in": 8', '"n_in": 9'))), r"tensor 'params' has shape \(58,\), the metadata says \(65,\)"),
    "unexpected tensor": (dict(header=lambda h: h.__setitem__("junk", h.pop("metrics.accuracy"))),
                          "unexpected tensor 'junk'"),
    "callback arrays without a callback": (
        dict(header=lambda h: h.__setitem__("callbacks.early_stopping.best_params", h.pop("metrics.accuracy"))),
        "belongs to no callback"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_every_bad_checkpoint_is_named(tmp_path, mid_epoch, name):
    edits, message = BAD[name]
    bad = _rewrite(mid_epoch, tmp_path / "bad.safetensors", **edits)
    with pytest.raises(ModelFileError, match=message):
        load_checkpoint(bad)
    # and fit refuses it the same way, leaving the network as it was
    X, y = _data()
    net = _network(seed=9)
    before = net.params.copy()
    with pytest.raises(ModelFileError, match=message):
        net.fit(X, y, epochs=4, resume_from=bad, **FIT)
    assert np.array_equal(net.params, before)


def test_perm_missing_from_a_mid_epoch_checkpoint(tmp_path, mid_epoch):
    h, body = _parts(mid_epoch)
    a, b = h.pop("perm")["data_offsets"]
    for entry in h.values():
        if isinstance(entry, dict) and "data_offsets" in entry:
            s, e = entry["data_offsets"]
            if s >= b:
                entry["data_offsets"] = [s - (b - a), e - (b - a)]
    raw = json.dumps(h).encode()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", len(raw)) + raw + body[:a] + body[b:])
    with pytest.raises(ModelFileError, match=r"the epoch's order \(tensor 'perm'\) is missing"):
        load_checkpoint(bad)


# ------------------------------------------------------------------ fit to the run
@pytest.mark.parametrize("change,message", [
    (dict(network=lambda: _network(hidden=9)), "its layer 0 has n_out=8, the network being trained has n_out=9"),
    (dict(network=lambda: _network(dtype="float64")), "its network's dtype is 'float32'"),
    (dict(batch_size=16), "it was made with batch_size=8, this run has batch_size=16"),
    (dict(n=40), "it was made with n_samples=48, this run has n_samples=40"),
    (dict(shuffle=False), "it was made with shuffle=True, this run has shuffle=False"),
    (dict(optimizer="rmsprop"), "it used optimizer 'adam', this run uses 'rmsprop'"),
    (dict(optimizer={"name": "sgd", "momentum": 0.5}), "it used optimizer 'adam', this run uses 'sgd'"),
    (dict(network=lambda: dp.Network([dp.Dense(4, 8, activation="relu", dropout=0.2),
                                      dp.Dense(8, 2, activation="softmax")],
                                     seed=np.random.Generator(np.random.Philox(0)))),
     "its generator is PCG64, this run's is Philox"),
    (dict(metrics=["accuracy", "mse"]), "lacks the running sums of metric 'mse'"),
])
def test_a_checkpoint_that_does_not_fit_the_run_is_refused(mid_epoch, change, message):
    X, y = _data(n=change.get("n", 48))
    net = change.get("network", _network)()
    before = net.params.copy()
    kwargs = dict(FIT, batch_size=change.get("batch_size", 8), optimizer=change.get("optimizer", FIT["optimizer"]))
    if "shuffle" in change:
        kwargs["shuffle"] = change["shuffle"]
    if "metrics" in change:
        kwargs["metrics"] = change["metrics"]
    with pytest.raises(ModelFileError, match=message):
        net.fit(X, y, epochs=4, resume_from=mid_epoch, **kwargs)
    assert np.array_equal(net.params, before)


@pytest.mark.parametrize("meta,message", [
    ({"best": "low", "best_epoch": 0, "wait": 0, "stopped_epoch": None}, "early stopping state is malformed"),
    ({"best": 0.5, "best_epoch": 0, "wait": -1, "stopped_epoch": None}, "early stopping state is malformed"),
    ({"best": 0.5, "best_epoch": 0, "wait": 0, "stopped_epoch": None},
     r"tensor 'callbacks.early_stopping.best_params' has shape \(4,\), the metadata says \(58,\)"),
])
def test_malformed_early_stopping_state_is_refused(tmp_path, mid_epoch, meta, message):
    def add(h):
        entry = h.pop("metrics.accuracy")  # its 16 bytes become a float32 array of 4 values
        h["callbacks.early_stopping.best_params"] = dict(entry, dtype="F32", shape=[4])
        info = json.loads(h["__metadata__"]["run"])
        info["callbacks"] = {"early_stopping": meta}
        h["__metadata__"]["run"] = json.dumps(info)

    bad = _rewrite(mid_epoch, tmp_path / "bad.safetensors", header=add)
    X, y = _data()
    with pytest.raises(ModelFileError, match=message):
        _network().fit(X, y, epochs=4, resume_from=bad, early_stopping=True, metrics=[], **FIT)


# ------------------------------------------------------------------ divergence and failed writes
def test_divergence_names_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path):
    X, y = _data()
    net = _network()

    def explode(step, lr):  # a learning rate that becomes absurd after 8 steps
        return lr if step < 8 else 1e30

    with pytest.raises(DivergenceError) as info:
        net.fit(X, y, epochs=4, batch_size=8, optimizer={"name": "sgd", "learning_rate": 0.1}, schedule=explode,
                checkpoint_dir=tmp_path, checkpoint_unit="step", keep_checkpoints=2, verbose=0)
    message = str(info.value)
    assert "diverged" in message and "epoch 2, step " in message, message
    last = latest_checkpoint(tmp_path)
    assert f"the last good checkpoint is {last}" in message
    assert not any(n.endswith(".tmp") for n in os.listdir(tmp_path))
    tensors, _, info = load_checkpoint(last)
    assert np.all(np.isfinite(tensors["params"])) and info["step"] >= 8


def test_checkpointer_refuses_non_finite_parameters(tmp_path):
    X, y = _data()
    poison = dp.LambdaCallback(on_batch_end=lambda run, b, logs: run.network.params.__setitem__(
        0, np.nan if run.step == 5 else run.network.params[0]))
    with pytest.raises(DivergenceError, match=r"parameters not finite at epoch 1, step 5; no checkpoint written; "
                                              r"the last good checkpoint is .*ckpt-e0000-s000000004.safetensors"):
        _network().fit(X, y, epochs=2, callbacks=[poison], checkpoint_dir=tmp_path, checkpoint_unit="step", **FIT)
    assert latest_checkpoint(tmp_path).endswith("ckpt-e0000-s000000004.safetensors")


def test_a_full_disk_while_checkpointing(tmp_path, monkeypatch):
    X, y = _data()
    real_replace, calls = os.replace, []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(SaveError, match=r"ckpt-e0000-s000000003.safetensors: No space left on device"):
        _network().fit(X, y, epochs=2, checkpoint_dir=tmp_path, checkpoint_unit="step", **FIT)
    assert _names(tmp_path) == ["ckpt-e0000-s000000001.safetensors", "ckpt-e0000-s000000002.safetensors"]
    for name in _names(tmp_path):
        load_checkpoint(tmp_path / name)


def test_other_generators_resume_exactly(tmp_path):
    X, y = _data()
    for bit_generator in (np.random.Philox, np.random.MT19937, np.random.SFC64):
        def net(bit_generator=bit_generator):
            return dp.Network([dp.Dense(4, 8, activation="relu", dropout=0.2), dp.Dense(8, 2, activation="softmax")],
                              seed=np.random.Generator(bit_generator(4)))

        straight = net()
        straight.fit(X, y, epochs=3, **FIT)
        folder = tmp_path / bit_generator.__name__
        with pytest.raises(KeyboardInterrupt):
            net().fit(X, y, epochs=3, callbacks=[_CtrlC(7)], checkpoint_dir=folder, **FIT)
        resumed = net()
        resumed.fit(X, y, epochs=3, resume_from=folder, **FIT)
        assert np.array_equal(resumed.params, straight.params), bit_generator.__name__


def test_a_version_1_checkpoint_resumes_exactly(tmp_path):
    """Version 1 held each W row by row in the flat arrays; version 2 holds W.T. Old files are converted."""
    X, y = _data()
    kw = dict(FIT, epochs=4, validation_split=0.25,
              early_stopping={"monitor": "val_loss", "patience": 3, "restore_best_weights": True})
    straight = _network()
    straight.fit(X, y, **kw)
    folder = tmp_path / "ck"
    with pytest.raises(KeyboardInterrupt):
        _network().fit(X, y, callbacks=[_CtrlC(9)], checkpoint_dir=folder, checkpoint_unit="step",
                       checkpoint_every=100, **kw)
    (path,) = folder.iterdir()
    h, _ = _parts(path)
    assert h["__metadata__"]["format_version"] == "2"
    assert "callbacks.early_stopping.best_params" in h

    def to_version_1(flat):  # each layer's W.T block (n_in, n_out) -> W (n_out, n_in) row by row
        at = 0
        for n_in, n_out in ((4, 8), (8, 2)):
            k = n_in * n_out
            flat[at:at + k] = flat[at:at + k].reshape(n_in, n_out).T.ravel().copy()
            at += k + n_out

    old = path
    for i, name in enumerate(["params", "optimizer.m", "optimizer.v", "callbacks.early_stopping.best_params"]):
        old = _rewrite(old, tmp_path / f"v1-{i}.safetensors", tensor=(name, to_version_1),
                       header=lambda h: h["__metadata__"].update(format_version="1"))
    assert not np.array_equal(_parts(old)[1], _parts(path)[1])
    for source in (path, old):
        resumed = _network()
        resumed.fit(X, y, resume_from=source, **kw)
        np.testing.assert_array_equal(resumed.params, straight.params)

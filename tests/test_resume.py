"""Exact resume: a checkpointed, interrupted, killed and resumed run ends bit-identical to an uninterrupted one.

"Bit-identical" is ``np.array_equal`` on the final parameters, and equal
history rows except their "time". Covered: every optimizer; resuming after
whole epochs (3 epochs, then continued to 6) and mid-epoch (Ctrl-C after
any step, including the first and the last of an epoch); dropout,
shuffling, a schedule, validation and early stopping; a training process
killed with SIGKILL at random moments and inside checkpoint writes, then
resumed (and killed again); Ctrl-C sent to a training process.
"""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.checkpoint import latest_checkpoint, load_checkpoint
from deltaprop.io import read_file

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "_train_child.py")

OPTIMIZERS = {
    "sgd": {"name": "sgd", "learning_rate": 0.1},
    "momentum": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9},
    "nesterov": {"name": "sgd", "learning_rate": 0.05, "momentum": 0.9, "nesterov": True, "clipnorm": 1.0},
    "adagrad": {"name": "adagrad", "learning_rate": 0.05},
    "rmsprop": {"name": "rmsprop", "learning_rate": 0.01, "weight_decay": 1e-3},
    "adam": {"name": "adam", "learning_rate": 0.01},
    "adamw": {"name": "adamw", "learning_rate": 0.01, "weight_decay": 0.05},
}


def _data(seed=0, n=64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] - X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 4] > 0.8)
    return X, y


def _network():
    return dp.Network([dp.Dense(5, 16, activation="relu", dropout=0.25), dp.Dense(16, 8, activation="tanh"),
                       dp.Dense(8, 3, activation="softmax")], seed=1)


def _kwargs(optimizer, early_stopping=False, **extra):
    kw = dict(batch_size=8, optimizer=dict(optimizer), schedule={"name": "step", "step_size": 9, "gamma": 0.8},
              validation_split=0.25, verbose=0)
    if early_stopping:
        kw["early_stopping"] = {"monitor": "val_loss", "patience": 1}
    kw.update(extra)
    return kw


def _rows(history):
    return [{k: v for k, v in row.items() if k != "time"} for row in history.rows]


class _CtrlC(dp.Callback):
    """A real SIGINT to this process after step ``step``: fit stops after it, as on Ctrl-C."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, run, batch, logs):
        if run.step == self.step:
            signal.raise_signal(signal.SIGINT)


def _interrupted(X, y, folder, step, epochs, **kw):
    """Train until Ctrl-C after ``step`` (resuming from ``folder`` when it has a checkpoint)."""
    net = _network()
    resume = folder if latest_checkpoint(folder) else None
    with pytest.raises(KeyboardInterrupt) as info:
        net.fit(X, y, epochs=epochs, callbacks=[_CtrlC(step)], checkpoint_dir=folder, checkpoint_unit="step",
                checkpoint_every=10_000, resume_from=resume, **kw)
    message = str(info.value)
    match = re.search(r"checkpoint written to (\S+)$", message)
    assert match, message
    assert os.path.basename(match.group(1)).endswith(f"-s{step:09d}.safetensors")
    return match.group(1)


# ------------------------------------------------------------------ in-process
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_three_epochs_then_resumed_to_six_equals_six_straight(tmp_path, name):
    X, y = _data()
    straight = _network()
    h_straight = straight.fit(X, y, epochs=6, **_kwargs(OPTIMIZERS[name]))
    first = _network()
    first.fit(X, y, epochs=3, checkpoint_dir=tmp_path, **_kwargs(OPTIMIZERS[name]))
    assert not np.array_equal(first.params, straight.params)
    resumed = _network()
    h_resumed = resumed.fit(X, y, epochs=6, resume_from=tmp_path, checkpoint_dir=tmp_path, **_kwargs(OPTIMIZERS[name]))
    assert np.array_equal(resumed.params, straight.params)
    assert _rows(h_resumed) == _rows(h_straight) and len(h_resumed) == 6


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_interrupted_mid_epoch_and_resumed_equals_uninterrupted(tmp_path, name):
    X, y = _data()
    kw = _kwargs(OPTIMIZERS[name])
    straight = _network()
    h_straight = straight.fit(X, y, epochs=4, **kw)
    # 48 training samples in batches of 8: 6 steps an epoch. Stop after the first step of the
    # run, mid-epoch, after the last step of an epoch and after the first of the next.
    for step in (1, 8, 12, 13):
        folder = tmp_path / f"s{step}"
        _interrupted(X, y, folder, step, epochs=4, **_kwargs(OPTIMIZERS[name]))
        resumed = _network()
        h = resumed.fit(X, y, epochs=4, resume_from=folder, **_kwargs(OPTIMIZERS[name]))
        assert np.array_equal(resumed.params, straight.params), f"stopped after step {step}"
        assert _rows(h) == _rows(h_straight)


def test_resume_with_early_stopping_dropout_schedule_validation(tmp_path):
    X, y = _data(3, n=96)
    kw = dict(_kwargs(OPTIMIZERS["adam"], early_stopping=True), schedule={"name": "cosine"})
    straight = _network()
    h_straight = straight.fit(X, y, epochs=12, **kw)
    assert len(h_straight) < 12  # early stopping ended the run and put back the best weights
    n_steps = len(h_straight) * 9
    for step in (4, 9, n_steps - 10, n_steps - 1):
        folder = tmp_path / f"s{step}"
        _interrupted(X, y, folder, step, epochs=12, **kw)
        resumed = _network()
        h = resumed.fit(X, y, epochs=12, resume_from=folder, **kw)
        assert np.array_equal(resumed.params, straight.params), f"stopped after step {step}"
        assert _rows(h) == _rows(h_straight)


def test_resume_without_early_stopping_dropout_schedule_validation_twice_interrupted(tmp_path):
    X, y = _data(3, n=96)
    kw = dict(_kwargs(OPTIMIZERS["adam"]), schedule={"name": "cosine"})
    straight = _network()
    h_straight = straight.fit(X, y, epochs=5, **kw)
    _interrupted(X, y, tmp_path, 7, epochs=5, **kw)
    _interrupted(X, y, tmp_path, 25, epochs=5, **kw)  # resumed from step 7, interrupted again
    resumed = _network()
    h = resumed.fit(X, y, epochs=5, resume_from=tmp_path, checkpoint_dir=tmp_path, **kw)
    assert np.array_equal(resumed.params, straight.params)
    assert _rows(h) == _rows(h_straight)


def test_checkpointing_does_not_change_the_run(tmp_path):
    X, y = _data()
    plain, checked = _network(), _network()
    plain.fit(X, y, epochs=3, **_kwargs(OPTIMIZERS["adam"]))
    checked.fit(X, y, epochs=3, checkpoint_dir=tmp_path, checkpoint_unit="step", **_kwargs(OPTIMIZERS["adam"]))
    assert np.array_equal(plain.params, checked.params)


# ------------------------------------------------------------------ subprocesses
def _env():
    env = dict(os.environ)
    src = os.path.join(os.path.dirname(HERE), "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


def _child(out, *args, **popen):
    return subprocess.Popen([sys.executable, CHILD, str(out), *map(str, args)], env=_env(), **popen)


def _result(path):
    tensors, metadata = read_file(path)
    return tensors["params"], metadata["history"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The child's uninterrupted run, without checkpoints."""
    out = tmp_path_factory.mktemp("ref") / "ref.safetensors"
    assert _child(out).wait(timeout=120) == 0
    return _result(out)


def _all_checkpoints_load(folder):
    names = sorted(n for n in os.listdir(folder) if n.startswith("ckpt-") and n.endswith(".safetensors"))
    for name in names:
        tensors, _, _ = load_checkpoint(os.path.join(folder, name))  # raises if unreadable
        assert np.all(np.isfinite(tensors["params"]))
    return names


def _finish(folder, out, reference):
    """Resume in a fresh process until the end; the result must equal the reference bit for bit."""
    assert _child(out, "--dir", folder).wait(timeout=120) == 0
    params, history = _result(out)
    assert np.array_equal(params, reference[0])
    assert history == reference[1]


def test_sigkill_at_random_moments_then_resume(tmp_path, reference):
    out = tmp_path / "out.safetensors"
    # An uninterrupted checkpointed run: the same result as without checkpoints, and the time its
    # training takes here, to spread the kills over whatever the machine's speed.
    proc = _child(out, "--dir", tmp_path / "whole", stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "started\n"
    start = time.perf_counter()
    assert proc.wait(timeout=120) == 0
    training = time.perf_counter() - start
    assert np.array_equal(_result(out)[0], reference[0])
    rng = np.random.default_rng(20240617)
    kills = leftovers = 0
    for chain in range(3):  # three runs, each killed until it gets through
        folder = tmp_path / f"ckpt{chain}"
        for _ in range(30):
            proc = _child(out, "--dir", folder, stdout=subprocess.PIPE, text=True)
            proc.stdout.readline()  # "started"
            try:
                proc.wait(timeout=float(rng.uniform(0.01, 0.2)) * training)
                break  # finished before the kill
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
            finally:
                proc.stdout.close()
            _all_checkpoints_load(folder)
            leftovers += any(n.endswith(".tmp") for n in os.listdir(folder))
        _finish(folder, out, reference)
    print(f"{kills} kills, {leftovers} of them inside a checkpoint write; training takes {training:.2f} s")
    assert kills >= 3


@pytest.mark.parametrize("hook", ["--die-in-write", "--die-after-replace"])
def test_sigkill_inside_a_checkpoint_write_then_resume(tmp_path, reference, hook):
    folder, out = tmp_path / "ckpt", tmp_path / "out.safetensors"
    for k in (5, 17, 1):  # killed three times: in the 5th write, in the 17th after resuming, at once after that
        proc = _child(out, "--dir", folder, hook, k, stderr=subprocess.PIPE)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL, err.decode()
        names = _all_checkpoints_load(folder)
        tmps = [n for n in os.listdir(folder) if n.endswith(".tmp")]
        if hook == "--die-in-write":
            assert len(tmps) == 1 and len(names) <= 3  # the partial write, never a checkpoint name
        else:
            # renamed, not yet pruned: keep (3) + 1, or + 2 right after a resume into 4 files
            assert not tmps and len(names) == (5 if k == 1 else 4)
    _finish(folder, out, reference)
    assert not [n for n in os.listdir(folder) if n.endswith(".tmp")]


def test_ctrl_c_in_a_training_process_then_resume(tmp_path, reference):
    folder, out = tmp_path / "ckpt", tmp_path / "out.safetensors"
    # Checkpoints every 1000 steps: the one found afterwards was written by the Ctrl-C.
    proc = _child(out, "--dir", folder, "--every", 1000, "--pause-at", 23, stdout=subprocess.PIPE,
                  stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "started\n"
    assert proc.stdout.readline() == "paused 23\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode != 0
    # deltaprop.errors.TrainingInterrupted, a KeyboardInterrupt
    match = re.search(r"TrainingInterrupted: training interrupted at epoch 2, batch 11 by SIGINT; "
                      r"checkpoint written to (\S+)\n", err)
    assert match, err
    path = match.group(1)
    assert os.path.dirname(path) == str(folder) and path.endswith("-s000000023.safetensors")
    assert _all_checkpoints_load(folder) == [os.path.basename(path)]
    tensors, _, info = load_checkpoint(path)
    assert (info["epoch"], info["batch"], info["step"]) == (1, 11, 23)
    _finish(folder, out, reference)

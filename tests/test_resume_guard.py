"""A resumed run is the run it claims to be; an interrupted run leaves a way back.

Covered: every setting that changes the result is refused on resume when it
differs (optimizer, schedule, weights, data, the caller's ``run_settings``),
with a message naming the setting and both values, unless overridden by name
(recorded in ``History.overrides``, the checkpoints and the log); ``epochs``
below the epochs done; a corrupt newest checkpoint skipped for the newest
good one (with a ``DeltapropWarning``); SIGTERM handled like Ctrl-C, in
process and in a child process, with ``interrupt_checkpoint`` when there is
no checkpoint folder; a divergence right after a resume naming the
checkpoint; the JSON log rewritten atomically. "Bit-identical" is
``np.array_equal`` on the parameters and equal history rows but "time".
"""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import tensorfile
from deltaprop.checkpoint import latest_checkpoint, load_checkpoint
from deltaprop.errors import (
    DeltapropWarning,
    DivergenceError,
    InvalidArgumentError,
    ModelFileError,
    SaveError,
    TrainingInterrupted,
)

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")


def _data(seed=0, n=64):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (X[:, 0] - X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 4] > 0.8)
    return X, y


def _network():
    return dp.Network([dp.Dense(5, 12, activation="relu", dropout=0.2), dp.Dense(12, 3, activation="softmax")],
                      seed=1)


def _kw(**extra):
    kw = dict(batch_size=8, optimizer={"name": "adam", "learning_rate": 0.01}, validation_split=0.25, verbose=0,
              schedule={"name": "step", "step_size": 9, "gamma": 0.8})
    kw.update(extra)
    return kw


def _rows(history):
    return [{k: v for k, v in row.items() if k != "time"} for row in history.rows]


@pytest.fixture
def two_epochs(tmp_path):
    """A checkpoint folder after 2 of 4 epochs (48 training samples, 6 steps an epoch)."""
    X, y = _data()
    _network().fit(X, y, epochs=2, checkpoint_dir=tmp_path / "ck", run_settings={"scale": "standard", "seed": 3},
                   **_kw())
    return tmp_path / "ck"


# ------------------------------------------------------------------ refusals
@pytest.mark.parametrize("change,message", [
    (dict(optimizer={"name": "adam", "learning_rate": 0.02}),
     "learning_rate was 0.01 in the checkpoint, now 0.02; pass the same value, or override it with "
     "resume_overrides=['learning_rate'] (--override learning_rate)"),
    (dict(learning_rate=0.001), "learning_rate was 0.01 in the checkpoint, now 0.001"),
    (dict(optimizer={"name": "adam", "learning_rate": 0.01, "beta1": 0.8}),
     "beta1 was 0.9 in the checkpoint, now 0.8"),
    (dict(clipnorm=1.0), "clipnorm was None in the checkpoint, now 1.0"),
    (dict(weight_decay=0.1), "weight_decay was 0.0 in the checkpoint, now 0.1"),
    (dict(schedule="cosine"), "schedule was {'name': 'step', 'step_size': 9, 'gamma': 0.8} in the checkpoint, "
                              "now {'name': 'cosine'"),
    (dict(run_settings={"scale": "minmax", "seed": 3}), "scale was 'standard' in the checkpoint, now 'minmax'; "
                                                        "pass the same value, or override it with "
                                                        "resume_overrides=['scale'] (--override scale)"),
    (dict(sample_weight=np.ones(64)), "sample weights were not given in the checkpoint's run, now they are"),
    (dict(class_weight="balanced"), "class weights were not given in the checkpoint's run, now they are"),
    (dict(data_seed=5), r"the training data differ from the checkpoint's \(same shape \(48, 5\), different values "
                        r"in sampled rows\); pass the same value, or override it with resume_overrides=\['data'\]"),
    (dict(validation_data=True), "the validation data differ from the checkpoint's (same shape (16, 5), different "
                                 "values in sampled rows)"),
])
def test_a_changed_setting_is_refused_naming_it_and_both_values(two_epochs, change, message):
    change = dict(change)
    X, y = _data(seed=change.pop("data_seed", 0))
    kw = _kw(run_settings={"scale": "standard", "seed": 3})
    if change.pop("validation_data", False):
        kw.pop("validation_split")
        X, y = X[:48], y[:48]  # the same training rows, with validation data given instead of split off
        kw["validation_data"] = _data(seed=9, n=16)
    kw.update(change)
    net = _network()
    before = net.params.copy()
    with pytest.raises(InvalidArgumentError) as info:
        net.fit(X, y, epochs=4, resume_from=two_epochs, **kw)
    text = str(info.value)
    assert text.startswith("cannot resume ckpt-e0002-s000000012: "), text
    if message.startswith("the training data"):
        assert re.search(message, text), text
    else:
        assert message in text, text
    assert np.array_equal(net.params, before)  # nothing changed


def test_changed_sample_weights_are_refused(tmp_path):
    X, y = _data()
    w = np.linspace(0.5, 1.5, 64)
    _network().fit(X, y, epochs=1, sample_weight=w, checkpoint_dir=tmp_path, **_kw())
    w2 = w.copy()
    w2[3] = 2.0
    with pytest.raises(InvalidArgumentError, match="the sample weights differ from the checkpoint's"):
        _network().fit(X, y, epochs=2, sample_weight=w2, resume_from=tmp_path, **_kw())
    _network().fit(X, y, epochs=2, sample_weight=w.copy(), resume_from=tmp_path, **_kw())  # the same: resumes


def test_an_override_is_allowed_and_recorded_in_history_checkpoints_and_log(two_epochs, tmp_path):
    X, y = _data()
    log = tmp_path / "m.jsonl"
    net = _network()
    h = net.fit(X, y, epochs=3, resume_from=two_epochs, checkpoint_dir=two_epochs, learning_rate=0.02,
                run_settings={"scale": "standard", "seed": 3}, resume_overrides=["learning_rate"], log_path=log,
                **_kw())
    record = {"setting": "learning_rate", "was": 0.01, "now": 0.02, "epoch": 3, "step": 12}
    assert h.overrides == [record]
    assert [r["epoch"] for r in h.rows] == [1, 2, 3]
    # the checkpoint at the end keeps it, and a run resumed from that one keeps it too
    _, _, info = load_checkpoint(latest_checkpoint(two_epochs))
    assert info["overrides"] == [record]
    h2 = _network().fit(X, y, epochs=4, resume_from=two_epochs, learning_rate=0.02,
                        run_settings={"scale": "standard", "seed": 3}, **_kw())
    assert h2.overrides == [record] and len(h2) == 4
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r.get("epoch") for r in lines] == [1, 2, None, 3] and lines[2] == {"override": record}


def test_an_override_that_is_not_needed_records_nothing(two_epochs):
    X, y = _data()
    h = _network().fit(X, y, epochs=3, resume_from=two_epochs, resume_overrides=["learning_rate", "scale"],
                       run_settings={"scale": "standard", "seed": 3}, **_kw())
    assert h.overrides == []


def test_an_unknown_override_lists_the_settings(two_epochs):
    X, y = _data()
    with pytest.raises(InvalidArgumentError) as info:
        _network().fit(X, y, epochs=3, resume_from=two_epochs, resume_overrides=["learning_rat"],
                       run_settings={"scale": "standard", "seed": 3}, **_kw())
    text = str(info.value)
    assert "resume_overrides names 'learning_rat', which is not a setting of this run; the settings are" in text
    for name in ("learning_rate", "schedule", "data", "sample_weight", "class_weight", "scale", "seed", "beta1"):
        assert name in text


def test_epochs_below_the_epochs_done_are_refused(two_epochs):
    X, y = _data()
    with pytest.raises(InvalidArgumentError, match=r"cannot resume ckpt-e0002-s000000012: it has done 2 epochs, "
                                                   r"more than epochs=1; ask for epochs >= 2"):
        _network().fit(X, y, epochs=1, resume_from=two_epochs, run_settings={"scale": "standard", "seed": 3},
                       **_kw())


def test_a_checkpoint_without_the_fingerprint_still_resumes(tmp_path):
    """A file of the previous version (settings without data, weights, run_settings, no overrides) resumes."""
    X, y = _data()
    straight = _network()
    h_straight = straight.fit(X, y, epochs=3, **_kw())
    _network().fit(X, y, epochs=2, checkpoint_dir=tmp_path / "ck", **_kw())
    path = latest_checkpoint(tmp_path / "ck")
    tensors, metadata = tensorfile.read_file(path)
    info = json.loads(metadata["run"])
    for key in ("data", "sample_weight", "class_weight", "validation_data", "run_settings"):
        del info["settings"][key]
    del info["overrides"]
    metadata["run"] = json.dumps(info)
    old = tmp_path / "old" / os.path.basename(path)
    old.parent.mkdir()
    tensorfile.write_file(old, tensors, metadata)
    resumed = _network()
    h = resumed.fit(X, y, epochs=3, resume_from=old, run_settings={"scale": "standard"}, **_kw())
    assert np.array_equal(resumed.params, straight.params) and _rows(h) == _rows(h_straight)


# ------------------------------------------------------------------ corrupt checkpoints
def _step_checkpoints(folder, epochs=2):
    X, y = _data()
    _network().fit(X, y, epochs=epochs, checkpoint_dir=folder, checkpoint_unit="step", checkpoint_every=4,
                   keep_checkpoints=3, **_kw())
    return sorted(os.listdir(folder))


def test_a_corrupt_newest_checkpoint_falls_back_to_the_newest_good_one(tmp_path, capsys):
    X, y = _data()
    straight = _network()
    h_straight = straight.fit(X, y, epochs=4, **_kw())
    folder = tmp_path / "ck"
    names = _step_checkpoints(folder)
    assert names == ["ckpt-e0001-s000000008.safetensors", "ckpt-e0001-s000000012.safetensors",
                     "ckpt-e0002-s000000012.safetensors"]
    newest = folder / names[-1]
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    good = names[-2]
    with pytest.warns(DeltapropWarning, match=rf"skipped {names[-1]}: .*; resuming from {good}"):
        resumed = _network()
        h = resumed.fit(X, y, epochs=4, resume_from=folder, checkpoint_dir=folder, checkpoint_unit="step",
                        checkpoint_every=4, **dict(_kw(), verbose=1))
    err = capsys.readouterr().err
    assert f"deltaprop: note: skipped {names[-1]}: " in err and f"; resuming from {good}" in err
    assert f"resuming from {folder / good} (epoch " in err
    assert np.array_equal(resumed.params, straight.params) and _rows(h) == _rows(h_straight)


def test_no_good_checkpoint_names_each_file_and_its_problem(tmp_path):
    folder = tmp_path / "ck"
    names = _step_checkpoints(folder)
    (folder / names[-1]).write_bytes(b"\x00" * 3)
    (folder / names[-2]).write_bytes(b"\xff" * 64)
    for name in names[:-2]:
        os.unlink(folder / name)
    X, y = _data()
    with pytest.raises(ModelFileError) as info:
        _network().fit(X, y, epochs=4, resume_from=folder, **_kw())
    text = str(info.value)
    assert text.startswith(f"no checkpoint in {folder} can be resumed: {names[-1]}: ")
    assert f"; {names[-2]}: " in text


def test_a_corrupt_checkpoint_named_explicitly_is_an_error(tmp_path):
    folder = tmp_path / "ck"
    names = _step_checkpoints(folder)
    newest = folder / names[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback, no warning
        with pytest.raises(ModelFileError, match=str(newest)):
            _network().fit(X, y, epochs=4, resume_from=newest, **_kw())


# ------------------------------------------------------------------ signals in process
class _Signal(dp.Callback):
    """Send this process ``signum`` (``times`` times) after step ``step``."""

    def __init__(self, step, signum, times=1):
        self.step, self.signum, self.times = step, signum, times

    def on_batch_end(self, run, batch, logs):
        if run.step == self.step:
            for _ in range(self.times):
                signal.raise_signal(self.signum)


def test_sigterm_checkpoints_and_raises_then_resumes_bit_identically(tmp_path):
    X, y = _data()
    straight = _network()
    h_straight = straight.fit(X, y, epochs=4, **_kw())
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted) as info:
        _network().fit(X, y, epochs=4, callbacks=[_Signal(9, signal.SIGTERM)], checkpoint_dir=tmp_path,
                       checkpoint_every=100, **_kw())
    assert signal.getsignal(signal.SIGTERM) is before  # the old handler is back
    exc = info.value
    assert isinstance(exc, KeyboardInterrupt)
    assert (exc.signum, exc.epoch, exc.batch) == (signal.SIGTERM, 2, 3)
    assert exc.checkpoint == str(tmp_path / "ckpt-e0001-s000000009.safetensors")
    assert str(exc) == f"training interrupted at epoch 2, batch 3 by SIGTERM; checkpoint written to {exc.checkpoint}"
    resumed = _network()
    h = resumed.fit(X, y, epochs=4, resume_from=exc.checkpoint, **_kw())
    assert np.array_equal(resumed.params, straight.params) and _rows(h) == _rows(h_straight)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_checkpoint_without_a_checkpoint_folder_resumes_bit_identically(tmp_path, signum):
    X, y = _data()
    straight = _network()
    h_straight = straight.fit(X, y, epochs=4, **_kw())
    folder = tmp_path / "model.safetensors.checkpoint"
    with pytest.raises(TrainingInterrupted) as info:
        _network().fit(X, y, epochs=4, callbacks=[_Signal(14, signum)], interrupt_checkpoint=folder, **_kw())
    exc = info.value
    assert exc.signum == signum and (exc.epoch, exc.batch) == (3, 2)
    assert exc.checkpoint == str(folder / "ckpt-e0002-s000000014.safetensors") and os.path.isfile(exc.checkpoint)
    assert os.listdir(folder) == [os.path.basename(exc.checkpoint)]
    resumed = _network()
    h = resumed.fit(X, y, epochs=4, resume_from=folder, **_kw())
    assert np.array_equal(resumed.params, straight.params) and _rows(h) == _rows(h_straight)


def test_without_any_checkpoint_the_interruption_says_so(tmp_path):
    X, y = _data()
    with pytest.raises(TrainingInterrupted) as info:
        _network().fit(X, y, epochs=2, callbacks=[_Signal(3, signal.SIGINT)], **_kw())
    assert info.value.checkpoint is None
    assert str(info.value) == "training interrupted at epoch 1, batch 3 by SIGINT; no checkpoint written"


def test_a_second_signal_stops_at_once_without_a_checkpoint(tmp_path):
    X, y = _data()
    with pytest.raises(TrainingInterrupted) as info:
        _network().fit(X, y, epochs=2, callbacks=[_Signal(3, signal.SIGTERM, times=2)], interrupt_checkpoint=tmp_path,
                       **_kw())
    assert info.value.signum == signal.SIGTERM and info.value.checkpoint is None
    assert str(info.value).startswith("training stopped at once by a second SIGTERM at epoch 1")
    assert not os.listdir(tmp_path)


def test_divergence_after_a_resume_names_the_checkpoint_resumed_from(tmp_path):
    X, y = _data()
    kw = _kw(optimizer={"name": "sgd", "learning_rate": 0.1}, schedule=None)
    _network().fit(X, y, epochs=1, checkpoint_dir=tmp_path, **kw)
    path = latest_checkpoint(tmp_path)
    with pytest.raises(DivergenceError) as info:
        _network().fit(X, y, epochs=3, resume_from=tmp_path, learning_rate=1e300, resume_overrides=["learning_rate"],
                       **kw)
    assert str(info.value).endswith(f"; the last good checkpoint is {path}, which this run resumed from")


# ------------------------------------------------------------------ the log
def test_the_log_is_rewritten_atomically_and_a_failed_write_keeps_the_old_one(tmp_path, monkeypatch):
    X, y = _data()
    log = tmp_path / "m.jsonl"
    log.write_text('{"note": "an earlier run"}\n')
    _network().fit(X, y, epochs=2, log_path=log, **_kw())
    lines = log.read_text().splitlines()
    assert lines[0] == '{"note": "an earlier run"}' and [json.loads(x)["epoch"] for x in lines[1:]] == [1, 2]
    old = log.read_bytes()

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(SaveError, match="No space left on device"):
        _network().fit(X, y, epochs=1, log_path=log, **_kw())
    assert log.read_bytes() == old
    assert sorted(os.listdir(tmp_path)) == ["m.jsonl"]  # no temporary file left


def test_a_resumed_log_holds_each_epoch_once(tmp_path):
    X, y = _data()
    log, folder = tmp_path / "m.jsonl", tmp_path / "ck"
    _network().fit(X, y, epochs=3, log_path=log, checkpoint_dir=folder, checkpoint_every=2, keep_checkpoints=5,
                   **_kw())
    os.unlink(latest_checkpoint(folder))  # the checkpoint of epoch 3 is lost; the log has epoch 3
    h = _network().fit(X, y, epochs=4, log_path=log, resume_from=folder, **_kw())
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert [{k: v for k, v in r.items() if k != "time"} for r in rows] == _rows(h)


# ------------------------------------------------------------------ a child process gets SIGTERM
CHILD = textwrap.dedent('''
    import json, signal, sys, time
    import numpy as np
    import deltaprop as dp
    from deltaprop.errors import TrainingInterrupted

    out, mode, folder, pause = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 5))
    y = (X[:, 0] - X[:, 1] * X[:, 2] > 0).astype(int)
    net = dp.Network([dp.Dense(5, 12, activation="relu", dropout=0.2), dp.Dense(12, 2, activation="softmax")],
                     seed=1)

    class Pause(dp.Callback):
        def on_batch_end(self, run, batch, logs):
            if run.step != pause:
                return
            flag = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)  # fit's interrupt flag
            print(f"paused {run.step}", flush=True)
            deadline = time.monotonic() + 30
            while flag is not None and not flag.hit and time.monotonic() < deadline:
                time.sleep(0.005)

    kw = dict(epochs=4, batch_size=8, optimizer="adam", verbose=0, callbacks=[Pause()])
    if mode == "train":
        kw["interrupt_checkpoint"] = folder
    elif mode == "resume":
        kw["resume_from"] = folder
    try:
        h = net.fit(X, y, **kw)
    except TrainingInterrupted as exc:
        print(json.dumps({"signum": int(exc.signum), "epoch": exc.epoch, "batch": exc.batch,
                          "checkpoint": exc.checkpoint, "message": str(exc)}), flush=True)
        sys.exit(128 + int(exc.signum))
    np.save(out, net.params)
    print(json.dumps([{k: v for k, v in r.items() if k != "time"} for r in h.rows]), flush=True)
''')


def _child(tmp_path, *args, **popen):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return subprocess.Popen([sys.executable, str(script), *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM to a child process")
def test_sigterm_to_a_training_process_checkpoints_exits_143_and_resumes_exactly(tmp_path):
    ref = _child(tmp_path, tmp_path / "ref.npy", "plain", "-", -1)
    ref_out, ref_err = ref.communicate(timeout=120)
    assert ref.returncode == 0, ref_err
    folder = tmp_path / "out.safetensors.checkpoint"
    proc = _child(tmp_path, tmp_path / "x.npy", "train", folder, 13)
    assert proc.stdout.readline() == "paused 13\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    report = json.loads(out)
    assert report["signum"] == signal.SIGTERM and (report["epoch"], report["batch"]) == (2, 5)
    assert report["checkpoint"] == str(folder / "ckpt-e0001-s000000013.safetensors")
    assert report["message"].endswith(f"by SIGTERM; checkpoint written to {report['checkpoint']}")
    again = _child(tmp_path, tmp_path / "resumed.npy", "resume", folder, -1)
    again_out, again_err = again.communicate(timeout=120)
    assert again.returncode == 0, again_err
    assert np.array_equal(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "ref.npy"))
    assert json.loads(again_out) == json.loads(ref_out)

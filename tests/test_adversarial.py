"""Hostile, careless and failing-machine cases, each checked against a promise of issue 14 ("Hardening").

Every case that is a user's path runs ``python -m deltaprop ...`` in a child
process in a fresh folder (see ``tests/_adversarial_util.py``) and checks it
mechanically: the exit status; for a refusal exactly one line on standard
error, ``deltaprop: error: ...`` (an "internal error" is a failure: hostile
input must get a named error), and no traceback; the bytes of every file in
the folder (sha256) before and after; the child's own peak resident memory
(its ``VmHWM``, sampled); and a time limit (a hang is a failure).

The families, one section each below:

- outputs over inputs: an output named like an input (same path, symlink,
  hard link), or two outputs alike, is refused before any work;
- atomic outputs: a failure part-way leaves the previous file byte-identical;
- paths inside a stranger's model file are shown, never opened;
- bounded inputs: devices, pipes, compression bombs, huge lines, output
  sized by the input, control bytes in labels;
- model metadata fuzzed through ``info``, ``evaluate`` and ``predict``;
- the estimators' ``load`` on fuzzed files;
- numbers too large for the chosen dtype;
- resume: fingerprints, ``--epochs``, corrupt checkpoints, SIGTERM,
  divergence after a resume.

Each case is written to the promise, not to the behaviour of the day.
"""

import gzip
import json
import math
import os
import re
import shutil
import signal
import struct
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.errors import DeltapropError

from _adversarial_util import (
    cli,
    deep_dict,
    deep_list,
    finish,
    named_error,
    ok,
    read_model,
    send,
    snapshot,
    spawn,
    wait_for,
    with_config,
    with_metadata,
    write_raw,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "wait4") or not hasattr(os, "mkfifo"),
                                reason="POSIX children, FIFOs and wait4")

QUIET = ("--quiet", "--plot", "none")
#: the options of every small training run here (60 rows, 3 features, 3 classes)
TRAIN = ("--hidden", "8", "--epochs", "2", "--batch-size", "8", "--seed", "0")
CLASSES = ("cat", "dog", "emu")
DEPTH = 100_000  # nesting deeper than any recursion limit


# ------------------------------------------------------------------ data and a model, made once
def _features(n, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.normal(size=(n, 3)) + 3.0 * y[:, None]
    return X, y


def _write_csv(path, X, y, names=("a", "b", "c"), target="label"):
    rows = [",".join([*names, target])]
    rows += [",".join([*(repr(float(v)) for v in x), CLASSES[k]]) for x, k in zip(X, y)]
    Path(path).write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A folder with d.csv (60 rows: a, b, c, label), X.npy / y.npy (the same rows) and m.safetensors
    trained on d.csv with ``TRAIN``."""
    folder = tmp_path_factory.mktemp("adversarial-base")
    X, y = _features(60)
    _write_csv(folder / "d.csv", X, y)
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    ok(cli("train", "--data", "d.csv", *TRAIN, *QUIET, "--out", "m.safetensors", cwd=folder))
    return folder


def _copy(base, tmp_path, *names):
    for name in names:
        shutil.copy2(base / name, tmp_path / name)


def _refused_untouched(result, folder, before, statuses=(1, 2), fragments=()):
    """A named refusal, and every file in ``folder`` as it was."""
    line = named_error(result, statuses, fragments)
    assert snapshot(folder) == before, f"files changed by a refused command: {line}"
    return line


# ================================================================== outputs over inputs
TOML = 'data = "d.csv"\nhidden = [8]\nepochs = 2\nbatch_size = 8\nquiet = true\nplot = "none"\n'

# (id, links {name: (kind, target)}, extra files {name: text}, argv)
OVERLAPS = [
    ("train-out-is-data", {}, {}, ["train", "--data", "d.csv", *TRAIN, *QUIET, "--out", "d.csv"]),
    ("train-log-is-data", {}, {}, ["train", "--data", "d.csv", *TRAIN, *QUIET, "--log", "d.csv"]),
    ("train-plot-is-data", {}, {}, ["train", "--data", "d.csv", *TRAIN, "--quiet", "--plot", "d.csv"]),
    ("train-out-is-config", {}, {"c.toml": TOML}, ["train", "--config", "c.toml", "--out", "c.toml"]),
    ("train-log-is-config", {}, {"c.toml": TOML}, ["train", "--config", "c.toml", "--log", "c.toml"]),
    ("config-names-data-as-out", {}, {"c.toml": TOML + 'out = "d.csv"\n'}, ["train", "--config", "c.toml"]),
    ("train-out-is-labels", {}, {}, ["train", "--data", "X.npy", "--labels", "y.npy", *TRAIN, *QUIET,
                                     "--out", "y.npy"]),
    ("train-log-is-labels", {}, {}, ["train", "--data", "X.npy", "--labels", "y.npy", *TRAIN, *QUIET,
                                     "--log", "y.npy"]),
    ("train-out-symlink-to-data", {"link.csv": ("symlink", "d.csv")}, {},
     ["train", "--data", "d.csv", *TRAIN, *QUIET, "--out", "link.csv"]),
    ("train-out-hardlink-of-data", {"hard.csv": ("hard", "d.csv")}, {},
     ["train", "--data", "d.csv", *TRAIN, *QUIET, "--out", "hard.csv"]),
    ("train-data-symlink-out-target", {"link.csv": ("symlink", "d.csv")}, {},
     ["train", "--data", "link.csv", *TRAIN, *QUIET, "--out", "d.csv"]),
    ("train-out-dotdot-path-to-data", {"sub": ("dir", None)}, {},
     ["train", "--data", "d.csv", *TRAIN, *QUIET, "--out", "sub/../d.csv"]),
    ("train-log-hardlink-of-data", {"hard.log": ("hard", "d.csv")}, {},
     ["train", "--data", "d.csv", *TRAIN, *QUIET, "--log", "hard.log"]),
    ("train-checkpoint-dir-is-data", {}, {}, ["train", "--data", "d.csv", *TRAIN, *QUIET,
                                             "--checkpoint-dir", "d.csv"]),
    ("train-out-and-log-same", {"x.safetensors": ("copy", "m.safetensors")}, {},
     ["train", "--data", "d.csv", *TRAIN, *QUIET, "--out", "x.safetensors", "--log", "x.safetensors"]),
    ("train-plot-and-log-same", {}, {"p.png": "an old plot"},
     ["train", "--data", "d.csv", *TRAIN, "--quiet", "--plot", "p.png", "--log", "p.png"]),
    ("train-out-and-plot-same", {"x.safetensors": ("copy", "m.safetensors")}, {},
     ["train", "--data", "d.csv", *TRAIN, "--quiet", "--out", "x.safetensors", "--plot", "x.safetensors"]),
    ("train-out-symlink-to-log", {"l.jsonl": ("symlink", "old.jsonl")}, {"old.jsonl": '{"epoch": 1}\n'},
     ["train", "--data", "d.csv", *TRAIN, *QUIET, "--out", "l.jsonl", "--log", "old.jsonl"]),
    ("predict-out-is-csv-data", {}, {}, ["predict", "m.safetensors", "--data", "d.csv", "--out", "d.csv"]),
    ("predict-out-is-npy-data", {}, {}, ["predict", "m.safetensors", "--data", "X.npy", "--out", "X.npy"]),
    ("predict-out-is-model", {}, {}, ["predict", "m.safetensors", "--data", "d.csv", "--out", "m.safetensors"]),
    ("predict-out-symlink-to-model", {"mlink": ("symlink", "m.safetensors")}, {},
     ["predict", "m.safetensors", "--data", "d.csv", "--out", "mlink"]),
    ("predict-out-hardlink-of-model", {"mhard": ("hard", "m.safetensors")}, {},
     ["predict", "m.safetensors", "--data", "d.csv", "--out", "mhard"]),
    ("predict-out-hardlink-of-npy", {"xhard.npy": ("hard", "X.npy")}, {},
     ["predict", "m.safetensors", "--data", "X.npy", "--out", "xhard.npy"]),
    ("predict-data-symlink-out-target", {"dl.csv": ("symlink", "d.csv")}, {},
     ["predict", "m.safetensors", "--data", "dl.csv", "--out", "d.csv"]),
]


@pytest.mark.parametrize("links, files, argv", [case[1:] for case in OVERLAPS], ids=[c[0] for c in OVERLAPS])
def test_an_output_over_an_input_is_refused_before_any_work(base, tmp_path, links, files, argv):
    _copy(base, tmp_path, "d.csv", "X.npy", "y.npy", "m.safetensors")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    for name, (kind, target) in links.items():
        if kind == "symlink":
            os.symlink(target, tmp_path / name)
        elif kind == "hard":
            os.link(tmp_path / target, tmp_path / name)
        elif kind == "copy":
            shutil.copy2(tmp_path / target, tmp_path / name)
        else:
            (tmp_path / name).mkdir()
    before = snapshot(tmp_path)
    _refused_untouched(cli(*argv, cwd=tmp_path), tmp_path, before)


# ================================================================== atomic outputs
OLD_CSV = "label\nold\nprediction\n"


def _late_bad_npy(path, rows=20000, bad_row=17000, value=1e300):
    X, _ = _features(rows, seed=3)
    X[bad_row, 1] = value
    np.save(path, X)


def test_predict_failing_in_a_late_chunk_leaves_the_old_output(base, tmp_path):
    # 20,000 rows: the second chunk of 16,384 holds a value no float32 network can take
    _copy(base, tmp_path, "m.safetensors")
    _late_bad_npy(tmp_path / "big.npy")
    (tmp_path / "old.csv").write_text(OLD_CSV)
    before = snapshot(tmp_path)
    _refused_untouched(cli("predict", "m.safetensors", "--data", "big.npy", "--out", "old.csv", cwd=tmp_path),
                       tmp_path, before, statuses=(1,))


def test_predict_with_a_late_bad_csv_row_leaves_the_old_output(base, tmp_path):
    _copy(base, tmp_path, "m.safetensors")
    X, y = _features(20000, seed=4)
    _write_csv(tmp_path / "big.csv", X, y)
    lines = (tmp_path / "big.csv").read_text().splitlines()
    lines[18000] = "1.0,not-a-number,2.0,cat"
    (tmp_path / "big.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "old.csv").write_text(OLD_CSV)
    before = snapshot(tmp_path)
    _refused_untouched(cli("predict", "m.safetensors", "--data", "big.csv", "--out", "old.csv", cwd=tmp_path),
                       tmp_path, before, statuses=(1,))


def test_predict_whose_write_fails_part_way_leaves_the_old_output(base, tmp_path):
    # RLIMIT_FSIZE: writes past 100 kB fail with EFBIG, as on a full disk; the probabilities are ~500 kB
    _copy(base, tmp_path, "m.safetensors")
    np.save(tmp_path / "big.npy", _features(20000, seed=5)[0])
    (tmp_path / "old.csv").write_text(OLD_CSV)
    before = snapshot(tmp_path)
    result = cli("predict", "m.safetensors", "--data", "big.npy", "--proba", "--out", "old.csv", cwd=tmp_path,
                 file_size_limit=100_000)
    _refused_untouched(result, tmp_path, before, statuses=(1,))


def test_train_whose_model_write_fails_leaves_the_old_model(base, tmp_path):
    _copy(base, tmp_path, "d.csv", "m.safetensors")
    before = snapshot(tmp_path)
    result = cli("train", "--data", "d.csv", *TRAIN, *QUIET, "--lr", "0.05", "--out", "m.safetensors",
                 cwd=tmp_path, file_size_limit=1000)
    _refused_untouched(result, tmp_path, before, statuses=(1,))


def test_a_diverged_run_leaves_the_old_log_and_model(base, tmp_path):
    _copy(base, tmp_path, "d.csv", "m.safetensors")
    (tmp_path / "old.jsonl").write_text('{"epoch": 1, "loss": 0.5}\n')
    before = snapshot(tmp_path)
    result = cli("train", "--data", "d.csv", *TRAIN, *QUIET, "--optimizer", "sgd", "--lr", "1e30",
                 "--schedule", "constant", "--log", "old.jsonl", "--out", "m.safetensors", cwd=tmp_path)
    _refused_untouched(result, tmp_path, before, statuses=(1,))


# ================================================================== paths inside a stranger's model file
def _stranger(base, tmp_path, **config):
    _copy(base, tmp_path, "d.csv")
    with_config(base / "m.safetensors", tmp_path / "s.safetensors", **config)


def _evaluate_refuses(tmp_path, shown, stdin=None):
    before = snapshot(tmp_path)
    result = cli("evaluate", "s.safetensors", cwd=tmp_path, timeout=30, stdin=stdin)
    line = _refused_untouched(result, tmp_path, before, fragments=("--data",))
    if shown is not None:
        assert shown in line, f"the stored path {shown!r} is not shown: {line}"
    return line


@pytest.mark.parametrize("stored", ["/dev/zero", "/etc/passwd", "/nonexistent/folder/train.csv"])
def test_evaluate_without_data_does_not_open_a_stored_path(base, tmp_path, stored):
    _stranger(base, tmp_path, data=stored)
    _evaluate_refuses(tmp_path, stored)


def test_evaluate_without_data_does_not_open_a_stored_fifo(base, tmp_path):
    os.mkfifo(tmp_path / "pipe.csv")
    _stranger(base, tmp_path, data=str(tmp_path / "pipe.csv"))
    _evaluate_refuses(tmp_path, str(tmp_path / "pipe.csv"))


def test_evaluate_without_data_does_not_open_a_symlink_to_a_device(base, tmp_path):
    os.symlink("/dev/zero", tmp_path / "zero.csv")
    _stranger(base, tmp_path, data="zero.csv")
    _evaluate_refuses(tmp_path, "zero.csv")


def test_evaluate_without_data_does_not_open_the_stored_training_file_either(base, tmp_path):
    # The stored path is the real training data, right there; still a stranger's path: shown, not opened.
    _stranger(base, tmp_path, data="d.csv")
    _evaluate_refuses(tmp_path, "d.csv")


def test_evaluate_without_data_does_not_read_stdin_for_a_stored_dash(base, tmp_path):
    _stranger(base, tmp_path, data="-")
    read_end, write_end = os.pipe()  # a pipe whose writer never writes nor closes
    try:
        with os.fdopen(read_end, "rb") as stdin:
            _evaluate_refuses(tmp_path, None, stdin=stdin)
    finally:
        os.close(write_end)


def test_a_stored_path_with_control_bytes_is_shown_escaped(base, tmp_path):
    _stranger(base, tmp_path, data="evil\x1b[2J\x1b]0;owned\x07.csv")
    line = _evaluate_refuses(tmp_path, None)
    assert "\x1b" not in line and "\x07" not in line, repr(line)
    assert "evil" in line


def test_evaluate_without_data_may_use_a_stored_builtin_name(base, tmp_path):
    # a 4-feature, classes 0..2 model saying it was trained on iris: the built-in set is loaded by name
    net = dp.Network.from_sizes([4, 3], output_activation="softmax", loss="categorical_crossentropy", seed=0)
    dp.save(net, tmp_path / "s.safetensors", classes=[0, 1, 2],
            config={"data": "iris", "test_split": 0.25, "seed": 0})
    result = ok(cli("evaluate", "s.safetensors", cwd=tmp_path))
    assert "iris" in result.stdout and "accuracy" in result.stdout


def test_info_shows_a_stored_device_path_without_opening_it(base, tmp_path):
    _stranger(base, tmp_path, data="/dev/zero")
    result = ok(cli("info", "s.safetensors", cwd=tmp_path, timeout=30))
    assert "/dev/zero" in result.stdout


# ================================================================== bounded inputs
@pytest.mark.parametrize("argv", [
    ["train", "--config", "/dev/zero"],
    ["train", "--data", "/dev/zero", *TRAIN, *QUIET],
    ["train", "--data", "X.npy", "--labels", "/dev/zero", *TRAIN, *QUIET],
    ["predict", "m.safetensors", "--data", "/dev/zero"],
    ["evaluate", "m.safetensors", "--data", "/dev/zero"],
    ["train", "--data", "folder", *TRAIN, *QUIET],
    ["predict", "m.safetensors", "--data", "folder"],
], ids=["config-dev-zero", "train-data-dev-zero", "labels-dev-zero", "predict-dev-zero", "evaluate-dev-zero",
        "train-data-folder", "predict-data-folder"])
def test_a_device_or_folder_as_input_is_a_named_error(base, tmp_path, argv):
    _copy(base, tmp_path, "m.safetensors", "X.npy")
    (tmp_path / "folder").mkdir()
    before = snapshot(tmp_path)
    _refused_untouched(cli(*argv, timeout=30, cwd=tmp_path), tmp_path, before)


class _FifoWriter:
    """A FIFO at ``path`` whose writer thread writes ``data`` once (``<(cat file)`` for a test)."""

    def __init__(self, path, data):
        self.path = Path(path)
        os.mkfifo(self.path)
        self.data = data
        self.thread = threading.Thread(target=self._write, daemon=True)
        self.thread.start()

    def _write(self):
        try:
            fd = os.open(self.path, os.O_WRONLY)  # blocks until the reader opens it
            with os.fdopen(fd, "wb") as f:
                f.write(self.data)
        except OSError:  # the reader went away
            pass

    def close(self):
        # unblock a writer still waiting for a reader that never came
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
        self.thread.join(5)


def test_a_pipe_as_data_trains_the_same_model_as_the_file(base, tmp_path):
    fifo = _FifoWriter(tmp_path / "pipe", (base / "d.csv").read_bytes())
    try:
        ok(cli("train", "--data", "pipe", *TRAIN, *QUIET, "--out", "p.safetensors", cwd=tmp_path))
    finally:
        fifo.close()
    np.testing.assert_array_equal(dp.load(tmp_path / "p.safetensors").network.params, dp.load(base / "m.safetensors").network.params)


def test_a_pipe_as_config_is_read(base, tmp_path):
    _copy(base, tmp_path, "d.csv")
    fifo = _FifoWriter(tmp_path / "cfg", TOML.encode())
    try:
        ok(cli("train", "--config", "cfg", "--out", "c.safetensors", cwd=tmp_path))
    finally:
        fifo.close()
    np.testing.assert_array_equal(dp.load(tmp_path / "c.safetensors").network.params, dp.load(base / "m.safetensors").network.params)


@pytest.mark.parametrize("source", ["d.csv", "X.npy"])
def test_a_pipe_as_predict_data_gives_the_file_s_predictions(base, tmp_path, source):
    _copy(base, tmp_path, "m.safetensors", source)
    expected = ok(cli("predict", "m.safetensors", "--data", source, cwd=tmp_path)).stdout
    fifo = _FifoWriter(tmp_path / "pipe", (base / source).read_bytes())  # no suffix, like /dev/fd/63
    try:
        result = ok(cli("predict", "m.safetensors", "--data", "pipe", cwd=tmp_path))
    finally:
        fifo.close()
    assert result.stdout == expected and expected.count("\n") == 61


def test_a_pipe_as_evaluate_data_gives_the_file_s_scores(base, tmp_path):
    _copy(base, tmp_path, "m.safetensors", "d.csv")
    expected = json.loads(ok(cli("evaluate", "m.safetensors", "--data", "d.csv", "--json", cwd=tmp_path)).stdout)
    fifo = _FifoWriter(tmp_path / "pipe", (base / "d.csv").read_bytes())
    try:
        got = json.loads(ok(cli("evaluate", "m.safetensors", "--data", "pipe", "--json", cwd=tmp_path)).stdout)
    finally:
        fifo.close()
    assert (got["loss"], got["accuracy"], got["samples"]) == (expected["loss"], expected["accuracy"], 60)


def _gzip_bomb(path, inflated_gib=2):
    """A ~2 MB .idx.gz that inflates to ``inflated_gib`` GiB: (2**21 * k, 32, 32) bytes of zeros."""
    block = 64 * 2**20
    n = inflated_gib * 2**30
    member = gzip.compress(bytes(block), compresslevel=9, mtime=0)
    head = bytes([0, 0, 0x08, 3]) + struct.pack(">III", n // 1024, 32, 32)
    with open(path, "wb") as f:
        f.write(gzip.compress(head, mtime=0))
        for _ in range(n // block):
            f.write(member)


def test_a_gzip_bomb_is_refused_with_bounded_memory(tmp_path):
    _gzip_bomb(tmp_path / "images.idx.gz")
    n = 2 * 2**30 // 1024
    labels = bytes([0, 0, 0x08, 1]) + struct.pack(">I", n) + bytes(n)
    (tmp_path / "labels.idx.gz").write_bytes(gzip.compress(labels, mtime=0))
    assert (tmp_path / "images.idx.gz").stat().st_size < 4 * 2**20
    before = snapshot(tmp_path)
    result = cli("train", "--data", "images.idx.gz", "--labels", "labels.idx.gz", *TRAIN, *QUIET, cwd=tmp_path)
    _refused_untouched(result, tmp_path, before, statuses=(1,))


def _zip_bomb(path, gib=1):
    """An .npz whose one member, x.npy, declares and inflates to ``gib`` GiB of float32 zeros, shape (n, 3)."""
    n = gib * 2**30 // 12
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (n, 3)})
            block = bytes(12 * 2**20)
            left = n * 12
            while left:
                f.write(block[:min(left, len(block))])
                left -= min(left, len(block))


def test_a_zip_bomb_npz_is_refused_with_bounded_memory(base, tmp_path):
    _copy(base, tmp_path, "m.safetensors")
    _zip_bomb(tmp_path / "bomb.npz")
    assert (tmp_path / "bomb.npz").stat().st_size < 4 * 2**20
    before = snapshot(tmp_path)
    _refused_untouched(cli("predict", "m.safetensors", "--data", "bomb.npz", cwd=tmp_path), tmp_path, before,
                       statuses=(1,))


def test_a_npy_header_that_lies_about_its_shape_is_refused(base, tmp_path):
    _copy(base, tmp_path, "m.safetensors")
    with open(tmp_path / "lie.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 3)})
        f.write(bytes(240))
    before = snapshot(tmp_path)
    _refused_untouched(cli("predict", "m.safetensors", "--data", "lie.npy", cwd=tmp_path), tmp_path, before,
                       statuses=(1,))


def test_an_idx_header_that_lies_about_its_size_is_refused(tmp_path):
    (tmp_path / "images.idx").write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">III", 2**31, 28, 28) + bytes(784))
    (tmp_path / "labels.idx").write_bytes(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 2**31) + bytes(1))
    before = snapshot(tmp_path)
    _refused_untouched(cli("train", "--data", "images.idx", "--labels", "labels.idx", *TRAIN, *QUIET,
                           cwd=tmp_path), tmp_path, before, statuses=(1,))


def test_a_truncated_gzip_is_a_named_error(tmp_path):
    images = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 60, 2, 2) + bytes(range(240))
    (tmp_path / "images.idx.gz").write_bytes(gzip.compress(images, mtime=0)[:-12])
    (tmp_path / "labels.idx").write_bytes(bytes([0, 0, 0x08, 1]) + struct.pack(">I", 60) + bytes([0, 1] * 30))
    before = snapshot(tmp_path)
    _refused_untouched(cli("train", "--data", "images.idx.gz", "--labels", "labels.idx", *TRAIN, *QUIET,
                           cwd=tmp_path), tmp_path, before, statuses=(1,))


def test_a_csv_cell_of_twenty_million_digits_is_a_named_error(base, tmp_path):
    _copy(base, tmp_path, "d.csv")
    with open(tmp_path / "d.csv", "a") as f:
        f.write("1" * 20_000_000 + ",0.5,0.5,cat\n")
    before = snapshot(tmp_path)
    _refused_untouched(cli("train", "--data", "d.csv", *TRAIN, *QUIET, cwd=tmp_path), tmp_path, before,
                       statuses=(1,))


def test_a_csv_line_of_two_million_cells_is_a_named_error(base, tmp_path):
    _copy(base, tmp_path, "d.csv", "m.safetensors")
    with open(tmp_path / "d.csv", "a") as f:
        f.write("1," * 2_000_000 + "cat\n")
    before = snapshot(tmp_path)
    _refused_untouched(cli("predict", "m.safetensors", "--data", "d.csv", cwd=tmp_path), tmp_path, before,
                       statuses=(1,))


def _many_classes(folder, k):
    """A model with ``k`` classes c0..c{k-1} (2 features) and a CSV with one row of each class."""
    net = dp.Network.from_sizes([2, k], output_activation="softmax", loss="categorical_crossentropy", seed=0)
    dp.save(net, folder / "k.safetensors", classes=[f"c{i}" for i in range(k)])
    rng = np.random.default_rng(0)
    rows = ["x,y,label"] + [f"{rng.normal():.4f},{rng.normal():.4f},c{i}" for i in range(k)]
    (folder / "k.csv").write_text("\n".join(rows) + "\n")


def test_evaluate_with_5000_classes_summarises_on_the_terminal(tmp_path):
    _many_classes(tmp_path, 5000)
    result = ok(cli("evaluate", "k.safetensors", "--data", "k.csv", cwd=tmp_path))
    lines = result.stdout.splitlines()
    assert len(lines) < 200, f"{len(lines)} lines, {len(result.stdout)} characters printed"
    assert "accuracy" in result.stdout


def test_evaluate_json_with_300_classes_is_complete(tmp_path):
    _many_classes(tmp_path, 300)
    text = ok(cli("evaluate", "k.safetensors", "--data", "k.csv", cwd=tmp_path)).stdout
    assert len(text.splitlines()) < 200, f"{len(text.splitlines())} lines printed"
    got = json.loads(ok(cli("evaluate", "k.safetensors", "--data", "k.csv", "--json", cwd=tmp_path)).stdout)
    matrix = np.asarray(got["confusion_matrix"])
    assert matrix.shape == (300, 300) and matrix.sum() == 300 and len(got["classes"]) == 300


EVIL = ["\x1b[31mred\x1b[0m", "bell\x07\x1b]0;owned\x07"]


def _evil_classes(folder):
    net = dp.Network.from_sizes([3, 2], output_activation="softmax", loss="categorical_crossentropy", seed=0)
    dp.save(net, folder / "e.safetensors", classes=EVIL)
    rows = ["a,b,c,label"] + [f"{i},{-i},{i % 3},{EVIL[i % 2]}" for i in range(10)]
    (folder / "e.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("argv", [["info", "e.safetensors"], ["evaluate", "e.safetensors", "--data", "e.csv"]],
                         ids=["info", "evaluate"])
def test_labels_with_control_bytes_are_printed_escaped(tmp_path, argv):
    _evil_classes(tmp_path)
    result = ok(cli(*argv, cwd=tmp_path))
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout, repr(result.stdout[:500])
    assert "[31mred" in result.stdout  # the label is still shown, escaped


def test_a_target_name_with_control_bytes_is_printed_escaped(tmp_path):
    net = dp.Network.from_sizes([3, 1], output_activation="identity", loss="mean_squared_error", seed=0)
    dp.save(net, tmp_path / "r.safetensors", extra={"task": "regression", "target_name": "y\x1b]0;owned\x07"})
    result = ok(cli("info", "r.safetensors", cwd=tmp_path))
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout, repr(result.stdout[:500])


# ================================================================== model metadata fuzzed through the CLI
def _config_with(base, extra_text):
    _, metadata = read_model(base / "m.safetensors")
    return metadata["config"].rstrip()[:-1] + ", " + extra_text + "}"


# (id, metadata key, JSON text, or a function of the base folder giving it)
METADATA = [
    ("history-deep", "history", deep_list(DEPTH)),
    ("test-deep", "test", deep_dict(DEPTH)),
    ("config-deep", "config", lambda base: _config_with(base, '"note": ' + deep_list(DEPTH))),
    ("library-version-deep", "library_version", deep_list(DEPTH)),
    ("target-scaling-deep", "target_scaling", deep_dict(DEPTH)),
    ("class-names-deep", "class_names", deep_list(DEPTH)),
    ("feature-names-deep", "feature_names", deep_list(DEPTH)),
    ("test-nan", "test", '{"loss": NaN, "accuracy": Infinity, "samples": 15}'),
    ("test-huge", "test", '{"loss": 1e999, "accuracy": 0.5, "samples": 1e308}'),
    ("test-types", "test", '{"loss": "low", "accuracy": [1], "samples": {"a": 1}}'),
    ("library-version-huge-int", "library_version", "9" * 4300),
    ("library-version-type", "library_version", '{"major": [1, 2]}'),
    ("target-scaling-nan", "target_scaling", '{"kind": "standard", "n_features": 1, "offset": [NaN], '
                                             '"scale": [1e999]}'),
    ("target-scaling-types", "target_scaling", '{"kind": 5, "n_features": "x", "offset": "a", "scale": null}'),
    ("history-types", "history", '[{"loss": "x", "epoch": [1]}, 5, null]'),
    ("history-nan", "history", '[{"epoch": 1, "loss": NaN, "lr": 1e999}]'),
    ("config-types", "config", '{"data": 5, "seed": "x", "test_split": 7.5, "hidden": "many", "target": [[1]]}'),
    ("task-type", "task", "[1, 2]"),
]
COMMANDS = {
    "info": ["info", "f.safetensors"],
    "evaluate": ["evaluate", "f.safetensors", "--data", "d.csv"],
    "predict": ["predict", "f.safetensors", "--data", "d.csv"],
}


def _fuzzed(base, folder, key, text):
    text = text(base) if callable(text) else text
    return with_metadata(base / "m.safetensors", folder / "f.safetensors", **{key: text})


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("key, text", [c[1:] for c in METADATA], ids=[c[0] for c in METADATA])
def test_fuzzed_metadata_is_a_named_error_in_the_cli(base, tmp_path, key, text, command):
    _copy(base, tmp_path, "d.csv")
    _fuzzed(base, tmp_path, key, text)
    before = snapshot(tmp_path)
    result = cli(*COMMANDS[command], cwd=tmp_path, timeout=30)
    line = _refused_untouched(result, tmp_path, before, statuses=(1,))
    assert "f.safetensors" in line


def _overflowing(base, folder, value=3e38):
    tensors, metadata = read_model(base / "m.safetensors")
    for name in tensors:
        if not name.startswith("preprocessing."):
            tensors[name] = np.full_like(tensors[name], value)
    return write_raw(folder / "f.safetensors", tensors, metadata)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_weights_that_overflow_in_use_are_refused_at_load(base, tmp_path, command):
    _copy(base, tmp_path, "d.csv")
    _overflowing(base, tmp_path)
    result = cli(*COMMANDS[command], cwd=tmp_path, timeout=30)
    named_error(result, statuses=(1,), fragments=("f.safetensors",))
    assert not re.search(r"\b(nan|inf)\b", result.stdout, re.IGNORECASE), result.stdout[:500]


# ================================================================== the estimators' load
def _estimator_file(path, classes=("a", "b", "c"), record_changes=None, metadata_changes=None, weights=None):
    """A file as DeltapropClassifier.save writes it (3 inputs, 4 hidden, 3 classes), with changes."""
    from deltaprop.estimators import DeltapropClassifier
    from deltaprop.estimators._files import to_json

    net = dp.Network.from_sizes([3, 4, 3], activation="relu", output_activation="softmax",
                                loss="categorical_crossentropy", seed=0)
    params = {k: to_json(v) for k, v in DeltapropClassifier(hidden_layer_sizes=(4,)).get_params(deep=False).items()}
    record = {"format_version": 1, "estimator": "DeltapropClassifier", "params": params, "unsaved_params": [],
              "n_features_in": 3, "feature_names_in": None, "loss_curve": [1.0, 0.5], "validation_scores": None,
              "validation_loss_curve": None, "mode": "multiclass", "classes_dtype": "str", "multilabel_dtype": None}
    dp.save(net, path, classes=list(classes), config=params, extra={"sklearn_estimator": record})
    tensors, metadata = read_model(path)
    if record_changes:  # values given as JSON text (NaN, 1e999, deep nesting that json.dumps would refuse)
        doc = {k: v for k, v in record.items() if k not in record_changes}
        text = json.dumps(doc)[:-1] + "".join(f', "{k}": {v}' for k, v in record_changes.items()) + "}"
        metadata["sklearn_estimator"] = text
    metadata.update(metadata_changes or {})
    if weights is not None:
        for name in tensors:
            tensors[name] = np.full_like(tensors[name], weights)
    return write_raw(path, tensors, metadata)


def _params_with(extra_text):
    from deltaprop.estimators import DeltapropClassifier
    from deltaprop.estimators._files import to_json

    params = {k: to_json(v) for k, v in DeltapropClassifier(hidden_layer_sizes=(4,)).get_params(deep=False).items()}
    name = extra_text.split(":", 1)[0].strip().strip('"')
    params.pop(name, None)
    return json.dumps(params)[:-1] + ", " + extra_text + "}"


ESTIMATOR_CASES = [
    ("record-deep", {"metadata_changes": {"sklearn_estimator": deep_dict(DEPTH)}}),
    ("params-deep", {"record_changes": {"params": deep_dict(DEPTH)}}),
    ("param-value-deep", {"record_changes": {"params": _params_with('"hidden_layer_sizes": ' + deep_list(DEPTH))}}),
    ("param-wrong-type", {"record_changes": {"params": _params_with('"epochs": "many"')}}),
    ("param-huge", {"record_changes": {"params": _params_with('"alpha": 1e999')}}),
    ("param-nan", {"record_changes": {"params": _params_with('"tol": NaN')}}),
    ("param-bad-tuple-marker", {"record_changes": {"params": _params_with('"hidden_layer_sizes": {"__tuple__": 5}')}}),
    ("param-unhashable-key", {"record_changes": {"params": _params_with('"class_weight": {"__items__": [[[1], 2]]}')}}),
    ("n-features-huge", {"record_changes": {"n_features_in": "1e999"}}),
    ("loss-curve-nan", {"record_changes": {"loss_curve": "[NaN, 1e999]"}}),
    ("mode-wrong-type", {"record_changes": {"mode": '["multiclass"]'}}),
    ("classes-dtype-float-for-strings", {"record_changes": {"classes_dtype": '"float64"'}}),
    ("classes-dtype-int8-overflow", {"classes": (1000, 2000, 3000), "record_changes": {"classes_dtype": '"int8"'}}),
    ("classes-deep", {"metadata_changes": {"classes": deep_list(DEPTH)}}),
    ("library-version-deep", {"metadata_changes": {"library_version": deep_list(DEPTH)}}),
    ("config-deep", {"metadata_changes": {"config": deep_dict(DEPTH)}}),
    ("history-deep", {"metadata_changes": {"history": deep_list(DEPTH)}}),
    ("weights-overflow", {"weights": 3e38}),
]


def test_the_unfuzzed_estimator_file_loads(tmp_path):
    from deltaprop.estimators import DeltapropClassifier

    est = DeltapropClassifier.load(_estimator_file(tmp_path / "e.safetensors"))
    assert list(est.predict(np.zeros((2, 3)))) in (["a", "a"], ["b", "b"], ["c", "c"])


@pytest.mark.parametrize("changes", [c[1] for c in ESTIMATOR_CASES], ids=[c[0] for c in ESTIMATOR_CASES])
def test_estimator_load_of_a_fuzzed_file_raises_a_deltaprop_error(tmp_path, changes):
    from deltaprop.estimators import DeltapropClassifier

    path = _estimator_file(tmp_path / "e.safetensors", **changes)
    with np.errstate(all="raise"):
        with pytest.raises(DeltapropError) as info:
            DeltapropClassifier.load(path)
    assert "e.safetensors" in str(info.value)


@pytest.mark.parametrize("key, text", [c[1:] for c in METADATA], ids=[c[0] for c in METADATA])
@pytest.mark.parametrize("cls", ["DeltapropClassifier", "DeltapropRegressor"])
def test_estimator_load_of_a_cli_fuzzed_file_raises_a_deltaprop_error(base, tmp_path, key, text, cls):
    import deltaprop.estimators as estimators

    path = _fuzzed(base, tmp_path, key, text)
    with pytest.raises(DeltapropError):
        getattr(estimators, cls).load(path)


# ================================================================== numbers
def _huge_csv(path, value, column=1, dtype_rows=60):
    X, y = _features(dtype_rows, seed=6)
    X[5, column] = value
    X[17, column] = -value
    return _write_csv(path, X, y)


def test_finite_1e200_features_train_in_float64(tmp_path):
    _huge_csv(tmp_path / "h.csv", 1e200)
    ok(cli("train", "--data", "h.csv", *TRAIN, *QUIET, "--dtype", "float64", "--out", "h.safetensors",
           cwd=tmp_path))
    assert np.all(np.isfinite(dp.load(tmp_path / "h.safetensors").network.params))


def test_features_near_the_float64_limit_train_in_float64(tmp_path):
    _huge_csv(tmp_path / "h.csv", 1.5e308)
    ok(cli("train", "--data", "h.csv", *TRAIN, *QUIET, "--dtype", "float64", "--out", "h.safetensors",
           cwd=tmp_path))
    assert np.all(np.isfinite(dp.load(tmp_path / "h.safetensors").network.params))


def _names_column_and_value(line, column="b"):
    assert re.search(rf"\b{column}\b", line), f"the column {column!r} is not named: {line}"
    assert re.search(r"1(\.0*)?e\+?200", line), f"the value is not named: {line}"
    assert "NaN or inf" not in line and "infinite" not in line, line


def test_finite_1e200_features_train_in_float32_when_scaled_and_are_refused_unscaled(tmp_path):
    # The data contract scales in float64 before the cast, so standardised 1e200 features are O(1) in float32;
    # unscaled, they cannot be float32 numbers, and the refusal names the column and the value.
    _huge_csv(tmp_path / "h.csv", 1e200)
    ok(cli("train", "--data", "h.csv", *TRAIN, *QUIET, "--dtype", "float32", "--out", "h.safetensors",
           cwd=tmp_path))
    assert np.all(np.isfinite(dp.load(tmp_path / "h.safetensors").network.params))
    before = snapshot(tmp_path)
    line = _refused_untouched(cli("train", "--data", "h.csv", *TRAIN, *QUIET, "--dtype", "float32", "--scale",
                                  "none", cwd=tmp_path), tmp_path, before, statuses=(1,))
    _names_column_and_value(line)


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_float32_model_refuses_1e200_inputs_naming_column_and_value(base, tmp_path, command):
    _copy(base, tmp_path, "m.safetensors")
    _huge_csv(tmp_path / "h.csv", 1e200)
    before = snapshot(tmp_path)
    line = _refused_untouched(cli(command, "m.safetensors", "--data", "h.csv", cwd=tmp_path), tmp_path, before,
                              statuses=(1,))
    _names_column_and_value(line)


def test_a_1e200_regression_target_trains_in_float64(tmp_path):
    X, _ = _features(60, seed=7)
    t = X[:, 0] * 1e200
    rows = ["a,b,c,t"] + [",".join(repr(float(v)) for v in (*x, tv)) for x, tv in zip(X, t)]
    (tmp_path / "r.csv").write_text("\n".join(rows) + "\n")
    ok(cli("train", "--data", "r.csv", "--task", "regression", *TRAIN, *QUIET, "--dtype", "float64",
           "--out", "r.safetensors", cwd=tmp_path))
    predictions = ok(cli("predict", "r.safetensors", "--data", "r.csv", cwd=tmp_path)).stdout.split()[1:]
    assert len(predictions) == 60 and all(math.isfinite(float(v)) for v in predictions)


# ================================================================== resume
RESUME = ("--data", "d.csv", "--hidden", "8", "--batch-size", "8", "--seed", "0", "--optimizer", "sgd",
          "--lr", "0.01", "--schedule", "constant", *QUIET)


@pytest.fixture(scope="module")
def checkpointed(base, tmp_path_factory):
    """A folder with d.csv, ck/ (3 epochs of RESUME, a checkpoint each) and straight.safetensors (4 epochs)."""
    folder = tmp_path_factory.mktemp("adversarial-resume")
    shutil.copy2(base / "d.csv", folder / "d.csv")
    ok(cli("train", *RESUME, "--epochs", "3", "--checkpoint-dir", "ck", "--keep-checkpoints", "3",
           "--out", "three.safetensors", cwd=folder))
    ok(cli("train", *RESUME, "--epochs", "4", "--out", "straight.safetensors", cwd=folder))
    assert len(list((folder / "ck").glob("ckpt-*"))) == 3
    return folder


def _resume_folder(checkpointed, tmp_path):
    shutil.copy2(checkpointed / "d.csv", tmp_path / "d.csv")
    shutil.copytree(checkpointed / "ck", tmp_path / "ck")


def _with(options, key, value):
    """``options`` with flag ``key`` set to ``value`` (removed when None)."""
    out, skip = [], False
    for i, item in enumerate(options):
        if skip:
            skip = False
            continue
        if item == key:
            skip = True
            continue
        out.append(item)
    return out + ([key, value] if value is not None else [])


@pytest.mark.parametrize("flag, value", [("--lr", "0.02"), ("--scale", "minmax")], ids=["lr", "scale"])
def test_resume_with_a_different_setting_is_refused_naming_it(checkpointed, tmp_path, flag, value):
    _resume_folder(checkpointed, tmp_path)
    before = snapshot(tmp_path)
    result = cli("train", *_with(RESUME, flag, value), "--epochs", "4", "--checkpoint-dir", "ck", "--resume",
                 cwd=tmp_path)
    _refused_untouched(result, tmp_path, before, fragments=(flag.lstrip("-"),))


def test_resume_without_the_run_s_lr_is_refused_or_keeps_it(checkpointed, tmp_path):
    _resume_folder(checkpointed, tmp_path)
    before = snapshot(tmp_path)
    result = cli("train", *_with(RESUME, "--lr", None), "--epochs", "4", "--checkpoint-dir", "ck", "--resume",
                 "--out", "r.safetensors", cwd=tmp_path)
    if result.returncode == 0:  # it continued the run it claims to be: the checkpoint's lr, not the default
        ok(result)
        assert dp.load(tmp_path / "r.safetensors").network.run_config["lr"] == 0.01
        np.testing.assert_array_equal(dp.load(tmp_path / "r.safetensors").network.params,
                                      dp.load(checkpointed / "straight.safetensors").network.params)
    else:
        _refused_untouched(result, tmp_path, before, fragments=("lr",))


def test_resume_with_override_is_accepted_and_recorded(checkpointed, tmp_path):
    _resume_folder(checkpointed, tmp_path)
    ok(cli("train", *_with(RESUME, "--lr", "0.02"), "--epochs", "4", "--checkpoint-dir", "ck", "--resume",
           "--override", "lr", "--out", "r.safetensors", cwd=tmp_path))
    _, metadata = read_model(tmp_path / "r.safetensors")
    overrides = json.loads(metadata.get("overrides", "[]"))
    assert [(o["setting"], o["was"], o["now"]) for o in overrides] == [("learning_rate", 0.01, 0.02)], \
        "the override is not recorded with the run"
    assert dp.load(tmp_path / "r.safetensors").network.run_config["lr"] == 0.02


def test_resume_with_fewer_epochs_than_done_is_refused(checkpointed, tmp_path):
    _resume_folder(checkpointed, tmp_path)
    before = snapshot(tmp_path)
    line = _refused_untouched(cli("train", *RESUME, "--epochs", "2", "--checkpoint-dir", "ck", "--resume",
                                  cwd=tmp_path), tmp_path, before, fragments=("epochs",))
    assert "3" in line


def test_a_truncated_newest_checkpoint_falls_back_with_a_note(checkpointed, tmp_path):
    _resume_folder(checkpointed, tmp_path)
    newest = sorted((tmp_path / "ck").glob("ckpt-*"))[-1]
    data = newest.read_bytes()
    newest.write_bytes(data[:len(data) // 2])
    loud = [item for item in RESUME if item != "--quiet"]
    result = ok(cli("train", *loud, "--epochs", "4", "--checkpoint-dir", "ck", "--resume", "--out",
                    "r.safetensors", cwd=tmp_path))
    assert newest.name in result.stderr, "the fallback does not name the corrupt checkpoint\n" + result.stderr
    np.testing.assert_array_equal(dp.load(tmp_path / "r.safetensors").network.params,
                                  dp.load(checkpointed / "straight.safetensors").network.params)


def test_divergence_right_after_a_resume_names_the_last_good_checkpoint(checkpointed, tmp_path):
    _resume_folder(checkpointed, tmp_path)
    newest = sorted((tmp_path / "ck").glob("ckpt-*"))[-1].name
    result = cli("train", *_with(RESUME, "--lr", "1e30"), "--epochs", "5", "--checkpoint-dir", "ck", "--resume",
                 "--override", "lr", cwd=tmp_path)
    named_error(result, statuses=(1,), fragments=(newest,))


def _long_run_folder(tmp_path):
    X, y = _features(8000, seed=8)
    np.save(tmp_path / "X.npy", X.astype(np.float32))
    np.save(tmp_path / "y.npy", y)
    return ["train", "--data", "X.npy", "--labels", "y.npy", "--hidden", "8", "--batch-size", "4", "--epochs",
            "20", "--seed", "0", *QUIET]


def _sigterm_after_first_epoch(tmp_path, argv):
    proc, out_path, err_path = spawn(*argv, cwd=tmp_path)
    log = tmp_path / "m.jsonl"
    started = wait_for(lambda: log.exists() and log.read_text().strip(), proc)
    send(proc, signal.SIGTERM)
    result = finish(proc, out_path, err_path, argv)
    assert started, "no epoch was logged\n" + result.describe()
    return result


def test_sigterm_checkpoints_exits_143_and_the_run_resumes(tmp_path):
    argv = _long_run_folder(tmp_path)
    result = _sigterm_after_first_epoch(tmp_path, [*argv, "--checkpoint-dir", "ck", "--log", "m.jsonl"])
    assert result.returncode == 143, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert list((tmp_path / "ck").glob("ckpt-*")), "no checkpoint after SIGTERM\n" + result.describe()
    assert not (tmp_path / "model.safetensors").exists()
    ok(cli(*argv, "--checkpoint-dir", "ck", "--resume", "--out", "r.safetensors", cwd=tmp_path))
    assert (tmp_path / "r.safetensors").exists()


def test_sigterm_without_a_checkpoint_dir_leaves_one_beside_out_and_says_how_to_resume(tmp_path):
    argv = _long_run_folder(tmp_path)
    (tmp_path / "out").mkdir()
    result = _sigterm_after_first_epoch(tmp_path, [*argv, "--out", "out/r.safetensors", "--log", "m.jsonl"])
    assert result.returncode == 143, result.describe()
    assert "Traceback" not in result.stderr, result.describe()
    assert os.listdir(tmp_path / "out"), "nothing written beside --out\n" + result.describe()
    assert "--resume" in result.stderr, result.describe()
    found = re.search(r"--checkpoint-dir[ =](\S+)", result.stderr)
    assert found, "the resume command names no --checkpoint-dir\n" + result.describe()
    folder = found.group(1).strip("'\"")
    assert Path(tmp_path, folder).resolve().parent == (tmp_path / "out").resolve() or \
        Path(tmp_path, folder).resolve() == (tmp_path / "out").resolve(), folder
    ok(cli(*argv, "--checkpoint-dir", folder, "--resume", "--out", "out/r.safetensors", cwd=tmp_path))
    assert dp.load(tmp_path / "out" / "r.safetensors").network.n_in == 3

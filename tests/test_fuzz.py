"""Fuzzing the file loaders: model files (``dp.load``) and checkpoints (``load_checkpoint`` and resuming).

Each case is a mutation of a valid small file (truncation at every length,
bit flips, byte overwrites, a rewritten header-length field, structural edits
of the header JSON and of the JSON inside its metadata, splices, random
bytes), drawn from a seeded generator so every failure can be replayed from
``(seed, case index)``. Every case must end in one of two ways:

- a successful load, whose parameters are all finite (the mutation was
  harmless, e.g. a flipped bit in a weight's mantissa or in a version string);
- a :class:`deltaprop.ModelFileError`.

Never another exception type, never a hang (an interval timer turns one into
a failure), and bounded memory: with ``tracemalloc`` on, no case may
allocate more than a few times the file's size.

``benchmarks/fuzz_model_files.py`` runs the same engine with many more
cases (``--cases 200000``) and prints a summary.
"""

import json
import math
import os
import signal
import struct
import tracemalloc
from collections import Counter

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.checkpoint import load_checkpoint
from deltaprop.errors import ModelFileError

#: no single case may allocate more than this many bytes (files here are a few KB)
PEAK_LIMIT = 4 * 2**20

_POOL = [None, True, False, 0, 1, -1, 2, 3, 7, 0.5, -0.0, 1e-300, 1e308, -1e308, 2**31, 2**53 + 1, 2**63, 2**64 + 1,
         10**30, "", "x", "float32", "float64", "relu", "softmax", "F32", "F64", "I64", "PCG64", "Infinity", [],
         {}, [1], [0, 0], [2**40, 2**40], [-1, 4], ["a"], {"name": "relu"}, {"name": 1}, float("nan"),
         float("inf"), -float("inf")]


# ------------------------------------------------------------------ seed files
class _Restored(Exception):
    """Raised from on_train_begin: the checkpoint was restored into a run, no training needed."""


class Seeds:
    """A valid model file and a valid mid-epoch checkpoint, with what it takes to resume the latter."""

    def __init__(self, folder):
        folder = os.fspath(folder)
        rng = np.random.default_rng(7)
        self.X = rng.normal(size=(30, 3))
        self.y = rng.integers(0, 2, size=30)

        net = self.network()
        scaler = dp_data().Scaler("standard").fit(self.X)
        self.model_path = os.path.join(folder, "seed-model.safetensors")
        dp.save(net, self.model_path, preprocessing=scaler.state(), classes=["neg", "pos"],
                config={"epochs": 2, "note": "seed"})

        ckdir = os.path.join(folder, "seed-ckpt")
        try:
            self.network().fit(self.X, self.y, **self.fit_kwargs(),
                               callbacks=[_SigintAt(5)], checkpoint_dir=ckdir, checkpoint_unit="step",
                               checkpoint_every=1000)
        except KeyboardInterrupt:
            pass
        names = sorted(n for n in os.listdir(ckdir) if n.startswith("ckpt-"))
        self.checkpoint_path = os.path.join(ckdir, names[-1])
        with open(self.model_path, "rb") as f:
            self.model = f.read()
        with open(self.checkpoint_path, "rb") as f:
            self.checkpoint = f.read()

    @staticmethod
    def network():
        return dp.Network([dp.Dense(3, 4, activation={"name": "leaky_relu", "alpha": 0.1}, dropout=0.25),
                           dp.Dense(4, 2, activation="softmax")], dtype="float32", seed=3)

    @staticmethod
    def fit_kwargs():
        return dict(epochs=3, batch_size=4, optimizer={"name": "adam", "learning_rate": 0.01},
                    schedule={"name": "step", "step_size": 4, "gamma": 0.5}, validation_split=0.2,
                    early_stopping={"patience": 5}, verbose=0)

    def check_model(self, path):
        net = dp.load(path)
        assert np.all(np.isfinite(net.params)), "a model loaded with non-finite parameters"
        with np.errstate(all="ignore"):  # finite but huge weights may overflow: not the loader's business
            net.predict(self.X[:2])

    def check_checkpoint(self, path):
        tensors, _, _ = load_checkpoint(path)
        assert np.all(np.isfinite(tensors["params"])), "a checkpoint loaded with non-finite parameters"
        net = self.network()
        try:
            net.fit(self.X, self.y, **self.fit_kwargs(), resume_from=path,
                    callbacks=[dp.LambdaCallback(on_train_begin=_raise_restored)])
        except _Restored:
            pass
        assert np.all(np.isfinite(net.params))


def dp_data():
    from deltaprop import data

    return data


def _raise_restored(run):
    raise _Restored


class _SigintAt(dp.Callback):
    """Ctrl-C (a real SIGINT to this process) after step ``step``."""

    def __init__(self, step):
        self.step = step

    def on_batch_end(self, run, batch, logs):
        if run.step == self.step:
            signal.raise_signal(signal.SIGINT)


# ------------------------------------------------------------------ mutations
def _split(data):
    """``(header dict, body bytes)`` of a valid safetensors file."""
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8:8 + n]), data[8 + n:]


def _join(header, body, pad=True):
    raw = json.dumps(header).encode()
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + body


def _paths(value, prefix=()):
    """Every path into a JSON value, as tuples of keys and indices."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:20]):
            out += _paths(v, prefix + (i,))
    return out


def _random_value(rng):
    if rng.random() < 0.1:
        depth = int(rng.integers(1, 5000))
        return json.loads("[" * depth + "]" * depth) if depth < 900 else "[" * depth  # deep nesting
    return _POOL[int(rng.integers(len(_POOL)))]


def _edit_json(value, rng):
    """One structural edit somewhere in ``value`` (in place where possible); returns the new value."""
    paths = _paths(value)
    path = paths[int(rng.integers(len(paths)))]
    if not path:
        return _random_value(rng)
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    op = rng.random()
    if op < 0.2 and isinstance(parent, dict):
        del parent[key]
    elif op < 0.35 and isinstance(parent, list):
        del parent[key]
    elif op < 0.5 and isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
        v = parent[key]
        parent[key] = [v + 1, v - 1, v * 2, -v, v + 2**32, v / 3][int(rng.integers(6))]
    elif op < 0.6 and isinstance(parent, dict):
        parent[f"{key}_extra"] = _random_value(rng)
    elif op < 0.7 and isinstance(parent[key], list) and parent[key]:
        parent[key].append(parent[key][0])
    else:
        parent[key] = _random_value(rng)
    return value


def _mutate_header(data, rng):
    header, body = _split(data)
    meta = header.get("__metadata__", {})
    roll = rng.random()
    if roll < 0.45 and meta:
        # an edit inside one of the JSON documents the metadata holds
        key = sorted(meta)[int(rng.integers(len(meta)))]
        try:
            doc = json.loads(meta[key])
        except ValueError:
            doc = meta[key]
        meta[key] = json.dumps(_edit_json(doc, rng))
        label = f"meta:{key}"
    elif roll < 0.55:
        # re-type a tensor: another dtype or shape (same byte count or not)
        names = [k for k in header if k != "__metadata__"]
        name = names[int(rng.integers(len(names)))]
        info = header[name]
        if rng.random() < 0.5:
            info["dtype"] = ["F16", "F32", "F64", "I64", "U8", "BF16", "BOOL"][int(rng.integers(7))]
        else:
            size = math.prod(info["shape"])
            info["shape"] = [[size], [1, size], [size, 1], [size + 1], [], [0], [2**62, 4]][int(rng.integers(7))]
        label = "header:tensor"
    elif roll < 0.6:
        header[f"extra.{int(rng.integers(100))}"] = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
        label = "header:extra"
    else:
        header = _edit_json(header, rng)
        label = "header:json"
    try:
        return label, _join(header, body, pad=rng.random() < 0.8)
    except (TypeError, ValueError, RecursionError):
        return label, data


def mutations(data, other, rng, n):
    """``n`` mutated versions of ``data``: ``(label, bytes)``; ``other`` is another valid file, for splices."""
    (hlen,) = struct.unpack("<Q", data[:8])
    for _ in range(n):
        roll = rng.random()
        if roll < 0.12:
            cut = int(rng.integers(0, len(data)))
            yield "truncate", data[:cut]
        elif roll < 0.40:
            b = bytearray(data)
            k = [1, 1, 1, 2, 3, 8][int(rng.integers(6))]
            region = len(data) if rng.random() < 0.5 else 8 + hlen  # half of them inside the header
            for pos in rng.integers(0, region, size=k):
                b[pos] ^= 1 << int(rng.integers(8))
            yield "bitflip", bytes(b)
        elif roll < 0.48:
            b = bytearray(data)
            pos = int(rng.integers(0, len(b)))
            b[pos] = int(rng.choice([0, 0xFF, 0x22, 0x7B, 0x7D, 0x5B, 0x2C, 0x39, 0x2D, 0x20]))
            yield "byte", bytes(b)
        elif roll < 0.53:
            n_new = int(rng.choice([0, 1, 7, hlen - 1, hlen + 1, hlen + 8, len(data), 2**24 + 1, 2**60, 2**64 - 1]))
            yield "length", struct.pack("<Q", max(0, min(n_new, 2**64 - 1))) + data[8:]
        elif roll < 0.90:
            yield _mutate_header(data, rng)
        elif roll < 0.95:
            a, b = int(rng.integers(0, len(data))), int(rng.integers(0, len(other)))
            yield "splice", data[:a] + other[b:]
        else:
            size = int(rng.integers(0, 512))
            junk = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
            if rng.random() < 0.5:
                junk = struct.pack("<Q", size) + junk
            yield "random", junk


def all_truncations(data):
    """Every proper prefix of ``data`` (for small files) or every length class of it."""
    if len(data) <= 4096:
        return range(len(data))
    head = set(range(64)) | set(range(len(data) - 64, len(data)))
    return sorted(head | set(range(0, len(data), 13)))


# ------------------------------------------------------------------ the runner
class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def run_fuzz(seeds, folder, cases, seed=0, per_case_seconds=5.0, trace_memory=True, progress=None):
    """Run ``cases`` mutations of each seed file (plus every truncation); return ``(stats, failures)``.

    ``stats`` counts outcomes per (file, mutation kind, outcome); ``failures``
    lists ``(file, case, label, description, bytes)`` for every case that
    ended in anything but a load or a ModelFileError.
    """
    path = os.path.join(os.fspath(folder), "case.safetensors")
    stats, failures = Counter(), []
    targets = [("model", seeds.model, seeds.checkpoint, seeds.check_model),
               ("checkpoint", seeds.checkpoint, seeds.model, seeds.check_checkpoint)]
    old = signal.signal(signal.SIGALRM, _alarm)
    if trace_memory:
        tracemalloc.start()
    try:
        for target, data, other, check in targets:
            rng = np.random.default_rng([seed, len(target)])
            cases_iter = [("truncate-all", data[:k]) for k in all_truncations(data)]
            cases_iter = _chain(cases_iter, mutations(data, other, rng, cases))
            for i, (label, blob) in enumerate(cases_iter):
                _replace(path, blob)
                if trace_memory:
                    tracemalloc.reset_peak()
                    base = tracemalloc.get_traced_memory()[0]
                signal.setitimer(signal.ITIMER_REAL, per_case_seconds)
                try:
                    check(path)
                    outcome = "ok"
                except ModelFileError as exc:
                    outcome = "error"
                    if path not in str(exc):
                        failures.append((target, i, label, f"message does not name the file: {exc}", blob))
                except _Hang:
                    outcome = "hang"
                    failures.append((target, i, label, f"no answer within {per_case_seconds} s", blob))
                except BaseException as exc:  # noqa: BLE001 - the point is to catch everything else
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    outcome = "crash"
                    failures.append((target, i, label, f"{type(exc).__name__}: {exc}", blob))
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                if trace_memory:
                    peak = tracemalloc.get_traced_memory()[1] - base
                    if peak > PEAK_LIMIT:
                        failures.append((target, i, label, f"allocated {peak} bytes", blob))
                stats[(target, label.split(":")[0], outcome)] += 1
                if progress is not None:
                    progress()
    finally:
        if trace_memory:
            tracemalloc.stop()
        signal.signal(signal.SIGALRM, old)
    return stats, failures


def _replace(path, blob):
    # unlink first: ext4 flushes a file truncated and rewritten in place on close (auto_da_alloc),
    # which would make every case wait for the disk
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    with open(path, "wb") as f:
        f.write(blob)


def _chain(first, second):
    yield from first
    yield from second


def summary(stats):
    """A small table: file, mutation kind, loads, ModelFileErrors, failures."""
    rows = {}
    for (target, kind, outcome), count in stats.items():
        row = rows.setdefault((target, kind), Counter())
        row[outcome] += count
    lines = [f"{'file':<11}{'mutation':<14}{'cases':>8}{'loaded':>9}{'rejected':>10}{'FAILED':>8}"]
    for (target, kind), row in sorted(rows.items()):
        total = sum(row.values())
        bad = total - row["ok"] - row["error"]
        lines.append(f"{target:<11}{kind:<14}{total:>8}{row['ok']:>9}{row['error']:>10}{bad:>8}")
    return "\n".join(lines)


# ------------------------------------------------------------------ the test
@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return Seeds(tmp_path_factory.mktemp("fuzz-seeds"))


def test_seed_files_load(seeds):
    seeds.check_model(seeds.model_path)
    seeds.check_checkpoint(seeds.checkpoint_path)


def test_fuzz_model_and_checkpoint_files(seeds, tmp_path):
    stats, failures = run_fuzz(seeds, tmp_path, cases=4000, seed=0)
    report = "\n".join(f"{t} case {i} ({label}): {what}" for t, i, label, what, _ in failures[:20])
    assert not failures, f"{len(failures)} cases failed:\n{report}\n{summary(stats)}"
    total = sum(stats.values())
    assert total >= 10000
    # Both outcomes occur for both files: the mutations reach past the first check.
    for target in ("model", "checkpoint"):
        loaded = sum(c for (t, _, o), c in stats.items() if t == target and o == "ok")
        rejected = sum(c for (t, _, o), c in stats.items() if t == target and o == "error")
        assert loaded > 50 and rejected > 1000, summary(stats)

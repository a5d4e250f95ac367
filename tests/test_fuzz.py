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

Beyond ``dp.load``, four more seed files are mutated the same way: a model
file as ``deltaprop train`` writes it (a classifier and a regressor, with
the task, history, test scores, names and target scaling the command line
stores) and a file as each estimator's ``save`` writes it. Every
``cli_every``-th model-file case also goes through the command line's
``info``, ``evaluate`` and ``predict`` in this process
(``deltaprop.cli.main`` with its output captured) and through
``DeltapropClassifier.load`` and ``DeltapropRegressor.load``; estimator
files go through their class's ``load`` every time. The command line must
end with status 0, 1 or 2, with one ``deltaprop: error:`` line when it fails
(never an "internal error", never an exception escaping ``main``) and never
print a prediction that is NaN or infinite; the estimators' ``load`` must
load or raise a :class:`deltaprop.DeltapropError`.

``benchmarks/fuzz_model_files.py`` runs the same engine with many more
cases (``--cases 200000``) and prints a summary.
"""

import contextlib
import io
import json
import math
import os
import re
import signal
import struct
import tracemalloc
from collections import Counter

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.checkpoint import load_checkpoint
from deltaprop.errors import DeltapropError, ModelFileError

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

        self.checkpoint_path = self._interrupted(self.network(), self.X, os.path.join(folder, "seed-ckpt"))
        with open(self.model_path, "rb") as f:
            self.model = f.read()
        with open(self.checkpoint_path, "rb") as f:
            self.checkpoint = f.read()
        self._cli_seeds(folder, scaler)
        self._estimator_seeds(folder)
        self._layer_seeds(folder)

    def _interrupted(self, net, X, ckdir):
        """The checkpoint a Ctrl-C after step 5 leaves in ``ckdir`` (mid-epoch)."""
        try:
            net.fit(X, self.y, **self.fit_kwargs(), callbacks=[_SigintAt(5)], checkpoint_dir=ckdir,
                    checkpoint_unit="step", checkpoint_every=1000)
        except KeyboardInterrupt:
            pass
        names = sorted(n for n in os.listdir(ckdir) if n.startswith("ckpt-"))
        return os.path.join(ckdir, names[-1])

    def _layer_seeds(self, folder):
        """A model file and a mid-epoch checkpoint of a network of every layer kind (running statistics too)."""
        self.Xc = self.X.copy()
        self.Xc[:, 0] = np.arange(len(self.X)) % 3  # column 0: category codes for the Embedding
        net = self.layer_network()
        net.fit(self.Xc, self.y, **self.fit_kwargs())
        self.layers_model_path = os.path.join(folder, "seed-layers.safetensors")
        dp.save(net, self.layers_model_path, classes=["neg", "pos"])
        self.layers_checkpoint_path = self._interrupted(self.layer_network(), self.Xc,
                                                        os.path.join(folder, "seed-layers-ckpt"))
        with open(self.layers_model_path, "rb") as f:
            self.layers_model = f.read()
        with open(self.layers_checkpoint_path, "rb") as f:
            self.layers_checkpoint = f.read()

    @staticmethod
    def layer_network():
        return dp.Network([dp.Embedding([(0, 3, 2)], n_in=3), dp.Dense(4, 4, bias=False),
                           dp.Residual([dp.BatchNorm(), dp.Dense(4, 4, activation="relu"), dp.Dense(4, 4),
                                        dp.Dropout(0.2)]),
                           dp.LayerNorm(), dp.Activation("tanh"), dp.Dense(4, 2, activation="softmax")],
                          dtype="float32", seed=8)

    def check_layers_model(self, path):
        net = dp.load(path)
        assert np.all(np.isfinite(net.params)) and np.all(np.isfinite(net.buffers)), "non-finite values loaded"
        with np.errstate(all="ignore"):
            net.predict(self.Xc[:2])

    def check_layers_checkpoint(self, path):
        self.check_checkpoint(path, self.layer_network(), self.Xc)

    def _cli_seeds(self, folder, scaler):
        """Model files as ``deltaprop train`` writes them, and a CSV for each to evaluate and predict."""
        self.cls_csv = os.path.join(folder, "seed-cls.csv")
        self.reg_csv = os.path.join(folder, "seed-reg.csv")
        labels = np.where(self.y == 1, "pos", "neg")
        t = self.X @ np.array([1.0, -2.0, 0.5]) + 3.0
        with open(self.cls_csv, "w") as f:
            f.write("a,b,c,label\n" + "".join(f"{x[0]!r},{x[1]!r},{x[2]!r},{c}\n" for x, c in zip(self.X, labels)))
        with open(self.reg_csv, "w") as f:
            f.write("a,b,c,t\n" + "".join(f"{x[0]!r},{x[1]!r},{x[2]!r},{v!r}\n" for x, v in zip(self.X, t)))
        history = [{"epoch": 1, "loss": 0.7, "lr": 0.001, "accuracy": 0.5, "val_loss": 0.69},
                   {"epoch": 2, "loss": 0.6, "lr": 0.0005, "accuracy": 0.6, "val_loss": 0.65}]
        config = {"data": "seed-cls.csv", "target": "label", "task": "classification", "hidden": [4],
                  "activation": ["leaky_relu"], "dropout": [0.25], "dtype": "float32", "optimizer": "adam",
                  "lr": 0.001, "schedule": "cosine", "epochs": 2, "batch_size": 4, "seed": 0, "test_split": 0.25,
                  "validation_split": 0.1, "scale": "standard", "out": "model.safetensors"}
        self.cli_classifier_path = os.path.join(folder, "seed-cli-classifier.safetensors")
        dp.save(self.network(), self.cli_classifier_path, preprocessing=scaler.state(), classes=["neg", "pos"],
                config=config,
                extra={"task": "classification", "history": history, "class_names": ["negative", "positive"],
                       "feature_names": ["a", "b", "c"], "target_name": "label",
                       "test": {"loss": 0.65, "samples": 8, "accuracy": 0.625}})
        reg = dp.Network([dp.Dense(3, 4, activation="tanh"), dp.Dense(4, 1, activation="identity")],
                         loss="mean_squared_error", dtype="float32", seed=4)
        target = dp_data().Scaler("standard").fit(t.reshape(-1, 1))
        tconfig, tarrays = target.state()
        self.cli_regressor_path = os.path.join(folder, "seed-cli-regressor.safetensors")
        dp.save(reg, self.cli_regressor_path, preprocessing=scaler.state(),
                config={**config, "data": "seed-reg.csv", "target": "t", "task": "regression"},
                extra={"task": "regression", "history": history, "feature_names": ["a", "b", "c"], "target_name": "t",
                       "target_scaling": {**tconfig, **{k: v.tolist() for k, v in tarrays.items()}},
                       "test": {"loss": 0.5, "samples": 8, "r2": 0.5, "rmse": 1.0, "mae": 0.8}})
        with open(self.cli_classifier_path, "rb") as f:
            self.cli_classifier = f.read()
        with open(self.cli_regressor_path, "rb") as f:
            self.cli_regressor = f.read()

    def _estimator_seeds(self, folder):
        """Files as DeltapropClassifier.save and DeltapropRegressor.save write them (built without fitting)."""
        from deltaprop.estimators import DeltapropClassifier, DeltapropRegressor
        from deltaprop.estimators._files import ESTIMATOR_KEY, to_json

        def record(cls, extra):
            params = {k: to_json(v) for k, v in cls(hidden_layer_sizes=(4,)).get_params(deep=False).items()}
            return params, {"format_version": 1, "estimator": cls.__name__, "params": params, "unsaved_params": [],
                            "n_features_in": 3, "feature_names_in": None, "loss_curve": [0.9, 0.7],
                            "validation_scores": None, "validation_loss_curve": None, **extra}

        self.estimator_classifier_path = os.path.join(folder, "seed-estimator-classifier.safetensors")
        net = dp.Network([dp.Dense(3, 4, activation="relu"), dp.Dense(4, 1, activation="sigmoid")],
                         loss="binary_crossentropy", dtype="float32", seed=5)
        params, rec = record(DeltapropClassifier, {"mode": "binary", "classes_dtype": "str",
                                                   "multilabel_dtype": None})
        dp.save(net, self.estimator_classifier_path, classes=["neg", "pos"], config=params,
                extra={ESTIMATOR_KEY: rec})
        self.estimator_regressor_path = os.path.join(folder, "seed-estimator-regressor.safetensors")
        net = dp.Network([dp.Dense(3, 4, activation="relu"), dp.Dense(4, 1, activation="identity")],
                         loss="mean_squared_error", dtype="float32", seed=6)
        params, rec = record(DeltapropRegressor, {"y_ndim": 1})
        dp.save(net, self.estimator_regressor_path, config=params, extra={ESTIMATOR_KEY: rec})
        with open(self.estimator_classifier_path, "rb") as f:
            self.estimator_classifier = f.read()
        with open(self.estimator_regressor_path, "rb") as f:
            self.estimator_regressor = f.read()

    def targets(self):
        """``(name, seed bytes, other bytes for splices, check, CSV for the command line or None)`` of each file."""
        return [
            ("model", self.model, self.checkpoint, self.check_model, self.cls_csv),
            ("checkpoint", self.checkpoint, self.model, self.check_checkpoint, None),
            ("cli-classifier", self.cli_classifier, self.cli_regressor, self.check_model, self.cls_csv),
            ("cli-regressor", self.cli_regressor, self.cli_classifier, self.check_model, self.reg_csv),
            ("estimator-classifier", self.estimator_classifier, self.estimator_regressor,
             self.check_estimator_classifier, self.cls_csv),
            ("estimator-regressor", self.estimator_regressor, self.estimator_classifier,
             self.check_estimator_regressor, self.reg_csv),
            ("model-layers", self.layers_model, self.model, self.check_layers_model, self.cls_csv),
            ("checkpoint-layers", self.layers_checkpoint, self.layers_model, self.check_layers_checkpoint, None),
        ]

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
        loaded = dp.load(path)  # a TabularModel for a file with a data contract or preprocessing, else the Network
        net = getattr(loaded, "network", loaded)
        assert np.all(np.isfinite(net.params)), "a model loaded with non-finite parameters"
        with np.errstate(all="ignore"):  # finite but huge weights may overflow: not the loader's business
            net.predict(self.X[:2])

    def check_estimator_classifier(self, path):
        from deltaprop.estimators import DeltapropClassifier

        self._check_estimator(DeltapropClassifier, path)

    def check_estimator_regressor(self, path):
        from deltaprop.estimators import DeltapropRegressor

        self._check_estimator(DeltapropRegressor, path)

    def _check_estimator(self, cls, path):
        est = cls.load(path)
        assert np.all(np.isfinite(est.network_.params)), "an estimator loaded with non-finite parameters"
        with np.errstate(all="ignore"):
            est.predict(self.X[:2])

    def check_checkpoint(self, path, net=None, X=None):
        tensors, _, _ = load_checkpoint(path)
        assert np.all(np.isfinite(tensors["params"])), "a checkpoint loaded with non-finite parameters"
        net = self.network() if net is None else net
        try:
            net.fit(self.X if X is None else X, self.y, **self.fit_kwargs(), resume_from=path,
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
class _Hang(BaseException):
    """Raised by the interval timer; a BaseException so that no ``except Exception`` (the command line's
    last-resort handler, say) can swallow it."""


def _alarm(signum, frame):
    raise _Hang


def cli_findings(path, csv):
    """Run ``info``, ``info --json`` and (with a CSV) ``evaluate`` and ``predict`` on ``path`` in this process.

    Returns ``(outcome, problems)``: ``outcome`` is ``"ok"`` when ``info``
    succeeded, ``"error"`` when it refused the file; ``problems`` lists what
    broke the command line's promises (an exit status other than 0, 1 and 2,
    an exception escaping ``main``, an internal error or a traceback, a
    failure that is not exactly one ``deltaprop: error:`` line, a NaN or
    infinite prediction printed).
    """
    from deltaprop.cli import main

    commands = [["info", path], ["info", path, "--json"]]
    if csv is not None:
        commands += [["evaluate", path, "--data", csv], ["predict", path, "--data", csv]]
    problems, statuses = [], []
    for argv in commands:
        out, err = io.StringIO(), io.StringIO()
        name = " ".join(a for a in argv if a not in (path, csv))
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                status = main(argv)
        except (_Hang, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001 - anything escaping main is a finding
            problems.append(f"{name}: {type(exc).__name__} escaped main: {str(exc)[:200]}")
            continue
        statuses.append(status)
        text = err.getvalue()
        lines = [line for line in text.splitlines() if line.strip()]
        if status not in (0, 1, 2):
            problems.append(f"{name}: exit status {status}: {' '.join(lines)[:200]}")
        elif "internal error" in text or "Traceback" in text:
            problems.append(f"{name}: {' '.join(lines)[:200]}")
        elif status and (len(lines) != 1 or not lines[0].startswith("deltaprop: error: ")):
            problems.append(f"{name}: exit {status} without exactly one error line: {text[:200]!r}")
        elif status == 0 and argv[0] == "predict" and re.search(r"\b(nan|inf)\b", out.getvalue(), re.IGNORECASE):
            problems.append(f"{name}: printed a prediction that is NaN or infinite")
    return ("ok" if statuses[:1] == [0] else "error"), problems


def estimator_findings(path):
    """``DeltapropClassifier.load`` and ``DeltapropRegressor.load`` of ``path``: ``(outcome, problems)``.

    Each must load or raise a :class:`deltaprop.DeltapropError`; ``outcome``
    is ``"ok"`` when one of them loaded the file.
    """
    from deltaprop.estimators import DeltapropClassifier, DeltapropRegressor

    problems, loaded = [], False
    for cls in (DeltapropClassifier, DeltapropRegressor):
        try:
            cls.load(path)
            loaded = True
        except DeltapropError:
            pass
        except (_Hang, KeyboardInterrupt):
            raise
        except BaseException as exc:  # noqa: BLE001
            problems.append(f"{cls.__name__}.load: {type(exc).__name__}: {str(exc)[:200]}")
    return ("ok" if loaded else "error"), problems


def run_fuzz(seeds, folder, cases, seed=0, per_case_seconds=5.0, trace_memory=True, progress=None, cli_every=20,
             targets=None):
    """Run ``cases`` mutations of each seed file (plus every truncation); return ``(stats, failures)``.

    ``stats`` counts outcomes per (file, mutation kind, outcome), and per
    (file, ``"cli"`` or ``"estimators"``, outcome) for the cases that also
    went through the command line and the estimators' ``load`` (every
    ``cli_every``-th case of a model file; 0 for none); ``failures`` lists
    ``(file, case, label, description, bytes)`` for every case that ended in
    anything but a load or the expected error, or broke a promise of the
    command line or the estimators. ``targets`` names the seed files to
    mutate (default: all of :meth:`Seeds.targets`).
    """
    path = os.path.join(os.fspath(folder), "case.safetensors")
    stats, failures = Counter(), []
    chosen = [t for t in seeds.targets() if targets is None or t[0] in targets]
    old = signal.signal(signal.SIGALRM, _alarm)
    try:
        if cli_every:  # the seeds themselves, and the command line's imports before memory is traced
            for target, data, _, _, csv in chosen:
                if target.startswith("checkpoint"):
                    continue
                _replace(path, data)
                for problem in cli_findings(path, csv)[1] + estimator_findings(path)[1]:
                    failures.append((target, -1, "seed", problem, data))
        if trace_memory:
            tracemalloc.start()
        for target, data, other, check, csv in chosen:
            rng = np.random.default_rng([seed, len(target)])
            cases_iter = [("truncate-all", data[:k]) for k in all_truncations(data)]
            cases_iter = _chain(cases_iter, mutations(data, other, rng, cases))
            # a checkpoint whose stored settings were mutated is refused as another run's ("cannot resume ...")
            allowed = DeltapropError if target.startswith(("estimator", "checkpoint")) else ModelFileError
            for i, (label, blob) in enumerate(cases_iter):
                _replace(path, blob)
                if trace_memory:
                    tracemalloc.reset_peak()
                    base = tracemalloc.get_traced_memory()[0]
                signal.setitimer(signal.ITIMER_REAL, per_case_seconds)
                try:
                    check(path)
                    outcome = "ok"
                except allowed as exc:
                    outcome = "error"
                    if path not in str(exc) and not str(exc).startswith("cannot resume "):
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
                stats[(target, label.split(":")[0], outcome)] += 1
                if cli_every and target != "checkpoint" and i % cli_every == 0:
                    _through_the_faces(stats, failures, target, i, label, blob, path, csv, per_case_seconds)
                if trace_memory:
                    peak = tracemalloc.get_traced_memory()[1] - base
                    if peak > PEAK_LIMIT:
                        failures.append((target, i, label, f"allocated {peak} bytes", blob))
                if progress is not None:
                    progress()
    finally:
        if trace_memory:
            tracemalloc.stop()
        signal.signal(signal.SIGALRM, old)
    return stats, failures


def _through_the_faces(stats, failures, target, i, label, blob, path, csv, seconds):
    """One case through the command line and the estimators' load; records stats and findings."""
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        for face, run in (("cli", lambda: cli_findings(path, csv)), ("estimators", lambda: estimator_findings(path))):
            outcome, problems = run()
            for problem in problems:
                failures.append((target, i, label, f"{face}: {problem}", blob))
            stats[(target, face, "crash" if problems else outcome)] += 1
    except _Hang:
        stats[(target, "cli", "hang")] += 1
        failures.append((target, i, label, f"command line or estimators: no answer within {seconds} s", blob))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


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
    lines = [f"{'file':<22}{'mutation':<14}{'cases':>8}{'loaded':>9}{'rejected':>10}{'FAILED':>8}"]
    for (target, kind), row in sorted(rows.items()):
        total = sum(row.values())
        bad = total - row["ok"] - row["error"]
        lines.append(f"{target:<22}{kind:<14}{total:>8}{row['ok']:>9}{row['error']:>10}{bad:>8}")
    return "\n".join(lines)


# ------------------------------------------------------------------ the test
@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return Seeds(tmp_path_factory.mktemp("fuzz-seeds"))


def test_seed_files_load(seeds):
    seeds.check_model(seeds.model_path)
    seeds.check_checkpoint(seeds.checkpoint_path)
    for path in (seeds.cli_classifier_path, seeds.cli_regressor_path):
        seeds.check_model(path)
    seeds.check_estimator_classifier(seeds.estimator_classifier_path)
    seeds.check_estimator_regressor(seeds.estimator_regressor_path)
    seeds.check_layers_model(seeds.layers_model_path)
    seeds.check_layers_checkpoint(seeds.layers_checkpoint_path)


@pytest.mark.parametrize("which", ["model", "cli_classifier", "cli_regressor", "estimator_classifier",
                                   "estimator_regressor"])
def test_seed_files_pass_the_command_line(seeds, which):
    csv = seeds.reg_csv if "regressor" in which else seeds.cls_csv
    outcome, problems = cli_findings(getattr(seeds, f"{which}_path"), csv)
    assert outcome == "ok" and not problems, problems


def test_fuzz_model_and_checkpoint_files(seeds, tmp_path):
    stats, failures = run_fuzz(seeds, tmp_path, cases=4000, seed=0, cli_every=0, targets=("model", "checkpoint"))
    report = "\n".join(f"{t} case {i} ({label}): {what}" for t, i, label, what, _ in failures[:20])
    assert not failures, f"{len(failures)} cases failed:\n{report}\n{summary(stats)}"
    total = sum(stats.values())
    assert total >= 10000
    # Both outcomes occur for both files: the mutations reach past the first check.
    for target in ("model", "checkpoint"):
        loaded = sum(c for (t, _, o), c in stats.items() if t == target and o == "ok")
        rejected = sum(c for (t, _, o), c in stats.items() if t == target and o == "error")
        assert loaded > 50 and rejected > 1000, summary(stats)


def test_fuzz_files_of_every_layer_kind(seeds, tmp_path):
    """Norms, running statistics, embedding tables and residual blocks: loaded whole or refused, never half."""
    targets = ("model-layers", "checkpoint-layers")
    stats, failures = run_fuzz(seeds, tmp_path, cases=1500, seed=2, cli_every=0, targets=targets)
    report = "\n".join(f"{t} case {i} ({label}): {what}" for t, i, label, what, _ in failures[:20])
    assert not failures, f"{len(failures)} cases failed:\n{report}\n{summary(stats)}"
    for target in targets:
        loaded = sum(c for (t, _, o), c in stats.items() if t == target and o == "ok")
        rejected = sum(c for (t, _, o), c in stats.items() if t == target and o == "error")
        assert loaded > 20 and rejected > 500, summary(stats)


def test_fuzz_through_the_command_line_and_the_estimators(seeds, tmp_path):
    """A small run of the campaign's command-line and estimator part (``make fuzz`` runs it at scale)."""
    targets = ("cli-classifier", "cli-regressor", "estimator-classifier", "estimator-regressor")
    stats, failures = run_fuzz(seeds, tmp_path, cases=300, seed=1, cli_every=40, targets=targets)
    report = "\n".join(f"{t} case {i} ({label}): {what}" for t, i, label, what, _ in failures[:20])
    assert not failures, f"{len(failures)} cases failed:\n{report}\n{summary(stats)}"
    for target in targets:
        faces = {face: sum(c for (t, f, _), c in stats.items() if t == target and f == face)
                 for face in ("cli", "estimators")}
        assert faces["cli"] >= 20 and faces["estimators"] >= 20, summary(stats)
        loaded = sum(c for (t, f, o), c in stats.items() if t == target and o == "ok" and f not in faces)
        assert loaded > 10, summary(stats)

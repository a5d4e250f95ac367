"""Train fixed-seed scenarios with whichever deltaprop is on PYTHONPATH; write digests of the results.

The worker behind ``benchmarks/same_weights.py`` (read that first). Run it by
hand as::

    PYTHONPATH=/path/to/checkout/src python benchmarks/_weights_scenarios.py \\
        --out result.json --work DIR [--only NAME...]          # train every scenario
    PYTHONPATH=/path/to/other/src python benchmarks/_weights_scenarios.py \\
        --load-from DIR/files --out loaded.json --work DIR2     # load another version's files
    python benchmarks/_weights_scenarios.py --list              # scenario names

``--out`` receives ``{"deltaprop_file": ..., "scenarios": {name: record}}``
where a record is ``{"params": sha256, "history": sha256}`` plus, where a
scenario has them, ``"outputs"`` (sha256 of predictions / evaluate results
/ loaded files), ``"checks"`` (booleans the scenario verified inside one
version, e.g. "resumed run == uninterrupted run"), ``"note"`` and
``"intentional_change": true``; or ``{"error": "..."}`` when the scenario
raised (the other scenarios still run).

- ``params``: SHA-256 of ``net.params.tobytes()`` (for an estimator,
  ``est.network_.params``) after training;
- ``history``: SHA-256 of ``json.dumps(rows, sort_keys=True)`` of the
  training history's per-epoch rows without their ``"time"`` entry (for an
  estimator: its curves and counters).

Only deltaprop's public API of commit 4037e5f is used (``dp.fit``,
``dp.evaluate``, ``dp.Network``, ``dp.Dense``, ``dp.save``/``dp.load``, the
optimizers and schedules, the estimators, ``python -m deltaprop train``,
``deltaprop.distributed.MPIComm``), except that the streaming threshold
``STREAM_BYTES`` is lowered on whichever deltaprop module defines or imports
it. The ``deltaprop`` imported is the one on PYTHONPATH and no other: any
other folder on ``sys.path`` that holds a ``deltaprop`` package (such as an
editable install of another checkout) is dropped before the import, and the
imported file is checked and written into the JSON.

Threads: BLAS, OpenMP and numba get ``--threads`` threads (default 1),
through the environment (set here before NumPy loads, inherited by the
command-line and MPI child processes) and threadpoolctl. The kernel backend
is the environment's ``DELTAPROP_KERNELS`` (``numpy`` or ``numba``).
"""

import argparse
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback

_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")

#: seconds one in-process scenario may take before it is recorded as an error
SCENARIO_TIMEOUT = 180
#: seconds a command-line or MPI child process may take
CHILD_TIMEOUT = 240


def _parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="write the digests here (JSON)")
    p.add_argument("--work", help="scratch folder (created); model files for other versions go to WORK/files")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these scenarios (a name or a prefix ending in *)")
    p.add_argument("--load-from", metavar="DIR", help="load the files another version wrote into DIR "
                   "(its WORK/files) instead of training the scenarios")
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/numba threads (default 1)")
    p.add_argument("--list", action="store_true", help="print the scenario names and exit")
    p.add_argument("--mpi-child", metavar="NAME", help=argparse.SUPPRESS)  # one rank of an MPI scenario
    return p.parse_args(argv)


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    for _var in _THREAD_VARS:  # before NumPy (and its BLAS) loads
        os.environ[_var] = str(ARGS.threads)


def _only_pythonpath_deltaprop():
    """Drop every sys.path entry outside PYTHONPATH that holds a ``deltaprop`` package; return PYTHONPATH's roots."""
    roots = [os.path.realpath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if not roots:
        raise SystemExit("set PYTHONPATH to the src folder of the deltaprop version to run")
    kept = []
    for entry in sys.path:
        real = os.path.realpath(entry or os.getcwd())
        if real not in roots and os.path.isdir(os.path.join(real, "deltaprop")):
            continue  # another checkout (e.g. the venv's editable install): never import from it
        kept.append(entry)
    sys.path[:] = kept
    return roots


_ROOTS = _only_pythonpath_deltaprop() if ARGS is not None and not ARGS.list else None

import numpy as np  # noqa: E402

if _ROOTS is not None:
    import deltaprop as dp  # noqa: E402

    _DP_FILE = os.path.realpath(dp.__file__)
    if not any(_DP_FILE.startswith(root + os.sep) for root in _ROOTS):
        raise SystemExit(f"imported {_DP_FILE}, which is not under PYTHONPATH={os.environ['PYTHONPATH']}")


# ---------------------------------------------------------------------------
# digests
# ---------------------------------------------------------------------------


def _sha(data):
    return hashlib.sha256(data).hexdigest()


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def params_digest(params):
    """SHA-256 of the flat parameter array's bytes."""
    return _sha(np.asarray(params).tobytes())


def history_rows(history):
    """A History (or list of dicts) as plain rows without their wall-clock "time"."""
    if hasattr(history, "to_list"):
        rows = history.to_list()
    elif hasattr(history, "rows"):
        rows = history.rows
    else:
        rows = list(history)
    return [{k: v for k, v in dict(row).items() if k != "time"} for row in rows]


def history_digest(history):
    return _sha(json.dumps(_jsonable(history_rows(history)), sort_keys=True).encode())


def outputs_digest(*items):
    """SHA-256 over arrays (dtype, shape, bytes) and JSON-able values, in order."""
    h = hashlib.sha256()
    for item in items:
        if isinstance(item, np.ndarray):
            h.update(f"{item.dtype.str}{item.shape}".encode())
            h.update(np.ascontiguousarray(item).tobytes())
        else:
            h.update(json.dumps(_jsonable(item), sort_keys=True).encode())
        h.update(b"|")
    return h.hexdigest()


def record(params, history, outputs=None, checks=None, note=None):
    rec = {"params": params_digest(params), "history": history_digest(history)}
    if outputs is not None:
        rec["outputs"] = outputs_digest(*outputs)
    if checks:
        rec["checks"] = {k: bool(v) for k, v in checks.items()}
    if note:
        rec["note"] = note
    return rec


# ---------------------------------------------------------------------------
# data: scikit-learn's bundled sets (small subsets) and seeded random arrays
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _bundled(name):
    from sklearn import datasets

    d = getattr(datasets, name)()
    return np.asarray(d.data, dtype=np.float64), np.asarray(d.target)


def _standardize(X):
    return (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-12)


def digits(n=360, start=0):
    """Digits, pixels scaled to [0, 1]; 10 classes."""
    X, y = _bundled("load_digits")
    return X[start:start + n] / 16.0, y[start:start + n].astype(np.int64)


def digits_val():
    return digits(120, start=1500)


def imbalanced_digits():
    """Digits with classes 0..4 kept whole and 5..9 thinned to a quarter (for class weights)."""
    X, y = digits(480)
    keep = (y < 5) | (np.arange(y.size) % 4 == 0)
    return X[keep], y[keep]


def iris():
    X, y = _bundled("load_iris")
    order = np.random.default_rng(0).permutation(y.size)  # the file is sorted by class
    return _standardize(X)[order], y[order].astype(np.int64)


def breast_cancer(n=300):
    X, y = _bundled("load_breast_cancer")
    return _standardize(X)[:n], y[:n].astype(np.int64)


def diabetes(n=300):
    X, y = _bundled("load_diabetes")
    return X[:n] / X[:n].std(axis=0), _standardize(y[:n].reshape(-1, 1))[:, 0]


def random_data(n=240, n_in=12, seed=0):
    return np.random.default_rng(seed).standard_normal((n, n_in))


def multilabel(n=240, n_in=12, n_labels=3):
    X = random_data(n, n_in, seed=1)
    W = np.random.default_rng(2).standard_normal((n_in, n_labels))
    return X, (X @ W > 0.3).astype(np.float64)


def multioutput(n=240, n_in=12, n_targets=3):
    X = random_data(n, n_in, seed=3)
    W = np.random.default_rng(4).standard_normal((n_in, n_targets))
    return X, np.tanh(X @ W) + 0.1 * np.random.default_rng(5).standard_normal((n, n_targets))


def weights(n, seed=7, zeros=True):
    w = np.random.default_rng(seed).uniform(0.2, 2.0, n)
    if zeros:
        w[::11] = 0.0
    return w


# ---------------------------------------------------------------------------
# networks and the common training call
# ---------------------------------------------------------------------------


def mlp(sizes, activation="relu", output="softmax", dropout=0.0, dtype="float32", seed=0, loss=None,
        initializer=None):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = i == len(sizes) - 2
        kwargs = {"activation": output if last else activation}
        if dropout and not last:
            kwargs["dropout"] = dropout
        if initializer is not None and not last:
            kwargs["initializer"] = initializer
        layers.append(dp.Dense(a, b, **kwargs))
    return dp.Network(layers, loss=loss, dtype=dtype, seed=seed)


def digits_net(**kwargs):
    kwargs.setdefault("seed", 1)
    return mlp([64, 32, 10], **kwargs)


def fit_record(net, X, y, probe=None, checks=None, note=None, **kwargs):
    """``dp.fit`` then the record: params, history, and predict/evaluate on a probe set as outputs."""
    kwargs.setdefault("verbose", 0)
    history = dp.fit(net, X, y, **kwargs)
    Xp, yp = (np.asarray(X[:64]), y[:64]) if probe is None else probe
    outputs = [net.predict(Xp), dp.evaluate(net, Xp, yp)]
    return record(net.params, history, outputs, checks, note)


# ---------------------------------------------------------------------------
# the scenario registry
# ---------------------------------------------------------------------------

SCENARIOS = {}


def scenario(name, intentional=False, group="core"):
    def register(fn):
        if name in SCENARIOS:
            raise RuntimeError(f"scenario {name!r} defined twice")
        SCENARIOS[name] = {"fn": fn, "intentional": intentional, "group": group}
        return fn

    return register


class Ctx:
    """What a scenario gets: its own scratch folder and the shared files folder."""

    def __init__(self, work, name):
        self.work = work
        self.name = name
        self.dir = os.path.join(work, "scenarios", name)
        self.files = os.path.join(work, "files")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        os.makedirs(self.files, exist_ok=True)


# ----------------------------------------------------------------- optimizers
OPTIMIZERS = {
    "sgd": lambda **kw: dp.SGD(learning_rate=0.05, **kw),
    "sgd_momentum": lambda **kw: dp.SGD(learning_rate=0.02, momentum=0.9, **kw),
    "sgd_nesterov": lambda **kw: dp.SGD(learning_rate=0.02, momentum=0.9, nesterov=True, **kw),
    "adagrad": lambda **kw: dp.AdaGrad(learning_rate=0.05, **kw),
    "rmsprop": lambda **kw: dp.RMSProp(learning_rate=0.002, **kw),
    "adam": lambda **kw: dp.Adam(learning_rate=0.003, **kw),
    "adamw": lambda **kw: dp.AdamW(learning_rate=0.003, **kw),
}
OPT_VARIANTS = {
    "plain": {},
    "wd": {"weight_decay": 0.005},
    "clip": {"clipnorm": 0.1},
    "wd_clip": {"weight_decay": 0.005, "clipnorm": 0.1},
}


def _optimizer_scenario(opt_name, variant, dtype):
    def run(ctx):
        kw = dict(OPT_VARIANTS[variant])
        if opt_name == "adamw" and "weight_decay" not in kw:
            kw["weight_decay"] = 0.0  # AdamW's default is 0.01: "plain" means none
        X, y = digits()
        net = digits_net(dtype=dtype, seed=2)
        return fit_record(net, X, y, epochs=3, batch_size=32, optimizer=OPTIMIZERS[opt_name](**kw))

    return run


for _opt in OPTIMIZERS:
    for _variant in OPT_VARIANTS:
        scenario(f"opt_{_opt}_{_variant}")(_optimizer_scenario(_opt, _variant, "float32"))
    scenario(f"opt_{_opt}_plain_float64")(_optimizer_scenario(_opt, "plain", "float64"))
    scenario(f"opt_{_opt}_wd_clip_float64")(_optimizer_scenario(_opt, "wd_clip", "float64"))
scenario("opt_adamw_default")(lambda ctx: fit_record(digits_net(seed=2), *digits(), epochs=3,
                                                     optimizer=dp.AdamW(learning_rate=0.003)))


@scenario("opt_by_name_with_overrides")
def _(ctx):
    X, y = digits()
    return fit_record(digits_net(seed=2), X, y, epochs=3, optimizer="adam", learning_rate=0.004,
                      weight_decay=0.001, clipnorm=0.2)


@scenario("opt_by_dict_sgd_nesterov")
def _(ctx):
    X, y = digits()
    return fit_record(digits_net(seed=2), X, y, epochs=3,
                      optimizer={"name": "sgd", "learning_rate": 0.03, "momentum": 0.8, "nesterov": True})


@scenario("opt_defaults_each")
def _(ctx):
    """Every optimizer with its default hyperparameters, one after the other on one network."""
    X, y = digits()
    net = digits_net(seed=3)
    rows = []
    for opt in (dp.SGD(), dp.AdaGrad(), dp.RMSProp(), dp.Adam(), dp.AdamW()):
        rows += history_rows(dp.fit(net, X, y, epochs=1, optimizer=opt, verbose=0))
    return record(net.params, rows)


@scenario("opt_instance_warm_across_fits")
def _(ctx):
    """One Adam instance reused by two fit calls keeps its moments (warm start)."""
    X, y = digits()
    net = digits_net(seed=4)
    opt = dp.Adam(learning_rate=0.003)
    h1 = dp.fit(net, X, y, epochs=2, optimizer=opt, verbose=0)
    h2 = dp.fit(net, X, y, epochs=2, optimizer=opt, verbose=0)
    return record(net.params, history_rows(h1) + history_rows(h2))


# ------------------------------------------------------------------ schedules
SCHEDULES = {
    "none": lambda: None,
    "constant": lambda: dp.Constant(),
    "step": lambda: dp.StepDecay(step_size=10, gamma=0.5),
    "step_per_epoch": lambda: dp.StepDecay(step_size=1, gamma=0.5, per_epoch=True),
    "exponential": lambda: dp.ExponentialDecay(gamma=0.95, decay_steps=2),
    "exponential_per_epoch": lambda: dp.ExponentialDecay(gamma=0.7, decay_steps=1, per_epoch=True),
    "cosine_total_steps": lambda: dp.CosineDecay(total_steps=30, min_lr=0.001),
    "cosine_whole_run": lambda: dp.CosineDecay(),
    "cosine_whole_run_min_lr": lambda: dp.CosineDecay(min_lr=0.002),
    "cosine_per_epoch": lambda: dp.CosineDecay(total_steps=3, per_epoch=True),
    "warmup": lambda: dp.LinearWarmup(warmup_steps=10),
    "warmup_cosine": lambda: dp.LinearWarmup(warmup_steps=10, after=dp.CosineDecay(total_steps=30)),
    "warmup_cosine_whole_run": lambda: dp.LinearWarmup(warmup_steps=10, after=dp.CosineDecay()),
    "warmup_per_epoch": lambda: dp.LinearWarmup(warmup_steps=1, per_epoch=True,
                                                after=dp.StepDecay(step_size=1, gamma=0.5, per_epoch=True)),
    "by_name_cosine": lambda: "cosine",
    "by_dict_step": lambda: {"name": "step", "step_size": 7, "gamma": 0.3},
    "by_dict_warmup": lambda: {"name": "warmup", "warmup_steps": 5},
    "callable": lambda: (lambda step, base_lr: base_lr / (1.0 + 0.05 * step)),
}


def _schedule_scenario(sched_name, opt):
    def run(ctx):
        X, y = digits()
        optimizer = dp.SGD(learning_rate=0.05, momentum=0.9) if opt == "sgd" else dp.Adam(learning_rate=0.004)
        return fit_record(digits_net(seed=5), X, y, epochs=4, batch_size=32, optimizer=optimizer,
                          schedule=SCHEDULES[sched_name]())

    return run


#: a cosine after a warm-up, sized by the run: at 4037e5f fit told only a top-level cosine the
#: run's length, so this one stayed constant after the warm-up; since the architecture change
#: Schedule.bind tells the wrapped cosine too (the rest of the run), and it decays as asked
CHANGED_ON_PURPOSE = {"warmup_cosine_whole_run"}

for _sched in SCHEDULES:
    scenario(f"sched_{_sched}", intentional=_sched in CHANGED_ON_PURPOSE)(_schedule_scenario(_sched, "sgd"))
for _sched in ("cosine_whole_run", "warmup_cosine", "step_per_epoch"):
    scenario(f"sched_{_sched}_adam")(_schedule_scenario(_sched, "adam"))


# ------------------------------------------------ network and data options
@scenario("dtype_float32")
def _(ctx):
    return fit_record(digits_net(seed=6), *digits(), epochs=3, optimizer=dp.Adam(learning_rate=0.003))


@scenario("dtype_float64")
def _(ctx):
    return fit_record(digits_net(seed=6, dtype="float64"), *digits(), epochs=3, optimizer=dp.Adam(learning_rate=0.003))


@scenario("dtype_float32_input_float32")
def _(ctx):
    X, y = digits()
    return fit_record(digits_net(seed=6), X.astype(np.float32), y, epochs=3)


@scenario("dropout_one_layer")
def _(ctx):
    return fit_record(mlp([64, 64, 10], dropout=0.3, seed=7), *digits(), epochs=3,
                      optimizer=dp.Adam(learning_rate=0.003))


@scenario("dropout_two_layers_tanh")
def _(ctx):
    X, y = digits()
    net = dp.Network([dp.Dense(64, 48, activation="tanh", dropout=0.2),
                      dp.Dense(48, 24, activation="relu", dropout=0.4),
                      dp.Dense(24, 10, activation="softmax")], seed=8)
    return fit_record(net, X, y, epochs=3, optimizer=dp.SGD(learning_rate=0.05, momentum=0.9))


@scenario("dropout_float64_validation")
def _(ctx):
    return fit_record(mlp([64, 40, 10], dropout=0.25, dtype="float64", seed=9), *digits(), epochs=3,
                      validation_data=digits_val())


for _act in ("relu", "leaky_relu", "elu", "gelu", "tanh", "sigmoid", "softplus", "identity"):
    scenario(f"activation_{_act}")(
        (lambda act: lambda ctx: fit_record(mlp([64, 24, 10], activation=act, seed=10), *digits(), epochs=2))(_act))


@scenario("activation_config_dicts")
def _(ctx):
    X, y = digits()
    net = dp.Network([dp.Dense(64, 24, activation={"name": "leaky_relu", "alpha": 0.2}),
                      dp.Dense(24, 16, activation={"name": "elu", "alpha": 0.5}),
                      dp.Dense(16, 10, activation="softmax")], seed=10)
    return fit_record(net, X, y, epochs=2)


for _init in ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal"):
    scenario(f"initializer_{_init}")(
        (lambda init: lambda ctx: fit_record(mlp([64, 24, 10], initializer=init, seed=11), *digits(), epochs=2))(_init))


@scenario("network_seed_generator")
def _(ctx):
    net = digits_net(seed=np.random.default_rng(12))
    return fit_record(net, *digits(), epochs=2)


@scenario("network_fit_method")
def _(ctx):
    X, y = digits()
    net = digits_net(seed=13)
    history = net.fit(X, y, epochs=2, batch_size=16, verbose=0)
    return record(net.params, history, [net.predict(X[:64]), net.evaluate(X[:64], y[:64])])


@scenario("network_from_config")
def _(ctx):
    net = dp.Network.from_config(digits_net(seed=14, dropout=0.1).get_config(), seed=15)
    return fit_record(net, *digits(), epochs=2)


@scenario("network_loss_and_gradients")
def _(ctx):
    X, y = digits(100)
    net = digits_net(seed=16, dropout=0.2)
    loss = net.loss_and_gradients(X, y, sample_weight=weights(100), training=False)
    return record(net.grads, [], [np.asarray(loss)])


@scenario("batch_size_1")
def _(ctx):
    X, y = digits(120)
    return fit_record(digits_net(seed=17), X, y, epochs=2, batch_size=1, optimizer=dp.Adam(learning_rate=0.001))


@scenario("batch_size_uneven")
def _(ctx):
    return fit_record(digits_net(seed=17), *digits(), epochs=3, batch_size=7)


@scenario("batch_size_over_n")
def _(ctx):
    return fit_record(digits_net(seed=17), *digits(100), epochs=5, batch_size=1000,
                      optimizer=dp.Adam(learning_rate=0.01))


@scenario("shuffle_false")
def _(ctx):
    return fit_record(digits_net(seed=18), *digits(), epochs=3, shuffle=False)


@scenario("metrics_classification")
def _(ctx):
    return fit_record(digits_net(seed=19), *digits(), epochs=2, metrics=["accuracy", "top3"],
                      validation_data=digits_val())


@scenario("metrics_regression")
def _(ctx):
    X, y = diabetes()
    return fit_record(mlp([10, 16, 1], output="identity", seed=19), X, y, epochs=3, metrics=["mse", "mae", "r2"],
                      validation_split=0.2)


# ------------------------------------------------------------ sample weights
@scenario("sample_weight")
def _(ctx):
    X, y = digits()
    return fit_record(digits_net(seed=20), X, y, epochs=3, sample_weight=weights(len(y)))


@scenario("sample_weight_zero_batches")
def _(ctx):
    X, y = digits()
    w = weights(len(y), zeros=False)
    w[:40] = 0.0  # with shuffle=False and batches of 20, the first two batches carry no weight
    return fit_record(digits_net(seed=20), X, y, epochs=2, batch_size=20, shuffle=False, sample_weight=w)


@scenario("sample_weight_regression_float64")
def _(ctx):
    X, y = diabetes()
    net = mlp([10, 16, 1], output="identity", dtype="float64", seed=21)
    return fit_record(net, X, y, epochs=3, sample_weight=weights(len(y), seed=8))


@scenario("class_weight_dict")
def _(ctx):
    X, y = imbalanced_digits()
    return fit_record(digits_net(seed=22), X, y, epochs=3, class_weight={0: 2.0, 3: 0.5, 7: 3.0})


@scenario("class_weight_balanced")
def _(ctx):
    X, y = imbalanced_digits()
    return fit_record(digits_net(seed=22), X, y, epochs=3, class_weight="balanced")


@scenario("class_weight_balanced_binary")
def _(ctx):
    X, y = breast_cancer()
    return fit_record(mlp([30, 16, 1], output="sigmoid", seed=22), X, y, epochs=3, class_weight="balanced")


@scenario("class_weight_dict_with_sample_weight")
def _(ctx):
    X, y = imbalanced_digits()
    return fit_record(digits_net(seed=22), X, y, epochs=3, class_weight={1: 2.0, 8: 0.25},
                      sample_weight=weights(len(y)))


@scenario("class_weight_balanced_with_sample_weight", intentional=True)
def _(ctx):
    """The rule changes on purpose: class counts become weighted by sample_weight (scikit-learn's)."""
    X, y = imbalanced_digits()
    return fit_record(digits_net(seed=22), X, y, epochs=3, class_weight="balanced",
                      sample_weight=weights(len(y), zeros=False))


# ---------------------------------------------------------------- validation
@scenario("validation_split")
def _(ctx):
    return fit_record(digits_net(seed=23), *digits(), epochs=3, validation_split=0.2)


@scenario("validation_split_with_sample_weight")
def _(ctx):
    X, y = digits()
    return fit_record(digits_net(seed=23), X, y, epochs=3, validation_split=0.25, sample_weight=weights(len(y)))


@scenario("validation_data")
def _(ctx):
    return fit_record(digits_net(seed=23), *digits(), epochs=3, validation_data=digits_val())


@scenario("validation_data_weighted")
def _(ctx):
    Xv, yv = digits_val()
    return fit_record(digits_net(seed=23), *digits(), epochs=3, validation_data=(Xv, yv, weights(len(yv), seed=9)))


# ------------------------------------------------------------ early stopping
def _early(ctx, early_stopping, **kwargs):
    X, y = iris()
    net = mlp([4, 32, 3], seed=24)
    history = dp.fit(net, X, y, epochs=80, batch_size=16, optimizer=dp.Adam(learning_rate=0.05),
                     early_stopping=early_stopping, verbose=0, **kwargs)
    note = f"ran {len(history)} of 80 epochs"
    return record(net.params, history, [net.predict(X)], {"stopped early": len(history) < 80}, note)


scenario("early_stopping_true_val_split")(lambda ctx: _early(ctx, True, validation_split=0.3))
scenario("early_stopping_dict_patience_2")(
    lambda ctx: _early(ctx, {"monitor": "val_loss", "patience": 2}, validation_split=0.3))
scenario("early_stopping_instance_accuracy")(
    lambda ctx: _early(ctx, dp.EarlyStopping(monitor="val_accuracy", patience=3), validation_split=0.3))
scenario("early_stopping_no_restore")(
    lambda ctx: _early(ctx, dp.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=False),
                       validation_split=0.3))
scenario("early_stopping_train_loss_min_delta")(
    lambda ctx: _early(ctx, dp.EarlyStopping(monitor="loss", patience=1, min_delta=0.01)))


# -------------------------------------------------------- losses and outputs
@scenario("loss_softmax_cce_labels")
def _(ctx):
    return fit_record(digits_net(seed=25, loss="categorical_crossentropy"), *digits(), epochs=3)


@scenario("loss_softmax_cce_onehot_soft")
def _(ctx):
    X, y = digits()
    Y = np.full((y.size, 10), 0.01)
    Y[np.arange(y.size), y] = 0.91  # probability rows (label smoothing)
    return fit_record(digits_net(seed=25), X, Y, epochs=3)


@scenario("loss_sigmoid_bce_single")
def _(ctx):
    X, y = breast_cancer()
    return fit_record(mlp([30, 16, 1], output="sigmoid", seed=26), X, y, epochs=3)


@scenario("loss_sigmoid_bce_multilabel")
def _(ctx):
    X, Y = multilabel()
    return fit_record(mlp([12, 16, 3], output="sigmoid", seed=26, loss="binary_crossentropy"), X, Y, epochs=3)


for _loss in ("mean_squared_error", "mean_absolute_error", "huber"):
    scenario(f"loss_identity_{_loss}")(
        (lambda loss: lambda ctx: fit_record(mlp([10, 16, 1], output="identity", seed=27, loss=loss),
                                             *diabetes(), epochs=3))(_loss))


@scenario("loss_identity_huber_delta_float64")
def _(ctx):
    net = mlp([10, 16, 1], output="identity", seed=27, loss={"name": "huber", "delta": 0.5}, dtype="float64")
    return fit_record(net, *diabetes(), epochs=3)


@scenario("loss_identity_mse_multioutput")
def _(ctx):
    X, Y = multioutput()
    return fit_record(mlp([12, 16, 3], output="identity", seed=27), X, Y, epochs=3)


@scenario("loss_tanh_mse")
def _(ctx):
    X, Y = multioutput()
    return fit_record(mlp([12, 16, 3], activation="tanh", output="tanh", seed=27, loss="mse"), X, np.tanh(Y), epochs=3)


@scenario("loss_hinge_binary")
def _(ctx):
    X, y = breast_cancer()
    return fit_record(mlp([30, 16, 1], output="identity", seed=28, loss="hinge"), X, y, epochs=3)


@scenario("loss_hinge_multiclass")
def _(ctx):
    X, y = iris()
    return fit_record(mlp([4, 16, 3], output="identity", seed=28, loss="hinge"), X, y, epochs=5, batch_size=16)


# ----------------------------------------------------------- save and load
@scenario("save_load_roundtrip")
def _(ctx):
    X, y = digits()
    net = digits_net(seed=29, dropout=0.1)
    history = dp.fit(net, X, y, epochs=2, verbose=0)
    path = os.path.join(ctx.dir, "model.safetensors")
    dp.save(net, path, classes=list(range(10)), config={"note": "same_weights"}, extra={"run": "roundtrip"})
    loaded = dp.load(path)
    same = loaded.params.tobytes() == net.params.tobytes()
    return record(loaded.params, history, [loaded.predict(X[:64])], {"loaded == trained": same})


@scenario("save_load_regression_float64")
def _(ctx):
    X, y = diabetes()
    net = mlp([10, 16, 1], output="identity", dtype="float64", seed=29, loss="huber")
    history = dp.fit(net, X, y, epochs=2, verbose=0)
    path = os.path.join(ctx.dir, "model.safetensors")
    dp.save(net, path)
    loaded = dp.load(path)
    h2 = dp.fit(loaded, X, y, epochs=1, verbose=0)  # a loaded network trains on
    return record(loaded.params, history_rows(history) + history_rows(h2), [loaded.predict(X[:64])])


# ------------------------------------------------------ checkpoint and resume
CKPT_EPOCHS = 3


def _ckpt_run(net_seed=31):
    """The checkpointed run's network, data and fit arguments (a fresh set per call)."""
    X, y = digits(300)
    net = digits_net(seed=net_seed, dropout=0.2)
    kwargs = dict(epochs=CKPT_EPOCHS, batch_size=32, optimizer=dp.Adam(learning_rate=0.003), schedule=dp.CosineDecay(),
                  validation_data=digits_val(), metrics=["accuracy"], verbose=0)
    return net, X, y, kwargs


_STEP = re.compile(r"s(\d+)\D*\.safetensors$")


def _checkpoint_files(folder):
    """(step, path) of the checkpoints in ``folder``, by step (from names like ckpt-e0001-s000000012.safetensors)."""
    found = []
    for name in os.listdir(folder):
        m = _STEP.search(name)
        if m and not name.startswith("."):
            found.append((int(m.group(1)), os.path.join(folder, name)))
    return sorted(found)


def _mid_epoch(folder, steps_per_epoch, after_epoch=1):
    """A checkpoint in the middle of an epoch after the first ``after_epoch`` epochs."""
    for step, path in _checkpoint_files(folder):
        if step > after_epoch * steps_per_epoch and step % steps_per_epoch:
            return step, path
    raise RuntimeError(f"no mid-epoch checkpoint in {folder}: {os.listdir(folder)}")


def _uninterrupted():
    net, X, y, kw = _ckpt_run()
    history = dp.fit(net, X, y, **kw)
    return net, history


@scenario("ckpt_uninterrupted")
def _(ctx):
    net, history = _uninterrupted()
    return record(net.params, history)


@scenario("ckpt_write_every_4_steps")
def _(ctx):
    net, X, y, kw = _ckpt_run()
    folder = os.path.join(ctx.dir, "ckpt")
    history = dp.fit(net, X, y, checkpoint_dir=folder, checkpoint_unit="step", checkpoint_every=4,
                     keep_checkpoints=100, **kw)
    ref, _ = _uninterrupted()
    same = ref.params.tobytes() == net.params.tobytes()
    return record(net.params, history, checks={"checkpointing changes nothing": same},
                  note=f"{len(_checkpoint_files(folder))} checkpoints")


@scenario("ckpt_resume_mid_epoch")
def _(ctx):
    net, X, y, kw = _ckpt_run()
    folder = os.path.join(ctx.dir, "ckpt")
    dp.fit(net, X, y, checkpoint_dir=folder, checkpoint_unit="step", checkpoint_every=4, keep_checkpoints=100, **kw)
    step, path = _mid_epoch(folder, -(-len(y) // kw["batch_size"]))
    net2, X, y, kw = _ckpt_run()
    history = dp.fit(net2, X, y, resume_from=path, **kw)
    ref, ref_history = _uninterrupted()
    return record(net2.params, history, checks={
        "resumed == uninterrupted (params)": ref.params.tobytes() == net2.params.tobytes(),
        "resumed == uninterrupted (history)": history_digest(ref_history) == history_digest(history),
    }, note=f"resumed at step {step}")


@scenario("ckpt_resume_folder_and_continue_writing")
def _(ctx):
    net, X, y, kw = _ckpt_run()
    folder = os.path.join(ctx.dir, "ckpt")
    dp.fit(net, X, y, checkpoint_dir=folder, checkpoint_unit="step", checkpoint_every=4, keep_checkpoints=100, **kw)
    step, path = _mid_epoch(folder, -(-len(y) // kw["batch_size"]))
    resume_dir = os.path.join(ctx.dir, "resume")
    os.makedirs(resume_dir)
    shutil.copy(path, resume_dir)
    net2, X, y, kw = _ckpt_run()
    history = dp.fit(net2, X, y, resume_from=resume_dir, checkpoint_dir=resume_dir, checkpoint_unit="step",
                     checkpoint_every=5, **kw)
    ref, _ = _uninterrupted()
    same = ref.params.tobytes() == net2.params.tobytes()
    return record(net2.params, history, checks={"resumed == uninterrupted": same},
                  note=f"resumed at step {step}")


class _Crash(Exception):
    pass


@scenario("ckpt_crash_then_resume")
def _(ctx):
    """A run killed at step 17 (an exception from a callback), resumed from its checkpoint folder."""
    net, X, y, kw = _ckpt_run()
    folder = os.path.join(ctx.dir, "ckpt")

    def crash(run, batch, logs):
        if run.step == 17:
            raise _Crash

    try:
        dp.fit(net, X, y, checkpoint_dir=folder, checkpoint_unit="step", checkpoint_every=1,
               callbacks=[dp.LambdaCallback(on_batch_end=crash)], **kw)
        raise RuntimeError("the crash callback did not fire")
    except _Crash:
        pass
    net2, X, y, kw = _ckpt_run()
    history = dp.fit(net2, X, y, resume_from=folder, **kw)
    ref, _ = _uninterrupted()
    same = ref.params.tobytes() == net2.params.tobytes()
    return record(net2.params, history, checks={"resumed == uninterrupted": same})


@scenario("ckpt_resume_with_early_stopping_state")
def _(ctx):
    def run_args():
        X, y = iris()
        net = mlp([4, 32, 3], seed=32, dropout=0.1)
        return net, X, y, dict(epochs=30, batch_size=16, optimizer=dp.Adam(learning_rate=0.05), validation_split=0.3,
                               early_stopping={"monitor": "val_loss", "patience": 4}, verbose=0)

    net, X, y, kw = run_args()
    full = dp.fit(net, X, y, **kw)
    net1, X, y, kw = run_args()
    folder = os.path.join(ctx.dir, "ckpt")
    dp.fit(net1, X, y, checkpoint_dir=folder, checkpoint_every=1, keep_checkpoints=100, **kw)
    steps_per_epoch = -(-(len(y) - round(len(y) * 0.3)) // 16)
    middle = [p for s, p in _checkpoint_files(folder) if s == steps_per_epoch * max(1, len(full) // 2)]
    if not middle:
        raise RuntimeError(f"no checkpoint after epoch {len(full) // 2}: {os.listdir(folder)}")
    net2, X, y, kw = run_args()
    history = dp.fit(net2, X, y, resume_from=middle[0], **kw)
    same = net.params.tobytes() == net2.params.tobytes()
    return record(net2.params, history, checks={"resumed == uninterrupted": same},
                  note=f"ran {len(full)} of 30 epochs")


# ------------------------------------------------------------ memory mapping
@contextlib.contextmanager
def stream_bytes(value):
    """Set STREAM_BYTES on every deltaprop module that defines it or imported it (today: training)."""
    import importlib

    for name in ("deltaprop.training", "deltaprop.batches", "deltaprop.cli"):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    saved = []
    for name, module in list(sys.modules.items()):
        if (name == "deltaprop" or name.startswith("deltaprop.")) and hasattr(module, "STREAM_BYTES"):
            saved.append((module, module.STREAM_BYTES))
            module.STREAM_BYTES = value
    if not saved:
        raise RuntimeError("no deltaprop module has STREAM_BYTES")
    try:
        yield [m.__name__ for m, _ in saved]
    finally:
        for module, old in saved:
            module.STREAM_BYTES = old


def _memmap(ctx, X, name="X.npy"):
    path = os.path.join(ctx.dir, name)
    np.save(path, X)
    return np.load(path, mmap_mode="r")


@scenario("memmap_streamed")
def _(ctx):
    X = random_data(1500, 16, seed=40).astype(np.float32)  # 96 000 bytes
    y = (X[:, :3].sum(axis=1) > 0).astype(np.int64) + (X[:, 3] > 0.5)
    Xm = _memmap(ctx, X)
    with stream_bytes(32 * 1024) as modules:
        net = mlp([16, 24, 3], dropout=0.1, seed=41)
        rec = fit_record(net, Xm, y, probe=(X[:64], y[:64]), epochs=2, batch_size=50,
                         optimizer=dp.Adam(learning_rate=0.003))
    rec["note"] = f"STREAM_BYTES set on {', '.join(modules)}"
    return rec


@scenario("memmap_streamed_validation_split_float64")
def _(ctx):
    X = random_data(1200, 16, seed=42)  # float64 file, float32 network: converted batch by batch
    y = (X[:, 0] - X[:, 1] > 0).astype(np.int64)
    Xm = _memmap(ctx, X)
    with stream_bytes(16 * 1024):
        net = mlp([16, 24, 1], output="sigmoid", seed=43)
        return fit_record(net, Xm, y, probe=(X[:64], y[:64]), epochs=2, batch_size=64, validation_split=0.2,
                          sample_weight=weights(len(y)))


@scenario("memmap_small_in_memory")
def _(ctx):
    X = random_data(600, 16, seed=44).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0)
    Xm = _memmap(ctx, X)
    return fit_record(mlp([16, 24, 3], seed=45), Xm, y, probe=(X[:64], y[:64]), epochs=2)


# ---------------------------------------------------------------- estimators
def _estimators():
    from deltaprop.estimators import DeltapropClassifier, DeltapropRegressor

    return DeltapropClassifier, DeltapropRegressor


def est_record(est, X, extra_outputs=(), checks=None, note=None):
    curves = {key: getattr(est, key, None) for key in ("loss_curve_", "validation_loss_curve_", "validation_scores_",
                                                       "n_iter_", "t_", "best_loss_", "best_validation_score_",
                                                       "stopped_early_")}
    proba = est.predict_proba(X[:64]) if hasattr(est, "predict_proba") else None
    outputs = [np.asarray(est.predict(X[:64]))] + ([proba] if proba is not None else []) + list(extra_outputs)
    return record(est.network_.params, [curves], outputs, checks, note)


@scenario("est_classifier_fit", group="estimators")
def _(ctx):
    Clf, _ = _estimators()
    X, y = digits()
    est = Clf(hidden_layer_sizes=(32,), epochs=5, random_state=0).fit(X, y)
    return est_record(est, X)


@scenario("est_classifier_partial_fit_loop", group="estimators")
def _(ctx):
    Clf, _ = _estimators()
    X, y = digits()
    est = Clf(hidden_layer_sizes=(32, 16), random_state=1, batch_size=32)
    for _ in range(2):
        for lo in range(0, len(y), 120):
            est.partial_fit(X[lo:lo + 120], y[lo:lo + 120], classes=np.arange(10))
    return est_record(est, X)


@scenario("est_classifier_early_stopping", group="estimators")
def _(ctx):
    Clf, _ = _estimators()
    X, y = digits()
    est = Clf(hidden_layer_sizes=(32,), epochs=60, early_stopping=True, n_iter_no_change=3, learning_rate=0.01,
              random_state=2).fit(X, y)
    return est_record(est, X, note=f"ran {est.n_iter_} of 60 epochs")


@scenario("est_classifier_class_weight_balanced", group="estimators")
def _(ctx):
    Clf, _ = _estimators()
    X, y = imbalanced_digits()
    est = Clf(hidden_layer_sizes=(32,), epochs=5, class_weight="balanced", random_state=3).fit(X, y)
    return est_record(est, X)


@scenario("est_classifier_class_weight_balanced_sample_weight", group="estimators")
def _(ctx):
    Clf, _ = _estimators()
    X, y = imbalanced_digits()
    est = Clf(hidden_layer_sizes=(32,), epochs=5, class_weight="balanced", random_state=3)
    est.fit(X, y, sample_weight=weights(len(y), zeros=False))
    return est_record(est, X)


@scenario("est_classifier_warm_start", group="estimators")
def _(ctx):
    Clf, _ = _estimators()
    X, y = digits()
    est = Clf(hidden_layer_sizes=(32,), epochs=3, warm_start=True, random_state=4)
    est.fit(X, y)
    est.set_params(epochs=2)
    est.fit(X, y)
    return est_record(est, X)


@scenario("est_classifier_options", group="estimators")
def _(ctx):
    Clf, _ = _estimators()
    X, y = digits()
    est = Clf(hidden_layer_sizes=(32, 16), activation=["tanh", "relu"], dropout=[0.1, 0.2], batch_size=24,
              optimizer={"name": "sgd", "momentum": 0.9, "nesterov": True}, learning_rate=0.05,
              schedule={"name": "cosine"}, alpha=1e-3, epochs=4, random_state=5).fit(X, y)
    return est_record(est, X)


@scenario("est_classifier_binary_hinge", group="estimators")
def _(ctx):
    Clf, _ = _estimators()
    X, y = breast_cancer()
    est = Clf(hidden_layer_sizes=(16,), loss="hinge", epochs=4, random_state=6).fit(X, y)
    return est_record(est, X, [est.decision_function(X[:64])])


@scenario("est_classifier_multilabel", group="estimators")
def _(ctx):
    Clf, _ = _estimators()
    X, Y = multilabel()
    est = Clf(hidden_layer_sizes=(16,), epochs=4, random_state=7).fit(X, Y.astype(np.int64))
    return est_record(est, X)


@scenario("est_classifier_float32_schedule_adaptive", group="estimators")
def _(ctx):
    Clf, _ = _estimators()
    X, y = digits()
    est = Clf(hidden_layer_sizes=(32,), epochs=30, schedule="adaptive", n_iter_no_change=2, tol=0.05,
              random_state=8).fit(X.astype(np.float32), y)
    return est_record(est, X.astype(np.float32), note=f"ran {est.n_iter_} of 30 epochs")


@scenario("est_classifier_save_load", group="estimators")
def _(ctx):
    Clf, _ = _estimators()
    X, y = digits()
    est = Clf(hidden_layer_sizes=(32,), epochs=3, random_state=9).fit(X, y)
    path = os.path.join(ctx.dir, "clf.safetensors")
    est.save(path)
    loaded = Clf.load(path)
    same = loaded.network_.params.tobytes() == est.network_.params.tobytes()
    return est_record(loaded, X, checks={"loaded == trained": same})


@scenario("est_regressor_fit", group="estimators")
def _(ctx):
    _, Reg = _estimators()
    X, y = diabetes()
    est = Reg(hidden_layer_sizes=(16,), epochs=5, learning_rate=0.01, random_state=10).fit(X, y)
    return est_record(est, X)


@scenario("est_regressor_multioutput", group="estimators")
def _(ctx):
    _, Reg = _estimators()
    X, Y = multioutput()
    est = Reg(hidden_layer_sizes=(16,), epochs=5, learning_rate=0.01, random_state=11).fit(X, Y)
    return est_record(est, X)


@scenario("est_regressor_float32_huber_early_stopping", group="estimators")
def _(ctx):
    _, Reg = _estimators()
    X, y = diabetes()
    est = Reg(hidden_layer_sizes=(16,), loss="huber", epochs=40, early_stopping=True, n_iter_no_change=3,
              learning_rate=0.01, random_state=12).fit(X.astype(np.float32), y)
    return est_record(est, X.astype(np.float32), note=f"ran {est.n_iter_} of 40 epochs")


@scenario("est_regressor_partial_fit_sample_weight", group="estimators")
def _(ctx):
    _, Reg = _estimators()
    X, y = diabetes()
    est = Reg(hidden_layer_sizes=(16,), learning_rate=0.01, batch_size=20, random_state=13)
    w = weights(len(y), zeros=False)
    for lo in range(0, len(y), 100):
        est.partial_fit(X[lo:lo + 100], y[lo:lo + 100], sample_weight=w[lo:lo + 100])
    return est_record(est, X)


# ------------------------------------------------------------- command line
def _cli(ctx, *args):
    """``python -m deltaprop train ...`` in a child process (same interpreter, environment, PYTHONPATH)."""
    cmd = [sys.executable, "-m", "deltaprop", "train", *args]
    proc = subprocess.run(cmd, cwd=ctx.dir, capture_output=True, text=True, timeout=CHILD_TIMEOUT)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[1:])} exited with {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return proc


def _file_metadata(path):
    """The ``__metadata__`` of a safetensors file, read from its header (no deltaprop involved)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n)).get("__metadata__", {})


def _cli_record(path, checks=None):
    net = dp.load(path)
    history = json.loads(_file_metadata(path).get("history", "[]"))
    return record(net.params, history, [net.predict(np.zeros((2, net.n_in)))], checks)


@scenario("cli_train_iris", group="cli")
def _(ctx):
    out = os.path.join(ctx.dir, "m.safetensors")
    _cli(ctx, "--data", "iris", "--epochs", "3", "--quiet", "--plot", "none", "--out", out)
    return _cli_record(out)


@scenario("cli_train_diabetes_sgd", group="cli")
def _(ctx):
    out = os.path.join(ctx.dir, "m.safetensors")
    _cli(ctx, "--data", "diabetes", "--hidden", "16,8", "--optimizer", "sgd", "--momentum", "0.9", "--nesterov",
         "--lr", "0.01", "--schedule", "step", "--step-size", "1", "--dropout", "0.1", "--batch-size", "16",
         "--epochs", "3", "--dtype", "float64", "--quiet", "--plot", "none", "--out", out)
    return _cli_record(out)


@scenario("cli_checkpoint_resume", group="cli")
def _(ctx):
    ckpt = os.path.join(ctx.dir, "ckpt")
    common = ["--data", "iris", "--quiet", "--plot", "none", "--schedule", "constant", "--checkpoint-dir", ckpt]
    first = os.path.join(ctx.dir, "first.safetensors")
    resumed = os.path.join(ctx.dir, "resumed.safetensors")
    straight = os.path.join(ctx.dir, "straight.safetensors")
    _cli(ctx, *common, "--epochs", "2", "--out", first)
    _cli(ctx, *common, "--epochs", "4", "--resume", "--out", resumed)
    _cli(ctx, "--data", "iris", "--quiet", "--plot", "none", "--schedule", "constant", "--epochs", "4",
         "--out", straight)
    same = dp.load(resumed).params.tobytes() == dp.load(straight).params.tobytes()
    return _cli_record(resumed, {"resumed == uninterrupted": same})


# ---------------------------------------------------------------------- MPI
def _mpi_data():
    return digits(360)


def mpi_adam_dropout(comm):
    X, y = _mpi_data()
    net = mlp([64, 32, 16, 10], dropout=0.2, seed=51)
    history = dp.fit(net, X, y, epochs=3, batch_size=32, optimizer=dp.Adam(learning_rate=0.003), comm=comm, verbose=0)
    return net, history


def mpi_weighted_sgd_cosine(comm):
    X, y = _mpi_data()
    net = mlp([64, 24, 10], activation="tanh", dropout=0.1, seed=52)
    history = dp.fit(net, X, y, epochs=3, batch_size=40, optimizer=dp.SGD(learning_rate=0.05, momentum=0.9),
                     schedule=dp.CosineDecay(), sample_weight=weights(len(y)), validation_split=0.2, comm=comm,
                     verbose=0)
    return net, history


MPI_CONFIGS = {"mpi_adam_dropout": mpi_adam_dropout, "mpi_weighted_sgd_cosine": mpi_weighted_sgd_cosine}


def _mpiexec():
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.path.exists(here) else shutil.which("mpiexec")


def _mpi_scenario(config, n):
    def run(ctx):
        mpiexec = _mpiexec()
        if mpiexec is None:
            raise RuntimeError("mpiexec not found beside the interpreter or on PATH")
        out = os.path.join(ctx.dir, "rank0.json")
        cmd = [mpiexec, "-n", str(n), sys.executable, os.path.abspath(__file__), "--mpi-child", config,
               "--out", out, "--work", ctx.dir, "--threads", os.environ["OMP_NUM_THREADS"]]
        env = dict(os.environ, DELTAPROP_MPI_TIMEOUT="120")
        proc = subprocess.Popen(cmd, cwd=ctx.dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            text, _ = proc.communicate(timeout=CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise RuntimeError(f"mpiexec -n {n} timed out after {CHILD_TIMEOUT} s")
        if proc.returncode or not os.path.exists(out):
            raise RuntimeError(f"mpiexec -n {n} exited with {proc.returncode}: {text.strip()[-800:]}")
        with open(out) as f:
            return json.load(f)

    return run


for _config in MPI_CONFIGS:
    for _n in (2, 3):
        scenario(f"{_config}_n{_n}", group="mpi")(_mpi_scenario(_config, _n))


def mpi_child(name, out):
    from mpi4py import MPI

    from deltaprop.distributed import MPIComm

    comm = MPIComm()
    net, history = MPI_CONFIGS[name](comm)
    rec = record(net.params, history)
    every = MPI.COMM_WORLD.gather(rec["params"], root=0)
    if comm.rank == 0:
        rec["checks"] = {"all ranks hold the same weights": len(set(every)) == 1}
        rec["note"] = f"{comm.size} ranks"
        with open(out, "w") as f:
            json.dump(rec, f)


# ------------------------------------------------- files for another version
#: what the "files_write" scenario leaves in WORK/files for another version's --load-from
MODEL_FILES = ("model_digits_adam", "model_meta_classes", "model_regression_float64")


@scenario("files_write", group="files")
def _(ctx):
    """Write model files, a checkpoint folder and estimator files into WORK/files (see --load-from)."""
    X, y = digits()
    saved = []
    net = digits_net(seed=60, dropout=0.1)
    dp.fit(net, X, y, epochs=2, verbose=0)
    dp.save(net, os.path.join(ctx.files, "model_digits_adam.safetensors"))
    saved.append(net.params)
    dp.save(net, os.path.join(ctx.files, "model_meta_classes.safetensors"), classes=[f"d{i}" for i in range(10)],
            config={"written_by": "same_weights"}, extra={"purpose": "cross-version check"})
    Xr, yr = diabetes()
    reg = mlp([10, 16, 1], output="identity", dtype="float64", seed=61, loss={"name": "huber", "delta": 0.7})
    dp.fit(reg, Xr, yr, epochs=2, verbose=0)
    dp.save(reg, os.path.join(ctx.files, "model_regression_float64.safetensors"))
    saved.append(reg.params)

    folder = os.path.join(ctx.files, "ckpt")
    shutil.rmtree(folder, ignore_errors=True)
    cnet, Xc, yc, kw = _ckpt_run()
    dp.fit(cnet, Xc, yc, checkpoint_dir=folder, checkpoint_unit="step", checkpoint_every=4, keep_checkpoints=100, **kw)
    saved.append(cnet.params)
    return record(np.concatenate([np.asarray(p, dtype=np.float64) for p in saved]), [])


@scenario("files_write_estimators", group="files")
def _(ctx):
    """Write a classifier and a regressor file into WORK/files (see --load-from)."""
    Clf, Reg = _estimators()
    X, y = digits()
    Xr, yr = diabetes()
    clf = Clf(hidden_layer_sizes=(16,), epochs=3, random_state=62).fit(X, y)
    clf.save(os.path.join(ctx.files, "estimator_classifier.safetensors"))
    est = Reg(hidden_layer_sizes=(16,), epochs=3, random_state=63).fit(Xr, yr)
    est.save(os.path.join(ctx.files, "estimator_regressor.safetensors"))
    return record(np.concatenate([clf.network_.params.astype(np.float64), est.network_.params.astype(np.float64)]), [])


def load_scenarios(folder, results, save=lambda: None):
    """The --load-from mode: load another version's files with this version; one record per file.

    Files that are not there (the writing version failed to write them, or
    its run left out files_write / files_write_estimators) are skipped: the
    writer's own run reports that.
    """
    def attempt(name, fn):
        results[name] = _attempt(fn)
        save()

    def there(path):
        return os.path.exists(os.path.join(folder, path))

    for stem in [stem for stem in MODEL_FILES if there(f"{stem}.safetensors")]:
        def load_model(stem=stem):
            net = dp.load(os.path.join(folder, f"{stem}.safetensors"))
            probe = np.linspace(-1, 1, 4 * net.n_in).reshape(4, net.n_in)
            return record(net.params, [], [net.predict(probe), net.classes])
        attempt(f"load_{stem}", load_model)

    def resume():
        X, y = digits(300)
        step, path = _mid_epoch(os.path.join(folder, "ckpt"), -(-len(y) // 32))
        net, X, y, kw = _ckpt_run()
        history = dp.fit(net, X, y, resume_from=path, **kw)
        ref, ref_history = _uninterrupted()
        return record(net.params, history, checks={
            "resumed == uninterrupted run of this version": ref.params.tobytes() == net.params.tobytes()},
            note=f"resumed at step {step}")
    if there("ckpt"):
        attempt("load_ckpt_resume_mid_epoch", resume)

    for stem, index in [(stem, i) for i, stem in enumerate(("estimator_classifier", "estimator_regressor"))
                        if there(f"{stem}.safetensors")]:
        def load_est(stem=stem, index=index):
            cls = _estimators()[index]
            est = cls.load(os.path.join(folder, f"{stem}.safetensors"))
            probe = np.linspace(-1, 1, 4 * est.n_features_in_).reshape(4, est.n_features_in_)
            return est_record(est, probe)
        attempt(f"load_{stem}", load_est)


# ---------------------------------------------------------------------------
# running
# ---------------------------------------------------------------------------


def _alarm(signum, frame):
    raise TimeoutError(f"scenario took longer than {SCENARIO_TIMEOUT} s")


def _attempt(fn, *args):
    """Run one scenario; any exception becomes {"error": ...}."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SCENARIO_TIMEOUT)
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - recorded, and the next scenario runs
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
        return {"error": f"{type(exc).__name__}: {exc}"[:1500] + where}
    finally:
        signal.alarm(0)


def selected(only):
    names = list(SCENARIOS)
    if not only:
        return names
    chosen = []
    for pattern in only:
        hits = [n for n in names if n == pattern or (pattern.endswith("*") and n.startswith(pattern[:-1]))]
        if not hits:
            raise SystemExit(f"no scenario matches {pattern!r} (see --list)")
        chosen += [n for n in hits if n not in chosen]
    return chosen


def environment():
    info = {"deltaprop_file": _DP_FILE, "numpy": np.__version__, "python": sys.version.split()[0],
            "kernels": os.environ.get("DELTAPROP_KERNELS", "auto"), "threads": ARGS.threads}
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [{k: d.get(k) for k in ("internal_api", "version", "num_threads", "threading_layer")}
                        for d in threadpool_info()]
    except ImportError:
        info["blas"] = None
    return info


def kernels_in_use():
    """The backend the run actually used (a private helper: diagnostics only, None if it has moved)."""
    try:
        from deltaprop import _kernels

        return _kernels.backend()
    except Exception:  # noqa: BLE001
        return None


def main():
    args = ARGS
    if args.list:
        for name in selected(args.only):
            print(f"{name}{'  (intentional change)' if SCENARIOS[name]['intentional'] else ''}")
        return 0
    if args.mpi_child:
        mpi_child(args.mpi_child, args.out)
        return 0
    if not args.out or not args.work:
        raise SystemExit("--out and --work are required")
    os.makedirs(args.work, exist_ok=True)
    work = os.path.abspath(args.work)
    try:
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(limits=args.threads)
    except ImportError:
        limits = None
    t0 = time.perf_counter()
    result = environment()
    result["complete"] = False

    def save():
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1, sort_keys=True)
        os.replace(tmp, args.out)

    result["scenarios"] = {}
    save()  # the import worked: from here on the file exists, even if the process dies
    if args.load_from:
        result["loaded_from"] = os.path.abspath(args.load_from)
        load_scenarios(os.path.abspath(args.load_from), result["scenarios"], save)
    else:
        for name in selected(args.only):
            meta = SCENARIOS[name]
            t = time.perf_counter()
            rec = _attempt(lambda: meta["fn"](Ctx(work, name)))
            if meta["intentional"]:
                rec["intentional_change"] = True
            rec["seconds"] = round(time.perf_counter() - t, 3)
            result["scenarios"][name] = rec
            if "error" in rec:
                print(f"{name}: {rec['error']}", file=sys.stderr, flush=True)
            save()  # a process that dies later still leaves the scenarios before it
    result["kernels_in_use"] = kernels_in_use()
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["complete"] = True
    if limits is not None:
        limits.restore_original_limits()
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())

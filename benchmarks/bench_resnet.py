"""The tabular ResNet (Gorishniy et al., 2021): deltaprop's training step against PyTorch's, and its accuracy.

The network is ``FeedForward.from_sizes(sizes, norm="batch", residual=True)``:
a linear ``Dense`` stem, then per hidden width ``d`` a block
``x + Dropout(Dense(d, d)(Dense(d, d, ReLU, dropout)(BatchNorm(x))))``, then
the head ``BatchNorm → ReLU → Dense(d, n_out)``. The PyTorch twin is the same
stack of ``nn.Linear``, ``nn.BatchNorm1d``, ``nn.ReLU`` and ``nn.Dropout``
(``nn.Identity`` where the dropout is 0, as deltaprop then has no Dropout layer).

Part A, speed (``--speed``). Synthetic data: 20,480 rows of 100 standard
normal features, 10 classes (the argmax of a fixed random teacher network),
float32; 3 blocks of width 256, batch 256 (80 steps an epoch), Adam (learning
rate 1e-3), categorical cross-entropy; dropout 0 and 0.1 (both Dropouts of a
block). Every run is a fresh worker process; runs are interleaved (repetition
1 of every contender and configuration, then repetition 2, ...), the order of
the contenders rotated each repetition; ``--repeats`` (default 5)
repetitions. A run limits BLAS to ``--threads`` threads (default: the usable
CPUs; ``threadpoolctl`` for deltaprop, ``torch.set_num_threads`` for PyTorch),
trains a throwaway copy for 10 steps (thread pools, numba's kernels), then a
fresh network for ``--epochs`` epochs (default 3); its figure is the median
over those epochs of the epoch's time divided by its steps (milliseconds per
step). deltaprop's step is ``net.fit``'s (gather of the shuffled batch,
forward, backward, Adam, the running accuracy); PyTorch's the usual hand-written
loop (``randperm`` per epoch, ``X[idx]``, ``zero_grad(set_to_none=True)``,
forward, ``CrossEntropyLoss``, ``backward``, ``Adam.step``). Reported: medians
over the repetitions (min–max), the ratio PyTorch ÷ deltaprop of the medians
(above 1: deltaprop is faster; target ≥ 1.0), and the median of the ratios
of the two runs of one repetition (neighbours in time, so less exposed to
the machine's other load).

Where the time goes, in the same worker after its timed epochs:

* deltaprop: one more epoch with a timer around every layer's ``forward``
  and ``backward`` (the layers inside the Residual blocks included), the
  output layer's ``backward_delta``, ``Network.backward`` (what is left of it:
  the loss and the output delta), the optimizer's ``step``, the batch gather
  (``EpochBatches.batch``) and the accuracy metric (``Metric.update``). The
  times are exclusive (a Residual block's own time is its copy of the
  gradient and the skip additions, without its layers'); "rest" is the
  step's time less every timed part (the loop's Python, callbacks). A timer
  costs well under a microsecond against a step of milliseconds; the profiled
  step's time is shown beside the unprofiled one.
* PyTorch: one more epoch under ``torch.profiler`` (CPU), each operator's
  self time summed into the same kinds by its name; "rest" is the step's
  time less the operators' (Python, the autograd engine's bookkeeping).
* Alone, at the step's shapes (median of 200 calls): deltaprop's BatchNorm
  forward and backward (training mode), its Dropout layer, a ``Dense(256,
  256)`` with ReLU and a linear one, each beside its own matrix products
  alone, all of the step's matrix products in deltaprop's layout (the floor
  under the Dense layers; with their GFLOP/s and a 2048² float32 matmul peak),
  and Adam over all parameters; PyTorch's ``BatchNorm1d`` forward and backward.
* cProfile of one more deltaprop epoch (first repetition, dropout 0): the
  costliest functions by own time.

Noise: each run records the CPU cores that other work used while it ran (the
machine's busy time, steal included, less the worker's own CPU time); a run
during which that exceeded ``--max-other-cores`` (default 0.5) is run once
more and left out of the figures (kept in the JSON). Before each run the
benchmark waits up to ``--wait-idle`` seconds for an idle machine. deltaprop
is imported from a copy of ``src/`` taken at the start (its commit and a
hash are reported), so that edits made while the benchmark runs do not mix
into it (``--live-src`` turns that off).

Part B, accuracy (``--accuracy``). The real tables of ``tabular_data.py``;
for each seed ``S`` the split of ``bench_tabular.py`` (75/25, stratified for
classes), then 15 % of the training part held out for early stopping
(stratified, ``random_state=S``). The training part left is the one every
model learns from; each network: widths ``--width`` × ``--blocks`` (default
128 × 3), dropout 0.1, Adam (1e-3), batch 128 (127 where 128 would leave a
last batch of one row, which BatchNorm refuses), at most ``--max-epochs``
(100) epochs, early stopping on the validation loss with patience 10
(stopped after 11 epochs without improvement) and the best epoch's weights
and running statistics restored. Preprocessing, fitted on the training part:
numeric columns median-imputed and standardised, text columns
most-frequent-imputed and one-hot encoded (unknown categories ignored), as in
``bench_tabular.py``; a regression target standardised (R² is scored on the
original scale). Models, interleaved within a seed (order rotated):

1. ``MLP``: ``Network.from_sizes(sizes, dropout=0.1)`` on the one-hot matrix;
2. ``ResNet``: ``from_sizes(sizes, norm="batch", residual=True, dropout=0.1)``;
3. ``ResNet + embeddings``: the same with ``embed=[(column, n_categories + 1,
   --embed-dim)]``: the text columns given as integer codes (most-frequent
   imputed; one more code for a category unseen in training) instead of
   one-hot (only on tables with text columns);
4. ``torch ResNet``: the PyTorch twin on the one-hot matrix, the same
   recipe (its own default initialisation);
5. ``estimator ResNet`` and ``estimator ResNet + embeddings``:
   ``DeltapropClassifier``/``DeltapropRegressor`` with ``norm="batch",
   residual=True`` (and ``embed_categories=--embed-dim``), on the raw
   DataFrame of the training part with ``categorical_features=[]`` (the data
   contract's imputation, scaling and one-hot or codes, as in
   ``bench_tabular.py``), the same widths, dropout, batch and most epochs,
   ``early_stopping=True``, ``validation_fraction=0.15``,
   ``n_iter_no_change=10`` (the estimators' own rule on their own held-out
   part), their other defaults (``alpha=1e-4``, Glorot initialisation); the
   regressor in ``TransformedTargetRegressor(StandardScaler())``. These rows
   appear only when ``DeltapropClassifier().get_params()`` has ``norm``,
   ``residual`` (and ``embed_categories``); else the report says they were
   left out. Both embedding rows are skipped on tables without text columns
   (they would be the ResNet rows again);
6. with ``--same-init``: ``torch ResNet, deltaprop's initial weights``, the
   PyTorch twin with its parameters set to those of deltaprop's ResNet of the
   same seed before training (a bias deltaprop leaves out starts at 0): does
   a gap between rows 2 and 4 come from the initialisation (PyTorch's
   default ``kaiming_uniform_(a=√5)``, ``U(±1/√fan_in)``, against deltaprop's
   He uniform) or from the implementation?

Reported per table and model: accuracy or R² on the test part, mean ±
standard deviation (ddof 0) over the seeds; the median of the epochs trained
and of the fit time. BLAS threads: ``--accuracy-threads`` (default 1) for
every model.

    python benchmarks/bench_resnet.py [--speed] [--accuracy] [--quick] [--repeats 5] [--epochs 3]
        [--threads N] [--wait-idle 20] [--max-other-cores 0.5] [--seeds 5] [--datasets penguins ...]
        [--max-epochs 100] [--width 128] [--blocks 3] [--embed-dim 8] [--same-init] [--render]

Neither ``--speed`` nor ``--accuracy``: both. ``--quick``: one repetition of
two epochs, one seed (a smoke test, not a measurement). Writes
``benchmarks/results/resnet.md`` and ``resnet.json``; a run of one part keeps
the other part's last results in both files (each part says its own date
and command). Typical time on a quiet 2-core machine: part A about 5
minutes, part B about 10 (``--quick``: about 2 and 3).
"""

import argparse
import cProfile
import hashlib
import io
import json
import math
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
from peers import torch_epoch, torch_step  # noqa: E402
import numpy as np  # noqa: E402

SPEED = {"n_in": 100, "n_classes": 10, "n_train": 20480, "n_test": 4096, "width": 256, "blocks": 3,
         "batch_size": 256, "learning_rate": 1e-3, "warmup_steps": 10, "seed": 0}
DROPOUTS = (0.0, 0.1)
CONTENDERS = ("deltaprop", "torch")
TARGET_RATIO = 1.0
ACCURACY = {"dropout": 0.1, "learning_rate": 1e-3, "batch_size": 128, "patience": 10, "val_fraction": 0.15}
MODELS = ("MLP", "ResNet", "ResNet + embeddings", "torch ResNet", "estimator ResNet",
          "estimator ResNet + embeddings")
ESTIMATOR_MODELS = MODELS[4:]
#: with --same-init: PyTorch's ResNet started from deltaprop's initial weights (initialisation or implementation?)
SAME_INIT = "torch ResNet, deltaprop's initial weights"


def synthetic(n, n_in, n_classes, seed=0):
    """``n`` rows of standard normal features (float32) and the classes a fixed random teacher gives them."""
    rng = np.random.default_rng(seed)
    W1 = rng.standard_normal((n_in, 64)) / math.sqrt(n_in)
    W2 = rng.standard_normal((64, n_classes))
    X = rng.standard_normal((n, n_in)).astype(np.float32)
    y = np.argmax(np.tanh(X @ W1) @ W2 + 0.3 * rng.standard_normal((n, n_classes)), axis=1).astype(np.int64)
    return X, y


def speed_data(cfg):
    X, y = synthetic(cfg["n_train"] + cfg["n_test"], cfg["n_in"], cfg["n_classes"])
    n = cfg["n_train"]
    return X[:n], y[:n], X[n:], y[n:]


def per_call(fn, calls, setup=None):
    """Median seconds of ``fn()`` over ``calls`` calls (``setup()`` before each, untimed; one warm-up call)."""
    if setup:
        setup()
    fn()
    times = []
    for _ in range(calls):
        if setup:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def sizes_of(n_in, width, blocks, n_out):
    return [n_in] + [width] * blocks + [n_out]


# ====================================================== part A: deltaprop
class Timers:
    """Exclusive timers: ``wrap(key, fn)`` times ``fn``; a timed call inside another is taken out of the outer's."""

    def __init__(self):
        self.seconds, self.calls, self.stack = defaultdict(float), defaultdict(int), []

    def wrap(self, key, fn):
        def timed(*args, **kwargs):
            self.stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - t0
                inner = self.stack.pop()
                self.seconds[key] += elapsed - inner
                self.calls[key] += 1
                if self.stack:
                    self.stack[-1] += elapsed
        return timed


def layer_kinds(dp, net):
    """``(layer, kind)`` for every layer of the network, those inside the Residual blocks included."""
    out = []
    last = len(net.layers) - 1
    for i, layer in enumerate(net.layers):
        if i == 0 and isinstance(layer, dp.Dense):
            out.append((layer, "stem Dense (linear)"))
        elif i == last:
            out.append((layer, "output Dense (softmax)"))
        elif isinstance(layer, dp.Residual):
            out.append((layer, "Residual (gradient copy + skip adds)"))
            for inner in layer.layers:
                if isinstance(inner, dp.BatchNorm):
                    out.append((inner, "BatchNorm (in blocks)"))
                elif isinstance(inner, dp.Dense):
                    relu = getattr(inner.activation, "name", "") == "relu"
                    out.append((inner, "block Dense 1 (ReLU" + (", dropout)" if inner.dropout else ")")
                                if relu else "block Dense 2 (linear)"))
                elif isinstance(inner, dp.Dropout):
                    out.append((inner, "Dropout layer"))
                else:
                    out.append((inner, type(inner).__name__))
        elif isinstance(layer, dp.BatchNorm):
            out.append((layer, "BatchNorm (head)"))
        elif isinstance(layer, dp.Activation):
            out.append((layer, "Activation ReLU (head)"))
        else:
            out.append((layer, type(layer).__name__))
    return out


def profile_deltaprop(dp, net, X, y, cfg):
    """One more epoch of ``net.fit`` with timers around every part: ``{kind: {"fwd", "bwd"}}`` ms per step."""
    from deltaprop import batches, metrics

    timers = Timers()
    for layer, kind in layer_kinds(dp, net):
        layer.forward = timers.wrap((kind, "fwd"), layer.forward)
        layer.backward = timers.wrap((kind, "bwd"), layer.backward)
    out = net.layers[-1]
    out.backward_delta = timers.wrap(("output Dense (softmax)", "bwd"), out.backward_delta)
    net.forward = timers.wrap(("network loops (Python)", "fwd"), net.forward)
    net.backward = timers.wrap(("loss + output delta", "bwd"), net.backward)
    opt = dp.Adam(learning_rate=cfg["learning_rate"])
    opt.step = timers.wrap(("Adam", "step"), opt.step)
    saved = batches.EpochBatches.batch, metrics.Metric.update
    batches.EpochBatches.batch = timers.wrap(("batch gather", "step"), saved[0])
    metrics.Metric.update = timers.wrap(("accuracy metric", "step"), saved[1])
    stamps = []
    clock = dp.LambdaCallback(on_epoch_begin=lambda run, epoch: stamps.append(time.perf_counter()),
                              on_epoch_end=lambda run, epoch, logs: stamps.append(time.perf_counter()))
    try:
        net.fit(X, y, epochs=1, batch_size=cfg["batch_size"], optimizer=opt, verbose=0, callbacks=[clock])
    finally:
        batches.EpochBatches.batch, metrics.Metric.update = saved
        for attr in ("forward", "backward"):
            net.__dict__.pop(attr, None)
        for layer, _ in layer_kinds(dp, net):
            for attr in ("forward", "backward", "backward_delta"):
                layer.__dict__.pop(attr, None)
    steps = math.ceil(X.shape[0] / cfg["batch_size"])
    step = (stamps[1] - stamps[0]) / steps
    kinds = defaultdict(dict)
    for (kind, phase), seconds in timers.seconds.items():
        kinds[kind][phase] = seconds / steps * 1e3
    timed = sum(timers.seconds.values()) / steps
    kinds["rest (fit loop, callbacks)"]["step"] = (step - timed) * 1e3
    return {"step_ms": step * 1e3, "kinds": dict(kinds),
            "calls_per_step": {f"{k} {p}": c / steps for (k, p), c in timers.calls.items()}}


def isolated_deltaprop(dp, net, cfg, p, calls=200):
    """The step's parts alone, at its shapes (ms per call): BatchNorm, Dropout, the matrix products, Adam."""
    rng = np.random.default_rng(1)
    m, d = cfg["batch_size"], cfg["width"]
    f32 = np.float32

    def bound(layer, width):
        layer.build(width)
        layer.bind(np.zeros(layer.n_params, f32), np.zeros(layer.n_params, f32), np.zeros(layer.n_buffers, f32))
        layer.initialize(rng)
        return layer

    x = rng.standard_normal((m, d)).astype(f32)
    g = rng.standard_normal((m, d)).astype(f32)
    gbuf = np.empty_like(g)
    out = {}
    bn = bound(dp.BatchNorm(), d)
    out["BatchNorm forward"] = per_call(lambda: bn.forward(x, training=True), calls) * 1e3
    out["BatchNorm backward"] = per_call(lambda: bn.backward(gbuf), calls, setup=lambda: np.copyto(gbuf, g)) * 1e3
    if p:
        drop = bound(dp.Dropout(p), d)
        out["Dropout forward"] = per_call(lambda: drop.forward(x, training=True, rng=rng), calls) * 1e3
        out["Dropout backward"] = per_call(lambda: drop.backward(gbuf), calls, setup=lambda: np.copyto(gbuf, g)) * 1e3
    for label, act in (("ReLU", "relu"), ("linear", "identity")):
        dense = bound(dp.Dense(d, d, activation=act), d)
        z, gp = np.empty((m, d), f32), np.empty((m, d), f32)
        name = f"Dense {d}→{d} {label}"
        out[f"{name} forward"] = per_call(lambda: dense.forward(x, training=True, rng=rng), calls) * 1e3
        out[f"{name} backward"] = per_call(lambda: dense.backward(gbuf), calls, setup=lambda: np.copyto(gbuf, g)) * 1e3
        out[f"{name}: its forward matmul alone"] = per_call(lambda: np.matmul(x, dense.W.T, out=z), calls) * 1e3
        out[f"{name}: its 2 backward matmuls alone"] = per_call(
            lambda: (np.matmul(x.T, g, out=dense.grad_W.T), np.matmul(g, dense.W, out=gp)), calls) * 1e3
    products, flops = [], 0
    for i, layer in enumerate(dense_layers(dp, net)):
        A = rng.standard_normal((m, layer.n_in)).astype(f32)
        D = rng.standard_normal((m, layer.n_out)).astype(f32)
        Z, G = np.empty((m, layer.n_out), f32), np.empty((m, layer.n_in), f32)
        products += [lambda A=A, L=layer, Z=Z: np.matmul(A, L.W.T, out=Z),
                     lambda A=A, D=D, L=layer: np.matmul(A.T, D, out=L.grad_W.T)]
        if i:
            products.append(lambda D=D, L=layer, G=G: np.matmul(D, L.W, out=G))
        flops += (3 if i else 2) * 2 * m * layer.n_in * layer.n_out
    out["matrix products of the step"] = per_call(lambda: [f() for f in products], max(20, calls // 4)) * 1e3
    out["products GFLOP/s"] = flops / out["matrix products of the step"] / 1e6
    out["matmul peak GFLOP/s (2048², best of 3)"] = common.matmul_peak(n=2048, repeats=3)["gflops"]
    opt = dp.Adam(learning_rate=cfg["learning_rate"])
    params = net.params.copy()
    grads = rng.normal(scale=1e-3, size=params.size).astype(f32)
    opt.prepare(params, decay_mask=net.weight_mask())
    out["Adam over all parameters"] = per_call(lambda: opt.step(params, grads), calls) * 1e3
    return out


def dense_layers(dp, net):
    found = []
    for layer in net.layers:
        inner = layer.layers if isinstance(layer, dp.Residual) else [layer]
        found += [x for x in inner if isinstance(x, dp.Dense)]
    return found


def cprofile_top(fn, n=15):
    """The ``n`` functions of most own time under cProfile while ``fn()`` runs: ``[(name, calls, seconds)]``."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    rows = []
    for (file, line, name), (cc, nc, tt, ct, callers) in stats.stats.items():
        where = f"{Path(file).name}:{line}({name})" if file != "~" else name
        rows.append((where, nc, tt))
    rows.sort(key=lambda r: -r[2])
    return rows[:n], sum(r[2] for r in rows)


def run_deltaprop(job):
    """A deltaprop run: warm-up, timed epochs of ``net.fit``, test accuracy, then the profile and the parts alone."""
    common.ensure_src_on_path()
    import deltaprop as dp
    from deltaprop import _kernels

    cfg, p = job["config"], job["dropout"]
    if job["threads"]:
        from threadpoolctl import threadpool_limits

        threadpool_limits(job["threads"])
    X, y, X_test, y_test = speed_data(cfg)
    bs, lr = cfg["batch_size"], cfg["learning_rate"]
    sizes = sizes_of(cfg["n_in"], cfg["width"], cfg["blocks"], cfg["n_classes"])

    def make(seed):
        return dp.Network.from_sizes(sizes, loss="categorical_crossentropy", norm="batch", residual=True, dropout=p,
                                     dtype="float32", seed=seed)

    t0 = time.perf_counter()
    warm_n = bs * cfg["warmup_steps"]
    make(cfg["seed"] + 1).fit(X[:warm_n], y[:warm_n], epochs=1, batch_size=bs, optimizer=dp.Adam(learning_rate=lr),
                              verbose=0)
    warmup = time.perf_counter() - t0
    stamps = []
    clock = dp.LambdaCallback(on_epoch_begin=lambda run, epoch: stamps.append(time.perf_counter()),
                              on_epoch_end=lambda run, epoch, logs: stamps.append(time.perf_counter()))
    net = make(cfg["seed"])
    history = net.fit(X, y, epochs=job["epochs"], batch_size=bs, optimizer=dp.Adam(learning_rate=lr), verbose=0,
                      callbacks=[clock])
    steps = math.ceil(X.shape[0] / bs)
    step_ms = [(stamps[2 * e + 1] - stamps[2 * e]) / steps * 1e3 for e in range(job["epochs"])]
    acc = float(np.mean(net.predict(X_test).argmax(axis=1) == y_test))
    result = {"step_ms": step_ms, "warmup_seconds": warmup, "final_epoch_loss": float(history["loss"][-1]),
              "test_accuracy": acc, "n_params": int(net.n_params), "summary": net.summary(),
              "info": {"library": "deltaprop", "version": dp.__version__, "kernels": _kernels.backend()}}
    result["profile"] = profile_deltaprop(dp, net, X, y, cfg)
    result["isolated"] = isolated_deltaprop(dp, net, cfg, p)
    if job.get("cprofile"):
        top, total = cprofile_top(lambda: net.fit(X, y, epochs=1, batch_size=bs, optimizer=dp.Adam(learning_rate=lr),
                                                  verbose=0))
        result["cprofile"] = {"top": top, "total_seconds": total, "steps": steps}
    return result


# ========================================================= part A: PyTorch
def torch_resnet(torch, n_in, width, blocks, n_out, p):
    """PyTorch's twin of ``from_sizes([n_in] + [width] * blocks + [n_out], norm="batch", residual=True,
    dropout=p)``."""
    nn = torch.nn

    def drop():
        return nn.Dropout(p) if p else nn.Identity()

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = nn.Sequential(nn.BatchNorm1d(width), nn.Linear(width, width), nn.ReLU(), drop(),
                                   nn.Linear(width, width), drop())

        def forward(self, x):
            return x + self.f(x)

    return nn.Sequential(nn.Linear(n_in, width), *[Block() for _ in range(blocks)], nn.BatchNorm1d(width), nn.ReLU(),
                         nn.Linear(width, n_out))


#: PyTorch's top-level profiler events (a module's operator, a backward node, the optimizer) -> the report's kinds
TORCH_KINDS = (
    ("Linear (matmul + bias)", ("aten::linear", "AddmmBackward0", "MmBackward0", "TBackward0")),
    ("BatchNorm", ("aten::batch_norm", "NativeBatchNormBackward0", "aten::add_")),  # add_: num_batches_tracked
    ("dropout", ("aten::dropout", "MulBackward0", "NativeDropoutBackward0")),
    ("ReLU", ("aten::relu", "ReluBackward0")),
    ("residual adds", ("aten::add", "AddBackward0")),
    ("loss", ("aten::cross_entropy_loss", "NllLossBackward0", "LogSoftmaxBackward0", "aten::ones_like",
              "GraphRoot")),
    ("AccumulateGrad (into .grad)", ("AccumulateGrad",)),
    ("Adam (step + zero_grad)", ("Optimizer.",)),
    ("batch gather", ("aten::index", "aten::randperm", "aten::slice")),
)


def torch_kind(top):
    """``(kind, phase)`` of a top-level profiler event's name (phase: fwd, bwd or step)."""
    name = top.split(": ", 1)[1] if top.startswith("autograd::engine::evaluate_function: ") else top
    for kind, patterns in TORCH_KINDS:  # an operator's name matches exactly, any other name as a part
        if any(name == pat if pat.startswith("aten::") else pat in name for pat in patterns):
            phase = ("step" if kind in ("Adam (step + zero_grad)", "batch gather") else
                     "bwd" if top.startswith("autograd::engine") else "fwd")
            return kind, phase
    return "other operators", "bwd" if top.startswith("autograd::engine") else "fwd"


def torch_profile(prof, steps):
    """Each profiler event's self time, summed by the kind of its top-level ancestor: ms per step."""
    kinds, tops = defaultdict(lambda: defaultdict(float)), defaultdict(float)
    for ev in prof.events():
        top = ev
        while top.cpu_parent is not None:
            top = top.cpu_parent
        kind, phase = torch_kind(top.name)
        ms = ev.self_cpu_time_total / 1e3 / steps
        kinds[kind][phase] += ms
        tops[top.name] += ms
    return {k: dict(v) for k, v in kinds.items()}, sorted(tops.items(), key=lambda kv: -kv[1])[:20]


def run_torch(job):
    """A PyTorch run: warm-up, timed epochs of the hand-written loop, test accuracy, profile, BatchNorm1d alone."""
    import torch

    from peers import _torch_info

    cfg, p = job["config"], job["dropout"]
    if job["threads"]:
        torch.set_num_threads(job["threads"])
    torch.manual_seed(cfg["seed"])
    X, y, X_test, y_test = speed_data(cfg)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    n, bs = X.shape[0], cfg["batch_size"]
    lossf = torch.nn.CrossEntropyLoss()

    def make():
        model = torch_resnet(torch, cfg["n_in"], cfg["width"], cfg["blocks"], cfg["n_classes"], p)
        return model, torch.optim.Adam(model.parameters(), lr=cfg["learning_rate"])

    step = torch_step(lossf)

    gen = torch.Generator().manual_seed(cfg["seed"])

    def epoch(model, opt):
        return torch_epoch(torch, step, model, opt, Xt, yt, bs, gen)

    t0 = time.perf_counter()
    wm, wo = make()
    for _ in range(cfg["warmup_steps"]):
        idx = torch.randint(0, n, (bs,), generator=gen)
        step(wm, wo, Xt[idx], yt[idx])
    warmup = time.perf_counter() - t0
    model, opt = make()
    steps = math.ceil(n / bs)
    step_ms, loss = [], None
    for _ in range(job["epochs"]):
        seconds, loss = epoch(model, opt)
        step_ms.append(seconds / steps * 1e3)
    model.eval()
    with torch.no_grad():
        acc = float((model(torch.from_numpy(X_test)).argmax(dim=1).numpy() == y_test).mean())
    model.train()
    result = {"step_ms": step_ms, "warmup_seconds": warmup, "final_batch_loss": loss, "test_accuracy": acc,
              "n_params": sum(int(q.numel()) for q in model.parameters()), "info": _torch_info(torch)}
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        seconds, _ = epoch(model, opt)
    kinds, ops = torch_profile(prof, steps)
    step_profiled = seconds / steps * 1e3
    kinds["rest (Python outside operators)"] = {"step": step_profiled - sum(sum(v.values()) for v in kinds.values())}
    result["profile"] = {"step_ms": step_profiled, "kinds": dict(kinds), "top_ops": ops[:20]}
    result["isolated"] = isolated_torch(torch, cfg)
    return result


def isolated_torch(torch, cfg, calls=200):
    m, d = cfg["batch_size"], cfg["width"]
    bn = torch.nn.BatchNorm1d(d).train()
    x = torch.randn(m, d, requires_grad=True)
    g = torch.randn(m, d)
    state = {}

    def forward():
        state["y"] = bn(x)

    def clear():
        x.grad = bn.weight.grad = bn.bias.grad = None
        forward()

    out = {"BatchNorm1d forward": per_call(forward, calls) * 1e3,
           "BatchNorm1d backward": per_call(lambda: state["y"].backward(g), calls, setup=clear) * 1e3}
    return out


WORKERS = {"deltaprop": run_deltaprop, "torch": run_torch}


def worker_main(job):
    t0 = time.perf_counter()
    result = WORKERS[job["kind"]](job)
    result["worker_seconds"] = time.perf_counter() - t0
    result["blas"] = common.blas_info()
    result["env"] = {k: os.environ.get(k) for k in common.BLAS_ENV if os.environ.get(k) is not None}
    common.send_result(result)


# ==================================================== part A: orchestrator
def _busy_seconds():
    """CPU seconds the whole machine has spent busy (all but idle and iowait; steal included), None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _children_cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_job(job, args, timeout=900):
    """One worker process; besides its result: the idle fraction before it, and the CPU cores other work used
    while it ran (the machine's busy time less the worker's own CPU time, over its wall time)."""
    idle, waited = common.wait_for_idle(args.idle_threshold, args.wait_idle) if args.wait_idle > 0 else (None, 0.0)
    unset = () if args.keep_openblas_env else common.UNSET_BY_DEFAULT
    env = common.child_env(unset=unset, src=args.src)
    busy0, own0 = _busy_seconds(), _children_cpu_seconds()
    result, wall = common.run_worker(Path(__file__).resolve(), job, env, timeout)
    if "error" in result:
        return result
    busy1, own1 = _busy_seconds(), _children_cpu_seconds()
    others = None if busy0 is None or busy1 is None else max(0.0, (busy1 - busy0) - (own1 - own0)) / wall
    result.update(process_seconds=wall, idle_before=idle, waited_for_idle=waited, other_cores=others)
    return result


def speed_part(args):
    started = time.perf_counter()
    machine = common.machine_info()
    threads = args.threads or common.usable_cpus()
    print(f"# part A (speed) on {machine['cpu']} ({machine['usable_cpus']} CPUs), {threads} threads, "
          f"load {machine['load_average']}", flush=True)
    contenders = [c for c in CONTENDERS if c != "torch" or _importable("torch")]
    runs = {p: {c: [] for c in contenders} for p in DROPOUTS}
    reps = 0
    for rep in range(args.repeats):
        if rep and (time.perf_counter() - started) / 60 > args.budget_minutes:
            print(f"budget of {args.budget_minutes} min reached after {rep} repetitions", flush=True)
            break
        for p in DROPOUTS:
            order = contenders[rep % len(contenders):] + contenders[:rep % len(contenders)]
            for kind in order:
                job = {"kind": kind, "config": SPEED, "dropout": p, "epochs": args.epochs, "threads": threads,
                       "cprofile": rep == 0 and kind == "deltaprop"}
                for attempt in range(2):  # a run disturbed by other work is run once more; both are kept
                    r = run_job(job, args)
                    r["rep"] = rep
                    disturbed = (r.get("other_cores") or 0) > args.max_other_cores and "error" not in r
                    r["disturbed"] = disturbed and attempt == 0
                    runs[p][kind].append(r)
                    shown = (f"ERROR {r['error']}" if "error" in r else
                             f"{statistics.median(r['step_ms']):.2f} ms/step (epochs "
                             f"{', '.join(f'{x:.2f}' for x in r['step_ms'])}), profiled {r['profile']['step_ms']:.2f},"
                             f" test acc {r['test_accuracy']:.3f}, other work {r['other_cores']:.2f} cores"
                             + (" (disturbed: run again)" if r["disturbed"] else ""))
                    print(f"[rep {rep + 1}] dropout {p} {kind}: {shown}", flush=True)
                    if not r["disturbed"]:
                        break
        reps = rep + 1
    return analyse_speed(args, machine, threads, runs, reps, time.perf_counter() - started)


def _importable(module):
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0


def _median_dict(dicts):
    """Per key (and nested key) the median over the dicts that have it."""
    keys = list(dict.fromkeys(k for d in dicts for k in d))  # in order of first appearance
    out = {}
    for k in keys:
        vals = [d[k] for d in dicts if k in d]
        out[k] = _median_dict(vals) if isinstance(vals[0], dict) else float(np.median(vals))
    return out


def analyse_speed(args, machine, threads, runs, reps, seconds):
    configs = {}
    for p, by_kind in runs.items():
        rows = {}
        for kind, results in by_kind.items():
            ok = [r for r in results if "error" not in r and not r.get("disturbed")]
            row = {"step_ms": common.summary([statistics.median(r["step_ms"]) for r in ok]),
                   "profiled_step_ms": common.summary([r["profile"]["step_ms"] for r in ok]),
                   "test_accuracy": common.summary([r["test_accuracy"] for r in ok]),
                   "errors": [r["error"] for r in results if "error" in r]}
            if ok:
                row["profile"] = _median_dict([r["profile"]["kinds"] for r in ok])
                row["isolated"] = _median_dict([r["isolated"] for r in ok])
                row["info"], row["n_params"] = ok[-1]["info"], ok[-1]["n_params"]
                row["blas"] = common.describe_blas(ok[-1].get("blas", []))
                if kind == "deltaprop":
                    row["summary"] = ok[-1]["summary"]
                    row["cprofile"] = next((r["cprofile"] for r in ok if "cprofile" in r), None)
                else:
                    row["top_ops"] = ok[-1]["profile"]["top_ops"]
            rows[kind] = row
        dp_row, t_row = rows.get("deltaprop", {}), rows.get("torch", {})
        ratio = paired = None
        if dp_row.get("step_ms") and t_row.get("step_ms"):
            ratio = t_row["step_ms"]["median"] / dp_row["step_ms"]["median"]
            pairs = defaultdict(dict)
            for kind, results in by_kind.items():
                for r in results:
                    if "error" not in r and not r.get("disturbed"):
                        pairs[r["rep"]][kind] = statistics.median(r["step_ms"])
            paired = common.summary([v["torch"] / v["deltaprop"] for v in pairs.values() if len(v) == 2])
        configs[str(p)] = {"dropout": p, "contenders": rows, "ratio_torch_over_deltaprop": ratio,
                           "paired_ratios": paired, "target": TARGET_RATIO,
                           "met": None if ratio is None else ratio >= TARGET_RATIO}
    idles = [r.get("idle_before") for by_kind in runs.values() for rs in by_kind.values() for r in rs]
    disturbed = sum(bool(r.get("disturbed")) for by_kind in runs.values() for rs in by_kind.values() for r in rs)
    others = [r.get("other_cores") for by_kind in runs.values() for rs in by_kind.values() for r in rs]
    return {"command": "python benchmarks/bench_resnet.py " + " ".join(sys.argv[1:]), "machine": machine,
            "threads": threads, "config": SPEED, "repeats": reps, "epochs": args.epochs, "minutes": seconds / 60,
            "idle_before_runs": common.summary([x for x in idles if x is not None]),
            "other_cores_during_runs": common.summary([x for x in others if x is not None]),
            "disturbed_runs": disturbed, "max_other_cores": args.max_other_cores, "source": args.source,
            "load_average_at_end": list(os.getloadavg()), "configs": configs,
            "raw": {str(p): {k: [{key: r.get(key) for key in ("rep", "step_ms", "error", "idle_before", "other_cores",
                                                       "disturbed")}
                                 for r in rs] for k, rs in by_kind.items()} for p, by_kind in runs.items()}}


# =================================================== part B: accuracy
def batch_size_for(n, wanted):
    """``wanted``, or one less where ``n`` rows would leave a last batch of one row (BatchNorm refuses it)."""
    bs = min(wanted, n)
    while n % bs == 1:
        bs -= 1
    return bs


def prepare(table, df, train_rows, test_rows, seed):
    """One seed's data: the fit / validation / test parts as one-hot matrices and as matrices of category codes."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    import bench_tabular

    classify = table.task == "classification"
    X_all, y_all = bench_tabular.features(table, df), df[table.target]
    stratify = y_all.iloc[train_rows] if classify else None
    fit_rows, val_rows = train_test_split(train_rows, test_size=ACCURACY["val_fraction"], random_state=seed,
                                          stratify=stratify)
    parts = {"fit": sorted(fit_rows), "val": sorted(val_rows), "test": list(test_rows)}
    text = bench_tabular.text_columns(X_all)
    numeric = [c for c in X_all.columns if c not in text]
    num = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    onehot = ColumnTransformer([("num", num, numeric)] + (
        [("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                           ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]), text)]
        if text else []))
    fit_X = X_all.iloc[parts["fit"]]
    onehot.fit(fit_X)
    data = {"text": text, "raw": {k: X_all.iloc[r] for k, r in parts.items()},
            "onehot": {k: onehot.transform(X_all.iloc[r]).astype(np.float32) for k, r in parts.items()}}
    if text:
        codes = ColumnTransformer([("num", num, numeric), ("cat", Pipeline([
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("codes", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))]), text)])
        codes.fit(fit_X)
        cats = codes.named_transformers_["cat"].named_steps["codes"].categories_
        n_num = len(numeric)
        coded = {}
        for k, r in parts.items():
            M = codes.transform(X_all.iloc[r]).astype(np.float32)
            for j, c in enumerate(cats):  # an unseen category (-1) becomes one more code
                col = M[:, n_num + j]
                col[col < 0] = len(c)
            coded[k] = M
        data["codes"] = coded
        data["embed"] = [(n_num + j, len(c) + 1, None) for j, c in enumerate(cats)]
    y = {k: y_all.iloc[r] for k, r in parts.items()}
    data["y_raw"] = y
    if classify:
        classes = np.unique(np.asarray(y["fit"]))
        data["classes"] = classes

        def index(v):
            v = np.asarray(v)
            pos = np.clip(np.searchsorted(classes, v), 0, len(classes) - 1)
            return np.where(classes[pos] == v, pos, -1).astype(np.int64)

        data["y"] = {k: index(v) for k, v in y.items()}
        data["n_out"] = len(classes)
    else:
        mean, std = float(np.mean(y["fit"])), float(np.std(y["fit"])) or 1.0
        data["y"] = {k: ((np.asarray(v, dtype=np.float64) - mean) / std).astype(np.float32) for k, v in y.items()}
        data["y_scale"] = (mean, std)
        data["n_out"] = 1
    return data


def score(table, data, predicted_index_or_value):
    """Accuracy (classes as indices) or R² (standardised predictions, scored on the original scale)."""
    from sklearn.metrics import r2_score

    if table.task == "classification":
        return float(np.mean(predicted_index_or_value == data["y"]["test"]))
    mean, std = data["y_scale"]
    return float(r2_score(np.asarray(data["y_raw"]["test"], dtype=np.float64),
                          np.asarray(predicted_index_or_value, dtype=np.float64).ravel() * std + mean))


def make_dp_net(dp, kind, table, n_in, n_out, embed, seed, args):
    resnet = kind != "MLP"
    loss = "categorical_crossentropy" if table.task == "classification" else "mean_squared_error"
    return dp.Network.from_sizes(sizes_of(n_in, args.width, args.blocks, n_out), loss=loss,
                                 dropout=ACCURACY["dropout"], norm="batch" if resnet else None, residual=resnet,
                                 embed=embed, dtype="float32", seed=seed)


def copy_dp_weights(torch, dp, net, model):
    """Set the PyTorch twin's parameters to deltaprop's (a bias deltaprop leaves out becomes 0)."""
    dense = [x for x in model.modules() if isinstance(x, torch.nn.Linear)]
    norms = [x for x in model.modules() if isinstance(x, torch.nn.BatchNorm1d)]
    dp_dense, dp_norms = [], []
    for layer in net.layers:
        for x in (layer.layers if isinstance(layer, dp.Residual) else [layer]):
            (dp_dense if isinstance(x, dp.Dense) else dp_norms if isinstance(x, dp.BatchNorm) else []).append(x)
    with torch.no_grad():
        for t, x in zip(dense, dp_dense, strict=True):
            t.weight.copy_(torch.from_numpy(np.ascontiguousarray(x.W)))
            b = getattr(x, "b", None)
            t.bias.copy_(torch.from_numpy(np.asarray(b)) if b is not None and np.size(b) else torch.zeros_like(t.bias))
        for t, x in zip(norms, dp_norms, strict=True):
            t.weight.copy_(torch.from_numpy(x.gamma.copy()))
            t.bias.copy_(torch.from_numpy(x.beta.copy()))


def fit_deltaprop(kind, table, data, seed, args):
    common.ensure_src_on_path()
    import deltaprop as dp

    classify = table.task == "classification"
    key = "codes" if kind == "ResNet + embeddings" else "onehot"
    X = data[key]
    embed = None
    if key == "codes":
        embed = [(i, n, args.embed_dim) for i, n, _ in data["embed"]]
    net = make_dp_net(dp, kind, table, X["fit"].shape[1], data["n_out"], embed, seed, args)
    bs = batch_size_for(X["fit"].shape[0], ACCURACY["batch_size"])
    stop = dp.EarlyStopping(monitor="val_loss", patience=ACCURACY["patience"])
    history = net.fit(X["fit"], data["y"]["fit"], epochs=args.max_epochs, batch_size=bs,
                      optimizer=dp.Adam(learning_rate=ACCURACY["learning_rate"]),
                      validation_data=(X["val"], data["y"]["val"]), early_stopping=stop, verbose=0)
    out = net.predict(X["test"])
    return score(table, data, out.argmax(axis=1) if classify else out), len(history["loss"])


def fit_torch(table, data, seed, args, same_init=False):
    import copy

    import torch

    classify = table.task == "classification"
    torch.manual_seed(seed)
    X = {k: torch.from_numpy(v) for k, v in data["onehot"].items()}
    Y = {k: torch.from_numpy(v if classify else v.reshape(-1, 1)) for k, v in data["y"].items()}
    model = torch_resnet(torch, X["fit"].shape[1], args.width, args.blocks, data["n_out"], ACCURACY["dropout"])
    if same_init:
        common.ensure_src_on_path()
        import deltaprop as dp

        net = make_dp_net(dp, "ResNet", table, X["fit"].shape[1], data["n_out"], None, seed, args)
        copy_dp_weights(torch, dp, net, model)
    opt = torch.optim.Adam(model.parameters(), lr=ACCURACY["learning_rate"])
    lossf = torch.nn.CrossEntropyLoss() if classify else torch.nn.MSELoss()
    n = X["fit"].shape[0]
    bs = batch_size_for(n, ACCURACY["batch_size"])
    gen = torch.Generator().manual_seed(seed)
    best, best_state, wait, epochs = math.inf, None, 0, 0
    for _ in range(args.max_epochs):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, bs):
            idx = perm[i:i + bs]
            opt.zero_grad(set_to_none=True)
            lossf(model(X["fit"][idx]), Y["fit"][idx]).backward()
            opt.step()
        epochs += 1
        model.eval()
        with torch.no_grad():
            val = float(lossf(model(X["val"]), Y["val"]))
        if val < best:  # deltaprop's EarlyStopping: stop after `patience` + 1 epochs without improvement
            best, best_state, wait = val, copy.deepcopy(model.state_dict()), 0
        else:
            wait += 1
            if wait > ACCURACY["patience"]:
                break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        out = model(X["test"]).numpy()
    return score(table, data, out.argmax(axis=1) if classify else out), epochs


def estimator_params():
    """The names of the estimators' parameters (empty when the estimators cannot be imported)."""
    common.ensure_src_on_path()
    try:
        from deltaprop.estimators import DeltapropClassifier
    except ImportError:
        return set()
    return set(DeltapropClassifier().get_params())


def fit_estimator(kind, table, data, seed, args):
    common.ensure_src_on_path()
    import pandas as pd
    from deltaprop.estimators import DeltapropClassifier, DeltapropRegressor
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler

    classify = table.task == "classification"
    raw = data["raw"]
    X_train = pd.concat([raw["fit"], raw["val"]])
    y_train = pd.concat([data["y_raw"]["fit"], data["y_raw"]["val"]])
    params = dict(hidden_layer_sizes=(args.width,) * args.blocks, norm="batch", residual=True,
                  dropout=ACCURACY["dropout"], batch_size=batch_size_for(len(X_train), ACCURACY["batch_size"]),
                  epochs=args.max_epochs, early_stopping=True, validation_fraction=ACCURACY["val_fraction"],
                  n_iter_no_change=ACCURACY["patience"], random_state=seed, categorical_features=[])
    if kind == "estimator ResNet + embeddings":
        params["embed_categories"] = args.embed_dim
    if classify:
        model = DeltapropClassifier(**params)
    else:
        model = TransformedTargetRegressor(regressor=DeltapropRegressor(**params), transformer=StandardScaler())
    model.fit(X_train, y_train)
    predicted = model.predict(raw["test"])
    est = model if classify else model.regressor_
    epochs = getattr(est, "n_iter_", None)
    if classify:
        return float(np.mean(np.asarray(predicted) == np.asarray(data["y_raw"]["test"]))), epochs
    from sklearn.metrics import r2_score

    return float(r2_score(data["y_raw"]["test"], predicted)), epochs


def run_model(kind, table, data, seed, args):
    """Fit and score one model: ``{"score", "epochs", "fit_s"}``, ``{"skipped"}`` or ``{"error"}``."""
    if kind in ("ResNet + embeddings", "estimator ResNet + embeddings") and not data["text"]:
        return {"skipped": "no text columns"}
    t0 = time.perf_counter()
    try:
        if kind in ("torch ResNet", SAME_INIT):
            s, epochs = fit_torch(table, data, seed, args, same_init=kind == SAME_INIT)
        elif kind in ESTIMATOR_MODELS:
            s, epochs = fit_estimator(kind, table, data, seed, args)
        else:
            s, epochs = fit_deltaprop(kind, table, data, seed, args)
    except Exception as e:  # noqa: BLE001 - a failing model is a result to record, not the end of the benchmark
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return {"error": f"{type(e).__name__}: {message}".rstrip(": ")}
    return {"score": s, "epochs": epochs, "fit_s": time.perf_counter() - t0}


def accuracy_part(args):
    from threadpoolctl import threadpool_limits

    import bench_tabular
    import tabular_data

    started = time.time()
    machine = common.machine_info()
    torch_ok = _importable("torch")
    params = estimator_params()
    have = {"estimator ResNet": {"norm", "residual"} <= params,
            "estimator ResNet + embeddings": {"norm", "residual", "embed_categories"} <= params}
    models = [m for m in MODELS if (m != "torch ResNet" or torch_ok) and have.get(m, True)]
    if args.same_init and torch_ok:
        models.insert(models.index("torch ResNet") + 1, SAME_INIT)
    missing = [m for m in MODELS if m not in models]
    seeds = list(range(args.seeds if args.seeds is not None else (1 if args.quick else 5)))
    names = args.datasets or list(tabular_data.SPECS)
    if torch_ok:
        import torch

        torch.set_num_threads(args.accuracy_threads)
    with threadpool_limits(limits=args.accuracy_threads):
        blas = common.describe_blas(common.blas_info())
    print(f"# part B (accuracy): {machine['cpu']}; BLAS {blas}; seeds {seeds}; models {', '.join(models)}"
          + (f"; left out: {', '.join(missing)}" if missing else ""), flush=True)
    warnings.filterwarnings("ignore", category=UserWarning)
    results = {}
    for table in tabular_data.tables(names):
        df, _, labelled = bench_tabular.load(table)
        runs = {m: [] for m in models}
        for s, seed in enumerate(seeds):
            train_rows, test_rows = bench_tabular.split(table, df, labelled, seed)
            data = prepare(table, df, train_rows, test_rows, seed)
            order = models[s % len(models):] + models[:s % len(models)]
            for kind in order:
                with threadpool_limits(limits=args.accuracy_threads):
                    r = run_model(kind, table, data, seed, args)
                r["seed"] = seed
                runs[kind].append(r)
                shown = (f"failed: {r['error']}" if "error" in r else f"skipped: {r['skipped']}" if "skipped" in r
                         else f"score {r['score']:.4f}, {r['epochs']} epochs, fit {r['fit_s']:.2f} s")
                print(f"  {table.name:<16} seed {seed}  {kind:<30} {shown}", flush=True)
        results[table.name] = {"task": table.task, "target": table.target, "notes": table.notes,
                               "metric": "accuracy" if table.task == "classification" else "R²",
                               "n_rows": len(labelled), "text_columns": bench_tabular.text_columns(
                                   bench_tabular.features(table, df)),
                               "models": {m: aggregate(v) for m, v in runs.items()}, "runs": runs}
    return {"command": "python benchmarks/bench_resnet.py " + " ".join(sys.argv[1:]), "machine": machine,
            "blas": blas, "threads": args.accuracy_threads, "seeds": seeds, "models": models, "source": args.source,
            "left_out": {m: ("torch is not installed" if m == "torch ResNet" else
                             "DeltapropClassifier().get_params() has no norm / residual / embed_categories yet")
                         for m in missing},
            "recipe": {**ACCURACY, "width": args.width, "blocks": args.blocks, "max_epochs": args.max_epochs,
                       "embed_dim": args.embed_dim},
            "minutes": (time.time() - started) / 60, "results": results}


def aggregate(runs):
    ok = [r for r in runs if "score" in r]
    scores = [r["score"] for r in ok]
    epochs = [r["epochs"] for r in ok if r.get("epochs") is not None]
    return {"n": len(runs), "n_ok": len(ok), "skipped": next((r["skipped"] for r in runs if "skipped" in r), None),
            "mean": statistics.fmean(scores) if scores else None,
            "std": statistics.pstdev(scores) if scores else None,
            "epochs_median": statistics.median(epochs) if epochs else None,
            "fit_median_s": statistics.median(r["fit_s"] for r in ok) if ok else None,
            "errors": sorted({r["error"] for r in runs if "error" in r})}


# ================================================================ report
def _f(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}"


def render_speed(d):
    m = d["machine"]
    dp_any = next(iter(d["configs"].values()))["contenders"].get("deltaprop", {})
    t_any = next(iter(d["configs"].values()))["contenders"].get("torch", {})
    ti = t_any.get("info") or {}
    idle, others = d.get("idle_before_runs"), d.get("other_cores_during_runs")
    out = ["## A. Training speed: tabular ResNet, deltaprop against PyTorch", "",
           f"{m['date']}, {m['cpu']}, {m['usable_cpus']} usable CPUs; Python {m['python']}, NumPy {m['numpy']}; "
           f"load average at start {', '.join(f'{x:.2f}' for x in m['load_average'] or [])}, at the end "
           f"{', '.join(f'{x:.2f}' for x in d['load_average_at_end'])}"
           + (f"; idle CPU fraction before each run: median {idle['median']:.2f}, min {idle['min']:.2f}"
              if idle else "")
           + (f"; CPU cores used by other work while a run ran: median {others['median']:.2f}, max "
              f"{others['max']:.2f}" if others else "") + ".  ",
           f"Command: `{d['command'].strip()}` ({d['repeats']} repetition{'s' if d['repeats'] != 1 else ''}, "
           f"{d['epochs']} epochs per run; "
           f"{d['minutes']:.1f} min).  ",
           _source_line(d.get("source"))
           + (f"{d['disturbed_runs']} run(s) during which other work used more than {d['max_other_cores']} CPU "
              f"cores were run again and left out of the figures.  " if d.get("disturbed_runs") else ""),
           f"Threads: {d['threads']} for both. deltaprop: kernels {(dp_any.get('info') or {}).get('kernels')}, "
           f"BLAS {dp_any.get('blas')}. PyTorch {ti.get('version')}: {ti.get('threads')} threads, "
           f"{ti.get('blas')} ({ti.get('cpu_capability')}).", ""]
    if m.get("env"):
        out += [f"Environment: {', '.join(f'{k}={v}' for k, v in m['env'].items())} (OPENBLAS_CORETYPE and "
                f"OPENBLAS_L2_SIZE unset for the workers unless --keep-openblas-env).", ""]
    c = d["config"]
    counts = "; ".join(f"dropout {cfg['dropout']}: deltaprop "
                       f"{cfg['contenders'].get('deltaprop', {}).get('n_params', 0):,}, PyTorch "
                       f"{cfg['contenders'].get('torch', {}).get('n_params', 0):,}" for cfg in d["configs"].values())
    out += [f"Network: {c['n_in']} inputs, stem to {c['width']}, {c['blocks']} blocks of width {c['width']} "
            f"(BatchNorm), head BatchNorm → ReLU → Dense({c['width']}, {c['n_classes']}); batch {c['batch_size']}, "
            f"float32, Adam; {c['n_train']:,} synthetic rows ({math.ceil(c['n_train'] / c['batch_size'])} steps an "
            f"epoch). Parameters ({counts}): deltaprop leaves out the biases a BatchNorm cancels (the stem's, and a "
            f"block's last Dense's when no dropout follows it); the PyTorch twin keeps `nn.Linear`'s default "
            f"biases (in `addmm`, plus a bias-gradient sum per layer).", ""]
    rows = []
    for cfg in d["configs"].values():
        for kind, row in cfg["contenders"].items():
            s = row.get("step_ms")
            if not s:
                rows.append([cfg["dropout"], kind, "error: " + "; ".join(row.get("errors", []))[:80], "", "", "", ""])
                continue
            ratio = (cfg["ratio_torch_over_deltaprop"] if kind == "torch" else 1.0)
            paired = cfg["paired_ratios"]
            rows.append([cfg["dropout"], kind, f"{s['median']:.2f} ({s['min']:.2f}–{s['max']:.2f})",
                         f"{row['profiled_step_ms']['median']:.2f}", _f(ratio),
                         (f"{paired['median']:.2f} ({paired['min']:.2f}–{paired['max']:.2f})"
                          if kind == "torch" and paired else "–"), f"{row['test_accuracy']['median']:.3f}"])
    out += [common.markdown_table(["dropout", "contender", "ms/step median (min–max)", "ms/step, profiled epoch",
                                   "torch ÷ deltaprop (medians)", "paired ratios median (min–max)",
                                   "test accuracy"], rows), ""]
    targets = [f"dropout {cfg['dropout']}: {_f(cfg['ratio_torch_over_deltaprop'])} "
               f"({'met' if cfg['met'] else '**not met**' if cfg['met'] is not None else '–'})"
               for cfg in d["configs"].values()]
    out += [f"Target deltaprop ≥ {TARGET_RATIO}× PyTorch's speed (ratio of median step times): "
            + "; ".join(targets) + ".", ""]
    out += render_profiles(d)
    return out


def render_profiles(d):
    out = ["### Where deltaprop's step goes, per layer kind", "",
           "Exclusive time of each part while `net.fit` trains one more epoch with timers around every layer's "
           "forward and backward (medians over the repetitions, ms per step). `×` is how many such layers "
           "the network has. Share: of the profiled step.", ""]
    header, rows = ["part"], []
    counts = None
    for cfg in d["configs"].values():
        header += [f"p={cfg['dropout']} fwd", "bwd", "total", "share"]
    kinds = []
    for cfg in d["configs"].values():
        for k in (cfg["contenders"].get("deltaprop", {}).get("profile") or {}):
            if k not in kinds:
                kinds.append(k)
    summary = next(iter(d["configs"].values()))["contenders"].get("deltaprop", {}).get("summary")
    counts = {"stem Dense (linear)": 1, "output Dense (softmax)": 1, "BatchNorm (head)": 1,
              "Activation ReLU (head)": 1}
    blocks = d["config"]["blocks"]
    for k in ("Residual (gradient copy + skip adds)", "BatchNorm (in blocks)", "block Dense 2 (linear)",
              "Dropout layer", "block Dense 1 (ReLU)", "block Dense 1 (ReLU, dropout)"):
        counts[k] = blocks
    totals = {}
    for cfg in d["configs"].values():
        prof = cfg["contenders"].get("deltaprop", {}).get("profile") or {}
        step = cfg["contenders"].get("deltaprop", {}).get("profiled_step_ms", {}) or {}
        totals[cfg["dropout"]] = (prof, step.get("median"))

    def order(k):
        p0 = max((sum(v.values()) for prof, _ in totals.values() for kk, v in prof.items() if kk == k), default=0)
        return -p0

    for k in sorted(kinds, key=order):
        row = [k + (f" ×{counts[k]}" if k in counts and counts[k] > 1 else "")]
        for prof, step in totals.values():
            v = prof.get(k)
            if not v:
                row += ["", "", "", ""]
                continue
            total = sum(v.values())
            fwd = v.get("fwd")
            bwd = v.get("bwd")
            row += [_f(fwd, 3) if fwd is not None else "", _f(bwd, 3) if bwd is not None else "", f"{total:.3f}",
                    f"{100 * total / step:.1f} %" if step else "–"]
        rows.append(row)
    row = ["**profiled step**"]
    for prof, step in totals.values():
        row += ["", "", f"**{_f(step, 3)}**", "100 %"]
    rows.append(row)
    out += [common.markdown_table(header, rows), ""]
    out += render_shares(d)
    if summary:
        out += ["deltaprop's network (`net.summary()`):", "", "```", summary, "```", ""]
    out += render_torch_profile(d)
    cp = next((cfg["contenders"].get("deltaprop", {}).get("cprofile") for cfg in d["configs"].values()
               if cfg["contenders"].get("deltaprop", {}).get("cprofile")), None)
    if cp:
        steps = cp["steps"]
        out += ["cProfile of one more epoch of deltaprop's `net.fit` (dropout 0, first repetition; own time of the "
                "15 costliest functions, ms per step; cProfile's own overhead inflates the Python-heavy rows):", "",
                common.markdown_table(["function", "calls/step", "ms/step"],
                                      [[f"`{name}`", f"{calls / steps:.0f}", f"{tt / steps * 1e3:.3f}"]
                                       for name, calls, tt in cp["top"]]), ""]
    return out


def render_shares(d):
    n_bn = d["config"]["blocks"] + 1
    out = [f"Share of the norm layers ({n_bn} BatchNorm layers): measured inside the profiled step, and estimated "
           f"as {n_bn} × (forward + backward of one layer alone) ÷ the unprofiled median step:", ""]
    rows = []
    for cfg in d["configs"].values():
        row = [cfg["dropout"]]
        for kind, key, fwd, bwd in (("deltaprop", "BatchNorm", "BatchNorm forward", "BatchNorm backward"),
                                    ("torch", "BatchNorm", "BatchNorm1d forward", "BatchNorm1d backward")):
            r = cfg["contenders"].get(kind, {})
            prof, iso = r.get("profile") or {}, r.get("isolated") or {}
            step = (r.get("step_ms") or {}).get("median")
            pstep = (r.get("profiled_step_ms") or {}).get("median")
            inside = sum(_total(v) for k, v in prof.items() if k.startswith(key))
            alone = iso.get(fwd, 0) + iso.get(bwd, 0)
            row += [f"{inside:.3f} ms = {100 * inside / pstep:.1f} %" if pstep else "–",
                    f"{n_bn} × {alone:.3f} ms = {100 * n_bn * alone / step:.1f} %" if step and alone else "–"]
        rows.append(row)
    out += [common.markdown_table(["dropout", "deltaprop: in the step", "deltaprop: alone", "PyTorch: in the step",
                                   "PyTorch: alone"], rows), ""]
    cfgs = list(d["configs"].values())
    keys = []
    for cfg in cfgs:
        for kind in ("deltaprop", "torch"):
            keys += [(kind, k) for k in (cfg["contenders"].get(kind, {}).get("isolated") or {})
                     if (kind, k) not in keys]
    out += [f"The parts alone, at the step's shapes (batch {d['config']['batch_size']}, width "
            f"{d['config']['width']}; ms per call, median of 200 calls in each run, then the median over the runs; "
            "same threads as the step):", ""]
    rows = []
    for kind, k in keys:
        row = [f"{'PyTorch' if kind == 'torch' else 'deltaprop'}: {k}"]
        for cfg in cfgs:
            v = (cfg["contenders"].get(kind, {}).get("isolated") or {}).get(k)
            row.append("–" if v is None else f"{v:.0f}" if "GFLOP" in k else f"{v:.3f}")
        rows.append(row)
    out += [common.markdown_table(["part"] + [f"dropout {c['dropout']}" for c in cfgs], rows), ""]
    for cfg in d["configs"].values():
        dp_row = cfg["contenders"].get("deltaprop", {})
        prof, iso = dp_row.get("profile") or {}, dp_row.get("isolated") or {}
        if not prof or "matrix products of the step" not in iso:
            continue
        step = dp_row["profiled_step_ms"]["median"]

        def part(*prefixes):
            return sum(_total(v) for k, v in prof.items() if k.startswith(prefixes))

        dense = part("stem Dense", "block Dense", "output Dense")
        products = iso["matrix products of the step"]
        out += [f"Dropout {cfg['dropout']}: of deltaprop's profiled step of {step:.2f} ms, the Dense layers take "
                f"{dense:.2f} ms ({100 * dense / step:.0f} %), against {products:.2f} ms for their matrix products "
                f"alone (so about {max(0.0, dense - products):.2f} ms of bias, ReLU, dropout masks and Python "
                f"around them); BatchNorm {part('BatchNorm'):.2f} ms ({100 * part('BatchNorm') / step:.0f} %); "
                f"Dropout layers {part('Dropout'):.2f} ms; Residual blocks' own work {part('Residual'):.2f} ms; "
                f"Adam {part('Adam'):.2f} ms; gather, loss, metric and loops "
                f"{part('batch', 'loss', 'accuracy', 'network', 'rest', 'Activation'):.2f} ms.", ""]
    cfgs = list(d["configs"].values())
    if len(cfgs) == 2:
        lines = []
        for kind in ("deltaprop", "torch"):
            a = (cfgs[0]["contenders"].get(kind, {}).get("step_ms") or {}).get("median")
            b = (cfgs[1]["contenders"].get(kind, {}).get("step_ms") or {}).get("median")
            if a and b:
                lines.append(f"{kind} {b:.2f} vs {a:.2f} ms ({b - a:+.2f} ms, ×{b / a:.2f})")
        out += [f"Dropout {cfgs[1]['dropout']} against 0 (median step): " + "; ".join(lines) + ".", ""]
    return out


def _total(v):
    return sum(v.values()) if isinstance(v, dict) else (v or 0.0)


def render_torch_profile(d):
    out = ["### PyTorch's step by the same kinds (torch.profiler)", "",
           "One more epoch under `torch.profiler.profile(activities=[CPU])`; each operator's self time is "
           "given to the kind of its top-level event: the module's operator in the forward pass (`aten::linear`, "
           "`aten::batch_norm`, `aten::dropout`, ...), the autograd node in the backward pass (`AddmmBackward0`, "
           "`NativeBatchNormBackward0`, `MulBackward0` for dropout, ...), `Optimizer.step`/`zero_grad` "
           "(medians over the repetitions, ms per step). \"rest\" is the profiled step less every operator's time "
           "(Python, the autograd engine's bookkeeping); the profiler's own overhead is inside the profiled step.",
           ""]
    header, kinds, cols = ["kind"], [], []
    for cfg in d["configs"].values():
        t = cfg["contenders"].get("torch", {})
        if not t.get("profile"):
            continue
        header += [f"p={cfg['dropout']} fwd", "bwd", "total", "share"]
        cols.append((t["profile"], t["profiled_step_ms"]["median"]))
        kinds += [k for k in t["profile"] if k not in kinds]
    if not cols:
        return out + ["(no PyTorch run)", ""]
    rows = []
    for k in sorted(kinds, key=lambda k: -max(_total(p.get(k)) for p, _ in cols)):
        if max(abs(_total(p.get(k))) for p, _ in cols) < 5e-4:
            continue  # a kind that took no time (dropout 0's Identity, for one)
        row = [k]
        for prof, step in cols:
            v = prof.get(k) or {}
            total = _total(v)
            row += [_f(v.get("fwd"), 3) if "fwd" in v else "", _f(v.get("bwd"), 3) if "bwd" in v else "",
                    f"{total:.3f}", f"{100 * total / step:.1f} %"]
        rows.append(row)
    row = ["**profiled step**"]
    for _, step in cols:
        row += ["", "", f"**{step:.3f}**", "100 %"]
    rows.append(row)
    out += [common.markdown_table(header, rows), ""]
    return out + render_comparison(d)


#: the report's common kinds: (name, deltaprop's kinds, PyTorch's kinds)
COMMON_KINDS = (
    ("Dense/Linear layers with their ReLU and dropout", ("stem Dense", "block Dense", "output Dense", "Dropout layer",
                                                        "Activation ReLU"),
     ("Linear", "ReLU", "dropout")),
    ("BatchNorm (4 layers)", ("BatchNorm",), ("BatchNorm",)),
    ("residual: gradient copy and skip adds", ("Residual",), ("residual adds",)),
    ("loss and output delta", ("loss",), ("loss",)),
    ("optimizer (PyTorch: + AccumulateGrad, zero_grad)", ("Adam",), ("Adam", "AccumulateGrad")),
    ("batch gather", ("batch gather",), ("batch gather",)),
    ("everything else (metric, loops, Python, other operators)", ("accuracy metric", "network loops", "rest"),
     ("other operators", "rest")),
)


def render_comparison(d):
    out = ["### Side by side (ms per step, profiled epochs; ratio PyTorch ÷ deltaprop, above 1: deltaprop faster)",
           ""]
    header, rows = ["kind"], []
    cfgs = [c for c in d["configs"].values() if c["contenders"].get("deltaprop", {}).get("profile")
            and c["contenders"].get("torch", {}).get("profile")]
    if not cfgs:
        return []
    for cfg in cfgs:
        header += [f"p={cfg['dropout']} deltaprop", "PyTorch", "ratio"]
    for name, dp_prefixes, t_prefixes in COMMON_KINDS + (("**profiled step**", None, None),):
        row = [name]
        for cfg in cfgs:
            dp_row, t_row = cfg["contenders"]["deltaprop"], cfg["contenders"]["torch"]
            if dp_prefixes is None:
                a, b = dp_row["profiled_step_ms"]["median"], t_row["profiled_step_ms"]["median"]
            else:
                a = sum(_total(v) for k, v in dp_row["profile"].items() if k.startswith(dp_prefixes))
                b = sum(_total(v) for k, v in t_row["profile"].items() if k.startswith(t_prefixes))
            row += [f"{a:.3f}", f"{b:.3f}", f"{b / a:.2f}" if a > 0 else "–"]
        rows.append(row)
    return out + [common.markdown_table(header, rows), ""]


def _source_line(src):
    if not src:
        return ""
    if src.get("snapshot"):
        return (f"deltaprop from a copy of `src/` taken at the start (commit {src.get('commit')}, sha256 of its .py "
                f"files {src.get('sha256', '')[:12]}).  ")
    return f"deltaprop from `src/` as it was at each import (commit {src.get('commit')}).  "


def render_accuracy(d):
    r = d["recipe"]
    m = d["machine"]
    out = ["## B. Accuracy on the real tables: MLP, ResNet, ResNet + embeddings, PyTorch's ResNet", "",
           f"{m['date']}, {m['cpu']}; BLAS {d['blas']}; {d['threads']} thread(s) per model (PyTorch too).  ",
           f"Command: `{d['command'].strip()}` ({d['minutes']:.1f} min); seeds {d['seeds']}.  ",
           _source_line(d.get("source")), "",
           f"Recipe, every network: widths {r['width']} × {r['blocks']} hidden (MLP: {r['blocks']} hidden layers of "
           f"{r['width']}; ResNet: stem + {r['blocks']} blocks of {r['width']}), dropout {r['dropout']}, Adam "
           f"{r['learning_rate']}, batch {r['batch_size']}, at most {r['max_epochs']} epochs, early stopping on the "
           f"loss of a {int(100 * r['val_fraction'])} % validation part (patience {r['patience']}, best weights "
           f"restored); embeddings of {r['embed_dim']} per text column. Score: test accuracy or R², mean ± std "
           f"(ddof 0) over the seeds; epochs trained and fit seconds: medians. The estimator rows keep the "
           f"estimators' other defaults (weight decay alpha=1e-4, Glorot initialisation, their own early-stopping "
           f"rule on the validation score with tol 1e-4) and take the raw DataFrame of the training part.", ""]
    if d.get("left_out"):
        out += ["Left out in this run: " + "; ".join(f"{k} ({v})" for k, v in d["left_out"].items()) + ".", ""]
    rows = []
    for name, res in d["results"].items():
        first = True
        for model, a in res["models"].items():
            if a["skipped"]:
                cell = f"– ({a['skipped']})"
            elif not a["n_ok"]:
                cell = "failed: " + "; ".join(a["errors"])[:100]
            else:
                cell = f"{a['mean']:.4f} ± {a['std']:.4f}" + (f" ({a['n_ok']} of {a['n']})" if a["n_ok"] < a["n"]
                                                             else "")
            rows.append([name if first else "", res["metric"] if first else "", model, cell,
                         _f(a["epochs_median"], 0) if a["epochs_median"] is not None else "–",
                         _f(a["fit_median_s"])])
            first = False
    out += [common.markdown_table(["data set", "metric", "model", "score", "epochs", "fit s"], rows), ""]
    out += ["Data sets (bench_tabular.py's):", ""]
    out += [f"- **{name}** ({res['task']}, target `{res['target']}`, {res['n_rows']} labelled rows; text columns: "
            f"{', '.join(res['text_columns']) or 'none'}): {res['notes']}" for name, res in d["results"].items()]
    return out + [""]


def render(data):
    out = ["# Tabular ResNet (`benchmarks/bench_resnet.py`)", ""]
    if data.get("speed"):
        out += render_speed(data["speed"])
    if data.get("accuracy"):
        out += render_accuracy(data["accuracy"])
    return "\n".join(out)


# ================================================================== main
def snapshot_src():
    """A copy of this checkout's ``src/`` in a temporary folder, so that edits made while the benchmark runs
    do not mix into it: ``(folder to delete, its src, {"commit", "sha256"})``."""
    folder = Path(tempfile.mkdtemp(prefix="deltaprop-resnet-"))
    src = folder / "src"
    shutil.copytree(common.ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*.py")):
        digest.update(str(path.relative_to(src)).encode() + b"\0" + path.read_bytes())
    return folder, src, {"commit": _commit(), "sha256": digest.hexdigest(), "snapshot": True}


def _commit():
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=common.ROOT, capture_output=True,
                              text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", action="store_true", help="run part A (speed against PyTorch)")
    parser.add_argument("--accuracy", action="store_true", help="run part B (accuracy on the real tables)")
    parser.add_argument("--quick", action="store_true",
                        help="1 repetition of 2 epochs, 1 seed: a smoke test, not a measurement")
    parser.add_argument("--repeats", type=int, default=5, help="part A: interleaved repetitions (default 5)")
    parser.add_argument("--epochs", type=int, default=3, help="part A: timed epochs per run (default 3)")
    parser.add_argument("--threads", type=int, default=0, help="part A: threads of both (default: the usable CPUs)")
    parser.add_argument("--wait-idle", type=float, default=20.0,
                        help="part A: wait up to this many seconds before each run for the machine to be idle")
    parser.add_argument("--idle-threshold", type=float, default=0.9)
    parser.add_argument("--budget-minutes", type=float, default=15.0,
                        help="part A: start no new repetition after this many minutes")
    parser.add_argument("--keep-openblas-env", action="store_true",
                        help="leave OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE set for the workers")
    parser.add_argument("--max-other-cores", type=float, default=0.5,
                        help="part A: a run during which other work used more CPU cores than this is run once more "
                             "(the first kept in the JSON, left out of the figures)")
    parser.add_argument("--live-src", action="store_true",
                        help="import deltaprop from src/ as it is at each import, not from a copy taken at the start")
    parser.add_argument("--seeds", type=int, default=None, help="part B: seeds 0 .. N-1 (default 5, 1 with --quick)")
    parser.add_argument("--datasets", nargs="*", default=None, help="part B: data sets (default: all)")
    parser.add_argument("--accuracy-threads", type=int, default=1, help="part B: BLAS threads per model (default 1)")
    parser.add_argument("--max-epochs", type=int, default=100, help="part B: most epochs per network (default 100)")
    parser.add_argument("--width", type=int, default=128, help="part B: hidden width (default 128)")
    parser.add_argument("--blocks", type=int, default=3, help="part B: hidden layers / blocks (default 3)")
    parser.add_argument("--embed-dim", type=int, default=8, help="part B: embedding width per text column")
    parser.add_argument("--same-init", action="store_true",
                        help=f"part B: add the row {SAME_INIT!r} (PyTorch's ResNet from deltaprop's initial weights)")
    parser.add_argument("--out", default=str(common.RESULTS / "resnet.md"))
    parser.add_argument("--render", action="store_true",
                        help="only write the Markdown again from the JSON beside it (after a change of this report)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker_main(json.loads(args.worker))
        return 0
    if args.render:
        out = Path(args.out)
        data = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
        common.write_results(out.stem, data, render(data), folder=out.parent)
        print(f"wrote {out}", flush=True)
        return 0
    if args.quick:
        args.repeats, args.epochs = 1, 2
    both = not (args.speed or args.accuracy)
    folder = None
    if args.live_src:
        args.src, args.source = None, {"commit": _commit(), "snapshot": False}
    else:
        folder, args.src, args.source = snapshot_src()
        os.environ[common.SRC_ENV] = str(args.src)  # part B imports deltaprop in this process
    try:
        return _main(args, both)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _main(args, both):
    out = Path(args.out)
    data = {}
    old = out.with_suffix(".json")
    if old.exists():
        try:
            data = json.loads(old.read_text(encoding="utf-8"))
        except ValueError:
            data = {}
    if args.speed or both:
        data["speed"] = speed_part(args)
        common.write_results(out.stem, data, render(data), folder=out.parent)
    if args.accuracy or both:
        data["accuracy"] = accuracy_part(args)
        common.write_results(out.stem, data, render(data), folder=out.parent)
    text = render(data)
    print("\n" + text, flush=True)
    print(f"wrote {out} and {out.with_suffix('.json').name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

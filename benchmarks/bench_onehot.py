"""One-hot columns as an indexed product against the dense one-hot array: a training step and a fit epoch.

The data: ``--rows`` rows (20,000) of 10 numeric features and one categorical
column of 1,000 categories (drawn uniformly), a 10-class target; the network
``1010-256-10`` (ReLU, softmax, Adam, float32), batches of 256. The same
inputs are given two ways:

* ``OneHotMatrix``: the codes, so the first layer's ``Z = X Wᵀ`` gathers rows
  of ``Wᵀ`` and ``grad_Wᵀ = Xᵀ Δ`` scatters the rows of ``Δ``
  (:mod:`deltaprop.sparse`);
* ``dense``: ``toarray()`` of it, a float32 array multiplied by BLAS, zeros and all.

Timed, interleaved (OneHotMatrix, dense, OneHotMatrix, ...) over ``--repeats``
rounds, medians:

* ``first layer``: the first layer's forward and backward passes on one
  batch of 256 rows (its products, bias and ReLU), ``--calls`` calls per round;
* ``fit epoch``: one epoch of ``deltaprop.training.fit`` (the epoch's time
  from the history: batches gathered, every layer, Adam), and per step.

A second configuration, eight categorical columns of 20 categories (no
numeric ones), shows the narrow case, where the dense one-hot array is small.

    python benchmarks/bench_onehot.py [--repeats 7] [--calls 50] [--quick]

Writes ``benchmarks/results/onehot.md`` and ``onehot.json``.
"""

import argparse
import datetime
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import numpy as np  # noqa: E402

common.ensure_src_on_path()

from deltaprop import training  # noqa: E402
from deltaprop.network import FeedForward  # noqa: E402
from deltaprop.sparse import OneHotMatrix  # noqa: E402

#: name -> (numeric features, categorical sizes)
CONFIGS = {
    "1 column of 1,000 categories + 10 numeric": (10, [1000]),
    "8 columns of 20 categories": (0, [20] * 8),
}
HIDDEN, N_OUT, BATCH = 256, 10, 256


def make_data(n, d, sizes, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.normal(size=(n, d)).astype(np.float32)
    codes = np.stack([rng.integers(0, s, n) for s in sizes], axis=1)
    y = rng.integers(0, N_OUT, n)
    X = OneHotMatrix(dense, codes, sizes)
    return {"OneHotMatrix": X, "dense": X.toarray()}, y


def new_net(n_in):
    return FeedForward.from_sizes([n_in, HIDDEN, N_OUT], loss="categorical_crossentropy", dtype="float32", seed=0)


def first_layer_step(X, calls, rng):
    """Median seconds of the first layer's forward + backward on one batch of ``X``'s rows."""
    layer = new_net(X.shape[1]).layers[0]
    xb = X[np.sort(rng.choice(X.shape[0], BATCH, replace=False))]
    grad0 = rng.normal(size=(BATCH, HIDDEN)).astype(np.float32)
    grad = np.empty_like(grad0)

    def step():
        layer.forward(xb, training=True, need_input_grad=False)
        np.copyto(grad, grad0)
        layer.backward(grad, need_input_grad=False)

    step()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def fit_epoch(X, y):
    """Seconds of one epoch of ``fit`` (the loop's time, from the history) and of the whole call."""
    net = new_net(X.shape[1])
    t0 = time.perf_counter()
    hist = training.fit(net, X, y, epochs=1, batch_size=BATCH, verbose=0)
    return float(hist["time"][-1]), time.perf_counter() - t0


def run_config(name, d, sizes, args, rng):
    inputs, y = make_data(args.rows, d, sizes)
    kinds = list(inputs)
    layer = {k: [] for k in kinds}
    epoch = {k: [] for k in kinds}
    call = {k: [] for k in kinds}
    for _ in range(args.repeats):
        for k in kinds:
            layer[k].append(first_layer_step(inputs[k], args.calls, rng))
            e, c = fit_epoch(inputs[k], y)
            epoch[k].append(e)
            call[k].append(c)
    steps = -(-args.rows // BATCH)
    row = {"n_in": inputs["dense"].shape[1], "steps_per_epoch": steps,
           "first_layer": {k: common.summary(v) for k, v in layer.items()},
           "fit_epoch": {k: common.summary(v) for k, v in epoch.items()},
           "fit_call": {k: common.summary(v) for k, v in call.items()}}
    for part in ("first_layer", "fit_epoch", "fit_call"):
        row[f"{part}_ratio"] = row[part]["dense"]["median"] / row[part]["OneHotMatrix"]["median"]
    layer_ms = {k: v["median"] * 1e3 for k, v in row["first_layer"].items()}
    epoch_s = {k: v["median"] for k, v in row["fit_epoch"].items()}
    print(f"{name}: first layer {layer_ms['OneHotMatrix']:.3f} ms (OneHotMatrix) vs {layer_ms['dense']:.3f} ms "
          f"(dense), dense/onehot {row['first_layer_ratio']:.2f}; fit epoch {epoch_s['OneHotMatrix']:.3f} s vs "
          f"{epoch_s['dense']:.3f} s, dense/onehot {row['fit_epoch_ratio']:.2f}", flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50, help="first-layer steps per round")
    parser.add_argument("--quick", action="store_true", help="3 rounds of few calls on 4,000 rows (smoke test)")
    parser.add_argument("--out", default=str(common.RESULTS))
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.calls, args.rows = 3, 5, 4000
    rng = np.random.default_rng(1)
    blas = common.describe_blas(common.blas_info())
    idle = common.idle_fraction()
    results = {name: run_config(name, d, sizes, args, rng) for name, (d, sizes) in CONFIGS.items()}
    rows = []
    for name, r in results.items():
        for part, unit, scale, what in (("first_layer", "ms", 1e3, "first layer fwd+bwd, one batch"),
                                        ("fit_epoch", "ms/step", 1e3 / r["steps_per_epoch"], "fit, per step"),
                                        ("fit_epoch", "s", 1.0, "fit, one epoch")):
            o, dn = r[part]["OneHotMatrix"]["median"] * scale, r[part]["dense"]["median"] * scale
            rows.append([name, r["n_in"], what, f"{o:.3g} {unit}", f"{dn:.3g} {unit}", f"{r[part + '_ratio']:.2f}"])
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    env = "".join(f"{k}={v} " for k, v in common.machine_info()["env"].items())
    markdown = "\n".join([
        "## One-hot columns: indexed product against the dense one-hot array (bench_onehot.py)", "",
        f"{now}, {common.cpu_model()} ({common.usable_cpus()} usable CPUs), BLAS: {blas}, NumPy {np.__version__}.  ",
        f"Machine {'not measured' if idle is None else f'{idle:.0%} idle'} at the start, load average "
        f"{', '.join(f'{x:.1f}' for x in common.machine_info()['load_average'] or [])} at the end.  ",
        f"{args.rows:,} rows, network n_in-{HIDDEN}-{N_OUT} (ReLU, softmax, Adam), float32, batch {BATCH}.  ",
        f"Command: `{env}python benchmarks/bench_onehot.py{' --quick' if args.quick else ''}` "
        f"({args.repeats} interleaved rounds, medians; first layer: median of {args.calls} calls per round).", "",
        common.markdown_table(["input", "n_in", "timed", "OneHotMatrix", "dense array", "dense ÷ OneHotMatrix"],
                              rows), ""])
    common.write_results("onehot", {"date": now, "blas": blas, "machine": common.machine_info(),
                                    "rows": args.rows, "repeats": args.repeats, "calls": args.calls,
                                    "results": results}, markdown, args.out)
    print(markdown)


if __name__ == "__main__":
    main()

"""Where a training step's time goes: each part alone, against the whole step in ``fit``.

For each configuration of ``bench_speed.py`` (Fashion-MNIST, ReLU hidden
layers, softmax output, Adam), this times, interleaved over ``--repeats``
rounds (medians, milliseconds per step):

* ``products``: the step's matrix products alone (forward, weight gradients,
  input deltas except the first layer's), in deltaprop's layout;
* ``gather``: copying the batch's shuffled rows of the training set into the
  batch buffer (``X[idx]``), on one thread, and split over two threads;
* ``adam``: the optimizer's pass over all parameters (fused kernel when numba
  is installed);
* ``relu``: the fused bias+ReLU and ReLU-backward+bias-gradient passes of the
  hidden layers;
* ``step in fit``: a whole step inside ``net.fit`` (an epoch's time divided
  by its steps).

The sum of the parts against the step in ``fit`` shows how much is lost to
everything else (the output layer, the loss, Python, and the parts slowing
each other down through the caches); the parts show the floor under any
implementation on this machine: a target asking for a step shorter than
``products + gather`` cannot be met with this BLAS and memory system.

    python benchmarks/bench_step_parts.py [--repeats 5] [--quick]

Writes ``benchmarks/results/step_parts.md`` and ``step_parts.json``.
"""

import argparse
import datetime
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import numpy as np  # noqa: E402
from bench_speed import CONFIGS  # noqa: E402  (the configurations timed against the peers)



def per_call(fn, calls):
    """Median seconds of ``fn()`` over ``calls`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


class TwoThreadGather:
    """``out[:k] = X[idx]`` with the rows split between this thread and a helper thread."""

    def __init__(self, X, out):
        self.X, self.out, self.job = X, out, None
        self.go, self.done = threading.Semaphore(0), threading.Semaphore(0)
        self.thread = threading.Thread(target=self._work, daemon=True)
        self.thread.start()

    def _work(self):
        while True:
            self.go.acquire()
            if self.job is None:
                return
            idx, h = self.job
            self.out[h:idx.shape[0]] = self.X[idx[h:]]
            self.done.release()

    def __call__(self, idx):
        h = idx.shape[0] // 2
        self.job = (idx, h)
        self.go.release()
        self.out[:h] = self.X[idx[:h]]
        self.done.acquire()

    def close(self):
        self.job = None
        self.go.release()
        self.thread.join()


def measure(sizes, m, X, y, calls, rng):
    import deltaprop as dp
    from deltaprop import _kernels

    def make(seed=0):
        layers = [dp.Dense(a, b, activation="relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
        layers.append(dp.Dense(sizes[-2], sizes[-1], activation="softmax"))
        return dp.Network(layers, loss="categorical_crossentropy", dtype="float32", seed=seed)

    net = make()
    n = X.shape[0]
    perm = rng.permutation(n)
    batches = [perm[i:i + m] for i in range(0, n - m + 1, m)]
    out = np.empty((m, X.shape[1]), np.float32)
    state = {"b": 0}

    def next_idx():
        state["b"] = (state["b"] + 1) % len(batches)
        return batches[state["b"]]

    parts = {}
    # products, in the layout Dense uses (W.T contiguous)
    products = []
    for i, layer in enumerate(net.layers):
        A = rng.random((m, layer.n_in), dtype=np.float32)
        D = rng.random((m, layer.n_out), dtype=np.float32)
        Z = np.empty((m, layer.n_out), np.float32)
        G = np.empty((m, layer.n_in), np.float32)
        products += [lambda A=A, L=layer, Z=Z: np.matmul(A, L.W.T, out=Z),
                     lambda A=A, D=D, L=layer: np.matmul(A.T, D, out=L.grad_W.T)]
        if i > 0:
            products.append(lambda D=D, L=layer, G=G: np.matmul(D, L.W, out=G))
    parts["products"] = per_call(lambda: [f() for f in products], calls)
    def gather():
        out[:] = X[next_idx()]

    parts["gather"] = per_call(gather, calls)
    two = TwoThreadGather(X, out)
    try:
        parts["gather, 2 threads"] = per_call(lambda: two(next_idx()), calls)
    finally:
        two.close()
    opt = dp.Adam(learning_rate=1e-3)
    grads = rng.normal(scale=1e-3, size=net.n_params).astype(np.float32)
    parts["adam"] = per_call(lambda: opt.step(net.params, grads), calls)
    kernels = _kernels.get()
    relu = []
    for layer in net.layers[:-1]:
        z = rng.standard_normal((m, layer.n_out)).astype(np.float32)
        a = np.empty_like(z)
        g = rng.standard_normal((m, layer.n_out)).astype(np.float32)
        if kernels is not None:
            relu += [lambda z=z, L=layer, a=a: kernels.bias_relu(z, L.b, a),
                     lambda g=g, z=z, L=layer: kernels.relu_backward_bias(g, z, L.grad_b)]
        else:
            relu += [lambda z=z, L=layer, a=a: (np.add(z, L.b, out=z), np.maximum(z, 0, out=a)),
                     lambda g=g, z=z, L=layer: (np.multiply(g, z > 0, out=g), np.sum(g, axis=0, out=L.grad_b))]
    parts["relu"] = per_call(lambda: [f() for f in relu], calls)

    stamps = []
    clock = dp.LambdaCallback(on_epoch_end=lambda run, epoch, logs: stamps.append(time.perf_counter()))
    steps = max(2, min(len(batches), calls * (4 if m <= 200 else 1)))
    Xs, ys = X[:steps * m], y[:steps * m]
    make(1).fit(Xs, ys, epochs=2, batch_size=m, verbose=0, callbacks=[clock])
    parts["step in fit"] = (stamps[1] - stamps[0]) / steps
    return parts, kernels is not None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=40, help="calls per part and round (fewer on the wide network)")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--quick", action="store_true", help="2 rounds of few calls (smoke test)")
    parser.add_argument("--out", default=str(common.RESULTS))
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.calls = 2, 4
    common.ensure_src_on_path()
    X, y, _, _ = common.fashion_mnist()
    rng = np.random.default_rng(0)
    results, rows, fused = {}, [], None
    for name in args.configs:
        sizes, m = CONFIGS[name]["sizes"], CONFIGS[name]["batch_size"]
        calls = max(3, args.calls // 8) if sizes[1] > 1000 else args.calls
        rounds = []
        for _ in range(args.repeats):
            parts, fused = measure(sizes, m, X, y, calls, rng)
            rounds.append(parts)
        med = {k: float(np.median([r[k] for r in rounds])) for k in rounds[0]}
        alone = med["products"] + med["gather"] + med["adam"] + med["relu"]
        results[name] = {"sizes": sizes, "batch_size": m, "median_seconds": med, "sum_of_parts": alone,
                         "rounds": rounds}
        rows.append([f"{'-'.join(map(str, sizes))}, batch {m}"]
                    + [f"{med[k] * 1e3:.3f}" for k in ("products", "gather", "gather, 2 threads", "adam", "relu")]
                    + [f"{alone * 1e3:.3f}", f"{med['step in fit'] * 1e3:.3f}"])
        print(f"{name}: " + ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in med.items()), flush=True)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    blas = common.describe_blas(common.blas_info())
    markdown = "\n".join([
        "## Where a step's time goes (bench_step_parts.py)", "",
        f"{now}, {common.cpu_model()}, BLAS: {blas}; kernels: {'numba' if fused else 'numpy'}.  ",
        f"Command: `python benchmarks/bench_step_parts.py{' --quick' if args.quick else ''}` "
        f"({args.repeats} rounds, medians, ms per step; the sum leaves out the 2-thread gather).", "",
        common.markdown_table(["config", "products", "gather", "gather, 2 threads", "adam", "relu",
                               "sum of parts", "step in fit"], rows), ""])
    common.write_results("step_parts", {"date": now, "blas": blas, "machine": common.machine_info(),
                                        "repeats": args.repeats, "calls": args.calls, "results": results},
                         markdown, args.out)
    print(markdown)


if __name__ == "__main__":
    main()

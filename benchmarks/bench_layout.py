"""Why each layer's W is held column-major: the matrix products of a step in both layouts.

A Dense layer's step runs three products (two for the first layer):
forward ``Z = A @ W.T``, weight gradient ``grad_W = Δᵀ A`` and input delta
``G = Δ @ W``. With ``W`` (n_out, n_in) held row by row (as in checkpoint format 1)
these are, for the BLAS, ``A · Bᵀ``, ``Aᵀ · B``
and ``A · B``; with ``W`` held column-major (the flat store holds ``Wᵀ`` row
by row, as now) they are ``A · B``, ``Aᵀ · B`` (computing ``grad_Wᵀ = Aᵀ Δ``)
and ``A · Bᵀ``. Same arithmetic, different kernels and packing.

For each configuration of ``bench_speed.py`` this times every product of
one training step in both layouts, interleaved (row-major, column-major,
row-major, ...), ``--repeats`` rounds of ``--calls`` calls each, and prints the
median time per step of each layout and their ratio.

    python benchmarks/bench_layout.py [--repeats 7] [--calls 50] [--quick]

Writes ``benchmarks/results/layout.md`` and ``layout.json``.
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
from bench_speed import CONFIGS  # noqa: E402  (the configurations timed against the peers)



def step_products(sizes, m, column_major, rng):
    """The step's products as zero-argument callables, for one layout of every W."""
    calls = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        A = rng.random((m, n_in), dtype=np.float32)
        D = rng.random((m, n_out), dtype=np.float32)
        Z = np.empty((m, n_out), np.float32)
        G = np.empty((m, n_in), np.float32)
        if column_major:
            WT = rng.random((n_in, n_out), dtype=np.float32)  # the flat store's block
            W, gradWT = WT.T, np.empty((n_in, n_out), np.float32)
            calls += [lambda A=A, W=W, Z=Z: np.matmul(A, W.T, out=Z),
                      lambda A=A, D=D, g=gradWT: np.matmul(A.T, D, out=g)]
        else:
            W = rng.random((n_out, n_in), dtype=np.float32)
            gradW = np.empty((n_out, n_in), np.float32)
            calls += [lambda A=A, W=W, Z=Z: np.matmul(A, W.T, out=Z),
                      lambda A=A, D=D, g=gradW: np.matmul(D.T, A, out=g)]
        if i > 0:
            calls.append(lambda D=D, W=W, G=G: np.matmul(D, W, out=G))
    return calls


def time_step(calls, n):
    for f in calls:  # warm-up: thread pool, packing buffers
        f()
    t0 = time.perf_counter()
    for _ in range(n):
        for f in calls:
            f()
    return (time.perf_counter() - t0) / n


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50, help="steps per timing (10 for the wide network)")
    parser.add_argument("--quick", action="store_true", help="3 repeats of few calls (smoke test)")
    parser.add_argument("--out", default=str(common.RESULTS))
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.calls = 3, 5
    rng = np.random.default_rng(0)
    blas = common.describe_blas(common.blas_info())
    results, rows = {}, []
    for name, config in CONFIGS.items():
        sizes, m = config["sizes"], config["batch_size"]
        layouts = {"row-major": step_products(sizes, m, False, rng),
                   "column-major": step_products(sizes, m, True, rng)}
        n = max(1, args.calls // 5) if sizes[1] > 1000 else args.calls
        times = {k: [] for k in layouts}
        for _ in range(args.repeats):
            for k, calls in layouts.items():
                times[k].append(time_step(calls, n))
        row = {k: common.summary(v) for k, v in times.items()}
        row["ratio"] = row["row-major"]["median"] / row["column-major"]["median"]
        results[name] = row
        rows.append([f"{'-'.join(map(str, sizes))}, batch {m}",
                     f"{row['row-major']['median'] * 1e3:.3f}", f"{row['column-major']['median'] * 1e3:.3f}",
                     f"{row['ratio']:.2f}"])
        print(f"{name}: row-major {row['row-major']['median'] * 1e3:.3f} ms, "
              f"column-major {row['column-major']['median'] * 1e3:.3f} ms per step, ratio {row['ratio']:.2f}",
              flush=True)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    markdown = "\n".join([
        "## Weight layout: the matrix products of one training step (bench_layout.py)", "",
        f"{now}, {common.cpu_model()}, BLAS: {blas}.  ",
        f"Command: `python benchmarks/bench_layout.py{' --quick' if args.quick else ''}` "
        f"({args.repeats} interleaved rounds, medians).", "",
        common.markdown_table(["config", "W row-major (ms/step)", "W column-major (ms/step)",
                               "row-major ÷ column-major"], rows), ""])
    common.write_results("layout", {"date": now, "blas": blas, "machine": common.machine_info(),
                                    "repeats": args.repeats, "calls": args.calls, "results": results},
                         markdown, args.out)
    print(markdown)


if __name__ == "__main__":
    main()

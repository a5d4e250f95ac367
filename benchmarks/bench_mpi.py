"""Data-parallel scaling over MPI: samples per second on 1 and 2 ranks, and the all-reduce's share.

Run as a plain script; it starts itself under ``mpiexec`` (the one beside
the Python executable, from the ``mpich`` wheel, else the one on PATH)::

    python benchmarks/bench_mpi.py [--samples 32768] [--epochs 4] [--batch-size 256] [--out FILE]

Measured, for the network 784-256-128-10 (ReLU, softmax; 235,146 float32
parameters, 0.94 MB of gradient), Adam, global batch ``--batch-size`` on the
first ``--samples`` Fashion-MNIST images (synthetic data of that shape when
the Debian package is missing):

1. training throughput (samples per second, median over epochs after the
   first) for: 1 rank × 1 BLAS thread, 1 rank × 2 threads, 2 ranks × 1 thread
   (the deterministic ``ordered`` all-reduce), 2 ranks × 1 thread with plain
   ``MPI_Allreduce`` (``algorithm="mpi"``), and the share of each rank's fit
   time spent in ``allreduce_sum`` (waiting for the other rank included);
2. the time of one ``allreduce_sum`` on 2 ranks for float32 arrays of 1e3 to
   4e6 elements, both algorithms, fitted to the cost model
   ``T(P) = a + b · P`` and compared with that fit;
3. how far one global batch's all-reduced gradient on 2 ranks is from one
   process's, and the final parameters of each run from the 1 × 1 run's
   (``max|p - p_1| / max|p_1|``; the 1 rank × 2 threads run shows how far
   a different BLAS rounding alone carries a trajectory).

Results go to ``benchmarks/results/mpi.json`` (and are printed as tables).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SIZES = [1_000, 10_000, 100_000, 235_146, 1_000_000, 4_000_000]


def _mpiexec():
    here = Path(sys.executable).parent / "mpiexec"
    return str(here) if here.exists() else shutil.which("mpiexec")


# ------------------------------------------------------------------ worker
def worker(args):
    import deltaprop as dp
    from deltaprop.distributed import MPIComm

    comm = MPIComm(algorithm=args.algorithm)
    out = {"ranks": comm.size, "threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0")),
           "algorithm": args.algorithm}
    if comm.size > 1 and args.microbench:
        micro = {}
        for P in SIZES:
            a = np.zeros(P, dtype=np.float32)  # stays finite however often it is summed
            reps = max(5, min(2000, int(2e8 // (P * 40 + 2e5))))
            for _ in range(3):
                comm.allreduce_sum(a)
            comm.barrier()
            t0 = time.perf_counter()
            for _ in range(reps):
                comm.allreduce_sum(a)
            dt = (time.perf_counter() - t0) / reps
            micro[P] = max(comm.allgather(dt))
        out["allreduce_seconds"] = micro
    X, y, out["data"] = load_data(args.samples)
    net = dp.Network([dp.Dense(784, 256, activation="relu"), dp.Dense(256, 128, activation="relu"),
                      dp.Dense(128, 10, activation="softmax")], seed=0)
    # One global batch's gradient: the shards' all-reduced sum against one process's.
    m = args.batch_size
    Y = net.prepare_targets(y[:m])
    net.forward(X[:m], training=True)
    net.backward(Y, net.dtype.type(1.0 / m))
    g1 = net.grads.copy()
    r0, r1 = m * comm.rank // comm.size, m * (comm.rank + 1) // comm.size
    net.forward(X[r0:r1], training=True)
    net.backward(Y[r0:r1], net.dtype.type(1.0 / m))
    comm.allreduce_sum(net.grads)
    out["gradient_rel_diff"] = float(np.max(np.abs(net.grads - g1)) / np.max(np.abs(g1)))
    comm.barrier()
    comm.reduce_seconds, comm.reduce_calls = 0.0, 0
    t0 = time.perf_counter()
    hist = net.fit(X, y, epochs=args.epochs, batch_size=args.batch_size, optimizer="adam", verbose=0, comm=comm)
    total = time.perf_counter() - t0
    times = hist["time"][1:] or hist["time"]
    out["samples_per_second"] = args.samples / float(np.median(times))
    out["epoch_seconds"] = times
    out["fit_seconds"] = total
    out["allreduce_share"] = max(comm.allgather(comm.reduce_seconds / total))
    out["allreduce_calls"] = comm.reduce_calls
    out["final_loss"] = hist["loss"][-1]
    out["final_accuracy"] = hist["accuracy"][-1]
    out["n_params"] = int(net.n_params)
    if comm.is_root:
        np.save(args.params_out, net.params)
        with open(args.json_out, "w") as f:
            json.dump(out, f)


def load_data(n):
    """The first ``n`` Fashion-MNIST images scaled to [0, 1], else synthetic data of that shape."""
    try:
        from deltaprop.data import load_builtin

        ds = load_builtin("fashion-mnist")
        X = np.ascontiguousarray(ds.X[:n], dtype=np.float32) / np.float32(255)
        return X, np.asarray(ds.y[:n]), "fashion-mnist"
    except Exception:  # not installed: the same shapes, random
        rng = np.random.default_rng(0)
        return rng.standard_normal((n, 784)).astype(np.float32), rng.integers(0, 10, n), "synthetic"


# -------------------------------------------------------------- launcher
def launch(mpiexec, ranks, threads, algorithm, args, tmp, microbench=False):
    tag = f"n{ranks}-t{threads}-{algorithm}"
    env = dict(os.environ)
    for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[key] = str(threads)
    src = HERE.parent / "src"
    env["PYTHONPATH"] = os.pathsep.join([str(src)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    cmd = [mpiexec, "-n", str(ranks), sys.executable, str(Path(__file__).resolve()), "--worker",
           "--algorithm", algorithm, "--samples", str(args.samples), "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--json-out", str(tmp / f"{tag}.json"),
           "--params-out", str(tmp / f"{tag}.npy")] + (["--microbench"] if microbench else [])
    subprocess.run(cmd, env=env, check=True, timeout=1200)
    with open(tmp / f"{tag}.json") as f:
        result = json.load(f)
    result["params"] = np.load(tmp / f"{tag}.npy")
    return result


def fit_model(micro):
    """Least squares ``T(P) = a + b · P`` over the measured sizes (seconds, seconds per element)."""
    P = np.array([float(k) for k in micro])
    T = np.array(list(micro.values()))
    A = np.stack([np.ones_like(P), P], axis=1)
    (a, b), *_ = np.linalg.lstsq(A, T, rcond=None)
    return float(a), float(b)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--samples", type=int, default=32768)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", default=str(HERE / "results" / "mpi.json"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--microbench", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--algorithm", default="ordered", help=argparse.SUPPRESS)
    p.add_argument("--json-out", help=argparse.SUPPRESS)
    p.add_argument("--params-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    mpiexec = _mpiexec()
    if mpiexec is None:
        sys.exit("bench_mpi: no mpiexec found; pip install 'deltaprop[mpi]'")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = [launch(mpiexec, 1, 1, "ordered", args, tmp), launch(mpiexec, 1, 2, "ordered", args, tmp),
                launch(mpiexec, 2, 1, "ordered", args, tmp, microbench=True),
                launch(mpiexec, 2, 1, "mpi", args, tmp, microbench=True)]
    load_after = os.getloadavg()[0]
    base = runs[0]["samples_per_second"]
    print(f"\nTraining 784-256-128-10, Adam, global batch {args.batch_size}, {args.samples} samples of "
          f"{runs[0]['data']} ({os.cpu_count()} cores; load average {load_before:.1f} before, "
          f"{load_after:.1f} after: above the core count, other work shared the cores)\n")
    print("| ranks | BLAS threads / rank | all-reduce | samples/s | vs 1×1 | time in all-reduce | last epoch's "
          "loss, accuracy |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for r in runs:
        share = f"{100 * r['allreduce_share']:.1f} %" if r["ranks"] > 1 else "–"
        print(f"| {r['ranks']} | {r['threads']} | {r['algorithm'] if r['ranks'] > 1 else '–'} | "
              f"{r['samples_per_second']:,.0f} | {r['samples_per_second'] / base:.2f}× | {share} | "
              f"{r['final_loss']:.4f}, {r['final_accuracy']:.4f} |")
    ref = runs[0]["params"]
    drift = {f"{r['ranks']}x{r['threads']}-{r['algorithm']}":
             float(np.max(np.abs(r["params"] - ref)) / np.max(np.abs(ref))) for r in runs[1:]}
    print(f"\none global batch's gradient, 2 ranks against 1: max|g_2 - g_1| / max|g_1| = "
          f"{runs[2]['gradient_rel_diff']:.1e}")
    print(f"parameters after {args.epochs} epochs, max|p - p(1 rank × 1 thread)| / max|p|: "
          + ", ".join(f"{k}: {v:.1e}" for k, v in drift.items()))
    summary = {"config": vars(args) | {"cores": os.cpu_count(), "load_average": [load_before, load_after]},
               "drift_vs_one_rank": drift, "runs": []}
    for r in runs:
        summary["runs"].append({k: v for k, v in r.items() if k != "params"})
    print("\nOne allreduce_sum on 2 ranks, float32 (slowest rank; model T = a + b·P fitted to the ordered "
          "column)\n")
    ordered, plain = runs[2]["allreduce_seconds"], runs[3]["allreduce_seconds"]
    a, b = fit_model(ordered)
    a2, b2 = fit_model(plain)
    print("| P | bytes | ordered | model a + b·P | MPI_Allreduce |")
    print("|---:|---:|---:|---:|---:|")
    for key in ordered:
        P = int(key)
        print(f"| {P:,} | {4 * P / 1e6:.3g} MB | {ordered[key] * 1e6:,.0f} µs | {(a + b * P) * 1e6:,.0f} µs | "
              f"{plain[key] * 1e6:,.0f} µs |")
    print(f"\nordered: a = {a * 1e6:.1f} µs, b = {b * 1e9:.2f} ns per element "
          f"({4 / b / 1e9:.2f} GB/s of float32 reduced per rank); "
          f"MPI_Allreduce: a = {a2 * 1e6:.1f} µs, b = {b2 * 1e9:.2f} ns per element")
    summary["model"] = {"ordered": {"a_seconds": a, "b_seconds_per_element": b},
                        "mpi": {"a_seconds": a2, "b_seconds_per_element": b2}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(summary, indent=1, default=float))
    os.replace(tmp_out, out)
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()

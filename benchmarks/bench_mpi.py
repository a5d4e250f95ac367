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

4. what BatchNorm's extra all-reduces cost (``--part batchnorm``): three
   small all-reduces per BatchNorm layer and step (forward ``[Σx, M]`` and
   ``Σ(x − μ)²``, backward ``[ΣG, ΣG⊙x̂]``), each a synchronisation point
   in the middle of the step. The same networks with ``norm=None``,
   ``"layer"`` (the control: the same elementwise work, no reduction) and
   ``"batch"``, a tabular ResNet (3 residual blocks of width 256) and an MLP
   (3 hidden layers of 256), 32 synthetic features, 4 classes, Adam, global
   batch ``--batch-size``, on 1 and 2 ranks × 1 BLAS thread: time per step
   (median over ``--bn-repeats`` one-epoch fits of ``--bn-steps`` steps in
   each of ``--bn-rounds`` launches of 2 ranks; every network on both ranks
   and on rank 0 alone, interleaved, so that 1 and 2 ranks see the same
   machine), all-reduce calls per step, and the share of the step spent in
   BatchNorm's all-reduces (timed by wrapping the reduction the training
   loop hands the layers; waiting for the other rank included).

Results go to ``benchmarks/results/mpi.json`` (parts 1-3) and
``mpi_batchnorm.json`` / ``mpi_batchnorm.md`` (part 4), and are printed as
tables. ``--part scaling`` or ``--part batchnorm`` runs one of them.
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
sys.path.insert(0, str(HERE))
import common  # noqa: E402

SIZES = [1_000, 10_000, 100_000, 235_146, 1_000_000, 4_000_000]
#: part 4: synthetic tabular data and the width and depth of its networks
BN_FEATURES, BN_CLASSES, BN_WIDTH, BN_DEPTH = 32, 4, 256, 3
BN_NETWORKS = ("resnet", "mlp")
BN_NORMS = (None, "layer", "batch")


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


# ------------------------------------------------------- part 4: BatchNorm
class _Timed:
    """Wraps the reduction the training loop hands the layers: counts and times BatchNorm's all-reduces."""

    def __init__(self):
        self.seconds, self.calls = 0.0, 0

    def wrap(self, reduce):
        if reduce is None:
            return None

        def timed(array):
            t0 = time.perf_counter()
            reduce(array)
            self.seconds += time.perf_counter() - t0
            self.calls += 1
            return array

        return timed


def _bn_network(dp, family, norm):
    sizes = [BN_FEATURES] + [BN_WIDTH] * BN_DEPTH + [BN_CLASSES]
    net = dp.Network.from_sizes(sizes, loss="categorical_crossentropy", norm=norm, residual=family == "resnet",
                                seed=0)
    timer = _Timed()
    plain = net.set_batch_reduce
    net.set_batch_reduce = lambda reduce: plain(timer.wrap(reduce))  # fit's loop calls it on the instance
    return net, timer


def _busy_seconds():
    """CPU seconds the whole machine has been busy (all cores, steal included), from /proc/stat; None elsewhere."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def worker_bn(args):
    """Part 4, on 2 ranks: each network on both ranks, then on rank 0 alone, interleaved."""
    import deltaprop as dp
    from deltaprop import _kernels
    from deltaprop.distributed import MPIComm

    comm = MPIComm()
    # One rank's runs: rank 0 alone on a communicator of its own while rank 1 waits (sleeping between polls),
    # in the same launch as the 2-rank runs, so that both see the same machine (other work comes and goes).
    solo = MPIComm(comm=comm.MPI.COMM_SELF) if comm.is_root else None
    kernels = _kernels.backend()  # resolve "auto" now, so every variant runs the same kernels
    m, steps = args.batch_size, args.bn_steps
    rng = np.random.default_rng(0)
    X = rng.standard_normal((m * steps, BN_FEATURES)).astype(np.float32)
    y = (X @ rng.standard_normal((BN_FEATURES, BN_CLASSES))).argmax(axis=1)
    keys = [(ranks, f, n) for f in BN_NETWORKS for n in BN_NORMS for ranks in (comm.size, 1)]
    nets = {k: _bn_network(dp, k[1], k[2]) for k in keys}
    rows = {f"{r} {f}/{n}": [] for r, f, n in keys}
    for rep in range(args.bn_repeats + 1):  # round 0 warms up (workspaces, kernels) and is not kept
        for key in (keys if rep % 2 else keys[::-1]):  # interleaved, in alternating order
            ranks = key[0]
            net, timer = nets[key]
            on = comm if ranks == comm.size else solo
            comm.barrier()
            busy, cpu, wall = _busy_seconds(), time.process_time(), time.perf_counter()
            if on is not None:
                timer.seconds, timer.calls = 0.0, 0
                on.reduce_seconds, on.reduce_calls = 0.0, 0
                hist = net.fit(X, y, epochs=1, batch_size=m, optimizer="adam", verbose=0, comm=on)
                epoch = float(hist["time"][0])
                mine = [epoch, timer.seconds, on.reduce_seconds, timer.calls, on.reduce_calls]
            comm.barrier()
            # CPU time of the machine less that of both ranks: what other work took, in cores, during the fit
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            cpus = comm.allgather(cpu)
            other = None if busy is None else max(0.0, (_busy_seconds() - busy - sum(cpus)) / wall)
            everyone = comm.allgather(mine if on is not None else None)
            if rep and comm.is_root:
                everyone = [e for e in everyone if e is not None]
                rows[f"{ranks} {key[1]}/{key[2]}"].append({
                    "other_work_cores": other,
                    "step_seconds": max(e[0] for e in everyone) / steps,
                    "bn_reduce_share": max(e[1] / e[0] for e in everyone),  # the rank that waited most
                    "reduce_share": max(e[2] / e[0] for e in everyone),
                    "bn_reduce_calls_per_step": mine[3] / steps,
                    "reduce_calls_per_step": mine[4] / steps,
                    "final_loss": float(hist["loss"][-1]),
                })
    if comm.is_root:
        out = {"ranks": comm.size, "threads": int(os.environ.get("OPENBLAS_NUM_THREADS", "0")),
               "kernels": kernels, "blas": common.describe_blas(common.blas_info()),
               "n_params": {f"{f}/{n}": int(nets[(r, f, n)][0].n_params) for r, f, n in keys}, "repeats": rows}
        with open(args.json_out, "w") as f:
            json.dump(out, f)


def launch_bn(mpiexec, args, tmp, round_):
    tag = f"bn-r{round_}"
    env = common.child_env(extra={k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
    cmd = [mpiexec, "-n", "2", sys.executable, str(Path(__file__).resolve()), "--worker-bn",
           "--batch-size", str(args.batch_size), "--bn-steps", str(args.bn_steps), "--bn-repeats",
           str(args.bn_repeats), "--json-out", str(tmp / f"{tag}.json")]
    subprocess.run(cmd, env=env, check=True, timeout=1200)
    with open(tmp / f"{tag}.json") as f:
        return json.load(f)


def _median(rows, key):
    return float(np.median([r[key] for r in rows]))


def part_batchnorm(mpiexec, args):
    """Part 4: ``--bn-rounds`` launches of 2 ranks, each timing every network on 2 ranks and on 1; medians."""
    machine = common.machine_info()
    launches, idle = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.bn_rounds):
            idle.append(common.wait_for_idle(0.9, max_wait=args.bn_wait)[0])  # other work on the cores: wait
            launches.append(launch_bn(mpiexec, args, Path(tmp), r))
    load_after = os.getloadavg()[0]
    med = {}
    for key in launches[0]["repeats"]:
        rows = [row for launch in launches for row in launch["repeats"][key]]
        # fits during which other work took under args.bn_quiet cores, when there are 3 or more of them
        quiet = [r for r in rows if r["other_work_cores"] is not None and r["other_work_cores"] < args.bn_quiet]
        used = quiet if len(quiet) >= 3 else rows
        ranks, name = key.split(" ")
        med[(int(ranks), name)] = {k: _median(used, k) for k in rows[0] if k != "other_work_cores"} | {
            "n": len(used), "of": len(rows), "other_work_cores": _median(used, "other_work_cores")}
    table = []
    for family in BN_NETWORKS:
        for norm in BN_NORMS:
            key = f"{family}/{norm}"
            for ranks in (1, 2):
                d = med[(ranks, key)]
                base = med[(ranks, f"{family}/None")]["step_seconds"]
                speedup = med[(1, key)]["step_seconds"] / d["step_seconds"]
                table.append([family, str(norm), str(ranks), f"{d['step_seconds'] * 1e3:.3f}",
                              f"{d['step_seconds'] / base:.3f}×", f"{d['reduce_calls_per_step']:.0f}",
                              f"{d['bn_reduce_calls_per_step']:.0f}",
                              f"{100 * d['bn_reduce_share']:.1f} %" if ranks > 1 and norm == "batch" else "–",
                              f"{100 * d['reduce_share']:.1f} %" if ranks > 1 else "–",
                              f"{speedup:.2f}×" if ranks > 1 else "–", f"{d['n']}/{d['of']}",
                              f"{d['other_work_cores']:.2f}"])
    lines = []
    summary = {}
    for family in BN_NETWORKS:
        t = {(r, n): med[(r, f"{family}/{n}")]["step_seconds"] for r in (1, 2) for n in BN_NORMS}
        bn_vs_ln = {r: t[(r, "batch")] / t[(r, "layer")] for r in (1, 2)}
        # what BatchNorm costs beyond LayerNorm on 2 ranks, less its 1-rank extra halved (each rank has half
        # the rows): an estimate of the reductions' cost, waits included
        extra = (t[(2, "batch")] - t[(2, "layer")]) - (t[(1, "batch")] - t[(1, "layer")]) / 2
        in_reduce = med[(2, f"{family}/batch")]["bn_reduce_share"] * t[(2, "batch")]
        summary[family] = {"batch_over_layer": bn_vs_ln, "extra_seconds_estimate": extra,
                           "bn_reduce_seconds_per_step": in_reduce,
                           "speedup_2_ranks": {str(n): t[(1, n)] / t[(2, n)] for n in BN_NORMS}}
        lines.append(f"- {family}: BatchNorm / LayerNorm step time {bn_vs_ln[1]:.3f}× on 1 rank, "
                     f"{bn_vs_ln[2]:.3f}× on 2 ranks; on 2 ranks BatchNorm's all-reduces take "
                     f"{in_reduce * 1e3:.3f} ms of a {t[(2, 'batch')] * 1e3:.3f} ms step (waits included); "
                     f"the step-time estimate (2-rank BN − LN gap less half the 1-rank gap) is "
                     f"{extra * 1e3:+.3f} ms; 2 ranks against 1: {t[(1, None)] / t[(2, None)]:.2f}× without a "
                     f"norm, {t[(1, 'layer')] / t[(2, 'layer')]:.2f}× with LayerNorm, "
                     f"{t[(1, 'batch')] / t[(2, 'batch')]:.2f}× with BatchNorm")
    first = launches[0]
    command = "python benchmarks/bench_mpi.py " + " ".join(sys.argv[1:])
    markdown = "\n".join([
        "## BatchNorm's all-reduces under MPI (bench_mpi.py, part 4)", "",
        f"{machine['date']}, {machine['cpu']} ({machine['usable_cpus']} usable cores; load average "
        f"{machine['load_average'][0]:.2f} before, {load_after:.2f} after; idle before each launch: "
        f"{', '.join('–' if i is None else f'{100 * i:.0f} %' for i in idle)}), BLAS: {first['blas']} per rank; "
        f"kernels: {first['kernels']}.  ",
        f"Command: `{command.strip()}` ({args.bn_rounds} launches of 2 ranks; in each, {args.bn_repeats} "
        f"one-epoch fits of every network on both ranks and on rank 0 alone, interleaved, after one warm-up; "
        f"medians, ms per optimizer step of the slowest rank).", "",
        f"Networks from `Network.from_sizes([{BN_FEATURES}, {BN_WIDTH}, {BN_WIDTH}, {BN_WIDTH}, {BN_CLASSES}])`: "
        f"resnet = `residual=True` (stem, {BN_DEPTH} blocks of width {BN_WIDTH}, head), mlp = {BN_DEPTH} hidden "
        f"layers of {BN_WIDTH}; Adam, global batch {args.batch_size}, {args.bn_steps} steps per fit, synthetic "
        f"float32 data. 1 rank: rank 0 alone (an `MPIComm` over `COMM_SELF`) while rank 1 waits. \"vs none\": "
        f"step time over the same network without a norm on as many ranks. \"BN all-reduces\": share of the step "
        f"in BatchNorm's reductions, waiting for the other rank included (the rank that waited most); \"all "
        f"all-reduces\" adds the gradient's and the step's sums. \"other work\": the machine's CPU time less "
        f"both ranks' during a fit, per second, median over the fits kept; fits with {args.bn_quiet} cores or more "
        f"of other work are left out (\"fits kept\") unless fewer than 3 would remain.", "",
        common.markdown_table(["network", "norm", "ranks", "ms / step", "vs none", "all-reduces / step",
                               "of them BatchNorm's", "time in BN all-reduces", "time in all all-reduces",
                               "2 ranks vs 1", "fits kept", "other work (cores)"], table), "", *lines, ""])
    data = {"date": machine["date"], "blas": first["blas"], "kernels": first["kernels"], "machine": machine,
            "load_average_after": load_after, "idle_before_launches": idle, "command": command.strip(),
            "config": {"features": BN_FEATURES, "classes": BN_CLASSES, "width": BN_WIDTH, "depth": BN_DEPTH,
                       "batch_size": args.batch_size, "steps": args.bn_steps, "repeats": args.bn_repeats,
                       "rounds": args.bn_rounds, "quiet_below_cores": args.bn_quiet, "wait": args.bn_wait},
            "n_params": first["n_params"],
            "medians": {f"{ranks} ranks {key}": v for (ranks, key), v in med.items()},
            "summary": summary, "launches": launches}
    common.write_results(args.bn_name, data, markdown, Path(args.out).parent)
    print("\n" + markdown)


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
    p.add_argument("--part", choices=["all", "scaling", "batchnorm"], default="all",
                   help="parts 1-3 (scaling), part 4 (batchnorm), or both")
    p.add_argument("--bn-steps", type=int, default=16, help="part 4: optimizer steps per timed fit")
    p.add_argument("--bn-repeats", type=int, default=5, help="part 4: timed fits per network and launch")
    p.add_argument("--bn-rounds", type=int, default=2, help="part 4: launches (of 2 ranks)")
    p.add_argument("--bn-name", default="mpi_batchnorm", help="part 4: results file name, beside --out")
    p.add_argument("--bn-wait", type=float, default=60,
                   help="part 4: seconds to wait, at most, for the machine to be 90 %% idle before each launch")
    p.add_argument("--bn-quiet", type=float, default=0.25,
                   help="part 4: leave out fits during which other work took this many cores or more")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-bn", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--microbench", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--algorithm", default="ordered", help=argparse.SUPPRESS)
    p.add_argument("--json-out", help=argparse.SUPPRESS)
    p.add_argument("--params-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)
    if args.worker_bn:
        return worker_bn(args)
    mpiexec = _mpiexec()
    if mpiexec is None:
        sys.exit("bench_mpi: no mpiexec found; pip install 'deltaprop[mpi]'")
    if args.part in ("all", "scaling"):
        part_scaling(mpiexec, args)
    if args.part in ("all", "batchnorm"):
        part_batchnorm(mpiexec, args)


def part_scaling(mpiexec, args):
    """Parts 1-3: throughput on 1 and 2 ranks, the all-reduce's cost model, the drift."""
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

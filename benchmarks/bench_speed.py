"""Training speed: deltaprop against PyTorch and scikit-learn on Fashion-MNIST.

What it measures (the issue's "Benchmark suite"):

* Configurations: 784-256-128-10 (ReLU, softmax) at batch 32, 200 and 1024,
  and the wide 784-2048-2048-10 at batch 512; Adam, learning rate 1e-3.
* Contenders: ``deltaprop`` (with its compiled kernels when numba is
  installed), ``deltaprop-numpy`` (the pure-NumPy path, ``DELTAPROP_KERNELS=numpy``),
  ``torch-manual`` and ``torch-dataloader`` (PyTorch 2.13.0 CPU build), and at
  batch 200 ``sklearn-float64`` / ``sklearn-float32`` (see peers.py).
* Every run is a fresh worker process (no library's thread pool competes with
  another's); runs are interleaved (repetition 1 of every contender, then
  repetition 2, ...) with the order rotated each repetition; ``--repeats``
  (default 3) repetitions; reported: medians with min and max.
* A run trains a throwaway copy for a few steps (warm-up), then a fresh model
  for ``--epochs`` full epochs (default 2); the time of the last epoch is the
  steady-state "seconds per epoch" (the first epoch is reported too), then
  the test accuracy. The ratio of a peer is its median seconds per epoch
  divided by deltaprop's, from the same run of this script.
* Samples per second, and the fraction of the machine's matrix-multiply peak:
  the training work is counted as ``6 m Σ n_in n_out`` flops per step of
  ``m`` samples, and the peak is the best float32 ``numpy.matmul`` of two
  4096 × 4096 matrices, measured in this run (in its own worker, at the start
  of every repetition; the best of all is used).
* Which BLAS kernel and how many threads ran (threadpoolctl, in each worker),
  the machine, its load average, the environment variables that steer BLAS.
  ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` are unset for the workers
  unless ``--keep-openblas-env`` (the kernel that ran is reported either way).
* Peak resident memory of each deltaprop run, next to the data, parameter and
  workspace sizes; with ``--memmap-gb G`` (default 4; 0 skips it) a G GB
  float32 NPY file is written to a temporary folder and one epoch is trained
  from it memory-mapped, and its peak resident memory is reported.
* Start-up: ``import deltaprop`` against ``import numpy``, ``deltaprop --help``,
  and whether anything heavy was imported.
* ``--against REV`` adds the contender ``deltaprop@REV``: the same deltaprop
  run, with the library imported from a temporary ``git worktree`` of
  revision ``REV``, interleaved with the others. Its ratio to deltaprop is
  the old revision's time divided by this checkout's: how a change moved the
  speed, measured in one session.

Writes ``benchmarks/results/speed.json`` and ``speed.md`` and prints the
Markdown. Typical time on a quiet 2-core machine: 6-8 minutes (``--quick``:
about 2).

    python benchmarks/bench_speed.py [--quick] [--repeats 3] [--epochs 2]
        [--configs b32 b200 b1024 wide512] [--contenders deltaprop torch-manual ...]
        [--wide-samples 10240] [--memmap-gb 4] [--threads 0] [--budget-minutes 25] [--against REV]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import numpy as np  # noqa: E402
from peers import PEERS, Spec  # noqa: E402

SMALL = (784, 256, 128, 10)
WIDE = (784, 2048, 2048, 10)
CONFIGS = {
    "b32": dict(sizes=SMALL, batch_size=32),
    "b200": dict(sizes=SMALL, batch_size=200),
    "b1024": dict(sizes=SMALL, batch_size=1024),
    "wide512": dict(sizes=WIDE, batch_size=512),
}
CONTENDERS = ("deltaprop", "deltaprop-numpy", "torch-manual", "torch-dataloader", "sklearn-float64",
              "sklearn-float32")
#: which contenders run in which configuration (scikit-learn only where the issue sets a target)
PLAN = {
    "b32": ("deltaprop", "deltaprop-numpy", "torch-manual", "torch-dataloader"),
    "b200": CONTENDERS,
    "b1024": ("deltaprop", "deltaprop-numpy", "torch-manual", "torch-dataloader"),
    "wide512": ("deltaprop", "deltaprop-numpy", "torch-manual", "torch-dataloader"),
}
#: the issue's targets: (config, peer) -> least ratio peer time / deltaprop time
TARGETS = {
    ("b32", "torch-manual"): 2.0,
    ("b200", "torch-manual"): 1.5,
    ("b200", "sklearn-float64"): 3.0,
    ("b200", "sklearn-float32"): 2.0,
    ("b1024", "torch-manual"): 1.3,
    ("wide512", "torch-manual"): 1.0,
}
#: the wide network's deltaprop run must reach this fraction of the measured matmul peak
WIDE_PEAK_TARGET = 0.85
HEAVY_MODULES = ("sklearn", "matplotlib", "safetensors", "tqdm", "numba", "torch", "scipy", "pandas",
                 "threadpoolctl", "mpi4py")


# ============================================================== the workers
def run_deltaprop(spec, data):
    """deltaprop's own ``net.fit`` loop; the per-epoch times come from a callback."""
    common.ensure_src_on_path()
    import deltaprop as dp
    from deltaprop import _kernels

    if spec.threads:
        from threadpoolctl import threadpool_limits

        threadpool_limits(spec.threads)
    X, y, X_test, y_test = data
    n, bs = spec.n_train, spec.batch_size
    sizes = spec.sizes

    def make(seed):
        layers = [dp.Dense(a, b, activation="relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
        layers.append(dp.Dense(sizes[-2], sizes[-1], activation="softmax"))
        return dp.Network(layers, loss="categorical_crossentropy", dtype="float32", seed=seed)

    t0 = time.perf_counter()
    warm_n = min(n, bs * spec.warmup_steps)
    make(spec.seed + 1).fit(X[:warm_n], y[:warm_n], epochs=1, batch_size=bs,
                            optimizer=dp.Adam(learning_rate=spec.learning_rate), verbose=0)
    warmup = time.perf_counter() - t0

    Xn, yn = X[:n], y[:n]
    rss_before = common.current_rss_bytes()
    stamps = []
    clock = dp.LambdaCallback(on_epoch_end=lambda run, epoch, logs: stamps.append(time.perf_counter()))
    net = make(spec.seed)
    t0 = time.perf_counter()
    history = net.fit(Xn, yn, epochs=spec.epochs, batch_size=bs, optimizer=dp.Adam(learning_rate=spec.learning_rate),
                      verbose=0, callbacks=[clock])
    total = time.perf_counter() - t0
    epoch_times = list(np.diff([t0] + stamps))
    workspaces = sum(getattr(layer, name).nbytes for layer in net.layers
                     for name in ("_z", "_a", "_out", "_g_prev")
                     if getattr(layer, name, None) is not None and not (name == "_a" and layer._a is layer._z))
    acc = float(np.mean(net.predict(X_test).argmax(axis=1) == y_test))
    return {
        "epoch_seconds": epoch_times, "warmup_seconds": warmup, "fit_seconds": total,
        "final_epoch_loss": float(history["loss"][-1]), "test_accuracy": acc,
        "memory": {"peak_rss": common.peak_rss_bytes(), "rss_before_fit": rss_before,
                   "data": Xn.nbytes + yn.nbytes, "params": net.params.nbytes,
                   "workspaces": workspaces},
        "info": {"library": "deltaprop", "version": dp.__version__, "kernels": _kernels.backend(),
                 "numba": getattr(_kernels.get(), "numba_version", None)},
    }


def run_peak(spec, data):
    """The matmul peak: best float32 numpy.matmul of two n × n matrices."""
    return common.matmul_peak(n=spec.extra.get("n", 4096), repeats=spec.extra.get("repeats", 3))


def run_memmap(spec, data):
    """One epoch from a memory-mapped NPY file of about ``gb`` GB; peak resident memory."""
    common.ensure_src_on_path()
    import deltaprop as dp

    path = spec.extra["path"]
    X = np.load(path, mmap_mode="r")
    y = np.load(path + ".y.npy")
    sizes = spec.sizes
    layers = [dp.Dense(a, b, activation="relu") for a, b in zip(sizes[:-2], sizes[1:-1])]
    layers.append(dp.Dense(sizes[-2], sizes[-1], activation="softmax"))
    net = dp.Network(layers, seed=spec.seed)
    rss_before = common.current_rss_bytes()
    t0 = time.perf_counter()
    history = net.fit(X, y, epochs=1, batch_size=spec.batch_size, verbose=0,
                      optimizer=dp.Adam(learning_rate=spec.learning_rate))
    seconds = time.perf_counter() - t0
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                status[key] = int(line.split()[1]) * 1024
    return {"file_bytes": os.path.getsize(path), "n_samples": int(X.shape[0]), "seconds": seconds,
            "loss": float(history["loss"][-1]), "peak_rss": common.peak_rss_bytes(),
            "rss_before_fit": rss_before, "status_after": status}


def write_memmap(spec, data):
    """Write the memory-mapped file: Fashion-MNIST's rows repeated to about ``gb`` GB."""
    X, y = data[0], data[1]
    path, gb = spec.extra["path"], spec.extra["gb"]
    n = int(gb * 1e9 // (X.shape[1] * 4))
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, X.shape[1]))
    for start in range(0, n, X.shape[0]):
        k = min(X.shape[0], n - start)
        out[start:start + k] = X[:k]
        out.flush()
    del out
    np.save(path + ".y.npy", np.resize(y, n))
    return {"n_samples": n, "file_bytes": os.path.getsize(path)}


WORKERS = {"deltaprop": run_deltaprop, "deltaprop-numpy": run_deltaprop, "peak": run_peak,
           "memmap": run_memmap, "write-memmap": write_memmap, **PEERS}


def worker_main(job):
    spec = Spec(**{**job["spec"], "sizes": tuple(job["spec"]["sizes"])})
    data = common.fashion_mnist() if job["kind"] not in ("peak", "memmap") else None
    t0 = time.perf_counter()
    result = WORKERS[job["kind"]](spec, data)
    result["worker_seconds"] = time.perf_counter() - t0
    result["blas"] = common.blas_info()
    result["env"] = {k: os.environ.get(k) for k in common.BLAS_ENV if os.environ.get(k) is not None}
    common.send_result(result)


# ========================================================= the orchestrator
def run_job(kind, spec, args, timeout=900):
    # Waiting for a quiet machine may use up to 60 % of the time budget, no more.
    spare = 0.6 * args.budget_minutes * 60 - (time.perf_counter() - args.started)
    max_wait = min(args.wait_idle, spare)
    idle, waited = common.wait_for_idle(args.idle_threshold, max_wait) if max_wait > 0 else (None, 0.0)
    result = _run_job(kind, spec, args, timeout)
    result["idle_before"], result["waited_for_idle"] = idle, waited
    return result


def _run_job(kind, spec, args, timeout):
    extra_env = {}
    if kind == "deltaprop-numpy":
        extra_env["DELTAPROP_KERNELS"] = "numpy"
    unset = () if args.keep_openblas_env else common.UNSET_BY_DEFAULT
    against = kind.startswith("deltaprop@")
    env = common.child_env(unset=unset, extra=extra_env, src=getattr(args, "against_src", None) if against else None)
    job = {"kind": "deltaprop" if against else kind, "spec": spec.as_dict()}
    result, wall = common.run_worker(Path(__file__).resolve(), job, env, timeout)
    if "error" not in result:
        result["process_seconds"] = wall
    return result


def available(kind):
    if kind.startswith("torch"):
        mod = "torch"
    elif kind.startswith("sklearn"):
        mod = "sklearn"
    else:
        return True
    probe = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True)
    return probe.returncode == 0


def startup_checks(reps=7):
    """``import numpy`` vs ``import deltaprop``, ``deltaprop --help``, and the heavy modules imported."""
    env = common.child_env()

    def timed(cmd):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        return time.perf_counter() - t0, proc

    py = sys.executable
    script = Path(py).parent / "deltaprop"
    help_cmd = [str(script), "--help"] if script.exists() else [py, "-m", "deltaprop", "--help"]
    runs = {"import numpy": [], "import deltaprop": [], "deltaprop --help": []}
    help_ok = None
    for _ in range(reps):
        runs["import numpy"].append(timed([py, "-c", "import numpy"])[0])
        runs["import deltaprop"].append(timed([py, "-c", "import deltaprop"])[0])
        t, proc = timed(help_cmd)
        runs["deltaprop --help"].append(t)
        help_ok = proc.returncode == 0
    heavy = {}
    for label, cmd in (("import deltaprop", [py, "-X", "importtime", "-c", "import deltaprop"]),
                       ("deltaprop --help", [py, "-X", "importtime", "-m", "deltaprop", "--help"])):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        names = set()
        for line in proc.stderr.splitlines():
            if line.startswith("import time:") and "|" in line:
                names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
        heavy[label] = sorted(names & set(HEAVY_MODULES))
    out = {k: common.summary(v) for k, v in runs.items()}
    out["help_command"] = " ".join(Path(c).name if i == 0 else c for i, c in enumerate(help_cmd))
    out["help_exit_ok"] = help_ok
    out["heavy_modules"] = heavy
    out["import_overhead_seconds"] = out["import deltaprop"]["median"] - out["import numpy"]["median"]
    return out


def memmap_check(args):
    folder = tempfile.mkdtemp(prefix="deltaprop-bench-")
    path = os.path.join(folder, "X.npy")
    try:
        written = run_job("write-memmap", Spec(extra={"path": path, "gb": args.memmap_gb}), args)
        if "error" in written:
            return {"error": written["error"]}
        spec = Spec(sizes=SMALL, batch_size=1024, extra={"path": path})
        result = run_job("memmap", spec, args, timeout=1800)
        result["write"] = {k: written.get(k) for k in ("n_samples", "file_bytes", "worker_seconds")}
        return result
    finally:
        for name in os.listdir(folder):
            os.remove(os.path.join(folder, name))
        os.rmdir(folder)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 repetition, 1 epoch, no memory-mapped run: a smoke test, not a measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run; the last one is timed")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--contenders", nargs="*", default=list(CONTENDERS), choices=list(CONTENDERS))
    parser.add_argument("--wide-samples", type=int, default=10240,
                        help="training samples per epoch for the wide network (its epoch time is scaled to 60000)")
    parser.add_argument("--memmap-gb", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=0, help="threads for every library (0: their defaults)")
    parser.add_argument("--keep-openblas-env", action="store_true",
                        help="keep OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the workers")
    parser.add_argument("--wait-idle", type=float, default=60.0,
                        help="before each run, wait up to this many seconds for other work on the machine to stop "
                             "(0: never wait); the idle fraction seen is reported")
    parser.add_argument("--idle-threshold", type=float, default=0.9,
                        help="the machine counts as idle at this fraction of idle CPU time over half a second")
    parser.add_argument("--budget-minutes", type=float, default=25.0,
                        help="start no new repetition after this many minutes")
    parser.add_argument("--against", metavar="REV",
                        help="also run deltaprop from a git worktree of revision REV (contender deltaprop@REV)")
    parser.add_argument("--out", default=str(common.RESULTS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.started = time.perf_counter()
    if args.worker:
        worker_main(json.loads(args.worker))
        return 0
    if args.quick:
        args.repeats, args.epochs, args.memmap_gb = 1, 1, 0.0
    if not args.against:
        return _main(args)
    folder = tempfile.mkdtemp(prefix="deltaprop-against-")
    subprocess.run(["git", "worktree", "add", "--detach", folder, args.against], cwd=common.ROOT, check=True,
                   capture_output=True)
    try:
        args.against_src = os.path.join(folder, "src")
        return _main(args)
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", folder], cwd=common.ROOT, capture_output=True)


def _main(args):
    started = args.started = time.perf_counter()
    machine = common.machine_info()
    print(f"# bench_speed on {machine['cpu']} ({machine['usable_cpus']} CPUs), load {machine['load_average']}",
          flush=True)
    common.fashion_mnist()  # decode once, before any worker needs it
    contenders = [c for c in args.contenders if available(c)]
    skipped = sorted(set(args.contenders) - set(contenders))
    if skipped:
        print(f"not installed, skipped: {', '.join(skipped)}", flush=True)

    specs = {}
    for name in args.configs:
        cfg = CONFIGS[name]
        n = args.wide_samples if name == "wide512" else 60000
        specs[name] = Spec(sizes=cfg["sizes"], batch_size=cfg["batch_size"], epochs=args.epochs, n_train=n,
                           threads=args.threads)
    runs = {name: {c: [] for c in PLAN[name] if c in contenders} for name in args.configs}
    if args.against:
        for by_kind in runs.values():
            if "deltaprop" in by_kind:
                by_kind[f"deltaprop@{args.against}"] = []
    peaks = []
    reps_done = 0
    for rep in range(args.repeats):
        if rep and (time.perf_counter() - started) / 60 > args.budget_minutes:
            print(f"budget of {args.budget_minutes} min reached: stopping after {rep} repetitions", flush=True)
            break
        peak = run_job("peak", Spec(threads=args.threads), args)
        peaks.append(peak)
        print(f"[rep {rep + 1}] matmul peak {peak.get('gflops', float('nan')):.0f} GFLOP/s", flush=True)
        for name in args.configs:
            order = list(runs[name])
            k = rep % len(order) if order else 0
            for kind in order[k:] + order[:k]:
                result = run_job(kind, specs[name], args)
                runs[name][kind].append(result)
                if "error" in result:
                    print(f"[rep {rep + 1}] {name} {kind}: ERROR {result['error']}", flush=True)
                else:
                    print(f"[rep {rep + 1}] {name} {kind}: epoch {result['epoch_seconds'][-1]:.3f} s, "
                          f"test accuracy {result['test_accuracy']:.4f}", flush=True)
        reps_done = rep + 1
    memmap = memmap_check(args) if args.memmap_gb > 0 else None
    startup = startup_checks()
    peaks.append(run_job("peak", Spec(threads=args.threads), args))

    data = analyse(args, machine, specs, runs, peaks, memmap, startup, reps_done, time.perf_counter() - started)
    markdown = render(data)
    common.write_results("speed", data, markdown, folder=args.out)
    print(markdown)
    return 0


# ================================================================ analysis
def analyse(args, machine, specs, runs, peaks, memmap, startup, reps_done, seconds):
    good_peaks = [p["gflops"] for p in peaks if "gflops" in p]
    peak = max(good_peaks) if good_peaks else None  # the best seen: the conservative reference
    median_peak = float(np.median(good_peaks)) if good_peaks else None
    configs = {}
    for name, by_kind in runs.items():
        spec = specs[name]
        flops_per_sample = common.training_flops_per_sample(spec.sizes)
        scale = 60000 / spec.n_train  # seconds per epoch of the full 60000 samples
        rows = {}
        for kind, results in by_kind.items():
            ok = [r for r in results if "error" not in r]
            last = [r["epoch_seconds"][-1] * scale for r in ok]
            first = [r["epoch_seconds"][0] * scale for r in ok]
            med = common.summary(last)
            row = {"epoch_seconds": med, "first_epoch_seconds": common.summary(first),
                   "test_accuracy": common.summary([r["test_accuracy"] for r in ok]),
                   "warmup_seconds": common.summary([r["warmup_seconds"] for r in ok]),
                   "errors": [r["error"] for r in results if "error" in r]}
            if med:
                sps = 60000 / med["median"]
                row["samples_per_second"] = sps
                row["gflops"] = sps * flops_per_sample / 1e9
                row["fraction_of_peak"] = row["gflops"] / peak if peak else None
                row["fraction_of_median_peak"] = row["gflops"] / median_peak if median_peak else None
            if ok:
                row["info"] = ok[-1].get("info")
                row["blas"] = common.describe_blas(ok[-1].get("blas", []))
                if "memory" in ok[-1]:
                    row["memory"] = {k: max(r["memory"][k] or 0 for r in ok) for k in ok[-1]["memory"]}
            rows[kind] = row
        base = rows.get("deltaprop", {}).get("epoch_seconds")
        for kind, row in rows.items():
            if base and row.get("epoch_seconds"):
                row["ratio_to_deltaprop"] = row["epoch_seconds"]["median"] / base["median"]
        configs[name] = {"spec": spec.as_dict(), "flops_per_sample": flops_per_sample, "contenders": rows}
    targets = []
    for (name, peer), least in TARGETS.items():
        row = configs.get(name, {}).get("contenders", {}).get(peer)
        ratio = row.get("ratio_to_deltaprop") if row else None
        targets.append({"config": name, "peer": peer, "target": least, "ratio": ratio,
                        "met": None if ratio is None else ratio >= least})
    wide = configs.get("wide512", {}).get("contenders", {}).get("deltaprop")
    if wide and wide.get("fraction_of_peak") is not None:
        targets.append({"config": "wide512", "peer": "fraction of matmul peak (best of the run's measurements)",
                        "target": WIDE_PEAK_TARGET, "ratio": wide["fraction_of_peak"],
                        "met": wide["fraction_of_peak"] >= WIDE_PEAK_TARGET})
        targets.append({"config": "wide512", "peer": "fraction of matmul peak (median of the run's measurements)",
                        "target": WIDE_PEAK_TARGET, "ratio": wide["fraction_of_median_peak"],
                        "met": wide["fraction_of_median_peak"] >= WIDE_PEAK_TARGET})
    if startup:
        over = startup["import_overhead_seconds"]
        targets.append({"config": "startup", "peer": "import deltaprop − import numpy (s)", "target": 0.05,
                        "ratio": over, "met": over <= 0.05, "lower_is_better": True})
        hm = startup["deltaprop --help"]["median"] if startup.get("help_exit_ok") else None
        targets.append({"config": "startup", "peer": "deltaprop --help (s)", "target": 0.3, "ratio": hm,
                        "met": None if hm is None else hm < 0.3, "lower_is_better": True})
    if memmap and "peak_rss" in memmap:
        targets.append({"config": "memmap", "peer": f"peak RSS, {memmap['file_bytes'] / 1e9:.1f} GB memmap (GiB)",
                        "target": 1.0, "ratio": memmap["peak_rss"] / 2**30, "met": memmap["peak_rss"] < 2**30,
                        "lower_is_better": True})
    idles = [r.get("idle_before") for by_kind in runs.values() for results in by_kind.values() for r in results]
    idle = common.summary([x for x in idles if x is not None])
    waited = sum(r.get("waited_for_idle", 0.0) for by_kind in runs.values() for results in by_kind.values()
                 for r in results)
    command = "python benchmarks/bench_speed.py " + " ".join(sys.argv[1:])
    return {"benchmark": "speed", "command": command.strip(), "machine": machine, "repeats": reps_done,
            "epochs": args.epochs, "seconds": seconds, "idle_before_runs": idle, "seconds_waited_for_idle": waited,
            "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "matmul_peak_gflops": peak, "matmul_peak_median_gflops": median_peak,
            "matmul_peaks": [p.get("gflops") for p in peaks],
            "peak_blas": common.describe_blas(peaks[0].get("blas", [])) if peaks else None, "configs": configs,
            "targets": targets, "memmap": memmap, "startup": startup}


def render(d):
    m = d["machine"]
    out = ["## Training speed (bench_speed.py)", "",
           f"{m['date']}, {m['cpu']}, {m['usable_cpus']} usable CPUs, load average at start "
           f"{', '.join(f'{x:.2f}' for x in m['load_average'] or [])}; Python {m['python']}, NumPy {m['numpy']}.  ",
           f"Command: `{d['command']}` ({d['repeats']} repetitions, {d['epochs']} epochs per run, "
           f"the last one timed; {d['seconds'] / 60:.1f} min).  ",
           (f"Idle CPU fraction of the machine just before each run: median {d['idle_before_runs']['median']:.2f}, "
            f"min {d['idle_before_runs']['min']:.2f} ({d['seconds_waited_for_idle']:.0f} s spent waiting for other "
            f"work to stop); load average at the end "
            f"{', '.join(f'{x:.2f}' for x in d['load_average_at_end'] or [])}.  ") if d.get("idle_before_runs") else "",
           f"Matrix-multiply peak (float32 numpy.matmul, 4096²): {common.fmt(d['matmul_peak_gflops'])} GFLOP/s "
           f"(per measurement: {', '.join(common.fmt(x) for x in d['matmul_peaks'])}); BLAS: {d['peak_blas']}.", ""]
    if m.get("env"):
        out += [f"Environment: {', '.join(f'{k}={v}' for k, v in m['env'].items())} "
                f"(OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset for the workers unless --keep-openblas-env).", ""]
    header = ["config", "contender", "s/epoch median (min–max)", "ratio to deltaprop", "samples/s", "GFLOP/s",
              "% of peak", "test acc.", "threads / BLAS"]
    rows = []
    for name, cfg in d["configs"].items():
        spec = cfg["spec"]
        label = f"{'-'.join(map(str, spec['sizes']))}, batch {spec['batch_size']}"
        if spec["n_train"] != 60000:
            label += f" ({spec['n_train']} samples/epoch, scaled to 60000)"
        for kind, row in cfg["contenders"].items():
            es = row.get("epoch_seconds")
            if not es:
                rows.append([label, kind, "error: " + "; ".join(row.get("errors", []))[:80], "", "", "", "", "", ""])
                continue
            info = row.get("info") or {}
            if info.get("library") == "torch":  # its own BLAS; numpy's OpenBLAS is loaded but unused
                tb = f"{info.get('threads')} threads, {info.get('blas')} ({info.get('cpu_capability')})"
            elif info.get("library") == "deltaprop":
                tb = f"kernels {info.get('kernels')}, {row.get('blas', '')}"
            else:
                tb = row.get("blas", "")
            rows.append([label, kind, f"{es['median']:.3f} ({es['min']:.3f}–{es['max']:.3f})",
                         common.fmt(row.get("ratio_to_deltaprop")), f"{row['samples_per_second']:,.0f}",
                         common.fmt(row["gflops"]), common.fmt(100 * row["fraction_of_peak"]) if row.get(
                             "fraction_of_peak") else "–",
                         f"{row['test_accuracy']['median']:.4f}", tb])
    out += [common.markdown_table(header, rows), ""]
    out += ["Targets (ratio = peer's seconds per epoch ÷ deltaprop's, same run):", ""]
    trows = []
    for t in d["targets"]:
        sign = "≤" if t.get("lower_is_better") else "≥"
        met = "–" if t["met"] is None else ("yes" if t["met"] else "**no**")
        trows.append([t["config"], t["peer"], f"{sign} {t['target']}", common.fmt(t["ratio"]), met])
    out += [common.markdown_table(["config", "measure", "target", "measured", "met"], trows), ""]
    mem_rows = []
    for name, cfg in d["configs"].items():
        for kind in ("deltaprop", "deltaprop-numpy"):
            mem = cfg["contenders"].get(kind, {}).get("memory")
            if mem:
                mem_rows.append([name, kind, f"{common.mib(mem['peak_rss']):.0f}", f"{common.mib(mem['data']):.0f}",
                                 f"{common.mib(mem['params']):.1f}", f"{common.mib(mem['workspaces']):.1f}",
                                 f"{common.mib(mem['rss_before_fit']):.0f}"])
    if mem_rows:
        out += ["Memory of the deltaprop runs (MiB; the worker also holds the test set and the warm-up copy):", "",
                common.markdown_table(["config", "contender", "peak RSS", "training data", "parameters",
                                       "batch workspaces", "RSS before fit"], mem_rows), ""]
    mm = d.get("memmap")
    if mm:
        if "error" in mm:
            out += [f"Memory-mapped run: error: {mm['error']}", ""]
        else:
            st = mm.get("status_after", {})
            out += [f"Memory-mapped run: {mm['file_bytes'] / 1e9:.2f} GB NPY file ({mm['n_samples']:,} samples), "
                    f"one epoch at batch 1024 in {mm['seconds']:.1f} s: peak RSS "
                    f"{common.mib(mm['peak_rss']):.0f} MiB (after: anonymous {common.mib(st.get('RssAnon')) or 0:.0f} "
                    f"MiB, file-backed {common.mib(st.get('RssFile')) or 0:.0f} MiB).", ""]
    su = d.get("startup")
    if su:
        out += [f"Start-up (median of {su['import numpy']['n']}): `import numpy` {su['import numpy']['median']:.3f} s, "
                f"`import deltaprop` {su['import deltaprop']['median']:.3f} s "
                f"(+{su['import_overhead_seconds']:.3f} s), `{su['help_command']}` "
                f"{su['deltaprop --help']['median']:.3f} s{'' if su['help_exit_ok'] else ' (failed)'}; "
                f"heavy modules imported: import deltaprop: "
                f"{', '.join(su['heavy_modules']['import deltaprop']) or 'none'}; "
                f"--help: {', '.join(su['heavy_modules']['deltaprop --help']) or 'none'}.", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())

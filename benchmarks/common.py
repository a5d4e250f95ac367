"""Shared helpers of the benchmark scripts: data, machine facts, the matmul peak, timing, result files.

Nothing here imports PyTorch or scikit-learn; the scripts that compare with
them import them in their own worker processes.
"""

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"

#: environment variables that change which BLAS kernel runs or how many threads it uses
BLAS_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
            "MKL_NUM_THREADS", "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_VERBOSE", "GOTO_NUM_THREADS",
            "DELTAPROP_KERNELS", "DELTAPROP_NUM_THREADS")
#: variables a benchmark may unset for its own processes (see child_env)
UNSET_BY_DEFAULT = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


#: a worker whose environment names another source tree here imports deltaprop from it
SRC_ENV = "DELTAPROP_BENCH_SRC"


def ensure_src_on_path():
    """Make ``import deltaprop`` work from a source checkout (this one, or ``$DELTAPROP_BENCH_SRC``)."""
    src = os.environ.get(SRC_ENV) or str(ROOT / "src")
    if src not in sys.path and os.path.isdir(os.path.join(src, "deltaprop")):
        sys.path.insert(0, src)


def child_env(unset=UNSET_BY_DEFAULT, extra=None, src=None):
    """The environment for a worker process: ``unset`` removed, ``src`` (default this checkout's ``src/``)
    first on PYTHONPATH, ``extra`` added."""
    env = {k: v for k, v in os.environ.items() if k not in set(unset)}
    src = str(ROOT / "src") if src is None else str(src)
    if src != str(ROOT / "src"):
        env[SRC_ENV] = src
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.update(extra or {})
    return env


# ------------------------------------------------------------------ data
def deltaprop_command():
    """How to start deltaprop's command line: the installed script beside this Python, else ``-m deltaprop``."""
    script = Path(sys.executable).with_name("deltaprop")
    return [str(script)] if script.exists() else [sys.executable, "-m", "deltaprop"]


def cache_dir():
    """Where decoded data sets are cached as .npy (``DELTAPROP_BENCH_CACHE`` or the user cache)."""
    d = os.environ.get("DELTAPROP_BENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "deltaprop-bench")
    os.makedirs(d, exist_ok=True)
    return d


def fashion_mnist():
    """Fashion-MNIST as ``(X, y, X_test, y_test)``: X float32 in [0, 1] (pixels / 255), y int64.

    Decoded once from Debian's ``dataset-fashion-mnist`` through
    :func:`deltaprop.data.load_builtin` and cached as .npy files, so every
    worker process loads it in a fraction of a second.
    """
    d = cache_dir()
    names = ("X", "y", "X_test", "y_test")
    paths = [os.path.join(d, f"fashion_mnist_{n}.npy") for n in names]
    if not all(os.path.exists(p) for p in paths):
        ensure_src_on_path()
        from deltaprop.data import load_builtin

        ds = load_builtin("fashion-mnist")
        arrays = ((ds.X / np.float32(255)).astype(np.float32), ds.y.astype(np.int64),
                  (ds.X_test / np.float32(255)).astype(np.float32), ds.y_test.astype(np.int64))
        for p, a in zip(paths, arrays):
            tmp = f"{p}.{os.getpid()}.tmp.npy"
            np.save(tmp, a)
            os.replace(tmp, p)
    return tuple(np.load(p) for p in paths)


# --------------------------------------------------------------- machine
def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def machine_info():
    """Facts about this machine and process environment, for the report."""
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        mem = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "memory_bytes": mem,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "env": {k: os.environ.get(k) for k in BLAS_ENV if os.environ.get(k) is not None},
    }


def blas_info():
    """What threadpoolctl sees in this process: each BLAS/OpenMP library, its kernel and threads."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"error": "threadpoolctl is not installed"}]
    keep = ("user_api", "internal_api", "prefix", "version", "architecture", "threading_layer", "num_threads")
    out = []
    for info in threadpool_info():
        row = {k: info.get(k) for k in keep if info.get(k) is not None}
        # whose copy it is: numpy.libs, scipy.libs, torch/lib, ...
        parts = Path(info.get("filepath", "")).parts
        row["owner"] = "/".join(parts[-3:-1]) if len(parts) >= 3 else info.get("filepath")
        out.append(row)
    return out


def describe_blas(infos):
    """The BLAS NumPy calls, as ``openblas 0.3.31 SkylakeX, 2 threads`` (other packages' copies left out)."""
    out = []
    for info in infos:
        if info.get("user_api") != "blas":
            continue
        several = len([i for i in infos if i.get("user_api") == "blas"]) > 1
        if several and "numpy" not in str(info.get("owner", "numpy")):
            continue  # another package's copy (scipy's, loaded by numba or scikit-learn): not what numpy calls
        arch = info.get("architecture") or "?"
        out.append(f"{info.get('internal_api')} {info.get('version') or ''} {arch}, "
                   f"{info.get('num_threads')} threads".replace("  ", " "))
    return "; ".join(out) or "no BLAS seen by threadpoolctl"


def matmul_peak(n=4096, repeats=3, dtype=np.float32):
    """Best GFLOP/s of ``numpy.matmul`` on two ``n × n`` matrices of ``dtype`` (2 n³ flops each).

    One unmeasured call first (thread start-up, page faults), then the best of
    ``repeats``; returns ``{"n", "gflops", "gflops_all", "seconds"}``.
    """
    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=dtype)
    b = rng.random((n, n), dtype=dtype)
    c = np.empty((n, n), dtype=dtype)
    np.matmul(a, b, out=c)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    flops = 2.0 * n ** 3
    return {"n": n, "dtype": np.dtype(dtype).name, "gflops": flops / min(times) / 1e9,
            "gflops_all": [flops / t / 1e9 for t in times], "seconds": times}


def _cpu_times():
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return idle, sum(fields[:8])


def idle_fraction(interval=0.5):
    """Fraction of the machine's CPU time that was idle over ``interval`` seconds (None off Linux)."""
    try:
        i0, t0 = _cpu_times()
        time.sleep(interval)
        i1, t1 = _cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    return (i1 - i0) / (t1 - t0) if t1 > t0 else None


def wait_for_idle(threshold=0.9, max_wait=120.0, interval=0.5):
    """Wait until the machine is at least ``threshold`` idle (other work has stopped), at most ``max_wait`` s.

    Returns ``(idle fraction last seen, seconds waited)``.
    """
    t0 = time.perf_counter()
    while True:
        idle = idle_fraction(interval)
        waited = time.perf_counter() - t0
        if idle is None or idle >= threshold or waited >= max_wait:
            return idle, waited


# ---------------------------------------------------------------- timing
def summary(values):
    """``{"median", "min", "max", "n", "values"}`` of a list of numbers (None when empty)."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "values": values}


def peak_rss_bytes():
    """Peak resident set size of this process so far (Linux: VmHWM, else ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def current_rss_bytes():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def training_flops_per_sample(sizes):
    """The issue's count of training work: ``6 Σ n_in n_out`` per sample (forward, grad_W, input delta)."""
    return 6 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def mib(n):
    return None if n is None else n / 2**20


# ---------------------------------------------------------------- output
def write_results(name, data, markdown, folder=None):
    """Write ``<folder>/<name>.json`` and ``<name>.md`` atomically; returns their paths."""
    folder = Path(folder or RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, text in ((".json", json.dumps(data, indent=1, sort_keys=False, default=_jsonable) + "\n"),
                         (".md", markdown if markdown.endswith("\n") else markdown + "\n")):
        path = folder / f"{name}{suffix}"
        tmp = folder / f"{name}{suffix}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        paths.append(path)
    return paths


def send_result(result):
    """A worker's last line on stdout: ``RESULT`` and its JSON, which :func:`run_worker` reads back."""
    print("RESULT " + json.dumps(result, default=_jsonable), flush=True)


def run_worker(script, job, env, timeout):
    """Run ``script --worker JOB`` in a fresh process: ``(result dict, wall seconds)``.

    The result is what the worker sent with :func:`send_result`, or ``{"error": ...}``
    with the exit status and the last lines of its output (or the timeout).
    """
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(script), "--worker", json.dumps(job)],
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}, time.perf_counter() - t0
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):]), wall
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
    return {"error": f"exit status {proc.returncode}: " + " | ".join(tail)}, wall


def _jsonable(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def markdown_table(header, rows):
    """A GitHub Markdown table from a header list and rows of cells (already strings)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(x, digits=3):
    if x is None:
        return "–"
    if isinstance(x, float) and not np.isfinite(x):
        return "–"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:,.0f}"

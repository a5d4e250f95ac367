"""Same seed, data and threads give the same weights, bit for bit, before and after a change.

What it proves
--------------
For every scenario in ``benchmarks/_weights_scenarios.py`` (each optimizer
with and without weight decay and gradient clipping, each schedule, dropout,
float32/float64, sample and class weights, validation, early stopping, each
loss and output, checkpoint/resume, memory-mapped streaming, the
scikit-learn estimators, the ``deltaprop train`` command, MPI with 2 and 3
ranks), a reference revision (default 4037e5f) and this checkout's working
tree train with the same seed, data and thread count (1) and give

- the same final parameters: SHA-256 of ``net.params.tobytes()``;
- the same training history: SHA-256 of the per-epoch rows without "time";
- the same predictions/evaluations where a scenario records them,

under both kernel backends (``DELTAPROP_KERNELS=numpy`` and ``numba``).
Then files (models, a checkpoint folder, estimator files) written by each
version are loaded, and the checkpoint resumed, by both versions, with the
same results: files cross the change in both directions.

Each version runs in fresh processes of this same interpreter with
``PYTHONPATH`` set to its ``src`` folder alone (the runner refuses any other
deltaprop, the venv's editable install included, and reports which file it
imported). The reference is a temporary ``git worktree add --detach`` of the
revision, removed at the end, on errors too.

Scenarios whose result changes on purpose carry ``intentional_change`` (today:
``class_weight="balanced"`` together with ``sample_weight`` in ``fit``, whose
class counts become weighted, as scikit-learn's): they are reported and do
not fail the run.

How to run
----------
From the repository root, with the venv (it has numba, mpi4py and mpich)::

    .venv/bin/python benchmarks/same_weights.py                  # 4037e5f vs the working tree
    .venv/bin/python benchmarks/same_weights.py --against HEAD   # HEAD vs the working tree
    .venv/bin/python benchmarks/same_weights.py --only 'opt_adam*' ckpt_resume_mid_epoch
    .venv/bin/python benchmarks/same_weights.py --against HEAD --new /tmp/copy/src   # any src folder

Exit status 0 when every scenario is the same (or differs where marked
intentional), 1 otherwise, 2 for a usage error. About 4 to 5 minutes on two
cores.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RUNNER = os.path.join(HERE, "_weights_scenarios.py")
sys.path.insert(0, HERE)

from common import cpu_model  # noqa: E402

DEFAULT_REV = "4037e5f"
BACKENDS = ("numpy", "numba")
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")
#: seconds one runner process may take (all scenarios of one version and backend)
RUN_TIMEOUT = 900


def git(*args):
    return subprocess.run(["git", *args], cwd=REPO, check=True, capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------------------
# the machine
# ---------------------------------------------------------------------------


def print_machine(threads):
    import numpy

    print(f"CPU:    {cpu_model()} ({os.cpu_count()} logical cores)")
    print(f"Python: {sys.version.split()[0]} ({sys.executable})")
    print(f"NumPy:  {numpy.__version__}")
    try:
        from threadpoolctl import threadpool_info

        libs = [f"{d.get('internal_api')} {d.get('version')} ({d.get('threading_layer', '-')}, "
                f"{d.get('num_threads')} threads by default)" for d in threadpool_info()]
        print(f"BLAS:   {'; '.join(libs) or 'none found by threadpoolctl'}")
    except ImportError:
        print("BLAS:   unknown (threadpoolctl is not installed)")
    try:
        import numba

        numba_version = numba.__version__
    except ImportError:
        numba_version = "not installed"
    print(f"numba:  {numba_version}")
    print(f"runs:   {threads} BLAS/OpenMP/numba thread(s) per process "
          f"({', '.join(f'{v}={threads}' for v in THREAD_VARS[:2])} and threadpoolctl)")


# ---------------------------------------------------------------------------
# the two versions
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def worktree(rev, path):
    """A detached ``git worktree`` of ``rev`` at ``path``, removed on leaving (errors included)."""
    git("worktree", "add", "--detach", path, rev)
    try:
        yield path
    finally:
        removed = subprocess.run(["git", "worktree", "remove", "--force", path], cwd=REPO, capture_output=True)
        if removed.returncode:  # e.g. the folder is half gone: delete it, then drop git's record of it
            shutil.rmtree(path, ignore_errors=True)
            subprocess.run(["git", "worktree", "prune"], cwd=REPO, capture_output=True)


def src_folder(path):
    """The folder that holds the ``deltaprop`` package: ``path`` itself or ``path/src``."""
    for candidate in (path, os.path.join(path, "src")):
        if os.path.isfile(os.path.join(candidate, "deltaprop", "__init__.py")):
            return os.path.abspath(candidate)
    return None


def describe_working_tree():
    head = git("rev-parse", "--short", "HEAD")
    changed = [line for line in git("status", "--porcelain", "--", "src").splitlines() if line.strip()]
    state = f" + {len(changed)} changed/new files in src/)" if changed else ", clean src/)"
    return f"working tree {REPO} (HEAD {head}" + state


# ---------------------------------------------------------------------------
# running the runner
# ---------------------------------------------------------------------------


def _one_process(src, backend, out, work, threads, extra):
    """One fresh process of the runner with ``PYTHONPATH=src``: its JSON, with "crash" if it did not finish."""
    os.makedirs(work, exist_ok=True)
    if os.path.exists(out):
        os.unlink(out)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DELTAPROP_KERNELS", "PYTHONSTARTUP")}
    env.update(PYTHONPATH=src, DELTAPROP_KERNELS=backend, PYTHONNOUSERSITE="1", PYTHONHASHSEED="0",
               DELTAPROP_MPI_TIMEOUT="120")
    for var in THREAD_VARS:
        env[var] = str(threads)
    cmd = [sys.executable, RUNNER, "--out", out, "--work", work, "--threads", str(threads), *extra]
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT)
        crash = None
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        crash = f"the runner process took longer than {RUN_TIMEOUT} s"
    if not os.path.exists(out):  # written once deltaprop imported, then after every scenario
        tail = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
        return {"fatal": crash or f"the runner exited with {proc.returncode} before any scenario: {tail[0][:300]}"}
    with open(out) as f:
        result = json.load(f)
    imported = os.path.realpath(result.get("deltaprop_file", ""))
    if not imported.startswith(os.path.realpath(src) + os.sep):
        return {"fatal": f"imported {imported}, not the deltaprop in {src}"}
    if crash is None and (proc.returncode or not result.get("complete")):
        tail = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
        crash = f"the runner process died (exit {proc.returncode}): {tail[0][:200]}"
    if crash:
        result["crash"] = crash
    return result


def run_runner(label, src, backend, folder, threads, names=None, extra=()):
    """The runner's results for ``names`` (or a --load-from run), restarted past a scenario that kills it.

    A scenario that raises is recorded by the runner itself; one that ends
    the process (a segfault, os._exit, a hang past the time limit) is
    recorded here as an error, and a fresh process runs the scenarios after it.
    """
    t0 = time.perf_counter()
    remaining = list(names) if names is not None else None
    merged = {"scenarios": {}}
    processes = 0
    while True:
        only = ["--only", *remaining] if remaining is not None else []
        result = _one_process(src, backend, os.path.join(folder, f"result-{processes}.json"),
                              os.path.join(folder, "work"), threads, [*extra, *only])
        processes += 1
        merged.update({k: v for k, v in result.items() if k not in ("scenarios", "crash", "fatal")})
        merged["scenarios"].update(result.get("scenarios", {}))
        if "fatal" in result:
            merged["fatal"] = result["fatal"]
            break
        if "crash" not in result:
            break
        if remaining is None:  # a --load-from run: what it finished counts, the rest is missing
            merged["crash"] = result["crash"]
            break
        dead = next((n for n in remaining if n not in result.get("scenarios", {})), None)
        if dead is None:  # died after its last scenario
            break
        merged["scenarios"][dead] = {"error": result["crash"]}
        remaining = remaining[remaining.index(dead) + 1:]
        if not remaining:
            break
    scen = merged.get("scenarios", {})
    errors = sum("error" in r for r in scen.values())
    what = merged.get("fatal") or (f"{len(scen)} scenarios, {errors} errors, kernels "
                                   f"{merged.get('kernels_in_use') or merged.get('kernels')}"
                                   + (f", {processes} processes" if processes > 1 else "")
                                   + (f"; {merged['crash']}" if merged.get("crash") else ""))
    print(f"  [{backend}] {label}: {time.perf_counter() - t0:.1f} s, {what}", file=sys.stderr, flush=True)
    return merged


# ---------------------------------------------------------------------------
# comparing
# ---------------------------------------------------------------------------


def _short(text, n=90):
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 3] + "..."


def compare(name, backend, old, new, intentional=False):
    """One table row: (scenario, backend, params cell, history cell, note, verdict)."""
    notes = []
    intentional = intentional or old.get("intentional_change") or new.get("intentional_change")
    if intentional:
        notes.append("intentional change")
    if "error" in old or "error" in new:
        for side, rec in (("old", old), ("new", new)):
            if "error" in rec:
                notes.append(f"{side}: {_short(rec['error'])}")
        return name, backend, "error", "error", "; ".join(notes), "error"
    same_params = old.get("params") == new.get("params")
    same_history = old.get("history") == new.get("history")
    same = same_params and same_history
    if old.get("outputs") != new.get("outputs"):
        notes.append("predictions/evaluation/loaded values differ")
        same = False
    old_checks, new_checks = old.get("checks", {}), new.get("checks", {})
    failed = False
    for key in sorted(set(old_checks) | set(new_checks)):
        a, b = old_checks.get(key), new_checks.get(key)
        if a != b:
            notes.append(f"check '{key}': old {a}, new {b}")
            same = False
        elif a is False:
            notes.append(f"check '{key}' fails in both")
            failed = True
    if old.get("note") == new.get("note"):
        if old.get("note"):
            notes.append(old["note"])
    else:
        notes.append(f"old: {old.get('note')}; new: {new.get('note')}")
    verdict = "same" if same and not failed else ("intentional" if intentional and not failed else "different")
    cell = lambda ok: "same" if ok else "DIFFERENT"  # noqa: E731
    return name, backend, cell(same_params), cell(same_history), "; ".join(notes), verdict


def compare_runs(old, new, backend, names=None):
    """Rows for every scenario in ``names`` (default: those either run reported)."""
    a, b = old.get("scenarios", {}), new.get("scenarios", {})
    names = list(names or []) + [n for n in list(a) + list(b) if n not in (names or [])]
    if not names:
        names = ["(all scenarios)"]
    rows = []
    for name in dict.fromkeys(names):
        recs = []
        for run, rec in ((old, a.get(name)), (new, b.get(name))):
            if rec is None:
                rec = {"error": run.get("fatal") or run.get("crash") or "scenario missing from this version's run"}
            recs.append(rec)
        rows.append(compare(name, backend, *recs))
    return rows


def scenario_names(only):
    """The scenarios the runner will run (its --list, which imports no deltaprop)."""
    cmd = [sys.executable, RUNNER, "--list"] + (["--only", *only] if only else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise ValueError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "--list failed")
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def print_table(rows, differences_only=False):
    header = ("scenario", "backend", "same params?", "same history?", "note")
    shown = [r[:5] for r in rows if not differences_only or r[5] != "same"]
    widths = [max(len(str(r[i])) for r in [header] + shown) for i in range(4)]
    line = lambda r: " | ".join(str(c).ljust(w) for c, w in zip(r[:4], widths)) + " | " + r[4]  # noqa: E731
    print(line(header))
    print("-+-".join("-" * w for w in widths) + "-+-" + "-" * 20)
    for r in shown:
        print(line(r))


# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # so the worktree is removed on SIGTERM too


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--against", default=DEFAULT_REV, metavar="REV",
                   help=f"the reference revision (default {DEFAULT_REV})")
    p.add_argument("--new", metavar="REV|DIR",
                   help="what to compare with it: a folder holding deltaprop (or its src/), or a revision "
                        "(default: this checkout's working tree, src/)")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="only these scenarios (names, or prefixes ending in *; see "
                        "'python benchmarks/_weights_scenarios.py --list'); the file checks need files_write*")
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    p.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP/numba threads per process (default 1)")
    p.add_argument("--differences-only", action="store_true", help="print only the rows that are not the same")
    p.add_argument("--keep", metavar="DIR", help="keep the runners' JSON and work folders in DIR")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)

    t_start = time.perf_counter()
    print_machine(args.threads)
    try:
        old_sha = git("rev-parse", "--verify", f"{args.against}^{{commit}}")
    except subprocess.CalledProcessError:
        p.error(f"--against {args.against!r} is not a revision of {REPO}")

    try:
        names = scenario_names(args.only)  # before anything is created: a wrong --only fails here
    except ValueError as exc:
        p.error(str(exc))
    tmp = tempfile.mkdtemp(prefix="same_weights-")
    work = os.path.abspath(args.keep) if args.keep else tmp
    os.makedirs(work, exist_ok=True)
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        old_src = os.path.join(stack.enter_context(worktree(old_sha, os.path.join(tmp, "old"))), "src")
        if args.new is None:
            new_src, new_label = os.path.join(REPO, "src"), describe_working_tree()
        elif os.path.isdir(args.new):
            new_src = src_folder(args.new)
            if new_src is None:
                p.error(f"--new {args.new}: no deltaprop package in it or in its src/")
            new_label = new_src
        else:
            try:
                new_sha = git("rev-parse", "--verify", f"{args.new}^{{commit}}")
            except subprocess.CalledProcessError:
                p.error(f"--new {args.new!r} is neither a folder nor a revision")
            new_src = os.path.join(stack.enter_context(worktree(new_sha, os.path.join(tmp, "new"))), "src")
            new_label = f"{args.new} ({new_sha[:10]}, a second worktree)"
        print(f"old:    {args.against} ({old_sha[:10]}), worktree {old_src}")
        print(f"new:    {new_label}")
        print(flush=True)

        rows = []
        runs = {}
        for backend in args.backends:  # old and new alternately, each in a fresh process
            for side, src in (("old", old_src), ("new", new_src)):
                runs[side, backend] = run_runner(side, src, backend, os.path.join(work, f"{side}-{backend}"),
                                                 args.threads, names)
            rows += compare_runs(runs["old", backend], runs["new", backend], backend, names)
        order = {b: i for i, b in enumerate(args.backends)}
        rows.sort(key=lambda r: (r[0], order.get(r[1], 0)))  # a scenario's backends side by side

        # files written by one version, loaded (and the checkpoint resumed) by both
        file_rows = []
        for backend in args.backends:
            for writer in ("old", "new"):
                files = os.path.join(work, f"{writer}-{backend}", "work", "files")
                if not any(n.startswith("files_write") for n in names):
                    continue  # not selected (--only)
                loads = {}
                for reader, src in (("old", old_src), ("new", new_src)):
                    loads[reader] = run_runner(f"{reader} loads {writer}'s files", src, backend,
                                               os.path.join(work, f"{reader}-loads-{writer}-files-{backend}"),
                                               args.threads, extra=["--load-from", files])
                for row in compare_runs(loads["old"], loads["new"], backend):
                    file_rows.append((f"{writer}'s files: {row[0]}",) + row[1:])
        rows += sorted(file_rows, key=lambda r: (r[0], order.get(r[1], 0)))

    print()
    print_table(rows, args.differences_only)
    counts = {v: sum(r[5] == v for r in rows) for v in ("same", "different", "intentional", "error")}
    n_scen = len({r[0] for r in rows})
    print()
    print(f"{len(rows)} scenarios: {counts['same']} same, {counts['different'] + counts['intentional']} different "
          f"({counts['intentional']} intentional)" + (f", {counts['error']} errors" if counts["error"] else ""))
    print(f"({n_scen} scenarios and file checks x {len(args.backends)} backend(s); "
          f"{time.perf_counter() - t_start:.0f} s in all)")
    if args.keep:
        print(f"runner outputs kept in {work}")
    return 1 if counts["different"] or counts["error"] else 0


if __name__ == "__main__":
    sys.exit(main())

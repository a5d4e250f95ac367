"""Start-up: what ``import deltaprop`` and ``deltaprop --help`` cost against ``import numpy``.

Each command runs in a fresh process with this interpreter, ``src/`` first on
``PYTHONPATH``, its output thrown away; the commands take turns (one of each
per round, the order rotated every round) for ``--repeats`` rounds (30;
``--quick`` 8), and the table gives the median and the minimum wall time, the
median less that of a bare ``python -c pass`` (the interpreter's own start),
and the ratio of medians against ``python -c "import numpy"``:

* ``python -c pass`` and ``python -c "import numpy"``: the yardsticks;
* ``python -c "import deltaprop"``: the package face;
* ``python -c "import deltaprop; deltaprop.Network"``: the face and the core
  behind its main class;
* ``deltaprop --help`` and ``deltaprop --version``: the console script.

Every command is timed in two settings: ``cached``, with the bytecode of
every module (the standard library's, NumPy's, deltaprop's) cached in a
temporary ``PYTHONPYCACHEPREFIX`` by an unmeasured first run, as an installed
package starts; and ``as is``, in this environment unchanged (where
``PYTHONDONTWRITEBYTECODE=1`` and a source checkout without ``__pycache__``
mean that deltaprop's modules are compiled from source at every start, while
NumPy's come from its installed bytecode).

A further run of each command records which modules it leaves in
``sys.modules`` beyond those of ``python -c pass`` (the count, whether NumPy
is among them, and the names of the ``deltaprop`` modules).

``--compare SRC`` also times the deltaprop commands with another checkout's
``src/`` (for instance the previous commit's, from ``git archive``) in the same
rounds, labelled ``(SRC)``.

    python benchmarks/bench_startup.py [--repeats 30] [--quick] [--compare /tmp/old/src]

Writes ``benchmarks/results/startup.md`` and ``startup.json``.
"""

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

#: writes the names in sys.modules to $DELTAPROP_BENCH_MODULES when the process ends (after SystemExit too)
_RECORD = ("import atexit, os, sys; atexit.register(lambda: open(os.environ['DELTAPROP_BENCH_MODULES'], 'w')"
           ".write('\\n'.join(sorted(sys.modules))))\n")
#: the console script's own lines (what pip writes into ``bin/deltaprop``)
_CONSOLE = "import sys; from deltaprop.cli import main; sys.argv[0] = 'deltaprop'; sys.exit(main({argv!r}))"

#: label -> (Python code run by ``python -c``, whether it is a deltaprop command); the console-script
#: commands are timed through bin/deltaprop when it exists beside this interpreter
COMMANDS = {
    "python -c pass": ("pass", False),
    "import numpy": ("import numpy", False),
    "import deltaprop": ("import deltaprop", True),
    "import deltaprop; deltaprop.Network": ("import deltaprop; deltaprop.Network", True),
    "deltaprop --help": (_CONSOLE.format(argv=["--help"]), True),
    "deltaprop --version": (_CONSOLE.format(argv=["--version"]), True),
}
BASE, YARDSTICK = "python -c pass", "import numpy"


def console_script():
    """``bin/deltaprop`` beside this interpreter, or None (then ``python -c`` runs the same lines)."""
    path = Path(sys.executable).parent / "deltaprop"
    return str(path) if path.is_file() and os.access(path, os.X_OK) else None


def argv_of(label, code):
    script = console_script()
    if script and label.startswith("deltaprop --"):
        return [script, label.split(" ", 1)[1]]
    return [sys.executable, "-c", code]


def settings(cache):
    """setting -> extra environment: ``cached`` (bytecode under ``cache``) and ``as is``."""
    return {"cached": {"PYTHONPYCACHEPREFIX": cache, "PYTHONDONTWRITEBYTECODE": None}, "as is": {}}


def _env(extra, src=None):
    env = common.child_env(src=src, extra={k: v for k, v in extra.items() if v is not None})
    return {k: v for k, v in env.items() if extra.get(k, "") is not None}


def jobs(compare, extra=None):
    """``(name, argv, environment)`` of every timed command in one setting."""
    extra = extra or {}
    out = []
    for label, (code, ours) in COMMANDS.items():
        out.append((label, argv_of(label, code), _env(extra)))
        if ours and compare:
            out.append((f"{label} ({compare})", argv_of(label, code), _env(extra, src=compare)))
    return out


def time_once(argv, env):
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return elapsed


def modules_of(code, env):
    """The names in ``sys.modules`` when ``python -c code`` ends."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "modules.txt")
        subprocess.run([sys.executable, "-c", _RECORD + code], env={**env, "DELTAPROP_BENCH_MODULES": path},
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        with open(path, encoding="utf-8") as f:
            return set(f.read().split())


def imported(compare):
    """Per command: the modules beyond ``python -c pass``'s (count, numpy among them, deltaprop's)."""
    base = modules_of("pass", common.child_env())
    out = {}
    for name, argv, env in jobs(compare):
        code = COMMANDS[name.split(" (")[0]][0]
        extra = sorted(modules_of(code, env) - base)
        out[name] = {"count": len(extra), "numpy": "numpy" in extra,
                     "deltaprop": [m for m in extra if m == "deltaprop" or m.startswith("deltaprop.")],
                     "others": [m for m in extra if m.split(".")[0] not in ("numpy", "deltaprop")]}
    return out


def measure(repeats, compare, cache):
    """setting -> command -> summary of its wall times."""
    todo = [((setting, name), argv, env) for setting, extra in settings(cache).items()
            for name, argv, env in jobs(compare, extra)]
    times = {name: [] for name, _, _ in todo}
    for name, argv, env in todo:  # one unmeasured run each: the files in the page cache, .pyc written
        time_once(argv, env)
    for r in range(repeats):
        k = r % len(todo)
        for name, argv, env in todo[k:] + todo[:k]:
            times[name].append(time_once(argv, env))
    out = {}
    for (setting, name), v in times.items():
        out.setdefault(setting, {})[name] = common.summary(v)
    return out


def table(results, mods):
    base = results[BASE]["median"]
    numpy_median = results[YARDSTICK]["median"]
    rows = []
    for name, s in results.items():
        m = mods.get(name, {})
        ours = len(m.get("deltaprop", []))
        rows.append([f"`{name}`", f"{s['median'] * 1e3:.1f}", f"{s['min'] * 1e3:.1f}",
                     f"{(s['median'] - base) * 1e3:.1f}", f"{s['median'] / numpy_median:.2f}",
                     m.get("count", "–"), "yes" if m.get("numpy") else "no", ours])
    return common.markdown_table(["command", "median ms", "min ms", "median − python ms", "÷ import numpy",
                                  "modules beyond python", "numpy", "deltaprop modules"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=30, help="interleaved rounds (default 30)")
    parser.add_argument("--quick", action="store_true", help="8 rounds (smoke test)")
    parser.add_argument("--compare", metavar="SRC", help="also time the deltaprop commands with this src/ folder")
    parser.add_argument("--out", default=str(common.RESULTS))
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 8
    compare = str(Path(args.compare).resolve()) if args.compare else None
    idle = common.idle_fraction()
    mods = imported(compare)
    with tempfile.TemporaryDirectory() as cache:
        results = measure(args.repeats, compare, cache)
    info = common.machine_info()
    ratios = {setting: {name: s["median"] / r[YARDSTICK]["median"] for name, s in r.items()}
              for setting, r in results.items()}
    as_is = os.environ.get("PYTHONDONTWRITEBYTECODE")
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    script = console_script()
    markdown = "\n".join([
        "## Start-up: import deltaprop and deltaprop --help against import numpy (bench_startup.py)", "",
        f"{now}, {info['cpu']} ({info['usable_cpus']} usable CPUs), Python {info['python']}, "
        f"NumPy {info['numpy']}.  ",
        f"Machine {'not measured' if idle is None else f'{idle:.0%} idle'} at the start.  ",
        f"Command: `python benchmarks/bench_startup.py{' --quick' if args.quick else ''}"
        f"{f' --compare {compare}' if compare else ''}` ({args.repeats} "
        f"interleaved rounds of fresh processes, wall time; `deltaprop` is "
        f"{'the console script ' + script if script else 'its lines run by python -c'}).", "",
        "### cached: every module's bytecode cached (as an installed package starts)", "",
        table(results["cached"], mods), "",
        f"### as is: this environment (PYTHONDONTWRITEBYTECODE={as_is or 'unset'})", "",
        table(results["as is"], mods), "",
        "Modules beyond `python -c pass`: NumPy's and deltaprop's, and others; deltaprop's:", "",
        *[f"* `{name}`: {', '.join(m['deltaprop']) or 'none'}" for name, m in mods.items() if m["deltaprop"]
          or COMMANDS.get(name.split(' (')[0], ('', False))[1]], ""])
    common.write_results("startup", {"date": now, "machine": info, "repeats": args.repeats,
                                     "console_script": script, "compare": compare,
                                     "pythondontwritebytecode": as_is, "results": results,
                                     "ratio_to_import_numpy": ratios, "modules": mods}, markdown, args.out)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())

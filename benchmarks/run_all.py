"""Run every ``benchmarks/bench_*.py`` present and collect their outputs (``make bench``).

Each script runs in its own process, with this interpreter, from the
repository root, with ``src/`` on ``PYTHONPATH``; its output is shown as it
comes and kept in ``benchmarks/results/<name>.log``. A script that writes its
own results as ``benchmarks/results/<name>.md`` / ``.json`` (``<name>``
with or without the ``bench_`` prefix) has them collected; for the others the
end of what it printed is collected. Written at the end:

* ``benchmarks/results/summary.md``: the machine, the command, one row per
  script (exit status, minutes), then each script's Markdown;
* ``benchmarks/results/summary.json``: the same, with each script's JSON.

Options::

    --quick                 pass --quick to every script that accepts it (smoke test)
    --only NAME ...         run only these (bench_speed or speed)
    --skip NAME ...         run all but these
    --args NAME=ARGS        extra arguments for one script, e.g. --args "speed=--repeats 5"
    --timeout-minutes M     stop a script after M minutes (default 40)

A script fails the run (exit status 1) only by failing itself; missing
optional libraries are each script's business (they skip what they cannot
run and say so).
"""

import argparse
import datetime
import json
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402


def discover():
    return sorted(p for p in HERE.glob("bench_*.py") if p.is_file())


def short(name):
    return name[len("bench_"):] if name.startswith("bench_") else name


def accepts(path, flag):
    try:
        return re.search(r"""["']""" + re.escape(flag) + r"""["']""", path.read_text(encoding="utf-8")) is not None
    except OSError:
        return False


def run_script(path, args, timeout, log_path):
    """Run one script, echoing and logging its output; returns (exit status or None on timeout, seconds, tail)."""
    cmd = [sys.executable, str(path)] + args
    env = common.child_env(unset=())
    t0 = time.perf_counter()
    tail = []
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        proc = subprocess.Popen(cmd, cwd=str(common.ROOT), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                log.write(line)
                tail.append(line)
                del tail[:-60]
            status = proc.wait()
        finally:
            timed_out = not timer.is_alive() and proc.returncode is not None and proc.returncode < 0
            timer.cancel()
    return (None if timed_out else status), time.perf_counter() - t0, "".join(tail)


def collected(name, started):
    """The Markdown and JSON a script wrote during this run, if any."""
    md = js = None
    for stem in (name, short(name)):
        mdp, jsp = common.RESULTS / f"{stem}.md", common.RESULTS / f"{stem}.json"
        if md is None and mdp.exists() and mdp.stat().st_mtime >= started:
            md = mdp.read_text(encoding="utf-8")
        if js is None and jsp.exists() and jsp.stat().st_mtime >= started:
            try:
                js = json.loads(jsp.read_text(encoding="utf-8"))
            except ValueError:
                js = None
    return md, js


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--skip", nargs="*", default=[])
    parser.add_argument("--args", action="append", default=[], metavar="NAME=ARGS")
    parser.add_argument("--timeout-minutes", type=float, default=40.0)
    opts = parser.parse_args(argv)

    extra = {}
    for item in opts.args:
        name, _, rest = item.partition("=")
        extra[short(name.removesuffix(".py"))] = shlex.split(rest)
    scripts = discover()
    wanted = {short(n.removesuffix(".py")) for n in opts.only} if opts.only else None
    skip = {short(n.removesuffix(".py")) for n in opts.skip}
    scripts = [p for p in scripts if (wanted is None or short(p.stem) in wanted) and short(p.stem) not in skip]
    common.RESULTS.mkdir(parents=True, exist_ok=True)
    started_wall = time.time()
    machine = common.machine_info()
    rows, sections, records = [], [], []
    failed = False
    for path in scripts:
        name = path.stem
        args = (["--quick"] if opts.quick and accepts(path, "--quick") else []) + extra.get(short(name), [])
        print(f"\n===== {name} {' '.join(args)}", flush=True)
        started = time.time()
        status, seconds, tail = run_script(path, args, opts.timeout_minutes * 60, common.RESULTS / f"{name}.log")
        md, js = collected(name, started)
        state = "timed out" if status is None else ("ok" if status == 0 else f"exit {status}")
        failed |= status != 0
        rows.append([f"`{path.name} {' '.join(args)}`".replace(" `", "`"), state, f"{seconds / 60:.1f}"])
        body = md if md else "```\n" + tail.rstrip() + "\n```\n"
        sections.append(f"### {name}\n\n{body}")
        records.append({"script": path.name, "args": args, "status": status, "seconds": seconds, "results": js})
    header = [
        "# Benchmark results", "",
        f"{machine['date']}, {machine['cpu']}, {machine['usable_cpus']} usable CPUs, "
        f"{(machine['memory_bytes'] or 0) / 2**30:.0f} GiB; Python {machine['python']}, NumPy {machine['numpy']}; "
        f"load average at start {', '.join(f'{x:.2f}' for x in machine['load_average'] or [])}.  ",
        f"Command: `python benchmarks/run_all.py {' '.join(argv if argv is not None else sys.argv[1:])}`".rstrip()
        + f" ({(time.time() - started_wall) / 60:.1f} min).", "",
        common.markdown_table(["script", "status", "minutes"], rows), "",
    ]
    summary = "\n".join(header) + "\n" + "\n".join(sections)
    common.write_results("summary", {"machine": machine, "finished": datetime.datetime.now().astimezone().isoformat(
        timespec="seconds"), "scripts": records}, summary)
    print(f"\nwrote {common.RESULTS / 'summary.md'} and summary.json", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""A busy machine: training with another process holding a core, at each --threads setting.

The command line's default network (784-512-256-10, ReLU, Adam, cosine,
batch 32, float32) trains on the first rows of Fashion-MNIST for a fixed
number of epochs, in a fresh process per run, with the BLAS threads left as
they start (``default``), fixed at 1, fixed at 2, or chosen per epoch
(``auto``, :func:`deltaprop.fit`'s ``threads="auto"``). Each setting runs
with no other load, and while a second process keeps one core busy (a
Python busy loop). Runs are interleaved (every setting once per round,
then the next round), and the table gives the median training time of the
rounds and what auto chose.

    python benchmarks/bench_busy.py [--rows 10000] [--epochs 3] [--repeats 5] [--quick]

Writes ``benchmarks/results/busy.md`` and ``busy.json``.
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

SETTINGS = ("default", "1", "2", "auto")
BUSY_LOOP = "while True:\n    pass\n"


def worker(job):
    common.ensure_src_on_path()
    import deltaprop as dp

    X, y, _, _ = common.fashion_mnist()
    X, y = X[: job["rows"]], y[: job["rows"]]
    net = dp.Network([dp.Dense(784, 512, activation="relu"), dp.Dense(512, 256, activation="relu"),
                      dp.Dense(256, 10, activation="softmax")], seed=0, dtype="float32")
    threads = None if job["threads"] == "default" else job["threads"]
    threads = int(threads) if threads not in (None, "auto") else threads
    t0 = time.perf_counter()
    history = net.fit(X, y, epochs=job["epochs"], batch_size=32, optimizer="adam", schedule="cosine",
                      verbose=0, threads=threads)
    seconds = time.perf_counter() - t0
    common.send_result({"seconds": seconds, "threads": history.history.get("threads"),
                        "loss": history["loss"][-1], "blas": common.describe_blas(common.blas_info())})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1000 rows, 2 epochs, 3 repeats (about 60 s)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if args.quick:
        args.rows, args.epochs, args.repeats = 1000, 2, 3
    common.fashion_mnist()  # decoded and cached before any timing
    env = common.child_env()
    times = {(load, s): [] for load in ("idle", "busy") for s in SETTINGS}
    chosen = {s: [] for s in SETTINGS}
    blas = None
    t_start = time.perf_counter()
    for r in range(args.repeats):
        for load in ("idle", "busy"):
            busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) if load == "busy" else None
            try:
                time.sleep(0.2 if busy else 0.0)
                for s in SETTINGS:
                    job = {"rows": args.rows, "epochs": args.epochs, "threads": s}
                    result, _ = common.run_worker(__file__, job, env, timeout=600)
                    if "error" in result:
                        sys.exit(f"{load} {s}: {result['error']}")
                    times[(load, s)].append(result["seconds"])
                    blas = blas or result["blas"]
                    if s == "auto":
                        chosen[s].append((load, result["threads"]))
                    print(f"round {r + 1} {load:4} threads={s:7} {result['seconds']:.2f} s "
                          f"{result['threads'] or ''}", file=sys.stderr, flush=True)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    info = common.machine_info()
    rows = []
    for s in SETTINGS:
        idle = common.summary(times[("idle", s)])
        busy = common.summary(times[("busy", s)])
        rows.append([s, common.fmt(idle["median"]), common.fmt(busy["median"]),
                     common.fmt(busy["median"] / idle["median"]),
                     ", ".join(f"{load}: {cs}" for load, cs in chosen[s][-2:]) if s == "auto" else "–"])
    md = "\n".join([
        "# Training on a busy machine",
        "",
        f"{info['cpu']}, {info['usable_cpus']} usable cores; BLAS {blas}; NumPy {info['numpy']}; {info['date']}.",
        f"CLI default network 784-512-256-10 (ReLU, Adam, cosine, batch 32, float32), Fashion-MNIST first "
        f"{args.rows} rows, {args.epochs} epochs; median training seconds of {args.repeats} interleaved rounds, "
        f"each run a fresh process. busy: a second process spins on one core (a Python busy loop). "
        f"Load average at the end (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in info['load_average'] or [])}.",
        "",
        common.markdown_table(["--threads", "idle (s)", "one core busy (s)", "busy / idle",
                               "auto's choice per epoch (last round)"], rows),
        "",
        f"Total {time.perf_counter() - t_start:.0f} s. `python benchmarks/bench_busy.py"
        f"{' --quick' if args.quick else f' --rows {args.rows} --epochs {args.epochs} --repeats {args.repeats}'}`",
    ])
    data = {"machine": info, "blas": blas, "rows": args.rows, "epochs": args.epochs, "repeats": args.repeats,
            "seconds": {f"{load}/{s}": v for (load, s), v in times.items()}, "auto_choices": chosen["auto"]}
    common.write_results("busy", data, md)
    print(md)


if __name__ == "__main__":
    main()

"""Fuzz the model-file and checkpoint loaders with many cases and print a summary.

    python benchmarks/fuzz_model_files.py --cases 200000 [--seed 0] [--no-trace-memory] [--save-failures DIR]

Runs the engine of ``tests/test_fuzz.py`` (truncation at every length, bit
flips, byte overwrites, header-length rewrites, structural edits of the
header JSON and of the JSON documents in its metadata, splices, random
bytes) with ``--cases`` mutations of each of the two seed files, a small
model file and a mid-epoch checkpoint. Every case must end in a successful
load with finite parameters or in a ModelFileError, within 5 seconds and
(with memory tracing, the default) without allocating more than 4 MiB.

Prints a table of outcomes per file and mutation kind, the cases per second,
and each failure (file, case index, mutation, what happened); with
``--save-failures`` the failing files are written there to replay. Exits 1
when any case failed.
"""

import argparse
import importlib.util
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _engine():
    sys.path.insert(0, os.path.join(ROOT, "src"))
    spec = importlib.util.spec_from_file_location("deltaprop_fuzz_engine", os.path.join(ROOT, "tests", "test_fuzz.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200_000, help="mutations of each seed file (default 200000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-trace-memory", action="store_true", help="faster; skips the per-case memory bound")
    parser.add_argument("--save-failures", metavar="DIR", help="write each failing file here")
    args = parser.parse_args(argv)

    import numpy as np

    engine = _engine()
    with tempfile.TemporaryDirectory(prefix="deltaprop-fuzz-") as folder:
        seeds = engine.Seeds(folder)
        total = 2 * args.cases + sum(len(engine.all_truncations(data)) for data in (seeds.model, seeds.checkpoint))
        done = [0]
        start = time.perf_counter()

        def progress():
            done[0] += 1
            if done[0] % 20000 == 0:
                rate = done[0] / (time.perf_counter() - start)
                print(f"  {done[0]}/{total} cases, {rate:.0f}/s", file=sys.stderr, flush=True)

        with np.errstate(all="ignore"):
            stats, failures = engine.run_fuzz(seeds, folder, cases=args.cases, seed=args.seed,
                                              trace_memory=not args.no_trace_memory, progress=progress)
        seconds = time.perf_counter() - start
    n = sum(stats.values())
    print(engine.summary(stats))
    print(f"\n{n} cases in {seconds:.1f} s ({n / seconds:.0f} cases/s), seed {args.seed}, "
          f"memory bound {'on' if not args.no_trace_memory else 'off'}: {len(failures)} failed")
    for target, index, label, what, _ in failures[:50]:
        print(f"FAILED {target} case {index} ({label}): {what}")
    if args.save_failures and failures:
        os.makedirs(args.save_failures, exist_ok=True)
        for target, index, label, _, blob in failures:
            with open(os.path.join(args.save_failures, f"{target}-{index}-{label.replace(':', '_')}.safetensors"),
                      "wb") as f:
                f.write(blob)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

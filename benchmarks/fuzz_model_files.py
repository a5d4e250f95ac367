"""Fuzz the model-file and checkpoint loaders, the command line and the estimators' load; print a summary.

    python benchmarks/fuzz_model_files.py --cases 200000 [--seed 0] [--cli-every 20] [--targets A,B]
                                          [--no-trace-memory] [--save-failures DIR]

Runs the engine of ``tests/test_fuzz.py`` (truncation at every length, bit
flips, byte overwrites, header-length rewrites, structural edits of the
header JSON and of the JSON documents in its metadata, splices, random
bytes) with ``--cases`` mutations of each of the eight seed files: a small
model file, a mid-epoch checkpoint, a classifier and a regressor as
``deltaprop train`` writes them (task, history, test scores, names, target
scaling), a file of each estimator, and a model file and a mid-epoch
checkpoint of a network of every layer kind (Embedding, Residual,
BatchNorm with its running statistics, LayerNorm, Dropout, Activation). Every case must end in a successful
load with finite parameters or in a ModelFileError (an estimator file: a
DeltapropError from its class's ``load``), within 5 seconds and (with memory
tracing, the default) without allocating more than 4 MiB.

Every ``--cli-every``-th case of a model file (default 20; 0 for none) also
goes through the command line's ``info``, ``info --json``, ``evaluate`` and
``predict`` in this process (``deltaprop.cli.main``, output captured) and
through ``DeltapropClassifier.load`` and ``DeltapropRegressor.load``: any
exit status but 0, 1 and 2, an exception escaping ``main``, an internal
error, a failure that is not one ``deltaprop: error:`` line, a printed NaN
or infinite prediction, or an estimator ``load`` raising anything but a
DeltapropError is a finding.

Prints a table of outcomes per file and mutation kind, the cases per second,
and each failure (file, case index, mutation, what happened); with
``--save-failures`` the failing files are written there to replay. Exits 1
when any case failed.
"""

import argparse
import importlib.util
import os
import re
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
    parser.add_argument("--cli-every", type=int, default=20,
                        help="every N-th case of a model file also goes through the command line and the "
                             "estimators' load (default 20; 0 for none)")
    parser.add_argument("--targets", help="comma-separated seed files to mutate (default: all): model, checkpoint, "
                                          "cli-classifier, cli-regressor, estimator-classifier, estimator-regressor, "
                                          "model-layers, checkpoint-layers")
    parser.add_argument("--no-trace-memory", action="store_true", help="faster; skips the per-case memory bound")
    parser.add_argument("--save-failures", metavar="DIR", help="write each failing file here")
    args = parser.parse_args(argv)

    from collections import Counter

    import numpy as np

    engine = _engine()
    with tempfile.TemporaryDirectory(prefix="deltaprop-fuzz-") as folder:
        seeds = engine.Seeds(folder)
        targets = None if not args.targets else tuple(t.strip() for t in args.targets.split(","))
        chosen = [t for t in seeds.targets() if targets is None or t[0] in targets]
        if not chosen:
            parser.error(f"--targets {args.targets!r} names none of {[t[0] for t in seeds.targets()]}")
        total = len(chosen) * args.cases + sum(len(engine.all_truncations(t[1])) for t in chosen)
        done = [0]
        start = time.perf_counter()

        def progress():
            done[0] += 1
            if done[0] % 20000 == 0:
                rate = done[0] / (time.perf_counter() - start)
                print(f"  {done[0]}/{total} cases, {rate:.0f}/s", file=sys.stderr, flush=True)

        with np.errstate(all="ignore"):
            stats, failures = engine.run_fuzz(seeds, folder, cases=args.cases, seed=args.seed,
                                              trace_memory=not args.no_trace_memory, progress=progress,
                                              cli_every=args.cli_every, targets=targets)
        seconds = time.perf_counter() - start
    faces = ("cli", "estimators")
    n = sum(c for (_, kind, _), c in stats.items() if kind not in faces)
    n_cli = sum(c for (_, kind, _), c in stats.items() if kind == "cli")
    print(engine.summary(stats))
    print(f"\n{n} cases in {seconds:.1f} s ({n / seconds:.0f} cases/s), seed {args.seed}, "
          f"memory bound {'on' if not args.no_trace_memory else 'off'}; {n_cli} of them also through the "
          f"command line and the estimators' load: {len(failures)} failed")
    if failures:
        print("\nfindings by kind (file, what; numbers and paths blanked), most frequent first:")
        kinds = Counter(_kind(target, what) for target, _, _, what, _ in failures)
        for kind, count in kinds.most_common(40):
            print(f"{count:>7}  {kind}")
    for target, index, label, what, _ in failures[:50]:
        print(f"FAILED {target} case {index} ({label}): {what}")
    if args.save_failures and failures:
        os.makedirs(args.save_failures, exist_ok=True)
        for target, index, label, _, blob in failures:
            with open(os.path.join(args.save_failures, f"{target}-{index}-{label.replace(':', '_')}.safetensors"),
                      "wb") as f:
                f.write(blob)
    return 1 if failures else 0


def _kind(target, what):
    """A failure's description with its paths, numbers and quoted values blanked, for counting kinds."""
    what = re.sub(r"/\S*case\.safetensors", "FILE", what)
    what = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", what)
    what = re.sub(r"-?\d[\d.e+-]*", "N", what)
    return f"{target}: {what[:150]}"


if __name__ == "__main__":
    sys.exit(main())

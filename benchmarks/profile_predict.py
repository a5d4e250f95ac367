"""Latency of ``predict`` on 1, 10 and 1,000 rows: deltaprop against scikit-learn (issue 16).

Contenders, each matched with a scikit-learn model of the same shape:

* ``Network.predict``: a Fashion-MNIST-sized network 784-256-128-10 (ReLU,
  softmax, float32) on float32 rows, against ``MLPClassifier(hidden_layer_sizes=(256, 128))``
  fitted briefly on random 784-wide float32 rows (``MLPClassifier.predict``);
* ``DeltapropClassifier.predict`` and ``.predict_proba``: hidden layers (256, 128)
  fitted briefly on scikit-learn's digits (64 features, 10 classes), against
  ``MLPClassifier.predict`` / ``.predict_proba`` of the same shape on the same data;
* ``TabularModel.predict``: a data contract with numeric, categorical and
  missing cells (``DataContract.fit``), a 64-32 network, rows given as a pandas
  DataFrame and as a dict of columns, against a scikit-learn ``Pipeline``
  (``ColumnTransformer`` of median imputation + scaling and most-frequent
  imputation + ``OneHotEncoder``, then ``MLPClassifier`` (64, 32)) on the DataFrame.

Each figure is the median over ``--rounds`` rounds of the mean time of one
call (``time.perf_counter``), the contenders interleaved within each round
(their order rotated from round to round), the number of calls per round
sized to about 2 ms. BLAS threads are limited to ``--threads`` (default 1)
through threadpoolctl for both libraries. The table gives microseconds per
call and the ratio deltaprop / scikit-learn (below 1: deltaprop is faster).

``--against DIR`` also times the deltaprop of another source tree (``DIR``
holds its ``deltaprop`` package, e.g. ``git archive HEAD src | tar -x -C /tmp/old``
then ``--against /tmp/old/src``), imported under another name and interleaved
in the same rounds, so that "before" and "after" see the same machine load;
same seeds, same weights.

``--profile N`` runs cProfile over N single-row calls of each deltaprop
contender instead, and prints the top functions by cumulative time.

    python benchmarks/profile_predict.py [--rounds 60] [--threads 1] [--markdown] [--against /tmp/old/src]
    python benchmarks/profile_predict.py --profile 2000 [--only network,estimator,tabular_df]
"""

import argparse
import cProfile
import importlib
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    blas_info, cpu_model, describe_blas, ensure_src_on_path, markdown_table, usable_cpus,
)

ensure_src_on_path()

SIZES = (1, 10, 1000)
N_TAB = 2000  # rows of the tabular training table (and the pool the timed rows come from)
CONTENDERS = ("network", "estimator", "estimator_proba", "tabular_df", "tabular_dict")


def load_tree(src):
    """The ``deltaprop`` package of another source tree, imported as ``deltaprop_against`` (a copy)."""
    folder = Path(tempfile.mkdtemp(prefix="deltaprop-against-"))
    shutil.copytree(Path(src) / "deltaprop", folder / "deltaprop_against",
                    ignore=shutil.ignore_patterns("__pycache__"))
    sys.path.insert(0, str(folder))
    return importlib.import_module("deltaprop_against")


def _quiet_fit(model, X, y):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


# ------------------------------------------------------------------ models
def build_network(dp):
    """784-256-128-10 ReLU/softmax float32 (seed 0) and the float32 rows it predicts, shape (2000, 784)."""
    X = np.random.default_rng(0).random((2000, 784), dtype=np.float32)
    net = dp.Network.from_sizes([784, 256, 128, 10], activation="relu", loss="categorical_crossentropy",
                                dtype="float32", seed=0)
    return net, X


def build_mlp(X):
    """scikit-learn's MLPClassifier (256, 128) fitted for 2 epochs on ``X`` with random labels of 10 classes."""
    from sklearn.neural_network import MLPClassifier

    y = np.random.default_rng(0).integers(0, 10, X.shape[0])
    return _quiet_fit(MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=2, random_state=0), X, y)


def digits():
    from sklearn.datasets import load_digits

    return load_digits(return_X_y=True)


def build_estimator(dp, X, y):
    """DeltapropClassifier with hidden layers (256, 128), fitted for 3 epochs."""
    estimators = importlib.import_module(dp.__name__ + ".estimators")
    return _quiet_fit(estimators.DeltapropClassifier(hidden_layer_sizes=(256, 128), epochs=3, random_state=0), X, y)


def build_digits_mlp(X, y):
    from sklearn.neural_network import MLPClassifier

    return _quiet_fit(MLPClassifier(hidden_layer_sizes=(256, 128), max_iter=3, random_state=0), X, y)


def tabular_frame(n, seed=0):
    """Numeric columns (one with gaps), categorical ones (one with gaps), and a 3-class label (n,)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n)
    b = np.where(rng.random(n) < 0.1, np.nan, rng.uniform(0, 100, n))
    colour = rng.choice(list("rgbyk"), n).astype(object)
    size = rng.choice(["s", "m", "l", None], n)
    df = pd.DataFrame({"a": a, "b": b, "c": rng.integers(0, 7, n).astype(float), "colour": colour,
                       "size": pd.Series(size, dtype=object)})
    label = np.where(a > 0.5, "high", np.where(colour == "r", "red", "low"))
    return df, label


def build_tabular(dp, df, label):
    """A TabularModel: a contract fitted on ``df`` with its label, and a 64-32 softmax network (seed 0)."""
    tabular = importlib.import_module(dp.__name__ + ".tabular")
    contract = tabular.DataContract.fit(tabular.read_table(df.assign(label=label)), "label")
    net = dp.Network.from_sizes([contract.n_inputs, 64, 32, len(contract.target.classes)],
                                loss="categorical_crossentropy", seed=0)
    contract.silence_unused(net)
    return tabular.TabularModel(net, contract)


def build_pipeline(df, label):
    """scikit-learn's imputation, scaling and one-hot encoding, then MLPClassifier (64, 32), fitted on ``df``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pipe = make_pipeline(
        ColumnTransformer([("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["a", "b", "c"]),
                           ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                                                 OneHotEncoder(handle_unknown="ignore")), ["colour", "size"])]),
        MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=3, random_state=0))
    return _quiet_fit(pipe, df, label)


def contenders(trees):
    """``[(key, name, {tree: call}, scikit-learn name, scikit-learn call, our inputs, its inputs)]``.

    ``trees`` maps a label ("now", "before") to a deltaprop package; each builds its own models (same seeds).
    """
    Xd, yd = digits()
    df, label = tabular_frame(N_TAB)
    nets = {t: build_network(dp) for t, dp in trees.items()}
    X = next(iter(nets.values()))[1]
    ests = {t: build_estimator(dp, Xd, yd) for t, dp in trees.items()}
    models = {t: build_tabular(dp, df, label) for t, dp in trees.items()}
    mlp, digits_mlp, pipe = build_mlp(X), build_digits_mlp(Xd, yd), build_pipeline(df, label)
    net_rows = {n: X[:n] for n in SIZES}
    est_rows = {n: Xd[:n] for n in SIZES}
    df_rows = {n: df.iloc[:n].reset_index(drop=True) for n in SIZES}
    dict_rows = {n: {k: df[k].to_numpy()[:n] for k in df.columns} for n in SIZES}
    return [
        ("network", "Network.predict (784-256-128-10 f32)", {t: v[0].predict for t, v in nets.items()},
         "MLPClassifier.predict", mlp.predict, net_rows, net_rows),
        ("estimator", "DeltapropClassifier.predict (digits)", {t: e.predict for t, e in ests.items()},
         "MLPClassifier.predict", digits_mlp.predict, est_rows, est_rows),
        ("estimator_proba", "DeltapropClassifier.predict_proba", {t: e.predict_proba for t, e in ests.items()},
         "MLPClassifier.predict_proba", digits_mlp.predict_proba, est_rows, est_rows),
        ("tabular_df", "TabularModel.predict (DataFrame)", {t: m.predict for t, m in models.items()},
         "Pipeline.predict (DataFrame)", pipe.predict, df_rows, df_rows),
        ("tabular_dict", "TabularModel.predict (dict)", {t: m.predict for t, m in models.items()},
         "Pipeline.predict (DataFrame)", pipe.predict, dict_rows, df_rows),
    ]


# ------------------------------------------------------------------ timing
def per_call(fn, arg, calls):
    t0 = time.perf_counter()
    for _ in range(calls):
        fn(arg)
    return (time.perf_counter() - t0) / calls


def calibrate(fn, arg, target=2e-3):
    fn(arg)
    t = min(per_call(fn, arg, 3) for _ in range(3))
    return max(1, min(2000, int(target / max(t, 1e-7))))


def measure(rows, rounds):
    """``{(key, who, n): µs per call}`` (``who``: a tree's label or "sk"): medians over interleaved rounds."""
    results = {}
    for n in SIZES:
        jobs = []
        for key, _, calls, _, sk_fn, ours_in, sk_in in rows:
            jobs += [((key, who, n), fn, ours_in[n]) for who, fn in calls.items()]
            jobs.append(((key, "sk", n), sk_fn, sk_in[n]))
        repeats = {name: calibrate(fn, arg) for name, fn, arg in jobs}
        times = {name: [] for name, _, _ in jobs}
        for r in range(rounds):
            shift = r % len(jobs)
            for name, fn, arg in jobs[shift:] + jobs[:shift]:
                times[name].append(per_call(fn, arg, repeats[name]))
        results.update({name: statistics.median(t) * 1e6 for name, t in times.items()})
    return results


def table(rows, results, trees):
    """Header and rows: per size, each tree's µs (and scikit-learn's), and the ratio of "now" to scikit-learn."""
    header = ["contender", "scikit-learn"]
    for n in SIZES:
        what = " / ".join(list(trees) + ["sk"])
        header += [f"{n} row{'s' if n > 1 else ''}: {what} µs", "now / sk"]
    body = []
    for key, name, _, sk_name, *_ in rows:
        line = [name, sk_name]
        for n in SIZES:
            cells = [results[(key, who, n)] for who in list(trees) + ["sk"]]
            line += [" / ".join(f"{c:,.1f}" for c in cells), f"{results[(key, 'now', n)] / cells[-1]:.2f}"]
        body.append(line)
    return header, body


def print_plain(header, body):
    widths = [max(len(str(r[i])) for r in [header] + body) for i in range(len(header))]
    for r in [header] + body:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


# ----------------------------------------------------------------- profile
def profile(rows, calls, only, top):
    for key, name, fns, _, _, ours_in, _ in rows:
        if only and key not in only:
            continue
        fn, arg = fns["now"], ours_in[1]
        fn(arg)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(calls):
            fn(arg)
        prof.disable()
        print(f"\n=== {name}: {calls} single-row calls, top {top} by cumulative time ===")
        pstats.Stats(prof).strip_dirs().sort_stats("cumulative").print_stats(top)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (threadpoolctl); 0: leave as is")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--against", metavar="DIR", help="also time the deltaprop package found in DIR ('before')")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="cProfile N single-row calls")
    parser.add_argument("--only", default="", help=f"contenders for --profile ({','.join(CONTENDERS)})")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    import deltaprop

    trees = {"now": deltaprop}
    if args.against:
        trees = {"before": load_tree(args.against), "now": deltaprop}
    limits = threadpool_limits(limits=args.threads, user_api="blas") if args.threads else None
    try:
        rows = contenders(trees)
        print(f"CPU: {cpu_model()} ({usable_cpus()} usable); BLAS: {describe_blas(blas_info())}; "
              f"deltaprop from {Path(deltaprop.__file__).parent}"
              + (f", 'before' from {args.against}" if args.against else ""))
        if args.profile:
            profile(rows, args.profile, {s for s in args.only.split(",") if s}, args.top)
            return
        header, body = table(rows, measure(rows, args.rounds), trees)
        print(f"median of {args.rounds} interleaved rounds, µs per call")
        if args.markdown:
            print(markdown_table(header, body))
        else:
            print_plain(header, body)
    finally:
        if limits is not None:
            limits.restore_original_limits()


if __name__ == "__main__":
    main()

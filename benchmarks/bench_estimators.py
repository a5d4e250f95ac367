"""DeltapropClassifier/DeltapropRegressor against scikit-learn's MLPClassifier/MLPRegressor.

Same network and training on each data set: hidden layers (100,), ReLU,
Adam with learning rate 1e-3, batch size 200, ``--epochs`` epochs (every one
of them: scikit-learn gets ``max_iter=epochs, tol=0, n_iter_no_change=epochs + 1``,
deltaprop ``tol=0, n_iter_no_change=epochs + 1``), shuffling each epoch,
alpha = 1e-4, random_state 0. Inputs are standardised inside a Pipeline;
the diabetes target is standardised too (TransformedTargetRegressor), for both.

Printed for each data set:

* the 5-fold cross-validated score (accuracy, or R² for diabetes) of each, mean
  ± standard deviation over the folds (same folds for both), and whether
  deltaprop's mean is at least scikit-learn's mean minus one standard deviation;
* the time of ``fit`` on the whole data set: ``--repeats`` runs of each,
  interleaved (scikit-learn, deltaprop, scikit-learn, ...), their medians and
  the ratio scikit-learn / deltaprop (above 1: deltaprop is faster); with
  ``--float32`` also deltaprop training in float32.

BLAS threads are limited to ``--threads`` (default 1) for both, through
threadpoolctl, so that the comparison measures the libraries rather than
the machine's other load.

    python benchmarks/bench_estimators.py [--epochs 200] [--repeats 5] [--threads 1] [--float32]
"""

import argparse
import statistics
import sys
import time
import warnings

from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from deltaprop.estimators import DeltapropClassifier, DeltapropRegressor

DATASETS = {
    "digits": (load_digits, "classification"),
    "breast_cancer": (load_breast_cancer, "classification"),
    "wine": (load_wine, "classification"),
    "diabetes": (load_diabetes, "regression"),
}


def models(task, epochs, dtype=None):
    common = dict(hidden_layer_sizes=(100,), activation="relu", batch_size=200, alpha=1e-4, shuffle=True,
                  random_state=0)
    ours = dict(common, optimizer="adam", learning_rate=1e-3, epochs=epochs, tol=0.0, n_iter_no_change=epochs + 1,
                dtype=dtype)
    theirs = dict(common, solver="adam", learning_rate_init=1e-3, max_iter=epochs, tol=0.0,
                  n_iter_no_change=epochs + 1)
    if task == "classification":
        return make_pipeline(StandardScaler(), MLPClassifier(**theirs)), \
            make_pipeline(StandardScaler(), DeltapropClassifier(**ours))

    def wrap(reg):
        return TransformedTargetRegressor(regressor=make_pipeline(StandardScaler(), reg), transformer=StandardScaler())

    return wrap(MLPRegressor(**theirs)), wrap(DeltapropRegressor(**ours))


def timed_fit(model, X, y):
    model = clone(model)
    t0 = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - t0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--float32", action="store_true", help="also time deltaprop training in float32")
    parser.add_argument("--datasets", nargs="*", default=list(DATASETS), choices=list(DATASETS))
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", message="Got `batch_size`")  # scikit-learn clips 200 to small data sets, as we do
    print(f"epochs={args.epochs}, batch_size=200, hidden=(100,), adam lr=1e-3, alpha=1e-4, "
          f"BLAS threads={args.threads}, repeats={args.repeats}")
    header = (f"{'data set':<14}{'metric':<9}{'sklearn CV':>17}{'deltaprop CV':>17}{'ok':>4}"
              f"{'sklearn fit s':>15}{'deltaprop fit s':>17}{'ratio':>7}")
    if args.float32:
        header += f"{'dp f32 s':>10}{'ratio':>7}"
    print(header)
    all_ok = True
    with threadpool_limits(limits=args.threads):
        for name in args.datasets:
            loader, task = DATASETS[name]
            X, y = loader(return_X_y=True)
            sk, dp = models(task, args.epochs)
            cv = (StratifiedKFold if task == "classification" else KFold)(n_splits=5, shuffle=True, random_state=0)
            scoring = "accuracy" if task == "classification" else "r2"
            s_sk = cross_val_score(sk, X, y, cv=cv, scoring=scoring)
            s_dp = cross_val_score(dp, X, y, cv=cv, scoring=scoring)
            ok = s_dp.mean() >= s_sk.mean() - s_sk.std()
            all_ok &= bool(ok)
            variants = [("sk", sk), ("dp", dp)]
            if args.float32:
                variants.append(("dp32", models(task, args.epochs, dtype="float32")[1]))
            times = {k: [] for k, _ in variants}
            for _ in range(args.repeats):  # interleaved, so load changes hit every variant alike
                for key, model in variants:
                    times[key].append(timed_fit(model, X, y))
            med = {k: statistics.median(v) for k, v in times.items()}
            line = (f"{name:<14}{scoring:<9}{s_sk.mean():>10.4f} ±{s_sk.std():.4f}{s_dp.mean():>10.4f} ±"
                    f"{s_dp.std():.4f}{'yes' if ok else 'NO':>4}{med['sk']:>15.3f}{med['dp']:>17.3f}"
                    f"{med['sk'] / med['dp']:>7.2f}")
            if args.float32:
                line += f"{med['dp32']:>10.3f}{med['sk'] / med['dp32']:>7.2f}"
            print(line, flush=True)
    print("scores: deltaprop's mean >= scikit-learn's mean - 1 std on every data set:", "yes" if all_ok else "NO")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())

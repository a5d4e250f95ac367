"""Raw real tables (text and missing cells) with no preparation: deltaprop against scikit-learn.

The data sets are ``tabular_data.py``'s: CSV files written as PyPI packages
ship them (palmerpenguins, vega_datasets, statsmodels), three classification
and three regression. For each, over ``--seeds`` seeds ``S`` (0, 1, ...), one
75/25 split per seed (``train_test_split(test_size=0.25, random_state=S)``,
stratified for classification) used by every model, and four models,
interleaved within the seed (their order rotated from seed to seed):

1. ``cli``: deltaprop's command with its defaults on the raw split files::

       deltaprop train --data train.csv --target T --seed S --test-split 0 --plot none -q \\
           --out m.safetensors --threads N --log log.jsonl [--drop ...] [--task ...]
       deltaprop evaluate m.safetensors --data test.csv --json

   score: ``accuracy`` or ``r2`` of the JSON. Fit time: the wall time of the
   whole ``train`` process (Python start-up, import, reading and encoding the
   CSV, training, writing the model), and, in brackets, the training alone:
   the sum of the epochs' ``time`` in the ``--log`` file (``-q`` prints no
   "trained N epochs in X s" line). ``--threads``, ``--log``, ``--drop`` and
   ``--task`` change nothing in what is learnt.
2. ``estimator``: ``DeltapropClassifier(random_state=S, categorical_features=[])`` /
   ``DeltapropRegressor(...)`` (the empty list sends every DataFrame through the
   data contract: the MLP pipeline's imputation, scaling and one-hot), otherwise defaults, fitted on the
   raw pandas DataFrame (``pandas.read_csv`` of the file, target column and
   dropped columns taken out); the regressor in
   ``TransformedTargetRegressor(transformer=StandardScaler())``, as the MLP.
3. ``sklearn MLP``: ``Pipeline([ColumnTransformer([("num", median imputer +
   StandardScaler, numeric columns), ("cat", most-frequent imputer +
   OneHotEncoder(handle_unknown="ignore"), text columns)]),
   MLPClassifier/MLPRegressor(random_state=S)])``, defaults otherwise; for
   regression wrapped in ``TransformedTargetRegressor(transformer=StandardScaler())``,
   as deltaprop's command standardises the target by default (without it
   MLPRegressor's scores on targets in the hundreds are much worse, which
   would not be a fair comparison).
4. ``HGB``: ``HistGradientBoostingClassifier/Regressor(categorical_features="from_dtype",
   random_state=S)`` on the DataFrame with its text columns as pandas
   ``category`` (categories of the training part; one unseen in the test
   part becomes missing).

Rows whose target is missing (8 in cars) cannot be scored or given to
scikit-learn: the split is drawn over the labelled rows; the command's
``train.csv`` also holds the unlabelled ones (deltaprop drops them itself, as
a user's raw file would make it), the in-process models get the labelled ones.
The split files are the raw file's own lines, byte for byte.

Before any timing, each in-process model is fitted once, unmeasured, on the
first data set (imports and first-call costs). A run that fails is recorded
as ``failed: <its first line of stderr>`` (for a Python traceback, its last
line, which names the error), or for an in-process model ``failed:
<exception type>: <message's first line>``, and the benchmark goes on.

Reported per data set and model: the score, mean ± standard deviation over
the seeds that ran, and the median fit time; then the targets
of the issue: deltaprop's mean score ≥ the scikit-learn MLP's mean minus one
standard deviation, and deltaprop's fit time below the MLP's (the ratio MLP /
deltaprop, above 1 when deltaprop is faster), for the command and for the
estimator. BLAS and OpenMP threads are limited to ``--threads`` (default 1)
for every model: threadpoolctl in this process, ``--threads`` and the
``*_NUM_THREADS`` variables for the command's processes.

    python benchmarks/bench_tabular.py [--quick] [--seeds 5] [--threads 1] [--datasets penguins cars ...]
                                       [--out benchmarks/results/tabular.md] [--strict]

``--quick``: one seed, two data sets (penguins, cars), a smoke test.
``--strict``: exit status 1 when a target is missed or a deltaprop run failed.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import tabular_data  # noqa: E402

MODELS = ("cli", "estimator", "sklearn MLP", "HGB")
DP_MODELS = ("cli", "estimator")
CLI_TIMEOUT_S = 900


# ------------------------------------------------------------------ data
def load(table):
    """The raw file as pandas reads it, its lines, and the positions of the rows that have a target."""
    import pandas as pd

    df = pd.read_csv(table.path)
    lines = table.path.read_text(encoding="utf-8").splitlines()
    if len(lines) != len(df) + 1:  # the split files are written line by line
        raise ValueError(f"{table.path}: {len(lines)} lines for {len(df)} rows; a cell holds a line break")
    labelled = [i for i, missing in enumerate(df[table.target].isna()) if not missing]
    return df, lines, labelled


def split(table, df, labelled, seed):
    """Row positions (train, test) of one seed: 25 % of the labelled rows for the test, stratified for classes."""
    from sklearn.model_selection import train_test_split

    y = df[table.target].iloc[labelled]
    stratify = y if table.task == "classification" else None
    train, test = train_test_split(labelled, test_size=0.25, random_state=seed, stratify=stratify)
    return sorted(train), sorted(test)


def write_rows(lines, rows, path):
    path.write_text("\n".join([lines[0]] + [lines[i + 1] for i in rows]) + "\n", encoding="utf-8")


def features(table, df):
    return df.drop(columns=[table.target, *table.drop])


def text_columns(X):
    return [c for c in X.columns if not tabular_data._is_numeric(X[c])]


# ---------------------------------------------------------------- models
def first_error_line(stderr):
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if not lines:
        return "no message on stderr"
    return lines[-1] if lines[0].startswith("Traceback") else lines[0]


def cli_env(threads):
    extra = {k: str(threads) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    return common.child_env(unset=(), extra=extra)


def run_cli(table, lines, train_rows, unlabelled, test_rows, seed, threads):
    """deltaprop's command on this seed's split files: ``{"score", "fit_s", "train_s"}`` or ``{"error"}``
    (the temporary folder's name taken out of the message, so that every seed's message reads the same)."""
    with tempfile.TemporaryDirectory(prefix="bench-tabular-") as tmp:
        r = _run_cli(Path(tmp), table, lines, train_rows, unlabelled, test_rows, seed, threads)
        if "error" in r:
            r["error"] = r["error"].replace(tmp + os.sep, "")
        return r


def _run_cli(tmp, table, lines, train_rows, unlabelled, test_rows, seed, threads):
    train_csv, test_csv, model, log = tmp / "train.csv", tmp / "test.csv", tmp / "m.safetensors", tmp / "log.jsonl"
    write_rows(lines, sorted(train_rows + unlabelled), train_csv)
    write_rows(lines, test_rows, test_csv)
    drop = ["--drop", ",".join(table.drop)] if table.drop else []
    train = common.deltaprop_command() + [
        "train", "--data", str(train_csv), "--target", table.target, "--seed", str(seed), "--test-split", "0",
        "--plot", "none", "-q", "--out", str(model), "--threads", str(threads), "--log", str(log),
        *drop, *table.cli_args]
    env = cli_env(threads)
    t0 = time.perf_counter()
    try:
        done = subprocess.run(train, cwd=tmp, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"train ran past {CLI_TIMEOUT_S} s"}
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        return {"error": f"train exit {done.returncode}: {first_error_line(done.stderr)}"}
    train_s = None
    try:
        train_s = sum(json.loads(ln)["time"] for ln in log.read_text(encoding="utf-8").splitlines() if ln.strip())
    except (OSError, ValueError, KeyError, TypeError):
        pass
    evaluate = common.deltaprop_command() + ["evaluate", str(model), "--data", str(test_csv), "--json"]
    try:
        done = subprocess.run(evaluate, cwd=tmp, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"error": f"evaluate ran past {CLI_TIMEOUT_S} s"}
    if done.returncode != 0:
        return {"error": f"evaluate exit {done.returncode}: {first_error_line(done.stderr)}"}
    key = "accuracy" if table.task == "classification" else "r2"
    try:
        score = json.loads(done.stdout)[key]
    except (ValueError, KeyError, TypeError):
        return {"error": f"evaluate --json printed no {key!r}: {done.stdout.strip()[:120]!r}"}
    return {"score": float(score), "fit_s": wall, "train_s": train_s}


def make_model(kind, table, X, seed):
    """An unfitted model of ``kind`` for this data set (``X`` names the numeric and the text columns)."""
    classify = table.task == "classification"
    if kind == "estimator":
        common.ensure_src_on_path()
        from deltaprop.estimators import DeltapropClassifier, DeltapropRegressor

        # categorical_features=[] sends every DataFrame through the data contract (imputation, standard scaling,
        # one-hot), the same preprocessing the MLP's pipeline gets; a numeric DataFrame would otherwise be used
        # unscaled, as scikit-learn's MLP uses an array.
        if classify:
            return DeltapropClassifier(random_state=seed, categorical_features=[])
        from sklearn.compose import TransformedTargetRegressor
        from sklearn.preprocessing import StandardScaler

        # the same standardised target as the MLP gets below (and deltaprop's command by default)
        return TransformedTargetRegressor(regressor=DeltapropRegressor(random_state=seed, categorical_features=[]),
                                          transformer=StandardScaler())
    if kind == "HGB":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        cls = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        return cls(categorical_features="from_dtype", random_state=seed)
    from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    text = text_columns(X)
    numeric = [c for c in X.columns if c not in text]
    parts = [("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric)]
    if text:
        parts.append(("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                                       ("onehot", OneHotEncoder(handle_unknown="ignore"))]), text))
    mlp = MLPClassifier(random_state=seed) if classify else MLPRegressor(random_state=seed)
    model = Pipeline([("columns", ColumnTransformer(parts)), ("mlp", mlp)])
    return model if classify else TransformedTargetRegressor(regressor=model, transformer=StandardScaler())


def as_categories(X_train, X_test):
    """Text columns as pandas ``category`` with the training part's categories, for HistGradientBoosting."""
    import pandas as pd

    X_train, X_test = X_train.copy(), X_test.copy()
    for c in text_columns(X_train):
        dtype = pd.CategoricalDtype(sorted(X_train[c].dropna().unique()))
        X_train[c] = X_train[c].astype(object).astype(dtype)
        X_test[c] = X_test[c].astype(object).astype(dtype)
    return X_train, X_test


def run_in_process(kind, table, df, train_rows, test_rows, seed):
    """Fit one in-process model on the training rows and score it on the test rows."""
    from sklearn.metrics import accuracy_score, r2_score

    X, y = features(table, df), df[table.target]
    X_train, X_test = X.iloc[train_rows], X.iloc[test_rows]
    y_train, y_test = y.iloc[train_rows], y.iloc[test_rows]
    if kind == "HGB":
        X_train, X_test = as_categories(X_train, X_test)
    try:
        model = make_model(kind, table, X, seed)
        t0 = time.perf_counter()
        model.fit(X_train, y_train)
        fit_s = time.perf_counter() - t0
        predicted = model.predict(X_test)
    except Exception as e:  # noqa: BLE001 - a failing model is a result to record, not the end of the benchmark
        message = str(e).strip().splitlines()[0] if str(e).strip() else ""
        return {"error": f"{type(e).__name__}: {message}".rstrip(": ")}
    score = accuracy_score(y_test, predicted) if table.task == "classification" else r2_score(y_test, predicted)
    return {"score": float(score), "fit_s": fit_s}


# ---------------------------------------------------------------- report
def aggregate(runs):
    """Mean and standard deviation (population, as numpy's std) of the scores, median fit time, failures."""
    ok = [r for r in runs if "score" in r]
    scores = [r["score"] for r in ok]
    failed = sorted({r["error"] for r in runs if "error" in r})
    train = [r["train_s"] for r in ok if r.get("train_s") is not None]
    return {
        "n": len(runs), "n_ok": len(ok),
        "mean": statistics.fmean(scores) if scores else None,
        "std": statistics.pstdev(scores) if scores else None,
        "fit_median_s": statistics.median(r["fit_s"] for r in ok) if ok else None,
        "train_median_s": statistics.median(train) if train else None,
        "errors": failed,
    }


def score_cell(a):
    if not a["n_ok"]:
        return "failed"
    cell = f"{a['mean']:.4f} ± {a['std']:.4f}"
    return cell if a["n_ok"] == a["n"] else f"{cell} ({a['n_ok']} of {a['n']} runs)"


def fit_cell(a):
    if a["fit_median_s"] is None:
        return "–"
    cell = f"{a['fit_median_s']:.2f}"
    return cell + (f" (training {a['train_median_s']:.2f})" if a["train_median_s"] is not None else "")


def comparison(results):
    """Per data set and deltaprop model: does it meet the issue's two targets against the scikit-learn MLP?"""
    rows, all_met = [], True
    for name, res in results.items():
        mlp = res["models"]["sklearn MLP"]
        for kind in DP_MODELS:
            dp = res["models"][kind]
            if not dp["n_ok"] or not mlp["n_ok"]:
                rows.append([name, kind, "–", "–", "–", "no (failed)" if not dp["n_ok"] else "no MLP score"])
                all_met = False
                continue
            floor = mlp["mean"] - mlp["std"]
            score_ok = dp["mean"] >= floor
            ratio = mlp["fit_median_s"] / dp["fit_median_s"]
            met = score_ok and ratio > 1 and dp["n_ok"] == dp["n"]
            all_met &= met
            rows.append([name, kind, f"{dp['mean']:.4f} ≥ {floor:.4f}: {'yes' if score_ok else 'NO'}",
                         f"{ratio:.2f}", f"{'yes' if ratio > 1 else 'NO'}", "yes" if met else "NO"])
    return rows, all_met


def markdown(results, setup, all_met):
    lines = [
        "# Raw tables: deltaprop against scikit-learn (`benchmarks/bench_tabular.py`)", "",
        f"{setup['date']}; {setup['cpu']}, {setup['usable_cpus']} usable CPUs; BLAS: {setup['blas']}; "
        f"threads per model: {setup['threads']}; Python {setup['python']}, NumPy {setup['numpy']}, "
        f"scikit-learn {setup['sklearn']}, pandas {setup['pandas']}; load average at start "
        f"{', '.join(f'{x:.2f}' for x in setup['load_average'] or [])}.  ",
        f"Command: `{setup['command']}` at {setup['commit'] or 'an unknown commit'} "
        f"({setup['minutes']:.1f} min); seeds {setup['seeds']}; "
        "one stratified (classification) 75/25 split per seed, the same for every model; models interleaved "
        "within a seed, after one unmeasured fit of each in-process model.", "",
        "Score: accuracy or R² on the test part, mean ± standard deviation (ddof 0) over the seeds. "
        "Fit: median seconds; "
        "for `cli` the wall time of the whole `deltaprop train` process (start-up, reading, encoding, training, "
        "writing), in brackets the training alone (the sum of the epochs' times in `--log`); for the others "
        "`fit()` alone. `sklearn MLP`: impute + scale | impute + one-hot, `MLP*(random_state=S)`, "
        "regression (and the estimator's) in `TransformedTargetRegressor(StandardScaler())`. `HGB`: "
        "`HistGradientBoosting*(categorical_features=\"from_dtype\")` with text columns as `category`.", "",
    ]
    rows = []
    for name, res in results.items():
        for kind in MODELS:
            a = res["models"][kind]
            rows.append([name if kind == MODELS[0] else "", res["metric"] if kind == MODELS[0] else "", kind,
                         score_cell(a), fit_cell(a)])
    lines += [common.markdown_table(["data set", "metric", "model", "score", "fit s"], rows), ""]
    lines += ["## Data sets", ""]
    lines += [f"- **{name}** (target `{res['target']}`{', ' + ' '.join(res['cli_args']) if res['cli_args'] else ''}"
              f"{', --drop ' + ','.join(res['drop']) if res['drop'] else ''}): {res['notes']}"
              for name, res in results.items()]
    lines += ["", "## Targets (issue 13): deltaprop's score ≥ the MLP's mean − 1 std, and a faster fit", ""]
    rows, _ = comparison(results)
    lines += [common.markdown_table(["data set", "deltaprop", "score ≥ MLP − 1 std", "fit ratio MLP / deltaprop",
                                     "faster", "both met"], rows), "",
              f"All targets met: {'yes' if all_met else 'NO'}.", ""]
    failures = [(name, kind, err) for name, res in results.items() for kind in MODELS
                for err in res["models"][kind]["errors"]]
    if failures:
        lines += ["## Failed runs", ""]
        lines += [f"- {name}, {kind}: `failed: {err}`" for name, kind, err in failures]
        lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------ main
def setup_facts(threads):
    import numpy as np
    import pandas as pd
    import sklearn
    from threadpoolctl import threadpool_limits

    import sklearn.ensemble  # noqa: F401 - loads the OpenMP runtime threadpoolctl should see

    machine = common.machine_info()
    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=common.ROOT, capture_output=True,
                                text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    machine["commit"] = commit
    with threadpool_limits(limits=threads):
        blas = common.describe_blas(common.blas_info())
    return dict(machine, blas=blas, threads=threads, numpy=np.__version__, sklearn=sklearn.__version__,
                pandas=pd.__version__)


def warm_up(table, seed, threads):
    """One unmeasured fit of each in-process model (imports, first calls), so that the first timed fit is not
    charged with costs a second one would not pay; the command's runs are each a fresh process anyway."""
    from threadpoolctl import threadpool_limits

    df, _, labelled = load(table)
    train_rows, test_rows = split(table, df, labelled, seed)
    with threadpool_limits(limits=threads):
        for kind in MODELS:
            if kind != "cli":
                run_in_process(kind, table, df, train_rows, test_rows, seed)


def run_table(table, seeds, threads):
    """Every model on every seed of one data set: ``{model: [run, ...]}``, each run a dict."""
    from threadpoolctl import threadpool_limits

    df, lines, labelled = load(table)
    unlabelled = sorted(set(range(len(df))) - set(labelled))
    runs = {k: [] for k in MODELS}
    for s, seed in enumerate(seeds):
        train_rows, test_rows = split(table, df, labelled, seed)
        order = MODELS[s % len(MODELS):] + MODELS[:s % len(MODELS)]
        for kind in order:
            if kind == "cli":
                r = run_cli(table, lines, train_rows, unlabelled, test_rows, seed, threads)
            else:
                with threadpool_limits(limits=threads):
                    r = run_in_process(kind, table, df, train_rows, test_rows, seed)
            r["seed"] = seed
            runs[kind].append(r)
            shown = f"failed: {r['error']}" if "error" in r else f"score {r['score']:.4f}, fit {r['fit_s']:.2f} s"
            print(f"  {table.name:<16} seed {seed}  {kind:<12} {shown}", flush=True)
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one seed, two data sets (penguins, cars)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0 .. N-1 (default 5, 1 with --quick)")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads of every model (default 1)")
    parser.add_argument("--datasets", nargs="*", default=None, choices=list(tabular_data.SPECS))
    parser.add_argument("--out", default=str(common.RESULTS / "tabular.md"),
                        help="the Markdown report; the JSON goes beside it (default benchmarks/results/tabular.md)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed or a run failed")
    args = parser.parse_args(argv)
    seeds = list(range(args.seeds if args.seeds is not None else (1 if args.quick else 5)))
    names = args.datasets or (list(tabular_data.QUICK) if args.quick else list(tabular_data.SPECS))
    from sklearn.exceptions import ConvergenceWarning

    warnings.filterwarnings("ignore", category=ConvergenceWarning)  # MLP* stop at max_iter=200, as configured
    started = time.time()
    setup = setup_facts(args.threads)
    print(f"{setup['cpu']}; BLAS {setup['blas']}; seeds {seeds}; data sets {', '.join(names)}", flush=True)
    results = {}
    chosen = tabular_data.tables(names)
    warm_up(chosen[0], seeds[0], args.threads)
    for table in chosen:
        runs = run_table(table, seeds, args.threads)
        results[table.name] = {
            "target": table.target, "task": table.task, "drop": list(table.drop), "cli_args": list(table.cli_args),
            "notes": table.notes, "metric": "accuracy" if table.task == "classification" else "R²",
            "models": {k: aggregate(v) for k, v in runs.items()}, "runs": runs,
        }
    _, all_met = comparison(results)
    setup.update(seeds=seeds, minutes=(time.time() - started) / 60,
                 command="python benchmarks/bench_tabular.py " + " ".join(sys.argv[1:] if argv is None else argv))
    setup["command"] = setup["command"].rstrip()
    text = markdown(results, setup, all_met)
    out = Path(args.out)
    common.write_results(out.stem, {"setup": setup, "results": results, "all_targets_met": all_met}, text,
                         folder=out.parent)
    print("\n" + text, flush=True)
    print(f"wrote {out} and {out.with_suffix('.json').name}", flush=True)
    return 1 if args.strict and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())

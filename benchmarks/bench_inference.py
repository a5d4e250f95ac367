"""Inference: latency on 1 and 100 rows and throughput on 100,000 rows, deltaprop against its peers (issue 16).

Two networks, four contenders each, all predicting class labels:

* Fashion-MNIST, ``784-256-128-10`` (ReLU, softmax, float32), trained by
  deltaprop for one epoch on 10,000 rows (its test accuracy is reported; it
  does not matter here). The same weights are copied into the three peers,
  so all four compute the same function (checked on 2,000 test rows before
  timing: labels, and the largest difference of probabilities):

  - ``deltaprop``: ``Network.predict(X).argmax(axis=1)`` (probabilities, then the label);
  - ``onnxruntime``: ``deltaprop.export.to_onnx(net)`` in an ``InferenceSession``,
    ``run`` then ``argmax``;
  - ``PyTorch``: ``nn.Sequential(Linear, ReLU, Linear, ReLU, Linear, Softmax)``
    under ``torch.inference_mode()``, ``from_numpy`` and ``argmax`` included;
  - ``scikit-learn``: ``MLPClassifier.predict``, the model fitted one iteration
    on 2,000 rows and its ``coefs_``/``intercepts_`` then replaced by
    deltaprop's ``W.T`` and ``b`` (float32; the input is float32 too, and the
    dtype its forward pass keeps is reported).

* A tabular network: ``deltaprop train`` (the command line, default network
  ``17-512-256-3``) on the penguins table of ``tabular_data.py`` (344 raw
  rows, 2 text columns, missing cells), loaded with ``deltaprop.load`` as a
  ``TabularModel``. The rows given to predict are raw pandas rows (the 100 and
  100,000 rows are drawn with replacement from the 344, with their missing cells):

  - ``deltaprop``: ``TabularModel.predict(DataFrame)``, the whole pipeline:
    raw rows → data contract → network → labels;
  - ``onnxruntime``: the model exported with ``inputs="columns"``, ``run`` on
    feeds made by ``deltaprop.export.onnx_feeds`` *before* the clock starts
    (not timed: so this row is the graph alone, contract included, without
    reading the DataFrame). ``onnx_feeds`` alone is timed as its own row;
  - ``scikit-learn``: ``Pipeline(ColumnTransformer(median SimpleImputer +
    StandardScaler on the numbers, most-frequent SimpleImputer + OneHotEncoder
    on the text), MLPClassifier(512, 256))`` trained on the same rows, *not*
    the same weights; ``predict`` on the DataFrame;
  - ``PyTorch``: deltaprop's network (same weights) on the input matrix the
    data contract already made (dense float32): the network part only, no
    reading or encoding of the rows.

Timing: every contender is called a few times first (warm-up); then
``--repeats`` rounds, in each of which every contender in turn (the order
rotated from round to round, so drift hits all) makes ``--calls`` timed
calls on 1 row, then on 100 rows; each call is timed on its own
(``time.perf_counter``) and the median and 90th percentile of all calls are
reported in µs. Throughput: one call on 100,000 rows per contender per round
(same rotation), rows/s, median of the rounds. Threads are fixed for all
(``--threads``, default 1 and then the usable CPUs): threadpoolctl for
NumPy's BLAS (deltaprop, scikit-learn), ``torch.set_num_threads``,
onnxruntime's ``intra_op_num_threads``; each thread count runs in a fresh
worker process. Where the time of deltaprop's single-row TabularModel
predict goes (reading the DataFrame, the contract's transform, the network,
the labels) is measured the same way.

Targets: deltaprop's single-row latency ≤ scikit-learn's; its throughput ≥ PyTorch's.

    python benchmarks/bench_inference.py [--threads 1,2] [--repeats 10] [--calls 50] [--rows 100000] [--quick]

``--quick``: 3 rounds of 10 calls, 10,000 rows, one thread (a smoke test,
under a minute). Writes ``benchmarks/results/inference.md`` and ``inference.json``.
"""

import argparse
import gc
import json
import os
import shlex
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
import numpy as np  # noqa: E402

CONTENDERS = ("deltaprop", "onnxruntime", "PyTorch", "scikit-learn")
FEEDS = "onnx_feeds alone"
NET_ONLY = "deltaprop network only"
SIZES = (1, 100)
FASHION = {"sizes": (784, 256, 128, 10), "train_rows": 10_000, "epochs": 1, "batch_size": 64, "seed": 0}
TABLE = "penguins"
TAB_EPOCHS = 30
CHECK_ROWS = 2000
WARMUP = 5


# ------------------------------------------------------------------ models (parent)
def train_models(folder, threads):
    """Train and save both deltaprop models in ``folder``; returns facts about them."""
    import tabular_data

    common.ensure_src_on_path()
    import deltaprop as dp

    X, y, _, _ = common.fashion_mnist()
    n = FASHION["train_rows"]
    net = dp.Network.from_sizes(list(FASHION["sizes"]), activation="relu", loss="categorical_crossentropy",
                                dtype="float32", seed=FASHION["seed"])
    t0 = time.perf_counter()
    net.fit(X[:n], y[:n], epochs=FASHION["epochs"], batch_size=FASHION["batch_size"], verbose=0)
    fashion_fit_s = time.perf_counter() - t0
    dp.save(net, folder / "fashion.safetensors")
    table = tabular_data.table(TABLE)
    cmd = common.deltaprop_command() + ["train", "--data", str(table.path), "--target", table.target, "--seed", "0",
                                 "--epochs", str(TAB_EPOCHS), "--test-split", "0", "--plot", "none", "-q",
                                 "--threads", str(threads), "--out", str(folder / "tabular.safetensors")]
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=folder, env=common.child_env(unset=(), src=os.environ.get(common.SRC_ENV)), check=True,
                   capture_output=True, text=True)
    tab_cli_s = time.perf_counter() - t0
    shown = " ".join(shlex.quote(c) for c in ["deltaprop"] + cmd[len(common.deltaprop_command()):])
    return {"source": source_facts(), "fashion_fit_s": fashion_fit_s, "tabular_cli_s": tab_cli_s,
            "tabular_command": shown.replace(str(folder) + "/", "").replace(str(table.path), f"{TABLE}.csv"),
            "tabular_notes": table.notes}


def source_facts():
    """Which deltaprop was measured: its source folder, the checkout's commit, uncommitted changes under src/."""
    src = Path(os.environ.get(common.SRC_ENV) or common.ROOT / "src")

    def git(*a):
        done = subprocess.run(["git", *a], cwd=src, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", ".")
    where = "src/" if src == common.ROOT / "src" else str(src)
    return f"{where} at commit {commit or '?'}" + (", with uncommitted changes" if dirty else "")


# ------------------------------------------------------------------ timing
def latency(fns, args, calls, repeats):
    """Per-call seconds of each ``fns[name](args[name])``: warm-up, then rounds of ``calls`` calls each, rotated."""
    names = list(fns)
    for name in names:
        for _ in range(WARMUP):
            fns[name](args[name])
    times = {name: [] for name in names}
    gc.collect()
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn, a = fns[name], args[name]
            for _ in range(calls):
                t0 = time.perf_counter()
                fn(a)
                times[name].append(time.perf_counter() - t0)
    return {name: {"median_us": statistics.median(t) * 1e6, "p90_us": float(np.percentile(t, 90)) * 1e6,
                   "calls": len(t)} for name, t in times.items()}


def throughput(fns, args, n_rows, repeats):
    """Rows per second of one call on ``n_rows`` rows per contender per round (rotated), median of the rounds."""
    names = list(fns)
    for name in names:
        fns[name](args[name])  # warm-up at full size (allocations, thread pools)
    seconds = {name: [] for name in names}
    for r in range(repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            gc.collect()
            t0 = time.perf_counter()
            fns[name](args[name])
            seconds[name].append(time.perf_counter() - t0)
    return {name: {"rows_per_s": n_rows / statistics.median(s), "seconds": common.summary(s)}
            for name, s in seconds.items()}


def measure(fns, inputs, job):
    """Latency for 1 and 100 rows and throughput for ``job["rows"]`` rows of every contender in ``fns``."""
    out = {}
    for size in SIZES:
        out[f"latency_{size}"] = latency(fns, inputs[size], job["calls"], job["repeats"])
    out["throughput"] = throughput(fns, inputs["many"], job["rows"], max(3, job["repeats"] // 2))
    return out


def silenced(fn):
    def call(*a, **k):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*a, **k)
    return call


# ------------------------------------------------------------------ worker: Fashion-MNIST
def torch_twin(torch, net, final):
    """``nn.Sequential`` of deltaprop's Dense layers (weights copied), ReLU between, ``final`` at the end."""
    mods = []
    for i, layer in enumerate(net.layers):
        lin = torch.nn.Linear(layer.n_in, layer.n_out)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(layer.W)))
            lin.bias.copy_(torch.from_numpy(np.ascontiguousarray(layer.b)))
        mods += [lin, torch.nn.ReLU() if i < len(net.layers) - 1 else final]
    return torch.nn.Sequential(*mods).eval()


def ort_session(proto, threads):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])


def fashion_contenders(folder, threads, n_rows):
    """The four Fashion-MNIST contenders, their inputs, and what was checked before timing."""
    import deltaprop as dp
    import torch
    from deltaprop.export import to_onnx
    from sklearn.neural_network import MLPClassifier

    X, y, Xt, yt = common.fashion_mnist()
    net = dp.load(folder / "fashion.safetensors")
    model = torch_twin(torch, net, torch.nn.Softmax(dim=1))
    mlp = MLPClassifier(hidden_layer_sizes=FASHION["sizes"][1:-1], max_iter=1, random_state=0)
    silenced(mlp.fit)(X[:2000], y[:2000])
    mlp.coefs_ = [np.ascontiguousarray(layer.W.T, dtype=np.float32) for layer in net.layers]
    mlp.intercepts_ = [np.array(layer.b, dtype=np.float32) for layer in net.layers]
    sess = ort_session(to_onnx(net), threads)
    x_name, p_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name

    def torch_proba(A):
        with torch.inference_mode():
            return model(torch.from_numpy(A)).numpy()

    proba = {"deltaprop": net.predict, "onnxruntime": lambda A: sess.run([p_name], {x_name: A})[0],
             "PyTorch": torch_proba, "scikit-learn": mlp.predict_proba}
    fns = {"deltaprop": lambda A: net.predict(A).argmax(axis=1),
           "onnxruntime": lambda A: sess.run([p_name], {x_name: A})[0].argmax(axis=1),
           "PyTorch": lambda A: torch_proba(A).argmax(axis=1), "scikit-learn": mlp.predict}
    check = Xt[:CHECK_ROWS]
    P = {k: f(check) for k, f in proba.items()}
    labels = {k: f(check) for k, f in fns.items()}
    facts = {"test_accuracy": float((net.predict(Xt).argmax(axis=1) == yt).mean()),
             "sklearn_forward_dtype": str(P["scikit-learn"].dtype), "sklearn_coef_dtype": str(mlp.coefs_[0].dtype),
             "max_abs_proba_diff": {k: float(np.abs(P[k].astype(np.float64) - P["deltaprop"]).max())
                                    for k in CONTENDERS[1:]},
             "label_disagreements": {k: int((labels[k] != labels["deltaprop"]).sum()) for k in CONTENDERS[1:]},
             "checked_rows": CHECK_ROWS}
    if max(facts["label_disagreements"].values()) > CHECK_ROWS // 1000:
        raise AssertionError(f"the Fashion-MNIST contenders disagree: {facts['label_disagreements']}")
    pool = np.concatenate([Xt, X])
    many = np.ascontiguousarray(pool[np.arange(n_rows) % len(pool)])
    inputs = {1: Xt[:1], 100: Xt[:100], "many": many}
    return fns, {k: {name: v for name in fns} for k, v in inputs.items()}, facts


# ------------------------------------------------------------------ worker: tabular
def sklearn_pipeline(df, y, hidden):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    import pandas as pd

    text = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    numeric = [c for c in df.columns if c not in text]
    cols = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), numeric),
        ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                          ("onehot", OneHotEncoder(handle_unknown="ignore"))]), text)])
    pipe = Pipeline([("columns", cols), ("mlp", MLPClassifier(hidden_layer_sizes=hidden, max_iter=100,
                                                              random_state=0))])
    silenced(pipe.fit)(df, y)
    return pipe


def tabular_contenders(folder, threads, n_rows):
    """The tabular contenders (and ``onnx_feeds`` alone), their inputs, and the checks made before timing."""
    import deltaprop as dp
    import pandas as pd
    import tabular_data
    import torch
    from deltaprop.export import onnx_feeds, to_onnx

    table = tabular_data.table(TABLE)
    df = pd.read_csv(table.path)
    X, y = df.drop(columns=[table.target]), df[table.target].to_numpy()
    model = dp.load(folder / "tabular.safetensors")
    net = model.network
    pipe = sklearn_pipeline(X, y, tuple(layer.n_out for layer in net.layers[:-1]))
    twin = torch_twin(torch, net, torch.nn.Identity())  # softmax left out: the argmax is the same
    sess = ort_session(to_onnx(model, inputs="columns"), threads)

    def encoded(rows):
        return model.contract.inputs(model.contract.read(rows), net.dtype)

    def encode(rows):
        A = encoded(rows)
        return np.ascontiguousarray(A.toarray() if hasattr(A, "toarray") else A, dtype=net.dtype)

    def torch_labels(A):
        with torch.inference_mode():
            return twin(torch.from_numpy(A)).argmax(dim=1).numpy()

    fns = {"deltaprop": model.predict, "onnxruntime": lambda f: sess.run(["label"], f)[0],
           "PyTorch": torch_labels, "scikit-learn": pipe.predict, FEEDS: lambda rows: onnx_feeds(model, rows),
           NET_ONLY: lambda A: net.predict(A).argmax(axis=1)}
    many = X.sample(n_rows, replace=True, random_state=0).reset_index(drop=True)
    frames = {1: X.iloc[:1], 100: many.iloc[:100].reset_index(drop=True), "many": many}
    inputs = {k: {"deltaprop": v, "onnxruntime": onnx_feeds(model, v), "PyTorch": encode(v), "scikit-learn": v,
                  FEEDS: v, NET_ONLY: encoded(v)} for k, v in frames.items()}
    check = X.sample(CHECK_ROWS, replace=True, random_state=1).reset_index(drop=True)
    ours = model.predict(check)
    classes = np.asarray(model.classes, dtype=object)
    ort_labels = sess.run(["label"], onnx_feeds(model, check))[0]
    torch_idx = torch_labels(encode(check))
    facts = {"accuracy_dp_on_train_rows": float((model.predict(X) == y).mean()),
             "accuracy_sklearn_on_train_rows": float((pipe.predict(X) == y).mean()),
             "label_disagreements": {"onnxruntime": int((ort_labels != ours).sum()),
                                     "PyTorch": int((classes[torch_idx] != ours).sum()),
                                     "scikit-learn (other weights)": int((pipe.predict(check) != ours).sum())},
             "checked_rows": CHECK_ROWS, "network": repr(net), "n_inputs": net.n_in}
    if facts["label_disagreements"]["onnxruntime"] or facts["label_disagreements"]["PyTorch"]:
        raise AssertionError(f"the tabular contenders disagree: {facts['label_disagreements']}")
    return fns, inputs, facts, (model, X.iloc[:1])


def tabular_parts(model, one, calls, repeats):
    """Where one single-row ``TabularModel.predict`` goes: read, contract transform, network, labels (µs)."""
    c, net = model.contract, model.network
    try:
        table = c.read(one)
        A = c.inputs(table, net.dtype)
        P = net.predict(A)
        fns = {"read the DataFrame (contract.read)": lambda _: c.read(one),
               "contract transform (contract.inputs)": lambda _: c.inputs(table, net.dtype),
               "network (Network.predict)": lambda _: net.predict(A),
               "labels (argmax, decode)": lambda _: model.target.decode(model.predicted_classes(P)),
               "whole predict": lambda _: model.predict(one)}
        res = latency(fns, {k: None for k in fns}, calls, repeats)
    except Exception as e:  # noqa: BLE001 - internals under change: a missing part is reported, not fatal
        return {"error": f"{type(e).__name__}: {e}"}
    return {k: v["median_us"] for k, v in res.items()}


# ------------------------------------------------------------------ worker
def worker(job):
    threads = job["threads"]
    common.ensure_src_on_path()
    import torch
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    folder = Path(job["folder"])
    result = {"threads": threads, "versions": versions()}
    fns, inputs, facts = fashion_contenders(folder, threads, job["rows"])
    result["fashion"] = {"facts": facts, **measure(fns, inputs, job)}
    print(f"[{threads} thread(s)] Fashion-MNIST measured", flush=True)
    fns, inputs, facts, (model, one) = tabular_contenders(folder, threads, job["rows"])
    result["tabular"] = {"facts": facts, **measure(fns, inputs, job)}
    result["tabular"]["parts_1_row_us"] = tabular_parts(model, one, job["calls"], job["repeats"])
    print(f"[{threads} thread(s)] tabular measured", flush=True)
    result["blas"] = common.describe_blas(common.blas_info())
    result["torch_threads"] = torch.get_num_threads()
    result["blas_info"] = common.blas_info()
    common.send_result(result)


def versions():
    import onnxruntime
    import sklearn
    import torch

    import deltaprop

    return {"deltaprop": getattr(deltaprop, "__version__", "?"), "numpy": np.__version__,
            "torch": torch.__version__, "scikit-learn": sklearn.__version__, "onnxruntime": onnxruntime.__version__}


# ------------------------------------------------------------------ report
def us(lat):
    return f"{common.fmt(lat['median_us'])} ({common.fmt(lat['p90_us'])})"


def ratio(a, b):
    return f"{a / b:.2f}" if a and b else "–"


def net_table(res, tabular):
    """Markdown rows for one network at one thread count, and the two target lines."""
    lat1, lat100, thr = res["latency_1"], res["latency_100"], res["throughput"]
    what = {"deltaprop": "TabularModel.predict(DataFrame): raw rows → labels" if tabular else
            "Network.predict(X).argmax(1)",
            "onnxruntime": "session.run on prepared feeds (contract in the graph)" if tabular else
            "session.run, argmax",
            "PyTorch": "network only, on the encoded matrix" if tabular else "inference_mode forward, argmax",
            "scikit-learn": "Pipeline.predict(DataFrame), own weights" if tabular else
            "MLPClassifier.predict, same weights",
            FEEDS: "building onnxruntime's feeds from the DataFrame",
            NET_ONLY: "Network.predict(encoded).argmax(1): network only, on the contract's OneHotMatrix"}
    sk1, torch_thr = lat1["scikit-learn"]["median_us"], thr["PyTorch"]["rows_per_s"]
    rows = []
    for name in lat1:
        rows.append([name, what[name], us(lat1[name]), us(lat100[name]), common.fmt(thr[name]["rows_per_s"]),
                     ratio(lat1[name]["median_us"], sk1) if name in CONTENDERS else "–",
                     ratio(thr[name]["rows_per_s"], torch_thr) if name != FEEDS else "–"])
    r_lat = lat1["deltaprop"]["median_us"] / sk1
    r_thr = thr["deltaprop"]["rows_per_s"] / torch_thr
    ort_lat = lat1["onnxruntime"]["median_us"] / sk1
    ort_thr = thr["onnxruntime"]["rows_per_s"] / torch_thr
    targets = [f"single-row latency ≤ scikit-learn's: **{'met' if r_lat <= 1 else 'not met'}** "
               f"(deltaprop ÷ scikit-learn {r_lat:.2f}; onnxruntime ÷ scikit-learn {ort_lat:.2f})",
               f"throughput ≥ PyTorch's: **{'met' if r_thr >= 1 else 'not met'}** "
               f"(deltaprop ÷ PyTorch {r_thr:.2f}; onnxruntime ÷ PyTorch {ort_thr:.2f})"]
    ratios = {"latency_1_vs_sklearn": r_lat, "throughput_vs_torch": r_thr, "ort_latency_1_vs_sklearn": ort_lat,
              "ort_throughput_vs_torch": ort_thr}
    if NET_ONLY in thr:  # the tabular PyTorch row is the network alone: the like-for-like figure beside it
        ratios["network_only_throughput_vs_torch"] = thr[NET_ONLY]["rows_per_s"] / torch_thr
        targets[1] += (f"; like for like, deltaprop's network alone on the encoded rows ÷ PyTorch's "
                       f"{ratios['network_only_throughput_vs_torch']:.2f}")
    return rows, targets, ratios


HEADER = ["contender", "what is timed", "1 row µs, median (p90)", "100 rows µs, median (p90)", "rows/s",
          "1 row ÷ scikit-learn", "rows/s ÷ PyTorch"]


def fashion_notes(f):
    d = f["max_abs_proba_diff"]
    return (f"Test accuracy {f['test_accuracy']:.3f} (one epoch on 10,000 rows). Same weights in all four: "
            f"label disagreements with deltaprop on {f['checked_rows']:,} test rows {f['label_disagreements']}; "
            f"largest |Δ probability| onnxruntime {d['onnxruntime']:.1e}, PyTorch {d['PyTorch']:.1e}, "
            f"scikit-learn {d['scikit-learn']:.1e}. scikit-learn's forward pass ran in "
            f"{f['sklearn_forward_dtype']} (coefs {f['sklearn_coef_dtype']}, float32 input).")


def tabular_notes(f, parts):
    if "error" in parts:
        where = f"Parts of one single-row predict: not measured ({parts['error']})."
    else:
        where = "Where one single-row `TabularModel.predict` goes (medians, µs): " + "; ".join(
            f"{k} {common.fmt(v)}" for k, v in parts.items()) + "."
    return (f"{f['network']}. Accuracy on the training rows: deltaprop {f['accuracy_dp_on_train_rows']:.3f}, "
            f"scikit-learn {f['accuracy_sklearn_on_train_rows']:.3f}. Label disagreements with deltaprop on "
            f"{f['checked_rows']:,} rows: {f['label_disagreements']} (onnxruntime and PyTorch: same weights; "
            f"scikit-learn: its own). " + where)


SUMMARY_HEADER = ["network", "threads", "1 row µs: deltaprop", "scikit-learn", "onnxruntime", "deltaprop ÷ sklearn",
                  "rows/s: deltaprop", "PyTorch", "onnxruntime", "deltaprop ÷ PyTorch"]


def summary_row(title, t, res):
    lat, thr = res["latency_1"], res["throughput"]
    return [title, t, *(common.fmt(lat[k]["median_us"]) for k in ("deltaprop", "scikit-learn", "onnxruntime")),
            ratio(lat["deltaprop"]["median_us"], lat["scikit-learn"]["median_us"]),
            *(common.fmt(thr[k]["rows_per_s"]) for k in ("deltaprop", "PyTorch", "onnxruntime")),
            ratio(thr["deltaprop"]["rows_per_s"], thr["PyTorch"]["rows_per_s"])]


def pass_line(res, cpus):
    other = res.get("other_cores")
    noise = "not measured" if other is None else f"{other:.2f} of {cpus} cores on average"
    return (f"BLAS {res['blas']}; PyTorch {res['torch_threads']} thread(s); onnxruntime intra-op threads "
            f"{res['threads']}. Other work on the machine during this pass: {noise}; the pass took "
            f"{res['wall_s']:.0f} s.")


def markdown(results, setup, args, machine):
    first = next(r for r in results if "error" not in r)
    v = first["versions"]
    lines = [
        "## Inference: latency and throughput of predict (bench_inference.py)", "",
        f"{machine['date']}, {machine['cpu']} ({machine['usable_cpus']} usable CPUs), NumPy's BLAS "
        f"{first['blas'].rsplit(',', 1)[0]}; deltaprop {v['deltaprop']}, NumPy {v['numpy']}, PyTorch {v['torch']}, "
        f"scikit-learn {v['scikit-learn']}, onnxruntime {v['onnxruntime']}.  ",
        f"{setup['idle']}; load average {setup['load_end']} at the end.  ",
        f"Command: `{' '.join(['python benchmarks/bench_inference.py'] + args.argv)}`"
        f" ({args.repeats} interleaved rounds of {args.calls} calls per contender per size: medians and 90th "
        f"percentiles over {args.repeats * args.calls} calls; throughput: {args.rows:,} rows, median of "
        f"{max(3, args.repeats // 2)} rounds).  ",
        f"deltaprop imported from {setup['source']}.  ",
        f"Tabular model: `{setup['tabular_command']}`; {setup['tabular_notes']}.", ""]
    summary, sections, top = {}, [], []
    titles = (("fashion", "Fashion-MNIST 784-256-128-10"), ("tabular", "Tabular: penguins"))
    for res in results:
        t = res.get("threads")
        if "error" in res:
            sections += [f"### {t} thread(s): failed", "", f"`{res['error']}`", ""]
            continue
        sections += [f"### {t} thread{'s' if t > 1 else ''}", "", pass_line(res, machine["usable_cpus"]), ""]
        for key, title in titles:
            rows, targets, ratios = net_table(res[key], key == "tabular")
            summary[f"{key}_{t}"] = ratios
            top.append(summary_row(title, t, res[key]))
            notes = (fashion_notes(res[key]["facts"]) if key == "fashion"
                     else tabular_notes(res[key]["facts"], res[key]["parts_1_row_us"]))
            sections += [f"#### {title}, {t} thread{'s' if t > 1 else ''}", "",
                         common.markdown_table(HEADER, rows), "", *[f"- {x}" for x in targets], "", notes, ""]
    lines += ["Summary (medians; targets: deltaprop ÷ scikit-learn ≤ 1 on one row, deltaprop ÷ PyTorch ≥ 1 "
              f"on {args.rows:,} rows; the tabular PyTorch figure is its network alone):", "",
              common.markdown_table(SUMMARY_HEADER, sorted(top, key=lambda r: r[0])), ""]
    lines += sections
    lines += ["Ratios: \"1 row ÷ scikit-learn\" is the median latency over scikit-learn's (below 1: faster); "
              "\"rows/s ÷ PyTorch\" the throughput over PyTorch's (above 1: faster). The tabular onnxruntime row "
              "leaves out building its feeds (the `onnx_feeds alone` row, deltaprop's own reading of the rows); "
              "the tabular PyTorch row is the network alone on the already-encoded matrix, so neither is the "
              "whole raw-rows-to-labels path that deltaprop's and scikit-learn's rows time.", ""]
    return "\n".join(lines), summary


# ------------------------------------------------------------------ main
def busy_seconds():
    """CPU seconds the whole machine has spent busy (all cores; None off Linux)."""
    try:
        idle, total = common._cpu_times()
    except (OSError, ValueError, IndexError):
        return None
    return (total - idle) / os.sysconf("SC_CLK_TCK")


def run_watched(job, env):
    """``common.run_worker`` on this script, and the cores other work kept busy meanwhile (machine busy
    time less the worker's own CPU time, over the wall time)."""
    busy0, own0 = busy_seconds(), os.times()
    res, wall = common.run_worker(Path(__file__), job, env, timeout=1800)
    busy1, own1 = busy_seconds(), os.times()
    if busy0 is None or busy1 is None or wall <= 0:
        return res, wall, None
    own = (own1.children_user - own0.children_user) + (own1.children_system - own0.children_system)
    return res, wall, max(0.0, (busy1 - busy0 - own) / wall)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default=None, help="comma-separated thread counts (default: 1 and the usable "
                        "CPUs; --quick: 1)")
    parser.add_argument("--repeats", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=50, help="timed calls per contender, size and round")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the throughput call")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 10 calls, 10,000 rows, 1 thread")
    parser.add_argument("--wait-idle", type=float, default=30.0, help="seconds to wait for an idle machine")
    parser.add_argument("--out", default=str(common.RESULTS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker))
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.repeats, args.calls, args.rows = 3, 10, 10_000
    cpus = common.usable_cpus() or 1
    default = "1" if args.quick or cpus == 1 else f"1,{cpus}"
    thread_counts = [int(t) for t in (args.threads or default).split(",")]
    machine = common.machine_info()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp:
        setup = train_models(Path(tmp), 1)
        for t in thread_counts:
            idle, waited = common.wait_for_idle(max_wait=args.wait_idle)
            job = {"threads": t, "folder": tmp, "rows": args.rows, "calls": args.calls, "repeats": args.repeats}
            env = common.child_env(src=os.environ.get(common.SRC_ENV), extra={
                k: str(t) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")})
            res, wall, other = run_watched(job, env)
            res.update({"threads": t, "wall_s": wall, "idle_before": idle, "waited_s": waited, "other_cores": other})
            print(f"{t} thread(s): {'error: ' + res['error'] if 'error' in res else 'done'} in {wall:.0f} s",
                  flush=True)
            results.append(res)
    idles = [r["idle_before"] for r in results if r.get("idle_before") is not None]
    setup["idle"] = (f"Machine idle before each pass: {', '.join(f'{x:.0%}' for x in idles)}" if idles
                     else "Idleness of the machine not measured")
    setup["load_end"] = ", ".join(f"{x:.1f}" for x in common.machine_info()["load_average"] or [])
    if all("error" in r for r in results):
        print("every pass failed:", [r["error"] for r in results])
        return 1
    text, summary = markdown(results, setup, args, machine)
    common.write_results("inference", {"machine": machine, "setup": setup, "argv": args.argv,
                                       "repeats": args.repeats, "calls": args.calls, "rows": args.rows,
                                       "summary": summary, "results": results}, text, args.out)
    print(text)
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())

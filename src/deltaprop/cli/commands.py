"""The commands that read a model file (evaluate, predict, info) and gradcheck."""

import csv
import json
import os
import sys
import tempfile

import numpy as np

from .. import activations, losses, report
from .._version import __version__
from ..data import load_builtin, load_features
from ..errors import DataError, DeltapropError
from ..gradcheck import gradcheck
from ..io import MODEL_FORMAT, MODEL_FORMAT_VERSION
from ..model import Network
from . import config as C
from .common import UsageError, check_features, is_builtin, labels_from, load_dataset, parse_arg, split_rows
from .config import OPTIONS_BY_KEY, TRAIN_OPTIONS, ConfigError
from .model import CHUNK_ROWS, LoadedModel, evaluate_outputs, format_scores, predict

__all__ = ["cmd_evaluate", "cmd_predict", "cmd_info", "cmd_gradcheck"]


# ---------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------


def cmd_evaluate(args):
    """``deltaprop evaluate``: loss and metrics (and for classes, the confusion matrix and per-class table)."""
    model = LoadedModel(args.model)
    net = model.net
    X, y, rows, codes, where = _evaluation_data(args, model)
    check_features(X, net.n_in, args.data or model.config.get("data"))
    if model.task == "classification" and codes is None:
        codes = labels_from(model.classes).transform(np.asarray(y).reshape(-1))
    outputs = predict(net, model.scaler, X, rows=rows)
    scores, pred = evaluate_outputs(net, model.task, model.target_encoding(), outputs, y, codes, model.target_scaler)
    result = {"model": args.model, "data": where, **scores}
    if model.task == "classification":
        matrix = report.confusion_matrix(codes, pred, len(model.classes))
        stats = report.per_class(matrix)
        result["confusion_matrix"] = matrix.tolist()
        result["classes"] = model.classes
        result["per_class"] = {key: [None if np.isnan(v) else float(v) for v in stats[key]]
                               for key in ("precision", "recall", "f1")}
        result["per_class"]["support"] = stats["support"].tolist()
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"model: {args.model}")
    print(f"data: {where}, {scores['samples']} samples")
    print(f"loss ({net.loss.name}{', standardised targets' if model.target_scaler is not None else ''}): "
          f"{scores['loss']:.4f}")
    for key, label in (("accuracy", "accuracy"), ("r2", "R²"), ("rmse", "RMSE"), ("mae", "MAE")):
        if key in scores:
            print(f"{label}: {scores[key]:.4f}")
    if model.task == "classification":
        names = model.class_names or [str(c) for c in model.classes]
        print("\nconfusion matrix (rows: true class, columns: predicted class)")
        print(report.format_confusion(matrix, names))
        print("\nper-class precision and recall")
        print(report.format_per_class(matrix, names))
    return 0


def _evaluation_data(args, model):
    """What ``evaluate`` scores: ``(X, y, rows, codes, where)``.

    With ``--data``, that file (or built-in set) whole. Without it, the
    training data's official test set, or its test split drawn again (same
    data, same class codes, same seed): then ``rows`` are the rows of ``X``
    to score and ``codes`` the class indices of ``y``. ``rows`` and
    ``codes`` are None otherwise.
    """
    cfg = model.config
    target = None if args.target is None else OPTIONS_BY_KEY["target"].parse(args.target, "--target")
    if args.data is not None:
        if target is None and cfg.get("data") == args.data and args.labels is None:
            target = cfg.get("target")
        ds = load_dataset(args.data, args.labels, target)
        return ds.X, np.asarray(ds.y), None, None, ds.name
    if "data" not in cfg:
        raise ConfigError(f"{args.model} holds no training configuration; give the data with --data")
    if args.labels is not None or target is not None:
        raise ConfigError("--labels and --target go with --data")
    ds = load_dataset(cfg["data"], cfg.get("labels"), cfg.get("target"))
    if ds.X_test is not None:
        return ds.X_test, np.asarray(ds.y_test), None, None, f"{ds.name} (official test set)"
    y_all = np.asarray(ds.y)
    codes = None
    if model.task == "classification":
        codes = labels_from(model.classes).transform(y_all.reshape(-1))
    split_cfg = {"seed": cfg.get("seed", 0), "test_split": cfg.get("test_split", 0.25), "validation_split": 0.0}
    if not split_cfg["test_split"]:
        raise ConfigError(f"{args.model} was trained without a test split (test_split = 0); give --data")
    _, _, rows = split_rows(len(y_all), codes, split_cfg, False)
    return ds.X, y_all[rows], rows, None if codes is None else codes[rows], f"{ds.name} (test split)"


# ---------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------


def _read_stdin_to_file():
    """Standard input copied to a temporary CSV file; returns its path (the caller removes it)."""
    fd, path = tempfile.mkstemp(prefix="deltaprop-stdin-", suffix=".csv")
    with os.fdopen(fd, "wb") as f:
        while True:
            block = sys.stdin.buffer.read(1 << 20)
            if not block:
                break
            f.write(block)
    return path


def cmd_predict(args):
    """``deltaprop predict``: labels, probabilities or values as CSV, a chunk of rows at a time."""
    model = LoadedModel(args.model)
    net, cfg = model.net, model.config
    target = None if args.target is None else OPTIONS_BY_KEY["target"].parse(args.target, "--target")
    if target is None and isinstance(cfg.get("target"), (str, int)) and not isinstance(cfg.get("target"), bool):
        target = cfg["target"]
    if args.proba:
        if model.task != "classification":
            raise ConfigError("--proba gives class probabilities; this model is a regression model")
        act = net.layers[-1].activation.name
        if act not in ("softmax", "sigmoid"):
            raise ConfigError(f"--proba needs a softmax or sigmoid output; this model's output is {act}")
    X, source = _prediction_inputs(args.data, net.n_in, target)
    check_features(X, net.n_in, source)
    out = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout
    try:
        writer = csv.writer(out, lineterminator="\n")
        for start in range(0, X.shape[0], CHUNK_ROWS):
            _write_predictions(writer, model, model.outputs(X[start:start + CHUNK_ROWS]), args.proba,
                               header=start == 0)
        out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def _prediction_inputs(data, n_in, target):
    """The features to predict, ``(X, source)``: standard input (``-``), a built-in data set or a file."""
    if data == "-":
        tmp = _read_stdin_to_file()
        try:
            X, _ = load_features(tmp, n_features=n_in, target=target)
        finally:
            os.unlink(tmp)
        return X, "standard input"
    if not os.path.exists(data) and is_builtin(data):
        return load_builtin(data).X, data
    X, _ = load_features(data, n_features=n_in, target=target)
    return X, data


def _write_predictions(writer, model, P, proba, header):
    """CSV rows for one chunk of outputs ``P`` (n, n_out): labels, probabilities or values, after a header row."""
    if model.task == "classification" and proba:
        probs = np.concatenate([1 - P, P], axis=1) if P.shape[1] == 1 else P
        if header:
            writer.writerow([str(c) for c in model.classes])
        writer.writerows([[f"{v:.6g}" for v in row] for row in probs.tolist()])
    elif model.task == "classification":
        if header:
            writer.writerow([model.extra.get("target_name") or "prediction"])
        writer.writerows([[model.classes[i]] for i in model.predicted_classes(P)])
    else:
        if header:
            name = model.extra.get("target_name") or "prediction"
            writer.writerow([name] if P.shape[1] == 1 else [f"{name}_{j}" for j in range(P.shape[1])])
        digits = 9 if model.net.dtype.itemsize == 4 else 17
        writer.writerows([[f"{v:.{digits}g}" for v in row] for row in P.tolist()])


# ---------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------


def cmd_info(args):
    """``deltaprop info``: what a model file holds, as text, JSON or (the configuration) TOML."""
    model = LoadedModel(args.model)
    net, meta, cfg = model.net, model.net.metadata, model.config
    if args.toml:
        keys = [opt.key for opt in TRAIN_OPTIONS if opt.key in cfg]
        if not keys:
            raise DataError(f"{args.model} holds no training configuration")
        sys.stdout.write(C.to_toml({k: cfg[k] for k in keys if k in OPTIONS_BY_KEY}))
        return 0
    layers = [{"n_in": layer.n_in, "n_out": layer.n_out, "activation": layer.activation.name,
               "dropout": layer.dropout} for layer in net.layers]
    preprocessing = None
    if model.scaler is not None:
        preprocessing = {"kind": model.scaler.kind, "n_features": model.scaler.n_features_in_}
    info = {
        "model": args.model,
        "format": meta.get("format"),
        "format_version": int(meta.get("format_version", 0)),
        "written_by": json.loads(meta.get("library_version", "null")),
        "reader": {"deltaprop": __version__, "format_version": MODEL_FORMAT_VERSION, "format": MODEL_FORMAT},
        "layers": layers,
        "loss": net.loss.name,
        "dtype": net.dtype.name,
        "parameters": int(net.n_params),
        "task": model.task,
        "classes": model.classes,
        "class_names": model.class_names,
        "preprocessing": preprocessing,
        "target_scaling": None if model.target_scaler is None else model.target_scaler.kind,
        "test": model.extra.get("test"),
        "config": cfg or None,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_info(model, info)
    return 0


def _print_info(model, info):
    """``info`` as text for a person."""
    net, cfg, preprocessing = model.net, model.config, info["preprocessing"]
    print(f"model: {info['model']}")
    print(f"format: {info['format']} version {info['format_version']}, written by deltaprop {info['written_by']} "
          f"(this is deltaprop {__version__}, reading format versions up to {MODEL_FORMAT_VERSION})")
    print("architecture:")
    for line in net.summary().splitlines():
        print(f"  {line}")
    print(f"parameters: {net.n_params:,}")
    if model.task == "classification":
        print(f"task: classification, {len(model.classes)} classes: {', '.join(model.display_names())}")
    else:
        print(f"task: regression, {net.n_out} output{'s' if net.n_out > 1 else ''}"
              + (f" ({model.extra['target_name']})" if model.extra.get("target_name") else ""))
    if preprocessing is None:
        print("preprocessing: none stored")
    else:
        print(f"preprocessing: {preprocessing['kind']} scaling of {preprocessing['n_features']} features, "
              f"fitted on the training split")
    if model.target_scaler is not None:
        print(f"target scaling: {model.target_scaler.kind} (predictions are mapped back to the original units)")
    if info["test"]:
        print(f"test result when trained: {format_scores(info['test'])} ({info['test'].get('samples')} samples)")
    if not cfg:
        print("training configuration: none stored")
        return
    print("training configuration (TOML; 'deltaprop info MODEL --toml > run.toml' saves it for --config):")
    try:
        keys = [opt.key for opt in TRAIN_OPTIONS if opt.key in cfg] + [k for k in cfg if k not in OPTIONS_BY_KEY]
        text = C.to_toml(cfg, keys)
    except ConfigError:
        text = json.dumps(cfg, indent=2) + "\n"
    for line in text.splitlines():
        print(f"  {line}")


# ---------------------------------------------------------------------------
# gradcheck
# ---------------------------------------------------------------------------


def cmd_gradcheck(args):
    """``deltaprop gradcheck``: per-layer backprop errors of a small random float64 network."""
    hidden = parse_arg(args.hidden, "--hidden", C.list_of(C.integer(1), "layer sizes such as 5,4",
                                                              allow_empty=True))
    acts = parse_arg(args.activation, "--activation", C.name_list)
    samples = parse_arg(args.samples, "--samples", C.integer(1))
    features = parse_arg(args.features, "--features", C.integer(1))
    tol = parse_arg(args.tol, "--tol", C.number(0.0, low_open=True))
    seed = parse_arg(args.seed, "--seed", C.integer(0))
    if len(acts) != 1 and len(acts) != len(hidden):
        raise UsageError(
            f"--activation has {len(acts)} names for {len(hidden)} hidden layers; give one or one per layer"
        )
    try:
        loss = losses.get(losses.canonical_name(args.loss))
        for name in acts:
            activations.get(name)
        out_act = args.output_activation or losses.default_activation_for(loss)
        activations.get(out_act)
    except DeltapropError as exc:
        raise UsageError(str(exc)) from None
    default_out = 1 if loss.name == "binary_crossentropy" else 3
    n_out = default_out if args.outputs is None else parse_arg(args.outputs, "--outputs", C.integer(1))

    rng = np.random.default_rng(seed)
    acts = acts * len(hidden) if len(acts) == 1 else acts
    sizes = [features] + hidden + [n_out]
    net = Network.from_sizes(sizes, activation=acts, output_activation=out_act, loss=loss, dtype="float64",
                             seed=seed)
    # Biases away from zero so that no block's gradient is trivially small.
    for layer in net.layers:
        layer.b[...] = rng.normal(0.0, 0.1, size=layer.b.shape)
    X = rng.standard_normal((samples, features))
    if loss.name in ("categorical_crossentropy", "hinge") and n_out > 1:
        y = rng.integers(0, n_out, size=samples)
    elif loss.name in ("binary_crossentropy", "hinge"):
        y = rng.integers(0, 2, size=(samples, n_out)).astype(np.float64)
    else:
        y = rng.standard_normal((samples, n_out))
    rows = gradcheck(net, X, y)
    worst = max(max(row["W"], row["b"]) for row in rows)
    print(f"network {'-'.join(str(s) for s in sizes)} ({', '.join(acts) or 'no hidden layer'}; "
          f"{out_act} + {loss.name}), float64, {samples} random samples, seed {seed}")
    print(f"{'layer':<7}{'shape':>12}{'error W':>12}{'error b':>12}")
    for row, layer in zip(rows, net.layers):
        flag = "" if max(row["W"], row["b"]) <= tol else "  FAIL"
        print(f"{row['layer']:<7}{f'{layer.n_out}x{layer.n_in}':>12}{row['W']:>12.2e}{row['b']:>12.2e}{flag}")
    passed = worst <= tol
    print(f"{'passed' if passed else 'FAILED'}: largest error {worst:.2e} (tolerance {tol:g})")
    return 0 if passed else 1

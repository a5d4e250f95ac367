"""The commands that read a model file (evaluate, predict, info) and gradcheck."""

import contextlib
import csv
import json
import os
import sys

import numpy as np

from .. import activations, losses
from .. import report as report_mod
from .._version import __version__
from ..atomic import atomic_write
from ..checks import input_file
from ..data import load_builtin, load_features
from ..errors import DataError, DeltapropError, InvalidArgumentError
from ..gradcheck import gradcheck, random_targets
from ..io import MODEL_FORMAT, MODEL_FORMAT_VERSION
from ..model import Network
from ..report import printable
from ..tabular import drop_missing_targets
from ..tabular.model import probabilities
from ..tabular.schema import plural
from ..tabular.scores import format_scores, score_table
from . import config as C
from .common import PROG, UsageError, is_builtin, load_dataset, parse_arg, split_rows
from .config import OPTIONS_BY_KEY, TRAIN_OPTIONS, ConfigError
from .model import array_outputs, display_names, open_model
from .paths import check_outputs
from .prepare import is_table_source

__all__ = ["cmd_evaluate", "cmd_predict", "cmd_info", "cmd_gradcheck"]


# ---------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------


def cmd_evaluate(args):
    """``deltaprop evaluate``: loss and metrics (and for classes, the confusion matrix and per-class table)."""
    model = open_model(args.model)
    _check_paths(args, {})
    report = model.contract.new_report()
    with _once(args.data) as data:
        features, y, where = _evaluation_data(args, model, data)
        if data != args.data:  # a pipe read through a temporary copy: name it as the user did
            where = os.path.basename(args.data)
        scores, pred, codes = score_table(model, features, report=report, y=y)
    _notes(report)
    matrix = None
    if model.task == "classification":
        matrix = report_mod.confusion_matrix(codes, pred, len(model.classes))
    if args.json:  # complete, however many classes: the terminal gets a summary instead
        result = {"model": args.model, "data": where, **scores}
        if matrix is not None:
            stats = report_mod.per_class(matrix)
            result["confusion_matrix"] = matrix.tolist()
            result["classes"] = model.classes
            result["per_class"] = {key: [None if np.isnan(v) else float(v) for v in stats[key]]
                                   for key in ("precision", "recall", "f1")}
            result["per_class"]["support"] = stats["support"].tolist()
        print(json.dumps(result, indent=2))
        return 0
    print(f"model: {printable(args.model, 200)}")
    print(f"data: {printable(where, 200)}, {plural(scores['samples'], 'sample')}")
    scaled = model.task == "regression" and model.target.scaled
    print(f"loss ({model.network.loss.name}{', standardised targets' if scaled else ''}): {scores['loss']:.4f}")
    for key, label in (("accuracy", "accuracy"), ("r2", "R²"), ("rmse", "RMSE"), ("mae", "MAE")):
        if key in scores:
            print(f"{label}: {scores[key]:.4f}")
    if model.task == "classification":
        names = model.target.class_names or [str(c) for c in model.classes]
        print("\nconfusion matrix (rows: true class, columns: predicted class)")
        print(report_mod.format_confusion(matrix, names))
        print("\nper-class precision and recall")
        print(report_mod.format_per_class(matrix, names))
    return 0


def _notes(report):
    for note in report.messages():
        print(f"{PROG}: note: {note}", file=sys.stderr)


def _check_paths(args, outputs):
    """Refuse an output that is one of the inputs, before any work."""
    inputs = {"MODEL": args.model, "--data": getattr(args, "data", None), "--labels": getattr(args, "labels", None)}
    check_outputs(inputs, outputs)


@contextlib.contextmanager
def _once(path):
    """``--data`` as a path to read: a pipe is copied once into a temporary file (never sniffed twice)."""
    if path is None or path == "-" or not os.path.exists(path) or os.path.isfile(path) or os.path.isdir(path):
        yield path
        return
    with input_file(path, "data file") as real:
        yield real


def _evaluation_data(args, model, data):
    """What ``evaluate`` scores: ``(features, y, where)``.

    ``features`` is a raw table (or array) of the features, ``y`` the raw
    targets. With ``--data``, that file (or built-in set) whole: a table's
    target column is the one the model was trained to predict (``--target``
    names another). Without it, a built-in training set's test split drawn
    again (same data, same seed); a file path stored in the model is shown,
    never opened.
    """
    target = None if args.target is None else OPTIONS_BY_KEY["target"].parse(args.target, "--target")
    if data is not None:
        if data != "-" and is_table_source(data):
            if args.labels is not None:
                raise ConfigError("--labels goes with NPY or IDX features; a table holds its target column")
            return _table_with_target(data, model, target)
        ds = load_dataset(data, args.labels, target)
        return ds.X, np.asarray(ds.y), ds.name
    cfg = model.config
    stored = cfg.get("data")
    if not isinstance(stored, str) or not is_builtin(stored) or os.path.exists(stored):
        shown = f" (trained on {printable(stored, 200)})" if isinstance(stored, str) else ""
        raise ConfigError(f"give the data to evaluate with --data{shown}; a path stored in a model file is "
                          f"never opened on its own")
    if args.labels is not None or target is not None:
        raise ConfigError("--labels and --target go with --data")
    return _builtin_test_split(args, model, stored)


def _table_with_target(path, model, target):
    """A table file's feature table and target values; rows with a missing target are dropped (with a note)."""
    table = model.contract.read(path)
    if target is None:
        target = model.target_name if model.target_stored else -1  # a network alone: the last column
    name = table.names[target] if isinstance(target, int) else target
    if name not in table.columns:
        raise DataError(f"{path}: no column {name!r}, the target the model was trained to predict; the columns "
                        f"are {table.names[:20]} (name the target column of this file with --target)")
    table, dropped = drop_missing_targets(table, name)
    if dropped:
        print(f"{PROG}: note: dropped {plural(dropped, 'row')} whose target {name!r} is missing", file=sys.stderr)
    return table.without(name), table.columns[name], os.path.basename(path)


def _builtin_test_split(args, model, stored):
    cfg = model.config
    ds = load_builtin(stored)
    if ds.X_test is not None:
        return ds.X_test, np.asarray(ds.y_test), f"{ds.name} (official test set)"
    y_all = np.asarray(ds.y)
    codes = model.target.encode(y_all) if model.task == "classification" else None
    split_cfg = {"seed": cfg.get("seed", 0), "test_split": cfg.get("test_split", 0.25), "validation_split": 0.0}
    if not split_cfg["test_split"]:
        raise ConfigError(f"{args.model} was trained without a test split (test_split = 0); give --data")
    _, _, rows = split_rows(len(y_all), codes, split_cfg, False)
    return ds.X[rows], y_all[rows], f"{ds.name} (test split)"


# ---------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------


def cmd_predict(args):
    """``deltaprop predict``: labels, probabilities or values as CSV, written atomically."""
    model = open_model(args.model)
    _check_paths(args, {"--out": args.out})
    target = None if args.target is None else OPTIONS_BY_KEY["target"].parse(args.target, "--target")
    if args.proba:
        try:
            model.check_proba()
        except InvalidArgumentError as exc:
            raise ConfigError(f"--proba: {exc}") from None
    report = model.contract.new_report()
    with _once(args.data) as data:
        P = _prediction_outputs(data, model, target, report)
    _notes(report)
    if args.out:
        with atomic_write(args.out, "w", encoding="utf-8", newline="") as out:
            _write_predictions(csv.writer(out, lineterminator="\n"), model, P, args.proba)
    else:
        _write_predictions(csv.writer(sys.stdout, lineterminator="\n"), model, P, args.proba)
        sys.stdout.flush()
    return 0


def _prediction_outputs(data, model, target, report):
    """The model's outputs (target units) for ``--data``: standard input, a built-in set, a table or arrays."""
    if data == "-":  # standard input, copied once and bounded like any pipe
        with input_file("/dev/stdin", "standard input") as tmp:
            return _file_outputs(tmp, model, target, report)
    if not os.path.exists(data) and is_builtin(data):
        return array_outputs(model, load_builtin(data).X, report)
    return _file_outputs(data, model, target, report)


def _file_outputs(path, model, target, report):
    if is_table_source(path):
        table = model.contract.read(path)
        if target is not None:
            name = table.names[target] if isinstance(target, int) else target
            table = table.select(drop=[name])
        return model.outputs(table, report=report)
    n_in = len(model.feature_names)
    X, _ = load_features(path, n_features=n_in, target=target)
    return array_outputs(model, X, report)


def _write_predictions(writer, model, P, proba):
    """CSV rows for outputs ``P`` (n, n_out): labels, probabilities or values, after a header row."""
    name = model.target_name or "prediction"
    if model.task == "classification" and proba:
        probs = probabilities(P)
        writer.writerow([str(c) for c in model.classes])
        writer.writerows([[f"{v:.6g}" for v in row] for row in probs.tolist()])
    elif model.task == "classification":
        writer.writerow([name])
        labels = model.target.decode(model.predicted_classes(P))
        writer.writerows([[v] for v in labels.tolist()])
    else:
        if not np.all(np.isfinite(P)):
            raise DataError("the model's predictions overflow (infinite or NaN values); the model or the inputs "
                            "are out of the range it can handle")
        writer.writerow([name] if P.shape[1] == 1 else [f"{name}_{j}" for j in range(P.shape[1])])
        digits = 9 if P.dtype.itemsize == 4 else 17  # enough to read back the very value (float32 or float64)
        writer.writerows([[f"{v:.{digits}g}" for v in row] for row in P.tolist()])


# ---------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------


def cmd_info(args):
    """``deltaprop info``: what a model file holds, as text, JSON or (the configuration) TOML."""
    model = open_model(args.model)
    net, meta, cfg = model.network, model.network.metadata, model.config
    if args.toml:
        keys = [opt.key for opt in TRAIN_OPTIONS if opt.key in cfg]
        if not keys:
            raise DataError(f"{args.model} holds no training configuration")
        sys.stdout.write(C.to_toml({k: cfg[k] for k in keys if k in OPTIONS_BY_KEY}))
        return 0
    layers = [_layer_info(layer) for layer in net.layers]
    info = {
        "model": args.model,
        "format": meta.get("format"),
        "format_version": int(meta.get("format_version", 0)),
        "written_by": model.written_by,
        "reader": {"deltaprop": __version__, "format_version": MODEL_FORMAT_VERSION, "format": MODEL_FORMAT},
        "layers": layers,
        "loss": net.loss.name,
        "dtype": net.dtype.name,
        "parameters": int(net.n_params),
        "task": model.task,
        "target": model.target_name,
        "classes": model.classes,
        "class_names": model.target.class_names,
        "columns": model.contract.schema.describe(),
        "inputs": model.input_names(),
        "target_scaling": "standard" if model.target.scaled else None,
        "test": model.test,
        "config": cfg or None,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        _print_info(model, info)
    return 0


def _layer_info(layer):
    """One layer for ``info --json``: its type and widths, then its configuration (a block's layers nested)."""
    config = layer.get_config()
    out = {"type": config.pop("type", type(layer).__name__), "n_in": layer.n_in, "n_out": layer.n_out}
    if "activation" in config:
        config["activation"] = layer.activation.name
    if "layers" in config:
        config["layers"] = [_layer_info(inner) for inner in layer.layers]
    out.update({k: v for k, v in config.items() if k not in out})
    return out


def _print_info(model, info):
    """``info`` as text for a person."""
    net, cfg = model.network, model.config
    print(f"model: {printable(info['model'], 200)}")
    print(f"format: {info['format']} version {info['format_version']}, written by deltaprop "
          f"{printable(str(info['written_by']), 40)} (this is deltaprop {__version__}, reading format versions up "
          f"to {MODEL_FORMAT_VERSION})")
    print("architecture:")
    for line in net.summary().splitlines():
        print(f"  {line}")
    print(f"parameters: {net.n_params:,}")
    target = printable(str(model.target_name), 60)
    if model.task == "classification":
        shown = [printable(n, 40) for n in display_names(model)]
        more = f", ... and {len(shown) - 50} more" if len(shown) > 50 else ""
        print(f"task: classification of {target}, {len(shown)} classes: {', '.join(shown[:50])}{more}")
    else:
        print(f"task: regression of {target}" + (" (trained on standardised values; predictions are given in "
                                                 "the original units)" if model.target.scaled else ""))
    columns = info["columns"]
    print(f"columns ({len(columns)}, read by name; {net.n_in} network inputs):")
    for line in columns[:100]:
        print(f"  {printable(line, 160)}")
    if len(columns) > 100:
        print(f"  ... and {len(columns) - 100} more (deltaprop info --json lists them all)")
    if info["test"]:
        print(f"test result when trained: {format_scores(info['test'])} "
              f"({plural(info['test'].get('samples', 0), 'sample')})")
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
        print(f"  {printable(line, 200)}")


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
    norm = None if args.norm == "none" else args.norm
    net = Network.from_sizes(sizes, activation=acts, output_activation=out_act, loss=loss, dtype="float64",
                             seed=seed, norm=norm, residual=args.residual)
    # Biases, shifts and scales away from 0 (and 1) so that no block's gradient is trivially small.
    for name, view in net.tensors().items():
        kind = name.rsplit(".", 1)[-1]
        if kind in ("b", "beta", "gamma"):
            view += rng.normal(0.0, 0.1, size=view.shape)
    X = rng.standard_normal((samples, features))
    y = random_targets(loss.name, n_out, samples, rng)
    rows = gradcheck(net, X, y, training=True)
    blocks = [(row["layer"], name, err) for row in rows for name, err in row.items() if name != "layer"]
    worst = max(err for _, _, err in blocks)
    extra = (f"{norm} norm, " if norm else "") + ("residual blocks, " if args.residual else "")
    print(f"network {'-'.join(str(s) for s in sizes)} ({extra}{', '.join(acts) or 'no hidden layer'}; "
          f"{out_act} + {loss.name}), float64, {samples} random samples, seed {seed}, training mode")
    print(f"{'layer':<7}{'kind':<12}{'block':<18}{'shape':>12}{'error':>12}")
    for layer_no, name, err in blocks:
        layer = net.layers[layer_no - 1]
        shape = "x".join(str(d) for d in layer.param_shapes()[name])
        flag = "" if err <= tol else "  FAIL"
        print(f"{layer_no:<7}{type(layer).__name__:<12}{name:<18}{shape:>12}{err:>12.2e}{flag}")
    passed = worst <= tol
    print(f"{'passed' if passed else 'FAILED'}: largest error {worst:.2e} (tolerance {tol:g})")
    return 0 if passed else 1

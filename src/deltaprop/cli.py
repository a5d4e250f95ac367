"""The ``deltaprop`` command: train, evaluate, predict, gradcheck, info.

::

    deltaprop train                                  # digits, 64-512-256-10, model.safetensors, curves.png
    deltaprop train --data fashion-mnist --hidden 512,256 --dropout 0.2 --batch-size 128 --epochs 30
    deltaprop evaluate model.safetensors             # the held-out test split of the training data
    deltaprop predict model.safetensors --data new.csv --out predictions.csv
    deltaprop info model.safetensors
    deltaprop gradcheck --hidden 5,4 --activation tanh

Each command has ``--help`` with examples. The options of ``train`` are
declared once in :mod:`deltaprop.config`, which also reads them from a TOML
file (``--config run.toml``; flags override the file).

Results go to standard output; progress bars and messages to standard error.
An error is one line on standard error, ``deltaprop: error: ...``, with exit
status 2 for a usage error (a bad flag or configuration value), 130 after
Ctrl-C and 1 for anything else (bad data, a missing file, a diverged run).

Start-up stays fast (``deltaprop --help`` imports argparse and deltaprop's
package, nothing heavy): scikit-learn, matplotlib, safetensors and tqdm are
imported only by the commands that use them.
"""

import argparse
import contextlib
import os
import sys

from .config import OPTIONS_BY_KEY, TRAIN_OPTIONS, ConfigError
from .errors import DataError, DeltapropError, InvalidArgumentError

__all__ = ["main", "build_parser"]

PROG = "deltaprop"

TRAIN_EXAMPLES = """\
examples:
  deltaprop train
      digits (scikit-learn), 64-512-256-10 relu with dropout 0.2, adam with a cosine schedule,
      30 epochs of 32;
      writes model.safetensors and curves.png and prints the test accuracy
  deltaprop train --data fashion-mnist --hidden 512,256 --dropout 0.2 --batch-size 128 --epochs 30
  deltaprop train --data flowers.csv --target species --out flowers.safetensors --plot none
  deltaprop train --data images.idx.gz --labels labels.idx.gz --checkpoint-dir ckpt
  deltaprop train --data X.npy --labels y.npy --checkpoint-dir ckpt --resume
  deltaprop train --config run.toml --epochs 50      (flags override the file)

A run.toml holds the same options, named as the flags (dashes or underscores):
  data = "fashion-mnist"
  hidden = [512, 256]
  dropout = 0.2
  batch_size = 128
"""

EVALUATE_EXAMPLES = """\
examples:
  deltaprop evaluate model.safetensors
      the test split held out when the model was trained (same data, split and seed)
  deltaprop evaluate model.safetensors --data test.csv --target species
  deltaprop evaluate model.safetensors --data t10k-images.idx.gz --labels t10k-labels.idx.gz --json
"""

PREDICT_EXAMPLES = """\
examples:
  deltaprop predict model.safetensors --data new.csv
      one predicted label (or value) per row, as CSV on standard output
  deltaprop predict model.safetensors --data new.csv --proba --out probabilities.csv
  deltaprop predict model.safetensors --data images.npy --out labels.csv
  cat new.csv | deltaprop predict model.safetensors --data -

The input may include the target column or not: a file with one column more than
the model's features has its target column (--target, default the last) dropped.
"""

INFO_EXAMPLES = """\
examples:
  deltaprop info model.safetensors
  deltaprop info model.safetensors --toml > run.toml && deltaprop train --config run.toml
"""

GRADCHECK_EXAMPLES = """\
examples:
  deltaprop gradcheck
  deltaprop gradcheck --hidden 8,8,8 --activation tanh,gelu,sigmoid --loss mse --samples 16
  deltaprop gradcheck --loss binary_crossentropy --tol 1e-8

Builds a small float64 network on random data and compares each layer's
backpropagated gradient with fourth-order central differences; the error of a
block is max|g - d| / max(max|g|, max|d|). Exit status 1 if any exceeds --tol.
"""


class UsageError(Exception):
    """A command-line mistake: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors turned into one-line usage errors (no usage dump)."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=34, width=100)


# ---------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------


def build_parser():
    """The ``deltaprop`` argument parser with its five commands."""
    from . import __version__

    parser = _Parser(
        prog=PROG,
        formatter_class=_Formatter,
        description="Train, evaluate and use feedforward neural networks (backpropagation, NumPy).",
        epilog="examples:\n  deltaprop train\n  deltaprop train --data fashion-mnist --hidden 512,256 --epochs 30\n"
               "  deltaprop evaluate model.safetensors\n\nRun 'deltaprop COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"deltaprop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    train = sub.add_parser("train", help="train a network and save it", formatter_class=_Formatter,
                           description="Train a network on a data set, report its test score, save it and "
                                       "draw its training curves.", epilog=TRAIN_EXAMPLES)
    train.add_argument("-c", "--config", metavar="FILE", help="read options from a TOML file; flags override it")
    groups = {}
    titles = {"data": "data", "network": "network", "optimizer": "optimizer", "schedule": "learning-rate schedule "
              "(sizes in epochs)", "training": "training", "output": "output and checkpoints"}
    for opt in TRAIN_OPTIONS:
        group = groups.get(opt.group)
        if group is None:
            group = groups[opt.group] = train.add_argument_group(titles[opt.group])
        names = ([opt.short] if opt.short else []) + [opt.flag_name]
        default = opt.default
        shown = ",".join(str(v) for v in default) if isinstance(default, list) else default
        help_text = opt.help + (f" (default: {shown})" if shown is not None and not opt.flag else "")
        if opt.flag:
            group.add_argument(*names, dest=opt.key, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=help_text)
        else:
            group.add_argument(*names, dest=opt.key, metavar=opt.metavar, default=argparse.SUPPRESS,
                               help=help_text)
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="loss and metrics of a saved model on data",
                              formatter_class=_Formatter, epilog=EVALUATE_EXAMPLES,
                              description="Print a model's loss and metrics on data; for classification also "
                                          "the confusion matrix and per-class precision and recall.")
    evaluate.add_argument("model", metavar="MODEL", help="a model file written by 'deltaprop train'")
    _add_data_args(evaluate, "default: the test split held out in training")
    evaluate.add_argument("--json", action="store_true", help="print the results as one JSON object")
    evaluate.set_defaults(func=cmd_evaluate)

    predict = sub.add_parser("predict", help="predictions of a saved model, as CSV", formatter_class=_Formatter,
                             epilog=PREDICT_EXAMPLES,
                             description="Write a model's predictions as CSV: class labels (or probabilities "
                                         "with --proba) or regression values.")
    predict.add_argument("model", metavar="MODEL", help="a model file written by 'deltaprop train'")
    predict.add_argument("--data", metavar="NAME|PATH", required=True,
                         help="the inputs: a built-in data set or a CSV, NPY, NPZ or IDX file; - reads CSV from "
                              "standard input")
    predict.add_argument("--target", metavar="COLUMN",
                         help="the target column to drop if the file has one (name or index; default: the "
                              "last column, when there is one column too many)")
    predict.add_argument("--proba", action="store_true",
                         help="write class probabilities, one column per class, instead of labels")
    predict.add_argument("-o", "--out", metavar="PATH", help="write the CSV here (default: standard output)")
    predict.set_defaults(func=cmd_predict)

    gradcheck = sub.add_parser("gradcheck", help="check backpropagation against finite differences",
                               formatter_class=_Formatter, epilog=GRADCHECK_EXAMPLES,
                               description="Check a small float64 network's backpropagated gradients "
                                           "against finite differences, layer by layer.")
    gradcheck.add_argument("--hidden", default="5,4", metavar="SIZES", help="hidden layer sizes (default: 5,4)")
    gradcheck.add_argument("--activation", default="tanh", metavar="NAME[,NAME...]",
                           help="hidden activation, one for all or one per layer (default: tanh)")
    gradcheck.add_argument("--loss", default="categorical_crossentropy", metavar="NAME",
                           help="loss; the output activation is its canonical one (softmax, sigmoid) or "
                                "identity (default: categorical_crossentropy)")
    gradcheck.add_argument("--output-activation", metavar="NAME", help="override the output activation")
    gradcheck.add_argument("--samples", default="8", metavar="N", help="random samples (default: 8)")
    gradcheck.add_argument("--features", default="4", metavar="N", help="input features (default: 4)")
    gradcheck.add_argument("--outputs", metavar="N",
                           help="outputs (default: 3, or 1 for binary_crossentropy)")
    gradcheck.add_argument("--tol", default="1e-6", metavar="TOL",
                           help="largest acceptable error of any block (default: 1e-6)")
    gradcheck.add_argument("--seed", default="0", metavar="N", help="seed of the weights and data (default: 0)")
    gradcheck.set_defaults(func=cmd_gradcheck)

    info = sub.add_parser("info", help="describe a saved model", formatter_class=_Formatter, epilog=INFO_EXAMPLES,
                          description="Print a model's architecture, parameter count, classes, preprocessing, "
                                      "training configuration and format versions.")
    info.add_argument("model", metavar="MODEL", help="a model file written by 'deltaprop train' or deltaprop.save")
    info.add_argument("--json", action="store_true", help="print everything as one JSON object")
    info.add_argument("--toml", action="store_true",
                      help="print only the training configuration, as TOML that --config reads")
    info.set_defaults(func=cmd_info)
    return parser


def _add_data_args(parser, default_note):
    parser.add_argument("--data", metavar="NAME|PATH",
                        help=f"a built-in data set or a CSV, NPY, NPZ or IDX file ({default_note})")
    parser.add_argument("--labels", metavar="PATH", help="the targets in a separate NPY or IDX file")
    parser.add_argument("--target", metavar="COLUMN", help="the target column of a CSV or NPY file "
                                                            "(default: as in training, else the last)")


# ---------------------------------------------------------------------------
# Entry point and errors
# ---------------------------------------------------------------------------


def _one_line(text):
    return " ".join(str(text).split())


def _error(message):
    print(f"{PROG}: error: {_one_line(message)}", file=sys.stderr, flush=True)


def _os_message(exc):
    if getattr(exc, "filename", None) and getattr(exc, "strerror", None):
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__


def main(argv=None):
    """Run the ``deltaprop`` command; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; 1 for an error in the data, the files or the run (or a
        failed gradient check); 2 for a usage error; 130 after Ctrl-C.
    """
    status = _run(argv)
    if status and _COMM is not None and _COMM.size > 1:
        _COMM.abort(status)  # the other ranks would otherwise wait for this one
    return status


def _run(argv):
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return args.func(args)
    except UsageError as exc:
        _error(exc)
        return 2
    except ConfigError as exc:
        _error(exc)
        return 2
    except KeyboardInterrupt as exc:
        message = str(exc) or "interrupted"
        _error(message)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``deltaprop predict ... | head``): stop quietly.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1
    except DeltapropError as exc:
        _error(exc)
        return 1
    except OSError as exc:
        _error(_os_message(exc))
        return 1
    except MemoryError:
        _error("out of memory")
        return 1


# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------


class _Say:
    """Messages for a person, on standard error; silent with --quiet."""

    def __init__(self, quiet=False):
        self.quiet = quiet

    def __call__(self, message=""):
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _thread_limit(n):
    """Limit BLAS (and OpenMP) threads to ``n`` for the duration of the block.

    threadpoolctl changes the limit of libraries already loaded, which is
    what works here: NumPy (and its BLAS) is loaded with deltaprop's package,
    before any option is read, so OPENBLAS_NUM_THREADS and OMP_NUM_THREADS
    set now reach only libraries loaded later. They are set anyway, and a
    warning says so when threadpoolctl is missing.
    """
    if n is None:
        yield
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        if "numpy" in sys.modules:
            print(f"{PROG}: warning: --threads {n} needs threadpoolctl (pip install threadpoolctl) once NumPy "
                  f"is loaded; BLAS keeps its own thread count. Alternatively start with "
                  f"OPENBLAS_NUM_THREADS={n} OMP_NUM_THREADS={n} in the environment", file=sys.stderr)
        yield
        return
    with threadpool_limits(limits=n):
        yield


def _is_builtin(spec):
    from .data import BUILTIN_DATASETS

    return spec.strip().lower().replace("_", "-") in BUILTIN_DATASETS


def _load_dataset(spec, labels=None, target=None):
    """A built-in data set by name, or a file (CSV, NPY, NPZ, IDX) with optional labels file."""
    from . import data as D

    if not os.path.exists(spec) and _is_builtin(spec):
        if labels is not None or target is not None:
            raise ConfigError(f"--labels and --target apply to data files, not to the built-in data set {spec!r}")
        return D.load_builtin(spec)
    if not os.path.exists(spec):
        raise DataError(
            f"{spec}: no such file, and not a built-in data set (the built-in ones are "
            f"{', '.join(D.BUILTIN_DATASETS)})"
        )
    if os.path.isdir(spec):
        raise DataError(f"{spec}: is a folder; give a CSV, NPY, NPZ or IDX file")
    ds = D.load_xy(spec, target=target, targets=labels)
    if ds.name is None:
        ds.name = os.path.basename(spec)
    return ds


def _label_values(classes):
    """Class labels as plain JSON values: str, int (whole numbers and booleans) or float."""
    import numpy as np

    classes = np.asarray(classes)
    if classes.dtype.kind in "US":
        return [str(c) for c in classes]
    if classes.dtype.kind in "biu":
        return [int(c) for c in classes]
    return [int(c) if float(c).is_integer() else float(c) for c in classes]


def _labels_from(values):
    """A fitted ``Labels`` whose classes are ``values`` (from a model file)."""
    import numpy as np

    from .data import Labels

    labels = Labels()
    labels.classes_ = np.asarray(values)
    return labels


def _head(task, n_classes, n_targets, output_activation, loss):
    """Output activation, loss, output count and target form for a task.

    Inferred when not given: softmax with categorical cross-entropy for more
    than two classes, sigmoid with binary cross-entropy (one output) for two,
    identity with mean squared error for regression. Given only a loss, the
    output is its canonical activation (identity if it has none); given only
    an output activation, the loss is its canonical one (mean squared error
    for others).

    Returns
    -------
    output_activation, loss : str
    n_out : int
    form : {"index", "onehot", "real"}
        How the targets reach the loss: class indices (or 0/1 for one
        output), one-hot rows (a regression loss on classes), real values.
    """
    from . import activations, losses

    if loss is not None:
        loss = losses.canonical_name(loss)
        losses.get(loss)  # an unknown name fails here, with the list of names
    if output_activation is not None:
        output_activation = activations.get(output_activation).name
    canonical_of = {"categorical_crossentropy": "softmax", "binary_crossentropy": "sigmoid"}
    loss_of = {"softmax": "categorical_crossentropy", "sigmoid": "binary_crossentropy"}
    if task == "regression":
        if output_activation is None:
            output_activation = canonical_of.get(loss, "identity")
        if loss is None:
            loss = loss_of.get(output_activation, "mean_squared_error")
        if losses.get(loss).task == "classification":
            raise ConfigError(f"the loss {loss} is for classification, but the task is regression")
        return output_activation, loss, n_targets, "real"
    if output_activation is None and loss is None:
        output_activation, loss = ("sigmoid", "binary_crossentropy") if n_classes == 2 else \
            ("softmax", "categorical_crossentropy")
    elif output_activation is None:
        output_activation = canonical_of.get(loss, "identity")
    elif loss is None:
        loss = loss_of.get(output_activation, "mean_squared_error")
    if n_classes == 2 and output_activation != "softmax" and loss != "categorical_crossentropy":
        n_out = 1
    else:
        n_out = n_classes
    if output_activation == "softmax" and n_out == 1:
        raise ConfigError("a softmax output needs at least two outputs")
    form = "index" if losses.get(loss).task == "classification" else "onehot"
    return output_activation, loss, n_out, form


def _class_targets(form, n_out, codes, dtype):
    """Class indices ``codes`` as the loss takes them: indices (0/1 for one output) or one-hot rows."""
    import numpy as np

    if form == "index":
        return codes if n_out > 1 else codes.astype(dtype)
    if n_out == 1:
        return codes.astype(dtype).reshape(-1, 1)
    return np.eye(n_out, dtype=dtype)[codes]


def _predicted_classes(P, loss_name):
    """Class index of each output row: argmax, or a threshold for one output (0 for hinge, else 0.5)."""
    if P.shape[1] == 1:
        threshold = 0.0 if loss_name == "hinge" else 0.5
        return (P[:, 0] >= threshold).astype("int64")
    return P.argmax(axis=1)


def _split_rows(n, codes, cfg, has_test_set, max_validation=None):
    """Row indices (train, validation, test) of a run; deterministic in the seed.

    The test split is drawn first (stratified by class for classification),
    then the validation split from what is left, from a second stream of the
    same seed. ``has_test_set`` (Fashion-MNIST's official one) means no test
    split. ``max_validation`` caps the validation rows.
    """
    import numpy as np

    from .data import split_indices

    seed = cfg["seed"]
    rows = np.arange(n)
    test = None
    if not has_test_set and cfg["test_split"] > 0:
        try:
            rows, test = split_indices(n, cfg["test_split"], stratify=codes, seed=seed)
        except InvalidArgumentError as exc:
            raise DataError(f"test_split={cfg['test_split']}: {exc}") from None
    validation = None
    fraction = cfg["validation_split"]
    if fraction > 0:
        if max_validation is not None and fraction * len(rows) > max_validation:
            fraction = max(max_validation, 1) / len(rows)
        stratify = None if codes is None else codes[rows]
        try:
            keep, val = split_indices(len(rows), fraction, stratify=stratify,
                                      seed=np.random.default_rng([seed, 1]))
        except InvalidArgumentError as exc:
            raise DataError(f"validation_split={cfg['validation_split']}: {exc}") from None
        rows, validation = rows[keep], rows[val]
    return rows, validation, test


def _gather(X, rows, dtype, scratch=None, name=None):
    """Rows ``rows`` of ``X`` as a float array of ``dtype``: in memory, or a memory-mapped scratch file.

    The scratch file is filled a block of rows at a time (sorted indices, so
    reads are nearly sequential), so memory stays bounded whatever the size.
    """
    import numpy as np

    if scratch is None:
        return np.asarray(X[rows], dtype=dtype)
    out = np.memmap(os.path.join(scratch, f"{name}.bin"), dtype=dtype, mode="w+", shape=(len(rows), X.shape[1]))
    step = max(1, (32 << 20) // max(1, X.shape[1] * max(X.dtype.itemsize, out.dtype.itemsize)))
    for start in range(0, len(rows), step):
        out[start:start + step] = X[rows[start:start + step]]
    return out


def _predict(net, scaler, X, rows=None, chunk=16384):
    """Network outputs for raw features ``X`` (or its rows ``rows``), scaled a chunk at a time.

    Only a chunk of inputs is in memory at once, so a memory-mapped ``X`` of
    any size works.
    """
    import numpy as np

    n = X.shape[0] if rows is None else len(rows)
    out = np.empty((n, net.n_out), dtype=net.dtype)
    for start in range(0, n, chunk):
        block = X[start:start + chunk] if rows is None else X[rows[start:start + chunk]]
        block = scaler.transform(block, dtype=net.dtype) if scaler is not None else np.asarray(block, net.dtype)
        out[start:start + block.shape[0]] = net.predict(block)
    return out


def _check_features(X, n_in, source):
    if X.ndim != 2 or X.shape[1] != n_in:
        got = X.shape[1] if X.ndim == 2 else f"shape {X.shape}"
        raise DataError(f"{source}: the samples have {got} features; the model expects {n_in}")


def _loss_targets(task, form, n_out, dtype, y, codes, target_scaler):
    """Targets as the network's loss takes them: class indices or one-hot rows, or (scaled) values."""
    import numpy as np

    if task == "classification":
        return _class_targets(form, n_out, codes, dtype)
    values = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    return values if target_scaler is None else target_scaler.transform(values, dtype=dtype)


def _test_scores(net, task, form, outputs, y, codes, target_scaler):
    """The loss (in the network's units) and the scores (in the targets' units) of ``outputs`` for ``y``.

    Returns ``(scores, predicted class indices or None)``; see :func:`_scores`.
    """
    import numpy as np

    T = _loss_targets(task, form, net.n_out, net.dtype, y, codes, target_scaler)
    loss_value = float(np.mean(net.loss.value(outputs, net.prepare_targets(T))))
    if target_scaler is not None:
        outputs = outputs.astype(np.float64) * target_scaler.scale_ + target_scaler.offset_
    return _scores(task, outputs, y, codes, loss_value, net.loss.name)


def _scores(task, P, y_true, codes, loss_value, loss_name):
    """Test-set numbers: the loss and accuracy, or R², RMSE and MAE (original units)."""
    import numpy as np

    out = {"loss": loss_value, "samples": int(P.shape[0])}
    if task == "classification":
        pred = _predicted_classes(P, loss_name)
        out["accuracy"] = float(np.mean(pred == codes))
        return out, pred
    y = np.asarray(y_true, dtype=np.float64).reshape(P.shape[0], -1)
    residual = y - P.astype(np.float64)
    ss_res = (residual**2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), np.where(ss_res == 0, 1.0, 0.0))
    out["r2"] = float(np.mean(r2))
    out["rmse"] = float(np.sqrt(np.mean(residual**2)))
    out["mae"] = float(np.mean(np.abs(residual)))
    return out, None


def _format_scores(scores):
    parts = [f"loss {scores['loss']:.4f}"]
    for key in ("accuracy", "r2", "rmse", "mae"):
        if key in scores:
            parts.append(f"{'R²' if key == 'r2' else key} {scores[key]:.4f}")
    return ", ".join(parts)


def _parse_arg(value, name, parse):
    try:
        return parse(value, name)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


# ---------------------------------------------------------------------------
# train
# ---------------------------------------------------------------------------


def _train_config(args):
    """The effective configuration: defaults < --config file < flags."""
    from . import config as C

    given = {key: value for key, value in vars(args).items() if key in OPTIONS_BY_KEY}
    cli_values = C.parse_values(given, lambda key: OPTIONS_BY_KEY[key].flag_name)
    file_values = C.load_toml(args.config) if args.config else {}
    cfg = C.effective_config(file_values, cli_values)
    explicit = set(file_values) | set(cli_values)
    return cfg, explicit


def _check_names(cfg):
    """Fail early (usage error) on unknown activation or loss names and bad option combinations."""
    from . import activations, losses

    try:
        for name in cfg["activation"]:
            activations.get(name)
        if cfg["output_activation"] is not None:
            activations.get(cfg["output_activation"])
        if cfg["loss"] is not None:
            losses.get(losses.canonical_name(cfg["loss"]))
    except DeltapropError as exc:
        raise ConfigError(str(exc)) from None
    hidden = cfg["hidden"]
    for key in ("activation", "dropout"):
        values = cfg[key]
        if len(values) != 1 and len(values) != len(hidden):
            raise ConfigError(
                f"{key} has {len(values)} values for {len(hidden)} hidden layer(s); give one for all or one per layer"
            )
    if cfg["resume"] and cfg["checkpoint_dir"] is None:
        raise ConfigError("--resume continues from the newest checkpoint in --checkpoint-dir; give --checkpoint-dir")


_OPTIMIZER_ONLY = {
    "momentum": ("sgd",),
    "nesterov": ("sgd",),
    "beta1": ("adam", "adamw"),
    "beta2": ("adam", "adamw"),
    "eps": ("adam", "adamw", "rmsprop", "adagrad"),
}


def _build_optimizer(cfg):
    """The optimizer the options describe; options that do not apply to it are usage errors."""
    from . import optimizers

    name = cfg["optimizer"]
    params = {}
    if cfg["lr"] is not None:
        params["learning_rate"] = cfg["lr"]
    for key, names in _OPTIMIZER_ONLY.items():
        value = cfg[key]
        if value is None or value is False:
            continue
        if name not in names:
            raise ConfigError(f"{key} applies to the {' and '.join(names)} optimizer(s), not to {name}")
        params[key] = value
    l2, wd = cfg["l2"], cfg["weight_decay"]
    if l2 is not None and wd is not None and l2 != wd:
        raise ConfigError(f"l2={l2} and weight_decay={wd} set the same thing; give one of them")
    decay = wd if wd is not None else l2
    if decay is not None:
        params["weight_decay"] = decay
    if cfg["clipnorm"] is not None:
        params["clipnorm"] = cfg["clipnorm"]
    if params.get("nesterov") and not params.get("momentum"):
        raise ConfigError("nesterov needs a momentum > 0 (--momentum)")
    try:
        return optimizers.get({"name": name, **params})
    except DeltapropError as exc:
        raise ConfigError(str(exc)) from None


_SCHEDULE_ONLY = {"step_size": ("step",), "gamma": ("step", "exponential"), "min_lr": ("cosine",)}


def _build_schedule(cfg):
    """The learning-rate schedule (sizes in epochs), and its resolved parameters."""
    from . import schedules

    name, epochs = cfg["schedule"], cfg["epochs"]
    for key, names in _SCHEDULE_ONLY.items():
        if cfg[key] is not None and name not in names:
            raise ConfigError(f"{key} applies to the {' and '.join(names)} schedule(s), not to {name}")
    warmup = cfg["warmup_epochs"]
    if name == "warmup":
        warmup = 1 if warmup is None else warmup
        if warmup < 1:
            raise ConfigError(f"the warmup schedule needs warmup_epochs >= 1, got {warmup}")
    warmup = warmup or 0
    if warmup >= epochs and name != "warmup":
        raise ConfigError(f"warmup_epochs={warmup} leaves no epoch of the {name} schedule in {epochs} epochs")
    resolved = {"warmup_epochs": warmup if warmup else None}
    if name == "step":
        resolved.update(step_size=cfg["step_size"] or 10, gamma=cfg["gamma"] or 0.1)
        after = schedules.StepDecay(resolved["step_size"], resolved["gamma"], per_epoch=True)
    elif name == "exponential":
        resolved.update(gamma=cfg["gamma"] or 0.9)
        after = schedules.ExponentialDecay(resolved["gamma"], decay_steps=1, per_epoch=True)
    elif name == "cosine":
        resolved.update(min_lr=cfg["min_lr"] or 0.0)
        after = schedules.CosineDecay(epochs - warmup if warmup else None, resolved["min_lr"], per_epoch=True)
    else:
        after = schedules.Constant(per_epoch=True)
    if warmup:
        return schedules.LinearWarmup(warmup, after=after, per_epoch=True), resolved
    return after, resolved


def _build_network(cfg, n_in, n_out, output_activation, loss):
    import deltaprop as dp

    hidden = cfg["hidden"]
    acts = cfg["activation"] * len(hidden) if len(cfg["activation"]) == 1 else cfg["activation"]
    drops = cfg["dropout"] * len(hidden) if len(cfg["dropout"]) == 1 else cfg["dropout"]
    sizes = [n_in] + hidden
    layers = [dp.Dense(a, b, activation=act, dropout=p) for a, b, act, p in zip(sizes, sizes[1:], acts, drops)]
    layers.append(dp.Dense(sizes[-1], n_out, activation=output_activation))
    return dp.Network(layers, loss=loss, dtype=cfg["dtype"], seed=cfg["seed"])


def _describe_network(net):
    """``784-512-256-10 relu dropout 0.2, softmax + categorical_crossentropy``."""
    sizes = "-".join(str(s) for s in [net.n_in] + [layer.n_out for layer in net.layers])
    hidden = net.layers[:-1]
    acts = "/".join(dict.fromkeys(layer.activation.name for layer in hidden)) or "no hidden layer"
    drops = "/".join(dict.fromkeys(f"{layer.dropout:g}" for layer in hidden))
    if drops and drops != "0":
        acts += f" dropout {drops}"
    return f"{sizes} {acts}, {net.layers[-1].activation.name} + {net.loss.name}"


def _check_writable(cfg):
    """Fail before training, not after, when an output's folder is missing."""
    from .errors import SaveError

    for key in ("out", "plot", "log"):
        path = cfg[key]
        if path is None:
            continue
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise SaveError(f"cannot write {path}: the folder {folder} does not exist")
        if os.path.isdir(path):
            raise SaveError(f"cannot write {path}: it is a folder")


def _check_checkpoint_dir(cfg):
    """A fresh run refuses a folder that holds another run's checkpoints.

    Checkpoints are pruned and resumed by step count, so an older run's
    later checkpoints would outlive this run's and be the ones --resume
    picks up.
    """
    folder = cfg["checkpoint_dir"]
    if folder is None or cfg["resume"] or not os.path.isdir(folder):
        return
    from .checkpoint import latest_checkpoint

    found = latest_checkpoint(folder)
    if found is not None:
        raise ConfigError(
            f"{folder} already holds checkpoints (the newest is {os.path.basename(found)}); continue that run "
            f"with --resume, or give an empty or new --checkpoint-dir"
        )


def cmd_train(args):
    """``deltaprop train``: load and split the data, fit the scaler and the network, test, save, plot."""
    cfg, explicit = _train_config(args)
    _check_names(cfg)
    _check_checkpoint_dir(cfg)
    optimizer = _build_optimizer(cfg)
    schedule, schedule_params = _build_schedule(cfg)
    _check_writable(cfg)
    comm = _mpi_comm()
    say = _Say(cfg["quiet"] or (comm is not None and not comm.is_root))
    with _thread_limit(cfg["threads"]):
        return _train(cfg, explicit, optimizer, schedule, schedule_params, say, comm)


_COMM = None  # the MPI communicator of a data-parallel run, for the error path


def _mpi_comm():
    """An MPI communicator when started by ``mpiexec -n N`` (N > 1), else None."""
    global _COMM
    from .distributed import launched_by_mpi

    if not launched_by_mpi():
        return None
    from .distributed import MPIComm

    _COMM = MPIComm()
    return _COMM


def _train(cfg, explicit, optimizer, schedule, schedule_params, say, comm=None):
    """The run itself, from a checked configuration; returns the exit status (0)."""
    import shutil
    import tempfile
    import time

    import numpy as np

    import deltaprop as dp

    from . import training
    from .data import Labels, Scaler, infer_task

    t_start = time.perf_counter()
    ds = _load_dataset(cfg["data"], cfg["labels"], cfg["target"])
    task = cfg["task"] or ds.task or infer_task(ds.y)
    X, y = ds.X, np.asarray(ds.y)
    n, n_in = X.shape
    codes = labels = None
    if task == "classification":
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"classification needs one target column, got targets of shape {y.shape}")
        labels = Labels()
        codes = labels.fit_transform(y)
        n_classes = len(labels.classes_)
        if n_classes < 2:
            raise DataError(f"classification needs at least two classes; the targets hold only {labels.classes_[0]!r}")
        n_targets = 1
    else:
        if y.dtype.kind not in "biuf":
            raise DataError(f"regression needs numeric targets, got {y.dtype} values such as {y.flat[0]!r}")
        n_classes = None
        n_targets = 1 if y.ndim == 1 else y.shape[1]
    try:
        output_activation, loss, n_out, form = _head(task, n_classes, n_targets, cfg["output_activation"], cfg["loss"])
    except DeltapropError as exc:
        raise ConfigError(str(exc)) from None

    # Large memory-mapped inputs are copied, scaled, into scratch files that fit streams batch by batch.
    dtype = np.dtype(cfg["dtype"])
    streamed = isinstance(X, np.memmap) and X.nbytes > training.STREAM_BYTES
    scratch = None
    if streamed:
        folder = cfg["scratch_dir"] or os.path.dirname(os.path.abspath(cfg["out"]))
        try:
            scratch = tempfile.mkdtemp(prefix=".deltaprop-scratch-", dir=folder)
        except OSError as exc:
            raise DataError(f"cannot create a scratch folder in {folder}: {exc.strerror or exc} "
                            f"(choose one with --scratch-dir)") from None
    try:
        max_val = training.STREAM_BYTES // (n_in * dtype.itemsize) if streamed else None
        train_rows, val_rows, test_rows = _split_rows(n, codes, cfg, ds.X_test is not None, max_val)
        X_train = _gather(X, train_rows, dtype, scratch, "train")
        scaler = Scaler(cfg["scale"]).fit(X_train)
        scaler.transform(X_train, dtype=dtype, out=X_train)
        X_val = None if val_rows is None else scaler.transform(np.asarray(X[val_rows]), dtype=dtype)
        if ds.X_test is not None:
            y_test = np.asarray(ds.y_test)
        elif test_rows is not None:
            y_test = y[test_rows]
        else:
            y_test = None

        target_scaler = None
        if task == "regression" and cfg["scale_target"] == "standard":
            target_scaler = Scaler("standard").fit(np.asarray(y[train_rows], dtype=np.float64).reshape(-1, n_targets))

        def targets(rows):
            return _loss_targets(task, form, n_out, dtype, y[rows], None if codes is None else codes[rows],
                                 target_scaler)

        t_train = targets(train_rows)
        validation = None if val_rows is None else (X_val, targets(val_rows))

        net = _build_network(cfg, n_in, n_out, output_activation, loss)
        metric = "accuracy" if task == "classification" else "r2"
        n_test = 0 if y_test is None else len(y_test)
        what = f"{n_classes} classes" if task == "classification" else \
            f"regression of {n_targets} target{'s' if n_targets > 1 else ''}"
        say(f"data: {ds.name} ({n + (len(ds.y_test) if ds.X_test is not None else 0)} samples, {n_in} features, "
            f"{what}): {len(train_rows)} training, {0 if val_rows is None else len(val_rows)} validation, "
            f"{n_test} test" + (" (the official test set)" if ds.X_test is not None else ""))
        opt_cfg = optimizer.get_config()
        say(f"network: {_describe_network(net)}, {net.n_params} parameters, {net.dtype.name}; "
            f"{opt_cfg['name']} lr={opt_cfg['learning_rate']:g}, {cfg['schedule']} schedule, "
            f"{cfg['epochs']} epochs of {cfg['batch_size']}" + (", streamed from scratch files" if streamed else ""))

        if cfg["log"] is not None and not cfg["resume"] and (comm is None or comm.is_root):
            with open(cfg["log"], "w", encoding="utf-8"):
                pass  # a fresh run starts a fresh log; a resumed one appends
        patience = cfg["early_stopping"]
        early = None
        if patience:
            early = {"monitor": "val_loss" if validation is not None else "loss", "patience": patience}
        t_fit = time.perf_counter()
        history = net.fit(
            X_train, t_train, epochs=cfg["epochs"], batch_size=cfg["batch_size"], optimizer=optimizer,
            schedule=schedule, validation_data=validation, metrics=[metric], early_stopping=early,
            checkpoint_dir=cfg["checkpoint_dir"], checkpoint_every=cfg["checkpoint_every"],
            keep_checkpoints=cfg["keep_checkpoints"], resume_from=cfg["checkpoint_dir"] if cfg["resume"] else None,
            verbose=0 if cfg["quiet"] else 1, log_path=cfg["log"], comm=comm,
        )
        fit_seconds = time.perf_counter() - t_fit

        # ------------------------------------------------------------ test
        scores = None
        if y_test is not None:
            if ds.X_test is not None:
                outputs = _predict(net, scaler, ds.X_test)
            else:
                outputs = _predict(net, scaler, X, rows=test_rows)
            test_codes = labels.transform(y_test) if task == "classification" else None
            scores, _ = _test_scores(net, task, form, outputs, y_test, test_codes, target_scaler)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

    if comm is not None and not comm.is_root:
        return 0  # rank 0 alone tests, saves, plots and prints
    # ----------------------------------------------------------- save
    stored = {key: value for key, value in cfg.items() if key not in ("resume", "quiet")}
    stored.update(task=task, output_activation=output_activation, loss=loss, lr=opt_cfg["learning_rate"],
                  **schedule_params)
    if task != "regression":
        stored["scale_target"] = None  # not used
    for key in ("momentum", "nesterov", "beta1", "beta2", "eps", "weight_decay", "clipnorm"):
        if key in opt_cfg:
            stored[key] = opt_cfg[key]
    if stored.get("weight_decay") == 0.0 and cfg["weight_decay"] is None and cfg["l2"] is None:
        stored["weight_decay"] = None
    extra = {"task": task, "history": history.to_list()}
    if scores is not None:
        extra["test"] = scores
    if ds.target_name is not None:
        extra["target_name"] = ds.target_name
    if ds.feature_names is not None:
        extra["feature_names"] = list(ds.feature_names)
    classes = None
    if task == "classification":
        classes = _label_values(labels.classes_)
        names = ds.class_names
        if names is not None and [str(c) for c in names] != [str(c) for c in classes] and len(names) == n_classes:
            extra["class_names"] = [str(c) for c in names]
    if target_scaler is not None:
        tconfig, tarrays = target_scaler.state()
        extra["target_scaling"] = {**tconfig, **{k: v.tolist() for k, v in tarrays.items()}}
    dp.save(net, cfg["out"], preprocessing=scaler.state(), classes=classes, config=stored, extra=extra)

    # ----------------------------------------------------------- report
    done = len(history)
    say(f"trained {done} epoch{'s' if done != 1 else ''} in {fit_seconds:.1f} s")
    if scores is not None:
        where = "official test set" if ds.X_test is not None else "test split"
        print(f"test ({where}, {scores['samples']} samples): {_format_scores(scores)}", flush=True)
    written = [cfg["out"]]
    if cfg["plot"] is not None:
        from .plotting import MissingMatplotlib, plot_history

        score_text = ""
        if scores is not None:
            score_text = f" · test {'accuracy' if metric == 'accuracy' else 'R²'} {scores[metric]:.4f}"
        title = (f"deltaprop: {ds.name}, {_describe_network(net)}, {opt_cfg['name']} lr={opt_cfg['learning_rate']:g} "
                 f"{cfg['schedule']}, batch {cfg['batch_size']}{score_text}")
        loss_label = net.loss.name + (", standardised targets" if target_scaler is not None else "")
        try:
            plot_history(history.to_list(), cfg["plot"], title, metric=metric, loss_name=loss_label)
            written.append(cfg["plot"])
        except MissingMatplotlib as exc:
            if "plot" in explicit:
                raise
            print(f"{PROG}: note: no plot: {exc}", file=sys.stderr)
    if not cfg["quiet"]:
        print(f"wrote {', '.join(written)} in {time.perf_counter() - t_start:.1f} s", flush=True)
    return 0


# ---------------------------------------------------------------------------
# Loading a model for evaluate, predict and info
# ---------------------------------------------------------------------------


class _Model:
    """A loaded model file with what the command line stored beside the network."""

    def __init__(self, path):
        import json

        import deltaprop as dp

        from .data import Scaler

        if not os.path.exists(path):
            raise DataError(f"{path}: no such model file")
        self.path = path
        self.net = net = dp.load(path)
        self.config = net.run_config or {}
        self.extra = {}
        for key in ("task", "class_names", "target_scaling", "target_name", "feature_names", "history", "test"):
            if key in net.metadata:
                try:
                    self.extra[key] = json.loads(net.metadata[key])
                except ValueError:
                    raise DataError(f"{path}: metadata {key!r} is not valid JSON") from None
        self.classes = net.classes
        task = self.extra.get("task")
        if task not in ("classification", "regression"):  # a file written by deltaprop.save alone
            classify = self.classes is not None or getattr(net.loss, "task", None) == "classification"
            task = "classification" if classify else "regression"
        self.task = task
        if task == "classification" and self.classes is None:
            self.classes = list(range(2 if net.n_out == 1 else net.n_out))
        self.scaler = None if net.preprocessing is None else Scaler.from_state(*net.preprocessing)
        self.target_scaler = None
        ts = self.extra.get("target_scaling")
        if ts is not None:
            import numpy as np

            try:
                self.target_scaler = Scaler.from_state(
                    {"kind": ts["kind"], "n_features": ts["n_features"]},
                    {"offset": np.asarray(ts["offset"], dtype=np.float64),
                     "scale": np.asarray(ts["scale"], dtype=np.float64)},
                )
            except (KeyError, TypeError, DeltapropError) as exc:
                raise DataError(f"{path}: invalid target_scaling metadata ({exc})") from None
        names = self.extra.get("class_names")
        self.class_names = names if isinstance(names, list) and self.classes and len(names) == len(self.classes) \
            else None

    def display_names(self):
        if self.classes is None:
            return None
        if self.class_names is not None:
            return [f"{c} {n}" if str(c) != str(n) else str(c) for c, n in zip(self.classes, self.class_names)]
        return [str(c) for c in self.classes]

    def form(self):
        """How the targets reach the loss (see ``_head``)."""
        if self.task == "regression":
            return "real"
        return "index" if getattr(self.net.loss, "task", None) == "classification" else "onehot"

    def outputs(self, X):
        """Predictions in the target's units: probabilities/scores, or regression values."""
        import numpy as np

        P = _predict(self.net, self.scaler, X)
        if self.target_scaler is not None:
            P = P.astype(np.float64) * self.target_scaler.scale_ + self.target_scaler.offset_
        return P


# ---------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------


def cmd_evaluate(args):
    """``deltaprop evaluate``: loss and metrics (and for classes, the confusion matrix and per-class table)."""
    import json

    import numpy as np

    from . import report

    model = _Model(args.model)
    net, cfg = model.net, model.config
    target = None if args.target is None else OPTIONS_BY_KEY["target"].parse(args.target, "--target")
    rows = codes = None
    if args.data is None:
        if "data" not in cfg:
            raise ConfigError(f"{args.model} holds no training configuration; give the data with --data")
        if args.labels is not None or target is not None:
            raise ConfigError("--labels and --target go with --data")
        ds = _load_dataset(cfg["data"], cfg.get("labels"), cfg.get("target"))
        if ds.X_test is not None:
            X, y, where = ds.X_test, np.asarray(ds.y_test), f"{ds.name} (official test set)"
        else:
            # The split of training, drawn again: same data, same class codes, same seed.
            y_all = np.asarray(ds.y)
            if model.task == "classification":
                codes = _labels_from(model.classes).transform(y_all.reshape(-1))
            split_cfg = {"seed": cfg.get("seed", 0), "test_split": cfg.get("test_split", 0.25),
                         "validation_split": 0.0}
            if not split_cfg["test_split"]:
                raise ConfigError(f"{args.model} was trained without a test split (test_split = 0); give --data")
            _, _, rows = _split_rows(len(y_all), codes, split_cfg, False)
            X, y, where = ds.X, y_all[rows], f"{ds.name} (test split)"
            codes = None if codes is None else codes[rows]
    else:
        if target is None and cfg.get("data") == args.data and args.labels is None:
            target = cfg.get("target")
        ds = _load_dataset(args.data, args.labels, target)
        X, y, where = ds.X, np.asarray(ds.y), ds.name
    _check_features(X, net.n_in, args.data or cfg.get("data"))

    if model.task == "classification" and codes is None:
        codes = _labels_from(model.classes).transform(np.asarray(y).reshape(-1))
    outputs = _predict(net, model.scaler, X, rows=rows)
    scores, pred = _test_scores(net, model.task, model.form(), outputs, y, codes, model.target_scaler)
    result = {"model": args.model, "data": where, **scores}
    if model.task == "classification":
        k = len(model.classes)
        matrix = report.confusion_matrix(codes, pred, k)
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


# ---------------------------------------------------------------------------
# predict
# ---------------------------------------------------------------------------


def _read_stdin_to_file():
    import tempfile

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
    import csv

    import numpy as np

    from .data import load_builtin, load_features

    model = _Model(args.model)
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

    tmp = None
    try:
        if args.data == "-":
            tmp = _read_stdin_to_file()
            X, _ = load_features(tmp, n_features=net.n_in, target=target)
            source = "standard input"
        elif not os.path.exists(args.data) and _is_builtin(args.data):
            ds = load_builtin(args.data)
            X, source = ds.X, args.data
        else:
            X, _ = load_features(args.data, n_features=net.n_in, target=target)
            source = args.data
    finally:
        if tmp is not None:
            os.unlink(tmp)
    _check_features(X, net.n_in, source)

    out = open(args.out, "w", encoding="utf-8", newline="") if args.out else sys.stdout
    try:
        writer = csv.writer(out, lineterminator="\n")
        chunk = 16384
        header_done = False
        for start in range(0, X.shape[0], chunk):
            P = model.outputs(X[start:start + chunk])
            if model.task == "classification":
                if args.proba:
                    probs = np.concatenate([1 - P, P], axis=1) if P.shape[1] == 1 else P
                    if not header_done:
                        writer.writerow([str(c) for c in model.classes])
                    writer.writerows([[f"{v:.6g}" for v in row] for row in probs.tolist()])
                else:
                    if not header_done:
                        writer.writerow([model.extra.get("target_name") or "prediction"])
                    labels = [model.classes[i] for i in _predicted_classes(P, net.loss.name)]
                    writer.writerows([[c] for c in labels])
            else:
                if not header_done:
                    name = model.extra.get("target_name") or "prediction"
                    writer.writerow([name] if P.shape[1] == 1 else [f"{name}_{j}" for j in range(P.shape[1])])
                digits = 9 if net.dtype.itemsize == 4 else 17
                writer.writerows([[f"{v:.{digits}g}" for v in row] for row in P.tolist()])
            header_done = True
        out.flush()
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


# ---------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------


def cmd_info(args):
    """``deltaprop info``: what a model file holds, as text, JSON or (the configuration) TOML."""
    import json

    from . import __version__
    from . import config as C
    from .io import MODEL_FORMAT, MODEL_FORMAT_VERSION

    model = _Model(args.model)
    net, meta = model.net, model.net.metadata
    cfg = model.config
    if args.toml:
        keys = [opt.key for opt in TRAIN_OPTIONS if opt.key in cfg]
        if not keys:
            raise DataError(f"{args.model} holds no training configuration")
        sys.stdout.write(C.to_toml({k: cfg[k] for k in keys if k in OPTIONS_BY_KEY}))
        return 0
    written_by = json.loads(meta.get("library_version", "null"))
    layers = [{"n_in": layer.n_in, "n_out": layer.n_out, "activation": layer.activation.name,
               "dropout": layer.dropout} for layer in net.layers]
    preprocessing = None
    if model.scaler is not None:
        preprocessing = {"kind": model.scaler.kind, "n_features": model.scaler.n_features_in_}
    info = {
        "model": args.model,
        "format": meta.get("format"),
        "format_version": int(meta.get("format_version", 0)),
        "written_by": written_by,
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
        return 0
    print(f"model: {args.model}")
    print(f"format: {info['format']} version {info['format_version']}, written by deltaprop {written_by} "
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
        print(f"test result when trained: {_format_scores(info['test'])} ({info['test'].get('samples')} samples)")
    if cfg:
        print("training configuration (TOML; 'deltaprop info MODEL --toml > run.toml' saves it for --config):")
        try:
            keys = [opt.key for opt in TRAIN_OPTIONS if opt.key in cfg] + [k for k in cfg if k not in OPTIONS_BY_KEY]
            text = C.to_toml(cfg, keys)
        except ConfigError:
            text = json.dumps(cfg, indent=2) + "\n"
        for line in text.splitlines():
            print(f"  {line}")
    else:
        print("training configuration: none stored")
    return 0


# ---------------------------------------------------------------------------
# gradcheck
# ---------------------------------------------------------------------------


def cmd_gradcheck(args):
    """``deltaprop gradcheck``: per-layer backprop errors of a small random float64 network."""
    import numpy as np

    import deltaprop as dp

    from . import config as C
    from .gradcheck import gradcheck

    hidden = _parse_arg(args.hidden, "--hidden", C.list_of(C.integer(1), "layer sizes such as 5,4",
                                                               allow_empty=True))
    acts = _parse_arg(args.activation, "--activation", C.name_list)
    samples = _parse_arg(args.samples, "--samples", C.integer(1))
    features = _parse_arg(args.features, "--features", C.integer(1))
    tol = _parse_arg(args.tol, "--tol", C.number(0.0, low_open=True))
    seed = _parse_arg(args.seed, "--seed", C.integer(0))
    if len(acts) != 1 and len(acts) != len(hidden):
        raise UsageError(
            f"--activation has {len(acts)} names for {len(hidden)} hidden layers; give one or one per layer"
        )
    try:
        from . import activations, losses

        loss = losses.get(losses.canonical_name(args.loss))
        for name in acts:
            activations.get(name)
        out_act = args.output_activation or {"categorical_crossentropy": "softmax",
                                             "binary_crossentropy": "sigmoid"}.get(loss.name, "identity")
        activations.get(out_act)
    except DeltapropError as exc:
        raise UsageError(str(exc)) from None
    default_out = 1 if loss.name == "binary_crossentropy" else 3
    n_out = default_out if args.outputs is None else _parse_arg(args.outputs, "--outputs", C.integer(1))

    rng = np.random.default_rng(seed)
    acts = acts * len(hidden) if len(acts) == 1 else acts
    sizes = [features] + hidden
    layers = [dp.Dense(a, b, activation=act) for a, b, act in zip(sizes, sizes[1:], acts)]
    layers.append(dp.Dense(sizes[-1], n_out, activation=out_act))
    net = dp.Network(layers, loss=loss, dtype="float64", seed=seed)
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
    print(f"network {'-'.join(str(s) for s in sizes + [n_out])} ({', '.join(acts) or 'no hidden layer'}; "
          f"{out_act} + {loss.name}), float64, {samples} random samples, seed {seed}")
    print(f"{'layer':<7}{'shape':>12}{'error W':>12}{'error b':>12}")
    for row, layer in zip(rows, net.layers):
        flag = "" if max(row["W"], row["b"]) <= tol else "  FAIL"
        print(f"{row['layer']:<7}{f'{layer.n_out}x{layer.n_in}':>12}{row['W']:>12.2e}{row['b']:>12.2e}{flag}")
    passed = worst <= tol
    print(f"{'passed' if passed else 'FAILED'}: largest error {worst:.2e} (tolerance {tol:g})")
    return 0 if passed else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""``deltaprop train``: load and split the data, fit the scaler and the network, test, save, plot.

The run goes through four steps, each a function: :func:`_load_data` (the
data set, its task and the output layer chosen for it), :func:`_split_and_scale`
(the train, validation and test rows, the feature and target scalers),
:func:`_fit` (the network's training) and then, on the rank that writes
files, :func:`_save` and :func:`_report`.

A data-parallel run (``mpiexec -n N deltaprop train ...``) trains through an
MPI communicator, which :func:`cmd_train` keeps on the parsed arguments
(``args.comm``) so that :func:`deltaprop.cli.main` can abort the other ranks
when this one fails; no module keeps it.
"""

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import time

import numpy as np

from .. import batches, distributed, optimizers, schedules
from .. import activations, losses
from ..checkpoint import latest_checkpoint
from ..data import Labels, Scaler, infer_task
from ..errors import DataError, DeltapropError, SaveError
from ..io import save
from ..model import Network
from ..plotting import MissingMatplotlib, plot_history
from . import config as C
from .common import PROG, Messenger, gather, label_values, load_dataset, loss_targets, split_rows, thread_limit
from .config import NOT_STORED, OPTIONS_BY_KEY, ConfigError
from .model import evaluate_outputs, format_scores, predict

__all__ = ["cmd_train"]


def cmd_train(args):
    """``deltaprop train``: check the options, then run; returns the exit status (0).

    Sets ``args.comm`` to the MPI communicator of a data-parallel run (None
    otherwise) before any data is read.
    """
    cfg, explicit = _train_config(args)
    _check_names(cfg)
    _check_checkpoint_dir(cfg)
    optimizer = _build_optimizer(cfg)
    schedule, schedule_params = _build_schedule(cfg)
    _check_writable(cfg)
    args.comm = comm = _mpi_comm()
    say = Messenger(cfg["quiet"] or (comm is not None and not comm.is_root))
    with thread_limit(cfg["threads"]):
        return _train(cfg, explicit, optimizer, schedule, schedule_params, say, comm)


def _mpi_comm():
    """An MPI communicator when started by ``mpiexec -n N`` (N > 1), else None."""
    if not distributed.launched_by_mpi():
        return None
    return distributed.MPIComm()


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------


def _train_config(args):
    """The effective configuration: defaults < --config file < flags; and the keys given explicitly."""
    given = {key: value for key, value in vars(args).items() if key in OPTIONS_BY_KEY}
    cli_values = C.parse_values(given, lambda key: OPTIONS_BY_KEY[key].flag_name)
    file_values = C.load_toml(args.config) if args.config else {}
    cfg = C.effective_config(file_values, cli_values)
    explicit = set(file_values) | set(cli_values)
    return cfg, explicit


def _check_names(cfg):
    """Fail early (usage error) on unknown activation or loss names and bad option combinations."""
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


def _check_writable(cfg):
    """Fail before training, not after, when an output's folder is missing."""
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
    found = latest_checkpoint(folder)
    if found is not None:
        raise ConfigError(
            f"{folder} already holds checkpoints (the newest is {os.path.basename(found)}); continue that run "
            f"with --resume, or give an empty or new --checkpoint-dir"
        )


# ---------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class _Data:
    """A loaded data set, its task and the output layer chosen for it.

    ``y`` holds the targets as loaded: (n,) labels for classification (a
    single target column flattened), (n,) or (n, n_targets) values for
    regression. ``labels`` and ``codes`` (class indices (n,)) are None for
    regression, ``n_classes`` too.
    """

    ds: object
    task: str
    X: object
    y: np.ndarray
    labels: object
    codes: object
    n_classes: object
    n_targets: int
    output_activation: str
    loss: str
    n_out: int
    target_encoding: str


@dataclasses.dataclass
class _Split:
    """The rows of a run and what training needs of them, scaled.

    ``X_train`` (n_train, n_in) and ``X_val`` are scaled features in the
    network's dtype; ``t_train`` and ``validation`` hold the targets as the
    loss takes them. ``y_test`` holds the test targets in their original
    form (None without a test set).
    """

    train_rows: np.ndarray
    val_rows: object
    test_rows: object
    X_train: object
    t_train: object
    validation: object
    y_test: object
    scaler: Scaler
    target_scaler: object


def _train(cfg, explicit, optimizer, schedule, schedule_params, say, comm=None):
    """The run itself, from a checked configuration; returns the exit status (0)."""
    t_start = time.perf_counter()
    data = _load_data(cfg)
    dtype = np.dtype(cfg["dtype"])
    # Large memory-mapped inputs are copied, scaled, into scratch files that fit streams batch by batch.
    streamed = isinstance(data.X, np.memmap) and data.X.nbytes > batches.STREAM_BYTES
    with _scratch_folder(cfg, streamed) as scratch:
        max_val = batches.STREAM_BYTES // (data.X.shape[1] * dtype.itemsize) if streamed else None
        split = _split_and_scale(cfg, data, dtype, scratch, max_val)
        net = Network.from_sizes(
            [data.X.shape[1]] + cfg["hidden"] + [data.n_out], activation=_one_or_each(cfg["activation"]),
            output_activation=data.output_activation, loss=data.loss, dropout=_one_or_each(cfg["dropout"]),
            dtype=cfg["dtype"], seed=cfg["seed"])
        _announce(say, cfg, data, split, net, optimizer, streamed)
        t_fit = time.perf_counter()
        history = _fit(net, cfg, data, split, optimizer, schedule, comm)
        fit_seconds = time.perf_counter() - t_fit
        scores = _test(net, data, split)
    if comm is not None and not comm.is_root:
        return 0  # rank 0 alone tests, saves, plots and prints
    opt_cfg = optimizer.get_config()
    _save(net, cfg, data, split, history, scores, opt_cfg, schedule_params)
    say(f"trained {len(history)} epoch{'s' if len(history) != 1 else ''} in {fit_seconds:.1f} s")
    plotted = _report(net, cfg, explicit, data, split, history, scores, opt_cfg)
    if not cfg["quiet"]:
        written = [cfg["out"]] + ([cfg["plot"]] if plotted else [])
        print(f"wrote {', '.join(written)} in {time.perf_counter() - t_start:.1f} s", flush=True)
    return 0


def _one_or_each(values):
    """An option's list of one value (for every hidden layer) or of one per layer, as ``from_sizes`` takes it."""
    return values[0] if len(values) == 1 else values


def _load_data(cfg):
    """The data set of ``cfg["data"]``, its task, class codes and output layer; a :class:`_Data`."""
    ds = load_dataset(cfg["data"], cfg["labels"], cfg["target"])
    task = cfg["task"] or ds.task or infer_task(ds.y)
    X, y = ds.X, np.asarray(ds.y)
    codes = labels = n_classes = None
    n_targets = 1
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
    else:
        if y.dtype.kind not in "biuf":
            raise DataError(f"regression needs numeric targets, got {y.dtype} values such as {y.flat[0]!r}")
        n_targets = 1 if y.ndim == 1 else y.shape[1]
    try:
        head = losses.choose_output(task, n_classes, n_targets, cfg["output_activation"], cfg["loss"])
    except DeltapropError as exc:
        raise ConfigError(str(exc)) from None
    return _Data(ds, task, X, y, labels, codes, n_classes, n_targets, *head)


@contextlib.contextmanager
def _scratch_folder(cfg, streamed):
    """A fresh folder for the scratch files of a streamed run (None otherwise), removed afterwards."""
    if not streamed:
        yield None
        return
    folder = cfg["scratch_dir"] or os.path.dirname(os.path.abspath(cfg["out"]))
    try:
        scratch = tempfile.mkdtemp(prefix=".deltaprop-scratch-", dir=folder)
    except OSError as exc:
        raise DataError(f"cannot create a scratch folder in {folder}: {exc.strerror or exc} "
                        f"(choose one with --scratch-dir)") from None
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _split_and_scale(cfg, data, dtype, scratch, max_val):
    """The split rows, the scalers fitted on the training rows, and the scaled training data; a :class:`_Split`."""
    ds, X, y, codes = data.ds, data.X, data.y, data.codes
    train_rows, val_rows, test_rows = split_rows(X.shape[0], codes, cfg, ds.X_test is not None, max_val)
    X_train = gather(X, train_rows, dtype, scratch, "train")
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
    if data.task == "regression" and cfg["scale_target"] == "standard":
        target_scaler = Scaler("standard").fit(np.asarray(y[train_rows], dtype=np.float64).reshape(-1, data.n_targets))

    def targets(rows):
        return loss_targets(data.task, data.target_encoding, data.n_out, dtype, y[rows],
                            None if codes is None else codes[rows], target_scaler)

    validation = None if val_rows is None else (X_val, targets(val_rows))
    return _Split(train_rows, val_rows, test_rows, X_train, targets(train_rows), validation, y_test, scaler,
                  target_scaler)


def _announce(say, cfg, data, split, net, optimizer, streamed):
    """The two lines a person reads before the progress bars: the data and its split, the network and optimizer."""
    ds = data.ds
    n_test = 0 if split.y_test is None else len(split.y_test)
    what = f"{data.n_classes} classes" if data.task == "classification" else \
        f"regression of {data.n_targets} target{'s' if data.n_targets > 1 else ''}"
    n_samples = data.X.shape[0] + (len(ds.y_test) if ds.X_test is not None else 0)
    say(f"data: {ds.name} ({n_samples} samples, {data.X.shape[1]} features, "
        f"{what}): {len(split.train_rows)} training, {0 if split.val_rows is None else len(split.val_rows)} "
        f"validation, {n_test} test" + (" (the official test set)" if ds.X_test is not None else ""))
    opt_cfg = optimizer.get_config()
    say(f"network: {_describe_network(net)}, {net.n_params} parameters, {net.dtype.name}; "
        f"{opt_cfg['name']} lr={opt_cfg['learning_rate']:g}, {cfg['schedule']} schedule, "
        f"{cfg['epochs']} epochs of {cfg['batch_size']}" + (", streamed from scratch files" if streamed else ""))


def _describe_network(net):
    """``784-512-256-10 relu dropout 0.2, softmax + categorical_crossentropy``."""
    sizes = "-".join(str(s) for s in [net.n_in] + [layer.n_out for layer in net.layers])
    hidden = net.layers[:-1]
    acts = "/".join(dict.fromkeys(layer.activation.name for layer in hidden)) or "no hidden layer"
    drops = "/".join(dict.fromkeys(f"{layer.dropout:g}" for layer in hidden))
    if drops and drops != "0":
        acts += f" dropout {drops}"
    return f"{sizes} {acts}, {net.layers[-1].activation.name} + {net.loss.name}"


def _metric(task):
    """The score trained, logged and plotted: accuracy, or R² for regression."""
    return "accuracy" if task == "classification" else "r2"


def _fit(net, cfg, data, split, optimizer, schedule, comm):
    """Train ``net`` on the split as the options say; returns the History."""
    if cfg["log"] is not None and not cfg["resume"] and (comm is None or comm.is_root):
        with open(cfg["log"], "w", encoding="utf-8"):
            pass  # a fresh run starts a fresh log; a resumed one appends
    patience = cfg["early_stopping"]
    early = None
    if patience:
        early = {"monitor": "val_loss" if split.validation is not None else "loss", "patience": patience}
    return net.fit(
        split.X_train, split.t_train, epochs=cfg["epochs"], batch_size=cfg["batch_size"], optimizer=optimizer,
        schedule=schedule, validation_data=split.validation, metrics=[_metric(data.task)], early_stopping=early,
        checkpoint_dir=cfg["checkpoint_dir"], checkpoint_every=cfg["checkpoint_every"],
        keep_checkpoints=cfg["keep_checkpoints"], resume_from=cfg["checkpoint_dir"] if cfg["resume"] else None,
        verbose=0 if cfg["quiet"] else 1, log_path=cfg["log"], comm=comm,
    )


def _test(net, data, split):
    """Scores on the test split or the official test set (see :func:`evaluate_outputs`); None without one."""
    if split.y_test is None:
        return None
    if data.ds.X_test is not None:
        outputs = predict(net, split.scaler, data.ds.X_test)
    else:
        outputs = predict(net, split.scaler, data.X, rows=split.test_rows)
    test_codes = data.labels.transform(split.y_test) if data.task == "classification" else None
    scores, _ = evaluate_outputs(net, data.task, data.target_encoding, outputs, split.y_test, test_codes,
                                 split.target_scaler)
    return scores


def _save(net, cfg, data, split, history, scores, opt_cfg, schedule_params):
    """Write the model file: the network, its scaling, classes, configuration and the run's history and scores."""
    stored = {key: value for key, value in cfg.items() if key not in NOT_STORED}
    stored.update(task=data.task, output_activation=data.output_activation, loss=data.loss,
                  lr=opt_cfg["learning_rate"], **schedule_params)
    if data.task != "regression":
        stored["scale_target"] = None  # not used
    for key in ("momentum", "nesterov", "beta1", "beta2", "eps", "weight_decay", "clipnorm"):
        if key in opt_cfg:
            stored[key] = opt_cfg[key]
    if stored.get("weight_decay") == 0.0 and cfg["weight_decay"] is None and cfg["l2"] is None:
        stored["weight_decay"] = None
    ds = data.ds
    extra = {"task": data.task, "history": history.to_list()}
    if scores is not None:
        extra["test"] = scores
    if ds.target_name is not None:
        extra["target_name"] = ds.target_name
    if ds.feature_names is not None:
        extra["feature_names"] = list(ds.feature_names)
    classes = None
    if data.task == "classification":
        classes = label_values(data.labels.classes_)
        names = ds.class_names
        if names is not None and [str(c) for c in names] != [str(c) for c in classes] and \
                len(names) == data.n_classes:
            extra["class_names"] = [str(c) for c in names]
    if split.target_scaler is not None:
        tconfig, tarrays = split.target_scaler.state()
        extra["target_scaling"] = {**tconfig, **{k: v.tolist() for k, v in tarrays.items()}}
    save(net, cfg["out"], preprocessing=split.scaler.state(), classes=classes, config=stored, extra=extra)


def _report(net, cfg, explicit, data, split, history, scores, opt_cfg):
    """Print the test result and draw the curves; returns whether the plot was written.

    A missing matplotlib is a note, unless --plot was given (then an error).
    """
    metric = _metric(data.task)
    if scores is not None:
        where = "official test set" if data.ds.X_test is not None else "test split"
        print(f"test ({where}, {scores['samples']} samples): {format_scores(scores)}", flush=True)
    if cfg["plot"] is None:
        return False
    score_text = ""
    if scores is not None:
        score_text = f" · test {'accuracy' if metric == 'accuracy' else 'R²'} {scores[metric]:.4f}"
    title = (f"deltaprop: {data.ds.name}, {_describe_network(net)}, {opt_cfg['name']} "
             f"lr={opt_cfg['learning_rate']:g} {cfg['schedule']}, batch {cfg['batch_size']}{score_text}")
    loss_label = net.loss.name + (", standardised targets" if split.target_scaler is not None else "")
    try:
        plot_history(history.to_list(), cfg["plot"], title, metric=metric, loss_name=loss_label)
    except MissingMatplotlib as exc:
        if "plot" in explicit:
            raise
        print(f"{PROG}: note: no plot: {exc}", file=sys.stderr)
        return False
    return True

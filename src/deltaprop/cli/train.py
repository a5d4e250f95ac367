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
import itertools
import os
import re
import shutil
import sys
import tempfile
import time

import numpy as np

from .. import batches, distributed, optimizers, schedules
from .. import activations, losses
from ..blocks import Residual
from ..callbacks import JSONLogger
from ..embedding import Embedding
from ..layers import Activation, Dense, Dropout
from ..checkpoint import latest_checkpoint
from ..errors import DataError, DeltapropError, InvalidArgumentError, SaveError
from ..inspector import Inspector
from ..model import Network
from ..plotting import MissingMatplotlib, plot_history
from ..report_html import write_report
from ..tabular import TabularModel
from ..tabular.schema import plural
from ..tabular.scores import format_scores, score_encoded
from . import config as C
from .common import PROG, Messenger, thread_limit
from .config import NOT_STORED, OPTIONS_BY_KEY, ConfigError
from .model import predict
from .paths import check_outputs
from .prepare import prepare

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
    check_outputs({"--data": cfg["data"], "--labels": cfg["labels"], "--config": args.config},
                  {"--out": cfg["out"], "--log": cfg["log"], "--plot": cfg["plot"], "--report": cfg["report"],
                   "--checkpoint-dir": cfg["checkpoint_dir"]})
    args.comm = comm = _mpi_comm()
    say = Messenger(cfg["quiet"] or (comm is not None and not comm.is_root))
    if cfg["threads"] == "auto":
        if comm is not None and comm.size > 1:
            raise ConfigError(f"--threads auto is for one process: {comm.size} MPI processes could choose different "
                              f"counts; give --threads N (for example cores // processes per node)")
        say(f"{PROG}: warning: --threads auto chooses 1 thread or all cores each epoch from the load; "
            f"float32 products round differently with 1 and several threads, so the weights can differ from "
            f"run to run; give --threads N for reproducible weights")
    with thread_limit(cfg["threads"]):
        try:
            return _train(cfg, explicit, optimizer, schedule, schedule_params, say, comm)
        except KeyboardInterrupt as exc:
            folder = cfg["checkpoint_dir"] or interrupt_folder(cfg["out"])
            if getattr(exc, "checkpoint", None):
                exc.resume_hint = f"resume with: {_resume_command(getattr(args, 'argv', sys.argv[1:]), folder)}"
            raise


def _resume_command(argv, folder):
    """The command line that continues this run from the checkpoints in ``folder``."""
    import shlex

    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--checkpoint-dir", "--resume", "--no-resume"):
            skip = arg == "--checkpoint-dir"
            continue
        if arg.startswith("--checkpoint-dir="):
            continue
        kept.append(arg)
    return shlex.join(["deltaprop", *kept, "--checkpoint-dir", folder, "--resume"])


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
    if cfg["report_every"] is not None and cfg["report"] is None:
        raise ConfigError("report_every sets how often --report inspects the layers; give --report too")


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
    for key in ("out", "plot", "log", "report"):
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


def _train(cfg, explicit, optimizer, schedule, schedule_params, say, comm=None):
    """The run itself, from a checked configuration; returns the exit status (0)."""
    t_start = time.perf_counter()
    dtype = np.dtype(cfg["dtype"])
    streamed = _streamed(cfg)
    with _scratch_folder(cfg, streamed) as scratch:
        max_val = None
        if streamed:
            max_val = batches.STREAM_BYTES // (streamed * dtype.itemsize)
        data = prepare(cfg, dtype, scratch, max_val)
        contract = data.contract
        codes = contract.categories_as == "codes" and contract.schema.categorical
        embed = contract.embedding_columns(cfg["embed_categories"]) if codes else None
        net = Network.from_sizes(
            [contract.n_inputs] + cfg["hidden"] + [data.n_out], activation=_one_or_each(cfg["activation"]),
            output_activation=data.output_activation, loss=data.loss, dropout=_one_or_each(cfg["dropout"]),
            dtype=cfg["dtype"], seed=cfg["seed"], norm=None if cfg["norm"] == "none" else cfg["norm"],
            residual=cfg["residual"], embed=embed)
        contract.silence_unused(net)  # an unseen category adds nothing (no training row sets these)
        _announce(say, cfg, data, net, optimizer, bool(streamed), comm)
        inspector = None if cfg["report"] is None else \
            Inspector() if cfg["report_every"] is None else Inspector(every=cfg["report_every"])
        t_fit = time.perf_counter()
        try:
            history = _fit(net, cfg, data, optimizer, schedule, comm, inspector)
        except BaseException as exc:  # a report of a failed run is the most useful one; the error goes on
            if inspector is not None and (comm is None or comm.is_root):
                _failed_report(cfg, inspector, net, data, optimizer.get_config(), exc, say)
            raise
        fit_seconds = time.perf_counter() - t_fit
        scores = _test(net, data)
    if comm is not None and not comm.is_root:
        return 0  # rank 0 alone tests, saves, plots and prints
    opt_cfg = optimizer.get_config()
    _save(net, cfg, data, history, scores, opt_cfg, schedule_params)
    say(f"trained {len(history)} epoch{'s' if len(history) != 1 else ''} in {fit_seconds:.1f} s")
    plotted = _report(net, cfg, explicit, data, history, scores, opt_cfg)
    if inspector is not None:
        _html_report(cfg, inspector, net, data, opt_cfg, history=history.to_list(), scores=scores)
    if not cfg["quiet"]:
        written = [cfg["out"]] + ([cfg["plot"]] if plotted else []) + ([cfg["report"]] if inspector else [])
        print(f"wrote {', '.join(written)} in {time.perf_counter() - t_start:.1f} s", flush=True)
    return 0


def _streamed(cfg):
    """The feature count of an NPY file large enough to be streamed from scratch files, else 0."""
    path = cfg["data"]
    if not path or not os.path.isfile(path) or os.path.getsize(path) <= batches.STREAM_BYTES:
        return 0
    from ..data import detect_format, load_array

    if detect_format(path) != "npy":
        return 0
    X = load_array(path, mmap=True)
    return X.shape[1] if X.ndim == 2 and X.nbytes > batches.STREAM_BYTES else 0


def _one_or_each(values):
    """An option's list of one value (for every hidden layer) or of one per layer, as ``from_sizes`` takes it."""
    return values[0] if len(values) == 1 else values


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


def _announce(say, cfg, data, net, optimizer, streamed, comm=None):
    """What a person reads before the progress bars: notes on the data, the data and its split, the network."""
    for note in data.notes:
        say(f"{PROG}: note: {note}")
    n_train, n_val, n_test = data.split_sizes
    what = f"{data.n_classes} classes" if data.task == "classification" else \
        f"regression of {plural(data.n_targets, 'target')}"
    inputs = data.contract.n_inputs
    columns = plural(data.n_columns, "feature")
    if inputs != data.n_columns:
        columns += f" -> {plural(inputs, 'input')}"
    say(f"data: {data.name} ({plural(data.n_samples, 'sample')}, {columns}, {what}): {n_train} training, "
        f"{n_val} validation, {n_test} test" + (" (the official test set)" if data.official_test else ""))
    if data.test is not None and 0 < n_test < 30:
        say(f"{PROG}: note: the test score will rest on {plural(n_test, 'row')} alone; read it as a rough guide")
    opt_cfg = optimizer.get_config()
    say(f"network: {_describe_network(net)}, {net.n_params} parameters, {net.dtype.name}; "
        f"{opt_cfg['name']} lr={opt_cfg['learning_rate']:g}, {cfg['schedule']} schedule, "
        f"{plural(cfg['epochs'], 'epoch')} of {cfg['batch_size']}"
        + (", streamed from scratch files" if streamed else ""))
    if comm is not None and comm.size > 1:
        say(f"data-parallel over {comm.size} MPI ranks: each step splits the batch of {cfg['batch_size']} between "
            f"them and sums their gradients, so the run trains the model one process would")


def _describe_network(net):
    """``784-512-256-10 relu dropout 0.2, softmax + categorical_crossentropy``, or the layers of a richer network."""
    head = f"{net.layers[-1].activation.name} + {net.loss.name}"
    if not all(isinstance(layer, Dense) for layer in net.layers):
        kinds = [_layer_word(layer) for layer in net.layers[:-1]]
        blocks = [f"{k} x{n}" if n > 1 else k for k, n in ((k, len(list(g))) for k, g in itertools.groupby(kinds))]
        return f"{net.n_in} inputs, {', '.join(blocks)}, dense {net.layers[-1].n_in}-{net.n_out} {head}"
    sizes = "-".join(str(s) for s in [net.n_in] + [layer.n_out for layer in net.layers])
    hidden = net.layers[:-1]
    acts = "/".join(dict.fromkeys(layer.activation.name for layer in hidden)) or "no hidden layer"
    drops = "/".join(dict.fromkeys(f"{layer.dropout:g}" for layer in hidden))
    if drops and drops != "0":
        acts += f" dropout {drops}"
    return f"{sizes} {acts}, {head}"


def _layer_word(layer):
    """A few words for one layer in the run's announcement."""
    if isinstance(layer, Dense):
        act = layer.activation.name
        return f"dense {layer.n_in}-{layer.n_out}" + ("" if act == "identity" else f" {act}") + (
            f" dropout {layer.dropout:g}" if layer.dropout else "")
    if isinstance(layer, Residual):
        return f"residual[{', '.join(_layer_word(inner) for inner in layer.layers)}]"
    if isinstance(layer, Embedding):
        return f"embedding {layer.n_in}->{layer.n_out}"
    if isinstance(layer, Activation):
        return layer.activation.name
    if isinstance(layer, Dropout):
        return f"dropout {layer.p:g}"
    return type(layer).__name__.lower()


def _metric(task):
    """The score trained, logged and plotted: accuracy, or R² for regression."""
    return "accuracy" if task == "classification" else "r2"


def _fit(net, cfg, data, optimizer, schedule, comm, inspector=None):
    """Train ``net`` on the prepared data as the options say, ``inspector`` among the callbacks; returns the History."""
    # A fresh run replaces the log at its first epoch's end (a run that fails earlier leaves the old log);
    # a resumed one keeps the lines before its checkpoint.
    logger = None if cfg["log"] is None else JSONLogger(cfg["log"], append=bool(cfg["resume"]))
    patience = cfg["early_stopping"]
    early = None
    if patience:
        early = {"monitor": "val_loss" if data.validation is not None else "loss", "patience": patience}
    try:
        return _fit_network(net, cfg, data, optimizer, schedule, comm, [c for c in (logger, inspector) if c], early)
    except InvalidArgumentError as exc:
        if not str(exc).startswith("cannot resume"):
            raise
        raise InvalidArgumentError(_in_cli_terms(str(exc))) from None


def _in_cli_terms(text):
    """A resume refusal in the command line's words: ``lr (--lr) was ...; ... --override lr``."""
    found = re.search(r"resume_overrides=\['([^']+)'\] \(--override [^)]+\)", text)
    if not found:
        return text
    name = found.group(1)
    flag = {value: key for key, value in _LIBRARY_NAMES.items()}.get(name, name)
    text = text.replace(found.group(0), f"--override {flag}")
    return text.replace(f"{name} was", f"{flag} (--{flag.replace('_', '-')}) was", 1)


def _fit_network(net, cfg, data, optimizer, schedule, comm, callbacks, early):
    return net.fit(
        data.X_train, data.t_train, epochs=cfg["epochs"], batch_size=cfg["batch_size"], optimizer=optimizer,
        schedule=schedule, validation_data=data.validation, metrics=[_metric(data.task)], early_stopping=early,
        checkpoint_dir=cfg["checkpoint_dir"], checkpoint_every=cfg["checkpoint_every"],
        keep_checkpoints=cfg["keep_checkpoints"], resume_from=cfg["checkpoint_dir"] if cfg["resume"] else None,
        verbose=0 if cfg["quiet"] else 1, callbacks=callbacks or None, comm=comm,
        run_settings={key: cfg[key] for key in _RUN_SETTINGS},
        resume_overrides=[_LIBRARY_NAMES.get(key, key) for key in cfg["override"] or ()] or None,
        interrupt_checkpoint=None if cfg["checkpoint_dir"] else interrupt_folder(cfg["out"]),
        threads="auto" if cfg["threads"] == "auto" else None,  # a fixed count is set for the whole command
    )


#: Options that change the result beyond what the training loop itself fingerprints (the network, the optimizer,
#: the schedule, the batch size and the data): a resumed run must have the same values, or name them in --override.
_RUN_SETTINGS = ("data", "labels", "target", "task", "test_split", "validation_split", "scale", "scale_target",
                 "features", "drop", "categorical", "na_values", "max_categories", "min_frequency", "seed",
                 "early_stopping")
#: --override takes the command line's names; the loop's names differ for these
_LIBRARY_NAMES = {"lr": "learning_rate"}


def interrupt_folder(out):
    """Where an interrupted run without --checkpoint-dir leaves its checkpoint: beside the model, ``OUT.checkpoint``."""
    return f"{out}.checkpoint"


def _test(net, data):
    """Scores on the test split or the official test set (see :func:`score_encoded`); None without one."""
    if data.test is None:
        return None
    X_test, encoded = data.test
    outputs = predict(net, data.test_scaler, X_test)
    scores, _, _ = score_encoded(net, data.contract.target, outputs, encoded)
    return scores


def _save(net, cfg, data, history, scores, opt_cfg, schedule_params):
    """Write the model file: the network, its data contract, configuration, history and scores."""
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
    model = TabularModel(net, data.contract, config=stored, history=history.to_list(), test=scores,
                         overrides=getattr(history, "overrides", None))
    model.save(cfg["out"])


def _report(net, cfg, explicit, data, history, scores, opt_cfg):
    """Print the test result and draw the curves; returns whether the plot was written.

    A missing matplotlib is a note, unless --plot was given (then an error).
    """
    metric = _metric(data.task)
    if scores is not None:
        where = "official test set" if data.official_test else "test split"
        print(f"test ({where}, {plural(scores['samples'], 'sample')}): {format_scores(scores)}", flush=True)
    if cfg["plot"] is None:
        return False
    score_text = ""
    if scores is not None:
        score_text = f" · test {'accuracy' if metric == 'accuracy' else 'R²'} {scores[metric]:.4f}"
    title = (f"deltaprop: {data.name}, {_describe_network(net)}, {opt_cfg['name']} "
             f"lr={opt_cfg['learning_rate']:g} {cfg['schedule']}, batch {cfg['batch_size']}{score_text}")
    scaled = data.task == "regression" and data.contract.target.scaled
    loss_label = net.loss.name + (", standardised targets" if scaled else "")
    try:
        plot_history(history.to_list(), cfg["plot"], title, metric=metric, loss_name=loss_label)
    except MissingMatplotlib as exc:
        if "plot" in explicit:
            raise
        print(f"{PROG}: note: no plot: {exc}", file=sys.stderr)
        return False
    return True


def _html_report(cfg, inspector, net, data, opt_cfg, history=None, scores=None, notes=None):
    """Write the run's HTML report (--report): the inspector's log, the history, the run in a few facts."""
    n_train, n_val, n_test = data.split_sizes
    facts = [("data", f"{data.name}: {n_train} training, {n_val} validation, {n_test} test rows"),
             ("network", f"{_describe_network(net)}, {net.n_params} parameters, {net.dtype.name}"),
             ("optimizer", f"{opt_cfg['name']} lr={opt_cfg['learning_rate']:g}, {cfg['schedule']} schedule, "
                           f"batch {cfg['batch_size']}, {plural(cfg['epochs'], 'epoch')}")]
    if scores is not None:
        facts.append(("test", format_scores(scores)))
    write_report(cfg["report"], inspector.log(), title=f"deltaprop train: {data.name}", history=history,
                 notes=notes, facts=facts)


def _failed_report(cfg, inspector, net, data, opt_cfg, exc, say):
    """The report of a run that stopped on ``exc`` (interrupted, diverged): written if it can be, never raising."""
    why = str(exc) or type(exc).__name__
    if not isinstance(exc, (DeltapropError, KeyboardInterrupt)):
        why = f"{type(exc).__name__}: {why}"
    try:
        _html_report(cfg, inspector, net, data, opt_cfg, notes=[f"The run stopped early: {why}"])
    except Exception as failure:  # noqa: BLE001 - the run's own error is the one to report
        say(f"{PROG}: note: no report: {failure}")
        return
    say(f"{PROG}: note: wrote the report of the stopped run to {cfg['report']}")

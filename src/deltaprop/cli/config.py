"""Options of ``deltaprop train``: one table, read from flags and from TOML files.

Each option is declared once in :data:`TRAIN_OPTIONS`, with its parser, its
default and its help. The command line turns the table into flags
(``batch_size`` becomes ``--batch-size``); a TOML file given with
``--config run.toml`` holds the same options as top-level keys, spelled with
underscores or dashes::

    # run.toml
    data = "fashion-mnist"
    hidden = [512, 256]          # or "512,256"
    activation = "relu"
    dropout = 0.2
    optimizer = "adam"
    lr = 1e-3
    schedule = "cosine"
    epochs = 30
    batch-size = 128

The effective configuration is, key by key, the first of: the flag given on
the command line, the key in the file, the default (:func:`effective_config`).
Every value goes through the same parser whichever its source, so a file and
a flag accept the same spellings and fail with the same message, naming where
the value came from (``--epochs`` or ``run.toml: epochs``). Unknown keys in a
file are an error that names them (with the nearest valid names).

Relative paths in a file (``data``, ``out``, ``plot``, ...) are relative to
the current working folder, as on the command line.

:func:`to_toml` writes a configuration back as TOML that ``--config`` reads,
which is how ``deltaprop info`` prints the configuration stored in a model.

Importing this module imports only the standard library and
:mod:`deltaprop.errors` (the parser of ``deltaprop --help`` reads the table
without NumPy); :mod:`deltaprop.checks`, which validates the values, is
imported when a value is parsed.
"""

import dataclasses
import math
import os

from ..errors import DeltapropError, InvalidArgumentError

__all__ = [
    "ConfigError",
    "Option",
    "TRAIN_OPTIONS",
    "OPTIONS_BY_KEY",
    "NOT_STORED",
    "defaults",
    "load_toml",
    "parse_values",
    "effective_config",
    "to_toml",
]


class ConfigError(InvalidArgumentError):
    """An option has a bad value, or a configuration file is unreadable or has unknown keys.

    The command line reports it as a usage error (exit status 2).
    """


# ---------------------------------------------------------------------------
# Parsers: (value, name) -> normalised value. ``value`` is a str from the
# command line or a TOML value (str, int, float, bool, list).
# ---------------------------------------------------------------------------


def _fail(name, what, value):
    raise ConfigError(f"{name} must be {what}, got {value!r}")


def integer(low=None):
    """A parser for an int >= ``low`` (a str holding one is accepted), checked by :mod:`deltaprop.checks`."""
    what = "an integer" if low is None else ("a positive integer" if low == 1 else f"an integer >= {low}")

    def parse(value, name):
        from ..checks import check_int  # NumPy: imported when a value is parsed, not with the parser

        raw = value
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                _fail(name, what, raw)
        try:
            return check_int(value, name, low)
        except DeltapropError:  # named as typed: a flag's or a file's raw value
            _fail(name, what, raw)

    parse.what = what
    return parse


def number(low=None, high=None, low_open=False, high_open=False):
    """A parser for a finite float in a range (a str or int holding one), checked by :mod:`deltaprop.checks`."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    what = "a number" + (" " + " and ".join(parts) if parts else "")

    def parse(value, name):
        from ..checks import check_number  # NumPy: imported when a value is parsed, not with the parser

        raw = value
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                _fail(name, what, raw)
        try:
            return check_number(value, name, low=low, high=high, low_open=low_open, high_open=high_open)
        except DeltapropError:  # named as typed: a flag's or a file's raw value
            _fail(name, what, raw)

    parse.what = what
    return parse


def _threads(value, name):
    """A parser for ``--threads``: ``auto`` or a positive integer."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        return integer(1)(value, name)
    except ConfigError:
        _fail(name, "a positive integer or auto", value)


def choice(*choices):
    """A parser for one of ``choices`` (case-insensitive; dashes and underscores alike)."""
    what = "one of " + ", ".join(choices)

    def parse(value, name):
        if not isinstance(value, str):
            _fail(name, what, value)
        key = value.strip().lower().replace("_", "-")
        for c in choices:
            if key == c.replace("_", "-"):
                return c
        _fail(name, what, value)

    parse.what = what
    parse.choices = choices
    return parse


def boolean(value, name):
    """True or false (also the strings true/false, yes/no, on/off, 1/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        key = value.strip().lower()
        if key in ("true", "yes", "on", "1"):
            return True
        if key in ("false", "no", "off", "0"):
            return False
    _fail(name, "true or false", value)


boolean.what = "true or false"


def text(value, name):
    """A non-empty string."""
    if not isinstance(value, str) or not value.strip():
        _fail(name, "a non-empty string", value)
    return value.strip()


text.what = "a non-empty string"


def optional_path(value, name):
    """A path, or ``none`` / an empty string for none."""
    if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
        return None
    return text(value, name)


optional_path.what = "a path or none"


def column(value, name):
    """A column: an int index (a str of digits counts as one) or a name."""
    if isinstance(value, bool):
        _fail(name, "a column name or index", value)
    if isinstance(value, int):
        return value
    value = text(value, name)
    try:
        return int(value)
    except ValueError:
        return value


column.what = "a column name or index"


def _items(value, name, what):
    """A comma-separated str, a list, or a single scalar, as a list of items."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.lower() in ("", "none"):
            return []
        items = [v.strip() for v in stripped.split(",")]
        if any(v == "" for v in items):
            _fail(name, what, value)
        return items
    if isinstance(value, list):
        return list(value)
    return [value]


def list_of(item, what, allow_empty=False):
    """A parser for a list: ``"a,b"``, ``["a", "b"]`` or one value; each item parsed by ``item``."""

    def parse(value, name):
        items = _items(value, name, what)
        if not items and not allow_empty:
            _fail(name, what, value)
        out = []
        for v in items:
            try:
                out.append(item(v, name))
            except ConfigError:
                _fail(name, what, value)
        return out

    parse.what = what
    return parse


def name_list(value, name):
    """Names (activations): ``"relu"``, ``"relu,tanh"`` or ``["relu", "tanh"]``."""
    return list_of(text, "a name or a comma-separated list of names")(value, name)


name_list.what = "a name or a comma-separated list of names"


# ---------------------------------------------------------------------------
# The options of `deltaprop train`
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of ``deltaprop train``.

    Attributes
    ----------
    key : str
        The configuration key (underscores); the flag is ``--`` + key with dashes.
    parse : callable
        ``parse(value, name) -> value``; raises :class:`ConfigError`.
    default : object
        The value when neither a flag nor the file gives one (None: unset).
    help : str
    group : str
        The heading the option is listed under in ``--help``.
    metavar : str or None
    flag : bool
        A boolean switch (``--quiet`` / ``--no-quiet``).
    short : str or None
        A one-letter alias (``-q``).
    """

    key: str
    parse: object
    default: object
    help: str
    group: str
    metavar: str = None
    flag: bool = False
    short: str = None

    @property
    def flag_name(self):
        return "--" + self.key.replace("_", "-")


_SCHEDULES = ("constant", "cosine", "step", "exponential", "warmup")
_OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad")
_unit = number(0.0, 1.0, high_open=True)

TRAIN_OPTIONS = (
    # data
    Option("data", text, "digits", "a built-in data set (digits, iris, wine, breast-cancer, diabetes, "
           "fashion-mnist) or a file: CSV with a header, NPY, NPZ or IDX (gzipped or not)",
           "data", "NAME|PATH"),
    Option("labels", optional_path, None, "the targets in a separate NPY or IDX file (with --data X.npy or "
           "images.idx)", "data", "PATH"),
    Option("target", column, None, "the target column of a CSV or NPY file: a name or an index "
           "(default: the last column)", "data", "COLUMN"),
    Option("task", choice("classification", "regression"), None, "classification or regression "
           "(default: inferred from the targets: strings, integers or at most 50 whole-number values "
           "make classes)", "data", "TASK"),
    Option("test_split", number(0.0, 1.0, high_open=True), 0.25, "fraction held out (stratified) for the "
           "final test; 0 for none. Fashion-MNIST uses its official 10,000-image test set instead",
           "data", "FRACTION"),
    Option("validation_split", number(0.0, 1.0, high_open=True), 0.1, "fraction of the training part held "
           "out (stratified) for validation each epoch; 0 for none", "data", "FRACTION"),
    Option("scale", choice("standard", "minmax", "none"), "standard", "feature scaling fitted on the "
           "training part and stored in the model", "data", "KIND"),
    Option("scale_target", choice("standard", "none"), "standard", "regression only: standardise the "
           "targets for training (predictions are given in the original units)", "data", "KIND"),
    Option("features", list_of(text, "column names such as a,b,c"), None, "train on these columns only "
           "(names from the header); default: every column but the target", "data", "A,B,..."),
    Option("drop", list_of(text, "column names such as a,b,c"), None, "leave these columns out (an id, a "
           "date, a leak of the target)", "data", "A,B,..."),
    Option("categorical", list_of(text, "column names such as a,b,c"), None, "treat these columns as "
           "categories even if they hold numbers (text and true/false columns are categories already); "
           "each is one-hot encoded, with rare values pooled", "data", "A,B,..."),
    Option("na_values", list_of(text, "tokens such as -,missing"), None, "more cell values that mean "
           "'missing' (always: empty, NA, N/A, NaN, null, None, ?)", "data", "TOKENS"),
    Option("max_categories", integer(2), 100, "at most this many categories per column (the most frequent; "
           "the rest are pooled as 'other')", "data", "N"),
    Option("min_frequency", integer(1), 5, "a category seen in fewer training rows is pooled as 'other'",
           "data", "N"),
    Option("scratch_dir", optional_path, None, "where to write the scaled copy of a memory-mapped NPY "
           "file larger than 256 MiB, which is then streamed batch by batch (default: the folder of --out)",
           "data", "DIR"),
    # network
    Option("hidden", list_of(integer(1), "layer sizes such as 512,256 (or none)", allow_empty=True), [512, 256],
           "hidden layer sizes, comma-separated; none for no hidden layer", "network", "SIZES"),
    Option("activation", name_list, ["relu"], "hidden activation: one for all layers or one per layer, "
           "comma-separated (relu, tanh, sigmoid, leaky_relu, elu, gelu, softplus, identity)",
           "network", "NAME[,NAME...]"),
    Option("output_activation", text, None, "output activation (default: softmax for several classes, "
           "sigmoid for two, identity for regression)", "network", "NAME"),
    Option("loss", text, None, "loss (default: categorical_crossentropy, binary_crossentropy or "
           "mean_squared_error to match the output)", "network", "NAME"),
    Option("dropout", list_of(_unit, "a probability in [0, 1) or one per hidden layer"), [0.2],
           "dropout after each hidden layer: one probability or one per layer", "network", "P[,P...]"),
    Option("norm", choice("none", "batch", "layer"), "none", "normalisation: batch (BatchNorm, statistics of "
           "each batch while training, running averages kept for predictions) or layer (LayerNorm, over each "
           "row); before each hidden activation, or opening each residual block", "network", "KIND"),
    Option("residual", boolean, False, "a tabular ResNet: each hidden size is a residual block of that width, "
           "x + Dropout(Dense(Dropout(σ(Dense(norm(x)))))), after a linear stem and before a norm-σ head "
           "(Gorishniy et al. 2021)", "network", flag=True),
    Option("embed_categories", integer(1), None, "learn a vector of this size for each categorical column's "
           "categories (an Embedding layer) instead of one-hot encoding them", "network", "DIM"),
    Option("dtype", choice("float32", "float64"), "float32", "floating-point type of the network",
           "network", "DTYPE"),
    # optimizer
    Option("optimizer", choice(*_OPTIMIZERS), "adam", "sgd, adam, adamw, rmsprop or adagrad",
           "optimizer", "NAME"),
    Option("lr", number(0.0, low_open=True), None, "learning rate (default: the optimizer's, 1e-3 for "
           "adam, adamw and rmsprop, 1e-2 for sgd and adagrad)", "optimizer", "RATE"),
    Option("momentum", _unit, None, "sgd: momentum (default 0)", "optimizer", "M"),
    Option("nesterov", boolean, None, "sgd: Nesterov momentum", "optimizer", flag=True),
    Option("beta1", _unit, None, "adam, adamw: first-moment decay (default 0.9)", "optimizer", "B1"),
    Option("beta2", _unit, None, "adam, adamw: second-moment decay (default 0.999)", "optimizer", "B2"),
    Option("eps", number(0.0, low_open=True), None, "adam, adamw, rmsprop, adagrad: the epsilon of "
           "the denominator", "optimizer", "EPS"),
    Option("weight_decay", number(0.0), None, "weight decay on the weights (not the biases): added to "
           "the gradient as λW, except with adamw, which decays the weights directly",
           "optimizer", "LAMBDA"),
    Option("l2", number(0.0), None, "L2 penalty (λ/2)·Σ‖W‖², whose gradient λW is the optimizer's "
           "weight decay; the same as --weight-decay for all optimizers but adamw", "optimizer", "LAMBDA"),
    Option("clipnorm", number(0.0, low_open=True), None, "clip the gradient to this global L2 norm",
           "optimizer", "NORM"),
    # schedule
    Option("schedule", choice(*_SCHEDULES), "cosine", "learning-rate schedule: constant, cosine (to "
           "--min-lr over the run), step (times --gamma every --step-size epochs), exponential (times "
           "--gamma per epoch) or warmup (linear over --warmup-epochs, then constant)",
           "schedule", "NAME"),
    Option("warmup_epochs", integer(0), None, "linear warm-up over this many epochs before the schedule "
           "(default 1 with --schedule warmup, else 0)", "schedule", "EPOCHS"),
    Option("step_size", integer(1), None, "step schedule: epochs between decays (default 10)",
           "schedule", "EPOCHS"),
    Option("gamma", number(0.0, low_open=True), None, "step and exponential schedules: the decay "
           "factor (default 0.1 per step, 0.9 per epoch)", "schedule", "FACTOR"),
    Option("min_lr", number(0.0), None, "cosine schedule: the final learning rate (default 0)",
           "schedule", "RATE"),
    # training
    Option("epochs", integer(1), 30, "passes over the training data (a resumed run counts the epochs "
           "already done)", "training", "N"),
    Option("batch_size", integer(1), 32, "samples per step", "training", "N"),
    Option("early_stopping", integer(0), None, "stop after this many epochs without improvement of the "
           "validation loss (the training loss without validation) and keep the best weights; 0 for off",
           "training", "PATIENCE"),
    Option("seed", integer(0), 0, "seed of the initial weights, the splits, the order and dropout",
           "training", "N"),
    Option("threads", _threads, None, "BLAS threads (needs threadpoolctl; otherwise set "
           "OPENBLAS_NUM_THREADS before starting), or auto: time the first steps of each epoch with 1 thread "
           "and with every usable core and keep the faster, which helps when other work holds a core; the "
           "count is logged per epoch. Default: as the BLAS starts. Not auto by default, because float32 "
           "products round differently with 1 and several threads, so auto's weights depend on the load",
           "training", "N|auto"),
    # output
    Option("out", text, "model.safetensors", "where to write the model", "output", "PATH", short="-o"),
    Option("plot", optional_path, "curves.png", "where to draw the loss and metric curves (needs "
           "matplotlib); none for no plot", "output", "PATH"),
    Option("log", optional_path, None, "append one JSON line per epoch to this file", "output", "PATH"),
    Option("report", optional_path, None, "write the run's report to this HTML file, also when the run fails: "
           "curves, each layer's gradient flow, warnings in words (one self-contained page)", "output", "PATH"),
    Option("report_every", integer(1), None, "with --report: inspect one batch in N (default: the Inspector's); "
           "1 inspects every batch", "output", "N"),
    Option("checkpoint_dir", optional_path, None, "write checkpoints to this folder", "output", "DIR"),
    Option("checkpoint_every", integer(1), 1, "epochs between checkpoints", "output", "N"),
    Option("keep_checkpoints", integer(1), 3, "how many checkpoints to keep", "output", "N"),
    Option("override", list_of(text, "setting names such as lr,scale"), None, "with --resume: let these "
           "settings differ from the checkpoint's (recorded in the run's history)", "output", "SETTINGS"),
    Option("resume", boolean, False, "continue from the newest checkpoint in --checkpoint-dir; the "
           "result is bit-identical to an uninterrupted run", "output", flag=True),
    Option("quiet", boolean, False, "no progress bars or messages; only the final result",
           "output", flag=True, short="-q"),
)

OPTIONS_BY_KEY = {opt.key: opt for opt in TRAIN_OPTIONS}

#: Keys that steer one invocation and are not stored in the model's configuration.
NOT_STORED = ("resume", "quiet", "override")


def defaults():
    """``{key: default}`` for every option (lists copied)."""
    return {opt.key: (list(opt.default) if isinstance(opt.default, list) else opt.default) for opt in TRAIN_OPTIONS}


# ---------------------------------------------------------------------------
# Files and merging
# ---------------------------------------------------------------------------


def _toml_module():
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError(
                "reading a TOML configuration file needs Python 3.11 or later, or the tomli package "
                "(pip install tomli)"
            ) from None
    return tomllib


def load_toml(path):
    """Read a configuration file: ``{key: parsed value}``.

    Parameters
    ----------
    path : str or os.PathLike
        A TOML file whose top-level keys are option names, with underscores
        or dashes.

    Returns
    -------
    dict
        Keys normalised to underscores, values parsed and validated.

    Raises
    ------
    ConfigError
        The file cannot be read, is not valid TOML, repeats a key (as
        ``batch-size`` and ``batch_size``), holds a table, has unknown keys
        (all of them are named) or a bad value (the key and the value are
        named).
    """
    from ..checks import MAX_CONFIG_BYTES, read_text_bounded

    tomllib = _toml_module()
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no such configuration file")
    try:
        # a regular file or a pipe, read once and at most MAX_CONFIG_BYTES: never /dev/zero for ever
        raw = tomllib.loads(read_text_bounded(path, MAX_CONFIG_BYTES, "configuration file", error=ConfigError))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
    values = {}
    for raw_key, value in raw.items():
        key = raw_key.replace("-", "_")
        if key in values:
            raise ConfigError(f"{path}: the option {key!r} is given twice (with dashes and with underscores)")
        if isinstance(value, dict):
            raise ConfigError(
                f"{path}: [{raw_key}] is a table; the options are top-level keys (key = value)"
            )
        values[key] = value
    unknown = [k for k in values if k not in OPTIONS_BY_KEY or k == "config"]
    if unknown:
        raise ConfigError(f"{path}: unknown option(s) {_name_unknown(unknown)}")
    return parse_values(values, lambda key: f"{path}: {key}")


def _name_unknown(keys):
    import difflib

    parts = []
    for key in keys:
        close = difflib.get_close_matches(key, list(OPTIONS_BY_KEY), n=1)
        parts.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return ", ".join(parts) + "; the options are " + ", ".join(OPTIONS_BY_KEY)


def parse_values(values, name_of):
    """Parse ``{key: raw value}`` with each option's parser; ``name_of(key)`` names it in errors."""
    return {key: OPTIONS_BY_KEY[key].parse(value, name_of(key)) for key, value in values.items()}


def effective_config(file_values=None, cli_values=None):
    """Defaults, updated by the file's values, updated by the command line's.

    Parameters
    ----------
    file_values, cli_values : dict or None
        Parsed values (see :func:`load_toml` and :func:`parse_values`).

    Returns
    -------
    dict
        Every option's key with its value (None where unset).
    """
    config = defaults()
    config.update(file_values or {})
    config.update(cli_values or {})
    return config


# ---------------------------------------------------------------------------
# Writing TOML
# ---------------------------------------------------------------------------


def _toml_value(value):
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) as a TOML value")


def to_toml(config, keys=None):
    """A configuration as TOML text, one ``key = value`` line per set option.

    Options whose value is None are left out; ``keys`` (default: the
    configuration's own order) selects and orders the keys.
    """
    lines = []
    for key in keys or list(config):
        value = config.get(key)
        if value is None:
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + ("\n" if lines else "")

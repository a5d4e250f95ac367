"""The ``deltaprop`` argument parser: the commands, their options and help texts.

The options of ``train`` come from :data:`deltaprop.cli.config.TRAIN_OPTIONS`
(one table for flags and TOML files); argparse's errors become one-line
usage errors (:class:`UsageError`).

Building the parser imports no command module (and so no NumPy), which keeps
``deltaprop --help`` and ``--version`` fast: each command's function is
imported when the command runs, and the commands whose options are declared
in their own module (``export``, ``report``, ``explain``, ``walkthrough``)
get them when the command is chosen (:class:`_Commands`).
"""

import argparse
from importlib import import_module

from .._version import __version__
from .config import TRAIN_OPTIONS

__all__ = ["build_parser", "PROG", "UsageError"]

PROG = "deltaprop"


class UsageError(Exception):
    """A command-line mistake: reported in one line, exit status 2."""


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



class _Parser(argparse.ArgumentParser):
    """argparse, with its errors turned into one-line usage errors (no usage dump)."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog):
        super().__init__(prog, max_help_position=34, width=100)


#: the commands whose options are declared in their own module: name -> (one-line help, module, adding function)
_OWN_MODULE = {
    "export": ("write a model as an ONNX file", "export", "add_export"),
    "report": ("write a run's report as one HTML file: curves, per-layer flows, warnings", "report_command",
               "add_report"),
    "explain": ("attributions of each prediction to the columns, as CSV", "explain", "add_explain"),
    "walkthrough": ("one forward and backward pass with its numbers", "walkthrough", "add_walkthrough"),
}


def _command(module, name):
    """``deltaprop.cli.<module>.<name>``, imported when the command runs (the parser is built without it)."""

    def run(args):
        return getattr(import_module(f".{module}", __package__), name)(args)

    run.__name__ = run.__qualname__ = name
    return run


class _Commands(argparse._SubParsersAction):
    """The sub-commands: one declared in its own module gets its options when it is chosen."""

    def __call__(self, parser, namespace, values, option_string=None):
        _complete(self.choices[values[0]])
        super().__call__(parser, namespace, values, option_string)


class _Fill:
    """What an ``add_*`` function of a command's module sees as the sub-parsers: it configures the command's
    parser, made (with its one-line help) by :func:`build_parser`, instead of adding one."""

    def __init__(self, parser):
        self.parser = parser

    def add_parser(self, name, **kwargs):
        for key, value in kwargs.items():  # formatter_class, description, epilog
            setattr(self.parser, key, value)
        return self.parser


def _complete(command):
    """Give a command declared in its own module its options (once), then ``--debug``, as build_parser does."""
    pending = getattr(command, "_deltaprop_pending", None)
    if pending is None:
        return
    del command._deltaprop_pending
    module, add = pending
    getattr(import_module(f".{module}", __package__), add)(_Fill(command), _Formatter)
    _add_debug(command)


def _add_debug(command):
    command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                         help="show the Python traceback of an internal error (a bug: please report it)")



def build_parser():
    """The ``deltaprop`` argument parser with its six commands."""
    parser = _Parser(
        prog=PROG,
        formatter_class=_Formatter,
        description="Train, evaluate and use feedforward neural networks (backpropagation, NumPy).",
        epilog="examples:\n  deltaprop train\n  deltaprop train --data fashion-mnist --hidden 512,256 --epochs 30\n"
               "  deltaprop evaluate model.safetensors\n  deltaprop export model.safetensors --onnx model.onnx\n\n"
               "Run 'deltaprop COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"deltaprop {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, action=_Commands)
    for add in (_add_train, _add_evaluate, _add_predict, _add_gradcheck, _add_info):
        add(sub)
    for name, (help_text, module, add) in _OWN_MODULE.items():
        command = sub.add_parser(name, help=help_text, formatter_class=_Formatter)
        command.set_defaults(func=_command(module, f"cmd_{name}"))
        command._deltaprop_pending = (module, add)
    for command in (parser, *sub.choices.values()):
        if not hasattr(command, "_deltaprop_pending"):
            _add_debug(command)
    return parser


_GROUP_TITLES = {"data": "data", "network": "network", "optimizer": "optimizer",
                 "schedule": "learning-rate schedule (sizes in epochs)", "training": "training",
                 "output": "output and checkpoints"}


def _add_train(sub):
    """``train``: its flags are the options of :data:`TRAIN_OPTIONS`, in their groups."""
    train = sub.add_parser("train", help="train a network and save it", formatter_class=_Formatter,
                           description="Train a network on a data set, report its test score, save it and "
                                       "draw its training curves.", epilog=TRAIN_EXAMPLES)
    train.add_argument("-c", "--config", metavar="FILE", help="read options from a TOML file; flags override it")
    groups = {}
    for opt in TRAIN_OPTIONS:
        group = groups.get(opt.group)
        if group is None:
            group = groups[opt.group] = train.add_argument_group(_GROUP_TITLES[opt.group])
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
    train.set_defaults(func=_command("train", "cmd_train"), comm=None)  # cmd_train sets comm for a data-parallel run


def _add_evaluate(sub):
    evaluate = sub.add_parser("evaluate", help="loss and metrics of a saved model on data",
                              formatter_class=_Formatter, epilog=EVALUATE_EXAMPLES,
                              description="Print a model's loss and metrics on data; for classification also "
                                          "the confusion matrix and per-class precision and recall.")
    evaluate.add_argument("model", metavar="MODEL", help="a model file written by 'deltaprop train'")
    _add_data_args(evaluate, "default: the test split held out in training")
    evaluate.add_argument("--json", action="store_true", help="print the results as one JSON object")
    evaluate.set_defaults(func=_command("commands", "cmd_evaluate"))


def _add_predict(sub):
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
    predict.set_defaults(func=_command("commands", "cmd_predict"))


def _add_gradcheck(sub):
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
    gradcheck.add_argument("--norm", default="none", choices=("none", "batch", "layer"),
                           help="a BatchNorm or LayerNorm before each hidden activation, checked in training "
                                "mode (default: none)")
    gradcheck.add_argument("--residual", action="store_true",
                           help="each hidden size a residual block of that width (a tabular ResNet)")
    gradcheck.set_defaults(func=_command("commands", "cmd_gradcheck"))


def _add_info(sub):
    info = sub.add_parser("info", help="describe a saved model", formatter_class=_Formatter, epilog=INFO_EXAMPLES,
                          description="Print a model's architecture, parameter count, classes, preprocessing, "
                                      "training configuration and format versions.")
    info.add_argument("model", metavar="MODEL", help="a model file written by 'deltaprop train' or deltaprop.save")
    info.add_argument("--json", action="store_true", help="print everything as one JSON object")
    info.add_argument("--toml", action="store_true",
                      help="print only the training configuration, as TOML that --config reads")
    info.set_defaults(func=_command("commands", "cmd_info"))


def _add_data_args(parser, default_note):
    """``--data``, ``--labels`` and ``--target`` of evaluate."""
    parser.add_argument("--data", metavar="NAME|PATH",
                        help=f"a built-in data set or a CSV, NPY, NPZ or IDX file ({default_note})")
    parser.add_argument("--labels", metavar="PATH", help="the targets in a separate NPY or IDX file")
    parser.add_argument("--target", metavar="COLUMN", help="the target column of a CSV or NPY file "
                                                            "(default: as in training, else the last)")


"""The ``deltaprop`` command: train, evaluate, predict, gradcheck, info.

::

    deltaprop train                                  # digits, 64-512-256-10, model.safetensors, curves.png
    deltaprop train --data fashion-mnist --hidden 512,256 --dropout 0.2 --batch-size 128 --epochs 30
    deltaprop evaluate model.safetensors             # the held-out test split of the training data
    deltaprop predict model.safetensors --data new.csv --out predictions.csv
    deltaprop info model.safetensors
    deltaprop gradcheck --hidden 5,4 --activation tanh

Each command has ``--help`` with examples. The options of ``train`` are
declared once in :mod:`deltaprop.cli.config`, which also reads them from a
TOML file (``--config run.toml``; flags override the file).

Results go to standard output; progress bars and messages to standard error.
An error is one line on standard error, ``deltaprop: error: ...``, with exit
status 2 for a usage error (a bad flag or configuration value) and 1 for
anything else (bad data, a missing file, a diverged run). An interruption is
``deltaprop: interrupted: ...``, with exit status 130 after Ctrl-C and 143
after SIGTERM. No traceback reaches a user: an unexpected exception (a bug)
is one line, ``deltaprop: internal error: ValueError: ...``, with exit status
70 (``EX_SOFTWARE``); ``--debug`` (or ``DELTAPROP_DEBUG=1``) prints the
traceback instead. Control characters in every message are escaped.

Start-up stays fast: ``deltaprop --help`` and ``--version`` import argparse,
the parser and the table of options, not NumPy (the package face is lazy and
each command's module is imported when the command runs); scikit-learn,
matplotlib, safetensors, tqdm and mpi4py are imported only by the commands
that use them.

The package: :mod:`~deltaprop.cli.parser` (help texts, the parser),
:mod:`~deltaprop.cli.config` (the options of ``train`` and TOML files),
:mod:`~deltaprop.cli.common` (messages, threads, data, splits),
:mod:`~deltaprop.cli.model` (a loaded model file, prediction, scores),
:mod:`~deltaprop.cli.train` and :mod:`~deltaprop.cli.commands` (the rest).
"""

import os
import sys

from ..errors import DeltapropError
from .config import ConfigError
from .parser import PROG, UsageError, build_parser

__all__ = ["main", "build_parser", "EX_SOFTWARE"]

#: exit status of an internal error (a bug), as sysexits.h
EX_SOFTWARE = 70
#: the longest message of an internal error, in characters
_MAX_INTERNAL = 300


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
        failed gradient check); 2 for a usage error; 70 for an internal
        error; 130 after Ctrl-C; 143 after SIGTERM.
    """
    status, args = _run(argv)
    comm = getattr(args, "comm", None)  # set by a data-parallel train
    if status and comm is not None and comm.size > 1:
        comm.abort(status)  # the other ranks would otherwise wait for this one
    return status


def _run(argv):
    """Parse ``argv`` and run its command: ``(exit status, parsed arguments or None)``."""
    args = None
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2, args
        return args.func(args), args
    except (UsageError, ConfigError) as exc:
        _error(exc)
        return 2, args
    except KeyboardInterrupt as exc:  # and deltaprop.errors.TrainingInterrupted (SIGINT or SIGTERM)
        return _interrupted(exc), args
    except BrokenPipeError:
        # The reader of our output went away (``deltaprop predict ... | head``): stop quietly.
        import contextlib

        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 1, args
    except DeltapropError as exc:
        _error(exc)
        return 1, args
    except OSError as exc:
        _error(_os_message(exc))
        return 1, args
    except MemoryError:
        _error("out of memory")
        return 1, args
    except Exception as exc:  # noqa: BLE001 - a bug: one line (or the traceback with --debug), never a crash dump
        return _internal_error(exc, args), args


def _debug(args):
    """Whether ``--debug`` was given (or ``DELTAPROP_DEBUG=1`` is set: it works before arguments are parsed)."""
    return bool(getattr(args, "debug", False)) or os.environ.get("DELTAPROP_DEBUG", "").strip() == "1"


def _internal_error(exc, args):
    """An unexpected exception: one line and exit status 70, or the full traceback with --debug."""
    if _debug(args):
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
        sys.stderr.flush()
        return EX_SOFTWARE
    try:
        raw = str(exc)[:8 * _MAX_INTERNAL]
    except Exception:  # noqa: BLE001 - an exception whose __str__ fails still gets its line
        raw = "(the message cannot be shown)"
    message = printable(_one_line(raw), limit=_MAX_INTERNAL)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    print(f"{PROG}: internal error: {text} (run with --debug for the traceback)", file=sys.stderr, flush=True)
    return EX_SOFTWARE


def _interrupted(exc):
    """Ctrl-C or SIGTERM: ``deltaprop: interrupted: ...`` and 130 (SIGINT) or 143 (SIGTERM)."""
    import signal

    message = _one_line(exc)
    checkpoint = getattr(exc, "checkpoint", None)
    if checkpoint:
        hint = getattr(exc, "resume_hint", None) or "to continue, run the same command with --resume"
        if hint not in message:
            message = f"{message}; {hint}" if message else hint
    line = f"{PROG}: interrupted: {printable(message, limit=None)}" if message else f"{PROG}: interrupted"
    print(line, file=sys.stderr, flush=True)
    return 128 + signal.SIGTERM if getattr(exc, "signum", None) == signal.SIGTERM else 130


def printable(text, limit):
    """:func:`deltaprop.report.printable`, imported (with NumPy) only when there is a message to show."""
    from ..report import printable as _printable

    return _printable(text, limit=limit)


def _one_line(text):
    return " ".join(str(text).split())


def _error(message):
    print(f"{PROG}: error: {printable(_one_line(message), limit=None)}", file=sys.stderr, flush=True)


def _os_message(exc):
    if getattr(exc, "filename", None) and getattr(exc, "strerror", None):
        return f"{exc.filename}: {exc.strerror}"
    return str(exc) or type(exc).__name__

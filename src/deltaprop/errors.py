"""The exceptions deltaprop raises.

Every error a user can cause is a :class:`DeltapropError`. Most are also a
built-in ``ValueError`` or ``TypeError`` so that code written against NumPy or
scikit-learn conventions catches them as it expects. Messages name the
argument and the value received, e.g. ``batch_size must be a positive
integer, got 0``.
"""

__all__ = [
    "DeltapropError",
    "InvalidArgumentError",
    "InvalidTypeError",
    "DataError",
    "ModelFileError",
    "DivergenceError",
    "UnknownNameError",
    "SaveError",
    "TrainingInterrupted",
    "DeltapropWarning",
]


class DeltapropError(Exception):
    """Base class of every error deltaprop raises on purpose."""


class InvalidArgumentError(DeltapropError, ValueError):
    """An argument has the right type but a value that cannot be used."""


class InvalidTypeError(DeltapropError, TypeError):
    """An argument has a type that cannot be used."""


class UnknownNameError(InvalidArgumentError, KeyError):
    """A name (activation, loss, optimizer, metric, ...) is not registered.

    The message lists the registered names.
    """

    def __str__(self):  # KeyError would quote the message; show it as written
        return str(self.args[0]) if self.args else ""


class DataError(DeltapropError, ValueError):
    """Input data (arrays or files) is malformed: NaN, ragged rows, bad cells."""


class ModelFileError(DeltapropError, ValueError):
    """A model file or checkpoint is unreadable, corrupt or inconsistent."""


class SaveError(DeltapropError, OSError):
    """A file could not be written (full disk, read-only folder, ...); the old file is intact."""


class DivergenceError(DeltapropError, FloatingPointError):
    """Training produced a non-finite loss or gradient."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C (SIGINT) or SIGTERM, after the step in progress.

    A ``KeyboardInterrupt``, so code that catches Ctrl-C keeps working.

    Attributes
    ----------
    signum : signal.Signals
        ``signal.SIGINT`` or ``signal.SIGTERM``.
    epoch : int or None
        The epoch it stopped in, counted from 1.
    batch : int or None
        The batches of that epoch done, counted from 1 (the last one done).
    checkpoint : str or None
        The checkpoint written on the way out (None: none was written);
        ``fit(..., resume_from=checkpoint)`` continues the run exactly.
    """

    def __init__(self, message, signum=None, epoch=None, batch=None, checkpoint=None):
        super().__init__(message)
        self.signum = signum
        self.epoch = epoch
        self.batch = batch
        self.checkpoint = checkpoint


class DeltapropWarning(UserWarning):
    """Something deltaprop worked around, that the user should know (e.g. a corrupt checkpoint skipped)."""



def describe(value, limit=80):
    """``repr`` of a value, shortened for an error message."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text

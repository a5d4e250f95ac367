"""The class users hold: a feedforward network that trains itself.

:class:`Network` is :class:`deltaprop.network.FeedForward` (the math) with the
training loop's two entry points as methods, composed here, above the loop,
the way Keras composes ``Model(Trainer, Layer)``: the math below knows no
loop, and the loop (:mod:`deltaprop.training`) knows no network class.
"""

from . import training
from .network import FeedForward

__all__ = ["Network"]


class Network(FeedForward):
    __doc__ = FeedForward.__doc__ + """
    ``net.fit(X, y, ...)`` is :func:`deltaprop.fit` and ``net.evaluate(X, y,
    ...)`` is :func:`deltaprop.evaluate`, with this network as the first
    argument.
    """

    def fit(self, X, y, **kwargs):
        """Train the network; see :func:`deltaprop.training.fit` for the arguments.

        Returns
        -------
        History
        """
        return training.fit(self, X, y, **kwargs)

    def evaluate(self, X, y, **kwargs):
        """Loss and metrics on ``(X, y)``, weights untouched; see :func:`deltaprop.training.evaluate`."""
        return training.evaluate(self, X, y, **kwargs)

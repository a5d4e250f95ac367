"""Weight initialisation schemes.

An initializer is a callable ``init(shape, rng, dtype)`` returning a new
array of ``shape = (n_out, n_in)``, drawn from ``rng`` (a
``numpy.random.Generator``, the run's only source of randomness). Biases start
at zero. ``fan_in = n_in`` and ``fan_out = n_out``.

====================  =========================================================
``glorot_uniform``    U(-r, r), r = sqrt(6 / (fan_in + fan_out))   (Glorot and Bengio)
``glorot_normal``     N(0, 2 / (fan_in + fan_out))
``he_uniform``        U(-r, r), r = sqrt(6 / fan_in)               (He et al.)
``he_normal``         N(0, 2 / fan_in)
``lecun_normal``      N(0, 1 / fan_in)
``lecun_uniform``     U(-r, r), r = sqrt(3 / fan_in)
``fan_in_uniform``    U(-r, r), r = 1 / sqrt(fan_in)               (PyTorch's ``nn.Linear`` default)
``zeros``             0 (a network of zeros cannot break symmetry: for tests)
====================  =========================================================

The default for a layer depends on its activation (:func:`default_for`): He
for the ReLU family, Glorot otherwise, as Keras and PyTorch users expect.
A residual network (``FeedForward.from_sizes(residual=True)``) defaults to
``fan_in_uniform``, as the tabular ResNet's reference implementation does
(its blocks add onto one stream, whose variance He's gain of 2 inflates;
``benchmarks/results/resnet.md`` measures the difference).
"""

import math

import numpy as np

from .errors import InvalidTypeError, describe
from .registry import Registry

__all__ = ["Initializer", "get", "register", "default_for", "REGISTRY"]


class Initializer:
    """A named scheme: ``kind`` is "uniform", "normal" or "zeros"; variance ``gain / fan``.

    ``fan`` is ``fan_in`` (``mode="fan_in"``) or the mean of ``fan_in`` and
    ``fan_out`` (``mode="fan_avg"``, Glorot). Plain data, so a network that
    holds one can be copied.
    """

    def __init__(self, name, kind, gain=1.0, mode="fan_in"):
        self.name = name
        self.kind = kind
        self.gain = gain
        self.mode = mode

    def variance(self, fan_in, fan_out):
        fan = fan_in if self.mode == "fan_in" else 0.5 * (fan_in + fan_out)
        return self.gain / fan

    def __call__(self, shape, rng, dtype=np.float32):
        fan_out, fan_in = shape
        if self.kind == "zeros":
            return np.zeros(shape, dtype=dtype)
        var = self.variance(fan_in, fan_out)
        if self.kind == "uniform":
            limit = math.sqrt(3.0 * var)  # U(-r, r) has variance r²/3
            w = rng.uniform(-limit, limit, size=shape)
        else:
            w = rng.normal(0.0, math.sqrt(var), size=shape)
        return w.astype(dtype)

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        return f"initializer {self.name!r}"


REGISTRY = {
    "glorot_uniform": Initializer("glorot_uniform", "uniform", 1.0, "fan_avg"),  # 2 / (fan_in + fan_out)
    "glorot_normal": Initializer("glorot_normal", "normal", 1.0, "fan_avg"),
    "he_uniform": Initializer("he_uniform", "uniform", 2.0),  # 2 / fan_in
    "he_normal": Initializer("he_normal", "normal", 2.0),
    "lecun_uniform": Initializer("lecun_uniform", "uniform", 1.0),  # 1 / fan_in
    "lecun_normal": Initializer("lecun_normal", "normal", 1.0),
    "fan_in_uniform": Initializer("fan_in_uniform", "uniform", 1.0 / 3.0),  # 1 / (3 fan_in): r = 1/sqrt(fan_in)
    "zeros": Initializer("zeros", "zeros", 0.0),
}
_ALIASES = {"xavier_uniform": "glorot_uniform", "xavier_normal": "glorot_normal",
            "kaiming_uniform": "he_uniform", "kaiming_normal": "he_normal"}
_RELU_FAMILY = {"relu", "leaky_relu", "elu", "gelu"}


def default_for(activation_name):
    """``he_uniform`` for the ReLU family, ``glorot_uniform`` for everything else."""
    return REGISTRY["he_uniform" if activation_name in _RELU_FAMILY else "glorot_uniform"]


_REGISTRY = Registry("initializer", REGISTRY, _ALIASES)


def register(name, init):
    """Register a callable ``init(shape, rng, dtype)`` under ``name``."""
    return _REGISTRY.register(name, init)


def get(spec):
    """Resolve an initializer from a name, a config dict or a callable ``init(shape, rng, dtype)``."""
    if isinstance(spec, (str, dict)):
        return _REGISTRY.lookup(_REGISTRY.split(spec)[0])  # the entries are the schemes themselves
    if callable(spec) and not isinstance(spec, type):
        return spec
    raise InvalidTypeError(f"initializer must be a name or a callable(shape, rng, dtype), got {describe(spec)}")

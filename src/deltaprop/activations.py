"""Activation functions σ and their derivatives.

Every activation is a small object with one fixed interface:

``forward(z, out)``
    Writes ``a = σ(z)`` into ``out`` (an array of ``z``'s shape and dtype)
    and returns it. ``z`` is never modified.
``backward(z, a, grad, out)``
    Writes ``grad ⊙ σ'(z)`` into ``out`` and returns it: the product of the
    gradient with respect to the activation's output, ``grad = ∂L/∂a``, and
    the Jacobian of σ. ``out`` may be the same array as ``grad``. For an
    elementwise σ this is ``grad * derivative(z, a)``; for softmax, which is
    not elementwise, it is the Jacobian-vector product.
``derivative(z, a)``
    ``σ'(z)`` elementwise, given both ``z`` and ``a = σ(z)`` so each
    activation can use whichever is cheaper (e.g. ``σ' = a (1 - a)`` for
    the sigmoid). Softmax has no elementwise derivative and raises.
``get_config()``
    ``{"name": ..., **hyperparameters}``, enough to rebuild it with
    :func:`get`.

All arrays have shape ``(n_samples, n_units)``. Every function is written so
that pre-activations up to ``±1e4`` (float32 and float64) give finite values
and no NumPy warnings.

Register your own with :func:`register`; :func:`get` resolves a name, a config
dict, an instance or ``None`` (identity).
"""

import math

import numpy as np

from .checks import check_number
from .errors import InvalidArgumentError
from .registry import Registry

__all__ = [
    "Activation",
    "Identity",
    "Sigmoid",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "ELU",
    "GELU",
    "Softplus",
    "Softmax",
    "get",
    "register",
    "REGISTRY",
]


class Activation:
    """Base class: an elementwise activation defines ``forward`` and ``derivative``."""

    name = "activation"
    #: True when σ is applied to each element on its own (softmax is not).
    elementwise = True

    def forward(self, z, out):
        raise NotImplementedError

    def derivative(self, z, a):
        raise NotImplementedError

    def backward(self, z, a, grad, out):
        """``out = grad ⊙ σ'(z)``; ``out`` may be ``grad``."""
        return np.multiply(grad, self.derivative(z, a), out=out)

    def __call__(self, z):
        z = np.asarray(z)
        return self.forward(z, np.empty_like(z))

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        params = {k: v for k, v in self.get_config().items() if k != "name"}
        args = ", ".join(f"{k}={v!r}" for k, v in params.items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(repr(self))


class Identity(Activation):
    r"""σ(z) = z, σ'(z) = 1. The output of regression networks."""

    name = "identity"

    def forward(self, z, out):
        if out is not z:
            np.copyto(out, z)
        return out

    def derivative(self, z, a):
        return np.ones_like(z)

    def backward(self, z, a, grad, out):
        if out is not grad:
            np.copyto(out, grad)
        return out


class Sigmoid(Activation):
    r"""σ(z) = 1 / (1 + e^{-z}), σ'(z) = σ(z) (1 - σ(z)).

    Notes
    -----
    Computed as ``e^{min(z,0)} / (1 + e^{-|z|})`` so that no exponential
    overflows for large ``|z|``.
    """

    name = "sigmoid"

    def forward(self, z, out):
        e = np.exp(-np.abs(z))  # in (0, 1]: never overflows
        np.add(e, 1.0, out=out)
        np.divide(np.where(z >= 0, 1.0, e).astype(z.dtype, copy=False), out, out=out)
        return out

    def derivative(self, z, a):
        return a * (1.0 - a)


class Tanh(Activation):
    r"""σ(z) = tanh z, σ'(z) = 1 - tanh² z."""

    name = "tanh"

    def forward(self, z, out):
        return np.tanh(z, out=out)

    def derivative(self, z, a):
        return 1.0 - a * a


class ReLU(Activation):
    r"""σ(z) = max(z, 0), σ'(z) = [z > 0] (0 at the kink)."""

    name = "relu"

    def forward(self, z, out):
        return np.maximum(z, 0, out=out)

    def derivative(self, z, a):
        return (z > 0).astype(z.dtype)

    def backward(self, z, a, grad, out):
        # Multiplying by a boolean mask keeps this one pass over the arrays.
        return np.multiply(grad, z > 0, out=out)


class LeakyReLU(Activation):
    r"""σ(z) = z for z > 0, α z otherwise; σ'(z) = 1 or α."""

    name = "leaky_relu"

    def __init__(self, alpha=0.01):
        self.alpha = check_number(alpha, "alpha", low=0.0)

    def forward(self, z, out):
        np.multiply(z, self.alpha, out=out)
        return np.maximum(z, out, out=out) if self.alpha <= 1 else np.minimum(z, out, out=out)

    def derivative(self, z, a):
        return np.where(z > 0, 1.0, self.alpha).astype(z.dtype)

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha}


class ELU(Activation):
    r"""σ(z) = z for z > 0, α (e^z - 1) otherwise; σ'(z) = 1 or σ(z) + α."""

    name = "elu"

    def __init__(self, alpha=1.0):
        self.alpha = check_number(alpha, "alpha", low=0.0)

    def forward(self, z, out):
        neg = np.expm1(np.minimum(z, 0))  # exp of a non-positive number: no overflow
        neg *= self.alpha
        np.copyto(out, np.where(z > 0, z, neg))
        return out

    def derivative(self, z, a):
        return np.where(z > 0, 1.0, a + self.alpha).astype(z.dtype)

    def get_config(self):
        return {"name": self.name, "alpha": self.alpha}


_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


class GELU(Activation):
    r"""Gaussian error linear unit, tanh form (Hendrycks and Gimpel).

    .. math::
        σ(z) = ½ z (1 + \tanh u),\quad u = \sqrt{2/π}\,(z + 0.044715 z^3)

        σ'(z) = ½ (1 + \tanh u) + ½ z (1 - \tanh^2 u)\,\sqrt{2/π}\,(1 + 3·0.044715 z^2)

    This is PyTorch's ``GELU(approximate="tanh")`` and Keras's
    ``gelu(approximate=True)``; it differs from the erf form by under 1e-3.
    """

    name = "gelu"

    def _tanh_u(self, z):
        # Clip z before cubing: tanh saturates long before |z| = 1e3, and the
        # cube of 1e4 would overflow float32 in the derivative's z^2 terms.
        zc = np.clip(z, -50.0, 50.0)
        return np.tanh(_GELU_C * (zc + _GELU_K * zc * zc * zc)), zc

    def forward(self, z, out):
        t, _ = self._tanh_u(z)
        t += 1.0
        t *= 0.5
        return np.multiply(z, t, out=out)

    def derivative(self, z, a):
        t, zc = self._tanh_u(z)
        return (
            0.5 * (1.0 + t) + 0.5 * zc * (1.0 - t * t) * _GELU_C * (1.0 + 3.0 * _GELU_K * zc * zc)
        ).astype(z.dtype, copy=False)


class Softplus(Activation):
    r"""σ(z) = log(1 + e^z), σ'(z) = 1 / (1 + e^{-z}) (the sigmoid).

    Computed as ``max(z, 0) + log1p(e^{-|z|})``: no overflow.
    """

    name = "softplus"

    def forward(self, z, out):
        np.log1p(np.exp(-np.abs(z)), out=out)
        out += np.maximum(z, 0)
        return out

    def derivative(self, z, a):
        return Sigmoid()(z)


class Softmax(Activation):
    r"""σ(z)_i = e^{z_i} / Σ_j e^{z_j}, over each row.

    Not elementwise: its Jacobian is ``J = diag(a) - a aᵀ``, so the backward
    pass is the Jacobian-vector product (per row)

    .. math::
        δ = a ⊙ (g - (g · a)),\quad g = ∂L/∂a.

    With categorical cross-entropy the network never calls this: the fused
    output delta ``a - y`` is exact and cheaper.
    """

    name = "softmax"
    elementwise = False

    def forward(self, z, out):
        np.subtract(z, _row_max(z), out=out)  # largest exponent is 0
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True)
        return out

    def derivative(self, z, a):
        raise InvalidArgumentError(
            "softmax has no elementwise derivative; use backward(z, a, grad, out), "
            "which applies its Jacobian"
        )

    def backward(self, z, a, grad, out):
        dot = np.einsum("ij,ij->i", grad, a)[:, None]
        np.subtract(grad, dot, out=out)
        out *= a
        return out


def _row_max(z):
    """``z.max(axis=1, keepdims=True)``, faster for a few columns and many rows.

    NumPy reduces a short contiguous axis one row at a time; for a softmax
    over 10 classes that cost more than the exponentials. A transposed copy
    turns it into an elementwise maximum of whole rows. A maximum is exact,
    so both ways give the same numbers (NaN included).
    """
    m, n = z.shape
    if n > 64 or m < 64:
        return z.max(axis=1, keepdims=True)
    zt = np.empty((n, m), dtype=z.dtype)
    np.copyto(zt, z.T)
    return zt.max(axis=0)[:, None]


REGISTRY = {
    cls.name: cls
    for cls in (Identity, Sigmoid, Tanh, ReLU, LeakyReLU, ELU, GELU, Softplus, Softmax)
}
_ALIASES = {"linear": "identity", "logistic": "sigmoid", "leakyrelu": "leaky_relu", "none": "identity"}


_REGISTRY = Registry("activation", REGISTRY, _ALIASES, base=Activation, methods=("forward", "backward"),
                     hint=" (or register your own with deltaprop.activations.register)")


def register(name, cls):
    """Register an activation class (or factory) under ``name`` for :func:`get`."""
    return _REGISTRY.register(name, cls)


def get(spec):
    """Resolve an activation from a name, a config dict, an instance or ``None``.

    Parameters
    ----------
    spec : str, dict, Activation or None
        ``"relu"``, ``{"name": "leaky_relu", "alpha": 0.1}``, an object with
        ``forward``/``backward`` methods, or ``None`` for the identity.

    Returns
    -------
    Activation
    """
    return Identity() if spec is None else _REGISTRY.resolve(spec)


"""Losses L(a, y) and their gradients with respect to the network's output.

Every loss is a small object with one fixed interface, over a batch of ``m``
samples with ``n_out`` outputs each (``a`` and ``y`` of shape ``(m, n_out)``):

``prepare_targets(y, n_out, dtype)``
    Turns targets in the loss's natural form (class indices, 0/1 labels, real
    values, 1-D or 2-D) into a ``(m, n_out)`` array of ``dtype``; rejects
    targets the loss cannot use with a message that names the value received.
``value(a, y)``
    The per-sample loss ``ℓ_i``, shape ``(m,)``. Losses that are means over
    outputs (squared, absolute, Huber, binary cross-entropy) average over the
    ``n_out`` columns here; categorical losses sum over classes.
``gradient(a, y)``
    ``∂ℓ_i/∂a_i``, shape ``(m, n_out)``: the gradient of each sample's own
    loss. The network turns per-sample quantities into the batch loss with
    weights ``s_i`` that sum to one (``1/m``, or ``w_i / Σw`` with sample
    weights), so the batch loss is the mean ``L = Σ s_i ℓ_i`` and a learning
    rate means the same at every batch size.
``fused_delta(a, y, out)``
    For the loss's canonical output activation only
    (``canonical_activation``): ``∂ℓ_i/∂z_i`` computed directly. With the
    canonical link the Jacobian of the activation cancels the loss's
    denominators, leaving ``a - y`` up to a constant; computing it this way is
    exact and cannot overflow, where the chain rule through ``1/a`` could.

Register your own loss with :func:`register`; :func:`get` resolves a name,
a config dict or an instance.
"""

import numpy as np

from . import activations as _activations
from .checks import check_number
from .errors import DataError, InvalidArgumentError, InvalidTypeError
from .registry import Registry

__all__ = [
    "Loss",
    "MeanSquaredError",
    "MeanAbsoluteError",
    "Huber",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Hinge",
    "get",
    "register",
    "REGISTRY",
    "default_loss_for",
    "default_activation_for",
    "is_canonical_pair",
    "choose_output",
]


class Loss:
    """Base class. Subclasses define ``value`` and ``gradient``."""

    name = "loss"
    #: Name of the output activation whose fused delta ``fused_delta`` gives.
    canonical_activation = None
    #: "classification" or "regression": what the targets are.
    task = "regression"
    #: A single output above this is class 1 (probabilities: 0.5; margins: 0).
    decision_threshold = 0.5

    def prepare_targets(self, y, n_out, dtype):
        return _real_targets(y, n_out, dtype, self.name)

    def value(self, a, y):
        raise NotImplementedError

    def gradient(self, a, y):
        raise NotImplementedError

    def fused_delta(self, a, y, out):
        raise NotImplementedError(f"{self.name} has no fused output delta")

    def get_config(self):
        return {"name": self.name}

    def __call__(self, a, y):
        """The mean loss over the batch (a float)."""
        return float(np.mean(self.value(np.asarray(a), np.asarray(y))))

    def __repr__(self):
        params = {k: v for k, v in self.get_config().items() if k != "name"}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in params.items())})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self):
        return hash(repr(self))


class MeanSquaredError(Loss):
    r"""ℓ = (1/n_out) Σ_j (a_j - y_j)², ∂ℓ/∂a = 2 (a - y) / n_out.

    The mean over outputs and samples, like ``torch.nn.MSELoss`` and Keras's
    ``mean_squared_error`` (no factor ½). Canonical with the identity output,
    where the output delta is ``2 (a - y) / n_out``.
    """

    name = "mean_squared_error"
    canonical_activation = "identity"

    def value(self, a, y):
        r = a - y
        return np.einsum("ij,ij->i", r, r) / a.shape[1]

    def gradient(self, a, y):
        return (a - y) * (2.0 / a.shape[1])

    def fused_delta(self, a, y, out):
        np.subtract(a, y, out=out)
        out *= 2.0 / a.shape[1]
        return out


class MeanAbsoluteError(Loss):
    r"""ℓ = (1/n_out) Σ_j |a_j - y_j|, ∂ℓ/∂a = sign(a - y) / n_out (0 at a = y)."""

    name = "mean_absolute_error"

    def value(self, a, y):
        return np.abs(a - y).mean(axis=1)

    def gradient(self, a, y):
        return np.sign(a - y) * (1.0 / a.shape[1])


class Huber(Loss):
    r"""Squared near zero, absolute far out, with threshold δ (``delta``).

    .. math::
        h(r) = ½ r^2 \text{ if } |r| ≤ δ \text{ else } δ (|r| - ½ δ),\quad r = a - y

        ℓ = (1/n_out) Σ_j h(r_j),\quad ∂ℓ/∂a = \mathrm{clip}(r, -δ, δ) / n_out

    As ``torch.nn.HuberLoss`` and Keras's ``Huber``.
    """

    name = "huber"

    def __init__(self, delta=1.0):
        self.delta = check_number(delta, "huber delta", low=0.0, low_open=True)

    def value(self, a, y):
        r = np.abs(a - y)
        d = self.delta
        return np.where(r <= d, 0.5 * r * r, d * (r - 0.5 * d)).mean(axis=1)

    def gradient(self, a, y):
        return np.clip(a - y, -self.delta, self.delta) * (1.0 / a.shape[1])

    def get_config(self):
        return {"name": self.name, "delta": self.delta}


class BinaryCrossentropy(Loss):
    r"""ℓ = -(1/n_out) Σ_j [y_j log a_j + (1 - y_j) log(1 - a_j)].

    Targets are 0/1 labels (or probabilities in [0, 1]); one output for a
    binary problem, several for multi-label. Canonical with the sigmoid,
    where ``∂ℓ/∂z = (a - y) / n_out``.

    Notes
    -----
    Logarithms are taken of ``max(a, tiny)`` and ``max(1 - a, tiny)``, so the
    loss is finite at predicted probabilities of exactly 0 and 1; the
    non-fused gradient clips its denominators at the dtype's epsilon.
    """

    name = "binary_crossentropy"
    canonical_activation = "sigmoid"
    task = "classification"

    def prepare_targets(self, y, n_out, dtype):
        t = _real_targets(y, n_out, dtype, self.name)
        if t.size and (t.min() < 0 or t.max() > 1):
            bad = t[(t < 0) | (t > 1)][0]
            raise DataError(
                f"binary_crossentropy needs targets in [0, 1] (labels 0/1), got a target of {bad.item()!r}"
            )
        return t

    def value(self, a, y):
        tiny = np.finfo(a.dtype).tiny
        log_a = np.log(np.maximum(a, tiny))
        log_1a = np.log(np.maximum(1.0 - a, tiny))
        return -(y * log_a + (1.0 - y) * log_1a).mean(axis=1)

    def gradient(self, a, y):
        eps = np.finfo(a.dtype).eps
        return ((1.0 - y) / np.maximum(1.0 - a, eps) - y / np.maximum(a, eps)) * (1.0 / a.shape[1])

    def fused_delta(self, a, y, out):
        np.subtract(a, y, out=out)
        if a.shape[1] != 1:
            out *= 1.0 / a.shape[1]
        return out


class CategoricalCrossentropy(Loss):
    r"""ℓ = -Σ_j y_j log a_j (a sum over classes, a mean over samples).

    Targets are class indices ``0..n_out-1`` or rows of class probabilities
    (one-hot). Canonical with softmax, where ``∂ℓ/∂z = a Σ_j y_j - y``, which
    is ``a - y`` for one-hot rows.

    Notes
    -----
    The logarithm is taken of ``max(a, tiny)``: finite at probabilities 0.
    """

    name = "categorical_crossentropy"
    canonical_activation = "softmax"
    task = "classification"

    def prepare_targets(self, y, n_out, dtype):
        return _class_targets(y, n_out, dtype, self.name)

    def value(self, a, y):
        tiny = np.finfo(a.dtype).tiny
        return -np.einsum("ij,ij->i", y, np.log(np.maximum(a, tiny)))

    def gradient(self, a, y):
        eps = np.finfo(a.dtype).eps
        return -y / np.maximum(a, eps)

    def fused_delta(self, a, y, out):
        # Canonical link (softmax with cross-entropy): δ = a Σy - y, i.e. a - y
        # for one-hot rows. Exact, and it never divides by a probability.
        np.multiply(a, y.sum(axis=1, keepdims=True), out=out)
        out -= y
        return out


class Hinge(Loss):
    r"""Multi-class hinge (Crammer and Singer), and the binary hinge for one output.

    With ``n_out > 1`` and true class ``t``:

    .. math::
        ℓ = \max(0,\ 1 + \max_{j ≠ t} a_j - a_t)

    whose gradient is ``+1`` at the strongest wrong class and ``-1`` at ``t``
    when the margin is violated (Keras's ``categorical_hinge``). With one
    output and labels ``y ∈ {0, 1}``, ``s = 2y - 1`` and
    ``ℓ = max(0, 1 - s a)``, ``∂ℓ/∂a = -s`` when ``s a < 1``.
    """

    name = "hinge"
    task = "classification"
    decision_threshold = 0.0  # a margin: its sign is the class

    def prepare_targets(self, y, n_out, dtype):
        if n_out == 1:
            t = _real_targets(y, n_out, dtype, self.name)
            if t.size and not np.all((t == 0) | (t == 1)):
                bad = t[(t != 0) & (t != 1)][0]
                raise DataError(f"hinge with one output needs 0/1 labels, got {bad.item()!r}")
            return t
        return _class_targets(y, n_out, dtype, self.name)

    def value(self, a, y):
        if a.shape[1] == 1:
            s = 2.0 * y - 1.0
            return np.maximum(0.0, 1.0 - s * a)[:, 0]
        true = np.einsum("ij,ij->i", a, y)
        wrong = np.where(y > 0, -np.inf, a).max(axis=1)
        return np.maximum(0.0, 1.0 + wrong - true)

    def gradient(self, a, y):
        if a.shape[1] == 1:
            s = 2.0 * y - 1.0
            return np.where(s * a < 1.0, -s, 0.0).astype(a.dtype)
        masked = np.where(y > 0, -np.inf, a)
        j = masked.argmax(axis=1)
        rows = np.arange(a.shape[0])
        active = (1.0 + masked[rows, j] - np.einsum("ij,ij->i", a, y)) > 0
        g = np.zeros_like(a)
        g[rows, j] = active
        g -= y * active[:, None]
        return g


REGISTRY = {
    cls.name: cls
    for cls in (MeanSquaredError, MeanAbsoluteError, Huber, BinaryCrossentropy, CategoricalCrossentropy, Hinge)
}
_ALIASES = {
    "mse": "mean_squared_error",
    "squared_error": "mean_squared_error",
    "mae": "mean_absolute_error",
    "absolute_error": "mean_absolute_error",
    "bce": "binary_crossentropy",
    "binary_cross_entropy": "binary_crossentropy",
    "log_loss": "binary_crossentropy",
    "cce": "categorical_crossentropy",
    "crossentropy": "categorical_crossentropy",
    "cross_entropy": "categorical_crossentropy",
    "categorical_cross_entropy": "categorical_crossentropy",
    "multiclass_hinge": "hinge",
    "categorical_hinge": "hinge",
}


_REGISTRY = Registry("loss", REGISTRY, _ALIASES, base=Loss, methods=("value", "gradient"),
                     hint=f" (aliases: {', '.join(sorted(_ALIASES))})")


def register(name, cls):
    """Register a loss class (or factory) under ``name`` for :func:`get`."""
    return _REGISTRY.register(name, cls)


def get(spec):
    """Resolve a loss from a name, a config dict or an instance.

    Parameters
    ----------
    spec : str, dict or Loss
        ``"categorical_crossentropy"``, ``{"name": "huber", "delta": 2.0}``, or
        an object with ``value`` and ``gradient`` methods.
    """
    return _REGISTRY.resolve(spec)


# ------------------------------------------------------- matching pairs
# The one table of which output activation goes with which loss is the
# losses' own ``canonical_activation``; everything below reads it.


def is_canonical_pair(activation, loss):
    """Whether ``loss``'s fused output delta applies to ``activation`` (its canonical activation)."""
    name = getattr(activation, "name", None)
    return name is not None and name == getattr(loss, "canonical_activation", None)


def default_loss_for(activation):
    """The registered loss whose canonical activation is ``activation`` (a name or object); mean squared error if none.

    ``"softmax"`` gives ``"categorical_crossentropy"``, ``"sigmoid"``
    ``"binary_crossentropy"``, ``"identity"`` and every other activation
    ``"mean_squared_error"``.
    """
    name = activation if isinstance(activation, str) or activation is None else getattr(activation, "name", None)
    for key, cls in REGISTRY.items():
        if name is not None and getattr(cls, "canonical_activation", None) == name:
            return key
    return "mean_squared_error"


def default_activation_for(loss):
    """The output activation that matches ``loss`` (a name, config or object): its canonical one, else identity."""
    return getattr(get(loss), "canonical_activation", None) or "identity"


def choose_output(task, n_classes=None, n_targets=1, output_activation=None, loss=None):
    """The output layer for a task: activation, loss, number of outputs and how targets reach the loss.

    Inferred when not given: softmax with categorical cross-entropy for more
    than two classes, sigmoid with binary cross-entropy (one output) for two,
    identity with mean squared error for regression. Given only a loss, the
    output is its canonical activation (identity if it has none); given only
    an output activation, the loss is its matching one
    (:func:`default_loss_for`).

    Parameters
    ----------
    task : {"classification", "regression"}
    n_classes : int, optional
        For classification.
    n_targets : int, default 1
        For regression.
    output_activation, loss : str, optional
        Names (aliases allowed).

    Returns
    -------
    output_activation, loss : str
        Registered names.
    n_out : int
    target_encoding : {"index", "onehot", "real"}
        How the targets reach the loss: class indices (or 0/1 for one
        output), one-hot rows (a regression loss on classes), real values.

    Raises
    ------
    InvalidArgumentError
        A classification loss for regression, or a softmax of one output.
    """
    if loss is not None:
        loss = canonical_name(loss)
        get(loss)  # an unknown name fails here, with the list of names
    if output_activation is not None:
        output_activation = _activations.get(output_activation).name
    if task == "regression":
        if output_activation is None:
            output_activation = default_activation_for(loss) if loss is not None else "identity"
        if loss is None:
            loss = default_loss_for(output_activation)
        if get(loss).task == "classification":
            raise InvalidArgumentError(f"the loss {loss} is for classification, but the task is regression")
        return output_activation, loss, n_targets, "real"
    if output_activation is None and loss is None:
        loss = "binary_crossentropy" if n_classes == 2 else "categorical_crossentropy"
        output_activation = default_activation_for(loss)
    elif output_activation is None:
        output_activation = default_activation_for(loss)
    elif loss is None:
        loss = default_loss_for(output_activation)
    if n_classes == 2 and output_activation != "softmax" and loss != "categorical_crossentropy":
        n_out = 1
    else:
        n_out = n_classes
    if output_activation == "softmax" and n_out == 1:
        raise InvalidArgumentError("a softmax output needs at least two outputs")
    encoding = "index" if get(loss).task == "classification" else "onehot"
    return output_activation, loss, n_out, encoding


def canonical_name(name):
    """The registry key for a loss name or alias (``"mse"`` -> ``"mean_squared_error"``)."""
    return _REGISTRY.key(name)


def _numeric(y, name):
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        hint = ""
        if y.dtype.kind in "OUS":
            hint = (" (for class labels, encode them first: classes, y = deltaprop.data.encode_labels(y); "
                    "the scikit-learn estimators and the command line do this for you)")
        raise InvalidTypeError(f"{name} needs numeric targets, got an array of dtype {y.dtype}{hint}")
    return y


def _real_targets(y, n_out, dtype, name):
    y = _numeric(y, name)
    if y.ndim == 1 and n_out == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_out:
        raise DataError(
            f"{name} needs targets of shape (n_samples, {n_out}) for a network with {n_out} outputs, "
            f"got shape {y.shape}"
        )
    y = np.asarray(y, dtype=dtype)
    if not np.all(np.isfinite(y)):
        raise DataError(f"targets contain NaN or infinity ({int(np.count_nonzero(~np.isfinite(y)))} values)")
    return y


def _class_targets(y, n_out, dtype, name):
    """Class indices (1-D) become one-hot rows; 2-D rows of probabilities pass through."""
    y = _numeric(y, name)
    if y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1 and n_out > 1):
        idx = y.reshape(-1)
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(idx)) or np.any(idx != np.round(idx)):
                bad = idx[~np.isfinite(idx) | (idx != np.round(idx))][0]
                raise DataError(f"{name} needs integer class indices, got {bad.item()!r}")
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= n_out):
            bad = idx[(idx < 0) | (idx >= n_out)][0]
            raise DataError(
                f"{name}: class index {int(bad)} is out of range for a network with {n_out} outputs "
                f"(valid: 0..{n_out - 1})"
            )
        one_hot = np.zeros((idx.size, n_out), dtype=dtype)
        one_hot[np.arange(idx.size), idx] = 1
        return one_hot
    t = _real_targets(y, n_out, dtype, name)
    if t.size and t.min() < 0:
        raise DataError(f"{name} needs non-negative class probabilities, got {t.min().item()!r}")
    return t

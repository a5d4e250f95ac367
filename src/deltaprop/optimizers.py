"""Optimizers over the flat parameter array.

An optimizer sees only arrays: ``params`` and ``grads`` are 1-D and aligned
(the network's flat store), and its state (velocities, moments) is arrays of
the same layout. One step is a handful of vectorised passes over the whole
network, whatever its depth.

Interface::

    opt.init(params, decay_mask=None)    # allocate state (called by fit)
    opt.step(params, grads, learning_rate=None)   # update params in place

``step`` may overwrite ``grads`` (clipping, weight decay): the next backward
pass overwrites them anyway. ``learning_rate`` overrides the base rate for
this step (a schedule's value). ``decay_mask`` (1 for weights, 0 for biases)
restricts weight decay to the weights, as scikit-learn's ``alpha`` and
Keras's kernel regularisers do.

Common options:

``weight_decay`` (λ)
    L2 weight decay coupled to the gradient, ``g ← g + λ p`` (the gradient of
    ``½ λ ‖W‖²``), applied before the update rule; AdamW instead decouples it.
``clipnorm``
    Clip by global norm: when ``‖g‖₂ > clipnorm``, ``g ← g · clipnorm / ‖g‖₂``
    (over the whole flat gradient, after weight decay).

Adam's first moments of weights whose gradient is exactly zero decay
geometrically into subnormal floats, which are very slow on x86 and cannot be
switched off in NumPy; every optimizer with decaying state flushes values
below the dtype's smallest normal number to zero every ``flush_every`` steps
(a change far below rounding of the update itself).

Speed: :class:`Adam` and :class:`AdamW` run their update as one fused pass
over memory when numba is installed (the ``fast`` extra, see
:mod:`deltaprop._kernels`), the flush included; the fused pass computes the
same operations in the same order as the NumPy passes written below, so the
two give bit-identical parameters and state.
"""

import math

import numpy as np

from . import _kernels
from .checks import check_number
from .errors import InvalidArgumentError, InvalidTypeError, describe
from .registry import Registry

__all__ = ["Optimizer", "SGD", "AdaGrad", "RMSProp", "Adam", "AdamW", "get", "register", "REGISTRY"]


class Optimizer:
    """Base class: state arrays in ``self.state``, step count in ``self.t``."""

    name = "optimizer"
    _state_names = ()
    #: True when weight decay is applied to the parameters by the update rule
    #: itself (AdamW) rather than added to the gradient.
    decoupled_decay = False
    #: flush subnormal state values every this many steps (see module notes)
    flush_every = 16

    def __init__(self, learning_rate, weight_decay=0.0, clipnorm=None):
        self.learning_rate = check_number(learning_rate, "learning_rate", low=0.0, low_open=True)
        self.weight_decay = check_number(weight_decay, "weight_decay", low=0.0)
        self.clipnorm = check_number(clipnorm, "clipnorm", low=0.0, low_open=True, allow_none=True)
        self.t = 0
        self.state = {}
        self._decay_mask = None
        self._tmp = None
        self._below = None

    def configure(self, learning_rate=None, weight_decay=None, clipnorm=None):
        """Change the common hyperparameters (those given), validated as the constructor does."""
        if learning_rate is not None:
            self.learning_rate = check_number(learning_rate, "learning_rate", low=0.0, low_open=True)
        if weight_decay is not None:
            self.weight_decay = check_number(weight_decay, "weight_decay", low=0.0)
        if clipnorm is not None:
            self.clipnorm = check_number(clipnorm, "clipnorm", low=0.0, low_open=True)
        return self

    def prepare(self, params, decay_mask=None):
        """Get ready to update ``params`` (called by ``fit``).

        State left by an earlier run on the same parameters is kept (a warm
        start continues with its moments and step count); otherwise, or when
        its arrays do not fit ``params``, the state starts afresh
        (:meth:`init`).
        """
        fits = (self._tmp is not None and len(self.state) == len(self._state_names)
                and all(v.shape == params.shape for v in self.state.values()))
        if not fits:
            self.init(params, decay_mask=decay_mask)

    def init(self, params, decay_mask=None):
        """Allocate zeroed state aligned with ``params`` and reset the step count."""
        self.t = 0
        self.state = {k: np.zeros_like(params) for k in self._state_names}
        self._decay_mask = decay_mask
        self._tmp = np.empty_like(params)

    def _ensure(self, params):
        if self._tmp is None or self._tmp.shape != params.shape or self._tmp.dtype != params.dtype:
            state, t = self.state, self.t
            self.init(params, self._decay_mask)
            # Keep state loaded from a checkpoint (and its step count, which
            # Adam's bias correction depends on) when it matches the parameters.
            if all(k in state and state[k].shape == params.shape for k in self._state_names):
                for k in self._state_names:
                    self.state[k] = state[k].astype(params.dtype, copy=False)
                self.t = t

    def _prepare_grads(self, params, grads):
        """Weight decay (coupled), then clipping by global norm, in place."""
        if self.weight_decay and not self.decoupled_decay:
            decay = params if self._decay_mask is None else params * self._decay_mask
            grads += self.weight_decay * decay
        if self.clipnorm is not None:
            norm = math.sqrt(float(np.dot(grads, grads)))
            if norm > self.clipnorm:
                grads *= self.clipnorm / norm
        return grads

    def step(self, params, grads, learning_rate=None):
        """Update ``params`` in place from ``grads``; returns nothing."""
        self._ensure(params)
        # A Python float, so every pass below runs in the parameters' dtype
        # (a NumPy float64 scalar would promote float32 passes to float64).
        lr = float(self.learning_rate if learning_rate is None else learning_rate)
        self._prepare_grads(params, grads)
        self.t += 1
        # A fused update flushes in its own pass and clears this flag.
        self._flush_due = bool(self.flush_every) and self.t % self.flush_every == 0
        self._update(params, grads, lr)
        if self._flush_due:
            self._flush_subnormals(params.dtype)

    _flush_due = False

    def _flush_subnormals(self, dtype):
        """State values below the smallest normal number of ``dtype`` → +0, without temporaries."""
        tiny = np.finfo(dtype).tiny
        tmp = self._tmp
        if self._below is None or self._below.shape != tmp.shape:
            self._below = np.empty(tmp.shape, dtype=bool)
        for v in self.state.values():
            if v.shape != tmp.shape or v.dtype != tmp.dtype:
                v[np.abs(v) < tiny] = 0
                continue
            np.abs(v, out=tmp)
            np.less(tmp, tiny, out=self._below)
            np.copyto(v, 0, where=self._below)

    def _update(self, params, grads, lr):
        raise NotImplementedError

    def _rms_step(self, p, g, acc, lr):
        """``p ← p - η g / (sqrt(acc) + ε)`` in place, through the scratch buffer (AdaGrad, RMSProp)."""
        tmp = self._tmp
        np.sqrt(acc, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= lr
        p -= tmp

    # ------------------------------------------------------------- state I/O
    def get_config(self):
        cfg = {"name": self.name, "learning_rate": self.learning_rate, "weight_decay": self.weight_decay}
        if self.clipnorm is not None:
            cfg["clipnorm"] = self.clipnorm
        cfg.update(self._hyper())
        return cfg

    def _hyper(self):
        return {}

    def state_dict(self):
        """``{"t": step count, "state": {name: array}}``, for checkpoints."""
        return {"t": self.t, "state": {k: v.copy() for k, v in self.state.items()}}

    def load_state_dict(self, state):
        """Restore :meth:`state_dict` output (the arrays are copied)."""
        missing = set(self._state_names) - set(state["state"])
        if missing:
            raise InvalidArgumentError(f"optimizer state for {self.name} lacks {sorted(missing)}")
        self.t = int(state["t"])
        self.state = {k: np.array(state["state"][k], copy=True) for k in self._state_names}
        self._tmp = None

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    r"""Stochastic gradient descent, with optional momentum and Nesterov momentum.

    Plain (``momentum=0``), exactly the seed's rule:

    .. math:: p ← p - η g

    With momentum μ (PyTorch's formulation; ``v`` starts at 0):

    .. math::
        v ← μ v + g,\quad p ← p - η v

    Nesterov: ``v ← μ v + g``, ``p ← p - η (g + μ v)``.
    """

    name = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0, clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm)
        self.momentum = check_number(momentum, "momentum", low=0.0, high=1.0, high_open=True)
        if nesterov and self.momentum == 0:
            raise InvalidArgumentError("Nesterov momentum needs momentum > 0, got momentum=0")
        self.nesterov = bool(nesterov)
        self._state_names = ("velocity",) if self.momentum else ()

    def _update(self, p, g, lr):
        if not self.momentum:
            np.multiply(g, lr, out=self._tmp)
            p -= self._tmp
            return
        v = self.state["velocity"]
        v *= self.momentum
        v += g
        if self.nesterov:
            np.multiply(v, self.momentum, out=self._tmp)
            self._tmp += g
            self._tmp *= lr
        else:
            np.multiply(v, lr, out=self._tmp)
        p -= self._tmp

    def _hyper(self):
        return {"momentum": self.momentum, "nesterov": self.nesterov}


class AdaGrad(Optimizer):
    r"""AdaGrad (Duchi et al.): per-parameter rates from the sum of squared gradients.

    .. math::
        G ← G + g^2,\quad p ← p - η\, g / (\sqrt{G} + ε)

    ``G`` starts at ``initial_accumulator_value`` (0 by default, as PyTorch).
    """

    name = "adagrad"
    _state_names = ("sum_sq",)

    def __init__(self, learning_rate=0.01, eps=1e-10, initial_accumulator_value=0.0, weight_decay=0.0, clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm)
        self.eps = check_number(eps, "eps", low=0.0, low_open=True)
        self.initial_accumulator_value = check_number(initial_accumulator_value, "initial_accumulator_value", low=0.0)

    flush_every = 0  # the accumulator only grows

    def init(self, params, decay_mask=None):
        super().init(params, decay_mask)
        self.state["sum_sq"][...] = self.initial_accumulator_value

    def _update(self, p, g, lr):
        G, tmp = self.state["sum_sq"], self._tmp
        np.multiply(g, g, out=tmp)
        G += tmp
        self._rms_step(p, g, G, lr)

    def _hyper(self):
        return {"eps": self.eps, "initial_accumulator_value": self.initial_accumulator_value}


class RMSProp(Optimizer):
    r"""RMSProp (Hinton): a moving average of squared gradients scales the step.

    .. math::
        v ← ρ v + (1 - ρ) g^2,\quad p ← p - η\, g / (\sqrt{v} + ε)

    ``v`` starts at 0 (PyTorch's ``RMSprop`` with ``alpha=ρ``).
    """

    name = "rmsprop"
    _state_names = ("sq_avg",)

    def __init__(self, learning_rate=0.001, rho=0.9, eps=1e-8, weight_decay=0.0, clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm)
        self.rho = check_number(rho, "rho", low=0.0, high=1.0, high_open=True)
        self.eps = check_number(eps, "eps", low=0.0, low_open=True)

    def _update(self, p, g, lr):
        v, tmp = self.state["sq_avg"], self._tmp
        v *= self.rho
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - self.rho
        v += tmp
        self._rms_step(p, g, v, lr)

    def _hyper(self):
        return {"rho": self.rho, "eps": self.eps}


class Adam(Optimizer):
    r"""Adam (Kingma and Ba, Algorithm 1), with ``t`` counting steps from 1.

    .. math::
        m ← β_1 m + (1 - β_1) g,\quad v ← β_2 v + (1 - β_2) g^2

        \hat m = m / (1 - β_1^t),\quad \hat v = v / (1 - β_2^t)

        p ← p - η\, \hat m / (\sqrt{\hat v} + ε)

    ε is added to the bias-corrected ``sqrt(v̂)`` as in the paper and
    PyTorch (not Keras's "epsilon hat"). ``weight_decay`` here is L2 coupled
    to the gradient; for the decoupled form use :class:`AdamW`.
    """

    name = "adam"
    _state_names = ("m", "v")

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, clipnorm=None):
        super().__init__(learning_rate, weight_decay, clipnorm)
        self.beta1 = check_number(beta1, "beta1", low=0.0, high=1.0, high_open=True)
        self.beta2 = check_number(beta2, "beta2", low=0.0, high=1.0, high_open=True)
        self.eps = check_number(eps, "eps", low=0.0, low_open=True)

    def _update(self, p, g, lr):
        m, v, tmp = self.state["m"], self.state["v"], self._tmp
        b1, b2, t = self.beta1, self.beta2, self.t
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        kernels = _kernels.peek() if _fusable(p, g, m, v) else None
        if kernels is not None:
            # One pass computing exactly the passes below (and the flush).
            kernels.adam(p, g, m, v, b1, 1.0 - b1, b2, 1.0 - b2, 1.0 / math.sqrt(bc2), self.eps, lr / bc1,
                         self._flush_due)
            self._flush_due = False
            return
        m *= b1
        np.multiply(g, 1.0 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        # tmp = sqrt(v̂) + ε, then the step η m̂ / tmp
        np.sqrt(v, out=tmp)
        tmp *= 1.0 / math.sqrt(bc2)
        tmp += self.eps
        np.divide(m, tmp, out=tmp)
        tmp *= lr / bc1
        p -= tmp

    def _hyper(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov and Hutter).

    .. math::
        p ← p - η λ p \quad (\text{weights only, before the Adam step})

    then the :class:`Adam` update with the undecayed gradient. Default
    ``weight_decay=0.01`` as in PyTorch.
    """

    name = "adamw"
    decoupled_decay = True

    def __init__(self, learning_rate=0.001, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, clipnorm=None):
        super().__init__(learning_rate, beta1, beta2, eps, weight_decay, clipnorm)

    def _update(self, p, g, lr):
        if self.weight_decay:
            shrink = lr * self.weight_decay
            if self._decay_mask is None:
                p *= 1.0 - shrink
            else:
                np.multiply(p, self._decay_mask, out=self._tmp)
                self._tmp *= shrink
                p -= self._tmp
        super()._update(p, g, lr)


def _fusable(p, g, *state):
    """Whether the fused kernels apply: 1-D C-contiguous float32/float64 arrays of one dtype and size."""
    if type(g) is not np.ndarray or p.ndim != 1 or p.dtype.char not in "fd":
        return False
    dtype, shape = p.dtype, p.shape
    if g.dtype != dtype or g.shape != shape or not g.flags.c_contiguous:
        return False
    for a in (p, *state):
        flags = a.flags
        if a.dtype != dtype or a.shape != shape or not (flags.c_contiguous and flags.writeable):
            return False
    return True


REGISTRY = {cls.name: cls for cls in (SGD, AdaGrad, RMSProp, Adam, AdamW)}


_REGISTRY = Registry("optimizer", REGISTRY, base=Optimizer, methods=("step",))


def register(name, cls):
    """Register an optimizer class under ``name`` for :func:`get`."""
    return _REGISTRY.register(name, cls)


def get(spec, **overrides):
    """Resolve an optimizer from a name, a config dict or an instance.

    ``overrides`` (e.g. ``learning_rate=0.1``) are passed to the constructor
    when building from a name or dict; an instance is returned as it is.
    """
    if _REGISTRY.is_object(spec):
        return spec
    if not isinstance(spec, (str, dict)):
        raise InvalidTypeError(f"optimizer must be a name, a config dict or an Optimizer, got {describe(spec)}")
    name, params = _REGISTRY.split(spec)
    params.update({k: v for k, v in overrides.items() if v is not None})
    return _REGISTRY.build(name, params)

"""Learning-rate schedules.

A schedule is a callable ``schedule(step, base_lr) -> lr``, where ``step`` is
the number of optimizer steps already taken (0 for the first step) and
``base_lr`` the optimizer's ``learning_rate``. Steps, not epochs, are the unit
(as in Keras); :func:`deltaprop.training.fit` tells a schedule created with
``per_epoch=True`` how many steps make an epoch, so its sizes can be given
in epochs.

=================  ============================================================
``constant``       η_t = η
``step``           η_t = η γ^⌊t / step_size⌋
``exponential``    η_t = η γ^(t / decay_steps)
``cosine``         η_t = η_min + ½ (η - η_min) (1 + cos(π min(t, T) / T))
``warmup``         η_t = η (t + 1) / warmup_steps for t < warmup_steps, then
                   the wrapped schedule at t - warmup_steps
=================  ============================================================
"""

import math

from .errors import InvalidArgumentError, InvalidTypeError, describe
from .registry import Registry

__all__ = ["Schedule", "Constant", "StepDecay", "ExponentialDecay", "CosineDecay", "LinearWarmup", "get", "REGISTRY"]


def _positive(value, name, integer=False):
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        kind = "a positive integer" if integer else "a positive number"
        raise InvalidTypeError(f"{name} must be {kind}, got {describe(value)}")
    if not (value > 0 and math.isfinite(value)):
        raise InvalidArgumentError(f"{name} must be positive, got {value!r}")
    return value


class Schedule:
    """Base class. ``per_epoch=True`` means sizes are in epochs (scaled by ``steps_per_epoch``)."""

    name = "schedule"

    def __init__(self, per_epoch=False):
        self.per_epoch = bool(per_epoch)
        self.steps_per_epoch = 1

    def _scale(self, n):
        return n * self.steps_per_epoch if self.per_epoch else n

    def __call__(self, step, base_lr):
        raise NotImplementedError

    def get_config(self):
        cfg = {"name": self.name, **self._hyper()}
        if self.per_epoch:
            cfg["per_epoch"] = True
        return cfg

    def _hyper(self):
        return {}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items() if k != 'name')})"


class Constant(Schedule):
    """η_t = η."""

    name = "constant"

    def __call__(self, step, base_lr):
        return base_lr


class StepDecay(Schedule):
    """η_t = η γ^⌊t / step_size⌋ (PyTorch's ``StepLR``)."""

    name = "step"

    def __init__(self, step_size, gamma=0.1, per_epoch=False):
        super().__init__(per_epoch)
        self.step_size = _positive(step_size, "step_size", integer=True)
        self.gamma = _positive(gamma, "gamma")

    def __call__(self, step, base_lr):
        return base_lr * self.gamma ** (step // self._scale(self.step_size))

    def _hyper(self):
        return {"step_size": self.step_size, "gamma": self.gamma}


class ExponentialDecay(Schedule):
    """η_t = η γ^(t / decay_steps) (Keras's ``ExponentialDecay``, not staircase)."""

    name = "exponential"

    def __init__(self, gamma=0.96, decay_steps=1, per_epoch=False):
        super().__init__(per_epoch)
        self.gamma = _positive(gamma, "gamma")
        self.decay_steps = _positive(decay_steps, "decay_steps", integer=True)

    def __call__(self, step, base_lr):
        return base_lr * self.gamma ** (step / self._scale(self.decay_steps))

    def _hyper(self):
        return {"gamma": self.gamma, "decay_steps": self.decay_steps}


class CosineDecay(Schedule):
    """η_t = η_min + ½ (η - η_min)(1 + cos(π min(t, T)/T)), T = ``total_steps``.

    ``total_steps=None`` lets :func:`~deltaprop.training.fit` set T to the
    whole run (epochs × steps per epoch).
    """

    name = "cosine"

    def __init__(self, total_steps=None, min_lr=0.0, per_epoch=False):
        super().__init__(per_epoch)
        self.total_steps = None if total_steps is None else _positive(total_steps, "total_steps", integer=True)
        if isinstance(min_lr, bool) or not isinstance(min_lr, (int, float)) or min_lr < 0:
            raise InvalidArgumentError(f"min_lr must be a number >= 0, got {describe(min_lr)}")
        self.min_lr = float(min_lr)
        self.run_steps = None  # set by fit when total_steps is None

    def __call__(self, step, base_lr):
        total = self._scale(self.total_steps) if self.total_steps is not None else self.run_steps
        if not total:
            return base_lr
        frac = min(step, total) / total
        return self.min_lr + 0.5 * (base_lr - self.min_lr) * (1.0 + math.cos(math.pi * frac))

    def _hyper(self):
        return {"total_steps": self.total_steps, "min_lr": self.min_lr}


class LinearWarmup(Schedule):
    """Linear warm-up over ``warmup_steps``, then ``after`` (a schedule; default constant)."""

    name = "warmup"

    def __init__(self, warmup_steps, after=None, per_epoch=False):
        super().__init__(per_epoch)
        self.warmup_steps = _positive(warmup_steps, "warmup_steps", integer=True)
        self.after = Constant() if after is None else get(after)

    @property
    def steps_per_epoch(self):
        return self._spe

    @steps_per_epoch.setter
    def steps_per_epoch(self, value):
        self._spe = value
        if hasattr(self, "after"):
            self.after.steps_per_epoch = value

    def __call__(self, step, base_lr):
        warm = self._scale(self.warmup_steps)
        if step < warm:
            return base_lr * (step + 1) / warm
        return self.after(step - warm, base_lr)

    def _hyper(self):
        return {"warmup_steps": self.warmup_steps, "after": self.after.get_config()}


REGISTRY = {cls.name: cls for cls in (Constant, StepDecay, ExponentialDecay, CosineDecay, LinearWarmup)}


_REGISTRY = Registry("schedule", REGISTRY, base=Schedule)


def get(spec):
    """Resolve a schedule from ``None`` (constant), a name, a config dict or a callable ``(step, base_lr)``."""
    if spec is None:
        return Constant()
    if isinstance(spec, Schedule) or (callable(spec) and not isinstance(spec, (str, dict, type))):
        return spec
    if isinstance(spec, (str, dict)):
        return _REGISTRY.build(*_REGISTRY.split(spec))
    raise InvalidTypeError(f"schedule must be a name, a config dict or a callable, got {describe(spec)}")

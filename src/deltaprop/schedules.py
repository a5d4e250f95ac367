"""Learning-rate schedules.

A schedule is a callable ``schedule(step, base_lr) -> lr``, where ``step`` is
the number of optimizer steps already taken (0 for the first step) and
``base_lr`` the optimizer's ``learning_rate``. Steps, not epochs, are the unit
(as in Keras). Before the first step, :func:`deltaprop.training.fit` calls
``schedule.bind(steps_per_epoch, run_steps)``: a schedule created with
``per_epoch=True`` then takes its sizes in epochs, and one sized by the run
(``cosine`` without ``total_steps``) learns the run's length.

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

from .checks import check_number, check_positive_int
from .errors import InvalidTypeError, describe
from .registry import Registry

__all__ = ["Schedule", "Constant", "StepDecay", "ExponentialDecay", "CosineDecay", "LinearWarmup", "get", "register",
           "REGISTRY"]


def _positive(value, name):
    return check_number(value, name, low=0.0, low_open=True)


class Schedule:
    """Base class. ``per_epoch=True`` means sizes are in epochs (scaled by ``steps_per_epoch``)."""

    name = "schedule"

    def __init__(self, per_epoch=False):
        self.per_epoch = bool(per_epoch)
        self.steps_per_epoch = 1

    def _scale(self, n):
        return n * self.steps_per_epoch if self.per_epoch else n

    def bind(self, steps_per_epoch, run_steps=None):
        """Learn the run's shape before its first step: steps per epoch, and the run's length in steps (or None)."""
        self.steps_per_epoch = steps_per_epoch

    @property
    def sized_by_run(self):
        """Whether the schedule's length comes from the run (:meth:`bind`'s ``run_steps``)."""
        return False

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
        self.step_size = check_positive_int(step_size, "step_size")
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
        self.decay_steps = check_positive_int(decay_steps, "decay_steps")

    def __call__(self, step, base_lr):
        return base_lr * self.gamma ** (step / self._scale(self.decay_steps))

    def _hyper(self):
        return {"gamma": self.gamma, "decay_steps": self.decay_steps}


class CosineDecay(Schedule):
    """η_t = η_min + ½ (η - η_min)(1 + cos(π min(t, T)/T)), T = ``total_steps``.

    ``total_steps=None`` makes T the whole run (epochs × steps per epoch),
    which :meth:`bind` tells it.
    """

    name = "cosine"

    def __init__(self, total_steps=None, min_lr=0.0, per_epoch=False):
        super().__init__(per_epoch)
        self.total_steps = None if total_steps is None else check_positive_int(total_steps, "total_steps")
        self.min_lr = check_number(min_lr, "min_lr", low=0.0)
        self.run_steps = None  # the run's length, given by bind when total_steps is None

    def bind(self, steps_per_epoch, run_steps=None):
        super().bind(steps_per_epoch, run_steps)
        if self.total_steps is None:
            self.run_steps = run_steps

    @property
    def sized_by_run(self):
        return self.total_steps is None

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
        self.warmup_steps = check_positive_int(warmup_steps, "warmup_steps")
        self.after = Constant() if after is None else get(after)

    @property
    def steps_per_epoch(self):
        return self._spe

    @steps_per_epoch.setter
    def steps_per_epoch(self, value):
        self._spe = value
        if hasattr(self, "after"):
            self.after.steps_per_epoch = value

    def bind(self, steps_per_epoch, run_steps=None):
        self.steps_per_epoch = steps_per_epoch
        # the wrapped schedule runs for what the warm-up leaves of the run
        if hasattr(self.after, "bind"):
            rest = None if run_steps is None else max(run_steps - self._scale(self.warmup_steps), 0)
            self.after.bind(steps_per_epoch, rest)

    @property
    def sized_by_run(self):
        return getattr(self.after, "sized_by_run", False)

    def __call__(self, step, base_lr):
        warm = self._scale(self.warmup_steps)
        if step < warm:
            return base_lr * (step + 1) / warm
        return self.after(step - warm, base_lr)

    def _hyper(self):
        return {"warmup_steps": self.warmup_steps, "after": self.after.get_config()}


REGISTRY = {cls.name: cls for cls in (Constant, StepDecay, ExponentialDecay, CosineDecay, LinearWarmup)}


_REGISTRY = Registry("schedule", REGISTRY, base=Schedule)


def register(name, cls):
    """Register a schedule class (or factory) under ``name`` for :func:`get`."""
    return _REGISTRY.register(name, cls)


def get(spec):
    """Resolve a schedule from ``None`` (constant), a name, a config dict or a callable ``(step, base_lr)``."""
    if spec is None:
        return Constant()
    if isinstance(spec, Schedule) or (callable(spec) and not isinstance(spec, (str, dict, type))):
        return spec
    if isinstance(spec, (str, dict)):
        return _REGISTRY.build(*_REGISTRY.split(spec))
    raise InvalidTypeError(f"schedule must be a name, a config dict or a callable, got {describe(spec)}")

"""Tests of deltaprop.schedules: values at chosen steps against the docstring formulas, and use in fit."""

import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import schedules
from deltaprop.errors import InvalidArgumentError, InvalidTypeError, UnknownNameError

BASE = 0.2


def test_constant():
    s = dp.Constant()
    assert [s(t, BASE) for t in (0, 1, 10, 10_000)] == [BASE] * 4


@pytest.mark.parametrize("t, k", [(0, 0), (2, 0), (3, 1), (5, 1), (6, 2), (9, 3), (31, 10)])
def test_step_decay(t, k):
    # η_t = η γ^⌊t / step_size⌋
    s = dp.StepDecay(step_size=3, gamma=0.5)
    assert s(t, BASE) == pytest.approx(BASE * 0.5**k, rel=1e-15)


@pytest.mark.parametrize("t", [0, 1, 3, 4, 10, 101])
def test_exponential_decay(t):
    # η_t = η γ^(t / decay_steps), not staircase
    s = dp.ExponentialDecay(gamma=0.9, decay_steps=4)
    assert s(t, BASE) == pytest.approx(BASE * 0.9 ** (t / 4), rel=1e-14)


def test_exponential_is_not_staircase():
    s = dp.ExponentialDecay(gamma=0.5, decay_steps=10)
    assert s(5, 1.0) == pytest.approx(math.sqrt(0.5), rel=1e-15)


@pytest.mark.parametrize("t, expected", [
    (0, BASE), (5, 0.01 + 0.5 * (BASE - 0.01)), (10, 0.01), (15, 0.01),
    (2, 0.01 + 0.5 * (BASE - 0.01) * (1 + math.cos(math.pi * 0.2))),
])
def test_cosine_decay(t, expected):
    # η_t = η_min + ½ (η - η_min)(1 + cos(π min(t, T)/T))
    s = dp.CosineDecay(total_steps=10, min_lr=0.01)
    assert s(t, BASE) == pytest.approx(expected, rel=1e-14)


def test_cosine_without_total_steps_is_constant_until_fit_sets_it():
    s = dp.CosineDecay()
    assert s(5, BASE) == BASE
    s.run_steps = 20
    assert s(10, BASE) == pytest.approx(BASE / 2, rel=1e-14)


@pytest.mark.parametrize("t, expected", [
    (0, BASE * 1 / 4), (1, BASE * 2 / 4), (3, BASE),   # η (t + 1) / warmup_steps
    (4, BASE), (5, BASE), (6, BASE * 0.5), (8, BASE * 0.25),  # then StepDecay(2, 0.5) at t - 4
])
def test_linear_warmup_then_step_decay(t, expected):
    s = dp.LinearWarmup(warmup_steps=4, after=dp.StepDecay(step_size=2, gamma=0.5))
    assert s(t, BASE) == pytest.approx(expected, rel=1e-15)


def test_linear_warmup_default_after_is_constant():
    s = dp.LinearWarmup(warmup_steps=2)
    assert [s(t, 1.0) for t in range(4)] == [0.5, 1.0, 1.0, 1.0]


def test_per_epoch_sizes_are_scaled_by_steps_per_epoch():
    s = dp.StepDecay(step_size=2, gamma=0.1, per_epoch=True)
    s.steps_per_epoch = 5  # fit sets this
    assert s(9, 1.0) == 1.0 and s(10, 1.0) == pytest.approx(0.1)
    w = dp.LinearWarmup(warmup_steps=1, after=dp.ExponentialDecay(gamma=0.5, decay_steps=1, per_epoch=True),
                        per_epoch=True)
    w.steps_per_epoch = 4
    assert w(0, 1.0) == 0.25 and w(3, 1.0) == 1.0
    assert w(4 + 4, 1.0) == pytest.approx(0.5)  # the wrapped schedule sees steps_per_epoch too


def record_learning_rates(schedule, epochs=3, n=10, batch_size=4):
    net = dp.Network([dp.Dense(2, 1)], dtype="float64", seed=0)
    X = np.random.default_rng(0).normal(size=(n, 2))
    y = X.sum(axis=1)
    seen = []
    probe = dp.LambdaCallback(on_batch_end=lambda run, batch, logs: seen.append(run.lr))
    history = net.fit(X, y, epochs=epochs, batch_size=batch_size, optimizer=dp.SGD(learning_rate=BASE),
                      schedule=schedule, callbacks=[probe], verbose=0)
    return seen, history


def test_fit_feeds_the_schedule_one_value_per_step():
    seen, history = record_learning_rates(dp.StepDecay(step_size=4, gamma=0.5))
    assert len(seen) == 9  # 3 epochs of ⌈10/4⌉ = 3 batches
    assert seen == pytest.approx([BASE * 0.5 ** (t // 4) for t in range(9)], rel=1e-15)
    assert history["lr"] == pytest.approx([seen[2], seen[5], seen[8]], rel=1e-15)


def test_fit_scales_per_epoch_schedules():
    seen, _ = record_learning_rates(dp.StepDecay(step_size=1, gamma=0.5, per_epoch=True))
    assert seen == pytest.approx([BASE] * 3 + [BASE / 2] * 3 + [BASE / 4] * 3, rel=1e-15)


def test_fit_sets_cosine_length_to_the_run():
    seen, _ = record_learning_rates(dp.CosineDecay())
    T = 9
    assert seen == pytest.approx([0.5 * BASE * (1 + math.cos(math.pi * t / T)) for t in range(9)], rel=1e-12)


def test_schedule_changes_the_sgd_update():
    # the step actually taken is the schedule's learning rate times the gradient
    net = dp.Network([dp.Dense(2, 1)], dtype="float64", seed=0)
    X = np.array([[1.0, 2.0], [0.5, -1.0]])
    y = np.array([1.0, 0.0])
    p0 = net.params.copy()
    net.loss_and_gradients(X, y)
    g = net.grads.copy()
    net.params[...] = p0
    net.fit(X, y, epochs=1, batch_size=2, shuffle=False, optimizer=dp.SGD(learning_rate=BASE),
            schedule=dp.LinearWarmup(warmup_steps=4), verbose=0)
    np.testing.assert_array_equal(net.params, p0 - (BASE * 1 / 4) * g)


def test_get():
    assert isinstance(schedules.get(None), dp.Constant)
    assert isinstance(schedules.get("constant"), dp.Constant)
    s = schedules.get({"name": "step", "step_size": 5, "gamma": 0.3})
    assert isinstance(s, dp.StepDecay) and s.step_size == 5 and s.gamma == 0.3

    def halve(step, base_lr):
        return base_lr / 2

    assert schedules.get(halve) is halve
    with pytest.raises(UnknownNameError) as info:
        schedules.get("poly")
    for name in ("constant", "step", "exponential", "cosine", "warmup"):
        assert name in str(info.value)
    with pytest.raises(InvalidTypeError):
        schedules.get(3)


@pytest.mark.parametrize("s", [
    dp.Constant(), dp.StepDecay(3, 0.5), dp.ExponentialDecay(0.9, 4, per_epoch=True), dp.CosineDecay(10, 0.01),
    dp.LinearWarmup(4, after=dp.CosineDecay(6)),
])
def test_config_round_trip(s):
    again = schedules.get(s.get_config())
    assert type(again) is type(s) and again.get_config() == s.get_config()
    assert [again(t, BASE) for t in range(12)] == [s(t, BASE) for t in range(12)]


@pytest.mark.parametrize("build, error, match", [
    (lambda: dp.StepDecay(step_size=0), InvalidArgumentError, "step_size must be a positive integer, got 0"),
    (lambda: dp.StepDecay(step_size=1.5), InvalidTypeError, "step_size.*1.5"),
    (lambda: dp.StepDecay(step_size=2, gamma=-1.0), InvalidArgumentError, "gamma.*-1.0"),
    (lambda: dp.ExponentialDecay(decay_steps=0), InvalidArgumentError, "decay_steps.*0"),
    (lambda: dp.CosineDecay(total_steps=-3), InvalidArgumentError, "-3"),
    (lambda: dp.CosineDecay(min_lr=-0.1), InvalidArgumentError, "-0.1"),
    (lambda: dp.LinearWarmup(warmup_steps=0), InvalidArgumentError, "warmup_steps.*0"),
])
def test_invalid_arguments_name_the_value(build, error, match):
    with pytest.raises(error, match=match):
        build()

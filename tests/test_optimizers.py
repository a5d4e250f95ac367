"""Tests of deltaprop.optimizers: two steps by hand from each docstring, convergence on a bowl, state, validation.

The hand computations use plain Python floats on a 3-element parameter
vector, following the update rule written in each class's docstring.
"""

import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import optimizers
from deltaprop.errors import InvalidArgumentError, InvalidTypeError, UnknownNameError

P0 = [1.0, -2.0, 0.5]
G1 = [0.3, -0.1, 2.0]
G2 = [-0.2, 0.4, 1.0]
RTOL = 1e-13  # a different order of the same float operations: a few ulps


def two_steps(opt, decay_mask=None, dtype=np.float64):
    """Run two steps of ``opt`` from P0 with gradients G1 then G2; returns the parameters after each."""
    p = np.array(P0, dtype=dtype)
    opt.init(p, decay_mask=None if decay_mask is None else np.array(decay_mask, dtype=dtype))
    opt.step(p, np.array(G1, dtype=dtype))
    p1 = p.copy()
    opt.step(p, np.array(G2, dtype=dtype))
    return p1, p.copy()


def check(opt, expected1, expected2, decay_mask=None):
    p1, p2 = two_steps(opt, decay_mask)
    np.testing.assert_allclose(p1, expected1, rtol=RTOL, atol=1e-15)
    np.testing.assert_allclose(p2, expected2, rtol=RTOL, atol=1e-15)
    assert opt.t == 2


# ---------------------------------------------------------------------------
# First two steps by hand
# ---------------------------------------------------------------------------


def test_sgd_plain_by_hand():
    lr = 0.1
    p1 = [p - lr * g for p, g in zip(P0, G1)]
    p2 = [p - lr * g for p, g in zip(p1, G2)]
    check(dp.SGD(learning_rate=lr), p1, p2)


def test_sgd_plain_is_bitwise_p_minus_lr_g():
    p = np.array(P0)
    opt = dp.SGD(learning_rate=0.37)
    opt.step(p, np.array(G1))  # no init needed
    np.testing.assert_array_equal(p, np.array(P0) - 0.37 * np.array(G1))


def test_sgd_momentum_by_hand():
    lr, mu = 0.1, 0.9
    v1 = list(G1)  # v ← μ·0 + g
    p1 = [p - lr * v for p, v in zip(P0, v1)]
    v2 = [mu * v + g for v, g in zip(v1, G2)]
    p2 = [p - lr * v for p, v in zip(p1, v2)]
    check(dp.SGD(learning_rate=lr, momentum=mu), p1, p2)


def test_sgd_nesterov_by_hand():
    lr, mu = 0.1, 0.9
    v1 = list(G1)
    p1 = [p - lr * (g + mu * v) for p, g, v in zip(P0, G1, v1)]
    v2 = [mu * v + g for v, g in zip(v1, G2)]
    p2 = [p - lr * (g + mu * v) for p, g, v in zip(p1, G2, v2)]
    check(dp.SGD(learning_rate=lr, momentum=mu, nesterov=True), p1, p2)


@pytest.mark.parametrize("initial", [0.0, 0.1])
def test_adagrad_by_hand(initial):
    lr, eps = 0.5, 1e-10
    s1 = [initial + g * g for g in G1]
    p1 = [p - lr * g / (math.sqrt(s) + eps) for p, g, s in zip(P0, G1, s1)]
    s2 = [s + g * g for s, g in zip(s1, G2)]
    p2 = [p - lr * g / (math.sqrt(s) + eps) for p, g, s in zip(p1, G2, s2)]
    check(dp.AdaGrad(learning_rate=lr, initial_accumulator_value=initial), p1, p2)


def test_rmsprop_by_hand():
    lr, rho, eps = 0.01, 0.9, 1e-8
    v1 = [(1 - rho) * g * g for g in G1]
    p1 = [p - lr * g / (math.sqrt(v) + eps) for p, g, v in zip(P0, G1, v1)]
    v2 = [rho * v + (1 - rho) * g * g for v, g in zip(v1, G2)]
    p2 = [p - lr * g / (math.sqrt(v) + eps) for p, g, v in zip(p1, G2, v2)]
    check(dp.RMSProp(learning_rate=lr, rho=rho), p1, p2)


def adam_by_hand(lr, b1, b2, eps, p0, grads, decoupled=0.0, mask=(1, 1, 1)):
    """Kingma and Ba's Algorithm 1 (ε added to sqrt(v̂)); ``decoupled`` is AdamW's λ."""
    p, m, v, out = list(p0), [0.0] * 3, [0.0] * 3, []
    for t, g in enumerate(grads, start=1):
        p = [pi - lr * decoupled * pi * k for pi, k in zip(p, mask)]
        m = [b1 * mi + (1 - b1) * gi for mi, gi in zip(m, g)]
        v = [b2 * vi + (1 - b2) * gi * gi for vi, gi in zip(v, g)]
        m_hat = [mi / (1 - b1**t) for mi in m]
        v_hat = [vi / (1 - b2**t) for vi in v]
        p = [pi - lr * mh / (math.sqrt(vh) + eps) for pi, mh, vh in zip(p, m_hat, v_hat)]
        out.append(p)
    return out


def test_adam_by_hand():
    p1, p2 = adam_by_hand(0.01, 0.9, 0.999, 1e-8, P0, [G1, G2])
    check(dp.Adam(learning_rate=0.01), p1, p2)
    # the first step of Adam moves every coordinate by about lr, whatever the gradient's scale
    np.testing.assert_allclose(np.abs(np.subtract(p1, P0)), 0.01, rtol=1e-6)


def test_adam_other_hyperparameters_by_hand():
    p1, p2 = adam_by_hand(0.3, 0.5, 0.9, 1e-3, P0, [G1, G2])
    check(dp.Adam(learning_rate=0.3, beta1=0.5, beta2=0.9, eps=1e-3), p1, p2)


def test_adamw_by_hand():
    p1, p2 = adam_by_hand(0.01, 0.9, 0.999, 1e-8, P0, [G1, G2], decoupled=0.1)
    check(dp.AdamW(learning_rate=0.01, weight_decay=0.1), p1, p2)


def test_adamw_decay_mask_by_hand():
    mask = (1, 1, 0)
    p1, p2 = adam_by_hand(0.01, 0.9, 0.999, 1e-8, P0, [G1, G2], decoupled=0.1, mask=mask)
    check(dp.AdamW(learning_rate=0.01, weight_decay=0.1), p1, p2, decay_mask=mask)


def test_adamw_default_weight_decay():
    assert dp.AdamW().weight_decay == 0.01


def test_sgd_weight_decay_by_hand():
    lr, lam = 0.1, 0.05
    g1 = [g + lam * p for g, p in zip(G1, P0)]  # g ← g + λ p (coupled L2)
    p1 = [p - lr * g for p, g in zip(P0, g1)]
    g2 = [g + lam * p for g, p in zip(G2, p1)]
    p2 = [p - lr * g for p, g in zip(p1, g2)]
    check(dp.SGD(learning_rate=lr, weight_decay=lam), p1, p2)


def test_weight_decay_respects_the_decay_mask():
    lr, lam, mask = 0.1, 0.05, (1, 0, 1)
    g1 = [g + lam * p * k for g, p, k in zip(G1, P0, mask)]
    p1 = [p - lr * g for p, g in zip(P0, g1)]
    g2 = [g + lam * p * k for g, p, k in zip(G2, p1, mask)]
    p2 = [p - lr * g for p, g in zip(p1, g2)]
    check(dp.SGD(learning_rate=lr, weight_decay=lam), p1, p2, decay_mask=mask)


def test_adam_coupled_weight_decay_by_hand():
    lam = 0.2
    g1 = [g + lam * p for g, p in zip(G1, P0)]
    (p1,) = adam_by_hand(0.01, 0.9, 0.999, 1e-8, P0, [g1])
    opt = dp.Adam(learning_rate=0.01, weight_decay=lam)
    got1, _ = two_steps(opt)
    np.testing.assert_allclose(got1, p1, rtol=RTOL)


def test_clipnorm_by_hand():
    lr, mu, c = 0.1, 0.5, 1.5
    norm1 = math.sqrt(sum(g * g for g in G1))  # 2.025 > 1.5: clipped
    norm2 = math.sqrt(sum(g * g for g in G2))  # 1.095 < 1.5: left alone
    assert norm1 > c > norm2
    g1 = [g * c / norm1 for g in G1]
    v1 = g1
    p1 = [p - lr * v for p, v in zip(P0, v1)]
    v2 = [mu * v + g for v, g in zip(v1, G2)]
    p2 = [p - lr * v for p, v in zip(p1, v2)]
    check(dp.SGD(learning_rate=lr, momentum=mu, clipnorm=c), p1, p2)


def test_weight_decay_then_clipnorm_by_hand():
    lr, lam, c = 0.1, 0.5, 1.0
    g1 = [g + lam * p for g, p in zip(G1, P0)]  # decay first ...
    n1 = math.sqrt(sum(g * g for g in g1))
    g1 = [g * min(1.0, c / n1) for g in g1]  # ... then clip the global norm
    p1 = [p - lr * g for p, g in zip(P0, g1)]
    g2 = [g + lam * p for g, p in zip(G2, p1)]
    n2 = math.sqrt(sum(g * g for g in g2))
    g2 = [g * min(1.0, c / n2) for g in g2]
    p2 = [p - lr * g for p, g in zip(p1, g2)]
    check(dp.SGD(learning_rate=lr, weight_decay=lam, clipnorm=c), p1, p2)


def test_learning_rate_override_per_step():
    p = np.array(P0)
    opt = dp.SGD(learning_rate=0.1)
    opt.init(p)
    opt.step(p, np.array(G1), learning_rate=0.01)
    np.testing.assert_allclose(p, [pi - 0.01 * g for pi, g in zip(P0, G1)], rtol=1e-15)
    assert opt.learning_rate == 0.1


# ---------------------------------------------------------------------------
# Convergence on a quadratic bowl f(p) = ½ (p - c)ᵀ A (p - c), A = diag(1, 4, 10)
# ---------------------------------------------------------------------------

A_DIAG = np.array([1.0, 4.0, 10.0])
C = np.array([1.0, -2.0, 3.0])


def descend(opt, steps, decay_mask=None):
    p = np.zeros(3)
    opt.init(p, decay_mask)
    for _ in range(steps):
        opt.step(p, A_DIAG * (p - C))
    return p


@pytest.mark.parametrize("opt, steps, tol", [
    (dp.SGD(learning_rate=0.1), 300, 1e-9),
    (dp.SGD(learning_rate=0.02, momentum=0.9), 500, 1e-8),
    (dp.SGD(learning_rate=0.02, momentum=0.9, nesterov=True), 500, 1e-8),
    (dp.SGD(learning_rate=0.1, clipnorm=0.5), 400, 1e-9),
    (dp.AdaGrad(learning_rate=0.5), 2000, 1e-9),
    (dp.RMSProp(learning_rate=0.01), 2000, 1e-6),
    (dp.Adam(learning_rate=0.05), 2000, 1e-6),
    (dp.AdamW(learning_rate=0.05, weight_decay=0.0), 2000, 1e-6),
], ids=["sgd", "momentum", "nesterov", "clipnorm", "adagrad", "rmsprop", "adam", "adamw-no-decay"])
def test_converges_on_a_quadratic_bowl(opt, steps, tol):
    p = descend(opt, steps)
    assert np.abs(p - C).max() < tol, p


def test_coupled_weight_decay_converges_to_the_regularised_minimum():
    # ∇(f + ½ λ‖p‖²) = A (p - c) + λ p = 0  ⇒  p = A c / (A + λ)
    lam = 0.5
    p = descend(dp.SGD(learning_rate=0.1, weight_decay=lam), 300)
    np.testing.assert_allclose(p, A_DIAG * C / (A_DIAG + lam), rtol=1e-10)


def test_adamw_shrinks_towards_zero():
    p = descend(dp.AdamW(learning_rate=0.05, weight_decay=0.01), 2000)
    assert np.abs(p - C).max() < 0.02
    assert np.all(np.abs(p) < np.abs(C))


# ---------------------------------------------------------------------------
# State, dtype, subnormal flushing
# ---------------------------------------------------------------------------




@pytest.mark.parametrize("make", [
    lambda: dp.SGD(0.05, momentum=0.9, nesterov=True), lambda: dp.AdaGrad(0.1), lambda: dp.RMSProp(0.01),
    lambda: dp.Adam(0.01),
    lambda: dp.AdamW(0.01, weight_decay=0.1),
], ids=["nesterov", "adagrad", "rmsprop", "adam", "adamw"])
def test_state_dict_resume_is_bitwise(make):
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(6, 5))
    p_full = np.linspace(-1, 1, 5)
    full = make()
    full.init(p_full)
    for g in grads:
        full.step(p_full, g.copy())

    p = np.linspace(-1, 1, 5)
    first = make()
    first.init(p)
    for g in grads[:3]:
        first.step(p, g.copy())
    state = first.state_dict()
    second = make()
    second.load_state_dict(state)
    for g in grads[3:]:
        second.step(p, g.copy())
    np.testing.assert_array_equal(p, p_full)


def test_step_count_survives_load_state_dict():
    first = dp.SGD(0.1, momentum=0.9)
    p = np.zeros(3)
    first.init(p)
    for _ in range(3):
        first.step(p, np.ones(3))
    second = dp.SGD(0.1, momentum=0.9)
    second.load_state_dict(first.state_dict())
    assert second.t == 3
    second.step(p, np.ones(3))
    assert second.t == 4


def test_load_state_dict_rejects_missing_state():
    with pytest.raises(InvalidArgumentError, match="'v'"):
        dp.Adam().load_state_dict({"t": 1, "state": {"m": np.zeros(3)}})


@pytest.mark.parametrize("opt", [dp.SGD(0.1), dp.SGD(0.1, momentum=0.9), dp.AdaGrad(0.1), dp.RMSProp(0.01),
                                 dp.Adam(0.01), dp.AdamW(0.01)])
def test_float32_stays_float32(opt):
    p1, p2 = two_steps(opt, dtype=np.float32)
    assert p1.dtype == np.float32 and p2.dtype == np.float32
    for v in opt.state.values():
        assert v.dtype == np.float32
    ref1, ref2 = two_steps(type(opt)(**{k: v for k, v in opt.get_config().items() if k != "name"}))
    np.testing.assert_allclose(p2, ref2, rtol=1e-6)


def test_subnormal_state_is_flushed_every_16_steps():
    p = np.zeros(3)
    opt = dp.Adam(learning_rate=0.01)
    opt.init(p)
    opt.state["m"][...] = 1e-300
    zero = np.zeros(3)
    for _ in range(15):
        opt.step(p, zero.copy())
    assert np.all(opt.state["m"] > 0)  # 1e-300 · 0.9^15 is still a normal number
    opt.state["m"][...] = 1e-310  # subnormal in float64
    opt.step(p, zero.copy())  # the 16th step flushes
    np.testing.assert_array_equal(opt.state["m"], 0.0)


def test_fresh_optimizer_initialises_itself():
    p = np.array(P0)
    opt = dp.Adam(learning_rate=0.01)
    opt.step(p, np.array(G1))
    expected, _ = adam_by_hand(0.01, 0.9, 0.999, 1e-8, P0, [G1, G2])
    np.testing.assert_allclose(p, expected, rtol=RTOL)


# ---------------------------------------------------------------------------
# Validation and registry
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("build, error, match", [
    (lambda: dp.SGD(learning_rate=-1.0), InvalidArgumentError, "learning_rate must be a finite number > 0, got -1.0"),
    (lambda: dp.SGD(learning_rate=0), InvalidArgumentError, "learning_rate must be .*, got 0.0"),
    (lambda: dp.Adam(learning_rate=float("nan")), InvalidArgumentError, "nan"),
    (lambda: dp.SGD(learning_rate="0.1"), InvalidTypeError, "'0.1'"),
    (lambda: dp.SGD(momentum=1.0), InvalidArgumentError, "momentum must be a finite number >= 0 and < 1, got 1.0"),
    (lambda: dp.SGD(momentum=-0.1), InvalidArgumentError, "-0.1"),
    (lambda: dp.SGD(nesterov=True), InvalidArgumentError, "momentum=0"),
    (lambda: dp.Adam(beta1=1.0), InvalidArgumentError, "beta1 must be .*, got 1.0"),
    (lambda: dp.Adam(beta2=1.5), InvalidArgumentError, "beta2 must be .*, got 1.5"),
    (lambda: dp.Adam(eps=0.0), InvalidArgumentError, "eps must be a finite number > 0, got 0.0"),
    (lambda: dp.RMSProp(rho=1.0), InvalidArgumentError, "rho must be .*, got 1.0"),
    (lambda: dp.AdaGrad(initial_accumulator_value=-1), InvalidArgumentError, "-1.0"),
    (lambda: dp.SGD(weight_decay=-0.1), InvalidArgumentError, "weight_decay must be a finite number >= 0, got -0.1"),
    (lambda: dp.SGD(clipnorm=0.0), InvalidArgumentError, "clipnorm must be .*, got 0.0"),
    (lambda: dp.SGD(clipnorm=True), InvalidTypeError, "True"),
])
def test_invalid_hyperparameters_name_the_value(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_get():
    assert isinstance(optimizers.get("adam"), dp.Adam)
    opt = optimizers.get({"name": "sgd", "learning_rate": 0.3, "momentum": 0.5})
    assert isinstance(opt, dp.SGD) and opt.learning_rate == 0.3 and opt.momentum == 0.5
    assert optimizers.get("rmsprop", learning_rate=0.2, weight_decay=None).learning_rate == 0.2
    inst = dp.AdaGrad()
    assert optimizers.get(inst) is inst
    again = optimizers.get(dp.AdamW(learning_rate=0.02, weight_decay=0.3).get_config())
    assert isinstance(again, dp.AdamW) and again.learning_rate == 0.02 and again.weight_decay == 0.3


def test_get_unknown_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        optimizers.get("lbfgs")
    for name in ("sgd", "adagrad", "rmsprop", "adam", "adamw"):
        assert name in str(info.value)
    with pytest.raises(InvalidArgumentError, match="sgd"):
        optimizers.get({"name": "sgd", "betas": 1})
    with pytest.raises(InvalidTypeError):
        optimizers.get(3)

"""Tests of deltaprop.losses: values, gradients, saturation, fused deltas, targets, the registry."""

import math
import warnings

import numpy as np
import pytest

from conftest import LOSSES, one_hot
from deltaprop import activations, losses
from deltaprop.errors import DataError, DeltapropError, InvalidArgumentError, InvalidTypeError, UnknownNameError

DTYPES = [np.float32, np.float64]


def loud():
    """Warnings and floating-point overflow / invalid / divide-by-zero become errors."""
    return np.errstate(over="raise", divide="raise", invalid="raise", under="ignore")


def sample(loss_name, m=6, n_out=3, seed=0):
    """Outputs ``a`` and prepared targets ``Y`` (float64) away from the loss's kinks."""
    rng = np.random.default_rng(seed)
    if loss_name in ("binary_crossentropy",):
        a = rng.uniform(0.05, 0.95, size=(m, n_out))
        Y = rng.integers(0, 2, size=(m, n_out)).astype(float)
    elif loss_name == "categorical_crossentropy":
        a = rng.dirichlet(np.ones(n_out), size=m)
        Y = one_hot(rng.integers(0, n_out, size=m), n_out)
    elif loss_name == "hinge":
        a = rng.normal(0.0, 1.0, size=(m, n_out))
        Y = one_hot(rng.integers(0, n_out, size=m), n_out) if n_out > 1 else rng.integers(0, 2, (m, 1)) * 1.0
    else:
        a = rng.normal(0.0, 1.0, size=(m, n_out))
        r = rng.uniform(0.1, 0.8, size=a.shape) * np.where(rng.random(a.shape) < 0.5, -1, 1)
        r[::2] *= 2.5  # Huber's linear branch too: |r| in [0.25, 2]
        Y = a - r
    return a, Y


def definition(loss_name, a, Y, delta=1.0):
    """Per-sample losses from the textbook definitions, in plain float64 loops."""
    m, k = a.shape
    out = np.empty(m)
    for i in range(m):
        if loss_name == "mean_squared_error":
            out[i] = sum((a[i, j] - Y[i, j]) ** 2 for j in range(k)) / k
        elif loss_name == "mean_absolute_error":
            out[i] = sum(abs(a[i, j] - Y[i, j]) for j in range(k)) / k
        elif loss_name == "huber":
            rs = [abs(a[i, j] - Y[i, j]) for j in range(k)]
            out[i] = sum(0.5 * r * r if r <= delta else delta * (r - 0.5 * delta) for r in rs) / k
        elif loss_name == "binary_crossentropy":
            out[i] = -sum(Y[i, j] * math.log(a[i, j]) + (1 - Y[i, j]) * math.log(1 - a[i, j]) for j in range(k)) / k
        elif loss_name == "categorical_crossentropy":
            out[i] = -sum(Y[i, j] * math.log(a[i, j]) for j in range(k))
        elif loss_name == "hinge":
            if k == 1:
                out[i] = max(0.0, 1.0 - (2 * Y[i, 0] - 1) * a[i, 0])
            else:
                t = int(np.argmax(Y[i]))
                out[i] = max(0.0, 1.0 + max(a[i, j] for j in range(k) if j != t) - a[i, t])
    return out


CASES = [(name, k) for name in LOSSES for k in (1, 3) if not (name == "categorical_crossentropy" and k == 1)]


# ---------------------------------------------------------------------------
# Values and gradients
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name, n_out", CASES)
def test_value_matches_definition(name, n_out):
    loss = losses.get(name)
    a, Y = sample(name, n_out=n_out)
    value = loss.value(a, Y)
    assert value.shape == (a.shape[0],)
    np.testing.assert_allclose(value, definition(name, a, Y), rtol=1e-13, atol=1e-15)
    assert loss(a, Y) == pytest.approx(float(np.mean(definition(name, a, Y))), rel=1e-13)


@pytest.mark.parametrize("name, n_out", CASES)
def test_gradient_matches_central_difference(name, n_out):
    loss = losses.get(name)
    a, Y = sample(name, n_out=n_out, seed=1)
    if name == "hinge":  # keep off the hinge's kinks: margins and ties
        margin = 1.0 - (2 * Y - 1) * a if n_out == 1 else None
        if margin is not None:
            assert np.abs(margin).min() > 1e-3
    g = loss.gradient(a, Y)
    assert g.shape == a.shape
    h = 1e-6
    numeric = np.empty_like(a)
    for idx in np.ndindex(*a.shape):
        ap, am = a.copy(), a.copy()
        ap[idx] += h
        am[idx] -= h
        # ∂ℓ_i/∂a_ij: only sample i's loss depends on a_ij
        numeric[idx] = (loss.value(ap, Y)[idx[0]] - loss.value(am, Y)[idx[0]]) / (2 * h)
    np.testing.assert_allclose(g, numeric, rtol=1e-6, atol=1e-8)


def test_hinge_multiclass_by_hand():
    loss = losses.get("hinge")
    a = np.array([[2.0, 0.5, 1.8], [3.0, 0.0, 0.5], [0.1, 0.2, 0.3]])
    Y = one_hot([0, 0, 1], 3)
    # sample 0: true 2.0, strongest wrong 1.8 -> 1 + 1.8 - 2 = 0.8 (active)
    # sample 1: true 3.0, strongest wrong 0.5 -> 1 + 0.5 - 3 < 0 (inactive)
    # sample 2: true 0.2, strongest wrong 0.3 -> 1.1
    np.testing.assert_allclose(loss.value(a, Y), [0.8, 0.0, 1.1], rtol=1e-15)
    np.testing.assert_array_equal(loss.gradient(a, Y), [[-1, 0, 1], [0, 0, 0], [0, -1, 1]])


def test_hinge_binary_by_hand():
    loss = losses.get("hinge")
    a = np.array([[0.3], [2.0], [-0.4], [-3.0]])
    Y = np.array([[1.0], [1.0], [0.0], [0.0]])
    np.testing.assert_allclose(loss.value(a, Y), [0.7, 0.0, 0.6, 0.0], rtol=1e-15)
    np.testing.assert_array_equal(loss.gradient(a, Y), [[-1.0], [0.0], [1.0], [0.0]])


@pytest.mark.parametrize("delta", [0.5, 1.0, 2.0])
def test_huber_delta(delta):
    loss = losses.get({"name": "huber", "delta": delta})
    assert loss.delta == delta
    a = np.array([[0.0, 0.0, 0.0, 0.0]])
    Y = np.array([[0.25 * delta, -0.75 * delta, 1.5 * delta, -3.0 * delta]])
    r = np.abs(Y[0])
    expected = np.mean(np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta)))
    assert loss.value(a, Y)[0] == pytest.approx(expected, rel=1e-15)
    np.testing.assert_allclose(loss.gradient(a, Y), np.clip(-Y, -delta, delta) / 4, rtol=1e-15)


@pytest.mark.parametrize("delta", [0, -1.0, float("inf"), float("nan")])
def test_huber_rejects_bad_delta(delta):
    with pytest.raises(InvalidArgumentError, match=str(float(delta)) if delta != 0 else "0"):
        losses.Huber(delta=delta)
    with pytest.raises(InvalidTypeError, match="'1'"):
        losses.Huber(delta="1")


def test_mse_has_no_half():
    loss = losses.get("mse")
    a, Y = np.array([[3.0]]), np.array([[1.0]])
    assert loss.value(a, Y)[0] == 4.0
    assert loss.gradient(a, Y)[0, 0] == 4.0


# ---------------------------------------------------------------------------
# Saturation: probabilities of exactly 0 and 1
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_binary_crossentropy_finite_at_0_and_1(dtype):
    loss = losses.get("binary_crossentropy")
    a = np.array([[0.0], [1.0], [0.0], [1.0]], dtype=dtype)
    Y = np.array([[0.0], [1.0], [1.0], [0.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with loud():
            value = loss.value(a, Y)
            grad = loss.gradient(a, Y)
            fused = loss.fused_delta(a, Y, np.empty_like(a))
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad)) and np.all(np.isfinite(fused))
    assert value[0] == 0 and value[1] == 0
    # confidently wrong costs a lot (≥ -log(tiny) ≈ 87 in float32), not nothing
    assert value[2] > 80 and value[3] > 80
    np.testing.assert_array_equal(fused, a - Y)
    assert grad[2, 0] < 0 and grad[3, 0] > 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_categorical_crossentropy_finite_at_0_and_1(dtype):
    loss = losses.get("categorical_crossentropy")
    a = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=dtype)
    Y = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with loud():
            value = loss.value(a, Y)
            grad = loss.gradient(a, Y)
            fused = loss.fused_delta(a, Y, np.empty_like(a))
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(grad)) and np.all(np.isfinite(fused))
    assert value[0] == 0 and value[1] > 80
    np.testing.assert_array_equal(fused, a - Y)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output, loss_name", [("softmax", "categorical_crossentropy"),
                                               ("sigmoid", "binary_crossentropy"),
                                               ("softmax", "mean_squared_error"),
                                               ("sigmoid", "hinge")])
def test_saturated_network_output_gives_finite_loss_and_gradients(output, loss_name, dtype):
    import deltaprop as dp

    n_out = 3 if output == "softmax" else 1
    net = dp.Network([dp.Dense(2, n_out, activation=output)], loss=loss_name, dtype=dtype.__name__, seed=0)
    # logits of ±1e4: probabilities round to exactly 0 and 1, on the wrong class
    net.layers[0].W[...] = [[1e4, -1e4], [-1e4, 1e4], [0.0, 0.0]][:n_out]
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    if output == "softmax":
        y = [1, 0] if loss_name == "categorical_crossentropy" else one_hot([1, 0], 3)
    else:
        y = [0.0, 1.0]
    np.testing.assert_array_equal(net.predict(X), [[1, 0, 0], [0, 1, 0]] if output == "softmax" else [[1], [0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with loud():
            value = net.loss_and_gradients(X, y)
    assert math.isfinite(value) and np.all(np.isfinite(net.grads))
    if loss_name in ("categorical_crossentropy", "binary_crossentropy"):
        assert value > 10  # confidently wrong
        assert np.abs(net.grads).max() > 0.1


# ---------------------------------------------------------------------------
# Fused deltas equal the unfused chain rule
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "loss_name, n_out, soft",
    [("mean_squared_error", 1, False), ("mean_squared_error", 4, False), ("binary_crossentropy", 1, False),
     ("binary_crossentropy", 4, False), ("binary_crossentropy", 4, True), ("categorical_crossentropy", 4, False),
     ("categorical_crossentropy", 4, True)],
)
def test_fused_delta_equals_chain_rule(loss_name, n_out, soft):
    loss = losses.get(loss_name)
    act = activations.get(loss.canonical_activation)
    rng = np.random.default_rng(3)
    z = rng.normal(0.0, 1.5, size=(8, n_out))  # away from saturation
    a = act(z)
    if loss_name == "mean_squared_error":
        Y = rng.normal(size=a.shape)
    elif loss_name == "binary_crossentropy":
        Y = rng.uniform(size=a.shape) if soft else rng.integers(0, 2, size=a.shape).astype(float)
    else:
        Y = rng.dirichlet(np.ones(n_out), size=8) if soft else one_hot(rng.integers(0, n_out, 8), n_out)
    fused = loss.fused_delta(a, Y, np.empty_like(a))
    chain = act.backward(z, a, loss.gradient(a, Y), np.empty_like(a))
    np.testing.assert_allclose(fused, chain, rtol=0, atol=1e-12)


def test_canonical_activations():
    assert losses.get("mse").canonical_activation == "identity"
    assert losses.get("bce").canonical_activation == "sigmoid"
    assert losses.get("cce").canonical_activation == "softmax"
    for name in ("mae", "huber", "hinge"):
        loss = losses.get(name)
        assert loss.canonical_activation is None
        with pytest.raises(NotImplementedError):
            loss.fused_delta(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)))


# ---------------------------------------------------------------------------
# Target preparation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_class_indices_become_one_hot(dtype):
    loss = losses.get("categorical_crossentropy")
    Y = loss.prepare_targets(np.array([2, 0, 1, 2]), 3, dtype)
    assert Y.dtype == dtype and Y.shape == (4, 3)
    np.testing.assert_array_equal(Y, one_hot([2, 0, 1, 2], 3))
    # integral floats and a column of indices are indices too
    np.testing.assert_array_equal(loss.prepare_targets(np.array([2.0, 0.0]), 3, dtype), one_hot([2, 0], 3))
    np.testing.assert_array_equal(loss.prepare_targets(np.array([[1], [0]]), 3, dtype), one_hot([1, 0], 3))
    # rows of probabilities pass through
    P = np.array([[0.2, 0.3, 0.5]])
    np.testing.assert_allclose(loss.prepare_targets(P, 3, dtype), P, rtol=1e-7)


def test_hinge_targets():
    loss = losses.get("hinge")
    np.testing.assert_array_equal(loss.prepare_targets([1, 0], 3, np.float64), one_hot([1, 0], 3))
    np.testing.assert_array_equal(loss.prepare_targets([1, 0, 1], 1, np.float64), [[1], [0], [1]])
    with pytest.raises(DataError, match="0.5"):
        loss.prepare_targets([1, 0.5], 1, np.float64)
    with pytest.raises(DataError, match="-1"):
        loss.prepare_targets([1, -1], 1, np.float64)


@pytest.mark.parametrize("name", ["mean_squared_error", "mean_absolute_error", "huber", "binary_crossentropy"])
def test_one_d_targets_for_one_output(name):
    loss = losses.get(name)
    Y = loss.prepare_targets([0.0, 1.0, 1.0], 1, np.float32)
    assert Y.shape == (3, 1) and Y.dtype == np.float32


@pytest.mark.parametrize(
    "name, y, n_out, match",
    [
        ("categorical_crossentropy", [0, 3], 3, "class index 3"),
        ("categorical_crossentropy", [0, -1], 3, "class index -1"),
        ("categorical_crossentropy", [0.0, 1.5], 3, "1.5"),
        ("categorical_crossentropy", [0.0, float("nan")], 3, "nan"),
        ("categorical_crossentropy", [[0.5, -0.5, 1.0]], 3, "-0.5"),
        ("binary_crossentropy", [0.0, 2.0], 1, "2.0"),
        ("binary_crossentropy", [0.0, -0.5], 1, "-0.5"),
        ("mean_squared_error", np.zeros((4, 2)), 3, r"\(4, 2\)"),
        ("mean_squared_error", np.zeros(4), 2, r"\(4,\)"),
        ("mean_squared_error", [1.0, float("inf")], 1, "NaN or infinity"),
    ],
)
def test_bad_targets_name_the_value(name, y, n_out, match):
    with pytest.raises(DataError, match=match):
        losses.get(name).prepare_targets(np.asarray(y), n_out, np.float64)


def test_non_numeric_targets_are_a_type_error():
    with pytest.raises(InvalidTypeError, match="dtype"):
        losses.get("categorical_crossentropy").prepare_targets(np.array(["a", "b"]), 2, np.float64)
    with pytest.raises(InvalidTypeError):
        losses.get("mse").prepare_targets(np.array(["1.0"]), 1, np.float64)


def test_network_reports_bad_targets_with_the_value():
    import deltaprop as dp

    net = dp.Network([dp.Dense(2, 3, activation="softmax")], seed=0)
    with pytest.raises(DataError, match="class index 7"):
        net.loss_and_gradients(np.zeros((2, 2)), [0, 7])
    with pytest.raises(DataError, match="y has 3"):
        net.loss_and_gradients(np.zeros((2, 2)), [0, 1, 2])


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", LOSSES)
def test_get_by_name_and_config_round_trip(name):
    loss = losses.get(name)
    assert loss.name == name
    again = losses.get(loss.get_config())
    assert again == loss and again is not loss


@pytest.mark.parametrize(
    "alias, name",
    [("mse", "mean_squared_error"), ("MAE", "mean_absolute_error"), ("bce", "binary_crossentropy"),
     ("log_loss", "binary_crossentropy"), ("cross-entropy", "categorical_crossentropy"),
     ("cce", "categorical_crossentropy"), ("categorical_hinge", "hinge")],
)
def test_get_by_alias(alias, name):
    assert losses.get(alias).name == name
    assert losses.canonical_name(alias) == name


def test_get_dict_instance_class_custom():
    huber = losses.get({"name": "huber", "delta": 2.0})
    assert huber.delta == 2.0 and huber.get_config() == {"name": "huber", "delta": 2.0}
    assert losses.get(huber) is huber
    assert isinstance(losses.get(losses.Hinge), losses.Hinge)

    class Quartic:
        name = "quartic"

        def value(self, a, y):
            return np.mean((a - y) ** 4, axis=1)

        def gradient(self, a, y):
            return 4 * (a - y) ** 3 / a.shape[1]

    q = Quartic()
    assert losses.get(q) is q


def test_register(monkeypatch):
    class Cosh(losses.Loss):
        name = "logcosh_test"

        def value(self, a, y):
            return np.mean(np.log(np.cosh(a - y)), axis=1)

        def gradient(self, a, y):
            return np.tanh(a - y) / a.shape[1]

    monkeypatch.setitem(losses.REGISTRY, "logcosh_test", Cosh)
    losses.register("logcosh_test", Cosh)
    assert isinstance(losses.get("logcosh_test"), Cosh)
    with pytest.raises(InvalidArgumentError):
        losses.register("", Cosh)


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        losses.get("kl_divergence")
    message = str(info.value)
    assert "'kl_divergence'" in message
    for name in LOSSES:
        assert name in message
    assert isinstance(info.value, DeltapropError) and isinstance(info.value, KeyError)


def test_bad_specs():
    with pytest.raises(InvalidTypeError, match="42"):
        losses.get(42)
    with pytest.raises(InvalidArgumentError, match="name"):
        losses.get({"delta": 1.0})
    with pytest.raises(InvalidArgumentError, match="huber"):
        losses.get({"name": "huber", "epsilon": 1.0})

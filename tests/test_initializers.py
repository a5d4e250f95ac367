"""Tests of deltaprop.initializers: distributions, determinism, defaults, the registry."""

import math

import numpy as np
import pytest

import deltaprop as dp
from deltaprop import initializers
from deltaprop.errors import InvalidArgumentError, InvalidTypeError, UnknownNameError

# name -> (kind, variance(fan_in, fan_out)) from the module docstring's table
TABLE = {
    "glorot_uniform": ("uniform", lambda i, o: 2.0 / (i + o)),
    "glorot_normal": ("normal", lambda i, o: 2.0 / (i + o)),
    "he_uniform": ("uniform", lambda i, o: 2.0 / i),
    "he_normal": ("normal", lambda i, o: 2.0 / i),
    "lecun_uniform": ("uniform", lambda i, o: 1.0 / i),
    "lecun_normal": ("normal", lambda i, o: 1.0 / i),
    "fan_in_uniform": ("uniform", lambda i, o: 1.0 / (3.0 * i)),  # U(±1/sqrt(fan_in)): PyTorch's Linear
}
SHAPE = (300, 400)  # (fan_out, fan_in): 120,000 draws


@pytest.mark.parametrize("name", sorted(TABLE))
def test_distribution_matches_the_table(name):
    kind, variance = TABLE[name]
    fan_out, fan_in = SHAPE
    w = initializers.get(name)(SHAPE, np.random.default_rng(0), np.float64)
    assert w.shape == SHAPE and w.dtype == np.float64
    var = variance(fan_in, fan_out)
    # the sample variance of 120,000 draws is within 1.5 % of the true one (>3.5 standard errors)
    assert np.var(w) == pytest.approx(var, rel=0.015)
    assert abs(np.mean(w)) < 5 * math.sqrt(var / w.size)
    if kind == "uniform":
        limit = math.sqrt(3.0 * var)  # U(-r, r): r = sqrt(6/(fan_in+fan_out)) for Glorot, etc.
        assert np.abs(w).max() <= limit
        assert np.abs(w).max() > 0.999 * limit
    else:
        # a normal has about 0.27 % of its draws beyond 3 sigma; a uniform none
        beyond = np.mean(np.abs(w) > 3 * math.sqrt(var))
        assert 0.0015 < beyond < 0.004


def test_uniform_limits_are_the_textbook_ones():
    fan_out, fan_in = 10, 20
    rng = np.random.default_rng(1)
    for name, r in [("glorot_uniform", math.sqrt(6 / 30)), ("he_uniform", math.sqrt(6 / 20)),
                    ("lecun_uniform", math.sqrt(3 / 20)), ("fan_in_uniform", 1 / math.sqrt(20))]:
        w = initializers.get(name)((fan_out, fan_in), rng, np.float64)
        assert np.abs(w).max() <= r


@pytest.mark.parametrize("name", sorted(initializers.REGISTRY))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_and_determinism(name, dtype):
    init = initializers.get(name)
    a = init((5, 7), np.random.default_rng(3), dtype)
    b = init((5, 7), np.random.default_rng(3), dtype)
    assert a.dtype == dtype and a.shape == (5, 7)
    np.testing.assert_array_equal(a, b)
    if name != "zeros":
        c = init((5, 7), np.random.default_rng(4), dtype)
        assert not np.array_equal(a, c)


def test_zeros():
    w = initializers.get("zeros")((3, 4), np.random.default_rng(0), np.float32)
    np.testing.assert_array_equal(w, np.zeros((3, 4)))


@pytest.mark.parametrize("activation, expected", [
    ("relu", "he_uniform"), ("leaky_relu", "he_uniform"), ("elu", "he_uniform"), ("gelu", "he_uniform"),
    ("identity", "glorot_uniform"), ("sigmoid", "glorot_uniform"), ("tanh", "glorot_uniform"),
    ("softmax", "glorot_uniform"), ("softplus", "glorot_uniform"),
])
def test_default_for_activation(activation, expected):
    assert initializers.default_for(activation).name == expected
    assert dp.Dense(4, 3, activation=activation).initializer.name == expected


def test_layer_initialization_draws_W_and_zeroes_b():
    net = dp.Network([dp.Dense(200, 100, activation="relu"), dp.Dense(100, 3, activation="softmax")],
                     dtype="float64", seed=5)
    first, second = net.layers
    assert np.all(first.b == 0) and np.all(second.b == 0)
    assert np.abs(first.W).max() <= math.sqrt(6 / 200)  # He uniform
    assert np.abs(second.W).max() <= math.sqrt(6 / 103)  # Glorot uniform
    assert np.var(first.W) == pytest.approx(2 / 200, rel=0.05)


def test_explicit_initializer_in_a_layer():
    layer = dp.Dense(50, 40, activation="relu", initializer="lecun_normal")
    net = dp.Network([layer], dtype="float64", seed=0)
    assert layer.initializer.name == "lecun_normal"
    assert np.var(net.layers[0].W) == pytest.approx(1 / 50, rel=0.1)
    assert net.get_config()["layers"][0]["initializer"] == "lecun_normal"


def test_custom_callable_initializer():
    calls = []

    def constant(shape, rng, dtype):
        calls.append((shape, dtype))
        return np.full(shape, 0.25, dtype=dtype)

    net = dp.Network([dp.Dense(3, 2, initializer=constant)], dtype="float32", seed=0)
    assert calls == [((2, 3), np.dtype(np.float32))]
    np.testing.assert_array_equal(net.layers[0].W, np.full((2, 3), 0.25))


def test_same_seed_same_initial_weights():
    def make(seed):
        return dp.Network([dp.Dense(4, 8, activation="tanh"), dp.Dense(8, 2)], seed=seed)

    assert np.array_equal(make(7).params, make(7).params)
    assert not np.array_equal(make(7).params, make(8).params)


@pytest.mark.parametrize("alias, name", [("xavier_uniform", "glorot_uniform"), ("Xavier-Normal", "glorot_normal"),
                                         ("kaiming_uniform", "he_uniform"), ("kaiming_normal", "he_normal")])
def test_aliases(alias, name):
    assert initializers.get(alias).name == name


def test_get_dict_and_config():
    init = initializers.get({"name": "he_normal"})
    assert init is initializers.REGISTRY["he_normal"]
    assert init.get_config() == {"name": "he_normal"}


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        initializers.get("orthogonal")
    assert "'orthogonal'" in str(info.value)
    for name in initializers.REGISTRY:
        assert name in str(info.value)


def test_bad_type():
    with pytest.raises(InvalidTypeError, match="3"):
        initializers.get(3)


def test_register(monkeypatch):
    def ones(shape, rng, dtype):
        return np.ones(shape, dtype=dtype)

    monkeypatch.setitem(initializers.REGISTRY, "ones_test", ones)
    assert initializers.register("ones_test", ones) is ones
    assert initializers.get("ones_test") is ones
    with pytest.raises(InvalidArgumentError):
        initializers.register("", ones)

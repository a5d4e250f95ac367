"""Tests of deltaprop.gradcheck itself: it passes correct gradients, catches wrong ones, changes nothing."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import deltaprop as dp
from conftest import block_rel_error, central_difference, make_problem
from deltaprop import activations, losses
from deltaprop.gradcheck import directional_check, gradcheck, numerical_gradient

SRC = Path(__file__).resolve().parents[1] / "src"


class BrokenTanh(activations.Tanh):
    """tanh whose derivative is 5 % too large: a plausible, small backprop bug."""

    name = "broken_tanh_test"

    def derivative(self, z, a):
        return 1.05 * (1.0 - a * a)


class BrokenMSE(losses.MeanSquaredError):
    """Squared error whose gradient forgets the mean over outputs."""

    name = "broken_mse_test"
    canonical_activation = None

    def gradient(self, a, y):
        return 2.0 * (a - y)


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(activations.REGISTRY, BrokenTanh.name, BrokenTanh)
    monkeypatch.setitem(losses.REGISTRY, BrokenMSE.name, BrokenMSE)


def problem(seed=0, dtype="float64"):
    return make_problem([(5, "tanh"), (4, "sigmoid")], "softmax", 3, "categorical_crossentropy", seed=seed,
                        dtype=dtype)


def test_report_format_and_small_errors():
    net, X, y = problem()
    report = gradcheck(net, X, y)
    assert isinstance(report, list) and len(report) == len(net.layers)
    for i, row in enumerate(report):
        assert set(row) == {"layer", "W", "b"}
        assert row["layer"] == i + 1
        assert isinstance(row["W"], float) and isinstance(row["b"], float)
        assert 0.0 <= row["W"] < 1e-8 and 0.0 <= row["b"] < 1e-8


def test_catches_a_wrong_activation_derivative(registered):
    net, X, y = make_problem([(5, BrokenTanh.name), (4, "sigmoid")], "identity", 2, "mean_squared_error", seed=1)
    report = gradcheck(net, X, y)
    # the output layer is untouched by the bug; the layers below it are not
    assert report[2]["W"] < 1e-8 and report[2]["b"] < 1e-8
    assert report[0]["W"] > 1e-2 and report[0]["b"] > 1e-2
    assert directional_check(net, X, y) > 1e-3


def test_catches_a_wrong_loss_gradient(registered):
    net, X, y = make_problem([(5, "tanh")], "tanh", 3, "mean_squared_error", seed=2)
    net.loss = losses.get(BrokenMSE.name)
    report = gradcheck(net, X, y)
    assert all(row["W"] > 0.5 and row["b"] > 0.5 for row in report)  # every gradient 3x too large


def test_network_is_left_unchanged():
    net, X, y = problem(dtype="float32")
    net.loss_and_gradients(X, y)
    params, grads = net.params.copy(), net.grads.copy()
    gradcheck(net, X, y)
    numerical_gradient(net, X, y, indices=[0, 3])
    directional_check(net, X, y)
    assert net.dtype == np.float32 and net.params.dtype == np.float32
    np.testing.assert_array_equal(net.params, params)
    np.testing.assert_array_equal(net.grads, grads)


def test_float32_network_is_checked_in_float64():
    net, X, y = problem(dtype="float32")
    report = gradcheck(net, X, y)
    assert max(max(r["W"], r["b"]) for r in report) < 1e-8


def test_numerical_gradient_matches_simple_central_differences():
    net, X, y = problem(seed=3)
    fourth_order = numerical_gradient(net, X, y)
    second_order = central_difference(net, X, y, h=1e-5)
    assert fourth_order.shape == (net.n_params,)
    np.testing.assert_allclose(fourth_order, second_order, rtol=0, atol=1e-9)


def test_numerical_gradient_indices():
    net, X, y = problem(seed=4)
    partial = numerical_gradient(net, X, y, indices=[1, 5])
    assert np.isfinite(partial[[1, 5]]).all()
    assert np.isnan(np.delete(partial, [1, 5])).all()
    full = numerical_gradient(net, X, y)
    np.testing.assert_array_equal(partial[[1, 5]], full[[1, 5]])


def test_max_entries_samples_each_block_deterministically():
    net = dp.Network([dp.Dense(30, 20, activation="tanh"), dp.Dense(20, 3, activation="softmax")],
                     dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 30)), rng.integers(0, 3, 8)
    a = gradcheck(net, X, y, max_entries=5, seed=1)
    b = gradcheck(net, X, y, max_entries=5, seed=1)
    assert a == b
    assert max(max(r["W"], r["b"]) for r in a) < 1e-7


def test_sample_weight_changes_the_checked_gradient():
    net, X, y = problem(seed=5)
    w = np.linspace(0.1, 2.0, X.shape[0])
    assert max(max(r["W"], r["b"]) for r in gradcheck(net, X, y, sample_weight=w)) < 1e-8
    weighted = numerical_gradient(net, X, y, sample_weight=w)
    plain = numerical_gradient(net, X, y)
    assert block_rel_error(weighted, plain) > 1e-2
    net.loss_and_gradients(X, y, sample_weight=w)
    assert block_rel_error(net.grads, weighted) < 1e-8


def test_directional_check_on_a_larger_network():
    net = dp.Network([dp.Dense(20, 64, activation="gelu"), dp.Dense(64, 32, activation="tanh"),
                      dp.Dense(32, 10, activation="softmax")], dtype="float32", seed=0)
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(16, 20)), rng.integers(0, 10, 16)
    assert directional_check(net, X, y) < 1e-6
    assert directional_check(net, X, y, seed=3) < 1e-6


def test_dropout_is_off_during_the_check():
    net = dp.Network([dp.Dense(3, 8, activation="tanh", dropout=0.5), dp.Dense(8, 2, activation="softmax")],
                     dtype="float64", seed=0)
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(6, 3)), rng.integers(0, 2, 6)
    assert max(max(r["W"], r["b"]) for r in gradcheck(net, X, y)) < 1e-8


def test_unregistered_custom_activation_can_be_checked():
    class Sine:
        name = "sine_unregistered"

        def forward(self, z, out):
            return np.sin(z, out=out)

        def backward(self, z, a, grad, out):
            return np.multiply(grad, np.cos(z), out=out)

    net = dp.Network([dp.Dense(3, 4, activation=Sine()), dp.Dense(4, 2)], dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    assert max(max(r["W"], r["b"]) for r in gradcheck(net, X, y)) < 1e-8


def test_dp_gradcheck_name_is_stable():
    # in a fresh interpreter: whatever dp.gradcheck is, importing the submodule or calling it must not change it
    code = (
        "import numpy as np, deltaprop as dp\n"
        "before = dp.gradcheck\n"
        "net = dp.Network([dp.Dense(2, 2, activation='softmax')], dtype='float64', seed=0)\n"
        "X, y = np.array([[0.5, -1.0], [1.0, 2.0]]), [0, 1]\n"
        "check = dp.gradcheck if callable(dp.gradcheck) else dp.gradcheck.gradcheck\n"
        "check(net, X, y)\n"
        "import deltaprop.gradcheck\n"
        "assert dp.gradcheck is before, (before, dp.gradcheck)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr

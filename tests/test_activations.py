"""Tests of deltaprop.activations: values, derivatives, extremes, shapes, the registry."""

import math
import warnings

import numpy as np
import pytest

from conftest import ACTIVATIONS, KINKED, np_activation
from deltaprop import activations
from deltaprop.errors import DeltapropError, InvalidArgumentError, InvalidTypeError, UnknownNameError

ELEMENTWISE = [name for name in ACTIVATIONS if name != "softmax"]
DTYPES = [np.float32, np.float64]
EXTREMES = [-1e4, -1e3, -100.0, -50.0, -20.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 20.0, 50.0, 100.0, 1e3, 1e4]


def moderate_z(seed=0, shape=(7, 5), avoid_kink=True):
    z = np.random.default_rng(seed).normal(0.0, 2.0, size=shape)
    if avoid_kink:
        z = np.where(np.abs(z) < 1e-2, 0.5, z)  # keep central differences off ReLU-like kinks
    return z


def strict():
    """Overflow, invalid operations and division by zero raise.

    Underflow does not: e^{-1e4} rounding to 0 is the correctly rounded
    result (NumPy never reports underflow by default), and the values it
    produces are checked separately (``test_extreme_values_are_the_limits``).
    """
    return np.errstate(over="raise", divide="raise", invalid="raise", under="ignore")


# ---------------------------------------------------------------------------
# Values and derivatives in float64
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_forward_matches_definition(name):
    z = moderate_z()
    act = activations.get(name)
    a = act(z)
    np.testing.assert_allclose(a, np_activation(name, z), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize(
    "name, z, expected",
    [
        ("identity", -3.5, -3.5),
        ("sigmoid", 0.0, 0.5),
        ("sigmoid", math.log(3.0), 0.75),
        ("tanh", 0.5, math.tanh(0.5)),
        ("relu", -2.0, 0.0),
        ("relu", 2.0, 2.0),
        ("leaky_relu", -2.0, -0.02),
        ("elu", -1.0, math.exp(-1.0) - 1.0),
        ("elu", 1.5, 1.5),
        ("gelu", 1.0, 0.5 * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * 1.044715))),
        ("softplus", 0.0, math.log(2.0)),
        ("softplus", 2.0, math.log1p(math.exp(2.0))),
    ],
)
def test_forward_known_values(name, z, expected):
    a = activations.get(name)(np.array([[z]]))
    assert a[0, 0] == pytest.approx(expected, rel=1e-14, abs=1e-300)


def test_gelu_is_the_tanh_form_within_1e3_of_the_erf_form():
    z = np.linspace(-6.0, 6.0, 1201).reshape(-1, 1)
    a = activations.get("gelu")(z)
    erf_form = np.array([[0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0)))] for x in z[:, 0]])
    assert np.max(np.abs(a - erf_form)) < 1e-3
    # and it is not the erf form itself (the docstring promises the tanh approximation)
    assert np.max(np.abs(a - erf_form)) > 1e-5


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_derivative_matches_central_difference(name):
    act = activations.get(name)
    z = moderate_z(1)
    h = 1e-6
    numeric = (act(z + h) - act(z - h)) / (2.0 * h)
    analytic = act.derivative(z, act(z))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_derivative_at_kink_is_the_left_one(name):
    act = activations.get(name)
    z = np.zeros((1, 1))
    expected = 0.0 if name == "relu" else 0.01
    assert act.derivative(z, act(z))[0, 0] == expected
    grad = np.ones((1, 1))
    assert act.backward(z, act(z), grad, np.empty_like(grad))[0, 0] == expected


@pytest.mark.parametrize("alpha", [0.0, 0.3, 2.0])
def test_leaky_relu_alpha(alpha):
    act = activations.get({"name": "leaky_relu", "alpha": alpha})
    z = np.array([[-2.0, -0.5, 0.5, 3.0]])
    np.testing.assert_array_equal(act(z), np.where(z > 0, z, alpha * z))
    np.testing.assert_array_equal(act.derivative(z, act(z)), np.where(z > 0, 1.0, alpha))


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_elu_alpha(alpha):
    act = activations.get({"name": "elu", "alpha": alpha})
    z = np.array([[-3.0, -0.5, 0.5, 3.0]])
    expected = np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0)))
    np.testing.assert_allclose(act(z), expected, rtol=1e-15)
    np.testing.assert_allclose(act.derivative(z, act(z)), np.where(z > 0, 1.0, alpha * np.exp(z)), rtol=1e-15)


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_backward_is_grad_times_derivative(name):
    act = activations.get(name)
    z = moderate_z(2)
    a = act(z)
    grad = np.random.default_rng(3).normal(size=z.shape)
    z_before, grad_before = z.copy(), grad.copy()
    out = act.backward(z, a, grad, np.empty_like(grad))
    np.testing.assert_allclose(out, grad * act.derivative(z, a), rtol=1e-15, atol=0)
    np.testing.assert_array_equal(z, z_before)
    np.testing.assert_array_equal(grad, grad_before)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_in_place_on_grad(name):
    act = activations.get(name)
    z = moderate_z(4)
    a = act(z)
    grad = np.random.default_rng(5).normal(size=z.shape)
    expected = act.backward(z, a, grad, np.empty_like(grad))
    result = act.backward(z, a, grad, grad)
    assert result is grad or np.shares_memory(result, grad)
    np.testing.assert_allclose(grad, expected, rtol=1e-15, atol=1e-300)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_forward_writes_into_out_and_keeps_z(name):
    act = activations.get(name)
    z = moderate_z(6)
    z_before = z.copy()
    out = np.full_like(z, np.nan)
    result = act.forward(z, out)
    assert result is out
    np.testing.assert_array_equal(z, z_before)
    np.testing.assert_allclose(out, np_activation(name, z), rtol=1e-13, atol=1e-15)


# ---------------------------------------------------------------------------
# Softmax
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(np.float32, 1e-6), (np.float64, 1e-14)])
def test_softmax_rows_sum_to_one(dtype, tol):
    z = (np.random.default_rng(7).normal(0.0, 30.0, size=(50, 9))).astype(dtype)
    a = activations.get("softmax")(z)
    assert a.dtype == dtype
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=0, atol=tol)
    assert np.all(a >= 0)


def test_softmax_is_shift_invariant_per_row():
    z = moderate_z(8)
    shift = np.arange(z.shape[0], dtype=float)[:, None] * 100.0
    act = activations.get("softmax")
    np.testing.assert_allclose(act(z + shift), act(z), rtol=1e-12, atol=1e-15)


def test_softmax_backward_is_the_jacobian_vector_product():
    act = activations.get("softmax")
    z = moderate_z(9)
    a = act(z)
    grad = np.random.default_rng(10).normal(size=z.shape)
    out = act.backward(z, a, grad, np.empty_like(grad))
    for i in range(z.shape[0]):
        jac = np.diag(a[i]) - np.outer(a[i], a[i])  # ∂a_j/∂z_k, symmetric
        np.testing.assert_allclose(out[i], jac.T @ grad[i], rtol=1e-13, atol=1e-16)


def test_softmax_backward_matches_central_difference():
    act = activations.get("softmax")
    z = moderate_z(11, shape=(3, 4))
    grad = np.random.default_rng(12).normal(size=z.shape)
    h = 1e-6
    numeric = np.empty_like(z)
    for idx in np.ndindex(*z.shape):
        zp, zm = z.copy(), z.copy()
        zp[idx] += h
        zm[idx] -= h
        numeric[idx] = (np.sum(grad * act(zp)) - np.sum(grad * act(zm))) / (2.0 * h)
    analytic = act.backward(z, act(z), grad, np.empty_like(grad))
    np.testing.assert_allclose(analytic, numeric, rtol=1e-7, atol=1e-9)


def test_softmax_has_no_elementwise_derivative():
    act = activations.get("softmax")
    assert act.elementwise is False
    z = moderate_z()
    with pytest.raises(InvalidArgumentError, match="backward"):
        act.derivative(z, act(z))


# ---------------------------------------------------------------------------
# Extremes: no warnings, NaN or inf up to |z| = 1e4, in both dtypes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_extreme_pre_activations_are_finite_and_silent(name, dtype):
    act = activations.get(name)
    z = np.array([EXTREMES, EXTREMES[::-1]], dtype=dtype)
    grad = np.ones_like(z)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with strict():
            a = act.forward(z, np.empty_like(z))
            out = act.backward(z, a, grad.copy(), np.empty_like(z))
            d = act.derivative(z, a) if act.elementwise else None
    for arr in (a, out) + ((d,) if d is not None else ()):
        assert arr.dtype == dtype, (name, arr.dtype)
        assert arr.shape == z.shape
        assert np.all(np.isfinite(arr)), (name, dtype, arr)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_values_are_the_limits(dtype):
    z = np.array([[-1e4, 1e4]], dtype=dtype)
    get = activations.get
    np.testing.assert_array_equal(get("sigmoid")(z), [[0.0, 1.0]])
    np.testing.assert_array_equal(get("tanh")(z), [[-1.0, 1.0]])
    np.testing.assert_array_equal(get("softplus")(z), [[0.0, 1e4]])
    np.testing.assert_array_equal(get("gelu")(z), [[0.0, 1e4]])
    np.testing.assert_array_equal(get("elu")(z), [[-1.0, 1e4]])
    np.testing.assert_array_equal(get("relu")(z), [[0.0, 1e4]])
    np.testing.assert_array_equal(get("softmax")(z), [[0.0, 1.0]])
    sig = get("sigmoid")
    np.testing.assert_array_equal(sig.derivative(z, sig(z)), [[0.0, 0.0]])
    gelu = get("gelu")
    np.testing.assert_array_equal(gelu.derivative(z, gelu(z)), [[0.0, 1.0]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_is_accurate_in_the_far_tail(dtype):
    # 1/(1+e^{-z}) computed naively rounds to 0 long before the true value underflows
    z = np.array([[-30.0, -80.0]], dtype=dtype)
    a = activations.get("sigmoid")(z)
    np.testing.assert_allclose(a, np.exp(z.astype(np.float64)) / (1.0 + np.exp(z.astype(np.float64))), rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_dtype_and_shape_are_kept(name, dtype):
    act = activations.get(name)
    z = moderate_z(13, shape=(4, 3)).astype(dtype)
    a = act(z)
    assert a.dtype == dtype and a.shape == z.shape
    out = act.backward(z, a, np.ones_like(z), np.empty_like(z))
    assert out.dtype == dtype and out.shape == z.shape
    if act.elementwise:
        d = act.derivative(z, a)
        assert d.dtype == dtype and d.shape == z.shape


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_float32_matches_float64(name):
    act = activations.get(name)
    z = moderate_z(14)
    a64 = act(z)
    a32 = act(z.astype(np.float32))
    np.testing.assert_allclose(a32, a64, rtol=2e-6, atol=2e-7)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_get_by_name_and_config_round_trip(name):
    act = activations.get(name)
    assert isinstance(act, activations.Activation)
    assert act.name == name
    assert act.get_config()["name"] == name
    again = activations.get(act.get_config())
    assert again == act and again is not act
    assert isinstance(act, activations.REGISTRY[name])


@pytest.mark.parametrize(
    "alias, name",
    [("linear", "identity"), ("none", "identity"), ("logistic", "sigmoid"), ("leakyrelu", "leaky_relu"),
     ("Leaky-ReLU", "leaky_relu"), ("RELU", "relu"), ("Softmax", "softmax")],
)
def test_get_by_alias(alias, name):
    assert activations.get(alias).name == name


def test_get_none_is_identity():
    assert isinstance(activations.get(None), activations.Identity)


def test_get_dict_with_parameters():
    act = activations.get({"name": "leaky_relu", "alpha": 0.2})
    assert isinstance(act, activations.LeakyReLU) and act.alpha == 0.2
    assert act.get_config() == {"name": "leaky_relu", "alpha": 0.2}
    assert activations.get({"name": "elu", "alpha": 0.5}).alpha == 0.5


def test_get_instance_and_class():
    inst = activations.ELU(alpha=0.7)
    assert activations.get(inst) is inst
    assert isinstance(activations.get(activations.Tanh), activations.Tanh)


class Cube:
    """A user's own activation: duck-typed, not registered, not a subclass."""

    name = "cube"
    elementwise = True

    def forward(self, z, out):
        return np.power(z, 3, out=out)

    def backward(self, z, a, grad, out):
        return np.multiply(grad, 3.0 * z * z, out=out)


def test_get_custom_object_is_returned_as_is():
    cube = Cube()
    assert activations.get(cube) is cube


def test_register_custom_class(monkeypatch):
    class Swish(activations.Activation):
        name = "swish_test"

        def forward(self, z, out):
            return np.multiply(z, activations.Sigmoid()(z), out=out)

        def derivative(self, z, a):
            s = activations.Sigmoid()(z)
            return s + z * s * (1.0 - s)

    monkeypatch.setitem(activations.REGISTRY, "swish_test", Swish)
    assert activations.register("swish_test", Swish) is Swish
    act = activations.get("swish_test")
    assert isinstance(act, Swish)
    z = moderate_z(15)
    h = 1e-6
    np.testing.assert_allclose(act.derivative(z, act(z)), (act(z + h) - act(z - h)) / (2 * h), rtol=1e-7, atol=1e-9)


def test_unknown_name_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        activations.get("relu6")
    message = str(info.value)
    assert "'relu6'" in message
    for name in ACTIVATIONS:
        assert name in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)
    assert isinstance(info.value, DeltapropError)


@pytest.mark.parametrize("spec", [3, 2.5, ["relu"], object()])
def test_bad_type_is_a_type_error_naming_the_value(spec):
    with pytest.raises(InvalidTypeError, match="activation"):
        activations.get(spec)


def test_dict_without_name():
    with pytest.raises(InvalidArgumentError, match="name"):
        activations.get({"alpha": 0.1})


def test_bad_parameters():
    with pytest.raises(InvalidArgumentError, match="leaky_relu"):
        activations.get({"name": "leaky_relu", "beta": 1.0})
    with pytest.raises(InvalidArgumentError, match="-0.5"):
        activations.LeakyReLU(alpha=-0.5)
    with pytest.raises(InvalidArgumentError, match="nan"):
        activations.ELU(alpha=float("nan"))
    with pytest.raises(InvalidTypeError, match="'a'"):
        activations.ELU(alpha="a")


def test_register_rejects_empty_name():
    with pytest.raises(InvalidArgumentError):
        activations.register("", activations.Tanh)


def test_kinked_set_matches_the_definitions():
    # the helper set used to keep data off kinks must name real activations
    assert KINKED <= set(activations.REGISTRY)

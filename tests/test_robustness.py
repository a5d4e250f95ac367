"""Bad input gets a clear error; numbers stay finite (property tests with hypothesis)."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import deltaprop as dp
from deltaprop.gradcheck import gradcheck

HIDDEN = ["identity", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "softplus"]
# (output activation, loss, kind of targets)
HEADS = [
    ("softmax", "categorical_crossentropy", "classes"),
    ("sigmoid", "binary_crossentropy", "binary"),
    ("identity", "mean_squared_error", "real"),
    ("identity", "huber", "real"),
    ("tanh", "mean_absolute_error", "real"),
    ("softmax", "mean_squared_error", "onehot"),
    ("sigmoid", "hinge", "binary1"),
    ("identity", "hinge", "classes"),
]


def make_targets(kind, m, n_out, rng):
    if kind in ("classes",):
        return rng.integers(0, n_out, size=m)
    if kind == "onehot":
        return np.eye(n_out)[rng.integers(0, n_out, size=m)]
    if kind in ("binary", "binary1"):
        return rng.integers(0, 2, size=(m, n_out)).astype(float)
    return rng.normal(size=(m, n_out))


@st.composite
def problems(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n_hidden = draw(st.integers(0, 3))
    widths = [draw(st.integers(1, 8)) for _ in range(n_hidden + 1)]
    acts = [draw(st.sampled_from(HIDDEN)) for _ in range(n_hidden)]
    out_act, loss, kind = draw(st.sampled_from(HEADS))
    n_out = {"binary1": 1}.get(kind, draw(st.integers(2, 5)))
    if kind == "binary":
        n_out = draw(st.integers(1, 3))
    sizes = widths + [n_out]
    layers = [dp.Dense(sizes[i], sizes[i + 1], activation=acts[i] if i < n_hidden else out_act)
              for i in range(len(sizes) - 1)]
    m = draw(st.integers(1, 9))
    return seed, layers, loss, kind, m, rng


def _build(layers, loss, dtype, seed):
    fresh = [dp.Dense(layer.n_in, layer.n_out, activation=layer.activation) for layer in layers]
    return dp.Network(fresh, loss=loss, dtype=dtype, seed=seed)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.sampled_from(["float32", "float64"]), st.sampled_from([1e-30, 1e-3, 1.0, 1e3, 1e6]))
def test_outputs_losses_and_gradients_stay_finite_without_warnings(problem, dtype, scale):
    seed, layers, loss, kind, m, rng = problem
    net = _build(layers, loss, dtype, seed)
    X = rng.normal(size=(m, net.n_in)) * scale
    y = make_targets(kind, m, net.n_out, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = net.loss_and_gradients(X, y)
        out = net.predict(X)
    assert np.isfinite(value)
    assert np.all(np.isfinite(net.grads)), "non-finite gradient"
    assert np.all(np.isfinite(out)) and out.dtype == np.dtype(dtype)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def test_gradients_match_finite_differences_away_from_kinks(problem):
    seed, layers, loss, kind, m, rng = problem
    net = _build(layers, loss, "float64", seed)
    X = rng.normal(size=(m, net.n_in))
    y = make_targets(kind, m, net.n_out, rng)
    # Skip draws that sit near a kink: ReLU-family pre-activations near 0,
    # |a - y| near 0 for MAE, a hinge margin near 0.
    net.forward(X)
    for layer in net.layers:
        name = layer.activation.name
        if name in ("relu", "leaky_relu", "elu") and np.min(np.abs(layer.z)) < 1e-3:
            return
    a = net.layers[-1].a
    Y = net.prepare_targets(y)
    if loss == "mean_absolute_error" and np.min(np.abs(a - Y)) < 1e-3:
        return
    if loss == "hinge":
        if net.n_out == 1:
            margins = 1 - (2 * Y - 1) * a
        else:
            true = (a * Y).sum(axis=1)
            margins = 1 + np.where(Y > 0, -np.inf, a).max(axis=1) - true
            order = np.sort(np.where(Y > 0, -np.inf, a), axis=1)
            if np.min(order[:, -1] - order[:, -2]) < 1e-3:  # tie for the strongest wrong class
                return
        if np.min(np.abs(margins)) < 1e-3:
            return
    for row in gradcheck(net, X, y):
        assert row["W"] < 1e-6 and row["b"] < 1e-6, row


def test_all_constant_features_and_edge_targets_train_finitely():
    X = np.ones((20, 3))
    y = np.array([0.0, 1.0] * 10)
    net = dp.Network([dp.Dense(3, 4, activation="relu"), dp.Dense(4, 1, activation="sigmoid")], seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = net.fit(X, y, epochs=3, verbose=0)
    assert np.isfinite(h["loss"]).all()


@pytest.mark.parametrize("loss", ["binary_crossentropy", "categorical_crossentropy"])
def test_losses_finite_at_probabilities_zero_and_one(loss):
    a = np.array([[0.0, 1.0], [1.0, 0.0]])
    y = np.array([[1.0, 0.0], [1.0, 0.0]])
    L = dp.losses.get(loss)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.all(np.isfinite(L.value(a, y)))
        assert np.all(np.isfinite(L.gradient(a, y)))


X0 = np.random.default_rng(0).normal(size=(10, 3))
Y0 = np.arange(10) % 2


def classifier():
    return dp.Network([dp.Dense(3, 4, activation="relu"), dp.Dense(4, 2, activation="softmax")], seed=0)


BAD_CALLS = [
    ("NaN in X", lambda: classifier().fit(np.where(X0 > 1, np.nan, X0), Y0, verbose=0), dp.DataError, "NaN"),
    ("inf in X", lambda: classifier().predict(np.full((2, 3), np.inf)), dp.DataError, "infinite"),
    ("NaN in y", lambda: dp.Network([dp.Dense(3, 1)]).fit(X0, np.full(10, np.nan), verbose=0), dp.DataError, "NaN"),
    ("3-D X", lambda: classifier().fit(X0[None], Y0, verbose=0), dp.DataError, r"2-D.*\(1, 10, 3\)"),
    ("1-D X", lambda: classifier().predict(X0[:, 0]), dp.DataError, "reshape"),
    ("zero samples", lambda: classifier().fit(X0[:0], Y0[:0], verbose=0), dp.DataError, "0 samples"),
    ("more samples than targets", lambda: classifier().fit(X0, Y0[:7], verbose=0), dp.DataError, "10 samples but y has 7"),
    ("feature count at predict", lambda: classifier().predict(np.zeros((2, 5))), dp.DataError, "5 features.*expects 3"),
    ("class index out of range", lambda: classifier().fit(X0, Y0 + 2, verbose=0), dp.DataError, "class index 2"),
    ("probabilities outside [0, 1]", lambda: dp.Network([dp.Dense(3, 1, activation="sigmoid")]).fit(
        X0, np.linspace(-1, 2, 10), verbose=0), dp.DataError, r"\[0, 1\].*-1"),
    ("non-integer class", lambda: classifier().fit(X0, Y0 + 0.5, verbose=0), dp.DataError, "integer class indices, got 0.5"),
    ("string labels", lambda: classifier().fit(X0, np.array(["a", "b"] * 5), verbose=0), dp.InvalidTypeError, "encode_labels"),
    ("object X", lambda: classifier().fit(X0.astype(object), Y0, verbose=0), dp.InvalidTypeError, "dtype object"),
    ("string X", lambda: classifier().predict(X0.astype(str)), dp.InvalidTypeError, "dtype <U"),
    ("unknown activation", lambda: dp.Dense(3, 2, activation="swishy"), dp.UnknownNameError, "swishy.*valid names: elu"),
    ("unknown loss", lambda: dp.Network([dp.Dense(3, 2)], loss="l2"), dp.UnknownNameError, "'l2'.*binary_crossentropy"),
    ("unknown optimizer", lambda: classifier().fit(X0, Y0, optimizer="lbfgs", verbose=0), dp.UnknownNameError, "lbfgs.*adam"),
    ("unknown metric", lambda: classifier().fit(X0, Y0, metrics=["f1"], verbose=0), dp.UnknownNameError, "'f1'.*accuracy"),
    ("unknown schedule", lambda: classifier().fit(X0, Y0, schedule="poly", verbose=0), dp.UnknownNameError, "'poly'.*cosine"),
    ("batch size 0", lambda: classifier().fit(X0, Y0, batch_size=0, verbose=0), dp.InvalidArgumentError, "batch_size.*got 0"),
    ("batch size float", lambda: classifier().fit(X0, Y0, batch_size=2.5, verbose=0), dp.InvalidTypeError, "batch_size.*2.5"),
    ("epochs 0", lambda: classifier().fit(X0, Y0, epochs=0, verbose=0), dp.InvalidArgumentError, "epochs.*got 0"),
    ("negative learning rate", lambda: classifier().fit(X0, Y0, learning_rate=-0.1, verbose=0), dp.InvalidArgumentError, "learning_rate must be .*got -0.1"),
    ("NaN learning rate", lambda: dp.SGD(learning_rate=float("nan")), dp.InvalidArgumentError, "learning_rate must be .*got nan"),
    ("integer dtype", lambda: dp.Network([dp.Dense(3, 2)], dtype="int64"), dp.InvalidArgumentError, "'int64'"),
    ("dtype object", lambda: dp.Network([dp.Dense(3, 2)], dtype=object), dp.InvalidArgumentError, "float32"),
    ("zero units", lambda: dp.Dense(3, 0), dp.InvalidArgumentError, "n_out.*got 0"),
    ("dropout 1", lambda: dp.Dense(3, 2, dropout=1.0), dp.InvalidArgumentError, r"dropout.*>= 0 and < 1.*1.0"),
    ("sizes do not chain", lambda: dp.Network([dp.Dense(3, 4), dp.Dense(5, 2)]), dp.InvalidArgumentError, "n_out=4.*n_in=5"),
    ("negative sample weight", lambda: classifier().fit(X0, Y0, sample_weight=-np.ones(10), verbose=0), dp.DataError, "non-negative"),
    ("validation_split 1.5", lambda: classifier().fit(X0, Y0, validation_split=1.5, verbose=0), dp.InvalidArgumentError, "1.5"),
    ("bad seed", lambda: dp.Network([dp.Dense(3, 2)], seed=-3), dp.InvalidArgumentError, "seed.*-3"),
]


@pytest.mark.parametrize("name,call,error,pattern", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_gets_a_clear_error(name, call, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        call()
    assert isinstance(info.value, dp.DeltapropError)
    assert isinstance(info.value, (ValueError, TypeError))


def test_one_sample_trains():
    net = classifier()
    h = net.fit(X0[:1], Y0[:1], epochs=2, verbose=0)
    assert len(h) == 2 and np.isfinite(h["loss"]).all()

"""Tests of deltaprop.layers and deltaprop.network: the parameter store, passes, workspaces, config."""

import json

import numpy as np
import pytest

import deltaprop as dp
from conftest import forward_all, one_hot
from deltaprop.errors import DataError, InvalidArgumentError, InvalidTypeError


def small_net(dtype="float64", seed=0, dropout=0.0):
    return dp.Network(
        [dp.Dense(4, 6, activation="tanh", dropout=dropout), dp.Dense(6, 5, activation="relu"),
         dp.Dense(5, 3, activation="softmax")],
        dtype=dtype, seed=seed,
    )


def data(m=10, seed=0, n_in=4, n_classes=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, n_in)), rng.integers(0, n_classes, size=m)


# ---------------------------------------------------------------------------
# Construction and validation
# ---------------------------------------------------------------------------


def test_layer_size_mismatch_names_both_sizes():
    with pytest.raises(InvalidArgumentError) as info:
        dp.Network([dp.Dense(4, 6), dp.Dense(5, 3)])
    message = str(info.value)
    assert "layers[0]" in message and "n_out=6" in message
    assert "layers[1]" in message and "n_in=5" in message


def test_bad_layer_lists():
    with pytest.raises(InvalidArgumentError, match=r"\[\]"):
        dp.Network([])
    with pytest.raises(InvalidTypeError, match="layers\\[1\\]"):
        dp.Network([dp.Dense(2, 2), "dense"])
    with pytest.raises(InvalidArgumentError, match="dropout=0.5"):
        dp.Network([dp.Dense(2, 2, dropout=0.5)])
    single = dp.Network(dp.Dense(2, 1), seed=0)  # one layer on its own is accepted
    assert single.n_params == 3


@pytest.mark.parametrize("kwargs, error, match", [
    ({"n_in": 0, "n_out": 2}, InvalidArgumentError, "n_in must be a positive integer, got 0"),
    ({"n_in": 2, "n_out": -3}, InvalidArgumentError, "n_out must be a positive integer, got -3"),
    ({"n_in": 2.0, "n_out": 2}, InvalidTypeError, "n_in.*2.0"),
    ({"n_in": True, "n_out": 2}, InvalidTypeError, "n_in.*True"),
    ({"n_in": 2, "n_out": 2, "dropout": 1.0}, InvalidArgumentError, "dropout.*1.0"),
    ({"n_in": 2, "n_out": 2, "dropout": -0.1}, InvalidArgumentError, "-0.1"),
    ({"n_in": 2, "n_out": 2, "dropout": "0.5"}, InvalidTypeError, "'0.5'"),
])
def test_dense_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        dp.Dense(**kwargs)


@pytest.mark.parametrize("dtype", ["float16", "int32", "complex128"])
def test_bad_dtype(dtype):
    with pytest.raises(InvalidArgumentError, match=dtype):
        dp.Network([dp.Dense(2, 1)], dtype=dtype)


def test_bad_dtype_type():
    with pytest.raises((InvalidTypeError, InvalidArgumentError)):
        dp.Network([dp.Dense(2, 1)], dtype=[1])


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed(seed):
    with pytest.raises(InvalidArgumentError, match="seed"):
        dp.Network([dp.Dense(2, 1)], seed=seed)


def test_generator_seed_is_used_as_is():
    rng = np.random.default_rng(3)
    net = dp.Network([dp.Dense(2, 1)], seed=rng)
    assert net.rng is rng
    again = dp.Network([dp.Dense(2, 1)], seed=np.random.default_rng(3))
    np.testing.assert_array_equal(net.params, again.params)


@pytest.mark.parametrize("output, loss", [("softmax", "categorical_crossentropy"), ("sigmoid", "binary_crossentropy"),
                                          ("identity", "mean_squared_error"), ("tanh", "mean_squared_error")])
def test_default_loss(output, loss):
    assert dp.Network([dp.Dense(2, 3, activation=output)]).loss.name == loss


# ---------------------------------------------------------------------------
# The flat parameter store
# ---------------------------------------------------------------------------


def test_params_layout_and_views():
    net = small_net()
    assert net.n_params == (4 * 6 + 6) + (6 * 5 + 5) + (5 * 3 + 3) == net.params.size == net.grads.size
    offset = 0
    for layer in net.layers:
        k = layer.n_out * layer.n_in
        assert layer.W.shape == (layer.n_out, layer.n_in) and layer.b.shape == (layer.n_out,)
        for view, flat in ((layer.W, net.params), (layer.b, net.params),
                           (layer.grad_W, net.grads), (layer.grad_b, net.grads)):
            assert view.base is flat or view.base is flat.base or np.shares_memory(view, flat)
        # W is (n_out, n_in) held column-major: the flat store holds W.T row by row
        assert layer.W.T.flags.c_contiguous and layer.grad_W.T.flags.c_contiguous
        np.testing.assert_array_equal(layer.W.T.ravel(), net.params[offset:offset + k])
        np.testing.assert_array_equal(layer.b, net.params[offset + k:offset + layer.n_params])
        offset += layer.n_params
    assert offset == net.n_params
    assert net.params.flags.c_contiguous and net.params.ndim == 1


def test_writing_params_changes_W_and_back():
    net = small_net()
    net.params[...] = np.arange(net.n_params, dtype=float)
    # W[i, j] is params[offset + j * n_out + i]: (n_out, n_in) held column-major
    assert net.layers[0].W[0, 0] == 0.0 and net.layers[0].W[1, 0] == 1.0 and net.layers[0].W[0, 1] == 6.0
    assert net.layers[0].b[0] == 24.0
    assert net.layers[1].W[0, 0] == 30.0
    net.layers[2].b[...] = -1.0
    np.testing.assert_array_equal(net.params[-3:], [-1.0, -1.0, -1.0])
    net.layers[1].W[2, 3] = 123.5
    assert net.params[30 + 3 * 5 + 2] == 123.5


def test_grads_are_views_into_grads():
    net = small_net()
    X, y = data()
    net.loss_and_gradients(X, y)
    flat = np.concatenate([np.concatenate([layer.grad_W.T.ravel(), layer.grad_b]) for layer in net.layers])
    np.testing.assert_array_equal(flat, net.grads)
    assert np.abs(net.grads).max() > 0


def test_weight_mask():
    net = small_net()
    mask = net.weight_mask()
    assert mask.dtype == net.dtype
    expected = np.concatenate([np.r_[np.ones(l.n_out * l.n_in), np.zeros(l.n_out)] for l in net.layers])
    np.testing.assert_array_equal(mask, expected)


def test_flops_per_sample():
    net = small_net()
    assert net.flops_per_sample() == 4 * 4 * 6 + 6 * 6 * 5 + 6 * 5 * 3


# ---------------------------------------------------------------------------
# Forward, backward, workspaces
# ---------------------------------------------------------------------------


def test_forward_matches_plain_numpy():
    net = small_net()
    X, _ = data()
    _, acts = forward_all(net, X)
    np.testing.assert_allclose(net.predict(X), acts[-1], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(net.forward(np.ascontiguousarray(X)), acts[-1], rtol=1e-13, atol=1e-15)


def test_grads_are_overwritten_not_accumulated():
    net = small_net()
    X, y = data()
    loss1 = net.loss_and_gradients(X, y)
    first = net.grads.copy()
    loss2 = net.loss_and_gradients(X, y)
    assert loss1 == loss2
    np.testing.assert_array_equal(net.grads, first)
    # and a different batch leaves nothing of the first behind
    X2, y2 = data(seed=1)
    net.loss_and_gradients(X2, y2)
    fresh = small_net()
    fresh.loss_and_gradients(X2, y2)
    np.testing.assert_array_equal(net.grads, fresh.grads)


def test_first_layer_input_delta_is_skipped():
    net = small_net()
    X, y = data(m=10)
    net.loss_and_gradients(X, y)
    assert net.layers[0]._g_prev is None
    for layer in net.layers[1:]:
        assert layer._g_prev is not None and layer._g_prev.shape == (10, layer.n_in)


def test_short_last_batch_reuses_workspaces():
    net = small_net()
    X, y = data(m=10)
    net.loss_and_gradients(X, y)
    buffers = [(layer._z, layer._a, layer._g_prev) for layer in net.layers]
    net.loss_and_gradients(X[:3], y[:3])
    for layer, (z, a, g) in zip(net.layers, buffers):
        assert layer._z is z and layer._a is a and layer._g_prev is g
        assert layer.z.shape == (3, layer.n_out) and np.shares_memory(layer.z, z)
    short = net.grads.copy()
    fresh = small_net()
    fresh.loss_and_gradients(X[:3], y[:3])
    np.testing.assert_array_equal(short, fresh.grads)
    # a larger batch grows them
    X2, y2 = data(m=16, seed=2)
    net.loss_and_gradients(X2, y2)
    assert net.layers[0]._z.shape == (16, 6)


def test_forward_result_is_a_workspace_view_but_predict_copies():
    net = small_net()
    X, _ = data()
    p1 = net.predict(X)
    out = net.forward(np.ascontiguousarray(X[:4]))
    assert np.shares_memory(out, net.layers[-1]._a)
    p2 = net.predict(X[::-1].copy())
    np.testing.assert_array_equal(p1, p2[::-1])  # p1 was not overwritten by later passes


def test_predict_in_chunks_equals_one_pass():
    net = small_net()
    X, _ = data(m=23)
    np.testing.assert_allclose(net.predict(X, batch_size=5), net.predict(X), rtol=1e-14, atol=1e-16)


def test_loss_value_is_the_mean_per_sample_loss():
    net = small_net()
    X, y = data()
    loss = net.loss_and_gradients(X, y, training=False)
    a = net.predict(X)
    expected = np.mean(-np.log(a[np.arange(len(y)), y]))
    assert loss == pytest.approx(expected, rel=1e-13)


def test_sample_weight_loss_is_weighted_mean():
    net = small_net()
    X, y = data()
    w = np.linspace(0.5, 2.0, len(y))
    loss = net.loss_and_gradients(X, y, sample_weight=w)
    per = -np.log(net.predict(X)[np.arange(len(y)), y])
    assert loss == pytest.approx(np.sum(w * per) / np.sum(w), rel=1e-13)
    # integer weights equal repeating samples
    reps = np.array([1, 2, 1, 3, 1, 1, 2, 1, 1, 1])
    net.loss_and_gradients(X, y, sample_weight=reps)
    weighted = net.grads.copy()
    net.loss_and_gradients(np.repeat(X, reps, axis=0), np.repeat(y, reps))
    np.testing.assert_allclose(weighted, net.grads, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("w, match", [(np.ones(3), "3 entries for 10 samples"), (-np.ones(10), "non-negative"),
                                      (np.zeros(10), "sums to 0"), (np.r_[np.nan, np.ones(9)], "finite")])
def test_bad_sample_weight(w, match):
    net = small_net()
    X, y = data()
    with pytest.raises(DataError, match=match):
        net.loss_and_gradients(X, y, sample_weight=w)


@pytest.mark.parametrize("X, match", [
    (np.zeros((3, 5)), "5 features but the network expects 4"),
    (np.zeros(4), "2-D"),
    (np.zeros((0, 4)), "0 samples"),
    (np.array([[0.0, np.nan, 0.0, 0.0]]), r"\(row, column\) \(0, 1\)"),
    (np.array([[0.0, 0.0, 0.0, np.inf]]), "NaN or infinite"),
])
def test_bad_X(X, match):
    net = small_net()
    with pytest.raises(DataError, match=match):
        net.predict(X)


def test_non_numeric_X():
    with pytest.raises(InvalidTypeError, match="dtype"):
        small_net().predict(np.array([["a", "b", "c", "d"]]))


def test_one_dimensional_X_for_one_input():
    net = dp.Network([dp.Dense(1, 2, activation="tanh"), dp.Dense(2, 1)], dtype="float64", seed=0)
    np.testing.assert_array_equal(net.predict(np.array([0.5, -1.0])), net.predict(np.array([[0.5], [-1.0]])))


def test_integer_X_is_converted():
    net = small_net()
    Xi = np.arange(8).reshape(2, 4)
    np.testing.assert_array_equal(net.predict(Xi), net.predict(Xi.astype(float)))


# ---------------------------------------------------------------------------
# Dropout
# ---------------------------------------------------------------------------


def test_dropout_only_while_training_and_inverted():
    net = dp.Network([dp.Dense(4, 200, activation="relu", dropout=0.25), dp.Dense(200, 1)], dtype="float64", seed=0)
    X = np.random.default_rng(0).normal(size=(50, 4))
    first = net.layers[0]
    net.forward(X, training=True)
    mask = first.mask
    assert set(np.unique(mask)) <= {0.0, 1.0 / 0.75}
    assert 0.2 < np.mean(mask == 0) < 0.3
    np.testing.assert_array_equal(first.out, first.a * mask)
    net.forward(X, training=False)
    assert first.mask is None
    np.testing.assert_array_equal(net.predict(X), net.predict(X))  # prediction is deterministic


# ---------------------------------------------------------------------------
# Config and summary
# ---------------------------------------------------------------------------


def test_get_config_from_config_round_trip():
    net = dp.Network(
        [dp.Dense(4, 6, activation={"name": "leaky_relu", "alpha": 0.2}, dropout=0.1, initializer="he_normal"),
         dp.Dense(6, 2, activation="identity")],
        loss={"name": "huber", "delta": 0.5}, dtype="float64", seed=0,
    )
    config = net.get_config()
    assert json.loads(json.dumps(config)) == config  # plain JSON: no pickling needed
    rebuilt = dp.Network.from_config(config, seed=1)
    assert rebuilt.get_config() == config
    assert rebuilt.layers[0].activation.alpha == 0.2 and rebuilt.layers[0].dropout == 0.1
    assert rebuilt.loss.delta == 0.5 and rebuilt.dtype == np.float64
    rebuilt.params[...] = net.params
    X = np.random.default_rng(1).normal(size=(5, 4))
    np.testing.assert_array_equal(rebuilt.predict(X), net.predict(X))


def test_summary_lists_layers_and_parameters():
    net = small_net(dropout=0.2)
    text = net.summary()
    lines = text.splitlines()
    assert len(lines) == 1 + len(net.layers) + 1
    assert "4->6" in lines[1] and "tanh" in lines[1] and "30" in lines[1] and "dropout=0.2" in lines[1]
    assert "5->3" in lines[3] and "softmax" in lines[3] and "18" in lines[3]
    assert f"parameters: {net.n_params}" in lines[-1] and "categorical_crossentropy" in lines[-1]
    assert repr(net) == "Network(4-6-5-3, loss='categorical_crossentropy', dtype='float64')"


def test_one_hot_targets_equal_indices():
    net = small_net()
    X, y = data()
    loss_idx = net.loss_and_gradients(X, y)
    g_idx = net.grads.copy()
    loss_1h = net.loss_and_gradients(X, one_hot(y, 3))
    assert loss_idx == loss_1h
    np.testing.assert_array_equal(g_idx, net.grads)


def test_deepcopy_keeps_the_layers_views_of_the_copied_parameter_store():
    import copy

    net = dp.Network([dp.Dense(3, 4, activation="tanh"), dp.Dense(4, 2)], dtype="float64", seed=0)
    twin = copy.deepcopy(net)
    np.testing.assert_array_equal(twin.params, net.params)
    twin.params[:] = 0.5
    assert np.all(twin.layers[0].W == 0.5) and np.all(twin.layers[1].b == 0.5)
    assert not np.any(net.params == 0.5)
    X = np.ones((2, 3))
    twin.loss_and_gradients(X, np.zeros((2, 2)))
    assert np.shares_memory(twin.layers[0].grad_W, twin.grads)

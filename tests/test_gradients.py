"""Backpropagation against two independent oracles: float64 finite differences and autograd.

1. ``deltaprop.gradcheck.gradcheck`` (fourth-order central differences) for
   every activation on the output layer with every loss it can feed
   (non-canonical pairs included: softmax with squared error, sigmoid with
   hinge, ...), and every activation on the hidden layers with every loss;
   relative error below 1e-6 per block.
2. A deliberately simple second-order central-difference loop written here,
   for a few cases, so that the check does not rest on gradcheck alone.
3. ``autograd`` differentiating a plain ``autograd.numpy`` forward function
   written from the definitions (see ``conftest.autograd_loss_fn``), for
   seeded random architectures (1 to 4 hidden layers, widths 1 to 17), with
   and without sample weights: relative error below 1e-7 in float64, and the
   same loss value.

All data keeps every kinked quantity at least 1e-3 from its kink (asserted).
"""

import importlib.util

import numpy as np
import pytest

import deltaprop as dp
from conftest import (
    ACTIVATIONS,
    GRADIENT_FLOOR,
    KINK_MARGIN,
    LOSSES,
    OUTPUT_LOSS_CASES,
    autograd_gradients,
    autograd_loss_fn,
    block_rel_error,
    build_network,
    central_difference,
    kink_distance,
    make_problem,
    random_hidden,
    smallest_block_gradient,
)
from deltaprop.gradcheck import gradcheck

needs_autograd = pytest.mark.skipif(importlib.util.find_spec("autograd") is None,
                                    reason="autograd (the test extra) is not installed")

FD_TOL = 1e-6
AUTOGRAD_TOL = 1e-7


def check_preconditions(net, X, y, sample_weight=None, floor=GRADIENT_FLOOR):
    assert kink_distance(net, X, y) >= KINK_MARGIN
    assert smallest_block_gradient(net, X, y, sample_weight) >= floor


def worst(report):
    return max(max(row["W"], row["b"]) for row in report)


# ---------------------------------------------------------------------------
# 1. gradcheck: every output activation x loss, every hidden activation x loss
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("case_index, case", list(enumerate(OUTPUT_LOSS_CASES)),
                         ids=[f"{o}-{l}-{k}" for o, l, k in OUTPUT_LOSS_CASES])
def test_gradcheck_every_output_activation_and_loss(case_index, case):
    output, loss, n_out = case
    # the hidden activations rotate so that every one also meets every output
    h1 = ACTIVATIONS[case_index % len(ACTIVATIONS)]
    h2 = ACTIVATIONS[(case_index + 4) % len(ACTIVATIONS)]
    net, X, y = make_problem([(5, h1), (4, h2)], output, n_out, loss, seed=case_index)
    check_preconditions(net, X, y)
    report = gradcheck(net, X, y)
    assert [row["layer"] for row in report] == [1, 2, 3]
    assert worst(report) < FD_TOL, report


HIDDEN_CASES = [
    (hidden, loss, output)
    for hidden in ACTIVATIONS
    for loss in LOSSES
    for output in [{"binary_crossentropy": "sigmoid", "categorical_crossentropy": "softmax"}.get(loss, "tanh")]
]


@pytest.mark.parametrize("case_index, case", list(enumerate(HIDDEN_CASES)),
                         ids=[f"{h}-{l}" for h, l, _ in HIDDEN_CASES])
def test_gradcheck_every_hidden_activation_and_loss(case_index, case):
    hidden, loss, output = case
    net, X, y = make_problem([(5, hidden), (4, hidden)], output, 3, loss, seed=500 + case_index)
    check_preconditions(net, X, y)
    assert worst(gradcheck(net, X, y)) < FD_TOL


@pytest.mark.parametrize("loss, output, n_out", [("hinge", "identity", 3), ("categorical_crossentropy", "softmax", 4),
                                                 ("mean_absolute_error", "tanh", 2), ("huber", "elu", 2)])
def test_gradcheck_with_sample_weight(loss, output, n_out):
    net, X, y = make_problem([(6, "gelu"), (3, "leaky_relu")], output, n_out, loss, seed=7, m=8)
    w = np.random.default_rng(7).uniform(0.1, 3.0, size=8)
    check_preconditions(net, X, y, sample_weight=w)
    assert worst(gradcheck(net, X, y, sample_weight=w)) < FD_TOL


def test_gradcheck_float32_network():
    # gradcheck works on a float64 copy: a float32 network's own parameters are checked exactly
    net, X, y = make_problem([(6, "tanh")], "softmax", 3, "categorical_crossentropy", seed=3, dtype="float32")
    assert net.dtype == np.float32
    assert worst(gradcheck(net, X, y)) < FD_TOL


# ---------------------------------------------------------------------------
# 2. Our own central differences
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("hidden, output, n_out, loss", [
    ([(4, "tanh")], "sigmoid", 1, "binary_crossentropy"),
    ([(5, "relu"), (4, "sigmoid")], "softmax", 3, "categorical_crossentropy"),
    ([(3, "gelu")], "identity", 2, "huber"),
    ([(4, "elu"), (3, "softplus")], "softmax", 3, "mean_squared_error"),
    ([(4, "leaky_relu")], "sigmoid", 1, "hinge"),
    ([(3, "softmax"), (4, "tanh")], "relu", 2, "mean_absolute_error"),
])
def test_own_central_differences(hidden, output, n_out, loss):
    net, X, y = make_problem(hidden, output, n_out, loss, seed=11)
    check_preconditions(net, X, y)
    params_before = net.params.copy()
    net.loss_and_gradients(X, y)
    backprop = net.grads.copy()
    numeric = central_difference(net, X, y, h=1e-5)
    np.testing.assert_array_equal(net.params, params_before)
    offset = 0
    for layer in net.layers:
        k = layer.n_out * layer.n_in
        for sl in (slice(offset, offset + k), slice(offset + k, offset + layer.n_params)):
            assert block_rel_error(backprop[sl], numeric[sl]) < FD_TOL
        offset += layer.n_params


@needs_autograd
def test_dropout_gradient_with_the_mask_held_fixed():
    """With dropout, the gradient is that of the network whose dropped units are held at zero."""
    net = build_network(4, [(6, "tanh"), (5, "sigmoid")], "softmax", 3, "categorical_crossentropy", seed=2,
                        dropout=0.4)
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(7, 4)), rng.integers(0, 3, size=7)
    net.loss_and_gradients(X, y, training=True)
    masks = [layer.mask.copy() for layer in net.layers[:-1]]
    assert all(np.any(mask == 0) for mask in masks)
    backprop = [(layer.grad_W.copy(), layer.grad_b.copy()) for layer in net.layers]

    from autograd import grad
    import autograd.numpy as anp

    Y = np.eye(3)[np.asarray(y)]

    def loss(params):
        a = X
        for i, (W, b) in enumerate(params):
            z = anp.dot(a, W.T) + b
            if i == 0:
                a = anp.tanh(z) * masks[0]
            elif i == 1:
                a = 1.0 / (1.0 + anp.exp(-z)) * masks[1]
            else:
                e = anp.exp(z)
                a = e / anp.sum(e, axis=1, keepdims=True)
        return anp.mean(-anp.sum(Y * anp.log(a), axis=1))

    ref = grad(loss)([(layer.W.copy(), layer.b.copy()) for layer in net.layers])
    for (gW, gb), (rW, rb) in zip(backprop, ref):
        assert block_rel_error(gW, rW) < AUTOGRAD_TOL
        assert block_rel_error(gb, rb) < AUTOGRAD_TOL


class Sine:
    """A user's activation: only forward and backward, not registered anywhere."""

    name = "sine_user"
    elementwise = True

    def forward(self, z, out):
        return np.sin(z, out=out)

    def backward(self, z, a, grad, out):
        return np.multiply(grad, np.cos(z), out=out)


class LogCosh:
    """A user's loss: only value and gradient."""

    name = "logcosh_user"

    def prepare_targets(self, y, n_out, dtype):
        return np.asarray(y, dtype=dtype).reshape(-1, n_out)

    def value(self, a, y):
        return np.mean(np.log(np.cosh(a - y)), axis=1)

    def gradient(self, a, y):
        return np.tanh(a - y) / a.shape[1]


def test_custom_activation_and_loss_objects_backpropagate():
    net = dp.Network([dp.Dense(3, 4, activation=Sine()), dp.Dense(4, 2, activation="tanh")],
                     loss=LogCosh(), dtype="float64", seed=0)
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    net.loss_and_gradients(X, y)
    backprop = net.grads.copy()
    numeric = central_difference(net, X, y, h=1e-5)
    assert block_rel_error(backprop, numeric) < FD_TOL


# ---------------------------------------------------------------------------
# 3. autograd: random architectures, every output x loss, with and without weights
# ---------------------------------------------------------------------------


def random_problem(case_index, case, seed):
    output, loss, n_out = case
    rng = np.random.default_rng([seed, case_index])
    hidden = random_hidden(rng)  # 1-4 layers, widths 1-17, any activation
    n_in = int(rng.integers(1, 8))
    m = int(rng.integers(1, 12))
    net, X, y = make_problem(hidden, output, n_out, loss, seed=10_000 * seed + case_index, n_in=n_in, m=m,
                             floor=1e-8)
    check_preconditions(net, X, y, floor=1e-8)
    w = rng.uniform(0.05, 3.0, size=m)
    return net, X, y, w


def assert_matches_autograd(net, X, y, sample_weight=None):
    loss = net.loss_and_gradients(X, y, sample_weight=sample_weight)
    ref_loss, ref_grads = autograd_gradients(net, X, y, sample_weight=sample_weight)
    assert abs(loss - ref_loss) <= AUTOGRAD_TOL * abs(ref_loss) + 1e-300
    for layer, (rW, rb) in zip(net.layers, ref_grads):
        assert block_rel_error(layer.grad_W, rW) < AUTOGRAD_TOL
        assert block_rel_error(layer.grad_b, rb) < AUTOGRAD_TOL


@needs_autograd
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("case_index, case", list(enumerate(OUTPUT_LOSS_CASES)),
                         ids=[f"{o}-{l}-{k}" for o, l, k in OUTPUT_LOSS_CASES])
def test_matches_autograd_random_architectures(case_index, case, seed):
    net, X, y, w = random_problem(case_index, case, seed)
    assert_matches_autograd(net, X, y)
    assert_matches_autograd(net, X, y, sample_weight=w)


def test_random_architectures_cover_every_hidden_activation_and_width_range():
    seen, widths, depths = set(), set(), set()
    for seed in (0, 1):
        for i, _ in enumerate(OUTPUT_LOSS_CASES):
            hidden = random_hidden(np.random.default_rng([seed, i]))
            seen |= {act for _, act in hidden}
            widths |= {w for w, _ in hidden}
            depths.add(len(hidden))
    assert seen == set(ACTIVATIONS)
    assert depths == {1, 2, 3, 4}
    assert min(widths) == 1 and max(widths) == 17


@needs_autograd
def test_sample_weight_is_weighted_mean_of_per_sample_losses():
    net, X, y, w = random_problem(0, ("softmax", "categorical_crossentropy", 3), seed=3)
    f_weighted = autograd_loss_fn(net, X, y, sample_weight=w)
    per_sample = [autograd_loss_fn(net, X[i:i + 1], np.asarray(y)[i:i + 1]) for i in range(len(w))]
    params = [(layer.W, layer.b) for layer in net.layers]
    expected = sum(wi * f(params) for wi, f in zip(w, per_sample)) / w.sum()
    assert f_weighted(params) == pytest.approx(expected, rel=1e-13)
    assert net.loss_and_gradients(X, y, sample_weight=w) == pytest.approx(expected, rel=1e-13)


def test_zero_weight_samples_do_not_count():
    net, X, y, w = random_problem(5, ("sigmoid", "binary_crossentropy", 1), seed=4)
    if len(w) < 3:
        X, y, w = np.vstack([X, X, X]), np.concatenate([y, y, y]), np.concatenate([w, w, w])
    w = w.copy()
    w[::2] = 0.0
    net.loss_and_gradients(X, y, sample_weight=w)
    weighted = net.grads.copy()
    keep = w > 0
    net.loss_and_gradients(X[keep], np.asarray(y)[keep], sample_weight=w[keep])
    np.testing.assert_allclose(weighted, net.grads, rtol=1e-12, atol=1e-16)



# ---------------------------------------------------------------------------
# The helpers' preconditions are not vacuous
# ---------------------------------------------------------------------------


def test_case_lists_include_the_non_canonical_pairs():
    cases = set(OUTPUT_LOSS_CASES)
    for case in [("softmax", "mean_squared_error", 3), ("sigmoid", "hinge", 1), ("sigmoid", "hinge", 3),
                 ("softmax", "hinge", 3), ("identity", "hinge", 1), ("relu", "mean_absolute_error", 1),
                 ("softplus", "categorical_crossentropy", 3), ("softmax", "binary_crossentropy", 3),
                 ("sigmoid", "categorical_crossentropy", 3)]:
        assert case in cases
    assert {o for o, _, _ in cases} == set(ACTIVATIONS)
    assert {loss for _, loss, _ in cases} == set(LOSSES)
    assert {h for h, _, _ in HIDDEN_CASES} == set(ACTIVATIONS)


def test_kink_distance_sees_kinks():
    net = build_network(2, [(3, "relu")], "identity", 1, "mean_absolute_error", seed=0)
    X = np.array([[0.0, 0.0], [1.0, -1.0]])  # row 0: every relu pre-activation is b = 0 exactly
    y = np.array([5.0, 5.0])
    assert kink_distance(net, X, y) == 0.0
    net.layers[0].b[...] = 1.0
    a = net.predict(X)[:, 0]
    assert kink_distance(net, X, a) == 0.0  # absolute error at a = y
    hinge = build_network(2, [(3, "tanh")], "identity", 1, "hinge", seed=0)
    hinge.layers[-1].W[...] = 0.0
    hinge.layers[-1].b[...] = 1.0  # a = 1 for every sample: margin 1 - a = 0 for label 1
    assert kink_distance(hinge, X, np.array([1.0, 0.0])) == 0.0
